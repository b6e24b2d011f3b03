// @ts-check
// Errors with a code, the text a person sees for an error, and the error boxes that show it.

/** An error with a protocol code: a server `error` frame, a refused token, or ours. */
export class ParlorError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   */
  constructor(code, message) {
    super(message || code);
    this.name = "ParlorError";
    this.code = code;
  }
}

/** What the sign-in form says for the API's error codes (others show the server's message). */
export const AUTH_ERROR_TEXTS = {
  username_taken: "That username is taken.",
  invalid_credentials: "Wrong username or password.",
  invalid_username: "Usernames are 2–32 letters, digits, “_” and “.”.",
  invalid_password: "Passwords are 8–256 characters.",
  invalid_display_name: "Display names are 1–64 characters.",
  network: "Could not reach the server.",
};

/**
 * What to tell the user about an error.
 * @param {any} error
 * @returns {string}
 */
export function describeError(error) {
  if (error instanceof ParlorError) return error.message;
  if (error?.name === "NotAllowedError") return "Permission was denied.";
  return error?.message || String(error);
}

/**
 * Shows `message` in an error box, its code in `data-code`.
 * @param {HTMLElement} el
 * @param {string} message
 * @param {string | null} [code]
 */
export function showErrorIn(el, message, code) {
  el.textContent = message;
  el.dataset.code = code ?? "";
  el.hidden = false;
}

/**
 * Empties and hides an error box.
 * @param {HTMLElement} el
 */
export function clearErrorIn(el) {
  el.textContent = "";
  delete el.dataset.code;
  el.hidden = true;
}
