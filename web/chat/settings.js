// @ts-check
// The user's settings: profile (display name and avatar), e-mail address (for password
// resets) and password (docs/chat-api.md, "Your account").

import { showErrorIn } from "../shared/errors.js";
import { renderMembers } from "./members.js";
import { renderMe } from "./sidebar.js";
import { cacheUser } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * Shows a result (or an error) under a settings form.
 * @param {HTMLElement} el
 * @param {any} error null for success
 * @param {string} [done] what succeeded
 */
function say(el, error, done = "Saved.") {
  if (error) showErrorIn(el, error.message, error.code);
  else {
    el.textContent = done;
    el.dataset.code = "";
    el.hidden = false;
  }
  el.classList.toggle("ok", !error);
}

/** @param {ChatApp} app */
async function openSettings(app) {
  const { ui, chat, api } = app;
  ui.settingsName.value = chat.user?.display_name ?? "";
  for (const el of [ui.profileResult, ui.emailResult, ui.passwordResult]) el.hidden = true;
  ui.settingsDialog.showModal();
  try {
    const e = await api("GET", "/users/@me/email");
    ui.settingsEmail.value = e.email ?? "";
  } catch {
    // Left empty.
  }
}

/**
 * @param {ChatApp} app
 * @param {any} user the account as the server now has it
 */
function adoptUser(app, user) {
  const { chat } = app;
  chat.user = { ...chat.user, ...user };
  cacheUser(app, chat.user);
  renderMe(app);
  renderMembers(app);
}

/**
 * The settings button and dialog.
 * @param {ChatApp} app
 */
export function wireSettings(app) {
  const { ui, api } = app;
  ui.settingsBtn.addEventListener("click", () => openSettings(app));
  ui.settingsClose.addEventListener("click", () => ui.settingsDialog.close());
  ui.profileForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const file = ui.avatarInput.files?.[0];
      if (file) {
        adoptUser(app, await api("PUT", "/users/@me/avatar", file));
        ui.avatarInput.value = "";
      }
      adoptUser(app, await api("PATCH", "/users/@me", { display_name: ui.settingsName.value }));
      say(ui.profileResult, null);
    } catch (error) {
      say(ui.profileResult, error);
    }
  });
  ui.emailForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PUT", "/users/@me/email", { email: ui.settingsEmail.value, password: ui.emailPassword.value });
      ui.emailPassword.value = "";
      say(ui.emailResult, null, "Saved. Password reset codes go to this address.");
    } catch (error) {
      say(ui.emailResult, error.code === "invalid_credentials" ? { ...error, message: "Wrong password." } : error);
    }
  });
  ui.passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/users/@me/password", { current_password: ui.currentPassword.value, new_password: ui.newPassword.value });
      ui.currentPassword.value = "";
      ui.newPassword.value = "";
      // Every session ends, this one too: the page signs in again.
      say(ui.passwordResult, null, "Changed. Sign in again with the new password.");
    } catch (error) {
      say(ui.passwordResult, error.code === "invalid_credentials" ? { ...error, message: "The current password is wrong." } : error);
    }
  });
}
