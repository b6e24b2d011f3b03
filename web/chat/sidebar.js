// @ts-check
// The sidebar: the guild rail, the channel list (with who is in the voice channel joined),
// and our user panel.

import { closestTarget, h } from "../shared/dom.js";
import { openChannelDialog } from "./dialogs.js";
import { renderDmList } from "./dms.js";
import { openChannel, selectGuild } from "./guilds.js";
import { DM_HOME, PERM, channelTree, currentGuild, hasPerm, inDmHome, titleWithUnread } from "./state.js";
import { renderFriends } from "./friends.js";
import { nameOf } from "./members.js";
import { muteOf } from "./notify-menu.js";
import { occupants } from "./presence.js";
import { mentionBadge, mentionsIn } from "./reads.js";
import { joinVoice } from "./voice.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** The voice channel icon: constant markup, the one thing put in with innerHTML. */
export const SPEAKER_ICON =
  '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M11 5 6 9H3v6h3l5 4z"/><path d="M15.5 8.5a5 5 0 0 1 0 7M18.5 5.5a9 9 0 0 1 0 13"/></svg>';

/** Icons of what a member does in voice: constant markup. */
const MIC_OFF_ICON =
  '<svg viewBox="0 0 24 24" width="14" height="14" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><path d="M12 3a3 3 0 0 0-3 3v5a3 3 0 0 0 5.1 2.1M15 10V6a3 3 0 0 0-5.7-1.3"/><path d="M19 11a7 7 0 0 1-11.5 5.3M5 11a7 7 0 0 0 .7 3M12 18v3M3 3l18 18"/></svg>';
const VIDEO_ICON =
  '<svg viewBox="0 0 24 24" width="14" height="14" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"><rect x="2" y="6" width="14" height="12" rx="2"/><path d="m16 10 6-3v10l-6-3z"/></svg>';

/**
 * Who is in a voice channel, under it in the list: everyone who can see the channel sees
 * them, joined or not.
 * @param {ChatApp} app
 * @param {any} channel
 * @param {any[]} inside their voice states
 */
function voiceOccupantList(app, channel, inside) {
  const { chat, call } = app;
  const here = channel.id === chat.voiceChannelId && call.state === "joined";
  return h(
    "ul",
    { class: "voice-members", dataset: { channelId: channel.id }, "aria-label": `In ${channel.name}` },
    inside.map((v) => {
      const name = nameOf(app, v.user_id);
      // In the call we hear who speaks before the server says so.
      const speaking = here ? call.speakers.has(`user-${v.user_id}`) : v.speaking;
      return h(
        "li",
        { class: `voice-member${speaking ? " speaking" : ""}`, dataset: { userId: v.user_id } },
        h("span", { class: "avatar-dot small", text: initials(name) }),
        h("button", { type: "button", class: "voice-member-name", text: name, title: `${name}: open their card` }),
        v.self_stream ? h("span", { class: "live-badge", text: "LIVE", title: "Sharing their screen" }) : null,
        v.self_video ? h("span", { class: "voice-icon icon-video", role: "img", "aria-label": "Camera on", title: "Camera on", innerHTML: VIDEO_ICON }) : null,
        v.mute
          ? h("span", { class: "voice-icon icon-muted server", role: "img", "aria-label": "Server muted", title: "Muted by a moderator", innerHTML: MIC_OFF_ICON })
          : v.self_mute || v.self_deaf
            ? h("span", { class: "voice-icon icon-muted", role: "img", "aria-label": v.self_deaf ? "Deafened" : "Muted", title: v.self_deaf ? "Deafened" : "Muted", innerHTML: MIC_OFF_ICON })
            : null,
      );
    }),
  );
}

/**
 * Up to two initials of a name, for avatars.
 * @param {string} name
 */
export function initials(name) {
  const words = (name || "?").trim().split(/\s+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map((w) => [...w][0])
    .join("")
    .toUpperCase();
}

/**
 * Fills an avatar circle: the user's picture if they have one, else their initials.
 * @param {HTMLElement} el
 * @param {any} user
 * @param {string} name
 */
export function setAvatar(el, user, name) {
  const src = user?.avatar;
  if (src && (src.startsWith("/") || src.startsWith("https://"))) {
    el.replaceChildren(h("img", { src, alt: "", class: "avatar-img" }));
  } else {
    el.textContent = initials(name);
  }
}

/** @param {ChatApp} app */
export function renderMe(app) {
  const { chat, ui, auth } = app;
  const user = chat.user ?? auth.user;
  ui.meName.textContent = user?.display_name ?? "";
  ui.meUsername.textContent = user ? `@${user.username}` : "";
  setAvatar(ui.meAvatar, user, user?.display_name ?? user?.username ?? "?");
}

/** @param {ChatApp} app */
export function renderStatus(app) {
  const { ui, gateway } = app;
  const state = gateway.state;
  ui.wsState.dataset.state = state;
  ui.wsState.textContent =
    { ready: "Online", reconnecting: "Reconnecting…", resuming: "Reconnecting…", idle: "Offline" }[state] ??
    "Connecting…";
}

/** @param {ChatApp} app */
export function renderGuilds(app) {
  const { chat, ui } = app;
  const dmUnread = [...chat.dms.keys()].some((c) => chat.unread.has(c));
  ui.dmHomeBtn.classList.toggle("unread", dmUnread);
  ui.dmHomeBtn.querySelector(".mention-badge")?.remove();
  const dmMentions = mentionsIn(app, chat.dms.keys());
  if (dmMentions) ui.dmHomeBtn.append(mentionBadge(dmMentions));
  if (inDmHome(app)) ui.dmHomeBtn.setAttribute("aria-current", "true");
  else ui.dmHomeBtn.removeAttribute("aria-current");
  ui.guildList.replaceChildren(
    ...chat.guildOrder.map((id) => {
      const guild = chat.guilds.get(id);
      const unread = [...guild.channels.keys()].some((c) => chat.unread.has(c));
      const mentions = mentionsIn(app, guild.channels.keys());
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `guild-button${unread ? " unread" : ""}`,
            dataset: { guildId: id },
            title: guild.name,
            "aria-label": mentions ? `${guild.name}, ${mentions} mention${mentions === 1 ? "" : "s"}` : guild.name,
            "aria-current": id === chat.guildId ? "true" : null,
          },
          initials(guild.name),
          mentionBadge(mentions),
        ),
      );
    }),
  );
}

