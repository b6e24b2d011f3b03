// @ts-check
// Moderating voice channels: server-mute, move and disconnect from a person's card
// (docs/chat-api.md, "Moderating voice"), and following a moderator's move of our own
// call (`voice_move`).

import { leave as leaveRoom } from "../call/room.js";
import { h } from "../shared/dom.js";
import { showChatError } from "./main-pane.js";
import { nameOf } from "./members.js";
import { PERM, currentGuild, findChannel, hasPerm } from "./state.js";
import { joinVoice } from "./voice.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * The moderation part of a person's card in the current guild, if we may moderate them.
 * @param {ChatApp} app
 * @param {string} userId
 */
export function moderationSection(app, userId) {
  const { chat } = app;
  const guild = currentGuild(app);
  if (!guild || userId === chat.user?.id) return null;
  const owner = guild.owner_id === chat.user?.id;
  if (guild.owner_id === userId && !owner) return null;
  const voice = chat.voiceStates.get(userId);
  const inVoice = voice?.guild_id === guild.id ? voice : null;
  const canMute = owner || hasPerm(guild.permissions, PERM.MUTE_MEMBERS);
  const canMove = Boolean(inVoice) && (owner || hasPerm(guild.permissions, PERM.MOVE_MEMBERS));
  if (!canMute && !canMove) return null;
  const muted = inVoice ? Boolean(inVoice.mute) : chat.serverMutes.has(`${guild.id}:${userId}`);
  const targets = [...guild.channels.values()].filter((c) => c.kind === "voice" && c.id !== inVoice?.channel_id);
  return h(
    "div",
    { class: "profile-voice", role: "group", "aria-label": "Voice moderation" },
    h("div", { class: "menu-label", text: inVoice ? `In ${findChannel(app, inVoice.channel_id).channel?.name ?? "voice"}` : "Voice" }),
    canMute
      ? h("button", {
          type: "button",
          class: "small-button",
          dataset: { act: "server-mute", mute: String(!muted) },
          text: muted ? "Unmute for everyone" : "Mute for everyone",
        })
      : null,
    canMove && targets.length
      ? h(
          "div",
          { class: "row" },
          h(
            "select",
            { class: "move-target", "aria-label": "Move to channel" },
            targets.map((c) => h("option", { value: c.id, text: c.name })),
          ),
          h("button", { type: "button", class: "small-button", dataset: { act: "voice-move" }, text: "Move" }),
        )
      : null,
    canMove ? h("button", { type: "button", class: "small-button danger", dataset: { act: "voice-disconnect" }, text: "Disconnect" }) : null,
  );
}

/**
 * A moderation button of the card was pressed; false if `act` is not one.
 * @param {ChatApp} app
 * @param {string} userId
 * @param {HTMLElement} button
 * @param {HTMLElement} card
 */
export async function moderateFromCard(app, userId, button, card) {
  const guild = currentGuild(app);
  const act = button.dataset.act;
  /** @type {any} */
  let body;
  if (act === "server-mute") body = { mute: button.dataset.mute === "true" };
  else if (act === "voice-disconnect") body = { channel_id: null };
  else if (act === "voice-move") body = { channel_id: /** @type {HTMLSelectElement | null} */ (card.querySelector(".move-target"))?.value };
  else return false;
  if (!guild) return true;
  try {
    await app.api("PATCH", `/guilds/${guild.id}/members/${userId}/voice`, body);
  } catch (error) {
    const who = nameOf(app, userId);
    showChatError(app, `Could not moderate ${who}: ${error.message}`, error.code);
  }
  return true;
}

/**
 * `voice_move`: a moderator moved this session's call to another channel, or hung it up.
 * @param {ChatApp} app
 * @param {{guild_id: string, channel_id: string | null}} d
 */
export async function onVoiceMove(app, d) {
  const { call } = app;
  if (d.channel_id) {
    const { channel } = findChannel(app, d.channel_id);
    await joinVoice(app, d.channel_id);
    call.ui.status.textContent = `A moderator moved you to ${channel?.name ?? "another channel"}`;
    return;
  }
  if (call.state === "joined" || call.state === "joining") await leaveRoom(call);
  showChatError(app, "A moderator disconnected you from the voice channel.", "voice_disconnected");
}
