// @ts-check
// How we watch and hear a call: a tile in focus or full screen, a video popped out
// (picture-in-picture), each person's volume, stopping a video we do not want to watch (the
// server stops sending it: `pause`, docs/protocol.md §4.9), deafening, and the choice of
// microphone, camera and speaker.

import { closestTarget } from "../shared/dom.js";
import { describeError } from "../shared/errors.js";
import { setMuted } from "./publish.js";
import { showError } from "./state.js";
import { layoutTiles, render } from "./tiles.js";

/** @typedef {import("./state.js").Call} Call */

/**
 * Stops or starts watching a remote video: the server pauses forwarding it, so no
 * packets arrive for it.
 * @param {Call} call
 * @param {string} trackId
 * @param {boolean} stop
 */
export async function setWatching(call, trackId, stop) {
  if (stop) call.stopped.add(trackId);
  else call.stopped.delete(trackId);
  render(call);
  try {
    await call.signal?.request("pause", { track_id: trackId, paused: stop });
  } catch (error) {
    if (stop) call.stopped.delete(trackId);
    else call.stopped.add(trackId);
    render(call);
    showError(call, `Could not ${stop ? "stop" : "start"} watching: ${describeError(error)}`, error.code);
  }
}

/**
 * Deafens (nothing is heard, and our microphone is muted, as others would expect) or
 * undeafens (the microphone comes back unless it was muted before).
 * @param {Call} call
 */
export function toggleDeafen(call) {
  const mic = call.local.get("microphone");
  call.deafened = !call.deafened;
  if (call.deafened) {
    call.mutedBeforeDeafen = Boolean(mic?.muted);
    if (mic && !mic.muted) setMuted(call, "microphone", true);
  } else if (mic && !call.mutedBeforeDeafen) {
    setMuted(call, "microphone", false);
  }
  render(call);
}

/**
 * The tiles' actions, by delegation.
 * @param {Call} call
 */
function wireTiles(call) {
  const tiles = call.ui.tiles;
  tiles.addEventListener("click", (event) => {
    const button = closestTarget(event, "[data-tile-action]");
    const tile = /** @type {HTMLElement | null} */ (button?.closest(".tile") ?? null);
    if (!button || !tile) return;
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector("video"));
    switch (button.dataset.tileAction) {
      case "focus":
        call.focus = call.focus === tile.dataset.key ? null : tile.dataset.key;
        render(call);
        break;
      case "fullscreen":
        if (document.fullscreenElement === tile) document.exitFullscreen().catch(() => {});
        else tile.requestFullscreen?.().catch((error) => showError(call, `Could not go full screen: ${describeError(error)}`));
        break;
      case "pip":
        if (document.pictureInPictureElement === video) document.exitPictureInPicture().catch(() => {});
        else video.requestPictureInPicture?.().catch((error) => showError(call, `Could not pop the video out: ${describeError(error)}`));
        break;
      case "stop-watching":
        if (tile.dataset.trackId) setWatching(call, tile.dataset.trackId, true);
        break;
      case "watch":
        if (tile.dataset.trackId) setWatching(call, tile.dataset.trackId, false);
        break;
      default:
        break;
    }
  });
  tiles.addEventListener("input", (event) => {
    const input = /** @type {HTMLInputElement} */ (event.target);
    const tile = /** @type {HTMLElement | null} */ (input.closest(".tile"));
    if (input.dataset.tileAction !== "volume" || !tile) return;
    call.volumes.set(tile.dataset.identity, Number(input.value) / 100);
    render(call);
  });
  // Double-click: focus.
  tiles.addEventListener("dblclick", (event) => {
    const tile = /** @type {HTMLElement | null} */ (closestTarget(event, ".tile"));
    if (!tile || closestTarget(event, "[data-tile-action]")) return;
    call.focus = call.focus === tile.dataset.key ? null : tile.dataset.key;
    render(call);
  });
  new ResizeObserver(() => layoutTiles(call)).observe(tiles);
}

/**
 * Lists the devices in the panel's selects, the ones in use selected.
 * @param {Call} call
 */
async function listDevices(call) {
  const devices = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
  const fill = (/** @type {HTMLSelectElement} */ select, /** @type {string} */ kind, /** @type {string} */ current) => {
    const options = devices.filter((d) => d.kind === kind);
    select.replaceChildren(
      ...options.map((d, i) => {
        const o = document.createElement("option");
        o.value = d.deviceId;
        o.textContent = d.label || `${kind === "audioinput" ? "Microphone" : kind === "videoinput" ? "Camera" : "Speaker"} ${i + 1}`;
        o.selected = d.deviceId === current;
        return o;
      }),
    );
    select.disabled = options.length === 0;
  };
  const inUse = (/** @type {string} */ source) => call.local.get(source)?.track.getSettings().deviceId ?? "";
  fill(call.ui.micSelect, "audioinput", inUse("microphone"));
  fill(call.ui.camSelect, "videoinput", inUse("camera"));
  fill(call.ui.speakerSelect, "audiooutput", call.speakerId);
  // Without setSinkId the browser plays on its default output only.
  if (typeof (/** @type {any} */ (HTMLMediaElement.prototype).setSinkId) !== "function") call.ui.speakerSelect.disabled = true;
}

/**
 * Sends another microphone or camera in place of the one published, on the same track.
 * @param {Call} call
 * @param {"microphone" | "camera"} source
 * @param {string} deviceId
 */
async function switchDevice(call, source, deviceId) {
  const pub = call.local.get(source);
  if (!pub) return;
  try {
    const kind = source === "microphone" ? "audio" : "video";
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
    const track = stream.getTracks()[0];
    track.enabled = !pub.muted;
    await pub.transceiver?.sender.replaceTrack(track);
    const old = pub.track;
    pub.track = track;
    pub.stream = stream;
    old.stop();
    render(call);
  } catch (error) {
    showError(call, `Could not switch ${source}: ${describeError(error)}`);
  }
}

/**
 * The devices panel.
 * @param {Call} call
 */
function wireDevices(call) {
  const { devicesBtn, devicesPanel } = call.ui;
  devicesBtn.addEventListener("click", async () => {
    const open = devicesPanel.hidden;
    if (open) await listDevices(call);
    devicesPanel.hidden = !open;
    devicesBtn.setAttribute("aria-expanded", String(open));
  });
  call.ui.micSelect.addEventListener("change", () => switchDevice(call, "microphone", call.ui.micSelect.value));
  call.ui.camSelect.addEventListener("change", () => switchDevice(call, "camera", call.ui.camSelect.value));
  call.ui.speakerSelect.addEventListener("change", () => {
    call.speakerId = call.ui.speakerSelect.value;
    render(call);
  });
}

/**
 * Tiles' actions, deafen and the devices panel.
 * @param {Call} call
 */
export function wireViewing(call) {
  wireTiles(call);
  wireDevices(call);
  call.ui.deafenBtn.addEventListener("click", () => toggleDeafen(call));
}
