// @ts-check
// Guilds, channels and invites: what is selected and opened, creating guilds and channels,
// joining with an invite code, and making invites.

import { leave as leaveRoom } from "../call/room.js";
import { ApiError } from "../shared/http.js";
import { renderPending, setReply } from "./composer.js";
import { loadLatest } from "./history.js";
import { renderMain, showChatError } from "./main-pane.js";
import { loadAllMembers, loadMembers, renderMembers } from "./members.js";
import { renderMessages } from "./message-view.js";
import { openedChannel } from "./reads.js";
import { closeSearch } from "./search.js";
import { renderChannels, renderGuilds } from "./sidebar.js";
import { DM_HOME, channelState, currentGuild, firstTextChannel, inDmHome, upsertGuild } from "./state.js";
import { showInAddress } from "./route.js";
import { LAST_KEY } from "./storage.js";
import { renderTyping } from "./typing.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * @param {ChatApp} app
 * @param {string | null} id a guild, DM_HOME, or null for none
 */
export function selectGuild(app, id) {
  const { chat } = app;
  if (chat.guildId !== id && chat.search) closeSearch(app);
  chat.guildId = id;
  chat.editing = null;
  const guild = currentGuild(app);
  let channelId = null;
  if (guild) {
    const last = chat.lastChannel.get(id);
    channelId = last && guild.channels.has(last) ? last : firstTextChannel(guild)?.id ?? null;
    loadMembers(app, guild.id);
  } else if (id === DM_HOME) {
    const last = chat.lastChannel.get(DM_HOME);
    channelId = last && chat.dms.has(last) ? last : null;
    // Names for the people in DMs come from the member lists.
    loadAllMembers(app);
  }
  hideInvite(app);
  openChannel(app, channelId);
  renderGuilds(app);
  renderMembers(app);
}

/**
 * @param {ChatApp} app
 * @param {string | null} id
 */
export function openChannel(app, id) {
  const { chat, ui } = app;
  if (inDmHome(app) && chat.search && chat.channelId !== id) closeSearch(app);
  chat.channelId = id;
  chat.view = "text";
  chat.editing = null;
  setReply(app, null);
  if (id) {
    chat.lastChannel.set(chat.guildId, id);
    openedChannel(app, id);
    const ch = channelState(app, id);
    if (!ch.loaded && !ch.loading) loadLatest(app, id);
  }
  rememberSelection(app);
  renderChannels(app);
  renderMain(app);
  renderMessages(app, { toBottom: true });
  renderTyping(app);
  renderPending(app);
  if (id && matchMedia("(pointer: fine)").matches) ui.input.focus();
}

/**
 * @param {ChatApp} app
 * @param {string} id
 */
export function removeGuild(app, id) {
  const { chat } = app;
  const guild = chat.guilds.get(id);
  if (!guild) return;
  for (const channelId of guild.channels.keys()) forgetChannel(app, channelId);
  chat.guilds.delete(id);
  chat.guildOrder = chat.guildOrder.filter((g) => g !== id);
  chat.lastChannel.delete(id);
  if (chat.guildId === id) selectGuild(app, chat.guildOrder[0] ?? null);
}

/**
 * @param {ChatApp} app
 * @param {string} id
 */
export function forgetChannel(app, id) {
  const { chat, call } = app;
  chat.channels.delete(id);
  chat.pending = chat.pending.filter((p) => p.channelId !== id);
  chat.unread.delete(id);
  chat.typing.delete(id);
  if (chat.voiceChannelId === id) leaveRoom(call);
}

/** @param {ChatApp} app */
function rememberSelection(app) {
  const { chat, storage } = app;
  storage.set(LAST_KEY, JSON.stringify({ guildId: chat.guildId, channelId: chat.channelId }));
  showInAddress(chat.guildId, chat.channelId);
}

/**
 * Opens a guild (or the DMs, `@me`) at a channel, as an address names them; false if
 * there is no such guild, or the channel is not one of its own.
 * @param {ChatApp} app
 * @param {string} guildId
 * @param {string | null} channelId
 */
export function openLinked(app, guildId, channelId) {
  const { chat } = app;
  const home = guildId === DM_HOME;
  if (!home && !chat.guilds.has(guildId)) return false;
  if (channelId) {
    const known = home ? chat.dms.has(channelId) : chat.guilds.get(guildId)?.channels.has(channelId);
    if (!known) return false;
    chat.lastChannel.set(guildId, channelId);
  }
  selectGuild(app, guildId);
  return true;
}

/**
 * @param {ChatApp} app
 * @param {string} name
 */
export async function createGuild(app, name) {
  const { api } = app;
  const view = await api("POST", "/guilds", { name });
  upsertGuild(app, view);
  selectGuild(app, view.id);
}

