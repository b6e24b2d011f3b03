// @ts-check
// The room view: a tile per camera and per screen (ours and everyone else's), an <audio>
// per remote audio track, and the state of the call controls. `render` brings them up to
// date with the call's state.

import { mayPublish } from "./publish.js";
import { tileElement } from "./markup.js";

/** @typedef {import("./state.js").Call} Call */
/**
 * What a tile shows.
 * @typedef {{identity: string, name: string, source: string, local: boolean,
 *   track: MediaStreamTrack | null, videoOff: boolean, micMuted: boolean}} Tile
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
    updateTile(call, el, tile);
  }
  renderAudio(call);
  updateControls(call);
  call.hooks.onRender();
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
 */
function updateTile(call, el, tile) {
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
}

/** @param {Call} call */
function updateControls(call) {
  const mic = call.local.get("microphone");
  const cam = call.local.get("camera");
  const sharing = call.local.has("screen");
  call.ui.micBtn.disabled = !mic;
  call.ui.micBtn.textContent = mic?.muted ? "Unmute" : "Mute";
  call.ui.micBtn.setAttribute("aria-pressed", String(Boolean(mic?.muted)));
  call.ui.camBtn.disabled = !cam;
  call.ui.camBtn.textContent = cam?.muted ? "Start video" : "Stop video";
  call.ui.camBtn.setAttribute("aria-pressed", String(Boolean(cam?.muted)));
  call.ui.screenBtn.disabled = !navigator.mediaDevices?.getDisplayMedia || !mayPublish(call, "screen");
  call.ui.screenBtn.textContent = sharing ? "Stop sharing" : "Share screen";
  call.ui.screenBtn.setAttribute("aria-pressed", String(sharing));
}
