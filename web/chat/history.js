// @ts-check
// Message history: the latest page of a channel, older pages on scroll-up, newer pages after
// a jump (a search result), and catching up after a refused resume. Messages are kept by id,
// so none shows twice.

import { openChannel, openLinked, selectGuild } from "./guilds.js";
import { showChatError } from "./main-pane.js";
import { renderHistoryStatus, renderMessages } from "./message-view.js";
import { markRead, noteUnseen, seeing } from "./reads.js";
import { renderChannels } from "./sidebar.js";
import { DM_HOME, DM_KINDS, channelState, compareIds, findChannel, noteDmActivity } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */
/** @typedef {import("./state.js").ChannelState} ChannelState */

/** Messages per history page. */
const PAGE_SIZE = 50;

/** When history is within this many pixels of the top, older messages are loaded. */
export const LOAD_OLDER_PX = 150;

/**
 * Keeps a message unless it is stale; returns whether it was new.
 * @param {ChatApp} app
 * @param {ChannelState} ch
 * @param {any} m the message
 */
export function mergeMessage(app, ch, m) {
  const { stats } = app;
  if (ch.deleted.has(m.id)) return false;
  const old = ch.messages.get(m.id);
  if (old) stats.duplicateMessages += 1;
  // A page fetched before an edit must not undo it.
  if (old && (old.edited_at ?? 0) > (m.edited_at ?? 0)) return false;
  const reactions = (m.reactions ?? old?.reactions ?? []).map((r) => ({
    emoji: r.emoji,
    count: r.count,
    // Events leave `me` out; keep what we knew.
    me: r.me ?? old?.reactions?.find((o) => o.emoji === r.emoji)?.me ?? false,
  }));
  ch.messages.set(m.id, { ...m, reactions });
  if (!ch.oldest || compareIds(m.id, ch.oldest) < 0) ch.oldest = m.id;
  if (!ch.newest || compareIds(m.id, ch.newest) > 0) ch.newest = m.id;
  return !old;
}

/**
 * Loads the latest page of a channel.
 * @param {ChatApp} app
 * @param {string} channelId
 */
export async function loadLatest(app, channelId) {
  const { chat, api } = app;
  const ch = channelState(app, channelId);
  if (ch.loading) return;
  ch.loading = true;
  ch.failed = false;
  renderHistoryStatus(app);
  try {
    const page = await api("GET", `/channels/${channelId}/messages?limit=${PAGE_SIZE}`);
    for (const m of page) mergeMessage(app, ch, m);
    ch.hasMore = page.length === PAGE_SIZE;
    ch.loaded = true;
  } catch (error) {
    ch.failed = true;
    showChatError(app, `Could not load messages: ${error.message}`, error.code);
  } finally {
    ch.loading = false;
  }
  if (channelId === chat.channelId) {
    renderMessages(app, { toBottom: true });
    fillViewport(app);
  }
  if (seeing(app, channelId)) markRead(app, channelId);
}

/**
 * Loads the page before the oldest message shown.
 * @param {ChatApp} app
 */
export async function loadOlder(app) {
  const { chat, api } = app;
  const channelId = chat.channelId;
  const ch = chat.channels.get(channelId);
  if (!ch?.loaded || !ch.hasMore || ch.loadingOlder || !ch.oldest) return;
  ch.loadingOlder = true;
  renderHistoryStatus(app);
  try {
    const page = await api("GET", `/channels/${channelId}/messages?before=${ch.oldest}&limit=${PAGE_SIZE}`);
    for (const m of page) mergeMessage(app, ch, m);
    ch.hasMore = page.length === PAGE_SIZE;
  } catch (error) {
    showChatError(app, `Could not load older messages: ${error.message}`, error.code);
  } finally {
    ch.loadingOlder = false;
  }
  if (channelId === chat.channelId) {
    renderMessages(app, { keepOffset: true });
    fillViewport(app);
  }
}

/**
 * Loads older pages while the history does not fill the pane (nothing to scroll yet).
 * @param {ChatApp} app
 */
function fillViewport(app) {
  const { chat, ui } = app;
  const ch = chat.channels.get(chat.channelId);
  const s = ui.scroller;
  if (ch?.loaded && ch.hasMore && !ch.loadingOlder && s.scrollHeight <= s.clientHeight + LOAD_OLDER_PX) {
    loadOlder(app);
  }
}

/**
 * After a refused resume: pages every open channel forward from the newest message it has,
 * merging by id with what arrives live meanwhile (docs/chat-api.md, "Catching up").
 * @param {ChatApp} app
 */
