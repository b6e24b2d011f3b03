// @ts-check
// "Forgot your password?": a code is sent to the account's e-mail address, then the code
// and a new password set it (docs/chat-api.md, "Password reset"). The page says the same
// whether or not the address has an account, as the server does.

import { AUTH_ERROR_TEXTS } from "../shared/errors.js";
import { http } from "./api.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** What the reset form says for the API's error codes. */
const RESET_TEXTS = {
  invalid_reset_code: "That code is wrong, used or expired. Ask for a new one.",
  invalid_email: "That is not an e-mail address.",
  email_unavailable: "This server cannot send e-mail. Ask its operator to reset your password.",
};

/**
 * @param {ChatApp} app
 * @param {boolean} codeStep the code and new password are asked for
 */
function setStep(app, codeStep) {
  const { ui } = app;
  ui.resetCodeFields.hidden = !codeStep;
  ui.resetSubmit.textContent = codeStep ? "Set new password" : "Send code";
  ui.resetEmail.readOnly = codeStep;
}

/**
 * @param {ChatApp} app
 * @param {any} error
 */
function showError(app, error) {
  const { ui } = app;
  ui.resetError.hidden = !error;
  ui.resetError.textContent = !error
    ? ""
    : error.code === "rate_limited"
      ? `Too many attempts. Try again in ${Math.ceil(error.retryAfter ?? 60)} s.`
      : RESET_TEXTS[error.code] ?? AUTH_ERROR_TEXTS[error.code] ?? error.message;
  ui.resetError.dataset.code = error?.code ?? "";
}

/**
 * @param {ChatApp} app
 * @param {string} text
 */
function showInfo(app, text) {
  const { ui } = app;
  ui.resetInfo.hidden = !text;
  ui.resetInfo.textContent = text;
}

/**
 * Opens or closes the reset form in place of the sign-in form.
 * @param {ChatApp} app
 * @param {boolean} open
 */
function showReset(app, open) {
  const { ui } = app;
  ui.resetForm.hidden = !open;
  ui.authForm.hidden = open;
  showError(app, null);
  showInfo(app, "");
  setStep(app, false);
  if (open) ui.resetEmail.focus();
  else ui.authUsername.focus();
}

/**
 * @param {ChatApp} app
 * @param {SubmitEvent} event
 */
async function onSubmit(app, event) {
  const { ui } = app;
  event.preventDefault();
  const email = ui.resetEmail.value.trim();
  const codeStep = !ui.resetCodeFields.hidden;
  ui.resetSubmit.disabled = true;
  showError(app, null);
  try {
    if (!codeStep) {
      const r = await http("POST", "/auth/password-reset", { email });
      showInfo(app, `${r.message} Enter it below with a new password.`);
      setStep(app, true);
      ui.resetCode.focus();
    } else {
      await http("POST", "/auth/password-reset/confirm", { email, code: ui.resetCode.value, new_password: ui.resetPassword.value });
      ui.resetCode.value = "";
      ui.resetPassword.value = "";
      showReset(app, false);
      ui.authHint.textContent = "Your password is changed, and every device was signed out. Sign in with the new one.";
    }
  } catch (error) {
    showError(app, error);
  } finally {
    ui.resetSubmit.disabled = false;
  }
}

/**
 * The reset form and the link to it.
 * @param {ChatApp} app
 */
export function wireReset(app) {
  const { ui } = app;
  ui.forgotBtn.addEventListener("click", () => showReset(app, true));
  ui.resetBack.addEventListener("click", () => showReset(app, false));
  ui.resetForm.addEventListener("submit", (event) => onSubmit(app, event));
}
