// @ts-check
// A server's settings, in one dialog with tabs: roles (create one with its permissions,
// give it to members), channel permissions (channel-permissions.js), scheduled events
// (create, mark interest), the insights of the open channel (its top words of the week,
// with words to leave out), bots (create one; its token shows once) and webhooks. Each tab
// talks to the chat API (docs/chat-api.md).

import { closestTarget, h, showResult as say } from "../shared/dom.js";
import { renderPermissions, wirePermissions } from "./channel-permissions.js";
import { nameOf } from "./members.js";
import { PERMISSIONS, currentGuild, findChannel } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */


/** @param {ChatApp} app */
async function renderRoles(app) {
  const { api, ui, chat } = app;
  const guild = currentGuild(app);
  if (!guild) return;
  const roles = await api("GET", `/guilds/${guild.id}/roles`);
  const members = chat.members.get(guild.id) ?? [];
  ui.rolesList.replaceChildren(
    ...roles.map((r) =>
      h(
        "li",
        { class: "role-row", dataset: { roleId: r.id } },
        h("span", { class: "role-name", text: r.name }),
        h("span", { class: "hint small", text: PERMISSIONS.filter(([bit]) => (BigInt(r.permissions) >> BigInt(bit)) & 1n).map(([, n]) => n).join(", ") || "No permissions" }),
        r.id === guild.id
          ? null
          : h(
              "select",
              { class: "role-give", "aria-label": `Give ${r.name} to`, dataset: { roleId: r.id } },
              h("option", { value: "", text: "Give to…" }),
              ...members.map((id) => h("option", { value: id, text: nameOf(app, id) })),
            ),
      ),
    ),
  );
  ui.rolePerms.replaceChildren(
    ...PERMISSIONS.map(([bit, label]) => h("label", { class: "perm-choice" }, h("input", { type: "checkbox", value: String(bit) }), h("span", { text: label }))),
  );
}

/** @param {ChatApp} app */
async function renderEvents(app) {
  const { api, ui } = app;
  const guild = currentGuild(app);
  if (!guild) return;
  const events = await api("GET", `/guilds/${guild.id}/scheduled-events`);
  ui.eventsList.replaceChildren(
    ...(events.length
      ? events.map((e) =>
          h(
            "li",
            { class: "event-row", dataset: { eventId: e.id } },
            h("span", { class: "event-title", text: e.title }),
            h("time", { class: "hint small", datetime: new Date(e.start_at).toISOString(), text: new Date(e.start_at).toLocaleString() }),
            h("span", { class: "hint small event-count", text: `${e.interested_count} interested` }),
            h("button", { type: "button", class: "small-button event-interest", "aria-pressed": String(e.interested), dataset: { eventId: e.id }, text: e.interested ? "Interested ✓" : "Interested?" }),
          ),
        )
      : [h("li", { class: "hint small", text: "No upcoming events." })]),
  );
}

/** @param {ChatApp} app */
async function renderInsights(app) {
  const { api, ui, chat } = app;
  const { channel } = findChannel(app, chat.channelId);
  if (!channel || channel.kind !== "text") {
    ui.insightsList.replaceChildren(h("li", { class: "hint small", text: "Open a text channel to see what it talked about." }));
    return;
  }
  const [insights, excluded] = await Promise.all([
    api("GET", `/channels/${channel.id}/insights?top=10`),
    api("GET", "/users/@me/insights/excluded-words"),
  ]);
  ui.insightsTitle.textContent = `#${channel.name}: the top words of the last 7 days (${insights.messages} messages)`;
  ui.insightsExcluded.value = excluded.words.join(", ");
  ui.insightsList.replaceChildren(
    ...(insights.words.length
      ? insights.words.map((w) => h("li", { class: "insight-word" }, h("span", { text: w.word }), h("span", { class: "hint small", text: String(w.count) })))
      : [h("li", { class: "hint small", text: "Nothing said this week." })]),
  );
}

/** @param {ChatApp} app */
async function renderBots(app) {
  const { api, ui } = app;
  const apps = await api("GET", "/applications");
  ui.botsList.replaceChildren(
    ...(apps.length ? apps.map((a) => h("li", { class: "bot-row", text: `${a.name} — @bot_${a.bot_user_id}` })) : [h("li", { class: "hint small", text: "You have no bots yet." })]),
  );
}

/**
 * The open text channel's webhooks.
 * @param {ChatApp} app
 */
async function renderWebhooks(app) {
  const { api, ui, chat } = app;
  const { channel } = findChannel(app, chat.channelId);
  const text = channel?.kind === "text";
  ui.webhookForm.hidden = !text;
  if (!text) {
    ui.webhooksTitle.textContent = "Open a text channel to manage its webhooks.";
    ui.webhooksList.replaceChildren();
    return;
  }
  ui.webhooksTitle.textContent = `Webhooks post into #${channel.name} from a secret URL.`;
  const hooks = await api("GET", `/channels/${channel.id}/webhooks`);
  ui.webhooksList.replaceChildren(
    ...(hooks.length
      ? hooks.map((w) =>
          h(
            "li",
            { class: "webhook-row", dataset: { webhookId: w.id } },
            h("span", { class: "role-name", text: w.name }),
            h("button", { type: "button", class: "small-button webhook-delete", dataset: { webhookId: w.id }, text: "Delete" }),
          ),
        )
      : [h("li", { class: "hint small", text: "No webhooks in this channel." })]),
  );
}