export async function catchUp(app) {
  const { chat, api, stats } = app;
  for (const [channelId, ch] of [...chat.channels]) {
    if (!findChannel(app, channelId).channel) {
      chat.channels.delete(channelId);
      continue;
    }
    if (!ch.loaded) continue;
    if (!ch.newest) {
      ch.loaded = false;
      await loadLatest(app, channelId);
      continue;
    }
    let after = ch.newest;
    let fresh = 0;
    try {
      for (;;) {
        const page = await api("GET", `/channels/${channelId}/messages?after=${after}&limit=100`);
        if (page.length === 0) break;
        page.reverse(); // oldest first
        for (const m of page) {
          if (mergeMessage(app, ch, m)) {
            fresh += 1;
            stats.caughtUp += 1;
            if (channelId !== chat.channelId) noteUnseen(app, m);
            if (DM_KINDS.has(findChannel(app, channelId).channel?.kind)) noteDmActivity(app, channelId, m.id);
          }
        }
        after = page[page.length - 1].id;
      }
      ch.hasNewer = false;
      ch.liveBuffer = [];
    } catch (error) {
      showChatError(app, `Could not catch up on messages: ${error.message}`, error.code);
    }
    if (fresh && channelId === chat.channelId) renderMessages(app);
  }
  renderChannels(app);
}

/**
 * After a jump into history: loads the page after the newest message shown.
 * @param {ChatApp} app
 */
export async function loadNewer(app) {
  const { chat, api } = app;
  const channelId = chat.channelId;
  const ch = chat.channels.get(channelId);
  if (!ch?.loaded || !ch.hasNewer || ch.loadingNewer || !ch.newest) return;
  ch.loadingNewer = true;
  try {
    const page = await api("GET", `/channels/${channelId}/messages?after=${ch.newest}&limit=${PAGE_SIZE}`);
    for (const m of page) mergeMessage(app, ch, m);
    if (page.length < PAGE_SIZE) {
      // Caught up with the present: what came live meanwhile goes in, and live goes on.
      ch.hasNewer = false;
      for (const m of ch.liveBuffer) mergeMessage(app, ch, m);
      ch.liveBuffer = [];
    }
  } catch (error) {
    showChatError(app, `Could not load newer messages: ${error.message}`, error.code);
  } finally {
    ch.loadingNewer = false;
  }
  if (channelId === chat.channelId) renderMessages(app, { keepTop: true });
}

/**
 * Opens what an address names: a guild, a channel, or a message shown in its channel.
 * False if the guild or channel is not one this user has.
 * @param {ChatApp} app
 * @param {{guildId: string, channelId: string | null, messageId: string | null}} linked
 */
export function followLink(app, { guildId, channelId, messageId }) {
  if (!openLinked(app, guildId, channelId)) return false;
  if (channelId && messageId) jumpToMessage(app, channelId, messageId);
  return true;
}

/**
 * Shows a channel around one of its messages (a search result), and marks the message.
 * @param {ChatApp} app
 * @param {string} channelId
 * @param {string} messageId
 */
export async function jumpToMessage(app, channelId, messageId) {
  const { chat, ui, api } = app;
  const { guild, channel } = findChannel(app, channelId);
  if (!channel) return;
  const home = guild ? guild.id : DM_HOME;
  let ch = chat.channels.get(channelId);
  const have = Boolean(ch?.messages.has(messageId));
  if (!have) {
    // A fresh history around the message; `loading` keeps openChannel from loading the latest.
    chat.channels.delete(channelId);
    ch = channelState(app, channelId);
    ch.loading = true;
  }
  chat.lastChannel.set(home, channelId);
  if (chat.guildId !== home) selectGuild(app, home);
  else if (chat.channelId !== channelId || chat.view !== "text") openChannel(app, channelId);
  if (!have) {
    try {
      const page = await api("GET", `/channels/${channelId}/messages?around=${messageId}&limit=${PAGE_SIZE}`);
      for (const m of page) mergeMessage(app, ch, m);
      ch.loaded = true;
      ch.hasMore = page.some((m) => compareIds(m.id, messageId) < 0);
      ch.hasNewer = true;
    } catch (error) {
      ch.failed = true;
      showChatError(app, `Could not load the message: ${error.message}`, error.code);
    } finally {
      ch.loading = false;
    }
  }
  if (chat.channelId !== channelId) return;
  renderMessages(app, { keepTop: true });
  const el = chat.messageEls.get(messageId);
  if (el) {
    el.scrollIntoView({ block: "center" });
    el.classList.add("highlight");
    setTimeout(() => el.classList.remove("highlight"), 3_000);
  }
  const s = ui.scroller;
  if (s.scrollHeight - s.scrollTop - s.clientHeight < LOAD_OLDER_PX) loadNewer(app);
}
