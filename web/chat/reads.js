// @ts-check
// What is read and what calls for attention (docs/chat-api.md, "Read states,
// notifications and the inbox"): the server's read states at ready, unread channels and
// mention counts kept live, acks when a channel is seen (so the user's other devices clear
// too), the "new messages" divider, and desktop notifications for mentions, replies and
// DMs while the page is hidden, unless the user chose do-not-disturb.

import { h } from "../shared/dom.js";
import { followLink } from "./history.js";
import { nameOf } from "./members.js";
import { muteOf } from "./notify-menu.js";
import { enablePush } from "./push.js";
import { renderMessages as renderMessagesOf } from "./message-view.js";
import { DM_KINDS, compareIds, countsUnread, findChannel } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** Acks of one channel are sent at most this often. */
const ACK_EVERY_MS = 1500;

/**
 * The read states from `ready`: where each channel was read to, which have unread
 * messages, and how many mention the user.
 * @param {ChatApp} app
 * @param {any} readStates
 */
export function applyReadStates(app, readStates) {
  const { chat } = app;
  chat.unread.clear();
  chat.mentions.clear();
  for (const r of readStates?.channels ?? []) {
    chat.lastRead.set(r.channel_id, r.last_read_id);
    if (r.unread_count > 0 && !r.muted) chat.unread.add(r.channel_id);
    if (r.mention_count > 0) chat.mentions.set(r.channel_id, r.mention_count);
  }
}

/**
 * Whether a message calls on the user by name: a direct mention, `@everyone`/`@here`, or
 * a mention the server notified the user of (roles included).
 * @param {ChatApp} app
 * @param {any} m
 */
export function mentionsMe(app, m) {
  const { chat } = app;
  const me = chat.user?.id;
  return Boolean(me && m.author_id !== me && (m.mentions?.includes(me) || m.mention_everyone || chat.notifiedMentions.has(m.id)));
}

/**
 * A message by someone else arrived in a channel the user is not looking at: the channel
 * is unread; in a DM every message counts as a mention (guild mentions come with their
 * `notification_create`).
 * @param {ChatApp} app
 * @param {any} m
 */
export function noteUnseen(app, m) {
  const { chat } = app;
  const { channel } = findChannel(app, m.channel_id);
  if (!channel || m.author_id === chat.user?.id || !countsUnread(channel.kind)) return;
  // A channel that appeared after ready has no read state: read up to just before this.
  if (!chat.lastRead.has(m.channel_id)) chat.lastRead.set(m.channel_id, (BigInt(m.id) - 1n).toString());
  // A muted channel marks nothing unread (its mentions still count if it keeps them).
  const mute = muteOf(app, m.channel_id);
  if (mute.muted && !(mute.keepMentions && DM_KINDS.has(channel.kind))) return;
  chat.unread.add(m.channel_id);
  if (DM_KINDS.has(channel.kind)) bumpMention(app, m.channel_id);
}

/**
 * @param {ChatApp} app
 * @param {string} channelId
 */
function bumpMention(app, channelId) {
  const { chat } = app;
  chat.mentions.set(channelId, (chat.mentions.get(channelId) ?? 0) + 1);
}

/**
 * Whether the user is looking at this channel's newest messages now.
 * @param {ChatApp} app
 * @param {string} channelId
 */
export function seeing(app, channelId) {
  const { chat } = app;
  return channelId === chat.channelId && chat.view === "text" && document.visibilityState !== "hidden";
}

/**
 * The channel was seen: its badges clear, and its newest message is acked (at most every
 * ACK_EVERY_MS), so the user's other devices clear theirs.
 * @param {ChatApp} app
 * @param {string | null} channelId
 */
export function markRead(app, channelId) {
  const { chat } = app;
  if (!channelId) return;
  chat.unread.delete(channelId);
  chat.mentions.delete(channelId);
  const newest = chat.channels.get(channelId)?.newest;
  const read = chat.lastRead.get(channelId);
  if (!newest || (read && compareIds(newest, read) <= 0)) return;
  if (chat.ackTimers.has(channelId)) return;
  const wait = Math.max(0, (chat.ackedAt.get(channelId) ?? 0) + ACK_EVERY_MS - Date.now());
  chat.ackTimers.set(
    channelId,
    setTimeout(() => {
      chat.ackTimers.delete(channelId);
      sendAck(app, channelId);
    }, wait),
  );
}

/**
 * @param {ChatApp} app
 * @param {string} channelId
 */
async function sendAck(app, channelId) {
  const { chat, api } = app;
  const newest = chat.channels.get(channelId)?.newest;
  const read = chat.lastRead.get(channelId);
  if (!newest || (read && compareIds(newest, read) <= 0)) return;
  chat.ackedAt.set(channelId, Date.now());
  chat.lastRead.set(channelId, newest);
  try {
    await api("POST", `/channels/${channelId}/messages/${newest}/ack`);
  } catch (error) {
    console.warn("parlor chat: ack failed", error);
  }
}

/**
 * `message_ack`: the user read this far on some device.
 * @param {ChatApp} app
 * @param {any} d
 */
export function onMessageAck(app, d) {
  const { chat } = app;
  const read = chat.lastRead.get(d.channel_id);
  if (!read || compareIds(d.last_read_id, read) > 0) chat.lastRead.set(d.channel_id, d.last_read_id);
  const newest = chat.channels.get(d.channel_id)?.newest;
  if (!newest || compareIds(newest, d.last_read_id) <= 0) {
    chat.unread.delete(d.channel_id);
    chat.mentions.delete(d.channel_id);
  }
}

