// @ts-check
// The parts of a resumable WebSocket that the room's signaling connection (call/signal.js)
// and the chat gateway (chat/gateway.js) share: the URL, JSON frames, heartbeats that notice
// a dead connection, and the back-off between reconnects. Each protocol keeps its own
// session rules (identify, resume, replay) on top.

/**
 * The WebSocket URL of `path` on the server that served the page (wss: on an https: page).
 * @param {string} path
 */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/**
 * A received frame, or undefined if it is not JSON.
 * @param {any} data
 * @returns {any}
 */
export function parseFrame(data) {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

/**
 * Sends a frame as JSON if the socket is open; returns whether it went out.
 * @param {WebSocket | null | undefined} ws
 * @param {object} frame
 */
export function sendFrame(ws, frame) {
  if (ws?.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

/**
 * Stops listening to a socket without closing it (a Close frame could end the session).
 * @param {WebSocket} ws
 */
export function detachSocket(ws) {
  ws.onmessage = null;
  ws.onclose = null;
}

/**
 * Heartbeats at an interval. Each beat counts as missed until `ack()`; when `maxMissed`
 * are outstanding at the next beat, `onDead` runs instead (and the owner stops it).
 */
export class Heartbeat {
  constructor() {
    /** @type {ReturnType<typeof setInterval> | null} */
    this.timer = null;
    /** Beats sent since the last ack. */
    this.missed = 0;
  }

  /**
   * @param {{intervalMs: number, maxMissed: number, isCurrent: () => boolean,
   *   beat: () => void, onDead: () => void}} options `isCurrent`: whether the socket it
   *   beats for is still the one in use (a beat is skipped, not counted, when not)
   */
  start({ intervalMs, maxMissed, isCurrent, beat, onDead }) {
    this.stop();
    this.missed = 0;
    this.timer = setInterval(() => {
      if (!isCurrent()) return;
      if (this.missed >= maxMissed) {
        onDead();
        return;
      }
      this.missed += 1;
      beat();
    }, intervalMs);
  }

  /** The server answered a beat. */
  ack() {
    this.missed = 0;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}

/**
 * The wait before reconnect attempt `attempt` (0 first): 250 ms doubling up to `maxMs`,
 * spread by ±25 % with `jitter`.
 * @param {number} attempt
 * @param {number} maxMs
 * @param {boolean} [jitter]
 */
export function backoffMs(attempt, maxMs, jitter = false) {
  const delay = Math.min(maxMs, 250 * 2 ** attempt);
  return jitter ? delay * (0.75 + Math.random() * 0.5) : delay;
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
