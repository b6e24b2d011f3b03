// Parlor room page: join a room by name with a guest token, or with the token of an invite
// link (?token=). The room itself (signaling, media, tiles, controls and the
// `window.parlor` test handle) is room.js, shared with the chat app's voice channels.

import { clearError, configureRoom, defaultSignalingUrl, fetchGuestToken, joinRoom } from "/room.js";

const $ = (selector) => document.querySelector(selector);

const ui = {
  joinView: $("#join-view"),
  roomView: $("#room-view"),
  form: $("#join-form"),
  room: $("#room"),
  name: $("#name"),
  tokenNote: $("#token-note"),
  joinBtn: $("#join-btn"),
  roomLabel: $("#room-label"),
};

/** The token from the page's ?token=, if any. */
let linkToken = null;

function onState(state) {
  document.body.dataset.state = state;
  const inRoom = state === "joined";
  ui.joinView.hidden = inRoom;
  ui.roomView.hidden = !inRoom;
  ui.roomLabel.hidden = !inRoom;
  ui.roomLabel.textContent = inRoom ? window.parlor.room : "";
  ui.joinBtn.disabled = state === "joining";
  ui.joinBtn.textContent = state === "joining" ? "Joining…" : "Join";
}

async function onJoin(event) {
  event.preventDefault();
  const { state } = window.parlor;
  if (state === "joining" || state === "joined") return;
  const room = ui.room.value.trim();
  const name = ui.name.value.trim();
  const url = defaultSignalingUrl();
  // A guest token can be fetched again when it expires; a link's can't be renewed here.
  const renew = linkToken
    ? null
    : async (current) => ({ token: await fetchGuestToken(current.room, current.name), url });
  const credentials = linkToken
    ? { token: linkToken, url, renew }
    : fetchGuestToken(room, name).then((token) => ({ token, url, renew }));
  await joinRoom(credentials, {
    onJoined() {
      if (!linkToken) history.replaceState(null, "", `?room=${encodeURIComponent(window.parlor.room)}`);
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
  configureRoom({ onState });
  clearError();
  (ui.room.value ? ui.name : ui.room).focus();
}

init();
