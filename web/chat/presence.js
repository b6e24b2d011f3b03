// @ts-check
// Presence and voice state (docs/chat-api.md, "Presence" and "Voice state"): who is
// online, idle or busy, with their custom status; who is in which voice channel, seen by
// every member; our own status menu; going idle after 5 minutes without input; and telling
// the server what we do in the call we are in.

import { closestTarget, h } from "../shared/dom.js";
import { chooseTheme, chosenTheme } from "../shared/theme.js";
import { renderFriends } from "./friends.js";
import { renderMembers } from "./members.js";
import { renderChannels } from "./sidebar.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** Without input for this long, the page says it is idle. */
export const IDLE_AFTER_MS = 5 * 60_000;

/** What a status is called in the app. */
export const STATUS_LABEL = {
  online: "Online",
  idle: "Idle",
  dnd: "Do not disturb",
  invisible: "Invisible",
  offline: "Offline",
};

/** How often the speaking flag may change on the server. */
const SPEAKING_EVERY_MS = 400;

/**
 * A user's presence as the page knows it; offline when unknown.
 * @param {ChatApp} app
 * @param {string} userId
 * @returns {{status: string, custom_status?: string}}
 */
export function presenceOf(app, userId) {
  return app.chat.presences.get(userId) ?? { status: "offline" };
}

/**
 * A status dot: a span whose class names the status, labelled for screen readers.
 * @param {string} status
 * @param {string} [extra] more classes
 */
export function statusDot(status, extra = "") {
  return h("span", { class: `status-dot ${status} ${extra}`.trim(), role: "img", "aria-label": STATUS_LABEL[status] ?? status, title: STATUS_LABEL[status] ?? status });
}

/**
 * Replaces what the page knows of presences in bulk (ready, or a guild's list after a
 * resume): listed users are as listed; `members` not listed are offline.
 * @param {ChatApp} app
 * @param {any[]} list
 * @param {string[]} [members]
 */
export function applyPresences(app, list, members = []) {
  const { chat } = app;
  for (const id of members) chat.presences.delete(id);
  for (const p of list ?? []) setPresence(app, p);
}

/**
 * @param {ChatApp} app
 * @param {any} p a presence view
 */
function setPresence(app, p) {
  const { chat } = app;
  if (p.status === "offline") chat.presences.delete(p.user_id);
  else chat.presences.set(p.user_id, { status: p.status, custom_status: p.custom_status });
}

/**
 * `presence_update`.
 * @param {ChatApp} app
 * @param {any} d
 */
export function onPresenceUpdate(app, d) {
  setPresence(app, d);
  renderPresence(app);
}

/**
 * Everything that shows presence: the member list and our own panel.
 * @param {ChatApp} app
 */
export function renderPresence(app) {
  renderMembers(app);
  renderMyStatus(app);
  renderFriends(app);
}

/**
 * Replaces the voice states of the guilds listed (or all of them, from ready).
 * @param {ChatApp} app
 * @param {any[]} list
 * @param {string} [guildId] only this guild's states are replaced
 */
export function applyVoiceStates(app, list, guildId) {
  const { chat } = app;
  for (const [user, v] of [...chat.voiceStates]) if (!guildId || v.guild_id === guildId) chat.voiceStates.delete(user);
  for (const v of list ?? []) if (v.channel_id) chat.voiceStates.set(v.user_id, v);
}

/**
 * `voice_state_update`.
 * @param {ChatApp} app
 * @param {any} d
 */
export function onVoiceStateUpdate(app, d) {
  const { chat } = app;
  if (d.channel_id) chat.voiceStates.set(d.user_id, d);
  else if (chat.voiceStates.get(d.user_id)?.guild_id === d.guild_id) chat.voiceStates.delete(d.user_id);
  renderChannels(app);
}

/**
 * Who is in a voice channel, by their voice states: [{user_id, self_mute, ...}].
 * @param {ChatApp} app
 * @param {string} channelId
 */
export function occupants(app, channelId) {
  return [...app.chat.voiceStates.values()].filter((v) => v.channel_id === channelId);
}

/**
 * Fetches the guild's presences and voice states afresh (after a resume, when presence
 * updates may have been shed).
 * @param {ChatApp} app
 * @param {string} guildId
 */
export async function refreshGuildPresence(app, guildId) {
  const { api, chat } = app;
  try {
    const [presences, voice] = await Promise.all([api("GET", `/guilds/${guildId}/presences`), api("GET", `/guilds/${guildId}/voice-states`)]);
    applyPresences(app, presences, chat.members.get(guildId) ?? []);
    applyVoiceStates(app, voice, guildId);
    renderPresence(app);
    renderChannels(app);
  } catch (error) {
    console.warn("parlor chat: could not refresh presence", error);
  }
}

// -------------------------------------------------------------------------------------------
// Our own presence
// -------------------------------------------------------------------------------------------

/**
 * Sends a `presence` frame when connected; false if not.
 * @param {ChatApp} app
 * @param {any} d
 */
function sendPresence(app, d) {
  return app.gateway.send("presence", d);
}

/**
 * Chooses our status and custom status (`undefined` keeps it, `null` or "" clears it).
 * @param {ChatApp} app
 * @param {{status?: string, custom_status?: string | null}} choice
 */
export function choosePresence(app, choice) {
  const { chat } = app;
  chat.myPresence = { ...chat.myPresence, ...choice };
  if (choice.custom_status !== undefined) chat.myPresence.custom_status = choice.custom_status || null;
  sendPresence(app, choice);
  renderMyStatus(app);
}

/**
 * After a new gateway session: it starts active and in no voice channel, so say what this
 * page is (idle, in a call).
 * @param {ChatApp} app
 */
