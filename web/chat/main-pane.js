// @ts-check
// The main pane: which view shows (sign-in, loading, the app; text, voice, empty), its title,
// and the chat error box.

import { h } from "../shared/dom.js";
import { showErrorIn } from "../shared/errors.js";
import { dmName } from "./dms.js";
import { closeSearch } from "./search.js";
import { SPEAKER_ICON } from "./sidebar.js";
import { currentGuild, findChannel, inDmHome, titleWithUnread } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * @param {ChatApp} app
 * @param {"auth" | "loading" | "app"} view
 */
export function showView(app, view) {
  const { ui } = app;
  document.body.dataset.view = view;
  ui.authView.hidden = view !== "auth";
  ui.loadingView.hidden = view !== "loading";
  ui.appView.hidden = view !== "app";
}

/** @param {ChatApp} app */
export function renderMain(app) {
  const { chat, ui } = app;
  const guild = currentGuild(app);
  const home = inDmHome(app);
  /** @type {string} "text", "voice", "empty" (no guilds) or "none" (nothing to show) */
  let view = chat.view;
  if (!guild && !home) view = chat.guildOrder.length ? "none" : "empty";
  else if (view === "text" && !chat.channelId) view = home ? "friends" : "none";
  ui.appView.dataset.pane = view;
  ui.emptyView.hidden = view !== "empty" && view !== "none";
  ui.emptyView.querySelector("h2").textContent =
    view === "empty" ? "No servers yet" : home ? "No conversation open" : "No text channel here";
  ui.emptyView.querySelector(".hint").textContent =
    view === "empty"
      ? "Create a server for your friends, or join one with an invite code."
      : home
        ? "Pick a conversation, or message someone from a server's member list."
        : "This server has no text channel you can see.";
  ui.searchForm.hidden = view !== "text";
  ui.notifyBtn.hidden = view !== "text";
  if (view !== "text" && chat.search) closeSearch(app);
  ui.emptyAddBtn.hidden = view !== "empty";
  ui.textView.hidden = view !== "text";
  ui.friendsView.hidden = view !== "friends";
  ui.roomView.hidden = view !== "voice";
  let title = "";
  let icon = null;
  if (view === "text" && home) {
    const channel = chat.dms.get(chat.channelId);
    title = dmName(app, channel);
    icon = h("span", { class: "channel-icon", text: "@" });
    ui.input.placeholder = channel ? `Message @${title}` : "Message";
    ui.searchInput.placeholder = "Search this conversation";
  } else if (view === "text") {
    const channel = guild.channels.get(chat.channelId);
    title = channel ? channel.name : "";
    icon = h("span", { class: "channel-icon", text: "#" });
    ui.input.placeholder = channel ? `Message #${channel.name}` : "Message";
    ui.searchInput.placeholder = `Search ${guild.name}`;
  } else if (view === "friends") {
    title = "Friends";
    icon = h("span", { class: "channel-icon", text: "👥" });
  } else if (view === "voice") {
    const channel = findChannel(app, chat.voiceChannelId).channel;
    title = channel ? channel.name : "";
    icon = h("span", { class: "channel-icon", innerHTML: SPEAKER_ICON });
  }
  ui.channelTitle.replaceChildren(...(title ? [icon, h("span", { class: "channel-title-name", text: title })] : []));
  document.title = titleWithUnread(
    app,
    view === "friends"
      ? "Friends · Parlor"
      : title
        ? `${view === "text" ? (home ? "@" : "#") : "🔊 "}${title} · ${home ? "Direct messages" : guild?.name ?? ""} · Parlor`
        : "Parlor",
  );
}

/**
 * @param {ChatApp} app
 * @param {string} message
 * @param {string} [code]
 */
export function showChatError(app, message, code) {
  const { chat, ui } = app;
  console.warn("parlor chat:", code, message);
  showErrorIn(ui.chatError, message, code);
  clearTimeout(chat.errorTimer);
  chat.errorTimer = setTimeout(() => {
    ui.chatError.hidden = true;
  }, 10_000);
}
