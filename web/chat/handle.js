// @ts-check
// `window.parlorChat`: the chat app's test and debugging handle. Its shape is what
// tests/browser/*.test.mjs read (tests/browser/README.md, "Hooks the tests use").

import { queryAll } from "../shared/dom.js";
import { dmName } from "./dms.js";
import { signOut } from "./signin.js";
import { dmList, inDmHome } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */
/** @typedef {ReturnType<typeof parlorChatHandle>} ParlorChatHandle */

/**
 * `window.parlorChat`, the test and debugging handle (tests/browser/README.md).
 * @param {ChatApp} app
 */
export function parlorChatHandle(app) {
  const { chat, ui, auth, api, gateway, stats } = app;
  return {
    get user() {
      return chat.user ? { ...chat.user } : null;
    },
    /** The chat WebSocket: idle, connecting, identifying, resuming, ready, reconnecting. */
    get wsState() {
      return gateway.state;
    },
    get sessionId() {
      return gateway.sessionId;
    },
    get seq() {
      return gateway.seq;
    },
    get accessExpiresAt() {
      return auth.expiresAt;
    },
    get guilds() {
      return chat.guildOrder.map((id) => {
        const g = chat.guilds.get(id);
        return { id, name: g.name, owner_id: g.owner_id, channels: [...g.channels.values()].map((c) => ({ ...c })) };
      });
    },
    get selectedGuildId() {
      return chat.guildId;
    },
    get selectedChannelId() {
      return chat.channelId;
    },
    /** What the main pane shows: text, voice, empty or none. */
    get view() {
      return ui.appView.dataset.pane ?? null;
    },
    get voiceChannelId() {
      return chat.voiceChannelId;
    },
    get stats() {
      return { ...stats };
    },
    /** The messages on screen, oldest first: {id, authorId, author, content, edited}. */
    messages() {
      return queryAll(ui.messages, ".message").map((el) => ({
        id: el.dataset.messageId,
        authorId: el.dataset.authorId,
        author: el.querySelector(".author")?.textContent ?? null,
        // The text as written (the page shows it formatted).
        content: /** @type {HTMLElement | null} */ (el.querySelector(".content"))?.dataset.text ?? null,
        edited: Boolean(el.querySelector(".edited")),
        unreadBy: Number(el.querySelector(".unread-by")?.textContent ?? 0),
        attachments: queryAll(el, ".attachment").map((a) => ({
          kind: a.classList.contains("image") ? "image" : "file",
          href: a.getAttribute("href"),
          name: a.querySelector(".attachment-name")?.textContent ?? a.querySelector("img")?.alt ?? null,
          size: a.querySelector(".attachment-size")?.textContent ?? null,
          naturalWidth: a.querySelector("img")?.naturalWidth ?? null,
        })),
      }));
    },
    typingText() {
      return ui.typing.textContent;
    },
    /** DMs and group DMs, most recent first: {id, kind, name, recipients}. */
    get dms() {
      return dmList(app).map((c) => ({ id: c.id, kind: c.kind, name: dmName(app, c), recipients: [...c.recipients] }));
    },
    /** The DM shown, if the DMs are. */
    get openDmId() {
      return inDmHome(app) && chat.view === "text" ? chat.channelId : null;
    },
    /** The shown guild's members, as listed: {id, name, username, status, customStatus}. */
    members() {
      return queryAll(ui.memberList, ".member").map((el) => {
        const id = el.dataset.userId;
        return {
          id,
          name: el.querySelector(".member-name").textContent,
          username: (id === chat.user?.id ? chat.user : chat.users.get(id))?.username ?? null,
          status: el.dataset.status,
          customStatus: el.querySelector(".member-custom-status")?.textContent ?? null,
        };
      });
    },
    /** Who the sidebar shows in a voice channel: {userId, name, muted, video, live, speaking}. */
    voiceOccupants(channelId) {
      return queryAll(ui.channelList, `.voice-members[data-channel-id="${channelId}"] .voice-member`).map((el) => ({
        userId: el.dataset.userId,
        name: el.querySelector(".voice-member-name").textContent,
        muted: Boolean(el.querySelector(".icon-muted")),
        video: Boolean(el.querySelector(".icon-video")),
        live: Boolean(el.querySelector(".live-badge")),
        speaking: el.classList.contains("speaking"),
      }));
    },
    /** Our status as the user panel shows it, and our custom status. */
    get myStatus() {
      return { status: ui.myStatusDot.classList[1] ?? null, customStatus: ui.meCustomStatus.hidden ? null : ui.meCustomStatus.textContent };
    },
    /** The composer's suggestions, as shown: [{label, detail, selected}]. */
    suggestions() {
      return queryAll(ui.autocomplete, ".suggestion").map((el) => ({
        label: el.querySelector(".suggestion-label").textContent,
        detail: el.querySelector(".suggestion-detail").textContent,
        selected: el.getAttribute("aria-selected") === "true",
      }));
    },
    /** Badges: mentions per channel shown in the sidebar, and per guild on the rail. */
    badges() {
      const count = (el) => Number(el?.querySelector(".mention-badge")?.textContent ?? 0);
      return {
        channels: Object.fromEntries(queryAll(ui.channelList, ".channel").map((el) => [el.dataset.channelId, { unread: el.classList.contains("unread"), mentions: count(el) }])),
        guilds: Object.fromEntries(queryAll(ui.guildList, ".guild-button").map((el) => [el.dataset.guildId, { unread: el.classList.contains("unread"), mentions: count(el) }])),
        dms: count(ui.dmHomeBtn),
      };
    },
    /** Messages shown as mentioning us, and the one the "new messages" divider is above. */
    attention() {
      return {
        mentioned: queryAll(ui.messages, ".message.mentioned").map((el) => el.dataset.messageId),
        firstUnread: ui.messages.querySelector(".message.first-unread")?.getAttribute("data-message-id") ?? null,
      };
    },
    /** Desktop notifications the page showed: [{title, body, reason, messageId, channelId}]. */
    get notifications() {
      return chat.shownNotifications.map((n) => ({ ...n }));
    },
    /** The friends view's rows: {userId, name, kind, status, detail}. */
    friends() {
      return queryAll(ui.friendsList, ".friend").map((el) => ({
        userId: el.dataset.userId,
        name: el.querySelector(".member-name").textContent,
        kind: el.dataset.kind,
        status: el.querySelector(".status-dot")?.classList[1] ?? null,
        detail: el.querySelector(".member-username").textContent,
      }));
    },
    /** Goes idle after `ms` without input instead of 5 minutes (tests). */
    setIdleAfter(ms) {
      chat.idleAfterMs = ms;
      chat.rearmIdle();
    },
    /** Files waiting for the next message: {name, status, id}. */
    pendingFiles() {
      return chat.pending.filter((p) => p.channelId === chat.channelId).map((p) => ({ name: p.name, status: p.status, id: p.attachment?.id ?? null }));
    },
    /** The search panel: null when closed, else {query, loading, error, results: [{id, channelId, author, channel, content}]}. */
    get search() {
      if (!chat.search) return null;
      return {
        query: chat.search.query,
        loading: chat.search.loading,
        error: chat.search.error?.code ?? null,
        results: queryAll(ui.searchResults, ".search-result").map((el) => ({
          id: el.dataset.messageId,
          channelId: el.dataset.channelId,
          author: el.querySelector(".author").textContent,
          channel: el.querySelector(".search-result-channel").textContent,
          content: el.querySelector(".search-result-content").textContent,
        })),
      };
    },
    /** Drops the chat WebSocket as a network failure would: `{holdMs, invalidateSession}`. */
    dropSocket(options) {
      gateway.drop(options);
    },
    refreshToken() {
      return auth.refresh();
    },
    /** An authenticated REST call: `api("GET", "/guilds/1")`. */
    api,
    signOut: () => signOut(app),
  };
}
