// Parlor chat app (/chat): accounts, servers (guilds), channels, messages, typing and voice
// channels, on the chat REST API and the chat WebSocket (docs/chat-api.md). Voice channels
// join their room with room.js, the same code as the guest room page.
//
// Sessions: the access token lives in memory only and is renewed before it expires; the
// refresh token is kept in localStorage and read afresh for every refresh (under a Web Lock
// where there is one), so tabs never spend the same one twice.
//
// Real time: one WebSocket to /api/v1/gateway. A dropped connection resumes its session
// (the server replays what was missed); a refused resume identifies again and pages each
// open channel forward with `after=`. Messages are kept by id, so none shows twice.
//
// Direct messages live under a "home" entry of the rail (DM_HOME) and use the same history,
// send and live code as text channels. Files are uploaded first and then claimed by a
// message; search asks the server and opens a result around its message.
//
// `window.parlorChat` is the test and debugging handle (see tests/browser/README.md).

import { clearError as clearRoomError, configureRoom, joinRoom, leave as leaveRoom } from "/room.js";

const API = "/api/v1";
const REFRESH_KEY = "parlor.chat.refresh";
const LAST_KEY = "parlor.chat.last";
/** Messages per history page. */
const PAGE_SIZE = 50;
/** The typing endpoint is called at most this often while someone types. */
const TYPING_EVERY_MS = 8_000;
/** How long a typing indicator lasts when the event does not say. */
const TYPING_MS = 10_000;
/** Consecutive messages of one author this close together share one header. */
const GROUP_WINDOW_MS = 7 * 60_000;
/** Refresh the access token this long before it expires (at most a fifth of its life). */
const REFRESH_MARGIN_MS = 60_000;
/** When history is within this many pixels of the top, older messages are loaded. */
const LOAD_OLDER_PX = 150;
/** The rail entry of direct messages: `chat.guildId` while DMs are shown. */
const DM_HOME = "@me";
/** Channel kinds of direct messages. */
const DM_KINDS = new Set(["dm", "group_dm"]);
/** Search results per page. */
const SEARCH_LIMIT = 25;

/** Permission bits (docs/chat-api.md). */
const PERM = {
  ADMINISTRATOR: 1n << 1n,
  MANAGE_MESSAGES: 1n << 5n,
  MANAGE_CHANNELS: 1n << 9n,
  CREATE_INVITES: 1n << 11n,
};

