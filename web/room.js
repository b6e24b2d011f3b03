// Parlor rooms: the media side of the web app, shared by the guest room page (app.js) and
// the chat app's voice channels (chat.js).
//
// One WebSocket to /ws carries the signaling protocol (docs/protocol.md,
// proto/src/signal.rs); one RTCPeerConnection carries every track, both ways. The client
// publishes with its own offers and receives through the server's offers. When both offer at
// once the client is the impolite side: it ignores the server's offer, and the server rolls
// its own back, answers the client and then offers again (protocol §6.5).
//
// The page provides the room view's elements (ids below) and joins with `joinRoom`, giving
// a room token and the signaling URL it is good for. `window.parlor` is the test handle.

const PROTOCOL = 1;

/** Simulcast layers of the camera, lowest first. */
const CAMERA_ENCODINGS = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "h", maxBitrate: 1_500_000 },
];

/**
 * Server frames outside the session's numbering: they carry the current `seq` (so it is not
 * unique) and are never replayed.
 */
const UNNUMBERED_OPS = new Set(["hello", "heartbeat_ack", "active_speakers", "resumed", "shutdown"]);

/** Unsolicited errors that mean the server removed us from the room (protocol §5.8). */
const REMOVED_CODES = new Set(["replaced", "media_timeout", "media_error", "slow_consumer"]);

const REQUEST_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** After a resume, requests still unanswered this long were lost with the old socket. */
const RESEND_AFTER_RESUME_MS = 1_000;
/** After ignoring a server offer during ours, how long to wait for its fresh replacement. */
const RESYNC_AFTER_MS = 2_000;

/** An error with a protocol code: a server `error` frame, an HTTP error body, or ours. */
export class ParlorError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "ParlorError";
    this.code = code;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Frames too frequent to trace. */
const QUIET_OPS = new Set(["heartbeat", "heartbeat_ack", "active_speakers"]);

/** Protocol trace, at the console's "verbose" level. */
function trace(direction, frame) {
  if (QUIET_OPS.has(frame.op)) return;
  const id = frame.id != null ? ` #${frame.id}` : "";
  const seq = frame.seq != null ? ` seq=${frame.seq}` : "";
  const offer = frame.d?.offer_id != null ? ` offer_id=${frame.d.offer_id}` : "";
  const code = frame.op === "error" ? ` ${frame.d?.code}` : "";
  console.debug(`parlor ${direction} ${frame.op}${id}${seq}${offer}${code}`);
}

// ---------------------------------------------------------------------------------------------
// Signaling connection
// ---------------------------------------------------------------------------------------------

/**
 * The /ws connection: requests matched to replies by `id`, heartbeats, and resuming the
 * session over a new socket when the old one drops.
 *
 * `handlers`:
 *  - onEvent(frame): every server frame that is not a reply to a request
 *  - onReconnecting(), onResumed(resumed): the socket dropped / the session was resumed
 *  - onExpired(error): the session is gone and must be started again from scratch
 */
