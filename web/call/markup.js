// @ts-check
// The markup of a call, one copy for every page that joins rooms: the room view (tiles,
// the audio sink, the controls, the device choice) and a participant's tile with its
// actions (focus, full screen, picture-in-picture, volume, stop watching). A page leaves an
// empty <section id="room-view" class="room-view" hidden> where the call goes.

import { h } from "../shared/dom.js";

/** Constant markup, never user text. */
const MUTED_ICON =
  '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3M3 3l18 18"/></svg>';

/**
 * Fills the page's room view with the tiles area, the audio sink and the controls.
 * @param {HTMLElement} section the page's #room-view
 */
export function mountRoomView(section) {
  if (section.childElementCount) return;
  /** @param {string} id @param {string} text @param {string} [extra] */
  const control = (id, text, extra = "") =>
    h("button", { id, type: "button", class: `control${extra}`, "aria-pressed": "false", text });
  const leave = h("button", { id: "leave-btn", type: "button", class: "control danger", text: "Leave" });
  /** @param {string} id @param {string} label */
  const device = (id, label) =>
    h("label", { class: "device-choice" }, h("span", { text: label }), h("select", { id }));
  section.append(
    h("div", { id: "tiles", class: "tiles", "aria-label": "Participants" }),
    h("div", { id: "audio-sink", hidden: true }),
    h(
      "div",
      { id: "devices-panel", class: "devices-panel", role: "dialog", "aria-label": "Devices", hidden: true },
      device("mic-select", "Microphone"),
      device("cam-select", "Camera"),
      device("speaker-select", "Speaker"),
    ),
    h(
      "nav",
      { class: "controls", "aria-label": "Call controls" },
      control("mic-btn", "Mute"),
      control("deafen-btn", "Deafen"),
      control("cam-btn", "Stop video"),
      control("screen-btn", "Share screen"),
      h("button", { id: "devices-btn", type: "button", class: "control", "aria-expanded": "false", "aria-controls": "devices-panel", text: "Devices" }),
      leave,
    ),
  );
}

/**
 * A participant's tile: video, avatar, a label with the muted icon and the name, its
 * actions, and what shows when we stopped watching it.
 */
export function tileElement() {
  /** @param {string} action @param {string} text */
  const action = (action, text) => h("button", { type: "button", class: "tile-action", dataset: { tileAction: action }, text });
  return h(
    "div",
    { class: "tile", tabindex: "0" },
    h("video", { autoplay: true, playsinline: true, muted: true }),
    h("div", { class: "avatar", "aria-hidden": "true" }),
    h("div", { class: "stopped-cover" }, h("span", { text: "You stopped watching" }), action("watch", "Watch")),
    h(
      "div",
      { class: "tile-actions" },
      action("focus", "Focus"),
      action("fullscreen", "Full screen"),
      action("pip", "Pop out"),
      action("stop-watching", "Stop watching"),
      h("input", { type: "range", class: "tile-volume", min: "0", max: "100", value: "100", dataset: { tileAction: "volume" } }),
    ),
    h(
      "div",
      { class: "label" },
      h("span", { class: "mute-icon", title: "Microphone muted", hidden: true, innerHTML: MUTED_ICON }),
      h("span", { class: "name" }),
    ),
  );
}
