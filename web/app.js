// @ts-check
// Parlor room page: join a room by name with a guest token, or with the token of an invite
// link (?token=). The room itself (signaling, media, tiles, controls and the
// `window.parlor` test handle) is call/, shared with the chat app's voice channels.

import { clearError, configureCall, defaultSignalingUrl, fetchGuestToken, joinRoom, startCall } from "./call/room.js";
import { $ } from "./shared/dom.js";
import { applyTheme } from "./shared/theme.js";

applyTheme();
const call = startCall();

const ui = {
  /** @type {HTMLElement} */
  joinView: $("#join-view"),
  /** @type {HTMLElement} */
  roomView: $("#room-view"),
  /** @type {HTMLFormElement} */
  form: $("#join-form"),
  /** @type {HTMLInputElement} */
  room: $("#room"),
  /** @type {HTMLInputElement} */
  name: $("#name"),
  /** @type {HTMLElement} */
  tokenNote: $("#token-note"),
  /** @type {HTMLButtonElement} */
  joinBtn: $("#join-btn"),
  /** @type {HTMLElement} */
  roomLabel: $("#room-label"),
};

/** @type {string | null} The token from the page's ?token=, if any. */
let linkToken = null;

/** @param {string} state */
function onState(state) {
  document.body.dataset.state = state;
  const inRoom = state === "joined";
  ui.joinView.hidden = inRoom;
  ui.roomView.hidden = !inRoom;
  ui.roomLabel.hidden = !inRoom;
  ui.roomLabel.textContent = inRoom ? call.room : "";
  ui.joinBtn.disabled = state === "joining";
  ui.joinBtn.textContent = state === "joining" ? "Joining…" : "Join";
}

/** @param {SubmitEvent} event */
async function onJoin(event) {
  event.preventDefault();
  const { state } = call;
  if (state === "joining" || state === "joined") return;
  const room = ui.room.value.trim();
  const name = ui.name.value.trim();
  const url = defaultSignalingUrl();
  // A guest token can be fetched again when it expires; a link's can't be renewed here.
  const renew = linkToken
    ? null
    : async (/** @type {{room: string, name: string}} */ current) => ({ token: await fetchGuestToken(current.room, current.name), url });
  const credentials = linkToken
    ? { token: linkToken, url, renew }
    : fetchGuestToken(room, name).then((token) => ({ token, url, renew }));
  await joinRoom(call, credentials, {
    onJoined() {
      if (!linkToken) history.replaceState(null, "", `?room=${encodeURIComponent(call.room)}`);
      try {
        localStorage.setItem("parlor.name", name);
      } catch {
        // Storage may be unavailable; remembering the name is only a convenience.
      }
    },
  });
}

function init() {
  const params = new URLSearchParams(location.search);
  linkToken = params.get("token") || null;
  ui.room.value = params.get("room") ?? "";
  let savedName = "";
  try {
    savedName = localStorage.getItem("parlor.name") ?? "";
  } catch {
    // Storage may be unavailable.
  }
  ui.name.value = params.get("name") ?? savedName;
  if (linkToken) {
    // The token names the room and the identity; the fields are only for show.
    ui.room.required = false;
    ui.name.required = false;
    ui.tokenNote.hidden = false;
  }

  ui.form.addEventListener("submit", onJoin);
  configureCall(call, { onState });
  clearError(call);
  (ui.room.value ? ui.name : ui.room).focus();
}

init();
