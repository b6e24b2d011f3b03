// @ts-check
// The chat app's state: guilds, channels, DMs, users, the messages of opened channels, and
// what is shown. `ChatApp` bundles it with what the app works with; one is made per page
// (chat/app.js) and passed to every chat function. The lookups here only read and update
// the state; rendering is left to the callers.

/** @typedef {import("../call/state.js").Call} Call */
/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./auth.js").Auth} Auth */
/** @typedef {import("./gateway.js").Gateway} Gateway */
/** @typedef {import("./storage.js").Storage} Storage */
/** @typedef {import("./ui.js").ChatUi} ChatUi */

/**
 * The chat app: its state and what it works with.
 * @typedef {{chat: ChatState, ui: ChatUi, auth: Auth, api: Api, gateway: Gateway,
 *   stats: Stats, storage: Storage, call: Call}} ChatApp
 */

/** @typedef {ReturnType<typeof createStats>} Stats */
/** @typedef {ReturnType<typeof createChatState>} ChatState */

/**
 * A guild as the app keeps it.
 * @typedef {{id: string, name: string, owner_id: string, permissions: bigint,
 *   channels: Map<string, any>}} Guild
 */

/**
 * One channel's messages, once opened.
 * @typedef {{messages: Map<string, any>, deleted: Set<string>, loaded: boolean,
 *   loading: boolean, hasMore: boolean, loadingOlder: boolean, oldest: string|null,
 *   newest: string|null, failed: boolean, hasNewer: boolean, loadingNewer: boolean,
 *   liveBuffer: any[]}} ChannelState
 */

/**
 * A file picked for the composer.
 * @typedef {{key: number, channelId: string, name: string, size: number, status: string,
 *   attachment: any, promise: Promise<void> | null}} PendingFile
 */

/**
 * The search panel.
 * @typedef {{query: string, path: string, results: any[], nextBefore: string | null,
 *   loading: boolean, error: any}} Search
 */

/** The rail entry of direct messages: `chat.guildId` while DMs are shown. */
export const DM_HOME = "@me";

/** Channel kinds of direct messages. */
export const DM_KINDS = new Set(["dm", "group_dm"]);

/**
 * The kinds the channel list shows. Threads and DMs (which the server also has) are not
 * listed here yet.
 */
const LISTED_KINDS = new Set(["text", "voice"]);

/** Permission bits (docs/chat-api.md). */
export const PERM = {
  ADMINISTRATOR: 1n << 1n,
  MANAGE_MESSAGES: 1n << 5n,
  MANAGE_CHANNELS: 1n << 9n,
  MANAGE_ROLES: 1n << 10n,
  CREATE_INVITES: 1n << 11n,
  MUTE_MEMBERS: 1n << 18n,
  MOVE_MEMBERS: 1n << 19n,
};

/** Permission bits (model/perms.rs) by what people call them. */
export const PERMISSIONS = /** @type {[number, string][]} */ ([
  [0, "View channels"], [1, "Administrator"], [2, "Manage server"], [3, "Send messages"],
  [4, "Send in threads"], [5, "Manage messages"], [6, "Attach files"], [7, "Add reactions"],
  [8, "Mention @everyone"], [9, "Manage channels"], [10, "Manage roles"], [11, "Create invites"],
  [12, "Kick members"], [13, "Ban members"], [14, "Connect to voice"], [15, "Speak"],
  [16, "Video"], [17, "Share screen"], [18, "Mute members"], [19, "Move members"],
]);

/**
 * Ids are decimal strings of 64-bit numbers: longer is larger, then lexicographic.
 * @param {string} a
 * @param {string} b
 */
export function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * @param {bigint} bits
 * @param {bigint} perm
 */
export function hasPerm(bits, perm) {
  return (bits & PERM.ADMINISTRATOR) !== 0n || (bits & perm) !== 0n;
}

/** Counters for tests and debugging. */
export function createStats() {
  return {
    identifies: 0,
    resumes: 0,
    invalidSessions: 0,
    reconnects: 0,
    /** Dispatches with an `s` already processed, dropped. */
    replayedEvents: 0,
    /** Messages that arrived again (event and REST, catch-up and event), merged. */
    duplicateMessages: 0,
    /** Messages fetched while catching up after a refused resume. */
    caughtUp: 0,
    tokenRefreshes: 0,
  };
}

