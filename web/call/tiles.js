// @ts-check
// The room view: a tile per camera and per screen (ours and everyone else's), an <audio>
// per remote audio track, and the state of the call controls. `render` brings them up to
// date with the call's state.

import { mayPublish } from "./publish.js";
import { tileElement } from "./markup.js";

/** @typedef {import("./state.js").Call} Call */
/**
 * What a tile shows; `trackId` is the remote video track's (null for ours).
 * @typedef {{identity: string, name: string, source: string, local: boolean,
 *   track: MediaStreamTrack | null, videoOff: boolean, micMuted: boolean,
 *   trackId?: string | null}} Tile
 */
/** @typedef {HTMLElement & {videoTrack?: MediaStreamTrack | null}} TileElement */

/**
 * The MediaStreamTrack the server sends us for a track id, if it has an m-line for it.
 * @param {Call} call
 * @param {string} trackId
 * @returns {MediaStreamTrack | null}
 */
function receivedTrack(call, trackId) {
  if (!call.pc) return null;
  for (const [mid, id] of call.remoteMids) {
    if (id !== trackId) continue;
    const transceiver = call.pc.getTransceivers().find((t) => t.mid === mid);
    if (transceiver && transceiver.currentDirection !== "stopped") return transceiver.receiver.track;
  }
  return null;
}

/**
 * What the tiles should be: key -> tile description.
 * @param {Call} call
 */
function wantedTiles(call) {
  /** @type {Map<string, Tile>} */
  const tiles = new Map();
  if (call.state !== "joined") return tiles;

  const mic = call.local.get("microphone");
  const cam = call.local.get("camera");
  tiles.set(`${call.identity}|camera`, {
    identity: call.identity,
    name: call.name,
    source: "camera",
    local: true,
    track: cam?.track ?? null,
    videoOff: !cam || cam.muted,
    micMuted: !mic || mic.muted,
  });
  const screen = call.local.get("screen");
  if (screen) {
    tiles.set(`${call.identity}|screen`, {
      identity: call.identity,
      name: call.name,
      source: "screen",
      local: true,
      track: screen.track,
      videoOff: false,
      micMuted: false,
    });
  }

  for (const participant of call.participants.values()) {
    const tracks = [...call.remoteTracks.values()].filter((t) => t.participant === participant.identity);
    const micInfo = tracks.find((t) => t.source === "microphone");
    const camInfo = tracks.find((t) => t.source === "camera");
    const camTrack = camInfo ? receivedTrack(call, camInfo.track_id) : null;
    tiles.set(`${participant.identity}|camera`, {
      identity: participant.identity,
      name: participant.name,
      source: "camera",
      local: false,
      track: camTrack,
      videoOff: !camTrack || camInfo.muted,
      micMuted: !micInfo || micInfo.muted,
      trackId: camInfo?.track_id ?? null,
    });
    for (const screenInfo of tracks.filter((t) => t.source === "screen")) {
      const track = receivedTrack(call, screenInfo.track_id);
      tiles.set(`screen|${screenInfo.track_id}`, {
        identity: participant.identity,
        name: participant.name,
        source: "screen",
        local: false,
        track,
        videoOff: !track || screenInfo.muted,
        micMuted: false,
        trackId: screenInfo.track_id,
      });
    }
  }
  return tiles;
}

/** @param {Call} call */
export function render(call) {
  const wanted = wantedTiles(call);
  for (const [key, el] of call.tiles) {
    if (!wanted.has(key)) {
      el.remove();
      call.tiles.delete(key);
    }
  }
  for (const [key, tile] of wanted) {
    let el = call.tiles.get(key);
    if (!el) {
      el = createTile(call, tile);
      call.tiles.set(key, el);
      call.ui.tiles.append(el);
    }
    updateTile(call, el, tile, key);
  }
  if (call.focus && !wanted.has(call.focus)) call.focus = null;
  layoutTiles(call);
  renderAudio(call);
  updateControls(call);
  call.hooks.onRender();
}

/**
 * The tiles fill the space: as a grid of equal tiles as large as fits, or, with a tile in
 * focus or a screen shared, that one large on a stage and the rest in a strip below.
 * @param {Call} call
 */
export function layoutTiles(call) {
  const box = call.ui.tiles;
  const tiles = [...call.tiles.values()];
  const stage = (call.focus && call.tiles.get(call.focus)) || tiles.find((t) => t.dataset.source === "screen") || null;
  for (const t of tiles) t.classList.toggle("stage", t === stage);
  box.classList.toggle("staged", Boolean(stage));
  if (stage || tiles.length === 0) return;
  const gap = 12;
  const width = box.clientWidth - 32;
  const height = box.clientHeight - 32;
  if (width <= 0 || height <= 0) return;
  let best = { cols: 1, w: 0 };
  for (let cols = 1; cols <= tiles.length; cols += 1) {
    const rows = Math.ceil(tiles.length / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * (16 / 9));
    if (w > best.w) best = { cols, w };
  }
  box.style.setProperty("--cols", String(best.cols));
  box.style.setProperty("--tile-w", `${Math.max(120, Math.floor(best.w))}px`);
}

/**
 * @param {Call} call
 * @param {Tile} tile
 * @returns {TileElement}
 */
