// @ts-check
// What the chat app keeps in localStorage: the refresh token (never the access token) and
// the last guild and channel shown.

export const REFRESH_KEY = "parlor.chat.refresh";
export const LAST_KEY = "parlor.chat.last";

/** @typedef {ReturnType<typeof createStorage>} Storage */

/** localStorage, or memory where storage is unavailable. */
export function createStorage() {
  return {
    /** @type {Map<string, string>} */
    memory: new Map(),
    /** @param {string} key */
    get(key) {
      try {
        return localStorage.getItem(key);
      } catch {
        return this.memory.get(key) ?? null;
      }
    },
    /**
     * @param {string} key
     * @param {string} value
     */
    set(key, value) {
      try {
        localStorage.setItem(key, value);
      } catch {
        this.memory.set(key, value);
      }
    },
    /** @param {string} key */
    remove(key) {
      try {
        localStorage.removeItem(key);
      } catch {
        this.memory.delete(key);
      }
    },
  };
}
