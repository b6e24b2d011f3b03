// @ts-check
// The room's signaling connection: one WebSocket to /ws carrying the signaling protocol
// (docs/protocol.md, proto/src/signal.rs), with requests matched to replies, heartbeats and
// resuming the session over a new socket when the old one drops.

import { ParlorError } from "../shared/errors.js";
import { Heartbeat, backoffMs, detachSocket, parseFrame, sendFrame, sleep } from "../shared/socket.js";

const PROTOCOL = 1;

/**
 * Server frames outside the session's numbering: they carry the current `seq` (so it is not
 * unique) and are never replayed.
 */
const UNNUMBERED_OPS = new Set(["hello", "heartbeat_ack", "active_speakers", "resumed", "shutdown"]);

const REQUEST_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** After a resume, requests still unanswered this long were lost with the old socket. */
const RESEND_AFTER_RESUME_MS = 1_000;

/** Frames too frequent to trace. */
const QUIET_OPS = new Set(["heartbeat", "heartbeat_ack", "active_speakers"]);

/**
 * Protocol trace, at the console's "verbose" level.
 * @param {string} direction
 * @param {any} frame
 */
function trace(direction, frame) {
  if (QUIET_OPS.has(frame.op)) return;
  const id = frame.id != null ? ` #${frame.id}` : "";
  const seq = frame.seq != null ? ` seq=${frame.seq}` : "";
  const offer = frame.d?.offer_id != null ? ` offer_id=${frame.d.offer_id}` : "";
  const code = frame.op === "error" ? ` ${frame.d?.code}` : "";
  console.debug(`parlor ${direction} ${frame.op}${id}${seq}${offer}${code}`);
}

/**
 * The /ws connection: requests matched to replies by `id`, heartbeats, and resuming the
 * session over a new socket when the old one drops.
 *
 * `handlers`:
 *  - onEvent(frame): every server frame that is not a reply to a request
 *  - onReconnecting(), onResumed(resumed): the socket dropped / the session was resumed
 *  - onExpired(error): the session is gone and must be started again from scratch
 */
