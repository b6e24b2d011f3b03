// @ts-check
// Members: names for user ids (fetched by guild, throttled) and the member list.

import { closestTarget, h } from "../shared/dom.js";
import { openDm } from "./dms.js";
import { renderMain } from "./main-pane.js";
import { renderMessages } from "./message-view.js";
import { presenceOf, statusDot } from "./presence.js";
import { renderChannels, setAvatar } from "./sidebar.js";
import { cacheUser, currentGuild, findChannel, inDmHome, noteServerMute } from "./state.js";
import { renderTyping } from "./typing.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * Fetches the member lists of every guild (throttled), to put names to user ids.
 * @param {ChatApp} app
 */
export function loadAllMembers(app) {
  const { chat } = app;
  for (const id of chat.guildOrder) loadMembers(app, id);
}

/**
 * @param {ChatApp} app
 * @param {string} userId
 * @returns {string}
 */
export function nameOf(app, userId) {
  const { chat } = app;
  if (chat.user && userId === chat.user.id) return chat.user.display_name || chat.user.username;
  const user = chat.users.get(userId);
  if (user) return user.display_name || user.username;
  const { guild } = findChannel(app, chat.channelId);
  if (guild) loadMembers(app, guild.id);
  else loadAllMembers(app);
  return "Unknown user";
}

/**
 * @param {ChatApp} app
 * @param {string} guildId
 * @param {{force?: boolean}} [options]
 */
export async function loadMembers(app, guildId, { force = false } = {}) {
  const { chat, api } = app;
  const last = chat.membersFetchedAt.get(guildId) ?? 0;
  if (!force && Date.now() - last < 15_000) return;
  chat.membersFetchedAt.set(guildId, Date.now());
  const ids = [];
  try {
    let after = null;
    for (;;) {
      const page = await api("GET", `/guilds/${guildId}/members?limit=1000${after ? `&after=${after}` : ""}`);
      for (const member of page) {
        cacheUser(app, member.user);
        noteServerMute(app, guildId, member);
        ids.push(member.user.id);
      }
      if (page.length < 1000) break;
      after = page[page.length - 1].user.id;
    }
  } catch (error) {
    console.warn("parlor chat: could not load members", error);
    return;
  }
  chat.members.set(guildId, ids);
  renderMessages(app);
  renderTyping(app);
  renderMembers(app);
  if (inDmHome(app)) {
    renderChannels(app);
    renderMain(app);
  }
}

/**
 * The shown guild's members in their own column, those online first (Discord's order:
 * online, idle and busy members by name, then offline ones), each with a status dot, a
 * custom status and a button to message them.
 * @param {ChatApp} app
 */
export function renderMembers(app) {
  const { chat, ui } = app;
  const guild = currentGuild(app);
  const ids = guild ? chat.members.get(guild.id) : null;
  ui.memberPanel.hidden = !guild;
  ui.membersBtn.hidden = !guild;
  document.body.dataset.members = guild ? "shown" : "none";
  if (!guild) {
    ui.memberList.replaceChildren();
    return;
  }
  const byName = (a, b) => nameOf(app, a).localeCompare(nameOf(app, b));
  const all = [...(ids ?? [])];
  const online = all.filter((id) => presenceOf(app, id).status !== "offline").sort(byName);
  const offline = all.filter((id) => presenceOf(app, id).status === "offline").sort(byName);
  const section = (label, list) =>
    list.length
      ? [h("li", { class: "member-section category-name", role: "presentation", text: `${label} — ${list.length}` }), ...list.map((id) => memberItem(app, id))]
      : [];
  ui.memberList.replaceChildren(
    ...(ids ? [] : [h("li", { class: "member-section category-name", text: "Members — …" })]),
    ...section("Online", online),
    ...section("Offline", offline),
  );
}

/**
 * A small avatar circle for a user.
 * @param {any} user
 * @param {string} name
 */
function avatarOf(user, name) {
  const el = h("span", { class: "avatar-dot small", "aria-hidden": "true" });
  setAvatar(el, user, name);
  return el;
}

/**
 * One member: avatar with status dot, name, custom status (or @username), and *Message*.
 * @param {ChatApp} app
 * @param {string} id
 */
function memberItem(app, id) {
  const { chat } = app;
  const user = id === chat.user?.id ? chat.user : chat.users.get(id);
  const name = nameOf(app, id);
  const presence = presenceOf(app, id);
  return h(
    "li",
    { class: `member ${presence.status}`, dataset: { userId: id, status: presence.status } },
    h(
      "span",
      { class: "avatar-wrap" },
      avatarOf(user, name),
      statusDot(presence.status, "on-avatar"),
    ),
    h(
      "span",
      { class: "member-info" },
      h("span", { class: "member-name", text: name }),
      presence.custom_status
        ? h("span", { class: "member-custom-status", text: presence.custom_status })
        : h("span", { class: "member-username", text: user?.username ? `@${user.username}` : "" }),
    ),
    id === chat.user?.id
      ? null
      : h("button", { type: "button", class: "small-button message-member", dataset: { userId: id }, title: `Message ${name}`, text: "Message" }),
  );
}

/**
 * The member list's *Message* buttons.
 * @param {ChatApp} app
 */
export function wireMembers(app) {
  const { ui } = app;
  // On narrow screens the member list is an overlay the header's button opens.
  ui.membersBtn.addEventListener("click", () => {
    const open = document.body.dataset.membersOpen !== "true";
    document.body.dataset.membersOpen = String(open);
    ui.membersBtn.setAttribute("aria-expanded", String(open));
  });
  ui.memberList.addEventListener("click", (event) => {
    const button = closestTarget(event, ".message-member");
    if (button) openDm(app, button.dataset.userId);
  });
}