const RENDER = { roles: renderRoles, permissions: renderPermissions, events: renderEvents, insights: renderInsights, bots: renderBots, webhooks: renderWebhooks };

/**
 * @param {ChatApp} app
 * @param {string} tab
 */
async function showTab(app, tab) {
  const { ui } = app;
  for (const b of ui.serverTabs.querySelectorAll("[data-tab]")) b.setAttribute("aria-selected", String(/** @type {HTMLElement} */ (b).dataset.tab === tab));
  for (const p of ui.serverDialog.querySelectorAll("[data-panel]")) /** @type {HTMLElement} */ (p).hidden = /** @type {HTMLElement} */ (p).dataset.panel !== tab;
  say(ui.serverResult, "");
  try {
    await RENDER[tab](app);
  } catch (error) {
    say(ui.serverResult, error.message);
  }
}

/**
 * Runs a request, says what happened, and shows the tab again.
 * @param {ChatApp} app
 * @param {string} tab
 * @param {() => Promise<string>} action resolves with what to say
 */
async function act(app, tab, action) {
  const { ui } = app;
  try {
    const done = await action();
    await RENDER[tab](app);
    say(ui.serverResult, done, true);
  } catch (error) {
    say(ui.serverResult, error.message);
  }
}

/**
 * The dialog, its tabs and forms.
 * @param {ChatApp} app
 */
export function wireServerSettings(app) {
  const { ui, api } = app;
  ui.serverSettingsBtn.addEventListener("click", () => {
    if (!currentGuild(app)) return;
    ui.serverTitle.textContent = currentGuild(app).name;
    ui.serverDialog.showModal();
    showTab(app, "roles");
  });
  ui.serverClose.addEventListener("click", () => ui.serverDialog.close());
  wirePermissions(app, (action) => act(app, "permissions", action));
  ui.serverTabs.addEventListener("click", (event) => {
    const tab = closestTarget(event, "[data-tab]");
    if (tab) showTab(app, tab.dataset.tab);
  });
  ui.roleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const guild = currentGuild(app);
    const bits = [...ui.rolePerms.querySelectorAll("input:checked")].reduce((acc, i) => acc | (1n << BigInt(/** @type {HTMLInputElement} */ (i).value)), 0n);
    act(app, "roles", async () => {
      const r = await api("POST", `/guilds/${guild.id}/roles`, { name: ui.roleName.value.trim() || "new role", permissions: bits.toString() });
      ui.roleName.value = "";
      return `Role ${r.name} created.`;
    });
  });
  ui.rolesList.addEventListener("change", (event) => {
    const select = /** @type {HTMLSelectElement} */ (event.target);
    if (!select.classList.contains("role-give") || !select.value) return;
    const guild = currentGuild(app);
    const user = select.value;
    act(app, "roles", async () => {
      await api("PUT", `/guilds/${guild.id}/members/${user}/roles/${select.dataset.roleId}`);
      return `Given to ${nameOf(app, user)}.`;
    });
  });
  ui.eventForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const guild = currentGuild(app);
    act(app, "events", async () => {
      const start = new Date(ui.eventStart.value).getTime();
      if (!Number.isFinite(start)) throw new Error("Choose when it starts.");
      const e = await api("POST", `/guilds/${guild.id}/scheduled-events`, { title: ui.eventTitle.value, start_at: start });
      ui.eventTitle.value = "";
      return `${e.title} is scheduled.`;
    });
  });
  ui.eventsList.addEventListener("click", (event) => {
    const b = closestTarget(event, ".event-interest");
    if (!b) return;
    const guild = currentGuild(app);
    const on = b.getAttribute("aria-pressed") !== "true";
    act(app, "events", async () => {
      await api(on ? "PUT" : "DELETE", `/guilds/${guild.id}/scheduled-events/${b.dataset.eventId}/interested`);
      return on ? "Marked interested." : "No longer interested.";
    });
  });
  ui.insightsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const words = ui.insightsExcluded.value.split(",").map((w) => w.trim()).filter(Boolean);
    act(app, "insights", async () => {
      await api("PUT", "/users/@me/insights/excluded-words", { words });
      return "Left out.";
    });
  });
  ui.webhookForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act(app, "webhooks", async () => {
      const w = await api("POST", `/channels/${app.chat.channelId}/webhooks`, { name: ui.webhookName.value });
      ui.webhookName.value = "";
      ui.webhookUrl.textContent = new URL(w.url, location.origin).href;
      ui.webhookUrlBox.hidden = false;
      return `${w.name} created. Copy its URL now: it is shown only once.`;
    });
  });
  ui.webhooksList.addEventListener("click", (event) => {
    const b = closestTarget(event, ".webhook-delete");
    if (!b) return;
    act(app, "webhooks", async () => {
      await api("DELETE", `/webhooks/${b.dataset.webhookId}`);
      return "Deleted. Its URL no longer works.";
    });
  });
  ui.botForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act(app, "bots", async () => {
      const a = await api("POST", "/applications", { name: ui.botName.value });
      ui.botName.value = "";
      ui.botToken.textContent = a.token;
      ui.botTokenBox.hidden = false;
      return `${a.name} created. Copy its token now: it is shown only once.`;
    });
  });
}
