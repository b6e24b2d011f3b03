// @ts-check
// The composer: files picked, pasted or dropped (uploaded at once, sent with the next
// message), sending, replying, and telling the channel we are typing.

import { closestTarget, h } from "../shared/dom.js";
import { mergeMessage } from "./history.js";
import { showChatError } from "./main-pane.js";
import { nameOf } from "./members.js";
import { formatSize, renderMessages } from "./message-view.js";
import { channelState, compareIds } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** The typing endpoint is called at most this often while someone types. */
const TYPING_EVERY_MS = 8_000;

/**
 * Uploads files for the shown channel; they go out with the next message.
 * @param {ChatApp} app
 * @param {File[]} files
 */
export function addFiles(app, files) {
  const { chat, api } = app;
  const channelId = chat.channelId;
  if (!channelId || chat.view !== "text") return;
  for (const file of files) {
    const name = file.name || `pasted.${(file.type.split("/")[1] || "bin").replace(/[^a-z0-9]/gi, "")}`;
    const item = { key: ++chat.uploadKey, channelId, name, size: file.size, status: "uploading", attachment: null, promise: null };
    item.promise = api("POST", `/channels/${channelId}/attachments?filename=${encodeURIComponent(name)}`, file)
      .then((attachment) => {
        item.attachment = attachment;
        item.status = "done";
      })
      .catch((error) => {
        item.status = "failed";
        showChatError(app, `Could not upload ${name}: ${error.message}`, error.code);
      })
      .finally(() => renderPending(app));
    chat.pending.push(item);
  }
  renderPending(app);
}

/**
 * @param {ChatApp} app
 * @param {number} key
 */
export function removePending(app, key) {
  const { chat } = app;
  chat.pending = chat.pending.filter((p) => p.key !== key);
  renderPending(app);
}

/**
 * The files waiting to go with the next message in the shown channel.
 * @param {ChatApp} app
 */
export function renderPending(app) {
  const { chat, ui } = app;
  const items = chat.pending.filter((p) => p.channelId === chat.channelId);
  ui.pendingList.hidden = items.length === 0;
  ui.pendingList.replaceChildren(
    ...items.map((p) =>
      h(
        "li",
        { class: `pending ${p.status}`, dataset: { key: String(p.key), status: p.status } },
        h("span", { class: "attachment-name", text: p.name }),
        h("span", { class: "attachment-size", text: p.status === "uploading" ? "Uploading…" : p.status === "failed" ? "Failed" : formatSize(p.size) }),
        h("button", { type: "button", class: "link remove-pending", dataset: { key: String(p.key) }, "aria-label": `Remove ${p.name}`, text: "✕" }),
      ),
    ),
  );
}

/** @param {ChatApp} app */
export async function sendMessage(app) {
  const { chat, ui, api } = app;
  const channelId = chat.channelId;
  const content = ui.input.value;
  const files = chat.pending.filter((p) => p.channelId === channelId && p.status !== "failed");
  if (!channelId || (!content.trim() && files.length === 0)) return;
  const body = { content: content.trim() ? content : "" };
  if (chat.replyTo) body.reply_to = chat.replyTo.id;
  ui.input.value = "";
  autosize(app);
  setReply(app, null);
  chat.typingSentAt.delete(channelId);
  chat.pending = chat.pending.filter((p) => !files.includes(p));
  renderPending(app);
  try {
    // Files still uploading are waited for; ones that failed are left out.
    await Promise.all(files.map((p) => p.promise));
    const ids = files.filter((p) => p.status === "done").map((p) => p.attachment.id);
    if (ids.length) body.attachments = ids;
    else if (!body.content) return;
    const m = await api("POST", `/channels/${channelId}/messages`, body);
    // The event may come first or later; by id it shows once either way.
    const ch = channelState(app, channelId);
    if (ch.loaded || ch.loading) mergeMessage(app, ch, m);
    if (channelId === chat.channelId) renderMessages(app, { toBottom: true });
  } catch (error) {
    if (!ui.input.value && channelId === chat.channelId) {
      ui.input.value = content;
      autosize(app);
    }
    // The uploads stay unclaimed: put them back to send again.
    chat.pending.unshift(...files.filter((p) => p.status === "done" && !chat.pending.includes(p)));
    renderPending(app);
    showChatError(app, `Could not send: ${error.message}`, error.code);
  }
}

/**
 * Tells the channel we are typing, at most every 8 s.
 * @param {ChatApp} app
 */
export function noteTyping(app) {
  const { chat, ui, api } = app;
  const channelId = chat.channelId;
  if (!channelId || !ui.input.value.trim()) return;
  const last = chat.typingSentAt.get(channelId) ?? 0;
  if (Date.now() - last < TYPING_EVERY_MS) return;
  chat.typingSentAt.set(channelId, Date.now());
  api("POST", `/channels/${channelId}/typing`).catch((error) => {
    console.warn("parlor chat: typing", error.code);
  });
}

/**
 * @param {ChatApp} app
 * @param {{id: string, authorId: string} | null} target
 */
export function setReply(app, target) {
  const { chat, ui } = app;
  chat.replyTo = target;
  ui.replyBanner.hidden = !target;
  ui.replyName.textContent = target ? nameOf(app, target.authorId) : "";
}

/** @param {ChatApp} app */
export function autosize(app) {
  const { ui } = app;
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 240)}px`;
}

/**
 * The composer: sending, replying, editing the last message, typing, and files from the
 * attach button, pasting and dropping.
 * @param {ChatApp} app
 */
export function wireComposer(app) {
  const { chat, ui } = app;
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage(app);
  });
  ui.input.addEventListener("keydown", (event) => {
    // Not while an input method (Korean, Japanese, ...) is composing a character.
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendMessage(app);
    } else if (event.key === "ArrowUp" && !ui.input.value) {
      // Edit the last message of ours, as Discord does.
      const ch = chat.channels.get(chat.channelId);
      const mine = ch && [...ch.messages.values()].filter((m) => m.author_id === chat.user?.id).sort((a, b) => compareIds(b.id, a.id))[0];
      if (mine) {
        event.preventDefault();
        chat.editing = mine.id;
        renderMessages(app);
      }
    } else if (event.key === "Escape" && chat.replyTo) {
      setReply(app, null);
    }
  });
  ui.input.addEventListener("input", () => {
    autosize(app);
    noteTyping(app);
  });
  ui.replyCancel.addEventListener("click", () => setReply(app, null));

  // Files: the attach button, pasting and dropping.
  ui.attachBtn.addEventListener("click", () => ui.fileInput.click());
  ui.fileInput.addEventListener("change", () => {
    addFiles(app, [...ui.fileInput.files]);
    ui.fileInput.value = "";
  });
  ui.input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    event.preventDefault();
    addFiles(app, files);
  });
  ui.textView.addEventListener("dragover", (event) => {
    if (!event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  ui.textView.addEventListener("drop", (event) => {
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length === 0) return;
    event.preventDefault();
    addFiles(app, files);
  });
  ui.pendingList.addEventListener("click", (event) => {
    const button = closestTarget(event, ".remove-pending");
    if (button) removePending(app, Number(button.dataset.key));
  });
}
