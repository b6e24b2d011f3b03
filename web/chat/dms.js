// @ts-check
// Direct messages: their names, the DM list in the sidebar, opening a DM with someone, and
// fetching the list again when a message comes for one we did not know.

import { h } from "../shared/dom.js";
import { forgetChannel, openChannel, selectGuild } from "./guilds.js";
import { renderMain, showChatError } from "./main-pane.js";
import { nameOf } from "./members.js";
import { mentionBadge } from "./reads.js";
import { initials, renderChannels, renderGuilds } from "./sidebar.js";
import { DM_HOME, dmList, inDmHome, upsertDm } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * What a DM is called: its name, or the other people in it.
 * @param {ChatApp} app
 * @param {any} channel
 */
export function dmName(app, channel) {
  const { chat } = app;
  if (!channel) return "";
  if (channel.name) return channel.name;
  const others = (channel.recipients ?? []).filter((id) => id !== chat.user?.id);
  if (others.length === 0) return nameOf(app, chat.user?.id);
  return others.map((id) => nameOf(app, id)).join(", ");
}

/**
 * @param {ChatApp} app
 * @param {string} id
 */
export function removeDm(app, id) {
  const { chat } = app;
  if (!chat.dms.delete(id)) return;
  chat.dmActivity.delete(id);
  forgetChannel(app, id);
  if (chat.lastChannel.get(DM_HOME) === id) chat.lastChannel.delete(DM_HOME);
  if (inDmHome(app) && chat.channelId === id) openChannel(app, null);
}

/** @param {ChatApp} app */
export async function refreshDms(app) {
  const { chat, api } = app;
  if (chat.refreshingDms || Date.now() - (chat.dmsFetchedAt ?? 0) < 5_000) return;
  chat.refreshingDms = true;
  chat.dmsFetchedAt = Date.now();
  try {
    for (const c of await api("GET", "/users/@me/channels")) upsertDm(app, c);
  } catch (error) {
    console.warn("parlor chat: could not load DMs", error);
  } finally {
    chat.refreshingDms = false;
  }
  renderChannels(app);
  if (inDmHome(app)) renderMain(app);
}

/**
 * Opens (or finds) the DM with a user and shows it.
 * @param {ChatApp} app
 * @param {string} userId
 */
export async function openDm(app, userId) {
  const { chat, api } = app;
  try {
    const channel = await api("POST", "/users/@me/channels", { recipient_id: userId });
    upsertDm(app, channel);
    chat.lastChannel.set(DM_HOME, channel.id);
    if (inDmHome(app)) openChannel(app, channel.id);
    else selectGuild(app, DM_HOME);
  } catch (error) {
    showChatError(app, `Could not open the conversation: ${error.message}`, error.code);
  }
}

/**
 * The DM list, in the sidebar while DMs are shown.
 * @param {ChatApp} app
 */
export function renderDmList(app) {
  const { chat, ui } = app;
  ui.guildName.textContent = "Direct messages";
  ui.inviteBtn.hidden = true;
  const dms = dmList(app);
  const items = dms.map((c) => {
    const name = dmName(app, c);
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: `channel dm${chat.unread.has(c.id) ? " unread" : ""}`,
          dataset: { channelId: c.id, kind: c.kind },
          "aria-current": chat.view === "text" && c.id === chat.channelId ? "true" : null,
          title: name,
        },
        h("span", { class: "avatar-dot small", "aria-hidden": "true", text: initials(name) }),
        h("span", { class: "channel-name", text: name }),
        c.kind === "group_dm" ? h("span", { class: "user-limit", text: String(c.recipients.length) }) : null,
        mentionBadge(chat.mentions.get(c.id) ?? 0),
      ),
    );
  });
  ui.channelList.replaceChildren(
    h(
      "li",
      {},
      h(
        "button",
        { type: "button", class: "channel friends-entry", "aria-current": chat.channelId ? null : "true" },
        h("span", { class: "channel-icon", text: "👥" }),
        h("span", { class: "channel-name", text: "Friends" }),
        mentionBadge([...chat.relationships.values()].filter((r) => r.kind === "incoming").length),
      ),
    ),
    h(
      "li",
      { class: "category" },
      h(
        "div",
        { class: "category-header" },
        h("span", { class: "category-name", text: "Direct messages" }),
        h("button", { type: "button", class: "new-group", title: "New group conversation", "aria-label": "New group conversation", text: "+" }),
      ),
      items.length
        ? h("ul", { class: "dm-list" }, items)
        : h("p", { class: "hint small dm-empty", text: "No conversations yet. Message someone from a server's member list." }),
    ),
  );
  renderGuilds(app);
}
