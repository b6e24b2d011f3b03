// @ts-check
// The chat REST API (docs/chat-api.md): plain calls, and calls as the signed-in user.

import { requestJson } from "../shared/http.js";

/** @typedef {import("./auth.js").Auth} Auth */
/** @typedef {(method: string, path: string, body?: any) => Promise<any>} Api */

export const API = "/api/v1";

/**
 * One REST call; resolves with the JSON body (null for 204), rejects with an ApiError.
 * @param {string} method
 * @param {string} path under /api/v1
 * @param {any} [body] JSON, or a Blob sent as it is
 * @param {string | null} [token]
 */
export function http(method, path, body, token = null) {
  return requestJson(method, API + path, body, { token });
}

/**
 * Authenticated REST calls as `auth`'s user: each refreshes once and tries again if the
 * token had expired.
 * @param {Auth} auth
 * @returns {Api}
 */
export function createApi(auth) {
  return async function api(method, path, body) {
    const token = await auth.freshToken();
    try {
      return await http(method, path, body, token);
    } catch (error) {
      // session_ended: signed out elsewhere; the refresh fails too and the sign-in screen shows.
      if (error.status !== 401 || !["token_expired", "invalid_token", "session_ended"].includes(error.code)) throw error;
      auth.invalidate();
      return http(method, path, body, await auth.freshToken());
    }
  };
}