/**
 * `notification_create`: a mention, a reply or (at level "all") a message for the user.
 * Counts a guild mention, and shows a desktop notification while the page is hidden.
 * @param {ChatApp} app
 * @param {any} d
 */
export function onNotification(app, d) {
  const { chat } = app;
  const m = d.message;
  if (d.reason === "mention") chat.notifiedMentions.add(m.id);
  if (!seeing(app, m.channel_id) && d.guild_id && d.reason === "mention") bumpMention(app, m.channel_id);
  // The server notified: the settings allow it, mutes included.
  if (document.visibilityState === "hidden" || !document.hasFocus()) notifyDesktop(app, d);
}

/**
 * Shows a desktop notification, when the user allowed them and is not on do-not-disturb.
 * @param {ChatApp} app
 * @param {any} d
 */
function notifyDesktop(app, d) {
  const { chat } = app;
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
  if (chat.myPresence.status === "dnd") return;
  const m = d.message;
  const { guild, channel } = findChannel(app, m.channel_id);
  const author = nameOf(app, m.author_id);
  const where = guild ? `#${channel?.name ?? ""} · ${guild.name}` : "Direct message";
  const title = d.reason === "reply" ? `${author} replied (${where})` : `${author} (${where})`;
  const body = (m.content || (m.attachments?.length ? "Sent a file" : "")).slice(0, 200);
  const shown = { title, body, reason: d.reason, messageId: m.id, channelId: m.channel_id };
  try {
    const n = new Notification(title, { body, tag: m.id });
    n.onclick = () => {
      focus();
      followLink(app, { guildId: guild?.id ?? "@me", channelId: m.channel_id, messageId: m.id });
      n.close();
    };
    chat.shownNotifications.push(shown);
    if (chat.shownNotifications.length > 50) chat.shownNotifications.shift();
  } catch (error) {
    console.warn("parlor chat: could not show a notification", error);
  }
}

/**
 * How many mentions wait in these channels.
 * @param {ChatApp} app
 * @param {Iterable<string>} channelIds
 */
export function mentionsIn(app, channelIds) {
  let n = 0;
  for (const id of channelIds) n += app.chat.mentions.get(id) ?? 0;
  return n;
}

/**
 * Where the "new messages" divider goes in a channel: its first message by someone else
 * after what was read when the channel was opened; null if none.
 * @param {ChatApp} app
 * @param {any[]} messages oldest first
 */
export function firstUnread(app, messages) {
  const { chat } = app;
  const since = chat.unreadSince;
  if (!since || since.channelId !== chat.channelId) return null;
  return messages.find((m) => compareIds(m.id, since.after) > 0 && m.author_id !== chat.user?.id)?.id ?? null;
}

/**
 * Opening a channel: remembers where reading stopped, for the divider, before marking it
 * read.
 * @param {ChatApp} app
 * @param {string} channelId
 */
export function openedChannel(app, channelId) {
  const { chat } = app;
  const after = chat.lastRead.get(channelId);
  chat.unreadSince = chat.unread.has(channelId) && after ? { channelId, after } : null;
  markRead(app, channelId);
}

/**
 * A red pill with a count, for mentions.
 * @param {number} n
 */
export function mentionBadge(n) {
  return n > 0 ? h("span", { class: "mention-badge", "aria-label": `${n} mention${n === 1 ? "" : "s"}`, text: n > 99 ? "99+" : String(n) }) : null;
}

/**
 * The bar that asks for desktop notifications, until they are allowed or refused.
 * @param {ChatApp} app
 */
export function wireNotificationAsk(app) {
  const { ui } = app;
  const render = () => {
    ui.notifyAsk.hidden = typeof Notification === "undefined" || Notification.permission !== "default" || localStorage.getItem("parlor.chat.notify-dismissed") === "1";
  };
  ui.notifyEnable.addEventListener("click", async () => {
    if ((await Notification.requestPermission()) === "granted") enablePush(app);
    render();
  });
  ui.notifyDismiss.addEventListener("click", () => {
    localStorage.setItem("parlor.chat.notify-dismissed", "1");
    render();
  });
  render();
  // Allowed or refused elsewhere (the site settings): the bar follows.
  navigator.permissions
    ?.query({ name: "notifications" })
    .then((status) => status.addEventListener("change", render))
    .catch(() => {});
}

/** Read counts of a channel are fetched again at most this often. */
const UNREAD_BY_EVERY_MS = 1000;

/**
 * Someone read a channel (`channel_read`), or we posted in it: the "N unread" counts of
 * its shown messages are fetched again (the server counts, for DMs and small guilds),
 * at most once a second.
 * @param {ChatApp} app
 * @param {string} channelId
 */
export function refreshUnreadBy(app, channelId) {
  const { chat, api } = app;
  if (channelId !== chat.channelId || chat.unreadByTimers.has(channelId)) return;
  const ch = chat.channels.get(channelId);
  if (!ch?.loaded) return;
  chat.unreadByTimers.set(
    channelId,
    setTimeout(async () => {
      chat.unreadByTimers.delete(channelId);
      try {
        const page = await api("GET", `/channels/${channelId}/messages?limit=50`);
        for (const m of page) {
          const mine = ch.messages.get(m.id);
          if (mine && typeof m.unread_by === "number") mine.unread_by = m.unread_by;
        }
        if (channelId === chat.channelId) renderMessagesOf(app);
      } catch (error) {
        console.warn("parlor chat: read counts", error);
      }
    }, UNREAD_BY_EVERY_MS),
  );
}
