// @ts-check
// Voice channels: joining one (its room joins through call/), the voice panel, and the list
// of who is in it.

import { joinRoom, leave as leaveRoom, setMuted, toggleDeafen } from "../call/room.js";
import { closestTarget } from "../shared/dom.js";
import { ParlorError } from "../shared/errors.js";
import { renderMain } from "./main-pane.js";
import { renderChannels } from "./sidebar.js";
import { findChannel } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * The signaling URL from voice/join, made secure when the page is.
 * @param {string} url
 */
function signalingUrl(url) {
  try {
    const u = new URL(url, location.href);
    if (location.protocol === "https:" && u.protocol === "ws:" && u.host === location.host) u.protocol = "wss:";
    return u.href;
  } catch {
    return url;
  }
}

/**
 * @param {ChatApp} app
 * @param {string} channelId
 */
export async function joinVoice(app, channelId) {
  const { chat, api, call } = app;
  const roomState = call.state;
  if (chat.voiceChannelId === channelId && (roomState === "joining" || roomState === "joined")) {
    chat.view = "voice";
    renderMain(app);
    renderChannels(app);
    return;
  }
  if (roomState === "joining" || roomState === "joined") await leaveRoom(call);
  chat.voiceChannelId = channelId;
  chat.applyVoicePrefs = true;
  chat.view = "voice";
  renderMain(app);
  renderChannels(app);
  renderVoicePanel(app);
  const credentials = async () => {
    try {
      const v = await api("POST", `/channels/${channelId}/voice/join`);
      return { token: v.token, url: signalingUrl(v.url) };
    } catch (error) {
      if (error.code !== "channel_full") throw error;
      const { channel } = findChannel(app, channelId);
      const limit = channel?.user_limit;
      throw new ParlorError(
        "channel_full",
        `${channel?.name ?? "This voice channel"} is full${limit ? ` (${limit} ${limit === 1 ? "person" : "people"} at most)` : ""}. Try again when someone leaves.`,
      );
    }
  };
  await joinRoom(call, credentials().then((c) => ({ ...c, renew: credentials })));
}

/**
 * @param {ChatApp} app
 * @param {string} state
 */
export function onRoomState(app, state) {
  const { chat } = app;
  if (state !== "joining" && state !== "joined") {
    chat.voiceChannelId = null;
    if (chat.view === "voice") chat.view = "text";
  }
  document.body.dataset.voice = state;
  renderVoicePanel(app);
  renderPanelToggles(app);
  renderChannels(app);
  renderMain(app);
}

/**
 * The room's participants changed (or anything else in it): the sidebar lists them.
 * @param {ChatApp} app
 */
export function onRoomRender(app) {
  const { chat } = app;
  applyVoicePrefs(app);
  renderPanelToggles(app);
  const key = JSON.stringify(voiceMembers(app));
  if (key === chat.voiceRenderKey) return;
  chat.voiceRenderKey = key;
  renderChannels(app);
}

/**
 * Who is in the voice channel joined, us first, for the sidebar.
 * @param {ChatApp} app
 * @returns {{identity: string, name: string, speaking: boolean}[]}
 */
export function voiceMembers(app) {
  const { call } = app;
  if (call.state !== "joined") return [];
  const speakers = call.speakers;
  return [
    { identity: call.identity, name: call.name, speaking: speakers.has(call.identity) },
    ...[...call.participants.values()].map((p) => ({ identity: p.identity, name: p.name, speaking: speakers.has(p.identity) })),
  ];
}

/** @param {ChatApp} app */
function renderVoicePanel(app) {
  const { chat, ui, call } = app;
  const state = call.state;
  const active = state === "joining" || state === "joined";
  ui.voicePanel.hidden = !active;
  const { channel, guild } = findChannel(app, chat.voiceChannelId);
  ui.voiceChannelName.textContent = channel ? `${channel.name} / ${guild.name}` : "";
}

/**
 * The voice panel: leaving, and going back to the call.
 * @param {ChatApp} app
 */
export function wireVoice(app) {
  const { chat, ui, call } = app;
  ui.voiceDisconnect.addEventListener("click", () => leaveRoom(call));
  ui.panelMicBtn.addEventListener("click", () => {
    const mic = call.local.get("microphone");
    if (call.state === "joined" && mic) {
      // The microphone while deafened undeafens and unmutes, as people expect.
      if (call.deafened) {
        toggleDeafen(call);
        if (mic.muted) setMuted(call, "microphone", false);
      } else setMuted(call, "microphone", !mic.muted);
      chat.selfMute = mic.muted;
      chat.selfDeaf = call.deafened;
    } else {
      chat.selfMute = !(chat.selfMute || chat.selfDeaf);
      if (!chat.selfMute) chat.selfDeaf = false;
    }
    renderPanelToggles(app);
  });
  ui.panelDeafenBtn.addEventListener("click", () => {
    if (call.state === "joined") {
      toggleDeafen(call);
      chat.selfDeaf = call.deafened;
    } else {
      chat.selfDeaf = !chat.selfDeaf;
    }
    renderPanelToggles(app);
  });
  renderPanelToggles(app);
  ui.voicePanel.addEventListener("click", (event) => {
    // The panel's text leads back to the call.
    if (!closestTarget(event, "button") && chat.voiceChannelId) joinVoice(app, chat.voiceChannelId);
  });
}

/**
 * The user panel's microphone and headphones: the call's state while in one, else the
 * choices the next call starts with.
 * @param {ChatApp} app
 */
function renderPanelToggles(app) {
  const { chat, call, ui } = app;
  const inCall = call.state === "joined";
  const mic = call.local.get("microphone");
  const deaf = inCall ? call.deafened : chat.selfDeaf;
  const muted = inCall ? call.serverMuted || deaf || Boolean(mic?.muted) : chat.selfMute || deaf;
  const micLabel = inCall && call.serverMuted ? "Muted by a moderator" : muted ? "Unmute" : "Mute";
  ui.panelMicBtn.setAttribute("aria-pressed", String(muted));
  ui.panelMicBtn.setAttribute("aria-label", micLabel);
  ui.panelMicBtn.title = micLabel;
  ui.panelMicBtn.disabled = inCall && call.serverMuted;
  ui.panelDeafenBtn.setAttribute("aria-pressed", String(deaf));
  ui.panelDeafenBtn.setAttribute("aria-label", deaf ? "Undeafen" : "Deafen");
  ui.panelDeafenBtn.title = deaf ? "Undeafen" : "Deafen";
}

/**
 * A call just joined starts muted or deafened as the panel says, once its microphone is
 * published.
 * @param {ChatApp} app
 */
function applyVoicePrefs(app) {
  const { chat, call } = app;
  const mic = call.local.get("microphone");
  if (!chat.applyVoicePrefs || call.state !== "joined" || !mic) return;
  chat.applyVoicePrefs = false;
  if (chat.selfDeaf && !call.deafened) toggleDeafen(call);
  else if (chat.selfMute && !mic.muted) setMuted(call, "microphone", true);
}
