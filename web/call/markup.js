// @ts-check
// The markup of a call, one copy for every page that joins rooms: the room view (tiles,
// the audio sink, the controls) and a participant's tile. A page leaves an empty
// <section id="room-view" class="room-view" hidden> where the call goes.

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
  section.append(
    h("div", { id: "tiles", class: "tiles", "aria-label": "Participants" }),
    h("div", { id: "audio-sink", hidden: true }),
    h(
      "nav",
      { class: "controls", "aria-label": "Call controls" },
      control("mic-btn", "Mute"),
      control("cam-btn", "Stop video"),
      control("screen-btn", "Share screen"),
      leave,
    ),
  );
}

/** A participant's tile: video, avatar, and a label with the muted icon and the name. */
export function tileElement() {
  return h(
    "div",
    { class: "tile" },
    h("video", { autoplay: true, playsinline: true, muted: true }),
    h("div", { class: "avatar", "aria-hidden": "true" }),
    h(
      "div",
      { class: "label" },
      h("span", { class: "mute-icon", title: "Microphone muted", hidden: true, innerHTML: MUTED_ICON }),
      h("span", { class: "name" }),
    ),
  );
}