export function onNewSession(app) {
  const { chat } = app;
  if (chat.idle) sendPresence(app, { idle: true });
  chat.sentVoice = "";
  syncVoiceState(app);
}

/**
 * Idle after `IDLE_AFTER_MS` without input, active on the next.
 * @param {ChatApp} app
 */
function watchInput(app) {
  const { chat } = app;
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      chat.idle = true;
      sendPresence(app, { idle: true });
    }, chat.idleAfterMs);
  };
  const onInput = () => {
    if (chat.idle) {
      chat.idle = false;
      sendPresence(app, { idle: false });
    }
    arm();
  };
  for (const type of ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "focus"]) {
    addEventListener(type, onInput, { passive: true, capture: true });
  }
  chat.rearmIdle = arm;
  arm();
}

/**
 * Our avatar's dot and the status line under our name.
 * @param {ChatApp} app
 */
export function renderMyStatus(app) {
  const { chat, ui } = app;
  const me = chat.user ? chat.presences.get(chat.user.id) : null;
  // What we chose wins over what the server last said, until it answers.
  const status = chat.myPresence.status === "invisible" ? "invisible" : me?.status ?? chat.myPresence.status ?? "online";
  ui.myStatusDot.className = `status-dot ${status} on-avatar`;
  ui.myStatusDot.setAttribute("aria-label", STATUS_LABEL[status] ?? status);
  ui.meCustomStatus.textContent = chat.myPresence.custom_status ?? "";
  ui.meCustomStatus.hidden = !chat.myPresence.custom_status;
  for (const b of ui.statusMenu.querySelectorAll("[data-theme-choice]")) {
    b.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (b).dataset.themeChoice === chosenTheme()));
  }
  for (const b of ui.statusMenu.querySelectorAll("[data-status]")) {
    b.setAttribute("aria-checked", String(/** @type {HTMLElement} */ (b).dataset.status === (chat.myPresence.status ?? "online")));
  }
}

/**
 * The status menu under our avatar: four statuses and a custom status.
 * @param {ChatApp} app
 */
function wireStatusMenu(app) {
  const { ui, chat } = app;
  const close = () => {
    ui.statusMenu.hidden = true;
    ui.statusBtn.setAttribute("aria-expanded", "false");
  };
  ui.statusBtn.addEventListener("click", () => {
    const open = ui.statusMenu.hidden;
    ui.statusMenu.hidden = !open;
    ui.statusBtn.setAttribute("aria-expanded", String(open));
    if (open) {
      ui.customStatusInput.value = chat.myPresence.custom_status ?? "";
      /** @type {HTMLElement | null} */ (ui.statusMenu.querySelector('[aria-checked="true"]'))?.focus();
    }
  });
  ui.statusMenu.addEventListener("click", (event) => {
    const theme = closestTarget(event, "[data-theme-choice]");
    if (theme) {
      chooseTheme(theme.dataset.themeChoice);
      renderMyStatus(app);
      return;
    }
    const option = closestTarget(event, "[data-status]");
    if (option) {
      choosePresence(app, { status: option.dataset.status });
      close();
    }
  });
  ui.customStatusForm.addEventListener("submit", (event) => {
    event.preventDefault();
    choosePresence(app, { custom_status: ui.customStatusInput.value.trim() });
    close();
  });
  ui.customStatusClear.addEventListener("click", () => {
    choosePresence(app, { custom_status: null });
    close();
  });
  addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !ui.statusMenu.hidden) close();
  });
  document.addEventListener("click", (event) => {
    if (!ui.statusMenu.hidden && !closestTarget(event, "#status-menu, #status-btn")) close();
  });
}

/**
 * The status menu and the idle timer.
 * @param {ChatApp} app
 */
export function wirePresence(app) {
  wireStatusMenu(app);
  watchInput(app);
}

// -------------------------------------------------------------------------------------------
// Our voice state
// -------------------------------------------------------------------------------------------

/**
 * What we do in the call, as a voice state; null when in no call.
 * @param {ChatApp} app
 */
function voiceStateOfCall(app) {
  const { chat, call } = app;
  if (call.state !== "joined" || !chat.voiceChannelId) return null;
  const on = (source) => {
    const pub = call.local.get(source);
    return Boolean(pub && !pub.muted);
  };
  return {
    channel_id: chat.voiceChannelId,
    self_mute: !on("microphone"),
    self_deaf: call.deafened,
    self_video: on("camera"),
    self_stream: call.local.has("screen"),
    speaking: call.speakers.has(call.identity),
  };
}

/**
 * Tells the server what we now do in voice, if it changed: at once for joining, leaving
 * and the buttons; the speaking flag at most every SPEAKING_EVERY_MS.
 * @param {ChatApp} app
 */
export function syncVoiceState(app) {
  const { chat } = app;
  /** @type {any} */
  const state = voiceStateOfCall(app) ?? { channel_id: null };
  const key = JSON.stringify(state);
  if (key === chat.sentVoice) return;
  const sent = chat.sentVoice ? JSON.parse(chat.sentVoice) : null;
  const onlySpeaking = sent && state.channel_id && JSON.stringify({ ...sent, speaking: state.speaking }) === key;
  const wait = onlySpeaking ? chat.voiceSentAt + SPEAKING_EVERY_MS - Date.now() : 0;
  if (wait > 0) {
    clearTimeout(chat.voiceTimer);
    chat.voiceTimer = setTimeout(() => syncVoiceState(app), wait);
    return;
  }
  if (!sent && !state.channel_id) {
    chat.sentVoice = key;
    return;
  }
  if (app.gateway.send("voice_state", state)) {
    chat.sentVoice = key;
    chat.voiceSentAt = Date.now();
  }
}
