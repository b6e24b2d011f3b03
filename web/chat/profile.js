// @ts-check
// A person's card: clicking a member in the list, an author's name or someone in a voice
// channel shows their avatar, names, presence and custom status, with *Message*, *Add
// friend* and, for moderators, voice moderation.

import { closestTarget, h } from "../shared/dom.js";
import { openDm } from "./dms.js";
import { showChatError } from "./main-pane.js";
import { nameOf } from "./members.js";
import { STATUS_LABEL, presenceOf, statusDot } from "./presence.js";
import { setAvatar } from "./sidebar.js";
import { moderateFromCard, moderationSection } from "./voice-moderation.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * Opens the card of `userId` beside `anchor`.
 * @param {ChatApp} app
 * @param {string} userId
 * @param {HTMLElement} anchor
 */
export function openProfile(app, userId, anchor) {
  const { chat, ui } = app;
  const user = userId === chat.user?.id ? chat.user : chat.users.get(userId);
  const name = nameOf(app, userId);
  const p = presenceOf(app, userId);
  const rel = chat.relationships.get(userId)?.kind;
  const avatar = h("span", { class: "avatar-dot large", "aria-hidden": "true" });
  setAvatar(avatar, user, name);
  const me = userId === chat.user?.id;
  ui.profileCard.replaceChildren(
    h("div", { class: "profile-top" }, h("span", { class: "avatar-wrap" }, avatar, statusDot(p.status, "on-avatar")), h("div", {}, h("div", { class: "profile-name", text: name }), h("div", { class: "hint small", text: user?.username ? `@${user.username}` : "" }))),
    h("div", { class: "profile-status", text: `${STATUS_LABEL[p.status] ?? p.status}${p.custom_status ? ` — ${p.custom_status}` : ""}` }),
    me
      ? null
      : h(
          "div",
          { class: "dialog-actions" },
          h("button", { type: "button", class: "small-button", dataset: { act: "message" }, text: "Message" }),
          rel === "friend" || rel === "outgoing" || rel === "blocked" || !user?.username
            ? null
            : h("button", { type: "button", class: "small-button accent", dataset: { act: "friend" }, text: rel === "incoming" ? "Accept friend" : "Add friend" }),
        ),
    moderationSection(app, userId),
  );
  ui.profileCard.dataset.userId = userId;
  ui.profileCard.hidden = false;
  const r = anchor.getBoundingClientRect();
  const w = ui.profileCard.offsetWidth;
  ui.profileCard.style.left = `${Math.max(8, r.left - w - 8 > 8 ? r.left - w - 8 : Math.min(innerWidth - w - 8, r.right + 8))}px`;
  ui.profileCard.style.top = `${Math.max(8, Math.min(innerHeight - ui.profileCard.offsetHeight - 8, r.top))}px`;
}

/**
 * Clicks on members and author names, and the card's buttons.
 * @param {ChatApp} app
 */
export function wireProfiles(app) {
  const { ui, chat, api } = app;
  const close = () => {
    ui.profileCard.hidden = true;
  };
  ui.memberList.addEventListener("click", (event) => {
    const member = /** @type {HTMLElement | null} */ (closestTarget(event, ".member"));
    if (member && !closestTarget(event, "button")) openProfile(app, member.dataset.userId, member);
  });
  ui.channelList.addEventListener("click", (event) => {
    const person = /** @type {HTMLElement | null} */ (closestTarget(event, ".voice-member"));
    if (person?.dataset.userId) openProfile(app, person.dataset.userId, person);
  });
  ui.messages.addEventListener("click", (event) => {
    const author = closestTarget(event, ".author");
    const message = /** @type {HTMLElement | null} */ (author?.closest(".message") ?? null);
    if (author && message) openProfile(app, message.dataset.authorId, author);
  });
  ui.profileCard.addEventListener("click", async (event) => {
    const b = /** @type {HTMLElement | null} */ (closestTarget(event, "[data-act]"));
    const id = ui.profileCard.dataset.userId;
    if (!b || !id) return;
    close();
    if (await moderateFromCard(app, id, b, ui.profileCard)) return;
    if (b.dataset.act === "message") openDm(app, id);
    else {
      const user = chat.users.get(id);
      try {
        await api("POST", "/users/@me/relationships", { username: user.username });
      } catch (error) {
        showChatError(app, error.message, error.code);
      }
    }
  });
  document.addEventListener("mousedown", (event) => {
    if (!ui.profileCard.hidden && !closestTarget(event, "#profile-card, .member, .author, .voice-member")) close();
  });
  addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
}