/**
 * Accepts an invite code, or a link that ends in one or carries ?invite=.
 * @param {string} text
 */
function inviteCode(text) {
  const raw = text.trim();
  try {
    const url = new URL(raw);
    return url.searchParams.get("invite") ?? url.pathname.split("/").filter(Boolean).pop() ?? "";
  } catch {
    return raw;
  }
}

/**
 * @param {ChatApp} app
 * @param {string} text
 */
export async function joinByInvite(app, text) {
  const { api } = app;
  const code = inviteCode(text);
  if (!code) throw new ApiError("unknown_invite", "Enter an invite code.");
  const view = await api("POST", `/invites/${encodeURIComponent(code)}`).catch((error) => {
    const words = {
      unknown_invite: "That invite is invalid or has expired. Ask for a new one.",
      invite_expired: "That invite has expired. Ask for a new one.",
      invite_used_up: "That invite has been used as many times as it allows. Ask for a new one.",
    }[error.code];
    throw words ? new ApiError(error.code, words) : error;
  });
  upsertGuild(app, view);
  selectGuild(app, view.id);
}

/** @param {ChatApp} app */
export async function createInvite(app) {
  const { chat, ui, api } = app;
  const guild = currentGuild(app);
  if (!guild) return;
  ui.inviteBtn.disabled = true;
  try {
    const maxAge = Number(ui.inviteAge.value);
    const maxUses = Number(ui.inviteUses.value);
    const invite = await api("POST", `/guilds/${guild.id}/invites`, { max_age: maxAge, max_uses: maxUses });
    if (chat.guildId !== guild.id) return;
    ui.inviteCode.value = invite.code;
    const age = ui.inviteAge.selectedOptions[0]?.textContent ?? "";
    ui.inviteTerms.textContent = `${maxAge ? `Valid for ${age}` : "Never expires"}${maxUses ? `, ${maxUses} use${maxUses === 1 ? "" : "s"}` : ""}.`;
    const link = `${location.origin}/chat?invite=${encodeURIComponent(invite.code)}`;
    ui.inviteLink.href = link;
    ui.inviteBox.hidden = false;
    ui.inviteCode.select();
  } catch (error) {
    showChatError(app, `Could not create an invite: ${error.message}`, error.code);
  } finally {
    ui.inviteBtn.disabled = false;
  }
}

/** @param {ChatApp} app */
export function hideInvite(app) {
  const { ui } = app;
  ui.inviteBox.hidden = true;
  ui.inviteCode.value = "";
}

/**
 * @param {ChatApp} app
 * @param {string} kind
 * @param {string} name
 * @param {string | undefined} parentId
 * @param {number | null} userLimit
 */
export async function createChannel(app, kind, name, parentId, userLimit) {
  const { api } = app;
  const guild = currentGuild(app);
  if (!guild) return;
  const body = { name, kind };
  if (parentId) body.parent_id = parentId;
  if (kind === "voice" && userLimit) body.user_limit = userLimit;
  const channel = await api("POST", `/guilds/${guild.id}/channels`, body);
  // channel_create brings it too; whichever comes first adds it.
  guild.channels.set(channel.id, channel);
  renderChannels(app);
  if (channel.kind === "text") openChannel(app, channel.id);
}

/** @param {ChatApp} app */
export async function acceptPendingInvite(app) {
  const { chat } = app;
  const code = chat.pendingInvite;
  if (!code) return;
  chat.pendingInvite = null;
  const url = new URL(location.href);
  url.searchParams.delete("invite");
  history.replaceState(null, "", url);
  try {
    await joinByInvite(app, code);
  } catch (error) {
    showChatError(app, `Could not join with the invite: ${error.message}`, error.code);
  }
}

/**
 * The invite button and the invite box.
 * @param {ChatApp} app
 */
export function wireInvites(app) {
  const { ui } = app;
  ui.inviteBtn.addEventListener("click", () => createInvite(app));
  ui.inviteClose.addEventListener("click", () => hideInvite(app));
  // Other terms make a new invite with them.
  ui.inviteAge.addEventListener("change", () => createInvite(app));
  ui.inviteUses.addEventListener("change", () => createInvite(app));
  ui.inviteCopy.addEventListener("click", async () => {
    try {
      // The link, which opens the app and joins; the code alone is in the box.
      await navigator.clipboard.writeText(ui.inviteLink.href);
      ui.inviteCopy.textContent = "Copied";
    } catch {
      ui.inviteCode.select();
      ui.inviteCopy.textContent = "Press Ctrl+C";
    }
    setTimeout(() => (ui.inviteCopy.textContent = "Copy"), 2_000);
  });
}
