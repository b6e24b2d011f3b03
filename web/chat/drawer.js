// @ts-check
// On a phone (chat.css, max-width 600px) the server rail and the channel sidebar are a
// drawer over the messages: the header's ☰ opens it; choosing a channel or a direct
// message, or tapping beside it, closes it. On wider screens the button is not shown.

import { $ } from "../shared/dom.js";

/** Wires the drawer's button, backdrop and the choices that close it. */
export function wireDrawer() {
  const app = $("#app-view");
  const toggle = $("#nav-toggle");
  /** @param {boolean} open */
  const setOpen = (open) => {
    app.classList.toggle("nav-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", () => setOpen(!app.classList.contains("nav-open")));
  $("#nav-backdrop").addEventListener("click", () => setOpen(false));
  $("#channel-list").addEventListener("click", (/** @type {MouseEvent} */ event) => {
    if (event.target instanceof Element && event.target.closest(".channel")) setOpen(false);
  });
  $("#add-guild-btn").addEventListener("click", () => setOpen(false));
}