/** The state of a page that has shown nothing yet. */
export function createChatState() {
  return {
    /** @type {any} The signed-in user. */
    user: null,
    /** @type {Map<string, Guild>} id -> {id, name, owner_id, permissions: bigint, channels: Map<id, channel>} */
    guilds: new Map(),
    /** @type {string[]} Guild ids in the order of the rail. */
    guildOrder: [],
    /** @type {Map<string, {id: string, username: string, display_name: string}>} id -> {id, username, display_name}: members of any guild, for names. */
    users: new Map(),
    /** @type {Map<string, number>} guild id -> when its member list was last fetched. */
    membersFetchedAt: new Map(),
    /** @type {Map<string, string[]>} guild id -> user ids of its members (once fetched). */
    members: new Map(),
    /** @type {Map<string, any>} DM and group DM channels by id (they have no guild). */
    dms: new Map(),
    /** @type {Map<string, string>} DM channel id -> id of its newest message seen, to order the list. */
    dmActivity: new Map(),
    /** @type {PendingFile[]} Files picked for the composer: {key, channelId, name, size, status, attachment, promise}. */
    pending: [],
    /** @type {Search | null} The search panel: {query, path, results, nextBefore, loading, error}. */
    search: null,
    /** @type {Map<string, ChannelState>} channel id -> ChannelState, for channels opened once. */
    channels: new Map(),
    /** @type {Set<string>} Channels with messages not seen yet. */
    unread: new Set(),
    /** @type {Map<string, number>} channel id -> mentions of the user not seen yet (reads.js). */
    mentions: new Map(),
    /** @type {Map<string, string>} channel id -> the last message read (acked). */
    lastRead: new Map(),
    /** @type {Set<string>} Messages the server notified the user of as mentions. */
    notifiedMentions: new Set(),
    /** @type {Map<string, ReturnType<typeof setTimeout>>} Acks waiting to go, by channel. */
    ackTimers: new Map(),
    /** @type {Map<string, ReturnType<typeof setTimeout>>} Read counts waiting to be fetched again, by channel. */
    unreadByTimers: new Map(),
    /** @type {Map<string, number>} When each channel was last acked. */
    ackedAt: new Map(),
    /** @type {{channelId: string, after: string} | null} Where reading stopped in the channel opened: the divider goes after it. */
    unreadSince: null,
    /** @type {Map<string, any[]>} guild id -> its bots' slash commands, once fetched. */
    commands: new Map(),
    /** @type {Map<string, number>} guild id -> when its commands were fetched. */
    commandsFetchedAt: new Map(),
    /** @type {{start: number, end: number, selected: number, items: {insert: string, label: string, detail: string, userId?: string}[]} | null} The composer's suggestions (autocomplete.js). */
    suggest: null,
    /** @type {{title: string, body: string, reason: string, messageId: string, channelId: string}[]} Desktop notifications shown (for tests). */
    shownNotifications: [],
    /** @type {Map<string, Map<string, number>>} channel id -> Map(user id -> local expiry time). */
    typing: new Map(),
    /** @type {ReturnType<typeof setTimeout> | null} */
    typingTimer: null,
    /** @type {Map<string, number>} When we last told the server we are typing, per channel. */
    typingSentAt: new Map(),
    /** @type {string | null} The guild shown, or DM_HOME. */
    guildId: null,
    /** @type {string | null} The text channel shown (or last shown, while the voice view is up). */
    channelId: null,
    /** @type {Map<string, string>} guild id -> last text channel opened there. */
    lastChannel: new Map(),
    /** @type {"text" | "voice"} What the main pane shows of the guild. */
    view: "text",
    /** @type {string | null} The voice channel joined or being joined. */
    voiceChannelId: null,
    /** @type {{id: string, authorId: string} | null} Replying to {id, authorId}. */
    replyTo: null,
    /** @type {string | null} The id of the message being edited. */
    editing: null,
    /** @type {string | null} An invite code from the page's ?invite=, accepted once signed in. */
    pendingInvite: null,
    /** @type {Map<string, HTMLElement & {renderKey?: string}>} Rendered message elements of the shown channel, by id. */
    messageEls: new Map(),
    /** @type {string | null} The channel `messageEls` belongs to. */
    renderedChannel: null,
    voiceRenderKey: "",
    /** @type {Set<string>} "<guild id>:<user id>" of members a moderator server-muted. */
    serverMutes: new Set(),
    /** Mute and deafen chosen in the user panel, kept for the next call. */
    selfMute: false,
    selfDeaf: false,
    /** The panel's choices still have to be applied to the call being joined. */
    applyVoicePrefs: false,
    /** The gateway was stopped when the page was hidden, to start again if it comes back. */
    restartOnShow: false,
    /** DMs are being fetched again (a message came for one we did not know). */
    refreshingDms: false,
    /** @type {number | null} When the DMs were last fetched again. */
    dmsFetchedAt: null,
    /** Numbers the files picked for the composer. */
    uploadKey: 0,
    /** Numbers searches: an answer to an older one is dropped. */
    searchSeq: 0,
    /** @type {ReturnType<typeof setTimeout> | null} Hides the chat error box. */
    errorTimer: null,
    /** @type {"signin" | "signup"} The sign-in form's mode. */
    authMode: "signin",
    /** @type {Map<string, {status: string, custom_status?: string}>} user id -> presence; absent: offline. */
    presences: new Map(),
    /** @type {Map<string, {user: any, kind: string, since: number}>} user id -> friend, request or block (friends.js). */
    relationships: new Map(),
    /** @type {"online" | "all" | "pending" | "blocked"} The friends view's tab. */
    friendsTab: "online",
    /** @type {Map<string, any>} "guild:<id>" or "channel:<id>" -> notification setting (notify-menu.js). */
    settings: new Map(),
    /** @type {{scope: "channel" | "guild", id: string} | null} What the open notification menu sets. */
    menuTarget: null,
    /** @type {string | null} The thread open in the side panel (threads.js). */
    threadId: null,
    /** @type {Map<string, any>} Its messages by id. */
    threadMessages: new Map(),
    /** @type {((emoji: string) => void) | null} Where the open emoji picker's choice goes. */
    pickEmoji: null,
    /** @type {Set<string>} Messages from blocked people shown anyway. */
    revealed: new Set(),
    /** @type {Map<string, any>} user id -> voice state (the voice channel they are in). */
    voiceStates: new Map(),
    /** @type {{status?: string, custom_status?: string | null}} What we chose to show. */
    myPresence: {},
    /** No input for IDLE_AFTER_MS (presence.js). */
    idle: false,
    idleAfterMs: 5 * 60_000,
    /** @type {() => void} Restarts the idle timer (presence.js). */
    rearmIdle: () => {},
    /** The voice state last sent, as JSON ("" for none yet). */
    sentVoice: "",
    voiceSentAt: 0,
    /** @type {ReturnType<typeof setTimeout> | null} */
    voiceTimer: null,
  };
}