/** An API error: `code` is the server's (`username_taken`, ...) or ours (`network`). */
class ApiError extends Error {
  constructor(code, message, status = 0, retryAfter = null) {
    super(message || code);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const $ = (selector) => document.querySelector(selector);

/** Ids are decimal strings of 64-bit numbers: longer is larger, then lexicographic. */
function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function hasPerm(bits, perm) {
  return (bits & PERM.ADMINISTRATOR) !== 0n || (bits & perm) !== 0n;
}

/** localStorage, or memory where storage is unavailable. */
const storage = {
  memory: new Map(),
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return this.memory.get(key) ?? null;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      this.memory.set(key, value);
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch {
      this.memory.delete(key);
    }
  },
};

/** Counters for tests and debugging. */
const stats = {
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

// ---------------------------------------------------------------------------------------------
// REST and the session
// ---------------------------------------------------------------------------------------------

/** One REST call; resolves with the JSON body (null for 204), rejects with an ApiError. */
async function http(method, path, body, token = null) {
  const headers = {};
  // A Blob (a file) goes as it is, with its own type; anything else as JSON.
  const raw = typeof Blob !== "undefined" && body instanceof Blob;
  if (raw) headers["content-type"] = body.type || "application/octet-stream";
  else if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("network", "Could not reach the server.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON; a generic message below.
  }
  if (!response.ok) {
    throw new ApiError(
      data?.code ?? `http_${response.status}`,
      data?.message ?? `The server answered HTTP ${response.status}.`,
      response.status,
      data?.retry_after ?? null,
    );
  }
  return data;
}

/** The signed-in user's tokens. */
class Auth {
  constructor() {
    this.access = null;
    this.expiresAt = 0;
    this.user = null;
    this.timer = null;
    this.inflight = null;
    /** Called when the session is over (the refresh token was refused). */
    this.onLost = () => {};
  }

  /** Takes a sign-in or refresh answer and schedules the next refresh. */
  adopt(session) {
    this.access = session.access_token;
    const ttl = session.expires_in * 1000;
    this.expiresAt = Date.now() + ttl;
    this.user = session.user;
    storage.set(REFRESH_KEY, session.refresh_token);
    this.#schedule(Math.max(1_000, ttl - Math.min(REFRESH_MARGIN_MS, ttl / 5)));
  }

  get signedIn() {
    return this.access !== null;
  }

  /** An access token good for at least a little while, refreshing first if needed. */
  async freshToken() {
    if (!this.access || Date.now() >= this.expiresAt - 15_000) await this.refresh();
    return this.access;
  }

  /** The current token was refused: the next `freshToken` refreshes. */
  invalidate() {
    this.expiresAt = 0;
  }

  /** Spends the stored refresh token for a new pair (one refresh at a time). */
  refresh() {
    this.inflight ??= this.#refresh().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  async #refresh() {
    const spend = async () => {
      // Read inside the lock: another tab may have spent the one we saw last.
      const token = storage.get(REFRESH_KEY);
      if (!token) throw new ApiError("invalid_refresh_token", "Sign in again.", 401);
      this.adopt(await http("POST", "/auth/refresh", { refresh_token: token }));
      stats.tokenRefreshes += 1;
    };
    try {
      if (navigator.locks?.request) await navigator.locks.request("parlor.chat.refresh", spend);
      else await spend();
    } catch (error) {
      if (error.code === "invalid_refresh_token") {
        this.clear();
        storage.remove(REFRESH_KEY);
        this.onLost(error);
      } else if (this.access) {
        // The server is unreachable or busy: try again, while the current token lasts.
        this.#schedule((error.retryAfter ?? 10) * 1000);
      }
      throw error;
    }
  }

  #schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), ms);
  }

  clear() {
    clearTimeout(this.timer);
    this.access = null;
    this.expiresAt = 0;
    this.user = null;
  }
}

const auth = new Auth();

/** An authenticated REST call; refreshes once and tries again if the token had expired. */
async function api(method, path, body) {
  const token = await auth.freshToken();
  try {
    return await http(method, path, body, token);
  } catch (error) {
    // session_ended: signed out elsewhere; the refresh fails too and the sign-in screen shows.
    if (error.status !== 401 || !["token_expired", "invalid_token", "session_ended"].includes(error.code)) throw error;
    auth.invalidate();
    return http(method, path, body, await auth.freshToken());
  }
}

// ---------------------------------------------------------------------------------------------
// The chat WebSocket
// ---------------------------------------------------------------------------------------------

function gatewayUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${API}/gateway`;
}

/**
 * The /api/v1/gateway connection: identify or resume, heartbeats, and reconnecting.
 *
 * `handlers`: onReady(d, {catchUp}) after `ready` (catchUp: an earlier session's state must
 * be caught up), onResumed(), onDispatch(t, d) for every other event, onState(state).
 * States: idle, connecting, identifying, resuming, ready, reconnecting.
 */
class Gateway {
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.state = "idle";
    this.sessionId = null;
    /** The `s` of the last event processed. */
    this.seq = 0;
    this.heartbeatTimer = null;
    this.awaitingAck = false;
    this.retryTimer = null;
    this.attempt = 0;
    this.stopped = true;
    this.connecting = false;
    /** A `ready` was seen before: a new session must catch up on what the old one had. */
    this.hadReady = false;
    /** No reconnecting before this (a test hook holds the connection down). */
    this.holdUntil = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#connect();
  }

  /** Ends the session for good (close code 1000). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.#stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "bye");
    }
    this.sessionId = null;
    this.seq = 0;
    this.#setState("idle");
  }

  /** Forgets everything, for the next user. */
  reset() {
    this.stop();
    this.hadReady = false;
    this.attempt = 0;
  }

  /**
   * Drops the connection without ending the session, as a network failure would (test
   * hook). `holdMs` keeps it down that long; `invalidateSession` makes the resume fail, so
   * the client must identify again and catch up.
   */
  drop({ holdMs = 0, invalidateSession = false } = {}) {
    this.holdUntil = Date.now() + holdMs;
    if (invalidateSession && this.sessionId) this.sessionId = `gone-${this.sessionId}`;
    // A Close frame without a code leaves the session resumable.
    this.ws?.close();
  }

  /** Reconnects at once if waiting to (the network came back). */
  reconnectNow() {
    if (this.stopped || this.ws || this.connecting || Date.now() < this.holdUntil) return;
    clearTimeout(this.retryTimer);
    this.#connect();
  }

  async #connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.connecting) return;
    this.connecting = true;
    this.#setState(this.hadReady ? "reconnecting" : "connecting");
    let token;
    try {
      // Identify and resume must come within 15 s of opening: refresh before, not after.
      token = await auth.freshToken();
    } catch (error) {
      this.connecting = false;
      if (error.code !== "invalid_refresh_token") this.#retryLater();
      return;
    }
    this.connecting = false;
    if (this.stopped) return;
    if (this.hadReady) stats.reconnects += 1;
    const ws = new WebSocket(gatewayUrl());
    this.ws = ws;
    ws.onmessage = (event) => {
      if (ws === this.ws) this.#onMessage(ws, event, token);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.#onClose(event);
    };
  }

  #send(ws, frame) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  #onMessage(ws, event, token) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    switch (frame.op) {
      case "hello":
        this.#startHeartbeat(ws, frame.d?.heartbeat_interval_ms);
        if (this.sessionId) {
          this.#setState("resuming");
          this.#send(ws, { op: "resume", d: { token, session_id: this.sessionId, seq: this.seq } });
        } else {
          this.#identify(ws, token);
        }
        break;
      case "heartbeat_ack":
        this.awaitingAck = false;
        break;
      case "invalid_session":
        // The session is gone (or too far behind): a new one, then catch up by id.
        console.info("parlor chat: resume refused:", frame.d?.code);
        stats.invalidSessions += 1;
        this.sessionId = null;
        this.seq = 0;
        this.#identify(ws, token);
        break;
      case "dispatch":
        this.#onDispatch(frame);
        break;
      case "error":
        console.warn("parlor chat: gateway error:", frame.d?.code, frame.d?.message);
        break;
      default:
        break;
    }
  }

  #identify(ws, token) {
    stats.identifies += 1;
    this.#setState("identifying");
    this.#send(ws, { op: "identify", d: { token } });
  }

  #onDispatch(frame) {
    if (frame.t === "ready") {
      this.sessionId = frame.d.session_id;
      this.seq = frame.s ?? 1;
      const catchUp = this.hadReady;
      this.hadReady = true;
      this.attempt = 0;
      this.#setState("ready");
      this.handlers.onReady(frame.d, { catchUp });
      return;
    }
    if (typeof frame.s === "number") {
      if (frame.s <= this.seq) {
        stats.replayedEvents += 1;
        return;
      }
      this.seq = frame.s;
    }
    if (frame.t === "resumed") {
      stats.resumes += 1;
      this.attempt = 0;
      this.#setState("ready");
      this.handlers.onResumed?.();
      return;
    }
    try {
      this.handlers.onDispatch(frame.t, frame.d ?? {});
    } catch (error) {
      console.error(`parlor chat: handling ${frame.t} failed`, error);
    }
  }

  #onClose(event) {
    this.ws = null;
    this.#stopHeartbeat();
    if (this.stopped) return;
    console.info(`parlor chat: gateway closed (${event.code}${event.reason ? ` ${event.reason}` : ""}), reconnecting`);
    if (event.code === 4001) auth.invalidate(); // the token was refused: refresh first
    if (event.code === 4009 && event.reason === "too slow") this.sessionId = null; // not resumable
    if (event.code === 4004) {
      // Signed out (logout elsewhere, a password change): the refresh fails and signs out here.
      this.sessionId = null;
      auth.invalidate();
    }
    this.#retryLater();
  }

  #retryLater() {
    this.#setState(this.hadReady ? "reconnecting" : "connecting");
    const backoff = Math.min(10_000, 250 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = Math.max(backoff, this.holdUntil - Date.now());
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #startHeartbeat(ws, intervalMs) {
    this.#stopHeartbeat();
    this.awaitingAck = false;
    this.heartbeatTimer = setInterval(() => {
      if (ws !== this.ws) return;
      if (this.awaitingAck) {
        // No answer for a whole interval: the connection is dead even if not closed.
        console.warn("parlor chat: no heartbeat_ack, reconnecting");
        ws.onmessage = null;
        ws.onclose = null;
        ws.close();
        this.#onClose({ code: 0, reason: "no heartbeat_ack" });
        return;
      }
      this.awaitingAck = true;
      this.#send(ws, { op: "heartbeat" });
    }, intervalMs > 0 ? intervalMs : 30_000);
  }

  #stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState?.(state);
  }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/**
 * One channel's messages, once opened.
 * @typedef {{messages: Map<string, object>, deleted: Set<string>, loaded: boolean,
 *   loading: boolean, hasMore: boolean, loadingOlder: boolean, oldest: string|null,
 *   newest: string|null, failed: boolean, hasNewer: boolean, loadingNewer: boolean,
 *   liveBuffer: object[]}} ChannelState
 */

const chat = {
  user: null,
  /** id -> {id, name, owner_id, permissions: bigint, channels: Map<id, channel>} */
  guilds: new Map(),
  /** Guild ids in the order of the rail. */
  guildOrder: [],
  /** id -> {id, username, display_name}: members of any guild, for names. */
  users: new Map(),
  /** guild id -> when its member list was last fetched. */
  membersFetchedAt: new Map(),
  /** guild id -> user ids of its members (once fetched). */
  members: new Map(),
  /** DM and group DM channels by id (they have no guild). */
  dms: new Map(),
  /** DM channel id -> id of its newest message seen, to order the list. */
  dmActivity: new Map(),
  /** Files picked for the composer: {key, channelId, name, size, status, attachment, promise}. */
  pending: [],
  /** The search panel: {query, path, results, nextBefore, loading, error}. */
  search: null,
  /** channel id -> ChannelState, for channels opened once. */
  channels: new Map(),
  /** Channels with messages not seen yet. */
  unread: new Set(),
  /** channel id -> Map(user id -> local expiry time). */
  typing: new Map(),
  typingTimer: null,
  /** When we last told the server we are typing, per channel. */
  typingSentAt: new Map(),
  guildId: null,
  /** The text channel shown (or last shown, while the voice view is up). */
  channelId: null,
  /** guild id -> last text channel opened there. */
  lastChannel: new Map(),
  /** "text" or "voice". */
  view: "text",
  /** The voice channel joined or being joined. */
  voiceChannelId: null,
  /** Replying to {id, authorId}. */
  replyTo: null,
  /** The id of the message being edited. */
  editing: null,
  /** An invite code from the page's ?invite=, accepted once signed in. */
  pendingInvite: null,
  /** Rendered message elements of the shown channel, by id. */
  messageEls: new Map(),
  /** The channel `messageEls` belongs to. */
  renderedChannel: null,
  voiceRenderKey: "",
  /** The gateway was stopped when the page was hidden, to start again if it comes back. */
  restartOnShow: false,
};

const gateway = new Gateway({
  onReady,
  onResumed: () => renderStatus(),
  onDispatch,
  onState: () => renderStatus(),
});

function channelState(id) {
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

/** The guild a channel belongs to (null for DMs), and the channel. */
function findChannel(id) {
  for (const guild of chat.guilds.values()) {
    const channel = guild.channels.get(id);
    if (channel) return { guild, channel };
  }
  const dm = chat.dms.get(id);
  if (dm) return { guild: null, channel: dm };
  return { guild: null, channel: null };
}

/** Whether new messages in a channel of this kind mark it unread. */
function countsUnread(kind) {
  return LISTED_KINDS.has(kind) || DM_KINDS.has(kind);
}

function inDmHome() {
  return chat.guildId === DM_HOME;
}

/** Adds or replaces a DM or group DM. */
function upsertDm(channel) {
  chat.dms.set(channel.id, { ...channel, recipients: [...(channel.recipients ?? [])] });
}

/** DMs, most recently active first. */
function dmList() {
  const activity = (c) => {
    const last = chat.dmActivity.get(c.id);
    return last && compareIds(last, c.id) > 0 ? last : c.id;
  };
  return [...chat.dms.values()].sort((a, b) => compareIds(activity(b), activity(a)));
}

/** What a DM is called: its name, or the other people in it. */
function dmName(channel) {
  if (!channel) return "";
  if (channel.name) return channel.name;
  const others = (channel.recipients ?? []).filter((id) => id !== chat.user?.id);
  if (others.length === 0) return nameOf(chat.user?.id);
  return others.map((id) => nameOf(id)).join(", ");
}

/** Fetches the member lists of every guild (throttled), to put names to user ids. */
function loadAllMembers() {
  for (const id of chat.guildOrder) loadMembers(id);
}

function currentGuild() {
  return chat.guilds.get(chat.guildId) ?? null;
}

function cacheUser(user) {
  if (!user?.id) return;
  chat.users.set(user.id, { id: user.id, username: user.username, display_name: user.display_name });
}

function nameOf(userId) {
  if (chat.user && userId === chat.user.id) return chat.user.display_name || chat.user.username;
  const user = chat.users.get(userId);
  if (user) return user.display_name || user.username;
  const { guild } = findChannel(chat.channelId);
  if (guild) loadMembers(guild.id);
  else loadAllMembers();
  return "Unknown user";
}

/** Adds or replaces a guild from a guild body (ready, guild_create, REST). */
function upsertGuild(view) {
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

function removeGuild(id) {
  const guild = chat.guilds.get(id);
  if (!guild) return;
  for (const channelId of guild.channels.keys()) forgetChannel(channelId);
  chat.guilds.delete(id);
  chat.guildOrder = chat.guildOrder.filter((g) => g !== id);
  chat.lastChannel.delete(id);
  if (chat.guildId === id) selectGuild(chat.guildOrder[0] ?? null);
}

function forgetChannel(id) {
  chat.channels.delete(id);
  chat.pending = chat.pending.filter((p) => p.channelId !== id);
  chat.unread.delete(id);
  chat.typing.delete(id);
  if (chat.voiceChannelId === id) leaveRoom();
}

/**
 * The kinds the channel list shows. Threads and DMs (which the server also has) are not
 * listed here yet.
 */
const LISTED_KINDS = new Set(["text", "voice"]);

/** Channels of a guild in display order: top-level ones, then each category's. */
function channelTree(guild) {
  const all = [...guild.channels.values()].filter((c) => c.kind === "category" || LISTED_KINDS.has(c.kind));
  const order = (a, b) =>
    (a.kind === "voice") - (b.kind === "voice") || a.position - b.position || compareIds(a.id, b.id);
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

function firstTextChannel(guild) {
  const tree = channelTree(guild);
  return [...tree.top, ...tree.groups.flatMap((g) => g.channels)].find((c) => c.kind === "text") ?? null;
}

function removeDm(id) {
  if (!chat.dms.delete(id)) return;
  chat.dmActivity.delete(id);
  forgetChannel(id);
  if (chat.lastChannel.get(DM_HOME) === id) chat.lastChannel.delete(DM_HOME);
  if (inDmHome() && chat.channelId === id) openChannel(null);
}

function rememberSelection() {
  storage.set(LAST_KEY, JSON.stringify({ guildId: chat.guildId, channelId: chat.channelId }));
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** Keeps a message unless it is stale; returns whether it was new. */
function mergeMessage(ch, m) {
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

/** Loads the latest page of a channel. */
async function loadLatest(channelId) {
  const ch = channelState(channelId);
  if (ch.loading) return;
  ch.loading = true;
  ch.failed = false;
  renderHistoryStatus();
  try {
    const page = await api("GET", `/channels/${channelId}/messages?limit=${PAGE_SIZE}`);
    for (const m of page) mergeMessage(ch, m);
    ch.hasMore = page.length === PAGE_SIZE;
    ch.loaded = true;
  } catch (error) {
    ch.failed = true;
    showChatError(`Could not load messages: ${error.message}`, error.code);
  } finally {
    ch.loading = false;
  }
  if (channelId === chat.channelId) {
    renderMessages({ toBottom: true });
    fillViewport();
  }
}

/** Loads the page before the oldest message shown. */
async function loadOlder() {
  const channelId = chat.channelId;
  const ch = chat.channels.get(channelId);
  if (!ch?.loaded || !ch.hasMore || ch.loadingOlder || !ch.oldest) return;
  ch.loadingOlder = true;
  renderHistoryStatus();
  try {
    const page = await api("GET", `/channels/${channelId}/messages?before=${ch.oldest}&limit=${PAGE_SIZE}`);
    for (const m of page) mergeMessage(ch, m);
    ch.hasMore = page.length === PAGE_SIZE;
  } catch (error) {
    showChatError(`Could not load older messages: ${error.message}`, error.code);
  } finally {
    ch.loadingOlder = false;
  }
  if (channelId === chat.channelId) {
    renderMessages({ keepOffset: true });
    fillViewport();
  }
}

/** Loads older pages while the history does not fill the pane (nothing to scroll yet). */
function fillViewport() {
  const ch = chat.channels.get(chat.channelId);
  const s = ui.scroller;
  if (ch?.loaded && ch.hasMore && !ch.loadingOlder && s.scrollHeight <= s.clientHeight + LOAD_OLDER_PX) {
    loadOlder();
  }
}

/**
 * After a refused resume: pages every open channel forward from the newest message it has,
 * merging by id with what arrives live meanwhile (docs/chat-api.md, "Catching up").
 */
async function catchUp() {
  for (const [channelId, ch] of [...chat.channels]) {
    if (!findChannel(channelId).channel) {
      chat.channels.delete(channelId);
      continue;
    }
    if (!ch.loaded) continue;
    if (!ch.newest) {
      ch.loaded = false;
      await loadLatest(channelId);
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
          if (mergeMessage(ch, m)) {
            fresh += 1;
            stats.caughtUp += 1;
            if (m.author_id !== chat.user?.id && channelId !== chat.channelId && countsUnread(findChannel(channelId).channel?.kind)) {
              chat.unread.add(channelId);
            }
            if (DM_KINDS.has(findChannel(channelId).channel?.kind)) noteDmActivity(channelId, m.id);
          }
        }
        after = page[page.length - 1].id;
      }
      ch.hasNewer = false;
      ch.liveBuffer = [];
    } catch (error) {
      showChatError(`Could not catch up on messages: ${error.message}`, error.code);
    }
    if (fresh && channelId === chat.channelId) renderMessages();
  }
  renderChannels();
}

/** After a jump into history: loads the page after the newest message shown. */
async function loadNewer() {
  const channelId = chat.channelId;
  const ch = chat.channels.get(channelId);
  if (!ch?.loaded || !ch.hasNewer || ch.loadingNewer || !ch.newest) return;
  ch.loadingNewer = true;
  try {
    const page = await api("GET", `/channels/${channelId}/messages?after=${ch.newest}&limit=${PAGE_SIZE}`);
    for (const m of page) mergeMessage(ch, m);
    if (page.length < PAGE_SIZE) {
      // Caught up with the present: what came live meanwhile goes in, and live goes on.
      ch.hasNewer = false;
      for (const m of ch.liveBuffer) mergeMessage(ch, m);
      ch.liveBuffer = [];
    }
  } catch (error) {
    showChatError(`Could not load newer messages: ${error.message}`, error.code);
  } finally {
    ch.loadingNewer = false;
  }
  if (channelId === chat.channelId) renderMessages({ keepTop: true });
}

/** Shows a channel around one of its messages (a search result), and marks the message. */
async function jumpToMessage(channelId, messageId) {
  const { guild, channel } = findChannel(channelId);
  if (!channel) return;
  const home = guild ? guild.id : DM_HOME;
  let ch = chat.channels.get(channelId);
  const have = Boolean(ch?.messages.has(messageId));
  if (!have) {
    // A fresh history around the message; `loading` keeps openChannel from loading the latest.
    chat.channels.delete(channelId);
    ch = channelState(channelId);
    ch.loading = true;
  }
  chat.lastChannel.set(home, channelId);
  if (chat.guildId !== home) selectGuild(home);
  else if (chat.channelId !== channelId || chat.view !== "text") openChannel(channelId);
  if (!have) {
    try {
      const page = await api("GET", `/channels/${channelId}/messages?around=${messageId}&limit=${PAGE_SIZE}`);
      for (const m of page) mergeMessage(ch, m);
      ch.loaded = true;
      ch.hasMore = page.some((m) => compareIds(m.id, messageId) < 0);
      ch.hasNewer = true;
    } catch (error) {
      ch.failed = true;
      showChatError(`Could not load the message: ${error.message}`, error.code);
    } finally {
      ch.loading = false;
    }
  }
  if (chat.channelId !== channelId) return;
  renderMessages({ keepTop: true });
  const el = chat.messageEls.get(messageId);
  if (el) {
    el.scrollIntoView({ block: "center" });
    el.classList.add("highlight");
    setTimeout(() => el.classList.remove("highlight"), 3_000);
  }
  const s = ui.scroller;
  if (s.scrollHeight - s.scrollTop - s.clientHeight < LOAD_OLDER_PX) loadNewer();
}

async function loadMembers(guildId, { force = false } = {}) {
  const last = chat.membersFetchedAt.get(guildId) ?? 0;
  if (!force && Date.now() - last < 15_000) return;
  chat.membersFetchedAt.set(guildId, Date.now());
  const ids = [];
  try {
    let after = null;
    for (;;) {
      const page = await api("GET", `/guilds/${guildId}/members?limit=1000${after ? `&after=${after}` : ""}`);
      for (const member of page) {
        cacheUser(member.user);
        ids.push(member.user.id);
      }
      if (page.length < 1000) break;
      after = page[page.length - 1].user.id;
    }
  } catch (error) {
    console.warn("parlor chat: could not load members", error);
    return;
  }
  chat.members.set(guildId, ids);
  renderMessages();
  renderTyping();
  renderMembers();
  if (inDmHome()) {
    renderChannels();
    renderMain();
  }
}

/** Opens (or finds) the DM with a user and shows it. */
async function openDm(userId) {
  try {
    const channel = await api("POST", "/users/@me/channels", { recipient_id: userId });
    upsertDm(channel);
    chat.lastChannel.set(DM_HOME, channel.id);
    if (inDmHome()) openChannel(channel.id);
    else selectGuild(DM_HOME);
  } catch (error) {
    showChatError(`Could not open the conversation: ${error.message}`, error.code);
  }
}

function noteDmActivity(channelId, messageId) {
  const last = chat.dmActivity.get(channelId);
  if (!last || compareIds(messageId, last) > 0) chat.dmActivity.set(channelId, messageId);
}

// Uploads -------------------------------------------------------------------------------------

let uploadKey = 0;

/** Uploads files for the shown channel; they go out with the next message. */
function addFiles(files) {
  const channelId = chat.channelId;
  if (!channelId || chat.view !== "text") return;
  for (const file of files) {
    const name = file.name || `pasted.${(file.type.split("/")[1] || "bin").replace(/[^a-z0-9]/gi, "")}`;
    const item = { key: ++uploadKey, channelId, name, size: file.size, status: "uploading", attachment: null, promise: null };
    item.promise = api("POST", `/channels/${channelId}/attachments?filename=${encodeURIComponent(name)}`, file)
      .then((attachment) => {
        item.attachment = attachment;
        item.status = "done";
      })
      .catch((error) => {
        item.status = "failed";
        showChatError(`Could not upload ${name}: ${error.message}`, error.code);
      })
      .finally(renderPending);
    chat.pending.push(item);
  }
  renderPending();
}

function removePending(key) {
  chat.pending = chat.pending.filter((p) => p.key !== key);
  renderPending();
}

async function sendMessage() {
  const channelId = chat.channelId;
  const content = ui.input.value;
  const files = chat.pending.filter((p) => p.channelId === channelId && p.status !== "failed");
  if (!channelId || (!content.trim() && files.length === 0)) return;
  const body = { content: content.trim() ? content : "" };
  if (chat.replyTo) body.reply_to = chat.replyTo.id;
  ui.input.value = "";
  autosize();
  setReply(null);
  chat.typingSentAt.delete(channelId);
  chat.pending = chat.pending.filter((p) => !files.includes(p));
  renderPending();
  try {
    // Files still uploading are waited for; ones that failed are left out.
    await Promise.all(files.map((p) => p.promise));
    const ids = files.filter((p) => p.status === "done").map((p) => p.attachment.id);
    if (ids.length) body.attachments = ids;
    else if (!body.content) return;
    const m = await api("POST", `/channels/${channelId}/messages`, body);
    // The event may come first or later; by id it shows once either way.
    const ch = channelState(channelId);
    if (ch.loaded || ch.loading) mergeMessage(ch, m);
    if (channelId === chat.channelId) renderMessages({ toBottom: true });
  } catch (error) {
    if (!ui.input.value && channelId === chat.channelId) {
      ui.input.value = content;
      autosize();
    }
    // The uploads stay unclaimed: put them back to send again.
    chat.pending.unshift(...files.filter((p) => p.status === "done" && !chat.pending.includes(p)));
    renderPending();
    showChatError(`Could not send: ${error.message}`, error.code);
  }
}

/** Tells the channel we are typing, at most every 8 s. */
function noteTyping() {
  const channelId = chat.channelId;
  if (!channelId || !ui.input.value.trim()) return;
  const last = chat.typingSentAt.get(channelId) ?? 0;
  if (Date.now() - last < TYPING_EVERY_MS) return;
  chat.typingSentAt.set(channelId, Date.now());
  api("POST", `/channels/${channelId}/typing`).catch((error) => {
    console.warn("parlor chat: typing", error.code);
  });
}

async function saveEdit(messageId, content) {
  const channelId = chat.channelId;
  const ch = chat.channels.get(channelId);
  const old = ch?.messages.get(messageId);
  chat.editing = null;
  if (!old || !content.trim() || content === old.content) {
    renderMessages();
    return;
  }
  try {
    const m = await api("PATCH", `/channels/${channelId}/messages/${messageId}`, { content });
    mergeMessage(ch, m);
  } catch (error) {
    showChatError(`Could not edit: ${error.message}`, error.code);
  }
  renderMessages();
  ui.input.focus();
}

async function deleteMessage(messageId) {
  const channelId = chat.channelId;
  try {
    await api("DELETE", `/channels/${channelId}/messages/${messageId}`);
    const ch = chat.channels.get(channelId);
    if (ch) {
      ch.messages.delete(messageId);
      ch.deleted.add(messageId);
    }
    renderMessages();
  } catch (error) {
    showChatError(`Could not delete: ${error.message}`, error.code);
  }
}

async function toggleReaction(messageId, emoji) {
  const channelId = chat.channelId;
  const m = chat.channels.get(channelId)?.messages.get(messageId);
  if (!m) return;
  const mine = m.reactions.find((r) => r.emoji === emoji)?.me;
  const path = `/channels/${channelId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}/@me`;
  try {
    await api(mine ? "DELETE" : "PUT", path);
  } catch (error) {
    showChatError(`Could not react: ${error.message}`, error.code);
  }
}

function applyReaction(d, delta) {
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
  if (d.channel_id === chat.channelId) renderMessages();
}

// ---------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------

let searchSeq = 0;

/** Searches the shown guild (or, in DMs, the shown conversation); `more` pages on. */
async function runSearch(query, { more = false } = {}) {
  if (!more) {
    const q = query.trim();
    if (!q) {
      closeSearch();
      return;
    }
    const path = inDmHome()
      ? chat.channelId
        ? `/channels/${chat.channelId}/messages/search`
        : null
      : chat.guildId
        ? `/guilds/${chat.guildId}/messages/search`
        : null;
    if (!path) return;
    chat.search = { query: q, path, results: [], nextBefore: null, loading: false, error: null };
  }
  const search = chat.search;
  if (!search || search.loading) return;
  search.loading = true;
  search.error = null;
  const seq = ++searchSeq;
  renderSearch();
  try {
    const before = more && search.nextBefore ? `&before=${search.nextBefore}` : "";
    const page = await api("GET", `${search.path}?q=${encodeURIComponent(search.query)}&limit=${SEARCH_LIMIT}${before}`);
    if (seq !== searchSeq || chat.search !== search) return;
    const seen = new Set(search.results.map((m) => m.id));
    search.results.push(...(page.messages ?? []).filter((m) => !seen.has(m.id)));
    search.nextBefore = page.next_before ?? null;
  } catch (error) {
    if (chat.search === search) search.error = error;
  } finally {
    search.loading = false;
  }
  if (chat.search === search) renderSearch();
}

function closeSearch() {
  chat.search = null;
  searchSeq += 1;
  renderSearch();
}

// ---------------------------------------------------------------------------------------------
// Guilds, channels, invites
// ---------------------------------------------------------------------------------------------

function selectGuild(id) {
  if (chat.guildId !== id && chat.search) closeSearch();
  chat.guildId = id;
  chat.editing = null;
  const guild = currentGuild();
  let channelId = null;
  if (guild) {
    const last = chat.lastChannel.get(id);
    channelId = last && guild.channels.has(last) ? last : firstTextChannel(guild)?.id ?? null;
    loadMembers(guild.id);
  } else if (id === DM_HOME) {
    const last = chat.lastChannel.get(DM_HOME);
    channelId = last && chat.dms.has(last) ? last : null;
    // Names for the people in DMs come from the member lists.
    loadAllMembers();
  }
  hideInvite();
  openChannel(channelId);
  renderGuilds();
  renderMembers();
}

function openChannel(id) {
  if (inDmHome() && chat.search && chat.channelId !== id) closeSearch();
  chat.channelId = id;
  chat.view = "text";
  chat.editing = null;
  setReply(null);
  if (id) {
    chat.lastChannel.set(chat.guildId, id);
    chat.unread.delete(id);
    const ch = channelState(id);
    if (!ch.loaded && !ch.loading) loadLatest(id);
  }
  rememberSelection();
  renderChannels();
  renderMain();
  renderMessages({ toBottom: true });
  renderTyping();
  renderPending();
  if (id && matchMedia("(pointer: fine)").matches) ui.input.focus();
}

async function createGuild(name) {
  const view = await api("POST", "/guilds", { name });
  upsertGuild(view);
  selectGuild(view.id);
}

/** Accepts an invite code, or a link that ends in one or carries ?invite=. */
function inviteCode(text) {
  const raw = text.trim();
  try {
    const url = new URL(raw);
    return url.searchParams.get("invite") ?? url.pathname.split("/").filter(Boolean).pop() ?? "";
  } catch {
    return raw;
  }
}

async function joinByInvite(text) {
  const code = inviteCode(text);
  if (!code) throw new ApiError("unknown_invite", "Enter an invite code.");
  const view = await api("POST", `/invites/${encodeURIComponent(code)}`);
  upsertGuild(view);
  selectGuild(view.id);
}

async function createInvite() {
  const guild = currentGuild();
  if (!guild) return;
  ui.inviteBtn.disabled = true;
  try {
    const invite = await api("POST", `/guilds/${guild.id}/invites`);
    if (chat.guildId !== guild.id) return;
    ui.inviteCode.value = invite.code;
    const link = `${location.origin}/chat?invite=${encodeURIComponent(invite.code)}`;
    ui.inviteLink.href = link;
    ui.inviteBox.hidden = false;
    ui.inviteCode.select();
  } catch (error) {
    showChatError(`Could not create an invite: ${error.message}`, error.code);
  } finally {
    ui.inviteBtn.disabled = false;
  }
}

function hideInvite() {
  ui.inviteBox.hidden = true;
  ui.inviteCode.value = "";
}

async function createChannel(kind, name, parentId, userLimit) {
  const guild = currentGuild();
  if (!guild) return;
  const body = { name, kind };
  if (parentId) body.parent_id = parentId;
  if (kind === "voice" && userLimit) body.user_limit = userLimit;
  const channel = await api("POST", `/guilds/${guild.id}/channels`, body);
  // channel_create brings it too; whichever comes first adds it.
  guild.channels.set(channel.id, channel);
  renderChannels();
  if (channel.kind === "text") openChannel(channel.id);
}

// ---------------------------------------------------------------------------------------------
// Voice channels
// ---------------------------------------------------------------------------------------------

/** The signaling URL from voice/join, made secure when the page is. */
function signalingUrl(url) {
  try {
    const u = new URL(url, location.href);
    if (location.protocol === "https:" && u.protocol === "ws:" && u.host === location.host) u.protocol = "wss:";
    return u.href;
  } catch {
    return url;
  }
}

async function joinVoice(channelId) {
  const roomState = window.parlor.state;
  if (chat.voiceChannelId === channelId && (roomState === "joining" || roomState === "joined")) {
    chat.view = "voice";
    renderMain();
    renderChannels();
    return;
  }
  if (roomState === "joining" || roomState === "joined") await leaveRoom();
  chat.voiceChannelId = channelId;
  chat.view = "voice";
  renderMain();
  renderChannels();
  renderVoicePanel();
  const credentials = async () => {
    const v = await api("POST", `/channels/${channelId}/voice/join`);
    return { token: v.token, url: signalingUrl(v.url) };
  };
  await joinRoom(credentials().then((c) => ({ ...c, renew: credentials })));
}

function onRoomState(state) {
  if (state !== "joining" && state !== "joined") {
    chat.voiceChannelId = null;
    if (chat.view === "voice") chat.view = "text";
  }
  document.body.dataset.voice = state;
  renderVoicePanel();
  renderChannels();
  renderMain();
}

/** The room's participants changed (or anything else in it): the sidebar lists them. */
function onRoomRender() {
  const key = JSON.stringify(voiceMembers());
  if (key === chat.voiceRenderKey) return;
  chat.voiceRenderKey = key;
  renderChannels();
}

function voiceMembers() {
  const room = window.parlor;
  if (!room || room.state !== "joined") return [];
  const speakers = new Set(room.speakers);
  return [
    { identity: room.identity, name: room.name, speaking: speakers.has(room.identity) },
    ...room.participants.map((p) => ({ identity: p.identity, name: p.name, speaking: speakers.has(p.identity) })),
  ];
}

// ---------------------------------------------------------------------------------------------
// Gateway events
// ---------------------------------------------------------------------------------------------

function onReady(d, { catchUp: mustCatchUp }) {
  chat.user = d.user;
  cacheUser(d.user);
  const previous = chat.guildId;
  // Replace guilds and channels with what the server says now.
  chat.guilds.clear();
  chat.guildOrder = [];
  for (const g of d.guilds ?? []) upsertGuild(g);
  chat.dms.clear();
  for (const c of d.private_channels ?? []) upsertDm(c);
  for (const id of [...chat.channels.keys()]) if (!findChannel(id).channel) forgetChannel(id);
  renderMe();

  if (!mustCatchUp) {
    let saved = {};
    try {
      saved = JSON.parse(storage.get(LAST_KEY) ?? "{}") ?? {};
    } catch {
      // A bad value: start from the first guild.
    }
    const home = saved.guildId === DM_HOME;
    const guildId = home || chat.guilds.has(saved.guildId) ? saved.guildId : chat.guildOrder[0] ?? null;
    if (home && chat.dms.has(saved.channelId)) chat.lastChannel.set(DM_HOME, saved.channelId);
    else if (guildId && !home && saved.channelId && chat.guilds.get(guildId).channels.has(saved.channelId)) {
      chat.lastChannel.set(guildId, saved.channelId);
    }
    selectGuild(guildId);
  } else if (chat.guildId && chat.guildId !== DM_HOME && !chat.guilds.has(chat.guildId)) {
    selectGuild(chat.guildOrder[0] ?? null);
  } else {
    if (previous && chat.channelId && !findChannel(chat.channelId).channel) selectGuild(previous);
    renderGuilds();
    renderChannels();
    renderMain();
  }
  renderStatus();
  if (mustCatchUp) catchUp();
  acceptPendingInvite();
}

async function refreshDms() {
  if (chat.refreshingDms || Date.now() - (chat.dmsFetchedAt ?? 0) < 5_000) return;
  chat.refreshingDms = true;
  chat.dmsFetchedAt = Date.now();
  try {
    for (const c of await api("GET", "/users/@me/channels")) upsertDm(c);
  } catch (error) {
    console.warn("parlor chat: could not load DMs", error);
  } finally {
    chat.refreshingDms = false;
  }
  renderChannels();
  if (inDmHome()) renderMain();
}

async function acceptPendingInvite() {
  const code = chat.pendingInvite;
  if (!code) return;
  chat.pendingInvite = null;
  const url = new URL(location.href);
  url.searchParams.delete("invite");
  history.replaceState(null, "", url);
  try {
    await joinByInvite(code);
  } catch (error) {
    showChatError(`Could not join with the invite: ${error.message}`, error.code);
  }
}

function onDispatch(t, d) {
  switch (t) {
    case "message_create": {
      const ch = chat.channels.get(d.channel_id);
      clearTyper(d.channel_id, d.author_id);
      if (ch?.hasNewer) {
        // History is shown from further back: this goes in once the pages reach it.
        ch.liveBuffer.push(d);
      } else if (ch && (ch.loaded || ch.loading)) {
        mergeMessage(ch, d);
        if (d.channel_id === chat.channelId) renderMessages();
      }
      const { channel } = findChannel(d.channel_id);
      if (!channel) {
        // A DM we have not heard of (its channel_create was missed): fetch the list.
        refreshDms();
        break;
      }
      if (DM_KINDS.has(channel.kind)) {
        noteDmActivity(d.channel_id, d.id);
        if (inDmHome()) renderChannels();
      }
      const seen = d.channel_id === chat.channelId && chat.view === "text" && document.visibilityState !== "hidden";
      if (!seen && d.author_id !== chat.user?.id && countsUnread(channel.kind)) {
        chat.unread.add(d.channel_id);
        renderChannels();
      }
      break;
    }
    case "message_update": {
      const ch = chat.channels.get(d.channel_id);
      if (ch && (ch.messages.has(d.id) || ch.loading)) {
        mergeMessage(ch, d);
        if (d.channel_id === chat.channelId) renderMessages();
      }
      break;
    }
    case "message_delete": {
      const ch = chat.channels.get(d.channel_id);
      if (ch) {
        ch.messages.delete(d.id);
        ch.deleted.add(d.id);
        if (chat.editing === d.id) chat.editing = null;
        if (chat.replyTo?.id === d.id) setReply(null);
        if (d.channel_id === chat.channelId) renderMessages();
      }
      break;
    }
    case "message_reaction_add":
      applyReaction(d, +1);
      break;
    case "message_reaction_remove":
      applyReaction(d, -1);
      break;
    case "typing_start":
      onTyping(d);
      break;
    case "guild_create":
      upsertGuild(d);
      renderGuilds();
      if (!chat.guildId) selectGuild(d.id);
      else if (d.id === chat.guildId) {
        renderChannels();
        renderMain();
      }
      break;
    case "guild_update": {
      const guild = chat.guilds.get(d.id);
      if (guild) {
        guild.name = d.name;
        renderGuilds();
        renderChannels();
      }
      break;
    }
    case "guild_delete":
      removeGuild(d.id);
      renderGuilds();
      renderChannels();
      renderMain();
      break;
    case "channel_create":
    case "channel_update": {
      if (!d.guild_id && DM_KINDS.has(d.kind)) {
        upsertDm(d);
        renderChannels();
        if (inDmHome()) renderMain();
        break;
      }
      const guild = chat.guilds.get(d.guild_id);
      if (!guild) break;
      guild.channels.set(d.id, { ...d });
      if (d.guild_id === chat.guildId) {
        renderChannels();
        renderMain();
      }
      break;
    }
    case "channel_delete": {
      if (chat.dms.has(d.id)) {
        removeDm(d.id);
        renderChannels();
        break;
      }
      const guild = chat.guilds.get(d.guild_id);
      if (!guild?.channels.delete(d.id)) break;
      forgetChannel(d.id);
      if (chat.channelId === d.id) openChannel(firstTextChannel(guild)?.id ?? null);
      if (d.guild_id === chat.guildId) renderChannels();
      break;
    }
    case "guild_member_add":
    case "guild_member_update": {
      cacheUser(d.user);
      const ids = chat.members.get(d.guild_id);
      if (ids && d.user?.id && !ids.includes(d.user.id)) ids.push(d.user.id);
      renderMessages();
      renderMembers();
      if (inDmHome()) renderChannels();
      break;
    }
    case "guild_member_remove": {
      const ids = chat.members.get(d.guild_id);
      if (ids) chat.members.set(d.guild_id, ids.filter((id) => id !== d.user_id));
      renderMembers();
      break;
    }
    default:
      // presence_update, roles, pins, ...: not shown here yet.
      break;
  }
}

function onTyping(d) {
  if (d.user_id === chat.user?.id) return;
  const lasts = d.expires_at && d.timestamp ? d.expires_at - d.timestamp : TYPING_MS;
  let typers = chat.typing.get(d.channel_id);
  if (!typers) {
    typers = new Map();
    chat.typing.set(d.channel_id, typers);
  }
  typers.set(d.user_id, Date.now() + lasts);
  scheduleTypingExpiry();
  if (d.channel_id === chat.channelId) renderTyping();
}

function clearTyper(channelId, userId) {
  const typers = chat.typing.get(channelId);
  if (typers?.delete(userId) && channelId === chat.channelId) renderTyping();
}

function scheduleTypingExpiry() {
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
    renderTyping();
    scheduleTypingExpiry();
  }, Math.max(0, next - Date.now()) + 20);
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

const ui = {
  authView: $("#auth-view"),
  authForm: $("#auth-form"),
  authTitle: $("#auth-title"),
  authHint: $("#auth-hint"),
  authUsername: $("#auth-username"),
  authPassword: $("#auth-password"),
  authDisplayName: $("#auth-display-name"),
  displayNameField: $("#display-name-field"),
  authError: $("#auth-error"),
  authSubmit: $("#auth-submit"),
  authSwitch: $("#auth-switch"),
  authSwitchText: $("#auth-switch-text"),
  loadingView: $("#loading-view"),
  appView: $("#app-view"),
  guildList: $("#guild-list"),
  dmHomeBtn: $("#dm-home-btn"),
  memberPanel: $("#member-panel"),
  memberList: $("#member-list"),
  memberCount: $("#member-count"),
  searchForm: $("#search-form"),
  searchInput: $("#search-input"),
  searchPanel: $("#search-panel"),
  searchStatus: $("#search-status"),
  searchResults: $("#search-results"),
  searchMore: $("#search-more"),
  searchClose: $("#search-close"),
  pendingList: $("#pending-attachments"),
  attachBtn: $("#attach-btn"),
  fileInput: $("#file-input"),
  addGuildBtn: $("#add-guild-btn"),
  guildName: $("#guild-name"),
  inviteBtn: $("#invite-btn"),
  inviteBox: $("#invite-box"),
  inviteCode: $("#invite-code"),
  inviteCopy: $("#invite-copy"),
  inviteLink: $("#invite-link"),
  inviteClose: $("#invite-close"),
  channelList: $("#channel-list"),
  voicePanel: $("#voice-panel"),
  voiceChannelName: $("#voice-channel-name"),
  voiceDisconnect: $("#voice-disconnect"),
  meAvatar: $("#me-avatar"),
  meName: $("#me-name"),
  meUsername: $("#me-username"),
  wsState: $("#ws-state"),
  logoutBtn: $("#logout-btn"),
  channelTitle: $("#channel-title"),
  chatError: $("#chat-error"),
  emptyView: $("#empty-view"),
  emptyAddBtn: $("#empty-add-btn"),
  textView: $("#text-view"),
  scroller: $("#message-scroller"),
  historyStatus: $("#history-status"),
  messages: $("#messages"),
  composer: $("#composer"),
  input: $("#message-input"),
  replyBanner: $("#reply-banner"),
  replyName: $("#reply-name"),
  replyCancel: $("#reply-cancel"),
  typing: $("#typing"),
  roomView: $("#room-view"),
  guildDialog: $("#guild-dialog"),
  createGuildForm: $("#create-guild-form"),
  newGuildName: $("#new-guild-name"),
  joinGuildForm: $("#join-guild-form"),
  inviteInput: $("#invite-input"),
  guildDialogError: $("#guild-dialog-error"),
  guildDialogClose: $("#guild-dialog-close"),
  channelDialog: $("#channel-dialog"),
  channelForm: $("#channel-form"),
  newChannelKind: $("#new-channel-kind"),
  newChannelName: $("#new-channel-name"),
  newChannelLimit: $("#new-channel-limit"),
  userLimitField: $("#user-limit-field"),
  channelDialogError: $("#channel-dialog-error"),
  channelDialogClose: $("#channel-dialog-close"),
};

/** Creates an element: `h("li", {class: "x", dataset: {id}}, child, "text")`. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key === "innerHTML") el.innerHTML = value; // constant markup only, never user text
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child != null && child !== false) el.append(child);
  return el;
}

const SPEAKER_ICON =
  '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M11 5 6 9H3v6h3l5 4z"/><path d="M15.5 8.5a5 5 0 0 1 0 7M18.5 5.5a9 9 0 0 1 0 13"/></svg>';

function initials(name) {
  const words = (name || "?").trim().split(/\s+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map((w) => [...w][0])
    .join("")
    .toUpperCase();
}

function showView(view) {
  document.body.dataset.view = view;
  ui.authView.hidden = view !== "auth";
  ui.loadingView.hidden = view !== "loading";
  ui.appView.hidden = view !== "app";
}

function renderMe() {
  const user = chat.user ?? auth.user;
  ui.meName.textContent = user?.display_name ?? "";
  ui.meUsername.textContent = user ? `@${user.username}` : "";
  ui.meAvatar.textContent = initials(user?.display_name ?? user?.username ?? "?");
}

function renderStatus() {
  const state = gateway.state;
  ui.wsState.dataset.state = state;
  ui.wsState.textContent =
    { ready: "Online", reconnecting: "Reconnecting…", resuming: "Reconnecting…", idle: "Offline" }[state] ??
    "Connecting…";
}

function renderGuilds() {
  const dmUnread = [...chat.dms.keys()].some((c) => chat.unread.has(c));
  ui.dmHomeBtn.classList.toggle("unread", dmUnread);
  if (inDmHome()) ui.dmHomeBtn.setAttribute("aria-current", "true");
  else ui.dmHomeBtn.removeAttribute("aria-current");
  ui.guildList.replaceChildren(
    ...chat.guildOrder.map((id) => {
      const guild = chat.guilds.get(id);
      const unread = [...guild.channels.keys()].some((c) => chat.unread.has(c));
      return h(
        "li",
        {},
        h("button", {
          type: "button",
          class: `guild-button${unread ? " unread" : ""}`,
          dataset: { guildId: id },
          title: guild.name,
          "aria-label": guild.name,
          "aria-current": id === chat.guildId ? "true" : null,
          text: initials(guild.name),
        }),
      );
    }),
  );
}

/** The DM list, in the sidebar while DMs are shown. */
function renderDmList() {
  ui.guildName.textContent = "Direct messages";
  ui.inviteBtn.hidden = true;
  const dms = dmList();
  const items = dms.map((c) => {
    const name = dmName(c);
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: `channel dm${chat.unread.has(c.id) ? " unread" : ""}`,
          dataset: { channelId: c.id, kind: c.kind },
          "aria-current": chat.view === "text" && c.id === chat.channelId ? "true" : null,
          title: name,
        },
        h("span", { class: "avatar-dot small", "aria-hidden": "true", text: initials(name) }),
        h("span", { class: "channel-name", text: name }),
        c.kind === "group_dm" ? h("span", { class: "user-limit", text: String(c.recipients.length) }) : null,
      ),
    );
  });
  ui.channelList.replaceChildren(
    h(
      "li",
      { class: "category" },
      h("div", { class: "category-header" }, h("span", { class: "category-name", text: "Direct messages" })),
      items.length
        ? h("ul", { class: "dm-list" }, items)
        : h("p", { class: "hint small dm-empty", text: "No conversations yet. Message someone from a server's member list." }),
    ),
  );
  renderGuilds();
}

/** The shown guild's members, each with a button to message them. */
function renderMembers() {
  const guild = currentGuild();
  const ids = guild ? chat.members.get(guild.id) : null;
  ui.memberPanel.hidden = !guild;
  if (!guild) {
    ui.memberList.replaceChildren();
    return;
  }
  const sorted = [...(ids ?? [])].sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
  ui.memberCount.textContent = ids ? String(ids.length) : "…";
  ui.memberList.replaceChildren(
    ...sorted.map((id) => {
      const user = id === chat.user?.id ? chat.user : chat.users.get(id);
      const name = nameOf(id);
      return h(
        "li",
        { class: "member", dataset: { userId: id } },
        h("span", { class: "avatar-dot small", "aria-hidden": "true", text: initials(name) }),
        h(
          "span",
          { class: "member-info" },
          h("span", { class: "member-name", text: name }),
          h("span", { class: "member-username", text: user?.username ? `@${user.username}` : "" }),
        ),
        id === chat.user?.id
          ? null
          : h("button", { type: "button", class: "small-button message-member", dataset: { userId: id }, title: `Message ${name}`, text: "Message" }),
      );
    }),
  );
}

function renderChannels() {
  if (inDmHome()) {
    renderDmList();
    return;
  }
  const guild = currentGuild();
  ui.guildName.textContent = guild?.name ?? "";
  ui.inviteBtn.hidden = !guild || !(hasPerm(guild.permissions, PERM.CREATE_INVITES) || guild.owner_id === chat.user?.id);
  if (!guild) {
    ui.channelList.replaceChildren();
    return;
  }
  const canManage = hasPerm(guild.permissions, PERM.MANAGE_CHANNELS) || guild.owner_id === chat.user?.id;
  const members = voiceMembers();
  const item = (c) => {
    const selected =
      (c.kind === "text" && chat.view === "text" && c.id === chat.channelId) ||
      (c.kind === "voice" && chat.view === "voice" && c.id === chat.voiceChannelId);
    const connected = c.kind === "voice" && c.id === chat.voiceChannelId;
    const button = h(
      "button",
      {
        type: "button",
        class: `channel${chat.unread.has(c.id) ? " unread" : ""}${connected ? " connected" : ""}`,
        dataset: { channelId: c.id, kind: c.kind },
        "aria-current": selected ? "true" : null,
        title: c.kind === "voice" ? `Join ${c.name}` : null,
      },
      c.kind === "voice" ? h("span", { class: "channel-icon", innerHTML: SPEAKER_ICON }) : h("span", { class: "channel-icon", text: "#" }),
      h("span", { class: "channel-name", text: c.name }),
    );
    if (c.kind === "voice" && c.user_limit) {
      const count = connected && members.length ? `${members.length}/${c.user_limit}` : `max ${c.user_limit}`;
      button.append(h("span", { class: "user-limit", title: `At most ${c.user_limit} people`, text: count }));
    }
    const li = h("li", {}, button);
    if (connected && members.length) {
      li.append(
        h(
          "ul",
          { class: "voice-members" },
          members.map((m) =>
            h(
              "li",
              { class: `voice-member${m.speaking ? " speaking" : ""}`, dataset: { identity: m.identity } },
              h("span", { class: "avatar-dot small", text: initials(m.name) }),
              h("span", { class: "voice-member-name", text: m.name }),
            ),
          ),
        ),
      );
    }
    return li;
  };
  const tree = channelTree(guild);
  ui.channelList.replaceChildren(
    ...tree.top.map(item),
    ...tree.groups.map(({ category, channels }) =>
      h(
        "li",
        { class: "category", dataset: { channelId: category.id } },
        h(
          "div",
          { class: "category-header" },
          h("span", { class: "category-name", text: category.name }),
          canManage
            ? h("button", {
                type: "button",
                class: "add-channel",
                dataset: { parentId: category.id },
                title: `Create a channel in ${category.name}`,
                "aria-label": `Create a channel in ${category.name}`,
                text: "+",
              })
            : null,
        ),
        h("ul", {}, channels.map(item)),
      ),
    ),
  );
  renderGuilds();
}

function renderVoicePanel() {
  const state = window.parlor?.state;
  const active = state === "joining" || state === "joined";
  ui.voicePanel.hidden = !active;
  const { channel, guild } = findChannel(chat.voiceChannelId);
  ui.voiceChannelName.textContent = channel ? `${channel.name} / ${guild.name}` : "";
}

function renderMain() {
  const guild = currentGuild();
  const home = inDmHome();
  let view = chat.view;
  if (!guild && !home) view = chat.guildOrder.length ? "none" : "empty";
  else if (view === "text" && !chat.channelId) view = "none";
  ui.appView.dataset.pane = view;
  ui.emptyView.hidden = view !== "empty" && view !== "none";
  ui.emptyView.querySelector("h2").textContent =
    view === "empty" ? "No servers yet" : home ? "No conversation open" : "No text channel here";
  ui.emptyView.querySelector(".hint").textContent =
    view === "empty"
      ? "Create a server for your friends, or join one with an invite code."
      : home
        ? "Pick a conversation, or message someone from a server's member list."
        : "This server has no text channel you can see.";
  ui.searchForm.hidden = view !== "text";
  if (view !== "text" && chat.search) closeSearch();
  ui.emptyAddBtn.hidden = view !== "empty";
  ui.textView.hidden = view !== "text";
  ui.roomView.hidden = view !== "voice";
  let title = "";
  let icon = null;
  if (view === "text" && home) {
    const channel = chat.dms.get(chat.channelId);
    title = dmName(channel);
    icon = h("span", { class: "channel-icon", text: "@" });
    ui.input.placeholder = channel ? `Message @${title}` : "Message";
    ui.searchInput.placeholder = "Search this conversation";
  } else if (view === "text") {
    const channel = guild.channels.get(chat.channelId);
    title = channel ? channel.name : "";
    icon = h("span", { class: "channel-icon", text: "#" });
    ui.input.placeholder = channel ? `Message #${channel.name}` : "Message";
    ui.searchInput.placeholder = `Search ${guild.name}`;
  } else if (view === "voice") {
    const channel = findChannel(chat.voiceChannelId).channel;
    title = channel ? channel.name : "";
    icon = h("span", { class: "channel-icon", innerHTML: SPEAKER_ICON });
  }
  ui.channelTitle.replaceChildren(...(title ? [icon, h("span", { class: "channel-title-name", text: title })] : []));
  document.title = title
    ? `${view === "text" ? (home ? "@" : "#") : "🔊 "}${title} · ${home ? "Direct messages" : guild?.name ?? ""} · Parlor`
    : "Parlor";
}

