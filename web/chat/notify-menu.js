// @ts-check
// Notification settings and mutes (docs/chat-api.md, "Notification settings"): the bell in
// the header sets the open channel's (mute for 15 minutes to "until I turn it back on",
// and all messages, mentions only, nothing or the server's default); the server name opens
// the same for the whole server. Muted channels are dimmed and mark nothing unread.

import { closestTarget, h } from "../shared/dom.js";
import { showChatError } from "./main-pane.js";
import { renderChannels } from "./sidebar.js";
import { DM_KINDS, currentGuild, findChannel } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

const MUTES = [
  ["15m", "For 15 minutes"],
  ["1h", "For 1 hour"],
  ["8h", "For 8 hours"],
  ["24h", "For 24 hours"],
  ["forever", "Until I turn it back on"],
];

const LEVELS = [
  ["all", "All messages"],
  ["mentions", "Only @mentions"],
  ["nothing", "Nothing"],
  [null, "Use the default"],
];

/**
 * The settings from ready.
 * @param {ChatApp} app
 * @param {any[]} list
 */
export function applySettings(app, list) {
  const { chat } = app;
  chat.settings.clear();
  for (const s of list ?? []) chat.settings.set(`${s.scope}:${s.id}`, s);
}

/**
 * `notification_settings_update`.
 * @param {ChatApp} app
 * @param {any} s
 */
export function onSettingsUpdate(app, s) {
  app.chat.settings.set(`${s.scope}:${s.id}`, s);
  renderChannels(app);
}

/**
 * @param {any} s a setting
 */
function mutedNow(s) {
  return Boolean(s && (s.muted_forever || (s.muted_until && s.muted_until > Date.now())));
}

/**
 * Whether a channel is muted now (by itself or through its server), and whether mentions
 * still count while it is.
 * @param {ChatApp} app
 * @param {string} channelId
 */
export function muteOf(app, channelId) {
  const { chat } = app;
  const own = chat.settings.get(`channel:${channelId}`);
  const { guild, channel } = findChannel(app, channelId);
  const parent = channel?.kind === "thread" ? chat.settings.get(`channel:${channel.parent_id}`) : null;
  const server = guild ? chat.settings.get(`guild:${guild.id}`) : null;
  const active = [own, parent, server].find(mutedNow);
  return { muted: Boolean(active), keepMentions: active ? active.keep_mentions !== false : true };
}

/**
 * @param {ChatApp} app
 * @param {"channel" | "guild"} scope
 * @param {string} id
 * @param {any} body
 */
async function put(app, scope, id, body) {
  try {
    const s = await app.api("PUT", `/users/@me/notification-settings/${scope === "guild" ? "guilds" : "channels"}/${id}`, body);
    onSettingsUpdate(app, s);
  } catch (error) {
    showChatError(app, `Could not change notifications: ${error.message}`, error.code);
  }
}

/**
 * Opens the menu for a channel or a server under `anchor`.
 * @param {ChatApp} app
 * @param {"channel" | "guild"} scope
 * @param {string} id
 * @param {HTMLElement} anchor
 */
function openMenu(app, scope, id, anchor) {
  const { chat, ui } = app;
  const s = chat.settings.get(`${scope}:${id}`);
  const muted = mutedNow(s);
  const dm = scope === "channel" && DM_KINDS.has(findChannel(app, id).channel?.kind);
  const item = (/** @type {string} */ act, /** @type {string} */ value, /** @type {string} */ label, checked = false) =>
    h("button", { type: "button", role: checked !== null ? "menuitemradio" : "menuitem", "aria-checked": String(checked), dataset: { act, value }, text: label });
  ui.notifyMenu.replaceChildren(
    h("div", { class: "menu-title", text: scope === "guild" ? "This server" : dm ? "This conversation" : "This channel" }),
    muted
      ? item("mute", "off", s.muted_forever ? "Unmute" : `Unmute (muted until ${new Date(s.muted_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })})`)
      : h("div", { class: "menu-group" }, h("div", { class: "menu-label", text: "Mute" }), ...MUTES.map(([v, l]) => item("mute", v, l))),
    h(
      "div",
      { class: "menu-group" },
      h("div", { class: "menu-label", text: "Notify me of" }),
      ...LEVELS.map(([v, l]) => item("level", v ?? "", l, (s?.level ?? null) === v)),
    ),
  );
  chat.menuTarget = { scope, id };
  ui.notifyMenu.hidden = false;
  const r = anchor.getBoundingClientRect();
  ui.notifyMenu.style.top = `${r.bottom + 6}px`;
  ui.notifyMenu.style.left = `${Math.max(8, Math.min(innerWidth - ui.notifyMenu.offsetWidth - 8, r.left))}px`;
  /** @type {HTMLElement | null} */ (ui.notifyMenu.querySelector("button"))?.focus();
}

/** @param {ChatApp} app */
function closeMenu(app) {
  app.ui.notifyMenu.hidden = true;
  app.chat.menuTarget = null;
}

/**
 * The bell, the server name and the menu.
 * @param {ChatApp} app
 */
export function wireNotifyMenu(app) {
  const { chat, ui } = app;
  ui.notifyBtn.addEventListener("click", () => {
    if (!ui.notifyMenu.hidden) return closeMenu(app);
    if (chat.channelId) openMenu(app, "channel", chat.channelId, ui.notifyBtn);
  });
  const openGuildMenu = () => {
    const guild = currentGuild(app);
    if (guild) openMenu(app, "guild", guild.id, ui.guildName);
  };
  ui.guildName.addEventListener("click", openGuildMenu);
  ui.guildName.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openGuildMenu();
    }
  });
  ui.notifyMenu.addEventListener("click", (event) => {
    const b = closestTarget(event, "[data-act]");
    const target = chat.menuTarget;
    if (!b || !target) return;
    const body = b.dataset.act === "mute" ? { mute: b.dataset.value } : { level: b.dataset.value || null };
    closeMenu(app);
    put(app, target.scope, target.id, body);
  });
  document.addEventListener("mousedown", (event) => {
    if (!ui.notifyMenu.hidden && !closestTarget(event, "#notify-menu, #notify-btn, #guild-name")) closeMenu(app);
  });
  addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !ui.notifyMenu.hidden) closeMenu(app);
  });
}
