// @ts-check
// The chat WebSocket, /api/v1/gateway (docs/chat-api.md): identify or resume, heartbeats and
// reconnecting. A dropped connection resumes its session (the server replays what was
// missed); a refused resume identifies again, and `onReady` says the app must catch up.

import { Heartbeat, backoffMs, detachSocket, parseFrame, sendFrame, socketUrl } from "../shared/socket.js";
import { API } from "./api.js";

/** @typedef {import("./auth.js").Auth} Auth */
/** @typedef {import("./state.js").Stats} Stats */
/**
 * @typedef {{onReady: (d: any, info: {catchUp: boolean}) => void, onResumed?: () => void,
 *   onDispatch: (t: string, d: any) => void, onState?: (state: string) => void,
 *   onError?: (d: {code: string, message: string}) => void}} GatewayHandlers
 */

function gatewayUrl() {
  return socketUrl(`${API}/gateway`);
}

/**
 * The /api/v1/gateway connection: identify or resume, heartbeats, and reconnecting.
 *
 * `handlers`: onReady(d, {catchUp}) after `ready` (catchUp: an earlier session's state must
 * be caught up), onResumed(), onDispatch(t, d) for every other event, onState(state),
 * onError(d) for an operation the server refused.
 * States: idle, connecting, identifying, resuming, ready, reconnecting.
 */
export class Gateway {
  /**
   * @param {Auth} auth gives the token to identify and resume with
   * @param {Stats} stats counts identifies, resumes, reconnects, ...
   * @param {GatewayHandlers} handlers
   */
  constructor(auth, stats, handlers) {
    this.auth = auth;
    this.stats = stats;
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.state = "idle";
    /** @type {string | null} */
    this.sessionId = null;
    /** The `s` of the last event processed. */
    this.seq = 0;
    /** @type {string | null} The `p` (cluster stream position) of the last event that had one. */
    this.position = null;
    this.heartbeat = new Heartbeat();
    /** @type {ReturnType<typeof setTimeout> | null} */
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
    this.heartbeat.stop();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detachSocket(ws);
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "bye");
    }
    this.sessionId = null;
    this.seq = 0;
    this.position = null;
    this.#setState("idle");
  }

  /**
   * Sends an operation of the session (`presence`, `voice_state`); false when there is no
   * session to send it on (the caller sends its state again after the next `ready`).
   * @param {string} op
   * @param {any} d
   */
  send(op, d) {
    if (this.state !== "ready" || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    sendFrame(this.ws, { op, d });
    return true;
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
   * @param {{holdMs?: number, invalidateSession?: boolean}} [options]
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
      token = await this.auth.freshToken();
    } catch (error) {
      this.connecting = false;
      if (error.code !== "invalid_refresh_token") this.#retryLater();
      return;
    }
    this.connecting = false;
    if (this.stopped) return;
    if (this.hadReady) this.stats.reconnects += 1;
    const ws = new WebSocket(gatewayUrl());
    this.ws = ws;
    ws.onmessage = (event) => {
      if (ws === this.ws) this.#onMessage(ws, event, token);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.#onClose(event);
    };
  }

  /**
   * @param {WebSocket} ws
   * @param {MessageEvent} event
   * @param {string} token
   */
  #onMessage(ws, event, token) {
    const frame = parseFrame(event.data);
    if (frame === undefined) return;
    switch (frame.op) {
      case "hello":
        this.#startHeartbeat(ws, frame.d?.heartbeat_interval_ms);
        if (this.sessionId) {
          this.#setState("resuming");
          // `position` lets another chat node of a cluster take the session over.
          sendFrame(ws, {
            op: "resume",
            d: { token, session_id: this.sessionId, seq: this.seq, position: this.position },
          });
        } else {
          this.#identify(ws, token);
        }
        break;
      case "heartbeat_ack":
        this.heartbeat.ack();
        break;
      case "invalid_session":
        // The session is gone (or too far behind): a new one, then catch up by id.
        console.info("parlor chat: resume refused:", frame.d?.code);
        this.stats.invalidSessions += 1;
        this.sessionId = null;
        this.seq = 0;
        this.position = null;
        this.#identify(ws, token);
        break;
      case "dispatch":
        this.#onDispatch(frame);
        break;
      case "error":
        console.warn("parlor chat: gateway error:", frame.d?.code, frame.d?.message);
        this.handlers.onError?.(frame.d ?? {});
        break;
      default:
        break;
    }
  }

  /**
   * @param {WebSocket} ws
   * @param {string} token
   */
  #identify(ws, token) {
    this.stats.identifies += 1;
    this.#setState("identifying");
    sendFrame(ws, { op: "identify", d: { token } });
  }

  /** @param {any} frame */
  #onDispatch(frame) {
    if (frame.t === "ready") {
      this.sessionId = frame.d.session_id;
      this.seq = frame.s ?? 1;
      this.position = frame.p ?? null;
      const catchUp = this.hadReady;
      this.hadReady = true;
      this.attempt = 0;
      this.#setState("ready");
      this.handlers.onReady(frame.d, { catchUp });
      return;
    }
    if (typeof frame.s === "number") {
      if (frame.s <= this.seq) {
        this.stats.replayedEvents += 1;
        return;
      }
      this.seq = frame.s;
      if (typeof frame.p === "string") this.position = frame.p;
    }
    if (frame.t === "resumed") {
      this.stats.resumes += 1;
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

  /** @param {{code: number, reason: string}} event */
  #onClose(event) {
    this.ws = null;
    this.heartbeat.stop();
    if (this.stopped) return;
    console.info(`parlor chat: gateway closed (${event.code}${event.reason ? ` ${event.reason}` : ""}), reconnecting`);
    if (event.code === 4001) this.auth.invalidate(); // the token was refused: refresh first
    if (event.code === 4009 && event.reason === "too slow") this.sessionId = null; // not resumable
    if (event.code === 4004) {
      // Signed out (logout elsewhere, a password change): the refresh fails and signs out here.
      this.sessionId = null;
      this.auth.invalidate();
    }
    this.#retryLater();
  }

  #retryLater() {
    this.#setState(this.hadReady ? "reconnecting" : "connecting");
    const backoff = backoffMs(this.attempt, 10_000, true);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = Math.max(backoff, this.holdUntil - Date.now());
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /**
   * Heartbeats on `ws`; one left unanswered for a whole interval means the connection is
   * dead even if not closed.
   * @param {WebSocket} ws
   * @param {number | undefined} intervalMs
   */
  #startHeartbeat(ws, intervalMs) {
    this.heartbeat.start({
      intervalMs: intervalMs > 0 ? intervalMs : 30_000,
      maxMissed: 1,
      isCurrent: () => ws === this.ws,
      // The last event received: the server need not keep it or any before it.
      beat: () => sendFrame(ws, this.seq > 0 ? { op: "heartbeat", d: { seq: this.seq } } : { op: "heartbeat" }),
      onDead: () => {
        console.warn("parlor chat: no heartbeat_ack, reconnecting");
        detachSocket(ws);
        ws.close();
        this.#onClose({ code: 0, reason: "no heartbeat_ack" });
      },
    });
  }

  /** @param {string} state */
  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState?.(state);
  }
}