function formatTime(ms) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return `Today at ${time}`;
  if (d.toDateString() === yesterday.toDateString()) return `Yesterday at ${time}`;
  return `${d.toLocaleDateString()} ${time}`;
}

function renderHistoryStatus() {
  const ch = chat.channels.get(chat.channelId);
  const channel = findChannel(chat.channelId).channel;
  let text = "";
  if (!ch || ch.loading) text = "Loading messages…";
  else if (ch.failed && !ch.loaded) text = "Could not load messages.";
  else if (ch.loadingOlder) text = "Loading older messages…";
  else if (ch.loaded && !ch.hasMore) {
    text = DM_KINDS.has(channel?.kind)
      ? `This is the start of your conversation with ${dmName(channel)}.`
      : `This is the start of #${channel?.name ?? "this channel"}.`;
  }
  ui.historyStatus.textContent = text;
  ui.historyStatus.dataset.state = ch?.loaded && !ch.hasMore ? "start" : ch?.loading || ch?.loadingOlder ? "loading" : "";
}

/**
 * Brings the message list up to date with the shown channel's messages, in id order,
 * reusing elements. Keeps the view at the bottom if it was there; `keepOffset` keeps it
 * where it was after older messages went in above.
 */
function renderMessages({ toBottom = false, keepOffset = false, keepTop = false } = {}) {
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
  for (const m of messages) {
    const continued =
      previous !== null &&
      previous.author_id === m.author_id &&
      !m.reply_to &&
      m.created_at - previous.created_at < GROUP_WINDOW_MS;
    let el = chat.messageEls.get(m.id);
    if (!el) {
      el = h("li", { class: "message", dataset: { messageId: m.id } });
      chat.messageEls.set(m.id, el);
    }
    updateMessage(el, m, continued, ch);
    if (el === cursor) cursor = cursor.nextElementSibling;
    else ui.messages.insertBefore(el, cursor);
    previous = m;
  }
  renderHistoryStatus();
  // With pages still to come below (after a jump), the reader stays where they are.
  if (keepTop) return;
  if ((toBottom || wasAtBottom) && !ch?.hasNewer) s.scrollTop = s.scrollHeight;
  else if (keepOffset) s.scrollTop = s.scrollHeight - fromBottom;
}

