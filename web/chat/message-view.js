// @ts-check
// The message list: each message (author, time, text, files, reactions, actions) rendered
// from the shown channel's messages, reusing elements, with the scroll position kept.
// User text goes in as text, never as markup.

import { h } from "../shared/dom.js";
import { dmName } from "./dms.js";
import { renderMarkdown } from "./markdown.js";
import { nameOf } from "./members.js";
import { blocked } from "./friends.js";
import { threadOf } from "./threads.js";
import { firstUnread, mentionsMe } from "./reads.js";
import { DM_KINDS, PERM, compareIds, currentGuild, findChannel, hasPerm } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */
/** @typedef {import("./state.js").ChannelState} ChannelState */

/** Consecutive messages of one author this close together share one header. */
const GROUP_WINDOW_MS = 7 * 60_000;

/**
 * @param {number} ms
 */
export function formatTime(ms) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return `Today at ${time}`;
  if (d.toDateString() === yesterday.toDateString()) return `Yesterday at ${time}`;
  return `${d.toLocaleDateString()} ${time}`;
}

/** @param {ChatApp} app */
export function renderHistoryStatus(app) {
  const { chat, ui } = app;
  const ch = chat.channels.get(chat.channelId);
  const channel = findChannel(app, chat.channelId).channel;
  let text = "";
  if (!ch || ch.loading) text = "Loading messages…";
  else if (ch.failed && !ch.loaded) text = "Could not load messages.";
  else if (ch.loadingOlder) text = "Loading older messages…";
  else if (ch.loaded && !ch.hasMore) {
    text = DM_KINDS.has(channel?.kind)
      ? `This is the start of your conversation with ${dmName(app, channel)}.`
      : `This is the start of #${channel?.name ?? "this channel"}.`;
  }
  ui.historyStatus.textContent = text;
  ui.historyStatus.dataset.state = ch?.loaded && !ch.hasMore ? "start" : ch?.loading || ch?.loadingOlder ? "loading" : "";
}

/**
 * Brings the message list up to date with the shown channel's messages, in id order,
 * reusing elements. Keeps the view at the bottom if it was there; `keepOffset` keeps it
 * where it was after older messages went in above.
 * @param {ChatApp} app
 * @param {{toBottom?: boolean, keepOffset?: boolean, keepTop?: boolean}} [options]
 */
export function renderMessages(app, { toBottom = false, keepOffset = false, keepTop = false } = {}) {
  const { chat, ui } = app;
  const s = ui.scroller;
  const wasAtBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  const fromBottom = s.scrollHeight - s.scrollTop;
  if (chat.renderedChannel !== chat.channelId) {
    ui.messages.replaceChildren();
    chat.messageEls.clear();
    chat.renderedChannel = chat.channelId;
  }
  const ch = chat.channels.get(chat.channelId);
  const messages = ch ? [...ch.messages.values()].sort((a, b) => compareIds(a.id, b.id)) : [];
  const wanted = new Set(messages.map((m) => m.id));
  for (const [id, el] of chat.messageEls) {
    if (!wanted.has(id)) {
      el.remove();
      chat.messageEls.delete(id);
    }
  }
  let cursor = ui.messages.firstElementChild;
  let previous = null;
  const unreadId = firstUnread(app, messages);
  for (const m of messages) {
    const continued =
      m.id !== unreadId &&
      previous !== null &&
      previous.author_id === m.author_id &&
      !m.reply_to &&
      m.created_at - previous.created_at < GROUP_WINDOW_MS;
    let el = chat.messageEls.get(m.id);
    if (!el) {
      el = h("li", { class: "message", dataset: { messageId: m.id } });
      chat.messageEls.set(m.id, el);
    }
    updateMessage(app, el, m, continued, ch);
    el.classList.toggle("mentioned", mentionsMe(app, m));
    el.classList.toggle("first-unread", m.id === unreadId);
    if (el === cursor) cursor = cursor.nextElementSibling;
    else ui.messages.insertBefore(el, cursor);
    previous = m;
  }
  renderHistoryStatus(app);
  // With pages still to come below (after a jump), the reader stays where they are.
  if (keepTop) return;
  if ((toBottom || wasAtBottom) && !ch?.hasNewer) s.scrollTop = s.scrollHeight;
  else if (keepOffset) s.scrollTop = s.scrollHeight - fromBottom;
  renderUnreadBar(app);
}

