// @ts-check
// What can be done to a message: edit, delete, react; reactions arriving live; and the
// message list's clicks, keys and paging on scroll.

import { closestTarget } from "../shared/dom.js";
import { setReply } from "./composer.js";
import { openPicker } from "./emoji.js";
import { LOAD_OLDER_PX, loadNewer, loadOlder, mergeMessage } from "./history.js";
import { showChatError } from "./main-pane.js";
import { renderMessages, renderUnreadBar } from "./message-view.js";
import { pathFor } from "./route.js";
import { openThreadOf } from "./threads.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * @param {ChatApp} app
 * @param {string} messageId
 * @param {string} content
 */
export async function saveEdit(app, messageId, content) {
  const { chat, ui, api } = app;
  const channelId = chat.channelId;
  const ch = chat.channels.get(channelId);
  const old = ch?.messages.get(messageId);
  chat.editing = null;
  if (!old || !content.trim() || content === old.content) {
    renderMessages(app);
    return;
  }
  try {
    const m = await api("PATCH", `/channels/${channelId}/messages/${messageId}`, { content });
    mergeMessage(app, ch, m);
  } catch (error) {
    showChatError(app, `Could not edit: ${error.message}`, error.code);
  }
  renderMessages(app);
  ui.input.focus();
}

/**
 * @param {ChatApp} app
 * @param {string} messageId
 */
export async function deleteMessage(app, messageId) {
  const { chat, api } = app;
  const channelId = chat.channelId;
  try {
    await api("DELETE", `/channels/${channelId}/messages/${messageId}`);
    const ch = chat.channels.get(channelId);
    if (ch) {
      ch.messages.delete(messageId);
      ch.deleted.add(messageId);
    }
    renderMessages(app);
  } catch (error) {
    showChatError(app, `Could not delete: ${error.message}`, error.code);
  }
}

/**
 * @param {ChatApp} app
 * @param {string} messageId
 * @param {string} emoji
 */
export async function toggleReaction(app, messageId, emoji) {
  const { chat, api } = app;
  const channelId = chat.channelId;
  const m = chat.channels.get(channelId)?.messages.get(messageId);
  if (!m) return;
  const mine = m.reactions.find((r) => r.emoji === emoji)?.me;
  const path = `/channels/${channelId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}/@me`;
  try {
    await api(mine ? "DELETE" : "PUT", path);
  } catch (error) {
    showChatError(app, `Could not react: ${error.message}`, error.code);
  }
}

/**
 * @param {ChatApp} app
 * @param {any} d the reaction event
 * @param {number} delta +1 or -1
 */
export function applyReaction(app, d, delta) {
  const { chat } = app;
  const m = chat.channels.get(d.channel_id)?.messages.get(d.message_id);
  if (!m) return;
  let r = m.reactions.find((x) => x.emoji === d.emoji);
  if (!r) {
    if (delta < 0) return;
    r = { emoji: d.emoji, count: 0, me: false };
    m.reactions.push(r);
  }
  r.count = Math.max(0, r.count + delta);
  if (d.user_id === chat.user?.id) r.me = delta > 0;
  m.reactions = m.reactions.filter((x) => x.count > 0);
  if (d.channel_id === chat.channelId) renderMessages(app);
}

/**
 * The message list: paging on scroll, and each message's actions (react, reply, edit,
 * delete) and edit box.
 * @param {ChatApp} app
 */
export function wireMessages(app) {
  const { chat, ui } = app;
  ui.scroller.addEventListener("scroll", () => {
    const s = ui.scroller;
    if (s.scrollTop < LOAD_OLDER_PX) loadOlder(app);
    if (s.scrollHeight - s.scrollTop - s.clientHeight < LOAD_OLDER_PX) loadNewer(app);
    renderUnreadBar(app);
  });
  ui.messages.addEventListener("keydown", (event) => {
    const spoiler = closestTarget(event, ".spoiler");
    if (spoiler && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      spoiler.classList.add("shown");
    }
  });
  ui.unreadBar.addEventListener("click", () => {
    ui.messages.querySelector(".message.first-unread")?.scrollIntoView({ block: "start" });
    renderUnreadBar(app);
  });
  ui.messages.addEventListener("click", (event) => {
    const spoiler = closestTarget(event, ".spoiler");
    if (spoiler) {
      spoiler.classList.add("shown");
      return;
    }
    const ref = closestTarget(event, ".reply-ref");
    if (ref) {
      chat.messageEls.get(ref.dataset.replyTo)?.scrollIntoView({ block: "center" });
      return;
    }
    const button = closestTarget(event, "button[data-action]");
    if (!button) return;
    const el = /** @type {HTMLElement} */ (button.closest(".message"));
    const id = el.dataset.messageId;
    switch (button.dataset.action) {
      case "react":
        toggleReaction(app, id, button.dataset.emoji);
        break;
      case "link":
        copyMessageLink(button, pathFor(chat.guildId, chat.channelId, id));
        break;
      case "thread":
        openThreadOf(app, id);
        break;
      case "pick-reaction":
        openPicker(app, button, (emoji) => toggleReaction(app, id, emoji));
        break;
      case "reveal":
        chat.revealed.add(id);
        renderMessages(app);
        break;
      case "reply":
        setReply(app, { id, authorId: el.dataset.authorId });
        ui.input.focus();
        break;
      case "edit":
        chat.editing = id;
        renderMessages(app);
        break;
      case "delete":
        // A second click within 3 s confirms.
        if (button.dataset.armed) {
          deleteMessage(app, id);
        } else {
          button.dataset.armed = "true";
          button.textContent = "Delete?";
          setTimeout(() => {
            delete button.dataset.armed;
            button.textContent = "Delete";
          }, 3_000);
        }
        break;
      default:
        break;
    }
  });
  ui.messages.addEventListener("keydown", (event) => {
    const input = /** @type {HTMLTextAreaElement | null} */ (closestTarget(event, ".edit-input"));
    if (!input || event.isComposing || event.keyCode === 229) return;
    const id = /** @type {HTMLElement} */ (input.closest(".message")).dataset.messageId;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      saveEdit(app, id, input.value);
    } else if (event.key === "Escape") {
      chat.editing = null;
      renderMessages(app);
      ui.input.focus();
    }
  });
}

/**
 * Puts a message's address on the clipboard and says so on its button.
 * @param {HTMLElement} button
 * @param {string} path
 */
async function copyMessageLink(button, path) {
  try {
    await navigator.clipboard.writeText(`${location.origin}${path}`);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => (button.textContent = "Link"), 2_000);
}
