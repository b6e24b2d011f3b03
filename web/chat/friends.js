// @ts-check
// Friends (docs/chat-api.md, "Friends"): the list in the DM home with its tabs (online,
// all, pending, blocked), adding someone by username, accepting, declining, removing,
// blocking and unblocking, all kept live by the gateway.

import { closestTarget, h } from "../shared/dom.js";
import { openDm } from "./dms.js";
import { showChatError } from "./main-pane.js";
import { renderMessages } from "./message-view.js";
import { presenceOf, statusDot } from "./presence.js";
import { initials } from "./sidebar.js";
import { cacheUser } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

const TABS = { online: "Online", all: "All", pending: "Pending", blocked: "Blocked" };

/**
 * The relationships from ready.
 * @param {ChatApp} app
 * @param {any[]} list
 */
export function applyRelationships(app, list) {
  const { chat } = app;
  chat.relationships.clear();
  for (const r of list ?? []) {
    cacheUser(app, r.user);
    chat.relationships.set(r.user.id, r);
  }
}

/**
 * `relationship_update`.
 * @param {ChatApp} app
 * @param {any} d
 */
export function onRelationshipUpdate(app, d) {
  cacheUser(app, d.user);
  app.chat.relationships.set(d.user.id, d);
  renderFriends(app);
  renderMessages(app);
}

/**
 * `relationship_remove`.
 * @param {ChatApp} app
 * @param {any} d
 */
export function onRelationshipRemove(app, d) {
  app.chat.relationships.delete(d.user_id);
  renderFriends(app);
  renderMessages(app);
}

/**
 * Whether we blocked this user (their messages are hidden).
 * @param {ChatApp} app
 * @param {string} userId
 */
export function blocked(app, userId) {
  return app.chat.relationships.get(userId)?.kind === "blocked";
}

/** @param {ChatApp} app */
export function renderFriends(app) {
  const { chat, ui } = app;
  const tab = chat.friendsTab;
  const all = [...chat.relationships.values()].sort((a, b) => (a.user.display_name || a.user.username).localeCompare(b.user.display_name || b.user.username));
  const shown = all.filter((r) => {
    if (tab === "online") return r.kind === "friend" && presenceOf(app, r.user.id).status !== "offline";
    if (tab === "all") return r.kind === "friend";
    if (tab === "pending") return r.kind === "incoming" || r.kind === "outgoing";
    return r.kind === "blocked";
  });
  const pending = all.filter((r) => r.kind === "incoming").length;
  ui.friendsTabs.replaceChildren(
    ...Object.entries(TABS).map(([id, label]) =>
      h(
        "button",
        { type: "button", class: "friends-tab", role: "tab", dataset: { tab: id }, "aria-selected": String(id === tab) },
        label,
        id === "pending" && pending ? h("span", { class: "mention-badge", text: String(pending) }) : null,
      ),
    ),
  );
  const action = (/** @type {string} */ act, /** @type {string} */ text, extra = "") =>
    h("button", { type: "button", class: `small-button friend-action${extra}`, dataset: { act }, text });
  ui.friendsList.replaceChildren(
    h("li", { class: "member-section category-name", text: `${TABS[tab]} — ${shown.length}` }),
    ...shown.map((r) => {
      const name = r.user.display_name || r.user.username;
      const p = presenceOf(app, r.user.id);
      const detail =
        r.kind === "incoming" ? "Wants to be friends" : r.kind === "outgoing" ? "Request sent" : r.kind === "blocked" ? "Blocked" : p.custom_status || `@${r.user.username}`;
      return h(
        "li",
        { class: "friend", dataset: { userId: r.user.id, kind: r.kind } },
        h("span", { class: "avatar-wrap" }, h("span", { class: "avatar-dot", "aria-hidden": "true", text: initials(name) }), statusDot(p.status, "on-avatar")),
        h("span", { class: "member-info" }, h("span", { class: "member-name", text: name }), h("span", { class: "member-username", text: detail })),
        r.kind === "friend" ? [action("message", "Message"), action("remove", "Remove"), action("block", "Block", " danger")] : null,
        r.kind === "incoming" ? [action("accept", "Accept", " accent"), action("remove", "Decline")] : null,
        r.kind === "outgoing" ? action("remove", "Cancel") : null,
        r.kind === "blocked" ? action("remove", "Unblock") : null,
      );
    }),
  );
}

/**
 * @param {ChatApp} app
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 */
async function call(app, method, path, body) {
  try {
    return await app.api(method, path, body);
  } catch (error) {
    showChatError(app, error.message, error.code);
    return null;
  }
}

/**
 * The friends view: tabs, the add form and each row's actions.
 * @param {ChatApp} app
 */
export function wireFriends(app) {
  const { chat, ui } = app;
  ui.friendsTabs.addEventListener("click", (event) => {
    const tab = closestTarget(event, "[data-tab]");
    if (!tab) return;
    chat.friendsTab = /** @type {any} */ (tab.dataset.tab);
    renderFriends(app);
  });
  ui.friendAddForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = ui.friendAddInput.value.trim();
    if (!username) return;
    ui.friendAddResult.hidden = true;
    try {
      const r = await app.api("POST", "/users/@me/relationships", { username });
      ui.friendAddInput.value = "";
      ui.friendAddResult.textContent = r.kind === "friend" ? `You and ${r.user.display_name} are friends.` : `Request sent to ${r.user.display_name}.`;
      ui.friendAddResult.dataset.code = "";
    } catch (error) {
      ui.friendAddResult.textContent =
        error.code === "unknown_user" ? "No one has that username. Check the spelling and case." : error.message;
      ui.friendAddResult.dataset.code = error.code ?? "";
    }
    ui.friendAddResult.hidden = false;
  });
  ui.friendsList.addEventListener("click", async (event) => {
    const button = closestTarget(event, "[data-act]");
    const row = /** @type {HTMLElement | null} */ (button?.closest(".friend") ?? null);
    if (!button || !row) return;
    const id = row.dataset.userId;
    const path = `/users/@me/relationships/${id}`;
    if (button.dataset.act === "message") openDm(app, id);
    else if (button.dataset.act === "accept") call(app, "PUT", path, { kind: "friend" });
    else if (button.dataset.act === "block") call(app, "PUT", path, { kind: "blocked" });
    else if (button.dataset.act === "remove") call(app, "DELETE", path);
  });
}