/**
 * The "new messages" bar over the list while the first unread message is above the view;
 * it jumps there.
 * @param {ChatApp} app
 */
export function renderUnreadBar(app) {
  const { ui } = app;
  const first = /** @type {HTMLElement | null} */ (ui.messages.querySelector(".message.first-unread"));
  const above = first !== null && first.offsetTop < ui.scroller.scrollTop;
  ui.unreadBar.hidden = !above;
  if (above) {
    const m = app.chat.channels.get(app.chat.channelId)?.messages.get(first.dataset.messageId);
    ui.unreadBarText.textContent = m ? `New messages since ${formatTime(m.created_at)}` : "New messages";
  }
}

/**
 * @param {ChatApp} app
 * @param {HTMLElement & {renderKey?: string}} el
 * @param {any} m the message
 * @param {boolean} continued
 * @param {ChannelState} ch
 */
function updateMessage(app, el, m, continued, ch) {
  const { chat } = app;
  const mine = m.author_id === chat.user?.id;
  const editing = chat.editing === m.id;
  const author = nameOf(app, m.author_id);
  const replied = m.reply_to ? ch.messages.get(m.reply_to) : null;
  const key = JSON.stringify([
    m.unread_by ?? null,
    blocked(app, m.author_id) && !chat.revealed.has(m.id),
    m.content,
    m.edited_at,
    author,
    continued,
    editing,
    m.reactions,
    m.attachments?.map((a) => a.id),
    m.reply_to,
    replied ? [replied.content, nameOf(app, replied.author_id)] : null,
    threadOf(app, m.id)?.name ?? null,
  ]);
  if (el.renderKey === key) return;
  el.renderKey = key;
  el.dataset.authorId = m.author_id;
  el.classList.toggle("continued", continued);
  el.classList.toggle("mine", mine);
  el.classList.toggle("editing", editing);

  const parts = [];
  if (m.reply_to) {
    parts.push(
      h(
        "div",
        { class: "reply-ref", dataset: { replyTo: m.reply_to } },
        h("span", { class: "reply-arrow", "aria-hidden": "true", text: "↱" }),
        replied
          ? [h("b", { text: nameOf(app, replied.author_id) }), " ", h("span", { class: "reply-snippet", text: replied.content.slice(0, 120) })]
          : h("i", { text: "Original message not loaded" }),
      ),
    );
  }
  parts.push(
    h(
      "div",
      { class: "message-header" },
      h("span", { class: "author", text: author }),
      h("time", { class: "timestamp", datetime: new Date(m.created_at).toISOString(), title: new Date(m.created_at).toLocaleString(), text: formatTime(m.created_at) }),
    ),
  );
  if (editing) {
    const input = h("textarea", { class: "edit-input", rows: 1, maxlength: 4000, "aria-label": "Edit message" });
    input.value = m.content;
    parts.push(input, h("div", { class: "edit-hint", text: "Enter to save · Escape to cancel" }));
    queueMicrotask(() => {
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    });
  } else {
    const hidden = blocked(app, m.author_id) && !chat.revealed.has(m.id);
    parts.push(
      h(
        "div",
        { class: "message-body" },
        hidden
          ? h("span", { class: "blocked-message" }, "Blocked message — ", h("button", { type: "button", class: "link", dataset: { action: "reveal" }, text: "show" }))
          : h("span", { class: "content", dataset: { text: m.content } }, ...renderMarkdown(m.content)),
        m.edited_at ? h("span", { class: "edited", title: `Edited ${new Date(m.edited_at).toLocaleString()}`, text: "(edited)" }) : null,
        m.unread_by > 0 ? h("span", { class: "unread-by", title: `${m.unread_by} ${m.unread_by === 1 ? "person has" : "people have"} not read this yet`, text: String(m.unread_by) }) : null,
      ),
    );
  }
  if (m.attachments?.length && !editing) parts.push(renderAttachments(m.attachments));
  const thread = threadOf(app, m.id);
  if (thread) {
    parts.push(h("button", { type: "button", class: "thread-link", dataset: { threadId: thread.id }, title: "Open the thread" }, `🧵 ${thread.name}`));
  }
  if (m.reactions?.length) {
    parts.push(
      h(
        "div",
        { class: "reactions" },
        m.reactions.map((r) =>
          h(
            "button",
            { type: "button", class: `reaction${r.me ? " me" : ""}`, dataset: { action: "react", emoji: r.emoji }, "aria-pressed": String(Boolean(r.me)) },
            `${r.emoji} ${r.count}`,
          ),
        ),
      ),
    );
  }
  const guild = currentGuild(app);
  const canDelete = mine || (guild && hasPerm(guild.permissions, PERM.MANAGE_MESSAGES));
  parts.push(
    h(
      "div",
      { class: "message-actions" },
      QUICK_REACTIONS.map((emoji) =>
        h("button", { type: "button", class: "action react-btn", dataset: { action: "react", emoji }, title: `React with ${emoji}`, text: emoji }),
      ),
      h("button", { type: "button", class: "action more-reactions", dataset: { action: "pick-reaction", opensPicker: "" }, title: "Add a reaction", "aria-label": "Add a reaction", text: "☺+" }),
      h("button", { type: "button", class: "action reply-btn", dataset: { action: "reply" }, text: "Reply" }),
      guild ? h("button", { type: "button", class: "action thread-btn", dataset: { action: "thread" }, text: "Thread" }) : null,
      h("button", { type: "button", class: "action link-btn", dataset: { action: "link" }, title: "Copy a link to this message", text: "Link" }),
      mine ? h("button", { type: "button", class: "action edit-btn", dataset: { action: "edit" }, text: "Edit" }) : null,
      canDelete ? h("button", { type: "button", class: "action delete-btn", dataset: { action: "delete" }, text: "Delete" }) : null,
    ),
  );
  el.replaceChildren(...parts);
}