function updateMessage(el, m, continued, ch) {
  const mine = m.author_id === chat.user?.id;
  const editing = chat.editing === m.id;
  const author = nameOf(m.author_id);
  const replied = m.reply_to ? ch.messages.get(m.reply_to) : null;
  const key = JSON.stringify([
    m.content,
    m.edited_at,
    author,
    continued,
    editing,
    m.reactions,
    m.attachments?.map((a) => a.id),
    m.reply_to,
    replied ? [replied.content, nameOf(replied.author_id)] : null,
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
          ? [h("b", { text: nameOf(replied.author_id) }), " ", h("span", { class: "reply-snippet", text: replied.content.slice(0, 120) })]
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
    parts.push(
      h(
        "div",
        { class: "message-body" },
        h("span", { class: "content", text: m.content }),
        m.edited_at ? h("span", { class: "edited", title: `Edited ${new Date(m.edited_at).toLocaleString()}`, text: "(edited)" }) : null,
      ),
    );
  }
  if (m.attachments?.length && !editing) parts.push(renderAttachments(m.attachments));
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
  const guild = currentGuild();
  const canDelete = mine || (guild && hasPerm(guild.permissions, PERM.MANAGE_MESSAGES));
  parts.push(
    h(
      "div",
      { class: "message-actions" },
      h("button", { type: "button", class: "action", dataset: { action: "react", emoji: "👍" }, title: "React with 👍", text: "👍" }),
      h("button", { type: "button", class: "action reply-btn", dataset: { action: "reply" }, text: "Reply" }),
      mine ? h("button", { type: "button", class: "action edit-btn", dataset: { action: "edit" }, text: "Edit" }) : null,
      canDelete ? h("button", { type: "button", class: "action delete-btn", dataset: { action: "delete" }, text: "Delete" }) : null,
    ),
  );
  el.replaceChildren(...parts);
}

function formatSize(bytes) {
  if (!(bytes >= 0)) return "";
  if (bytes >= 1_048_576) return `${(bytes / 1_048_576).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

/** A message's files: images (their thumbnails) linking to the file, or download links. */
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

/** The files waiting to go with the next message in the shown channel. */
function renderPending() {
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

/** The search panel: results, newest first, each opening its message. */
function renderSearch() {
  const search = chat.search;
  ui.searchPanel.hidden = !search;
  if (!search) {
    ui.searchResults.replaceChildren();
    ui.searchMore.hidden = true;
    return;
  }
  const n = search.results.length;
  ui.searchStatus.textContent = search.error
    ? `Search failed: ${search.error.message}`
    : search.loading && n === 0
      ? "Searching…"
      : `${n}${search.nextBefore ? "+" : ""} result${n === 1 ? "" : "s"} for “${search.query}”`;
  ui.searchPanel.dataset.state = search.loading ? "loading" : search.error ? "error" : "done";
  ui.searchMore.hidden = !search.nextBefore || search.loading;
  ui.searchResults.replaceChildren(
    ...search.results.map((m) => {
      const { channel } = findChannel(m.channel_id);
      const where = !channel ? "" : DM_KINDS.has(channel.kind) ? `@${dmName(channel)}` : `#${channel.name}`;
      const files = m.attachments?.length ?? 0;
      return h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "search-result", dataset: { messageId: m.id, channelId: m.channel_id } },
          h(
            "span",
            { class: "search-result-header" },
            h("span", { class: "author", text: nameOf(m.author_id) }),
            h("span", { class: "search-result-channel", text: where }),
            h("time", { class: "timestamp", datetime: new Date(m.created_at).toISOString(), text: formatTime(m.created_at) }),
          ),
          h("span", { class: "search-result-content", text: m.content }),
          files ? h("span", { class: "search-result-files", text: `📎 ${files} file${files === 1 ? "" : "s"}` }) : null,
        ),
      );
    }),
  );
}

