// @ts-check
// The signed-in user's session: the access token lives in memory only and is renewed before
// it expires; the refresh token is kept in storage and read afresh for every refresh (under
// a Web Lock where there is one), so tabs never spend the same one twice.

import { ApiError } from "../shared/http.js";
import { http } from "./api.js";
import { REFRESH_KEY } from "./storage.js";

/** @typedef {import("./storage.js").Storage} Storage */
/** @typedef {import("./state.js").Stats} Stats */

/** Refresh the access token this long before it expires (at most a fifth of its life). */
const REFRESH_MARGIN_MS = 60_000;

/** The signed-in user's tokens. */
export class Auth {
  /**
   * @param {Storage} storage where the refresh token is kept
   * @param {Stats} stats counts the refreshes
   */
  constructor(storage, stats) {
    this.storage = storage;
    this.stats = stats;
    /** @type {string | null} */
    this.access = null;
    this.expiresAt = 0;
    /** @type {any} the user of the session, as the server sent it */
    this.user = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    /** @type {Promise<void> | null} */
    this.inflight = null;
    /** @type {(error: any) => void} Called when the session is over (the refresh token was refused). */
    this.onLost = () => {};
  }

  /**
   * Takes a sign-in or refresh answer and schedules the next refresh.
   * @param {{access_token: string, refresh_token: string, expires_in: number, user: any}} session
   */
  adopt(session) {
    this.access = session.access_token;
    const ttl = session.expires_in * 1000;
    this.expiresAt = Date.now() + ttl;
    this.user = session.user;
    this.storage.set(REFRESH_KEY, session.refresh_token);
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

  /**
   * Spends the stored refresh token for a new pair (one refresh at a time).
   * @returns {Promise<void>}
   */
  refresh() {
    this.inflight ??= this.#refresh().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  async #refresh() {
    const spend = async () => {
      // Read inside the lock: another tab may have spent the one we saw last.
      const token = this.storage.get(REFRESH_KEY);
      if (!token) throw new ApiError("invalid_refresh_token", "Sign in again.", 401);
      this.adopt(await http("POST", "/auth/refresh", { refresh_token: token }));
      this.stats.tokenRefreshes += 1;
    };
    try {
      if (navigator.locks?.request) await navigator.locks.request("parlor.chat.refresh", spend);
      else await spend();
    } catch (error) {
      if (error.code === "invalid_refresh_token") {
        this.clear();
        this.storage.remove(REFRESH_KEY);
        this.onLost(error);
      } else if (this.access) {
        // The server is unreachable or busy: try again, while the current token lasts.
        this.#schedule((error.retryAfter ?? 10) * 1000);
      }
      throw error;
    }
  }

  /** @param {number} ms */
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
