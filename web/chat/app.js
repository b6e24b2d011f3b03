// @ts-check
// The chat app (/chat): accounts, servers (guilds), channels, messages, typing and voice
// channels, on the chat REST API and the chat WebSocket (docs/chat-api.md). Voice channels
// join their room with call/, the same code as the guest room page.
//
// Sessions (auth.js): the access token lives in memory only; the refresh token is kept in
// localStorage. Real time (gateway.js): a dropped connection resumes; a refused resume
// identifies again and pages each open channel forward (history.js, `catchUp`). Messages
// are kept by id, so none shows twice. Direct messages live under a "home" entry of the
// rail (DM_HOME) and use the same history, send and live code as text channels.
//
// `createChatApp` makes the one ChatApp of the page; `startChat` wires it and signs in.

import { clearError as clearRoomError, configureCall } from "../call/room.js";
import { $ } from "../shared/dom.js";
import { createApi } from "./api.js";
import { Auth } from "./auth.js";
import { wireAutocomplete } from "./autocomplete.js";
import { wireComposer } from "./composer.js";
import { wireDialogs } from "./dialogs.js";
import { wireDrawer } from "./drawer.js";
import { wireRoutes } from "./route.js";
import { onDispatch, onReady } from "./dispatch.js";
import { wireEmoji } from "./emoji.js";
import { wireFriends } from "./friends.js";
import { wireGroups } from "./groups.js";
import { wireProfiles } from "./profile.js";
import { wireServerSettings } from "./server-settings.js";
import { wireSettings } from "./settings.js";
import { wireNotifyMenu } from "./notify-menu.js";
import { finishOidc, renderProviders, wireOidcLink } from "./oidc.js";
import { Gateway } from "./gateway.js";
import { wireInvites } from "./guilds.js";
import { followLink } from "./history.js";
import { parlorChatHandle } from "./handle.js";
import { showChatError, showView } from "./main-pane.js";
import { wireMembers } from "./members.js";
import { wireMessages } from "./message-actions.js";
import { wireSearch } from "./search.js";
import { renderChannels, renderStatus, wireSidebar } from "./sidebar.js";
import { enterApp, setAuthMode, showSignIn, wireSignIn } from "./signin.js";
import { refreshGuildPresence, syncVoiceState, wirePresence } from "./presence.js";
import { markRead, wireNotificationAsk } from "./reads.js";
import { createChatState, createStats, currentGuild } from "./state.js";
import { wireThreads } from "./threads.js";
import { REFRESH_KEY, createStorage } from "./storage.js";
import { chatElements } from "./ui.js";
import { onRoomRender, onRoomState, wireVoice } from "./voice.js";

/** @typedef {import("../call/state.js").Call} Call */
/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * The chat app of the page, joining voice channels with `call`.
 * @param {Call} call
 * @returns {ChatApp}
 */
export function createChatApp(call) {
  const storage = createStorage();
  const stats = createStats();
  const auth = new Auth(storage, stats);
  /** @type {ChatApp} */
  const app = {
    chat: createChatState(),
    ui: chatElements(),
    auth,
    api: createApi(auth),
    gateway: null,
    stats,
    storage,
    call,
  };
  app.gateway = new Gateway(auth, stats, {
    onReady: (d, info) => onReady(app, d, info),
    onResumed: () => {
      renderStatus(app);
      // Presence updates are never replayed: what changed while away is fetched.
      const guild = currentGuild(app);
      if (guild) refreshGuildPresence(app, guild.id);
    },
    onDispatch: (t, d) => onDispatch(app, t, d),
    onState: () => renderStatus(app),
    onError: (d) => showChatError(app, d.message, d.code),
  });
  return app;
}

/**
 * Every control of the page, and what the page does when it goes away, comes back, goes
 * online or becomes visible.
 * @param {ChatApp} app
 */
function wire(app) {
  const { chat, ui, auth, gateway, call } = app;
  wireSignIn(app);
  wireSidebar(app);
  wireMembers(app);
  wireDialogs(app);
  wireInvites(app);
  wireVoice(app);
  wirePresence(app);
  wireFriends(app);
  wireEmoji(app);
  wireThreads(app);
  wireNotifyMenu(app);
  wireGroups(app);
  wireSettings(app);
  wireServerSettings(app);
  wireProfiles(app);
  wireNotificationAsk(app);
  // Before the composer: Enter takes a suggestion rather than sending.
  wireAutocomplete(app);
  wireComposer(app);
  wireSearch(app);
  wireMessages(app);
  wireDrawer();
  wireRoutes((guildId, channelId, messageId) => followLink(app, { guildId, channelId, messageId }));
  ui.chatError.addEventListener("click", () => {
    ui.chatError.hidden = true;
  });
  $("#error").addEventListener("click", () => clearRoomError(call));

  addEventListener("online", () => gateway.reconnectNow());
  // Leaving the page ends the session (close 1000), so the others see us go offline now
  // rather than when an unresumed session times out. A page restored from the back-forward
  // cache starts a new one and catches up.
  addEventListener("pagehide", () => {
    if (gateway.stopped) return;
    gateway.stop();
    chat.restartOnShow = true;
  });
  addEventListener("pageshow", (event) => {
    if (!event.persisted || !chat.restartOnShow || !auth.signedIn) return;
    chat.restartOnShow = false;
    gateway.start();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && chat.channelId && chat.view === "text") {
      markRead(app, chat.channelId);
      renderChannels(app);
    }
  });
}

/**
 * Starts the chat app: wires the page, installs `window.parlorChat`, and signs in with the
 * stored refresh token if there is one (the sign-in form otherwise).
 * @param {ChatApp} app
 */
export async function startChat(app) {
  const { chat, auth, storage, call } = app;
  window.parlorChat = parlorChatHandle(app);
  wire(app);
  configureCall(call, {
    onState: (state) => {
      onRoomState(app, state);
      syncVoiceState(app);
    },
    onRender: () => {
      onRoomRender(app);
      syncVoiceState(app);
    },
  });
  setAuthMode(app, "signin");
  chat.pendingInvite = new URLSearchParams(location.search).get("invite");
  renderStatus(app);
  renderProviders(app);
  const adopt = (/** @type {any} */ session) => {
    auth.adopt(session);
    enterApp(app);
  };
  wireOidcLink(app, adopt);
  const fromProvider = await finishOidc(app, (message, code) => showSignIn(app, message, code));
  if (fromProvider) {
    adopt(fromProvider);
    return;
  }
  if (!app.ui.oidcLink.hidden) {
    showView(app, "auth");
    return;
  }
  if (storage.get(REFRESH_KEY)) {
    showView(app, "loading");
    try {
      await auth.refresh();
      enterApp(app);
      return;
    } catch (error) {
      if (error.code !== "invalid_refresh_token") {
        showSignIn(app, `Could not restore your session: ${error.message}`);
        return;
      }
    }
  }
  showSignIn(app);
}