function renderTyping() {
  const typers = chat.typing.get(chat.channelId);
  const now = Date.now();
  const names = typers ? [...typers].filter(([, until]) => until > now).map(([id]) => nameOf(id)) : [];
  let parts = [];
  const b = (name) => h("b", { text: name });
  if (names.length === 1) parts = [b(names[0]), " is typing…"];
  else if (names.length === 2) parts = [b(names[0]), " and ", b(names[1]), " are typing…"];
  else if (names.length === 3) parts = [b(names[0]), ", ", b(names[1]), " and ", b(names[2]), " are typing…"];
  else if (names.length > 3) parts = ["Several people are typing…"];
  ui.typing.replaceChildren(...parts);
  ui.typing.classList.toggle("active", names.length > 0);
}

function setReply(target) {
  chat.replyTo = target;
  ui.replyBanner.hidden = !target;
  ui.replyName.textContent = target ? nameOf(target.authorId) : "";
}

let chatErrorTimer = null;

function showChatError(message, code) {
  console.warn("parlor chat:", code, message);
  ui.chatError.textContent = message;
  ui.chatError.dataset.code = code ?? "";
  ui.chatError.hidden = false;
  clearTimeout(chatErrorTimer);
  chatErrorTimer = setTimeout(() => {
    ui.chatError.hidden = true;
  }, 10_000);
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 240)}px`;
}

// ---------------------------------------------------------------------------------------------
// Signing in and out
// ---------------------------------------------------------------------------------------------

let authMode = "signin";

const AUTH_MESSAGES = {
  username_taken: "That username is taken.",
  invalid_credentials: "Wrong username or password.",
  invalid_username: "Usernames are 2–32 letters, digits, “_” and “.”.",
  invalid_password: "Passwords are 8–256 characters.",
  invalid_display_name: "Display names are 1–64 characters.",
  network: "Could not reach the server.",
};

function setAuthMode(mode) {
  authMode = mode;
  const signup = mode === "signup";
  ui.authTitle.textContent = signup ? "Create an account" : "Welcome back";
  ui.authSubmit.textContent = signup ? "Create account" : "Sign in";
  ui.authSwitchText.textContent = signup ? "Already have an account?" : "Need an account?";
  ui.authSwitch.textContent = signup ? "Sign in" : "Create one";
  ui.displayNameField.hidden = !signup;
  ui.authPassword.autocomplete = signup ? "new-password" : "current-password";
  ui.authForm.dataset.mode = mode;
  showAuthError(null);
}

function showAuthError(error) {
  ui.authError.hidden = !error;
  ui.authError.textContent = !error
    ? ""
    : error.code === "rate_limited"
      ? `Too many attempts. Try again in ${error.retryAfter ?? 60} s.`
      : AUTH_MESSAGES[error.code] ?? error.message;
  ui.authError.dataset.code = error?.code ?? "";
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const username = ui.authUsername.value.trim();
  const password = ui.authPassword.value;
  const body = { username, password };
  if (authMode === "signup" && ui.authDisplayName.value.trim()) body.display_name = ui.authDisplayName.value.trim();
  ui.authSubmit.disabled = true;
  showAuthError(null);
  try {
    const session = await http("POST", authMode === "signup" ? "/auth/register" : "/auth/login", body);
    auth.adopt(session);
    ui.authPassword.value = "";
    enterApp();
  } catch (error) {
    showAuthError(error);
  } finally {
    ui.authSubmit.disabled = false;
  }
}

function enterApp() {
  chat.user = auth.user;
  cacheUser(auth.user);
  renderMe();
  renderStatus();
  renderMain();
  showView("app");
  gateway.start();
}

/** Forgets the signed-in user's state (not their saved selection). */
function resetChat() {
  gateway.reset();
  leaveRoom();
  Object.assign(chat, {
    user: null,
    guildOrder: [],
    guildId: null,
    channelId: null,
    view: "text",
    voiceChannelId: null,
    replyTo: null,
    editing: null,
    renderedChannel: null,
    pending: [],
    search: null,
  });
  for (const key of ["guilds", "users", "membersFetchedAt", "members", "dms", "dmActivity", "channels", "typing", "typingSentAt", "lastChannel", "messageEls"]) {
    chat[key].clear();
  }
  chat.unread.clear();
  ui.messages.replaceChildren();
  hideInvite();
  renderGuilds();
  renderChannels();
  renderMembers();
  renderPending();
  renderSearch();
  renderTyping();
}

async function signOut() {
  const token = storage.get(REFRESH_KEY);
  storage.remove(REFRESH_KEY);
  storage.remove(LAST_KEY);
  resetChat();
  auth.clear();
  showSignIn();
  if (token) http("POST", "/auth/logout", { refresh_token: token }).catch(() => {});
}

function showSignIn(message = null) {
  setAuthMode(authMode);
  if (message) showAuthError(new ApiError("session_ended", message));
  ui.authHint.textContent = chat.pendingInvite
    ? "Sign in or create an account to accept your invite."
    : "Sign in to Parlor, or create an account.";
  showView("auth");
  ui.authUsername.focus();
}

auth.onLost = () => {
  resetChat();
  showSignIn("Your session has ended. Sign in again.");
};

// ---------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------

function openGuildDialog() {
  ui.guildDialogError.hidden = true;
  ui.newGuildName.value = "";
  ui.inviteInput.value = "";
  ui.guildDialog.showModal();
  ui.newGuildName.focus();
}

/** Runs a dialog's action, showing its error in the dialog. */
async function dialogAction(button, errorEl, action) {
  button.disabled = true;
  errorEl.hidden = true;
  try {
    await action();
    return true;
  } catch (error) {
    errorEl.textContent = error.message;
    errorEl.dataset.code = error.code ?? "";
    errorEl.hidden = false;
    return false;
  } finally {
    button.disabled = false;
  }
}

function wire() {
  ui.authForm.addEventListener("submit", onAuthSubmit);
  ui.authSwitch.addEventListener("click", () => setAuthMode(authMode === "signin" ? "signup" : "signin"));

  ui.guildList.addEventListener("click", (event) => {
    const button = event.target.closest("[data-guild-id]");
    if (button) selectGuild(button.dataset.guildId);
  });
  ui.dmHomeBtn.addEventListener("click", () => selectGuild(DM_HOME));
  ui.memberList.addEventListener("click", (event) => {
    const button = event.target.closest(".message-member");
    if (button) openDm(button.dataset.userId);
  });
  ui.addGuildBtn.addEventListener("click", openGuildDialog);
  ui.emptyAddBtn.addEventListener("click", openGuildDialog);
  ui.guildDialogClose.addEventListener("click", () => ui.guildDialog.close());
  ui.createGuildForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = await dialogAction($("#create-guild-btn"), ui.guildDialogError, () => createGuild(ui.newGuildName.value.trim()));
    if (ok) ui.guildDialog.close();
  });
  ui.joinGuildForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = await dialogAction($("#join-guild-btn"), ui.guildDialogError, () => joinByInvite(ui.inviteInput.value));
    if (ok) ui.guildDialog.close();
  });

  ui.inviteBtn.addEventListener("click", createInvite);
  ui.inviteClose.addEventListener("click", hideInvite);
  ui.inviteCopy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(ui.inviteCode.value);
      ui.inviteCopy.textContent = "Copied";
    } catch {
      ui.inviteCode.select();
      ui.inviteCopy.textContent = "Press Ctrl+C";
    }
    setTimeout(() => (ui.inviteCopy.textContent = "Copy"), 2_000);
  });

  ui.channelList.addEventListener("click", (event) => {
    const add = event.target.closest(".add-channel");
    if (add) {
      ui.channelForm.dataset.parentId = add.dataset.parentId;
      ui.channelDialogError.hidden = true;
      ui.newChannelName.value = "";
      ui.newChannelLimit.value = "";
      const category = currentGuild()?.channels.get(add.dataset.parentId);
      ui.newChannelKind.value = /voice/i.test(category?.name ?? "") ? "voice" : "text";
      ui.userLimitField.hidden = ui.newChannelKind.value !== "voice";
      ui.channelDialog.showModal();
      ui.newChannelName.focus();
      return;
    }
    const button = event.target.closest(".channel");
    if (!button) return;
    if (button.dataset.kind === "voice") joinVoice(button.dataset.channelId);
    else openChannel(button.dataset.channelId);
  });
  ui.newChannelKind.addEventListener("change", () => {
    ui.userLimitField.hidden = ui.newChannelKind.value !== "voice";
  });
  ui.channelDialogClose.addEventListener("click", () => ui.channelDialog.close());
  ui.channelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const limit = Number(ui.newChannelLimit.value) || null;
    const ok = await dialogAction($("#create-channel-btn"), ui.channelDialogError, () =>
      createChannel(ui.newChannelKind.value, ui.newChannelName.value.trim(), ui.channelForm.dataset.parentId, limit),
    );
    if (ok) ui.channelDialog.close();
  });

  ui.voiceDisconnect.addEventListener("click", () => leaveRoom());
  ui.voicePanel.addEventListener("click", (event) => {
    // The panel's text leads back to the call.
    if (!event.target.closest("button") && chat.voiceChannelId) joinVoice(chat.voiceChannelId);
  });
  ui.logoutBtn.addEventListener("click", signOut);

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  ui.input.addEventListener("keydown", (event) => {
    // Not while an input method (Korean, Japanese, ...) is composing a character.
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendMessage();
    } else if (event.key === "ArrowUp" && !ui.input.value) {
      // Edit the last message of ours, as Discord does.
      const ch = chat.channels.get(chat.channelId);
      const mine = ch && [...ch.messages.values()].filter((m) => m.author_id === chat.user?.id).sort((a, b) => compareIds(b.id, a.id))[0];
      if (mine) {
        event.preventDefault();
        chat.editing = mine.id;
        renderMessages();
      }
    } else if (event.key === "Escape" && chat.replyTo) {
      setReply(null);
    }
  });
  ui.input.addEventListener("input", () => {
    autosize();
    noteTyping();
  });
  ui.replyCancel.addEventListener("click", () => setReply(null));

  // Files: the attach button, pasting and dropping.
  ui.attachBtn.addEventListener("click", () => ui.fileInput.click());
  ui.fileInput.addEventListener("change", () => {
    addFiles([...ui.fileInput.files]);
    ui.fileInput.value = "";
  });
  ui.input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    event.preventDefault();
    addFiles(files);
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
    addFiles(files);
  });
  ui.pendingList.addEventListener("click", (event) => {
    const button = event.target.closest(".remove-pending");
    if (button) removePending(Number(button.dataset.key));
  });

  // Search.
  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch(ui.searchInput.value);
  });
  ui.searchInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      ui.searchInput.value = "";
      closeSearch();
    }
  });
  ui.searchClose.addEventListener("click", () => {
    ui.searchInput.value = "";
    closeSearch();
  });
  ui.searchMore.addEventListener("click", () => runSearch(null, { more: true }));
  ui.searchResults.addEventListener("click", (event) => {
    const result = event.target.closest(".search-result");
    if (result) jumpToMessage(result.dataset.channelId, result.dataset.messageId);
  });

  ui.scroller.addEventListener("scroll", () => {
    const s = ui.scroller;
    if (s.scrollTop < LOAD_OLDER_PX) loadOlder();
    if (s.scrollHeight - s.scrollTop - s.clientHeight < LOAD_OLDER_PX) loadNewer();
  });
  ui.messages.addEventListener("click", (event) => {
    const ref = event.target.closest(".reply-ref");
    if (ref) {
      chat.messageEls.get(ref.dataset.replyTo)?.scrollIntoView({ block: "center" });
      return;
    }
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const el = button.closest(".message");
    const id = el.dataset.messageId;
    switch (button.dataset.action) {
      case "react":
        toggleReaction(id, button.dataset.emoji);
        break;
      case "reply":
        setReply({ id, authorId: el.dataset.authorId });
        ui.input.focus();
        break;
      case "edit":
        chat.editing = id;
        renderMessages();
        break;
      case "delete":
        // A second click within 3 s confirms.
        if (button.dataset.armed) {
          deleteMessage(id);
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
    const input = event.target.closest(".edit-input");
    if (!input || event.isComposing || event.keyCode === 229) return;
    const id = input.closest(".message").dataset.messageId;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      saveEdit(id, input.value);
    } else if (event.key === "Escape") {
      chat.editing = null;
      renderMessages();
      ui.input.focus();
    }
  });
  ui.chatError.addEventListener("click", () => {
    ui.chatError.hidden = true;
  });
  $("#error").addEventListener("click", clearRoomError);

  addEventListener("online", () => gateway.reconnectNow());
  // Leaving the page ends the session (close 1000), so the others see us go offline now
  // rather than when an unresumed session times out. A page restored from the back-forward
  // cache starts a new one and catches up.
  addEventListener("pagehide", () => {
    if (gateway.stopped) return;
    gateway.stop();
    chat.restartOnShow = true;
  });
  addEventListener("pageshow", (event) => {
    if (!event.persisted || !chat.restartOnShow || !auth.signedIn) return;
    chat.restartOnShow = false;
    gateway.start();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && chat.channelId && chat.unread.delete(chat.channelId)) renderChannels();
  });
}

/** Test and debugging handle. */
window.parlorChat = {
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
    return [...ui.messages.querySelectorAll(".message")].map((el) => ({
      id: el.dataset.messageId,
      authorId: el.dataset.authorId,
      author: el.querySelector(".author")?.textContent ?? null,
      content: el.querySelector(".content")?.textContent ?? null,
      edited: Boolean(el.querySelector(".edited")),
      attachments: [...el.querySelectorAll(".attachment")].map((a) => ({
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
    return dmList().map((c) => ({ id: c.id, kind: c.kind, name: dmName(c), recipients: [...c.recipients] }));
  },
  /** The DM shown, if the DMs are. */
  get openDmId() {
    return inDmHome() && chat.view === "text" ? chat.channelId : null;
  },
  /** The shown guild's members: {id, name, username}. */
  members() {
    return [...ui.memberList.querySelectorAll(".member")].map((el) => ({
      id: el.dataset.userId,
      name: el.querySelector(".member-name").textContent,
      username: el.querySelector(".member-username").textContent.replace(/^@/, ""),
    }));
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
      results: [...ui.searchResults.querySelectorAll(".search-result")].map((el) => ({
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
  signOut,
};

async function init() {
  wire();
  configureRoom({ onState: onRoomState, onRender: onRoomRender });
  setAuthMode("signin");
  chat.pendingInvite = new URLSearchParams(location.search).get("invite");
  renderStatus();
  if (storage.get(REFRESH_KEY)) {
    showView("loading");
    try {
      await auth.refresh();
      enterApp();
      return;
    } catch (error) {
      if (error.code !== "invalid_refresh_token") {
        showSignIn(`Could not restore your session: ${error.message}`);
        return;
      }
    }
  }
  showSignIn();
}

init();