/**
 * The tab's title counts the channels and DMs with messages not seen yet.
 * @param {ChatApp} app
 */
function renderTitle(app) {
  document.title = titleWithUnread(app, document.title.replace(/^\(\d+\) /, ""));
}

/** @param {ChatApp} app */
export function renderChannels(app) {
  const { chat, ui } = app;
  renderTitle(app);
  if (inDmHome(app)) {
    renderDmList(app);
    return;
  }
  const guild = currentGuild(app);
  ui.guildName.textContent = guild?.name ?? "";
  ui.inviteBtn.hidden = !guild || !(hasPerm(guild.permissions, PERM.CREATE_INVITES) || guild.owner_id === chat.user?.id);
  ui.serverSettingsBtn.hidden = !guild;
  if (!guild) {
    ui.channelList.replaceChildren();
    return;
  }
  const canManage = hasPerm(guild.permissions, PERM.MANAGE_CHANNELS) || guild.owner_id === chat.user?.id;
  const item = (c) => {
    const selected =
      (c.kind === "text" && chat.view === "text" && c.id === chat.channelId) ||
      (c.kind === "voice" && chat.view === "voice" && c.id === chat.voiceChannelId);
    const connected = c.kind === "voice" && c.id === chat.voiceChannelId;
    const button = h(
      "button",
      {
        type: "button",
        class: `channel${chat.unread.has(c.id) ? " unread" : ""}${connected ? " connected" : ""}${muteOf(app, c.id).muted ? " muted" : ""}`,
        dataset: { channelId: c.id, kind: c.kind },
        "aria-current": selected ? "true" : null,
        title: c.kind === "voice" ? `Join ${c.name}` : null,
      },
      c.kind === "voice" ? h("span", { class: "channel-icon", innerHTML: SPEAKER_ICON }) : h("span", { class: "channel-icon", text: "#" }),
      h("span", { class: "channel-name", text: c.name }),
      mentionBadge(chat.mentions.get(c.id) ?? 0),
    );
    const inside = c.kind === "voice" ? occupants(app, c.id) : [];
    if (c.kind === "voice" && c.user_limit) {
      const count = `${inside.length}/${c.user_limit}`;
      button.append(h("span", { class: "user-limit", title: `At most ${c.user_limit} people`, text: count }));
    }
    const li = h("li", {}, button);
    if (inside.length) li.append(voiceOccupantList(app, c, inside));
    return li;
  };
  const tree = channelTree(guild);
  ui.channelList.replaceChildren(
    ...tree.top.map(item),
    ...tree.groups.map(({ category, channels }) =>
      h(
        "li",
        { class: "category", dataset: { channelId: category.id } },
        h(
          "div",
          { class: "category-header" },
          h("span", { class: "category-name", text: category.name }),
          canManage
            ? h("button", {
                type: "button",
                class: "add-channel",
                dataset: { parentId: category.id },
                title: `Create a channel in ${category.name}`,
                "aria-label": `Create a channel in ${category.name}`,
                text: "+",
              })
            : null,
        ),
        h("ul", {}, channels.map(item)),
      ),
    ),
  );
  renderGuilds(app);
}

/**
 * The rail (guilds and DMs) and the channel list.
 * @param {ChatApp} app
 */
export function wireSidebar(app) {
  const { ui } = app;
  ui.guildList.addEventListener("click", (event) => {
    const button = closestTarget(event, "[data-guild-id]");
    if (button) selectGuild(app, button.dataset.guildId);
  });
  ui.dmHomeBtn.addEventListener("click", () => selectGuild(app, DM_HOME));
  ui.channelList.addEventListener("click", (event) => {
    const add = closestTarget(event, ".add-channel");
    if (add) {
      openChannelDialog(app, add.dataset.parentId);
      return;
    }
    if (closestTarget(event, ".friends-entry")) {
      openChannel(app, null);
      renderFriends(app);
      return;
    }
    const button = closestTarget(event, ".channel");
    if (!button) return;
    if (button.dataset.kind === "voice") joinVoice(app, button.dataset.channelId);
    else openChannel(app, button.dataset.channelId);
  });
}