/**
 * @param {ChatApp} app
 * @param {string} id
 * @returns {ChannelState}
 */
export function channelState(app, id) {
  const { chat } = app;
  let ch = chat.channels.get(id);
  if (!ch) {
    ch = {
      messages: new Map(),
      deleted: new Set(),
      loaded: false,
      loading: false,
      hasMore: true,
      loadingOlder: false,
      oldest: null,
      newest: null,
      failed: false,
      // After a jump into the middle of history (a search result): newer messages are
      // paged in with `after=`, and live ones wait in `liveBuffer` until then.
      hasNewer: false,
      loadingNewer: false,
      liveBuffer: [],
    };
    chat.channels.set(id, ch);
  }
  return ch;
}

/**
 * The guild a channel belongs to (null for DMs), and the channel.
 * @param {ChatApp} app
 * @param {string | null} id
 * @returns {{guild: Guild | null, channel: any}}
 */
export function findChannel(app, id) {
  const { chat } = app;
  for (const guild of chat.guilds.values()) {
    const channel = guild.channels.get(id);
    if (channel) return { guild, channel };
  }
  const dm = chat.dms.get(id);
  if (dm) return { guild: null, channel: dm };
  return { guild: null, channel: null };
}

/**
 * Whether new messages in a channel of this kind mark it unread.
 * @param {string | undefined} kind
 */
