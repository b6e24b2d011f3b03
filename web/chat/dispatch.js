// @ts-check
// Gateway events: `ready` (the state from scratch, or catching up after a refused resume) and
// the dispatches that keep guilds, channels, DMs, members and messages live.

import { setReply } from "./composer.js";
import { refreshDms, removeDm } from "./dms.js";
import { applyRelationships, onRelationshipRemove, onRelationshipUpdate } from "./friends.js";
import { acceptPendingInvite, forgetChannel, openChannel, removeGuild, selectGuild } from "./guilds.js";
import { catchUp, followLink, mergeMessage } from "./history.js";
import { renderMain } from "./main-pane.js";
import { renderMembers } from "./members.js";
import { applyReaction } from "./message-actions.js";
import { renderMessages } from "./message-view.js";
import { renderChannels, renderGuilds, renderMe, renderStatus } from "./sidebar.js";
import { DM_HOME, DM_KINDS, cacheUser, findChannel, firstTextChannel, inDmHome, noteDmActivity, noteServerMute, upsertDm, upsertGuild } from "./state.js";
import { applyPresences, applyVoiceStates, onNewSession, onPresenceUpdate, onVoiceStateUpdate, refreshGuildPresence, renderMyStatus } from "./presence.js";
import { applySettings, onSettingsUpdate } from "./notify-menu.js";
import { applyReadStates, markRead, noteUnseen, onMessageAck, onNotification, refreshUnreadBy, seeing } from "./reads.js";
import { parsePath } from "./route.js";
import { onThreadChannel, onThreadMessage } from "./threads.js";
import { LAST_KEY } from "./storage.js";
import { clearTyper, onTyping } from "./typing.js";
import { onVoiceMove } from "./voice-moderation.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * @param {ChatApp} app
 * @param {any} d the `ready` event
 * @param {{catchUp: boolean}} info
 */
export function onReady(app, d, { catchUp: mustCatchUp }) {
  const { chat, storage } = app;
  chat.user = d.user;
  cacheUser(app, d.user);
  const previous = chat.guildId;
  // Replace guilds and channels with what the server says now.
  chat.guilds.clear();
  chat.guildOrder = [];
  for (const g of d.guilds ?? []) upsertGuild(app, g);
  chat.dms.clear();
  for (const c of d.private_channels ?? []) upsertDm(app, c);
  for (const id of [...chat.channels.keys()]) if (!findChannel(app, id).channel) forgetChannel(app, id);
  applyReadStates(app, d.read_states);
  applyRelationships(app, d.relationships);
  applySettings(app, d.notification_settings);
  chat.presences.clear();
  applyPresences(app, d.presences);
  applyVoiceStates(app, d.voice_states);
  chat.myPresence = d.presence ?? {};
  onNewSession(app);
  renderMe(app);
  renderMyStatus(app);

  const linked = mustCatchUp ? null : parsePath(location.pathname);
  if (linked && followLink(app, linked)) {
    // The address says what to open.
  } else if (!mustCatchUp) {
    let saved = {};
    try {
      saved = JSON.parse(storage.get(LAST_KEY) ?? "{}") ?? {};
    } catch {
      // A bad value: start from the first guild.
    }
    const home = saved.guildId === DM_HOME;
    const guildId = home || chat.guilds.has(saved.guildId) ? saved.guildId : chat.guildOrder[0] ?? null;
    if (home && chat.dms.has(saved.channelId)) chat.lastChannel.set(DM_HOME, saved.channelId);
    else if (guildId && !home && saved.channelId && chat.guilds.get(guildId).channels.has(saved.channelId)) {
      chat.lastChannel.set(guildId, saved.channelId);
    }
    selectGuild(app, guildId);
  } else if (chat.guildId && chat.guildId !== DM_HOME && !chat.guilds.has(chat.guildId)) {
    selectGuild(app, chat.guildOrder[0] ?? null);
  } else {
    if (previous && chat.channelId && !findChannel(app, chat.channelId).channel) selectGuild(app, previous);
    renderGuilds(app);
    renderChannels(app);
    renderMain(app);
  }
  renderStatus(app);
  if (mustCatchUp) catchUp(app);
  acceptPendingInvite(app);
}

/**
 * @param {ChatApp} app
 * @param {string} t the event
 * @param {any} d its data
 */