/** The reactions a message's action bar offers (any emoji works through the API). */
const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];

/**
 * @param {number} bytes
 */
export function formatSize(bytes) {
  if (!(bytes >= 0)) return "";
  if (bytes >= 1_048_576) return `${(bytes / 1_048_576).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

/**
 * A message's files: images (their thumbnails) linking to the file, or download links.
 * @param {any[]} attachments
 */
function renderAttachments(attachments) {
  // The server hands out site-relative, signed URLs; anything else is not linked.
  const safe = (url) => (typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : null);
  return h(
    "div",
    { class: "attachments" },
    attachments.map((a) => {
      const url = safe(a.url);
      const thumb = safe(a.thumbnail_url);
      const image = /^image\//.test(a.content_type ?? "");
      const src = thumb ?? (image ? url : null);
      if (src && url) {
        // The thumbnail fits in 320 × 320: its size, known up front, keeps the list from jumping.
        const scale = a.width > 0 && a.height > 0 ? Math.min(1, 320 / a.width, 320 / a.height) : 0;
        return h(
          "a",
          { class: "attachment image", href: url, target: "_blank", rel: "noopener", title: a.filename },
          h("img", {
            src,
            alt: a.filename,
            width: scale ? String(Math.max(1, Math.round(a.width * scale))) : null,
            height: scale ? String(Math.max(1, Math.round(a.height * scale))) : null,
          }),
        );
      }
      const size = formatSize(a.size);
      return h(
        "a",
        { class: "attachment file", href: url, download: url ? a.filename : null, rel: "noopener" },
        h("span", { class: "attachment-name", text: a.filename }),
        h("span", { class: "attachment-size", text: size }),
      );
    }),
  );
}
