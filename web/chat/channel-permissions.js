// @ts-check
// A channel's permission overwrites, in the server settings: which channel, the
// overwrites it has (for roles and members, with what they allow and deny), and an editor
// that sets each permission to allow, deny or inherit for one role or member
// (docs/chat-api.md, "Permission overwrites").

import { closestTarget, h } from "../shared/dom.js";
import { nameOf } from "./members.js";
import { PERMISSIONS, currentGuild } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */
/** @typedef {{id: string, type: "role" | "member", allow: string, deny: string}} Overwrite */

/** The permissions that mean something in a channel. */
const CHANNEL_BITS = [0, 3, 4, 5, 6, 7, 8, 10, 11, 14, 15, 16, 17, 18, 19];

/** What the tab shows now: the channel's overwrites and the guild's roles. */
const shown = {
  /** @type {Overwrite[]} */
  overwrites: [],
  /** @type {Map<string, string>} role id -> name */
  roles: new Map(),
};

/**
 * Names of the bits set in a decimal bit string.
 * @param {string} bits
 */
function namesOf(bits) {
  const b = BigInt(bits);
  return PERMISSIONS.filter(([bit]) => (b >> BigInt(bit)) & 1n).map(([, n]) => n);
}

/**
 * Who an overwrite is for, as people read it.
 * @param {ChatApp} app
 * @param {string} guildId
 * @param {{id: string, type: string}} o
 */
function targetName(app, guildId, o) {
  if (o.type === "member") return nameOf(app, o.id);
  return o.id === guildId ? "@everyone" : (shown.roles.get(o.id) ?? "a role");
}

/** @param {ChatApp} app */
export async function renderPermissions(app) {
  const { api, ui, chat } = app;
  const guild = currentGuild(app);
  if (!guild) return;
  const channels = [...guild.channels.values()];
  const chosen = channels.some((c) => c.id === ui.permChannel.value) ? ui.permChannel.value : (chat.channelId ?? channels[0]?.id);
  ui.permChannel.replaceChildren(
    ...channels.map((c) => h("option", { value: c.id, text: c.kind === "voice" ? `🔊 ${c.name}` : c.kind === "category" ? c.name.toUpperCase() : `# ${c.name}` })),
  );
  if (!chosen) return;
  ui.permChannel.value = chosen;
  const [roles, overwrites] = await Promise.all([api("GET", `/guilds/${guild.id}/roles`), api("GET", `/channels/${chosen}/permissions`)]);
  shown.roles = new Map(roles.map((/** @type {any} */ r) => [r.id, r.id === guild.id ? "@everyone" : r.name]));
  shown.overwrites = overwrites;
  ui.overwritesList.replaceChildren(
    ...(overwrites.length
      ? overwrites.map((/** @type {Overwrite} */ o) => {
          const allowed = namesOf(o.allow);
          const denied = namesOf(o.deny);
          return h(
            "li",
            { class: "overwrite-row", dataset: { target: `${o.type}:${o.id}` } },
            h("span", { class: "role-name", text: targetName(app, guild.id, o) }),
            h("span", { class: "hint small", text: [allowed.length ? `Allowed: ${allowed.join(", ")}` : "", denied.length ? `Denied: ${denied.join(", ")}` : ""].filter(Boolean).join(" · ") || "Nothing set" }),
            h("button", { type: "button", class: "small-button overwrite-edit", dataset: { target: `${o.type}:${o.id}` }, text: "Edit" }),
          );
        })
      : [h("li", { class: "hint small", text: "No overwrites: everyone has their roles' permissions here." })]),
  );
  const current = ui.overwriteTarget.value;
  ui.overwriteTarget.replaceChildren(
    ...[...shown.roles].map(([id, name]) => h("option", { value: `role:${id}`, text: name })),
    ...(chat.members.get(guild.id) ?? []).map((id) => h("option", { value: `member:${id}`, text: `${nameOf(app, id)} (member)` })),
  );
  ui.overwriteTarget.value = [...ui.overwriteTarget.options].some((o) => o.value === current) ? current : `role:${guild.id}`;
  fillEditor(app);
}

/**
 * Sets the editor's choices from the chosen target's overwrite (inherit where none).
 * @param {ChatApp} app
 */
function fillEditor(app) {
  const { ui } = app;
  const [type, id] = ui.overwriteTarget.value.split(":");
  const o = shown.overwrites.find((x) => x.type === type && x.id === id);
  const allow = BigInt(o?.allow ?? "0");
  const deny = BigInt(o?.deny ?? "0");
  ui.overwritePerms.replaceChildren(
    ...PERMISSIONS.filter(([bit]) => CHANNEL_BITS.includes(bit)).map(([bit, label]) => {
      const set = (allow >> BigInt(bit)) & 1n ? "allow" : (deny >> BigInt(bit)) & 1n ? "deny" : "inherit";
      return h(
        "label",
        { class: "overwrite-choice" },
        h("span", { text: label }),
        h(
          "select",
          { dataset: { bit: String(bit) }, "aria-label": label },
          ["inherit", "allow", "deny"].map((v) => h("option", { value: v, text: { inherit: "Inherit", allow: "Allow ✓", deny: "Deny ✕" }[v], selected: v === set })),
        ),
      );
    }),
  );
  ui.overwriteRemove.disabled = !o;
}

/**
 * The tab's controls; `act` runs a request, says what it did and shows the tab again.
 * @param {ChatApp} app
 * @param {(action: () => Promise<string>) => void} act
 */
export function wirePermissions(app, act) {
  const { ui, api } = app;
  ui.permChannel.addEventListener("change", () => act(async () => ""));
  ui.overwriteTarget.addEventListener("change", () => fillEditor(app));
  ui.overwritesList.addEventListener("click", (event) => {
    const b = closestTarget(event, ".overwrite-edit");
    if (!b) return;
    ui.overwriteTarget.value = b.dataset.target;
    fillEditor(app);
    ui.overwriteTarget.focus();
  });
  ui.overwriteForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const [type, id] = ui.overwriteTarget.value.split(":");
    let allow = 0n;
    let deny = 0n;
    for (const s of ui.overwritePerms.querySelectorAll("select")) {
      const sel = /** @type {HTMLSelectElement} */ (s);
      const bit = 1n << BigInt(sel.dataset.bit ?? "0");
      if (sel.value === "allow") allow |= bit;
      if (sel.value === "deny") deny |= bit;
    }
    const channel = ui.permChannel.value;
    const who = ui.overwriteTarget.selectedOptions[0]?.textContent ?? "";
    act(async () => {
      await api("PUT", `/channels/${channel}/permissions/${id}`, { type, allow: allow.toString(), deny: deny.toString() });
      return `Saved for ${who}.`;
    });
  });
  ui.overwriteRemove.addEventListener("click", () => {
    const [, id] = ui.overwriteTarget.value.split(":");
    const channel = ui.permChannel.value;
    act(async () => {
      await api("DELETE", `/channels/${channel}/permissions/${id}`);
      return "Overwrite removed.";
    });
  });
}