export function countsUnread(kind) {
  return LISTED_KINDS.has(kind) || DM_KINDS.has(kind);
}

/** @param {ChatApp} app */
export function inDmHome(app) {
  const { chat } = app;
  return chat.guildId === DM_HOME;
}

/**
 * Adds or replaces a DM or group DM.
 * @param {ChatApp} app
 * @param {any} channel
 */
export function upsertDm(app, channel) {
  const { chat } = app;
  chat.dms.set(channel.id, { ...channel, recipients: [...(channel.recipients ?? [])] });
}

/**
 * DMs, most recently active first.
 * @param {ChatApp} app
 */
export function dmList(app) {
  const { chat } = app;
  const activity = (c) => {
    const last = chat.dmActivity.get(c.id);
    return last && compareIds(last, c.id) > 0 ? last : c.id;
  };
  return [...chat.dms.values()].sort((a, b) => compareIds(activity(b), activity(a)));
}

/**
 * @param {ChatApp} app
 * @returns {Guild | null}
 */
export function currentGuild(app) {
  const { chat } = app;
  return chat.guilds.get(chat.guildId) ?? null;
}

/**
 * @param {ChatApp} app
 * @param {any} user
 */
export function cacheUser(app, user) {
  const { chat } = app;
  if (!user?.id) return;
  chat.users.set(user.id, { id: user.id, username: user.username, display_name: user.display_name });
}

/**
 * Adds or replaces a guild from a guild body (ready, guild_create, REST).
 * @param {ChatApp} app
 * @param {any} view
 */
export function upsertGuild(app, view) {
  const { chat } = app;
  const known = chat.guilds.has(view.id);
  chat.guilds.set(view.id, {
    id: view.id,
    name: view.name,
    owner_id: view.owner_id,
    permissions: BigInt(view.permissions ?? "0"),
    channels: new Map((view.channels ?? []).map((c) => [c.id, { ...c }])),
  });
  if (!known) chat.guildOrder.push(view.id);
}

/**
 * Channels of a guild in display order: top-level ones, then each category's.
 * @param {Guild} guild
 */
export function channelTree(guild) {
  const all = [...guild.channels.values()].filter((c) => c.kind === "category" || LISTED_KINDS.has(c.kind));
  const order = (a, b) =>
    Number(a.kind === "voice") - Number(b.kind === "voice") || a.position - b.position || compareIds(a.id, b.id);
  const categories = all.filter((c) => c.kind === "category").sort(order);
  const inCategory = (c) => c.parent_id && guild.channels.get(c.parent_id)?.kind === "category";
  return {
    top: all.filter((c) => c.kind !== "category" && !inCategory(c)).sort(order),
    groups: categories.map((category) => ({
      category,
      channels: all.filter((c) => c.kind !== "category" && c.parent_id === category.id).sort(order),
    })),
  };
}

/**
 * @param {Guild} guild
 */
export function firstTextChannel(guild) {
  const tree = channelTree(guild);
  return [...tree.top, ...tree.groups.flatMap((g) => g.channels)].find((c) => c.kind === "text") ?? null;
}

/**
 * @param {ChatApp} app
 * @param {string} channelId
 * @param {string} messageId
 */
export function noteDmActivity(app, channelId, messageId) {
  const { chat } = app;
  const last = chat.dmActivity.get(channelId);
  if (!last || compareIds(messageId, last) > 0) chat.dmActivity.set(channelId, messageId);
}

/**
 * A tab title, led by the number of channels and DMs with messages not seen yet.
 * @param {ChatApp} app
 * @param {string} title
 */
export function titleWithUnread(app, title) {
  const n = app.chat.unread.size;
  return n > 0 ? `(${n}) ${title}` : title;
}

/**
 * Remembers a member's server-mute from a member view (list or `guild_member_update`).
 * @param {ChatApp} app
 * @param {string} guildId
 * @param {any} member
 */
export function noteServerMute(app, guildId, member) {
  const key = `${guildId}:${member?.user?.id}`;
  if (member?.mute) app.chat.serverMutes.add(key);
  else app.chat.serverMutes.delete(key);
}
