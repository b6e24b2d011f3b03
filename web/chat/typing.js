// @ts-check
// Who is typing in the shown channel: typing events, their expiry, and the indicator.

import { h } from "../shared/dom.js";
import { nameOf } from "./members.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** How long a typing indicator lasts when the event does not say. */
const TYPING_MS = 10_000;

/**
 * @param {ChatApp} app
 * @param {any} d the typing_start event
 */
export function onTyping(app, d) {
  const { chat } = app;
  if (d.user_id === chat.user?.id) return;
  const lasts = d.expires_at && d.timestamp ? d.expires_at - d.timestamp : TYPING_MS;
  let typers = chat.typing.get(d.channel_id);
  if (!typers) {
    typers = new Map();
    chat.typing.set(d.channel_id, typers);
  }
  typers.set(d.user_id, Date.now() + lasts);
  scheduleTypingExpiry(app);
  if (d.channel_id === chat.channelId) renderTyping(app);
}

/**
 * @param {ChatApp} app
 * @param {string} channelId
 * @param {string} userId
 */
export function clearTyper(app, channelId, userId) {
  const { chat } = app;
  const typers = chat.typing.get(channelId);
  if (typers?.delete(userId) && channelId === chat.channelId) renderTyping(app);
}

/** @param {ChatApp} app */
function scheduleTypingExpiry(app) {
  const { chat } = app;
  clearTimeout(chat.typingTimer);
  let next = Infinity;
  for (const typers of chat.typing.values()) for (const until of typers.values()) next = Math.min(next, until);
  if (next === Infinity) return;
  chat.typingTimer = setTimeout(() => {
    const now = Date.now();
    for (const [channelId, typers] of chat.typing) {
      for (const [userId, until] of typers) if (until <= now) typers.delete(userId);
      if (typers.size === 0) chat.typing.delete(channelId);
    }
    renderTyping(app);
    scheduleTypingExpiry(app);
  }, Math.max(0, next - Date.now()) + 20);
}

/** @param {ChatApp} app */
export function renderTyping(app) {
  const { chat, ui } = app;
  const typers = chat.typing.get(chat.channelId);
  const now = Date.now();
  const names = typers ? [...typers].filter(([, until]) => until > now).map(([id]) => nameOf(app, id)) : [];
  let parts = [];
  const b = (name) => h("b", { text: name });
  if (names.length === 1) parts = [b(names[0]), " is typing…"];
  else if (names.length === 2) parts = [b(names[0]), " and ", b(names[1]), " are typing…"];
  else if (names.length === 3) parts = [b(names[0]), ", ", b(names[1]), " and ", b(names[2]), " are typing…"];
  else if (names.length > 3) parts = ["Several people are typing…"];
  ui.typing.replaceChildren(...parts);
  ui.typing.classList.toggle("active", names.length > 0);
}