export class Signal {
  /**
   * @param {string} url
   * @param {{onEvent: (frame: any) => void, onReconnecting?: () => void,
   *   onResumed?: (resumed: any) => void, onExpired?: (error: any) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.socketCount = 0; // sockets opened so far; requests remember which one sent them
    this.nextId = 1;
    /** @type {Map<number, {frame: any, socket: number, handshake: boolean, resolve: (frame: any) => void, reject: (error: any) => void}>} */
    this.pending = new Map(); // id -> { frame, socket, handshake, resolve, reject }
    /** @type {any[]} */
    this.outbox = []; // frames sent while the session is not usable
    this.lastSeq = 0; // highest `seq` of a numbered frame received
    this.lastEvent = 0; // highest `ev` (room event number) received: another node can resume from it
    this.sessionId = null;
    this.heartbeatMs = 10_000;
    this.resumeWindowMs = 60_000;
    this.heartbeat = new Heartbeat();
    this.usable = false; // identified or resumed on the current socket
    this.reconnecting = false;
    this.closed = false;
  }

  /**
   * Opens a socket and waits for `hello`.
   * @returns {Promise<any>} the `hello` frame's `d`
   */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.socketCount += 1;
      let greeted = false;
      // No session exists on the socket yet, so closing it ends nothing.
      const giveUp = setTimeout(() => greeted || ws.close(), CONNECT_TIMEOUT_MS);
      ws.onmessage = (event) => {
        const frame = parseFrame(event.data);
        if (frame === undefined) {
          console.warn("parlor: ignoring a frame that is not JSON");
          return;
        }
        if (!greeted && frame.op === "hello") {
          greeted = true;
          clearTimeout(giveUp);
          this.#startHeartbeat(frame.d ?? {});
          resolve(frame.d);
          return;
        }
        this.#onFrame(frame);
      };
      ws.onclose = (event) => {
        clearTimeout(giveUp);
        if (!greeted) reject(new ParlorError("connect_failed", "Could not connect to the server."));
        this.#onClose(ws, event);
      };
    });
  }

  /**
   * Starts a new session: `identify` → `ready`.
   * @param {string} token
   */
  async identify(token) {
    this.lastSeq = 0;
    this.lastEvent = 0;
    const ready = await this.request("identify", { token, protocol: PROTOCOL }, { handshake: true });
    this.sessionId = ready.d.session_id;
    this.#becomeUsable();
    return ready.d;
  }

  /**
   * Sends a request and resolves with the server's reply frame, or rejects with a
   * ParlorError for an `error` reply, a timeout or a lost session. `handshake` frames
   * (identify, resume) go out before the session is usable.
   * @param {string} op
   * @param {object} [d]
   * @param {{handshake?: boolean, timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  request(op, d = {}, { handshake = false, timeout = REQUEST_TIMEOUT_MS } = {}) {
    const id = this.nextId++;
    const frame = { op, id, d };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ParlorError("timeout", `The server did not answer "${op}".`));
      }, timeout);
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        this.pending.delete(id);
        fn(value);
      };
      const socket = this.socketCount;
      this.pending.set(id, { frame, socket, handshake, resolve: settle(resolve), reject: settle(reject) });
      this.#send(frame, handshake);
    });
  }

  /**
   * Sends a frame on the current socket right now, if it is open (for page unload).
   * @param {string} op
   * @param {object} [d]
   */
  sendNow(op, d = {}) {
    sendFrame(this.ws, { op, d });
  }

  /** Closes for good, which ends the session on the server. Pending requests fail. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.usable = false;
    this.heartbeat.stop();
    this.#rejectPending(() => true, new ParlorError("closed", "The connection was closed."));
    this.outbox = [];
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "bye");
  }

  /**
   * Sends now if the session is usable; queues otherwise. `direct` frames are never queued.
   * @param {any} frame
   * @param {boolean} direct
   */
  #send(frame, direct) {
    if ((direct || this.usable) && this.ws?.readyState === WebSocket.OPEN) {
      trace("->", frame);
      this.ws.send(JSON.stringify(frame));
    } else if (!direct && !this.closed) {
      this.outbox.push(frame);
    }
  }

  #becomeUsable() {
    this.usable = true;
    const queued = this.outbox;
    this.outbox = [];
    for (const frame of queued) this.#send(frame, false);
  }

  /** @param {any} frame */
  #onFrame(frame) {
    trace("<-", frame);
    // Numbered frames: skip what a resume replays twice. Frames before a session exists
    // have seq 0.
    if (frame.seq > 0 && !UNNUMBERED_OPS.has(frame.op)) {
      if (frame.seq <= this.lastSeq) return;
      this.lastSeq = frame.seq;
      if (typeof frame.ev === "number" && frame.ev > this.lastEvent) this.lastEvent = frame.ev;
    }
    if (frame.op === "heartbeat_ack") {
      this.heartbeat.ack();
      return;
    }
    if (frame.id != null) {
      const request = this.pending.get(frame.id);
      if (!request) return; // a late reply to a request that timed out
      if (frame.op === "error") request.reject(new ParlorError(frame.d?.code, frame.d?.message));
      else request.resolve(frame);
      return;
    }
    this.handlers.onEvent(frame);
  }

  /**
   * @param {(request: {handshake: boolean}) => boolean} which
   * @param {any} error
   */
  #rejectPending(which, error) {
    for (const request of [...this.pending.values()]) if (which(request)) request.reject(error);
  }

  /**
   * Heartbeats on the current socket; two unanswered ones abandon it.
   * @param {any} hello
   */
  #startHeartbeat(hello) {
    this.heartbeat.stop();
    if (hello.heartbeat_interval_ms > 0) this.heartbeatMs = hello.heartbeat_interval_ms;
    if (hello.resume_window_ms > 0) this.resumeWindowMs = hello.resume_window_ms;
    const ws = this.ws;
    this.heartbeat.start({
      intervalMs: this.heartbeatMs,
      maxMissed: 2,
      isCurrent: () => ws === this.ws && ws.readyState === WebSocket.OPEN,
      beat: () => ws.send(JSON.stringify({ op: "heartbeat", d: { seq: this.lastSeq } })),
      onDead: () => this.#abandon(ws),
    });
  }

  /**
   * Gives up on a socket that stopped answering heartbeats. A Close frame would end the
   * session, so the socket is only detached; the server closes it in time.
   * @param {WebSocket} ws
   */
  #abandon(ws) {
    console.warn("parlor: no heartbeat_ack, abandoning the socket");
    detachSocket(ws);
    this.#onClose(ws, { code: 4009 }); // as the server would: no heartbeat
  }

  /**
   * @param {WebSocket} ws
   * @param {{code: number}} event
   */
  #onClose(ws, event) {
    if (ws !== this.ws) return;
    this.usable = false;
    this.heartbeat.stop();
    // identify/resume were on this socket; their replies will never come.
    this.#rejectPending((r) => r.handshake, new ParlorError("disconnected", "The connection dropped."));
    if (this.closed || this.reconnecting) return;
    // 4001: authentication failed; 1001: the server shut down and deleted the session.
    if (!this.sessionId || event.code === 4001 || event.code === 1001) {
      this.#expire(new ParlorError("disconnected", "The connection to the server was lost."));
      return;
    }
    console.warn(`parlor: connection dropped (${event.code}), resuming`);
    this.#resume();
  }

  /** Reconnects and resumes the session within the server's resume window. */
  async #resume() {
    this.reconnecting = true;
    this.handlers.onReconnecting?.();
    const deadline = Date.now() + this.resumeWindowMs;
    let attempt = 0;
    let failure = new ParlorError("session_expired", "Could not reconnect in time.");
    while (!this.closed && Date.now() < deadline) {
      await sleep(backoffMs(attempt, 4_000));
      attempt += 1;
      if (this.closed) return;
      try {
        await this.connect();
        // The missed frames are replayed (through #onFrame) before `resumed` arrives.
        const resumed = await this.request(
          "resume",
          { session_id: this.sessionId, seq: this.lastSeq, event: this.lastEvent || undefined },
          { handshake: true, timeout: 10_000 },
        );
        this.reconnecting = false;
        this.#becomeUsable();
        this.#resendLostRequests();
        this.handlers.onResumed?.(resumed.d);
        return;
      } catch (error) {
        // A socket that failed or dropped is worth another try; a refusal is final.
        if (!["connect_failed", "disconnected", "timeout"].includes(error.code)) {
          failure = error;
          break;
        }
      }
    }
    this.reconnecting = false;
    if (!this.closed) this.#expire(failure);
  }

  /**
   * Requests sent on an older socket were answered in the replay, are still being handled,
   * or were lost: sends again those that stay unanswered a little after the resume.
   */
  #resendLostRequests() {
    const socket = this.socketCount;
    setTimeout(() => {
      if (this.closed || !this.usable || socket !== this.socketCount) return;
      for (const request of this.pending.values()) {
        if (request.handshake || request.socket >= socket) continue;
        request.socket = socket;
        this.#send(request.frame, false);
      }
    }, RESEND_AFTER_RESUME_MS);
  }

  /** @param {any} error */
  #expire(error) {
    this.sessionId = null;
    this.#rejectPending(() => true, error);
    this.outbox = [];
    this.close();
    this.handlers.onExpired?.(error);
  }
}
