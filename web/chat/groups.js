// @ts-check
// Starting a group DM: choose up to nine people (friends first, then people you share a
// server with), optionally name it, and it opens.

import { closestTarget, h } from "../shared/dom.js";
import { dialogAction } from "./dialogs.js";
import { openChannel, selectGuild } from "./guilds.js";
import { nameOf } from "./members.js";
import { DM_HOME, inDmHome, upsertDm } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** Others in a group DM, the caller aside. */
const MAX_OTHERS = 9;

/**
 * Everyone the user may add: friends, then members of their servers, by name.
 * @param {ChatApp} app
 */
function candidates(app) {
  const { chat } = app;
  const me = chat.user?.id;
  const friends = [...chat.relationships.values()].filter((r) => r.kind === "friend").map((r) => r.user.id);
  const members = new Set([...chat.members.values()].flat());
  const others = [...members].filter((id) => id !== me && !friends.includes(id) && chat.relationships.get(id)?.kind !== "blocked");
  const byName = (a, b) => nameOf(app, a).localeCompare(nameOf(app, b));
  return [...friends.sort(byName), ...others.sort(byName)];
}

/** @param {ChatApp} app */
function renderChoices(app) {
  const { ui } = app;
  const chosen = new Set([...ui.groupList.querySelectorAll("input:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value));
  ui.groupList.replaceChildren(
    ...candidates(app).map((id) =>
      h(
        "li",
        {},
        h("label", { class: "group-choice" }, h("input", { type: "checkbox", value: id, checked: chosen.has(id) }), h("span", { text: nameOf(app, id) })),
      ),
    ),
  );
  ui.groupCount.textContent = `${chosen.size} of ${MAX_OTHERS}`;
}

/** @param {ChatApp} app */
export function openGroupDialog(app) {
  const { ui } = app;
  ui.groupList.replaceChildren();
  ui.groupName.value = "";
  ui.groupError.hidden = true;
  renderChoices(app);
  ui.groupDialog.showModal();
}

/**
 * The dialog and the button that opens it.
 * @param {ChatApp} app
 */
export function wireGroups(app) {
  const { ui, api } = app;
  ui.channelList.addEventListener("click", (event) => {
    if (closestTarget(event, ".new-group")) openGroupDialog(app);
  });
  ui.groupList.addEventListener("change", () => {
    const boxes = [...ui.groupList.querySelectorAll("input")].map((i) => /** @type {HTMLInputElement} */ (i));
    const n = boxes.filter((b) => b.checked).length;
    for (const b of boxes) b.disabled = !b.checked && n >= MAX_OTHERS;
    ui.groupCount.textContent = `${n} of ${MAX_OTHERS}`;
  });
  ui.groupClose.addEventListener("click", () => ui.groupDialog.close());
  ui.groupForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ids = [...ui.groupList.querySelectorAll("input:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value);
    await dialogAction(ui.groupCreate, ui.groupError, async () => {
      if (ids.length < 1) throw new Error("Choose at least one person.");
      const body = { recipient_ids: ids };
      if (ui.groupName.value.trim()) body.name = ui.groupName.value.trim();
      const channel = await api("POST", "/users/@me/channels", body);
      upsertDm(app, channel);
      ui.groupDialog.close();
      app.chat.lastChannel.set(DM_HOME, channel.id);
      if (inDmHome(app)) openChannel(app, channel.id);
      else selectGuild(app, DM_HOME);
    });
  });
}