export function onDispatch(app, t, d) {
  const { chat } = app;
  switch (t) {
    case "message_create": {
      onThreadMessage(app, d);
      const ch = chat.channels.get(d.channel_id);
      clearTyper(app, d.channel_id, d.author_id);
      if (ch?.hasNewer) {
        // History is shown from further back: this goes in once the pages reach it.
        ch.liveBuffer.push(d);
      } else if (ch && (ch.loaded || ch.loading)) {
        mergeMessage(app, ch, d);
        if (d.channel_id === chat.channelId) renderMessages(app);
      }
      const { channel } = findChannel(app, d.channel_id);
      if (!channel) {
        // A DM we have not heard of (its channel_create was missed): fetch the list.
        refreshDms(app);
        break;
      }
      if (DM_KINDS.has(channel.kind)) {
        noteDmActivity(app, d.channel_id, d.id);
        if (inDmHome(app)) renderChannels(app);
      }
      if (seeing(app, d.channel_id)) markRead(app, d.channel_id);
      if (d.author_id === chat.user?.id) refreshUnreadBy(app, d.channel_id);
      else if (d.author_id !== chat.user?.id) {
        noteUnseen(app, d);
        renderChannels(app);
      }
      break;
    }
    case "message_update": {
      const ch = chat.channels.get(d.channel_id);
      if (ch && (ch.messages.has(d.id) || ch.loading)) {
        mergeMessage(app, ch, d);
        if (d.channel_id === chat.channelId) renderMessages(app);
      }
      break;
    }
    case "message_delete": {
      const ch = chat.channels.get(d.channel_id);
      if (ch) {
        ch.messages.delete(d.id);
        ch.deleted.add(d.id);
        if (chat.editing === d.id) chat.editing = null;
        if (chat.replyTo?.id === d.id) setReply(app, null);
        if (d.channel_id === chat.channelId) renderMessages(app);
      }
      break;
    }
    case "message_reaction_add":
      applyReaction(app, d, +1);
      break;
    case "message_reaction_remove":
      applyReaction(app, d, -1);
      break;
    case "typing_start":
      onTyping(app, d);
      break;
    case "guild_create":
      upsertGuild(app, d);
      // Who in it is online, and who is in its voice channels.
      refreshGuildPresence(app, d.id);
      renderGuilds(app);
      if (!chat.guildId) selectGuild(app, d.id);
      else if (d.id === chat.guildId) {
        renderChannels(app);
        renderMain(app);
      }
      break;
    case "guild_update": {
      const guild = chat.guilds.get(d.id);
      if (guild) {
        guild.name = d.name;
        renderGuilds(app);
        renderChannels(app);
      }
      break;
    }
    case "guild_delete":
      removeGuild(app, d.id);
      renderGuilds(app);
      renderChannels(app);
      renderMain(app);
      break;
    case "channel_create":
    case "channel_update": {
      if (!d.guild_id && DM_KINDS.has(d.kind)) {
        upsertDm(app, d);
        renderChannels(app);
        if (inDmHome(app)) renderMain(app);
        break;
      }
      const guild = chat.guilds.get(d.guild_id);
      if (!guild) break;
      guild.channels.set(d.id, { ...d });
      if (d.kind === "thread") onThreadChannel(app);
      if (d.guild_id === chat.guildId) {
        renderChannels(app);
        renderMain(app);
      }
      break;
    }
    case "channel_delete": {
      if (chat.dms.has(d.id)) {
        removeDm(app, d.id);
        renderChannels(app);
        break;
      }
      const guild = chat.guilds.get(d.guild_id);
      if (!guild?.channels.delete(d.id)) break;
      forgetChannel(app, d.id);
      if (chat.channelId === d.id) openChannel(app, firstTextChannel(guild)?.id ?? null);
      if (d.guild_id === chat.guildId) renderChannels(app);
      break;
    }
    case "guild_member_add":
    case "guild_member_update": {
      cacheUser(app, d.user);
      noteServerMute(app, d.guild_id, d);
      const ids = chat.members.get(d.guild_id);
      if (ids && d.user?.id && !ids.includes(d.user.id)) ids.push(d.user.id);
      renderMessages(app);
      renderMembers(app);
      if (inDmHome(app)) renderChannels(app);
      break;
    }
    case "guild_member_remove": {
      const ids = chat.members.get(d.guild_id);
      if (ids) chat.members.set(d.guild_id, ids.filter((id) => id !== d.user_id));
      renderMembers(app);
      break;
    }
    case "channel_read":
      refreshUnreadBy(app, d.channel_id);
      break;
    case "message_ack":
      onMessageAck(app, d);
      renderChannels(app);
      break;
    case "notification_create":
      onNotification(app, d);
      renderChannels(app);
      if (d.message?.channel_id === chat.channelId) renderMessages(app);
      break;
    case "notification_settings_update":
      onSettingsUpdate(app, d);
      break;
    case "relationship_update":
      onRelationshipUpdate(app, d);
      renderChannels(app);
      break;
    case "relationship_remove":
      onRelationshipRemove(app, d);
      renderChannels(app);
      break;
    case "presence_update":
      onPresenceUpdate(app, d);
      break;
    case "voice_state_update":
      onVoiceStateUpdate(app, d);
      break;
    case "voice_move":
      onVoiceMove(app, d);
      break;
    default:
      // Roles, pins, ...: not shown here yet.
      break;
  }
}
