// @ts-check
// Signing in, signing up and signing out, and the state a signed-out page forgets.

import { leave as leaveRoom } from "../call/room.js";
import { AUTH_ERROR_TEXTS } from "../shared/errors.js";
import { ApiError } from "../shared/http.js";
import { http } from "./api.js";
import { renderPending } from "./composer.js";
import { hideInvite } from "./guilds.js";
import { renderMain, showView } from "./main-pane.js";
import { renderMembers } from "./members.js";
import { disablePush, enablePush } from "./push.js";
import { wireReset } from "./recovery.js";
import { renderSearch } from "./search.js";
import { renderChannels, renderGuilds, renderMe, renderStatus } from "./sidebar.js";
import { cacheUser } from "./state.js";
import { LAST_KEY, REFRESH_KEY } from "./storage.js";
import { renderTyping } from "./typing.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * @param {ChatApp} app
 * @param {"signin" | "signup"} mode
 */
export function setAuthMode(app, mode) {
  const { chat, ui } = app;
  chat.authMode = mode;
  const signup = mode === "signup";
  ui.authTitle.textContent = signup ? "Create an account" : "Welcome back";
  ui.authSubmit.textContent = signup ? "Create account" : "Sign in";
  ui.authSwitchText.textContent = signup ? "Already have an account?" : "Need an account?";
  ui.authSwitch.textContent = signup ? "Sign in" : "Create one";
  ui.displayNameField.hidden = !signup;
  ui.forgotRow.hidden = signup;
  ui.authPassword.autocomplete = signup ? "new-password" : "current-password";
  ui.authForm.dataset.mode = mode;
  showAuthError(app, null);
}

/**
 * @param {ChatApp} app
 * @param {any} error
 */
function showAuthError(app, error) {
  const { ui } = app;
  ui.authError.hidden = !error;
  ui.authError.textContent = !error
    ? ""
    : error.code === "rate_limited"
      ? `Too many attempts. Try again in ${error.retryAfter ?? 60} s.`
      : AUTH_ERROR_TEXTS[error.code] ?? error.message;
  ui.authError.dataset.code = error?.code ?? "";
}

/**
 * @param {ChatApp} app
 * @param {SubmitEvent} event
 */
export async function onAuthSubmit(app, event) {
  const { chat, ui, auth } = app;
  event.preventDefault();
  const username = ui.authUsername.value.trim();
  const password = ui.authPassword.value;
  const body = { username, password };
  if (chat.authMode === "signup" && ui.authDisplayName.value.trim()) body.display_name = ui.authDisplayName.value.trim();
  if (chat.authMode === "signup" && ui.authEmail.value.trim()) body.email = ui.authEmail.value.trim();
  ui.authSubmit.disabled = true;
  showAuthError(app, null);
  try {
    const session = await http("POST", chat.authMode === "signup" ? "/auth/register" : "/auth/login", body);
    auth.adopt(session);
    ui.authPassword.value = "";
    enterApp(app);
  } catch (error) {
    showAuthError(app, error);
  } finally {
    ui.authSubmit.disabled = false;
  }
}

/** @param {ChatApp} app */
export function enterApp(app) {
  const { chat, auth, gateway } = app;
  chat.user = auth.user;
  cacheUser(app, auth.user);
  renderMe(app);
  renderStatus(app);
  renderMain(app);
  showView(app, "app");
  gateway.start();
  enablePush(app);
}

/**
 * Forgets the signed-in user's state (not their saved selection).
 * @param {ChatApp} app
 */
function resetChat(app) {
  const { chat, ui, gateway, call } = app;
  gateway.reset();
  leaveRoom(call);
  Object.assign(chat, {
    user: null,
    guildOrder: [],
    guildId: null,
    channelId: null,
    view: "text",
    voiceChannelId: null,
    replyTo: null,
    editing: null,
    renderedChannel: null,
    pending: [],
    search: null,
  });
  for (const key of ["guilds", "users", "membersFetchedAt", "members", "dms", "dmActivity", "channels", "typing", "typingSentAt", "lastChannel", "messageEls"]) {
    chat[key].clear();
  }
  chat.unread.clear();
  ui.messages.replaceChildren();
  hideInvite(app);
  renderGuilds(app);
  renderChannels(app);
  renderMembers(app);
  renderPending(app);
  renderSearch(app);
  renderTyping(app);
}

/** @param {ChatApp} app */
export async function signOut(app) {
  const { auth, storage } = app;
  // While still signed in: the server forgets this browser's push subscription.
  await disablePush(app);
  const token = storage.get(REFRESH_KEY);
  storage.remove(REFRESH_KEY);
  storage.remove(LAST_KEY);
  resetChat(app);
  auth.clear();
  // Whoever comes next most likely has an account.
  app.chat.authMode = "signin";
  showSignIn(app);
  if (token) http("POST", "/auth/logout", { refresh_token: token }).catch(() => {});
}

/**
 * @param {ChatApp} app
 * @param {string | null} [message]
 * @param {string} [code] the error code behind it
 */
export function showSignIn(app, message = null, code = "session_ended") {
  const { chat, ui } = app;
  setAuthMode(app, chat.authMode);
  if (message) showAuthError(app, new ApiError(code, message));
  ui.authHint.textContent = chat.pendingInvite
    ? "Sign in or create an account to accept your invite."
    : "Sign in to Parlor, or create an account.";
  showView(app, "auth");
  ui.authUsername.focus();
}

/**
 * The sign-in form and the sign-out button; signing out here when the session ends
 * elsewhere.
 * @param {ChatApp} app
 */
export function wireSignIn(app) {
  const { chat, ui, auth } = app;
  ui.authForm.addEventListener("submit", (event) => onAuthSubmit(app, event));
  ui.authSwitch.addEventListener("click", () => setAuthMode(app, chat.authMode === "signin" ? "signup" : "signin"));
  wireReset(app);
  ui.logoutBtn.addEventListener("click", () => signOut(app));
  auth.onLost = () => {
    resetChat(app);
    showSignIn(app, "Your session has ended. Sign in again.");
  };
}