class Signal {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.socketCount = 0; // sockets opened so far; requests remember which one sent them
    this.nextId = 1;
    this.pending = new Map(); // id -> { frame, socket, handshake, resolve, reject }
    this.outbox = []; // frames sent while the session is not usable
    this.lastSeq = 0; // highest `seq` of a numbered frame received
    this.sessionId = null;
    this.heartbeatMs = 10_000;
    this.resumeWindowMs = 60_000;
    this.heartbeatTimer = null;
    this.missedAcks = 0;
    this.usable = false; // identified or resumed on the current socket
    this.reconnecting = false;
    this.closed = false;
  }

  /** Opens a socket and waits for `hello`. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.socketCount += 1;
      let greeted = false;
      // No session exists on the socket yet, so closing it ends nothing.
      const giveUp = setTimeout(() => greeted || ws.close(), CONNECT_TIMEOUT_MS);
      ws.onmessage = (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch {
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

  /** Starts a new session: `identify` → `ready`. */
  async identify(token) {
    this.lastSeq = 0;
    const ready = await this.request("identify", { token, protocol: PROTOCOL }, { handshake: true });
    this.sessionId = ready.d.session_id;
    this.#becomeUsable();
    return ready.d;
  }

  /**
   * Sends a request and resolves with the server's reply frame, or rejects with a
   * ParlorError for an `error` reply, a timeout or a lost session. `handshake` frames
   * (identify, resume) go out before the session is usable.
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

  /** Sends a frame on the current socket right now, if it is open (for page unload). */
  sendNow(op, d = {}) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ op, d }));
  }

  /** Closes for good, which ends the session on the server. Pending requests fail. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.usable = false;
    this.#stopHeartbeat();
    this.#rejectPending(() => true, new ParlorError("closed", "The connection was closed."));
    this.outbox = [];
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "bye");
  }

  /** Sends now if the session is usable; queues otherwise. `direct` frames are never queued. */
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

  #onFrame(frame) {
    trace("<-", frame);
    // Numbered frames: skip what a resume replays twice. Frames before a session exists
    // have seq 0.
    if (frame.seq > 0 && !UNNUMBERED_OPS.has(frame.op)) {
      if (frame.seq <= this.lastSeq) return;
      this.lastSeq = frame.seq;
    }
    if (frame.op === "heartbeat_ack") {
      this.missedAcks = 0;
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

  #rejectPending(which, error) {
    for (const request of [...this.pending.values()]) if (which(request)) request.reject(error);
  }

  #startHeartbeat(hello) {
    this.#stopHeartbeat();
    if (hello.heartbeat_interval_ms > 0) this.heartbeatMs = hello.heartbeat_interval_ms;
    if (hello.resume_window_ms > 0) this.resumeWindowMs = hello.resume_window_ms;
    this.missedAcks = 0;
    const ws = this.ws;
    this.heartbeatTimer = setInterval(() => {
      if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
      if (this.missedAcks >= 2) {
        this.#abandon(ws);
        return;
      }
      this.missedAcks += 1;
      ws.send(JSON.stringify({ op: "heartbeat", d: { seq: this.lastSeq } }));
    }, this.heartbeatMs);
  }

  #stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /**
   * Gives up on a socket that stopped answering heartbeats. A Close frame would end the
   * session, so the socket is only detached; the server closes it in time.
   */
  #abandon(ws) {
    console.warn("parlor: no heartbeat_ack, abandoning the socket");
    ws.onmessage = null;
    ws.onclose = null;
    this.#onClose(ws, { code: 4003 });
  }

  #onClose(ws, event) {
    if (ws !== this.ws) return;
    this.usable = false;
    this.#stopHeartbeat();
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
    let delay = 250;
    let failure = new ParlorError("session_expired", "Could not reconnect in time.");
    while (!this.closed && Date.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 4_000);
      if (this.closed) return;
      try {
        await this.connect();
        // The missed frames are replayed (through #onFrame) before `resumed` arrives.
        const resumed = await this.request(
          "resume",
          { session_id: this.sessionId, seq: this.lastSeq },
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

  #expire(error) {
    this.sessionId = null;
    this.#rejectPending(() => true, error);
    this.outbox = [];
    this.close();
    this.handlers.onExpired?.(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------------------------

/**
 * Runs the offer/answer exchanges of one RTCPeerConnection one at a time, following the
 * impolite side's rules of protocol §6.5.
 *
 * `hooks`:
 *  - describe(): the PublishTrack list for a client offer, each with its `pub`
 *  - onPublished(pub, trackId): the server's answer named a newly published track
 *  - onServerTracks(tracks): the {mid, track_id} list of a server offer, before it is applied
 *  - onChanged(): an exchange completed
 *  - onError(message): an exchange failed in a way the user should hear about
 */
class Negotiator {
  constructor(pc, signal, hooks) {
    this.pc = pc;
    this.signal = signal;
    this.hooks = hooks;
    this.chain = Promise.resolve();
    /** Client offers queued or awaiting the server's reply; server offers are ignored then. */
    this.offersOutstanding = 0;
    /** A server offer was ignored during one of ours (rule 4). */
    this.ignoredOffer = false;
    /** `seq` of the answer to our latest offer: server offers before it are stale (rule 3). */
    this.lastAnswerSeq = 0;
    this.lastServerOfferSeq = 0;
    this.closed = false;
  }

  close() {
    this.closed = true;
  }

  #enqueue(job) {
    const run = this.chain.then(() => (this.closed ? undefined : job()));
    this.chain = run.catch(() => {});
    return run;
  }

  /**
   * Makes a client offer: runs `prepare` (which adds or stops transceivers) when it is this
   * offer's turn, then offers and applies the answer. Rejects on an `error` reply, after
   * rolling the offer back.
   */
  offer(prepare) {
    this.offersOutstanding += 1;
    let counted = true;
    const replied = () => {
      if (counted) this.offersOutstanding -= 1;
      counted = false;
    };
    let ok = false;
    return this.#enqueue(async () => {
      const { pc } = this;
      try {
        prepare?.();
        await pc.setLocalDescription(await pc.createOffer());
        // Mids exist only now, after setLocalDescription.
        const described = this.hooks.describe();
        const tracks = described.map(({ pub, ...track }) => track);
        let reply;
        try {
          reply = await this.signal.request("offer", { sdp: pc.localDescription.sdp, tracks });
          this.lastAnswerSeq = reply.seq ?? 0;
        } finally {
          // From here on a server offer was sent after the server handled ours (rule 2).
          replied();
        }
        if (this.closed) return;
        await pc.setRemoteDescription({ type: "answer", sdp: reply.d.sdp });
        for (const { mid, track_id } of reply.d.tracks ?? []) {
          const entry = described.find((t) => t.mid === mid);
          if (entry) this.hooks.onPublished(entry.pub, track_id);
        }
        ok = true;
      } catch (error) {
        replied();
        if (!this.closed && pc.signalingState === "have-local-offer") {
          await pc.setLocalDescription({ type: "rollback" }).catch(() => {});
        }
        throw error;
      } finally {
        if (!this.closed) {
          this.hooks.onChanged();
          this.#afterOwnOffer(ok);
        }
      }
    });
  }

  /**
   * Rule 4: a server offer we ignored must not stay pending on the server. If our offer was
   * refused the server may still hold it; if it was answered, a fresh server offer should
   * follow. Either way a no-change offer of ours resolves it.
   */
  #afterOwnOffer(ok) {
    if (!this.ignoredOffer || this.offersOutstanding > 0) return;
    this.ignoredOffer = false;
    const resync = () => {
      if (this.closed || this.offersOutstanding > 0) return;
      if (!this.pc.getTransceivers().some((t) => t.mid != null)) return; // nothing to offer
      this.offer().catch((error) => console.warn("parlor: resync offer failed", error));
    };
    if (!ok) {
      resync();
      return;
    }
    const answerSeq = this.lastAnswerSeq;
    setTimeout(() => {
      if (this.lastServerOfferSeq <= answerSeq) resync();
    }, RESYNC_AFTER_MS);
  }

  /** A server `offer` frame: answers it unless the rules of protocol §6.5 say to ignore it. */
  serverOffer(frame) {
    const d = frame.d;
    this.lastServerOfferSeq = Math.max(this.lastServerOfferSeq, frame.seq ?? 0);
    if (this.offersOutstanding > 0) {
      // Rule 2: ours goes first; the server rolls this one back when ours arrives.
      console.debug(`parlor: ignoring server offer ${d.offer_id}: ours goes first`);
      this.ignoredOffer = true;
      return;
    }
    this.#enqueue(async () => {
      const { pc } = this;
      if ((frame.seq ?? 0) < this.lastAnswerSeq || pc.signalingState !== "stable") {
        console.debug(`parlor: ignoring stale server offer ${d.offer_id}`); // rules 2 and 3
        return;
      }
      this.hooks.onServerTracks(d.tracks ?? []);
      await pc.setRemoteDescription({ type: "offer", sdp: d.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      if (this.closed) return;
      this.signal
        .request("answer", { offer_id: d.offer_id, sdp: pc.localDescription.sdp })
        .catch((error) => {
          // bad_request: superseded; invalid_sdp: the server offers again. Either way its
          // next offer sets things right.
          console.warn(`parlor: answer to server offer ${d.offer_id} refused:`, error.message);
        });
      this.hooks.onChanged();
    }).catch(async (error) => {
      if (this.closed) return;
      console.error("parlor: could not apply the server's offer", error);
      if (this.pc.signalingState === "have-remote-offer") {
        await this.pc.setRemoteDescription({ type: "rollback" }).catch(() => {});
      }
      this.hooks.onError(`Could not receive media: ${error.message}`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Room state
// ---------------------------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

/** The room view's elements, which every page that joins rooms has. */
const ui = {
  error: $("#error"),
  status: $("#status"),
  tiles: $("#tiles"),
  audioSink: $("#audio-sink"),
  micBtn: $("#mic-btn"),
  camBtn: $("#cam-btn"),
  screenBtn: $("#screen-btn"),
  leaveBtn: $("#leave-btn"),
  tileTemplate: $("#tile-template"),
};

/**
 * A local track and how it is published.
 * @typedef {{source: string, track: MediaStreamTrack, stream: MediaStream,
 *   transceiver: RTCRtpTransceiver|null, trackId: string|null, muted: boolean,
 *   announcedMuted: boolean, retired: boolean}} Pub
 */

const app = {
  /** "idle" | "joining" | "joined" | "left" | "error" */
  state: "idle",
  /** The signaling WebSocket of the current room. */
  url: null,
  /** The token the current session identified with. */
  sessionToken: null,
  /**
   * Gets a fresh token when the current one expired before a lost session could be started
   * again: `({room, name}) => Promise<{token, url?}>`, or null if it can't be renewed.
   */
  renew: null,
  /** A lost session is being joined again. */
  restarting: false,
  /** Counts joins and leaves: a join that finds it changed was overtaken and gives up. */
  joinAttempt: 0,
  signal: null,
  pc: null,
  negotiator: null,
  identity: null,
  name: null,
  room: null,
  sessionId: null,
  grants: null,
  /** Everyone else in the room: identity -> {identity, name}. */
  participants: new Map(),
  /** Other participants' tracks: track_id -> TrackInfo. */
  remoteTracks: new Map(),
  /** Which of the server's m-lines carries which track: mid -> track_id. */
  remoteMids: new Map(),
  /** Our published tracks: source -> Pub. */
  local: new Map(),
  speakers: new Set(),
  /** The screen picker is open. */
  pickingScreen: false,
  /** Tile elements by key ("<identity>|camera", "screen|<track_id>", ...). */
  tiles: new Map(),
  /** <audio> elements by track_id. */
  audios: new Map(),
};

/**
 * What the page does around the room: `onState(state)` after every state change (to show
 * or hide its views), `onRender()` after the tiles were brought up to date.
 */
let hooks = { onState() {}, onRender() {} };

/** Sets the page's hooks, and runs `onState` at once with the current state. */
export function configureRoom(pageHooks) {
  hooks = { ...hooks, ...pageHooks };
  setState(app.state);
}

function setState(state) {
  app.state = state;
  hooks.onState(state);
  setStatus({ joining: "Connecting…", joined: "Connected", left: "You left the room" }[state] ?? "");
  render();
}

function setStatus(text) {
  ui.status.textContent = text;
}

export function showError(message, code) {
  ui.error.textContent = message;
  ui.error.dataset.code = code ?? "";
  ui.error.hidden = false;
}

export function clearError() {
  ui.error.textContent = "";
  delete ui.error.dataset.code;
  ui.error.hidden = true;
}

export function describeError(error) {
  if (error instanceof ParlorError) return error.message;
  if (error?.name === "NotAllowedError") return "Permission was denied.";
  return error?.message || String(error);
}

// ---------------------------------------------------------------------------------------------
// Joining and leaving
// ---------------------------------------------------------------------------------------------

/** The signaling WebSocket of the server that served the page. */
export function defaultSignalingUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** A guest token from the server that served the page (when it hands them out). */
export async function fetchGuestToken(room, name) {
  let response;
  try {
    response = await fetch("/api/guest-token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ room, name }),
    });
  } catch {
    throw new ParlorError("network", "Could not reach the server.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON; fall through to a generic message.
  }
  if (!response.ok) {
    throw new ParlorError(
      body?.code ?? `http_${response.status}`,
      body?.message ?? `The server refused to let you in (HTTP ${response.status}).`,
    );
  }
  if (!body?.token) throw new ParlorError("bad_response", "The server sent no token.");
  return body.token;
}

/** Microphone and camera, whichever can be had. */
async function openDevices() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const attempts = [{ audio, video }, { audio }, { video }];
  let lastError = null;
  for (const constraints of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      return {
        mic: stream.getAudioTracks()[0] ?? null,
        cam: stream.getVideoTracks()[0] ?? null,
        error: constraints.audio && constraints.video ? null : lastError,
      };
    } catch (error) {
      lastError = error;
    }
  }
  return { mic: null, cam: null, error: lastError };
}

/**
 * Joins a room with the microphone and camera. `credentials` is `{token, url, renew}` or a
 * promise of it, so that fetching the token and opening the devices run side by side:
 * `token` is a room token, `url` the signaling WebSocket it is good for (the page's own
 * server by default) and `renew` what `app.renew` says. `onJoined` runs once in the room,
 * before the devices are published. Failures end in the "error" state with the message
 * shown; the returned promise resolves either way.
 */
export async function joinRoom(credentials, { onJoined } = {}) {
  if (app.state === "joining" || app.state === "joined") return;
  const attempt = ++app.joinAttempt;
  const overtaken = () => attempt !== app.joinAttempt;
  clearError();
  setState("joining");

  const [creds, devices] = await Promise.allSettled([
    credentials,
    navigator.mediaDevices ? openDevices() : Promise.resolve({ mic: null, cam: null, error: null }),
  ]);
  if (overtaken() || app.state !== "joining") {
    // Left (or left and joined elsewhere) while the token was on its way.
    stopDevices(devices.value);
    return;
  }
  if (creds.status === "rejected") {
    stopDevices(devices.value);
    fail(creds.reason);
    return;
  }
  app.url = creds.value.url || defaultSignalingUrl();
  app.renew = creds.value.renew ?? null;
  try {
    await startSession(creds.value.token);
  } catch (error) {
    stopDevices(devices.value);
    if (!overtaken()) fail(error);
    return;
  }
  if (overtaken() || app.state !== "joined") {
    stopDevices(devices.value);
    return;
  }
  onJoined?.();
  try {
    await publishDevices(devices.value);
  } catch (error) {
    // Still in the room, just not heard or seen.
    if (app.state === "joined") {
      showError(`Could not publish your microphone and camera: ${describeError(error)}`, error.code);
    }
  }
}

function stopDevices(devices) {
  devices?.mic?.stop();
  devices?.cam?.stop();
}

/** Connects, identifies and joins; on return the page is in the room. */
async function startSession(token) {
  const signal = new Signal(app.url ?? defaultSignalingUrl(), {
    onEvent,
    onReconnecting: () => setStatus("Reconnecting…"),
    onResumed: () => setStatus("Connected"),
    onExpired: (error) => {
      if (signal === app.signal) restartSession(error);
    },
  });
  app.signal = signal;
  app.sessionToken = token;
  await signal.connect();
  const ready = await signal.identify(token);
  if (signal !== app.signal) return;
  app.sessionId = ready.session_id;
  app.identity = ready.identity;
  app.name = ready.name;
  app.room = ready.room;
  app.grants = ready.grants ?? { publish: ["audio", "video", "screen"], subscribe: true };
  createPeerConnection(signal);
  const joined = await signal.request("join", {});
  if (signal !== app.signal) return;
  applyJoined(joined.d);
  setState("joined");
}

function createPeerConnection(signal) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  app.pc = pc;
  app.negotiator = new Negotiator(pc, signal, {
    describe: describePublished,
    onPublished(pub, trackId) {
      pub.trackId = trackId;
      if (pub.muted !== pub.announcedMuted) announceMute(pub);
    },
    onServerTracks(tracks) {
      // Every m-line the server sends on, not only new ones.
      app.remoteMids = new Map(tracks.map((t) => [t.mid, t.track_id]));
    },
    onChanged: render,
    onError: showError,
  });
  pc.ontrack = () => render();
  pc.onconnectionstatechange = () => {
    if (pc !== app.pc) return;
    if (pc.connectionState === "failed") {
      setStatus("Media connection lost, restarting…");
      signal.request("ice_restart", {}).catch((error) => console.warn("parlor: ice_restart", error));
    } else if (pc.connectionState === "connected") {
      setStatus("Connected");
    }
  };
}

function applyJoined(d) {
  // Merged, not replaced: room events may arrive just before `joined`.
  for (const participant of d.participants ?? []) addParticipant(participant);
  render();
}

function addParticipant(info) {
  if (info.identity === app.identity) return;
  app.participants.set(info.identity, { identity: info.identity, name: info.name || info.identity });
  for (const track of info.tracks ?? []) app.remoteTracks.set(track.track_id, { ...track });
}

function removeParticipant(identity) {
  app.participants.delete(identity);
  for (const [trackId, track] of app.remoteTracks) {
    if (track.participant === identity) forgetRemoteTrack(trackId);
  }
  app.speakers.delete(identity);
}

function forgetRemoteTrack(trackId) {
  app.remoteTracks.delete(trackId);
  for (const [mid, id] of app.remoteMids) if (id === trackId) app.remoteMids.delete(mid);
}

/** Publishes the microphone and camera the token allows, in one offer. */
async function publishDevices(devices) {
  if (devices.error) {
    showError(`Could not use your ${devices.mic ? "camera" : devices.cam ? "microphone" : "microphone or camera"}: ${describeError(devices.error)}`);
  }
  const pubs = [];
  if (devices.mic) {
    if (mayPublish("audio")) pubs.push(newPub("microphone", devices.mic));
    else devices.mic.stop();
  }
  if (devices.cam) {
    if (mayPublish("video")) pubs.push(newPub("camera", devices.cam));
    else devices.cam.stop();
  }
  await publish(pubs);
}

function mayPublish(family) {
  return app.grants?.publish?.includes(family) ?? true;
}

/** @returns {Pub} */
function newPub(source, track, stream = new MediaStream([track])) {
  return {
    source,
    track,
    stream,
    transceiver: null,
    trackId: null,
    muted: !track.enabled,
    announcedMuted: !track.enabled,
    retired: false,
  };
}

/** Adds the pubs' transceivers and offers them. Rejects if the server refuses. */
async function publish(pubs) {
  if (pubs.length === 0) return;
  for (const pub of pubs) app.local.set(pub.source, pub);
  render();
  const negotiator = app.negotiator;
  try {
    await negotiator.offer(() => {
      for (const pub of pubs) if (!pub.retired) attach(pub);
    });
  } catch (error) {
    if (negotiator !== app.negotiator) return;
    for (const pub of pubs) retire(pub);
    render();
    throw error;
  }
}

function attach(pub) {
  const init = { direction: "sendonly", streams: [pub.stream] };
  if (pub.source === "camera") init.sendEncodings = CAMERA_ENCODINGS.map((e) => ({ ...e }));
  if (pub.source === "screen") pub.track.contentHint = "detail";
  pub.transceiver = app.pc.addTransceiver(pub.track, init);
}

/** Stops a pub's track and forgets it (its transceiver is stopped at the next offer). */
function retire(pub) {
  pub.retired = true;
  pub.track.onended = null;
  pub.track.stop();
  if (app.local.get(pub.source) === pub) app.local.delete(pub.source);
  if (pub.transceiver && !pub.transceiver.mid) {
    pub.transceiver.stop(); // never negotiated: nothing to tell the server
    pub.transceiver = null;
  }
}

/** The PublishTrack list of a client offer: every m-line we send on. */
function describePublished() {
  const tracks = [];
  for (const pub of app.local.values()) {
    const mid = pub.transceiver?.mid;
    if (pub.retired || mid == null || pub.transceiver.direction === "stopped") continue;
    const track = { mid, source: pub.source, muted: pub.muted, pub };
    if (pub.source === "camera") track.layers = CAMERA_ENCODINGS.map((e) => e.rid);
    tracks.push(track);
  }
  return tracks;
}

function setMuted(source, muted) {
  const pub = app.local.get(source);
  if (!pub) return;
  pub.muted = muted;
  pub.track.enabled = !muted;
  if (pub.trackId) announceMute(pub);
  render();
}

function announceMute(pub) {
  pub.announcedMuted = pub.muted;
  app.signal
    ?.request("mute", { track_id: pub.trackId, muted: pub.muted })
    .catch((error) => reportRequestError("Could not change mute", error));
}

function reportRequestError(what, error) {
  if (error.code === "timeout" || error.code === "closed") {
    console.warn(`parlor: ${what}:`, error.message);
  } else {
    showError(`${what}: ${describeError(error)}`, error.code);
  }
}

async function startScreenShare() {
  if (app.local.has("screen") || app.pickingScreen) return;
  let stream;
  app.pickingScreen = true;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  } catch (error) {
    // NotAllowedError: the user closed the picker.
    if (error.name !== "NotAllowedError") showError(`Could not share your screen: ${describeError(error)}`);
    return;
  } finally {
    app.pickingScreen = false;
  }
  if (app.state !== "joined") {
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  const video = stream.getVideoTracks()[0];
  const audio = stream.getAudioTracks()[0];
  const pubs = [newPub("screen", video, stream)];
  if (audio) pubs.push(newPub("screen_audio", audio, stream));
  // The browser's own "Stop sharing" ends the video track.
  video.onended = () => stopScreenShare();
  try {
    await publish(pubs);
  } catch (error) {
    showError(`Could not share your screen: ${describeError(error)}`, error.code);
  }
}

async function stopScreenShare() {
  const pubs = ["screen", "screen_audio"].map((s) => app.local.get(s)).filter(Boolean);
  if (pubs.length === 0) return;
  for (const pub of pubs) retire(pub);
  render();
  try {
    await app.negotiator?.offer(() => {
      for (const pub of pubs) {
        if (pub.trackId) {
          app.signal
            .request("unpublish", { track_id: pub.trackId })
            .catch((error) => reportRequestError("Could not stop sharing", error));
        }
        if (pub.transceiver) pub.transceiver.stop();
      }
    });
  } catch (error) {
    reportRequestError("Could not stop sharing", error);
  }
}

/** Leaves the room on purpose. */
export async function leave() {
  if (app.state !== "joined" && app.state !== "joining") return;
  app.joinAttempt += 1;
  const signal = app.signal;
  app.signal = null; // its events are no longer ours
  const acknowledged = signal?.request("leave", {}, { timeout: 1_000 }).catch(() => {});
  teardown();
  setState("left");
  await acknowledged;
  signal?.close();
}

/** Ends the session because of an error. */
function fail(error) {
  console.error("parlor:", error);
  teardown();
  setState("error");
  showError(describeError(error), error?.code);
}

/**
 * Ends the membership: closes the connection (unless `keepSignal`) and the peer connection,
 * and forgets the room. With `keepDevices` our tracks stay live and are returned, ready to
 * be published on a new peer connection; otherwise they are stopped.
 */
function teardown({ keepDevices = false, keepSignal = false } = {}) {
  if (!keepSignal) {
    app.signal?.close();
    app.signal = null;
  }
  app.negotiator?.close();
  app.negotiator = null;
  app.pc?.close();
  app.pc = null;
  const pubs = [...app.local.values()];
  app.local.clear();
  for (const pub of pubs) {
    if (keepDevices) {
      Object.assign(pub, { transceiver: null, trackId: null, announcedMuted: pub.muted });
    } else {
      pub.track.onended = null;
      pub.track.stop();
    }
  }
  app.participants.clear();
  app.remoteTracks.clear();
  app.remoteMids.clear();
  app.speakers.clear();
  render();
  return keepDevices ? pubs : [];
}

/**
 * The session expired (or the socket could not be resumed in time): joins again from
 * scratch on a new connection and peer connection, and publishes the same tracks again.
 */
async function restartSession(reason) {
  if (app.state !== "joined" || app.restarting) return;
  app.restarting = true;
  console.warn("parlor: session lost, joining again:", reason?.message);
  const pubs = teardown({ keepDevices: true });
  setStatus("Reconnecting…");
  try {
    try {
      await startSession(app.sessionToken);
    } catch (error) {
      // The token may have expired meanwhile; renew it if the page can (a guest token, a
      // voice channel's), not if it can't (a link's).
      if (!app.renew || error.code !== "token_expired") throw error;
      const fresh = await app.renew({ room: app.room, name: app.name });
      if (fresh.url) app.url = fresh.url;
      await startSession(fresh.token);
    }
  } catch (error) {
    for (const pub of pubs) pub.track.stop();
    fail(error);
    return;
  } finally {
    app.restarting = false;
  }
  republish(pubs);
}

/**
 * The server removed us from the room (media_timeout, media_error, slow_consumer) but the
 * session lives on: joins again on it with a new peer connection and publishes again.
 */
async function rejoinRoom(error) {
  if (app.state !== "joined" || app.restarting) return;
  app.restarting = true;
  console.warn(`parlor: removed from the room (${error.code}), joining again`);
  const signal = app.signal;
  const pubs = teardown({ keepDevices: true, keepSignal: true });
  setStatus("Reconnecting…");
  try {
    createPeerConnection(signal);
    const joined = await signal.request("join", {});
    if (signal === app.signal) {
      applyJoined(joined.d);
      setStatus("Connected");
    }
  } catch (joinError) {
    for (const pub of pubs) pub.track.stop();
    fail(joinError);
    return;
  } finally {
    app.restarting = false;
  }
  republish(pubs);
}

/** Publishes tracks kept from an earlier membership, unless the page left meanwhile. */
function republish(pubs) {
  if (app.state !== "joined" || !app.negotiator) {
    for (const pub of pubs) pub.track.stop();
    return;
  }
  publish(pubs).catch((error) => {
    if (app.state === "joined") showError(`Could not publish again: ${describeError(error)}`, error.code);
  });
}

// ---------------------------------------------------------------------------------------------
// Server events
// ---------------------------------------------------------------------------------------------

function onEvent(frame) {
  const d = frame.d ?? {};
  switch (frame.op) {
    case "offer":
      app.negotiator?.serverOffer(frame);
      break;
    case "participant_joined":
      addParticipant(d.participant);
      render();
      break;
    case "participant_left":
      removeParticipant(d.identity);
      render();
      break;
    case "track_published":
      if (d.track.participant !== app.identity) app.remoteTracks.set(d.track.track_id, { ...d.track });
      render();
      break;
    case "track_unpublished":
      forgetRemoteTrack(d.track_id);
      render();
      break;
    case "track_muted": {
      const track = app.remoteTracks.get(d.track_id);
      if (track) track.muted = d.muted;
      render();
      break;
    }
    case "active_speakers":
      app.speakers = new Set((d.speakers ?? []).map((s) => s.identity));
      render();
      break;
    case "left":
      // The server ended our participation (kicked, or the room closed).
      teardown();
      setState("left");
      break;
    case "shutdown":
      fail(new ParlorError("shutdown", `The server is shutting down${d.reason ? ` (${d.reason})` : ""}. Try joining again in a moment.`));
      break;
    case "error":
      if (d.code === "replaced") {
        // Another tab or device joined as us. Rejoining would only replace it in turn.
        teardown();
        setState("left");
        showError("You joined this room from somewhere else, so this page left.", d.code);
      } else if (REMOVED_CODES.has(d.code)) {
        rejoinRoom(d);
      } else {
        console.warn("parlor: server error:", d.code, d.message);
        if (d.code !== "rate_limited") showError(d.message || d.code, d.code);
      }
      break;
    default:
      console.debug("parlor: unhandled frame", frame.op);
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/** The MediaStreamTrack the server sends us for a track id, if it has an m-line for it. */
function receivedTrack(trackId) {
  if (!app.pc) return null;
  for (const [mid, id] of app.remoteMids) {
    if (id !== trackId) continue;
    const transceiver = app.pc.getTransceivers().find((t) => t.mid === mid);
    if (transceiver && transceiver.currentDirection !== "stopped") return transceiver.receiver.track;
  }
  return null;
}

/** What the tiles should be: key -> tile description. */
function wantedTiles() {
  const tiles = new Map();
  if (app.state !== "joined") return tiles;

  const mic = app.local.get("microphone");
  const cam = app.local.get("camera");
  tiles.set(`${app.identity}|camera`, {
    identity: app.identity,
    name: app.name,
    source: "camera",
    local: true,
    track: cam?.track ?? null,
    videoOff: !cam || cam.muted,
    micMuted: !mic || mic.muted,
  });
  const screen = app.local.get("screen");
  if (screen) {
    tiles.set(`${app.identity}|screen`, {
      identity: app.identity,
      name: app.name,
      source: "screen",
      local: true,
      track: screen.track,
      videoOff: false,
      micMuted: false,
    });
  }

  for (const participant of app.participants.values()) {
    const tracks = [...app.remoteTracks.values()].filter((t) => t.participant === participant.identity);
    const micInfo = tracks.find((t) => t.source === "microphone");
    const camInfo = tracks.find((t) => t.source === "camera");
    const camTrack = camInfo ? receivedTrack(camInfo.track_id) : null;
    tiles.set(`${participant.identity}|camera`, {
      identity: participant.identity,
      name: participant.name,
      source: "camera",
      local: false,
      track: camTrack,
      videoOff: !camTrack || camInfo.muted,
      micMuted: !micInfo || micInfo.muted,
    });
    for (const screenInfo of tracks.filter((t) => t.source === "screen")) {
      const track = receivedTrack(screenInfo.track_id);
      tiles.set(`screen|${screenInfo.track_id}`, {
        identity: participant.identity,
        name: participant.name,
        source: "screen",
        local: false,
        track,
        videoOff: !track || screenInfo.muted,
        micMuted: false,
      });
    }
  }
  return tiles;
}

function render() {
  const wanted = wantedTiles();
  for (const [key, el] of app.tiles) {
    if (!wanted.has(key)) {
      el.remove();
      app.tiles.delete(key);
    }
  }
  for (const [key, tile] of wanted) {
    let el = app.tiles.get(key);
    if (!el) {
      el = createTile(tile);
      app.tiles.set(key, el);
      ui.tiles.append(el);
    }
    updateTile(el, tile);
  }
  renderAudio();
  updateControls();
  hooks.onRender();
}

function createTile(tile) {
  const el = ui.tileTemplate.content.firstElementChild.cloneNode(true);
  el.dataset.identity = tile.identity;
  el.dataset.source = tile.source;
  if (tile.local) el.dataset.local = "true";
  if (tile.source === "screen") el.classList.add("screen");
  el.videoTrack = null;
  return el;
}

function updateTile(el, tile) {
  const label = tile.source === "screen" ? `${tile.name}'s screen` : tile.name;
  const nameEl = el.querySelector(".name");
  if (nameEl.textContent !== label) nameEl.textContent = label;
  el.querySelector(".avatar").dataset.initial = (tile.name || "?").trim().charAt(0).toUpperCase();
  el.querySelector(".mute-icon").hidden = !tile.micMuted;
  el.classList.toggle("speaking", tile.source === "camera" && app.speakers.has(tile.identity));
  el.classList.toggle("video-off", tile.videoOff);
  if (el.videoTrack !== tile.track) {
    el.videoTrack = tile.track;
    const video = el.querySelector("video");
    video.srcObject = tile.track ? new MediaStream([tile.track]) : null;
  }
}

/** One <audio autoplay> per remote audio track we receive. */
function renderAudio() {
  const wanted = new Map();
  for (const info of app.remoteTracks.values()) {
    if (info.kind !== "audio" || !app.participants.has(info.participant)) continue;
    const track = receivedTrack(info.track_id);
    if (track) wanted.set(info.track_id, track);
  }
  for (const [trackId, audio] of app.audios) {
    if (wanted.get(trackId) !== audio.srcObject?.getTracks()[0]) {
      audio.srcObject = null;
      audio.remove();
      app.audios.delete(trackId);
    }
  }
  for (const [trackId, track] of wanted) {
    if (app.audios.has(trackId)) continue;
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.dataset.trackId = trackId;
    audio.srcObject = new MediaStream([track]);
    ui.audioSink.append(audio);
    audio.play().catch(() => {}); // autoplay may wait for a user gesture
    app.audios.set(trackId, audio);
  }
}

function updateControls() {
  const mic = app.local.get("microphone");
  const cam = app.local.get("camera");
  const sharing = app.local.has("screen");
  ui.micBtn.disabled = !mic;
  ui.micBtn.textContent = mic?.muted ? "Unmute" : "Mute";
  ui.micBtn.setAttribute("aria-pressed", String(Boolean(mic?.muted)));
  ui.camBtn.disabled = !cam;
  ui.camBtn.textContent = cam?.muted ? "Start video" : "Stop video";
  ui.camBtn.setAttribute("aria-pressed", String(Boolean(cam?.muted)));
  ui.screenBtn.disabled = !navigator.mediaDevices?.getDisplayMedia || !mayPublish("screen");
  ui.screenBtn.textContent = sharing ? "Stop sharing" : "Share screen";
  ui.screenBtn.setAttribute("aria-pressed", String(sharing));
}

// ---------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------

function wireControls() {
  ui.micBtn.addEventListener("click", () => setMuted("microphone", !app.local.get("microphone")?.muted));
  ui.camBtn.addEventListener("click", () => setMuted("camera", !app.local.get("camera")?.muted));
  ui.screenBtn.addEventListener("click", () => (app.local.has("screen") ? stopScreenShare() : startScreenShare()));
  ui.leaveBtn.addEventListener("click", () => leave());
  // Closing the tab leaves at once instead of waiting for the server to notice.
  addEventListener("pagehide", () => {
    if (app.state !== "joined") return;
    app.signal?.sendNow("leave", {});
    app.signal?.close();
  });
}

/** Test and debugging handle. */
window.parlor = {
  get state() {
    return app.state;
  },
  get pc() {
    return app.pc;
  },
  get identity() {
    return app.identity;
  },
  get name() {
    return app.name;
  },
  get room() {
    return app.room;
  },
  /** The signaling WebSocket of the current room. */
  get url() {
    return app.url;
  },
  get sessionId() {
    return app.sessionId;
  },
  get signal() {
    return app.signal;
  },
  /** Every known track, ours and others': track_id -> TrackInfo (ours with `local: true`). */
  get tracks() {
    const tracks = {};
    for (const pub of app.local.values()) {
      if (!pub.trackId) continue;
      tracks[pub.trackId] = {
        track_id: pub.trackId,
        participant: app.identity,
        kind: pub.track.kind,
        source: pub.source,
        muted: pub.muted,
        local: true,
      };
    }
    for (const [id, info] of app.remoteTracks) tracks[id] = { ...info, local: false };
    return tracks;
  },
  /** Everyone else in the room. */
  get participants() {
    return [...app.participants.values()].map((p) => ({ ...p }));
  },
  get speakers() {
    return [...app.speakers];
  },
  /** The server's m-lines that carry a track to us: [{mid, track_id, participant, source, kind}]. */
  receiving() {
    const list = [];
    for (const [mid, trackId] of app.remoteMids) {
      const info = app.remoteTracks.get(trackId);
      list.push({
        mid,
        track_id: trackId,
        participant: info?.participant ?? null,
        source: info?.source ?? null,
        kind: info?.kind ?? null,
      });
    }
    return list;
  },
  /** The remote tiles now in the page. */
  remoteTiles() {
    return [...ui.tiles.querySelectorAll(".tile:not([data-local])")].map((el) => ({
      identity: el.dataset.identity,
      source: el.dataset.source,
    }));
  },
  leave,
};

wireControls();
setState("idle");