function createTile(call, tile) {
  const el = /** @type {TileElement} */ (tileElement());
  el.dataset.identity = tile.identity;
  el.dataset.source = tile.source;
  if (tile.local) el.dataset.local = "true";
  if (tile.source === "screen") el.classList.add("screen");
  el.videoTrack = null;
  return el;
}

/**
 * @param {Call} call
 * @param {TileElement} el
 * @param {Tile} tile
 * @param {string} key
 */
function updateTile(call, el, tile, key) {
  el.dataset.key = key;
  if (tile.trackId) el.dataset.trackId = tile.trackId;
  else delete el.dataset.trackId;
  el.classList.toggle("focused", call.focus === key);
  el.classList.toggle("stopped", Boolean(tile.trackId && call.stopped.has(tile.trackId)));
  const volume = /** @type {HTMLInputElement} */ (el.querySelector(".tile-volume"));
  volume.hidden = tile.local || tile.source !== "camera";
  volume.setAttribute("aria-label", `Volume of ${tile.name}`);
  const percent = String(Math.round((call.volumes.get(tile.identity) ?? 1) * 100));
  if (volume.value !== percent && document.activeElement !== volume) volume.value = percent;
  /** @type {HTMLElement} */ (el.querySelector('[data-tile-action="stop-watching"]')).hidden = tile.local;
  /** @type {HTMLElement} */ (el.querySelector('[data-tile-action="focus"]')).textContent = call.focus === key ? "Unfocus" : "Focus";
  const label = tile.source === "screen" ? `${tile.name}'s screen` : tile.name;
  const nameEl = /** @type {HTMLElement} */ (el.querySelector(".name"));
  if (nameEl.textContent !== label) nameEl.textContent = label;
  const avatar = /** @type {HTMLElement} */ (el.querySelector(".avatar"));
  avatar.dataset.initial = (tile.name || "?").trim().charAt(0).toUpperCase();
  const muteIcon = /** @type {HTMLElement} */ (el.querySelector(".mute-icon"));
  muteIcon.hidden = !tile.micMuted;
  el.classList.toggle("speaking", tile.source === "camera" && call.speakers.has(tile.identity));
  el.classList.toggle("video-off", tile.videoOff);
  if (el.videoTrack !== tile.track) {
    el.videoTrack = tile.track;
    const video = /** @type {HTMLVideoElement} */ (el.querySelector("video"));
    video.srcObject = tile.track ? new MediaStream([tile.track]) : null;
  }
}

/**
 * One <audio autoplay> per remote audio track we receive.
 * @param {Call} call
 */
function renderAudio(call) {
  /** @type {Map<string, MediaStreamTrack>} */
  const wanted = new Map();
  for (const info of call.remoteTracks.values()) {
    if (info.kind !== "audio" || !call.participants.has(info.participant)) continue;
    const track = receivedTrack(call, info.track_id);
    if (track) wanted.set(info.track_id, track);
  }
  for (const [trackId, audio] of call.audios) {
    if (wanted.get(trackId) !== /** @type {MediaStream | null} */ (audio.srcObject)?.getTracks()[0]) {
      audio.srcObject = null;
      audio.remove();
      call.audios.delete(trackId);
    }
  }
  for (const [trackId, track] of wanted) {
    if (call.audios.has(trackId)) continue;
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.dataset.trackId = trackId;
    audio.srcObject = new MediaStream([track]);
    call.ui.audioSink.append(audio);
    audio.play().catch(() => {}); // autoplay may wait for a user gesture
    call.audios.set(trackId, audio);
  }
  // What each one plays at: deafened, nothing; else the volume chosen for its speaker.
  for (const [trackId, audio] of call.audios) {
    const who = call.remoteTracks.get(trackId)?.participant;
    audio.muted = call.deafened;
    audio.volume = Math.min(1, Math.max(0, call.volumes.get(who) ?? 1));
    const sink = /** @type {any} */ (audio);
    if (typeof sink.setSinkId === "function" && sink.sinkId !== call.speakerId) sink.setSinkId(call.speakerId).catch(() => {});
  }
}

/** @param {Call} call */
function updateControls(call) {
  const mic = call.local.get("microphone");
  const cam = call.local.get("camera");
  const sharing = call.local.has("screen");
  call.ui.micBtn.disabled = !mic || call.serverMuted;
  call.ui.micBtn.textContent = call.serverMuted ? "Server muted" : mic?.muted ? "Unmute" : "Mute";
  call.ui.micBtn.title = call.serverMuted ? "A moderator muted you; only a moderator can unmute you" : "";
  call.ui.micBtn.setAttribute("aria-pressed", String(Boolean(mic?.muted || call.serverMuted)));
  call.ui.camBtn.disabled = !cam;
  call.ui.camBtn.textContent = cam?.muted ? "Start video" : "Stop video";
  call.ui.camBtn.setAttribute("aria-pressed", String(Boolean(cam?.muted)));
  call.ui.screenBtn.disabled = !navigator.mediaDevices?.getDisplayMedia || !mayPublish(call, "screen");
  call.ui.screenBtn.textContent = sharing ? "Stop sharing" : "Share screen";
  call.ui.screenBtn.setAttribute("aria-pressed", String(sharing));
  call.ui.deafenBtn.textContent = call.deafened ? "Undeafen" : "Deafen";
  call.ui.deafenBtn.setAttribute("aria-pressed", String(call.deafened));
  call.ui.deafenBtn.disabled = call.state !== "joined";
}
