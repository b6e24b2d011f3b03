// @ts-check
// HTTP helpers: one JSON request, with errors as ApiError.

/** An API error: `code` is the server's (`username_taken`, ...) or ours (`network`). */
export class ApiError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {number} [status] the HTTP status, 0 when there was no answer
   * @param {number | null} [retryAfter] seconds, from a `rate_limited` answer
   */
  constructor(code, message, status = 0, retryAfter = null) {
    super(message || code);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * One request; resolves with the JSON body (null for 204), rejects with an ApiError: the
 * server's code and message, or `network`, or `http_<status>` with `refused(status)` as the
 * message when the answer has none. A Blob (a file) is sent as it is, with its own type;
 * any other body as JSON.
 * @param {string} method
 * @param {string} url
 * @param {any} [body]
 * @param {{token?: string | null, refused?: (status: number) => string}} [options]
 * @returns {Promise<any>}
 */
export async function requestJson(method, url, body, { token = null, refused = (status) => `The server answered HTTP ${status}.` } = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  const raw = typeof Blob !== "undefined" && body instanceof Blob;
  if (raw) headers["content-type"] = body.type || "application/octet-stream";
  else if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
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
      data?.message ?? refused(response.status),
      response.status,
      data?.retry_after ?? null,
    );
  }
  return data;
}
