// @ts-check
// Threads in a side panel (docs/chat-api.md, "Threads"): a message's thread opens beside
// the channel, with its messages live and a composer of its own; starting one from a
// message names it after the message. A message with a thread shows a link to it.

import { closestTarget, h } from "../shared/dom.js";
import { showChatError } from "./main-pane.js";
import { renderMarkdown } from "./markdown.js";
import { nameOf } from "./members.js";
import { formatTime, renderMessages } from "./message-view.js";
import { compareIds, findChannel } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * The thread started from a message, if any.
 * @param {ChatApp} app
 * @param {string} messageId
 */
export function threadOf(app, messageId) {
  const { guild } = findChannel(app, app.chat.channelId);
  if (!guild) return null;
  for (const c of guild.channels.values()) if (c.kind === "thread" && c.starter_message_id === messageId) return c;
  return null;
}

/**
 * Opens a message's thread, starting it if there is none.
 * @param {ChatApp} app
 * @param {string} messageId
 */
export async function openThreadOf(app, messageId) {
  const { chat, api } = app;
  let thread = threadOf(app, messageId);
  if (!thread) {
    const m = chat.channels.get(chat.channelId)?.messages.get(messageId);
    const name = (m?.content || "Thread").replace(/\s+/g, " ").trim().slice(0, 40) || "Thread";
    try {
      thread = await api("POST", `/channels/${chat.channelId}/messages/${messageId}/threads`, { name });
    } catch (error) {
      // Someone else started it first: theirs is the one.
      thread = error.code === "thread_exists" ? threadOf(app, messageId) : null;
      if (!thread) return showChatError(app, `Could not start a thread: ${error.message}`, error.code);
    }
    findChannel(app, chat.channelId).guild?.channels.set(thread.id, thread);
  }
  await openThread(app, thread.id);
}

/**
 * @param {ChatApp} app
 * @param {string} threadId
 */
export async function openThread(app, threadId) {
  const { chat, api } = app;
  chat.threadId = threadId;
  chat.threadMessages = new Map();
  document.body.dataset.thread = "open";
  renderThread(app);
  try {
    const page = await api("GET", `/channels/${threadId}/messages?limit=100`);
    if (chat.threadId !== threadId) return;
    for (const m of page) chat.threadMessages.set(m.id, m);
  } catch (error) {
    showChatError(app, `Could not load the thread: ${error.message}`, error.code);
  }
  renderThread(app);
  app.ui.threadInput.focus();
}

/** @param {ChatApp} app */
export function closeThread(app) {
  const { chat } = app;
  chat.threadId = null;
  chat.threadMessages = new Map();
  delete document.body.dataset.thread;
  renderThread(app);
}

/**
 * A message for the open thread (live or sent).
 * @param {ChatApp} app
 * @param {any} m
 */
export function onThreadMessage(app, m) {
  const { chat } = app;
  if (m.channel_id !== chat.threadId) return;
  chat.threadMessages.set(m.id, m);
  renderThread(app);
}

/** @param {ChatApp} app */
function renderThread(app) {
  const { chat, ui } = app;
  ui.threadPanel.hidden = !chat.threadId;
  if (!chat.threadId) return;
  const thread = findChannel(app, chat.threadId).channel;
  ui.threadName.textContent = thread?.name ?? "Thread";
  const messages = [...chat.threadMessages.values()].sort((a, b) => compareIds(a.id, b.id));
  ui.threadMessages.replaceChildren(
    ...(messages.length
      ? messages.map((m) =>
          h(
            "li",
            { class: "thread-message", dataset: { messageId: m.id } },
            h("div", { class: "message-header" }, h("span", { class: "author", text: nameOf(app, m.author_id) }), h("time", { class: "timestamp", text: formatTime(m.created_at) })),
            h("span", { class: "content", dataset: { text: m.content } }, ...renderMarkdown(m.content)),
          ),
        )
      : [h("li", { class: "hint small thread-empty", text: "No replies yet. Start the conversation." })]),
  );
  ui.threadMessages.scrollTop = ui.threadMessages.scrollHeight;
}

/**
 * The thread panel: closing, sending, and links to threads in the message list.
 * @param {ChatApp} app
 */
export function wireThreads(app) {
  const { chat, ui, api } = app;
  ui.threadClose.addEventListener("click", () => closeThread(app));
  ui.threadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = ui.threadInput.value;
    if (!content.trim() || !chat.threadId) return;
    ui.threadInput.value = "";
    try {
      onThreadMessage(app, await api("POST", `/channels/${chat.threadId}/messages`, { content }));
    } catch (error) {
      ui.threadInput.value = content;
      showChatError(app, `Could not send: ${error.message}`, error.code);
    }
  });
  ui.messages.addEventListener("click", (event) => {
    const link = closestTarget(event, ".thread-link");
    if (link) openThread(app, link.dataset.threadId);
  });
  addEventListener("keydown", (event) => {
    if (event.key === "Escape" && chat.threadId && ui.threadPanel.contains(document.activeElement)) closeThread(app);
  });
}

/**
 * A thread was created or changed (`channel_create`/`channel_update`): links in the list
 * follow it.
 * @param {ChatApp} app
 */
export function onThreadChannel(app) {
  renderMessages(app);
  renderThread(app);
}
