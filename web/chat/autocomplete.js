// @ts-check
// Autocomplete in the composer: `@` offers members (and @everyone, @here), `#` the guild's
// channels, and `/` at the start the slash commands of the guild's bots. Arrow keys move,
// Enter or Tab takes one, Escape closes. What goes into the message is `@username`,
// `#channel-name` or `/command `, which the server resolves (docs/chat-api.md, "Mentions"
// and "Slash commands").

import { closestTarget, h } from "../shared/dom.js";
import { nameOf } from "./members.js";
import { presenceOf, statusDot } from "./presence.js";
import { initials } from "./sidebar.js";
import { DM_KINDS, currentGuild, findChannel } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** The most suggestions shown at once. */
const MAX_SUGGESTIONS = 8;

/** What is being completed: `@` or `#`, the text typed after it, and where it starts. */
const TOKEN = /(^|[^\p{L}\p{N}_])([@#])([\p{L}\p{N}_.-]*)$/u;

/**
 * @typedef {{insert: string, label: string, detail: string, userId?: string}} Suggestion
 */

/**
 * The suggestions for the text before the caret, or null when nothing is being completed.
 * @param {ChatApp} app
 * @param {string} before
 * @returns {{start: number, items: Suggestion[]} | null}
 */
function suggest(app, before) {
  const { chat } = app;
  const slash = /^\/([a-z0-9_-]*)$/.exec(before);
  const here = findChannel(app, chat.channelId).guild;
  if (slash && here) {
    const commands = chat.commands.get(here.id);
    if (!commands) {
      loadCommands(app, here.id);
      return null;
    }
    const items = commands
      .filter((c) => c.name.startsWith(slash[1]))
      .map((c) => ({
        insert: `/${c.name} `,
        label: `/${c.name}${c.options.map((o) => ` ${o.required ? `<${o.name}>` : `[${o.name}]`}`).join("")}`,
        detail: `${c.description || "No description"} · ${nameOf(app, c.bot_user_id)}`,
      }));
    return items.length ? { start: 0, items: items.slice(0, MAX_SUGGESTIONS) } : null;
  }
  const m = TOKEN.exec(before);
  if (!m) return null;
  const [, lead, sigil, typed] = m;
  const start = m.index + lead.length;
  const q = typed.toLowerCase();
  const { guild, channel } = findChannel(app, chat.channelId);
  /** @type {Suggestion[]} */
  let items = [];
  if (sigil === "@") {
    const ids = guild ? chat.members.get(guild.id) ?? [] : DM_KINDS.has(channel?.kind) ? channel.recipients : [];
    for (const id of ids) {
      if (id === chat.user?.id) continue;
      const user = chat.users.get(id);
      if (!user) continue;
      const name = nameOf(app, id);
      if (user.username.toLowerCase().startsWith(q) || name.toLowerCase().startsWith(q) || name.toLowerCase().includes(` ${q}`)) {
        items.push({ insert: `@${user.username} `, label: name, detail: `@${user.username}`, userId: id });
      }
    }
    items.sort((a, b) => a.label.localeCompare(b.label));
    if (guild) {
      for (const word of ["everyone", "here"]) {
        if (word.startsWith(q)) items.push({ insert: `@${word} `, label: `@${word}`, detail: word === "here" ? "Everyone in this channel" : "Everyone in the server" });
      }
    }
  } else if (guild) {
    const g = currentGuild(app) ?? guild;
    items = [...g.channels.values()]
      .filter((c) => (c.kind === "text" || c.kind === "voice") && c.name.toLowerCase().startsWith(q))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => ({ insert: `#${c.name} `, label: `#${c.name}`, detail: c.kind === "voice" ? "Voice channel" : "Text channel" }));
  }
  return items.length ? { start, items: items.slice(0, MAX_SUGGESTIONS) } : null;
}

/**
 * Fetches the guild's commands once (again after 30 s) and suggests again.
 * @param {ChatApp} app
 * @param {string} guildId
 */
async function loadCommands(app, guildId) {
  const { chat, api } = app;
  const at = chat.commandsFetchedAt.get(guildId) ?? 0;
  if (Date.now() - at < 30_000) return;
  chat.commandsFetchedAt.set(guildId, Date.now());
  try {
    chat.commands.set(guildId, await api("GET", `/guilds/${guildId}/commands`));
  } catch {
    chat.commands.set(guildId, []);
  }
  if (document.activeElement === app.ui.input) update(app);
}

/**
 * Shows or hides the suggestion list for where the caret is.
 * @param {ChatApp} app
 */
function update(app) {
  const { ui, chat } = app;
  const input = ui.input;
  const caret = input.selectionStart ?? input.value.length;
  const found = input.selectionStart === input.selectionEnd ? suggest(app, input.value.slice(0, caret)) : null;
  chat.suggest = found ? { ...found, end: caret, selected: 0 } : null;
  render(app);
}

/** @param {ChatApp} app */
function render(app) {
  const { ui, chat } = app;
  const s = chat.suggest;
  ui.autocomplete.hidden = !s;
  ui.input.setAttribute("aria-expanded", String(Boolean(s)));
  if (!s) {
    ui.input.removeAttribute("aria-activedescendant");
    ui.autocomplete.replaceChildren();
    return;
  }
  ui.autocomplete.replaceChildren(
    ...s.items.map((item, i) =>
      h(
        "li",
        { id: `suggestion-${i}`, class: "suggestion", role: "option", "aria-selected": String(i === s.selected), dataset: { index: String(i) } },
        item.userId
          ? h("span", { class: "avatar-wrap" }, h("span", { class: "avatar-dot small", "aria-hidden": "true", text: initials(item.label) }), statusDot(presenceOf(app, item.userId).status, "on-avatar"))
          : null,
        h("span", { class: "suggestion-label", text: item.label }),
        h("span", { class: "suggestion-detail", text: item.detail }),
      ),
    ),
  );
  ui.input.setAttribute("aria-activedescendant", `suggestion-${s.selected}`);
}

/**
 * Puts the chosen suggestion in place of what was typed.
 * @param {ChatApp} app
 * @param {number} index
 */
function accept(app, index) {
  const { ui, chat } = app;
  const s = chat.suggest;
  const item = s?.items[index];
  if (!item) return;
  const v = ui.input.value;
  ui.input.value = v.slice(0, s.start) + item.insert + v.slice(s.end).replace(/^ /, "");
  const caret = s.start + item.insert.length;
  ui.input.setSelectionRange(caret, caret);
  chat.suggest = null;
  render(app);
  ui.input.focus();
  ui.input.dispatchEvent(new Event("input"));
}

/**
 * Wires the composer's autocomplete. Wire it before the composer: its keys come first.
 * @param {ChatApp} app
 */
export function wireAutocomplete(app) {
  const { ui, chat } = app;
  ui.input.setAttribute("role", "combobox");
  ui.input.setAttribute("aria-autocomplete", "list");
  ui.input.setAttribute("aria-controls", "autocomplete");
  ui.input.setAttribute("aria-expanded", "false");
  ui.input.addEventListener("keydown", (event) => {
    const s = chat.suggest;
    if (!s || event.isComposing) return;
    const n = s.items.length;
    let handled = true;
    if (event.key === "ArrowDown") s.selected = (s.selected + 1) % n;
    else if (event.key === "ArrowUp") s.selected = (s.selected + n - 1) % n;
    else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") accept(app, s.selected);
    else if (event.key === "Escape") chat.suggest = null;
    else handled = false;
    if (!handled) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    render(app);
  });
  ui.input.addEventListener("input", () => update(app));
  ui.input.addEventListener("click", () => update(app));
  ui.input.addEventListener("blur", () => {
    // A click on a suggestion lands before the list goes.
    setTimeout(() => {
      if (document.activeElement !== ui.input && chat.suggest) {
        chat.suggest = null;
        render(app);
      }
    }, 150);
  });
  ui.autocomplete.addEventListener("mousedown", (event) => {
    const li = closestTarget(event, ".suggestion");
    if (!li) return;
    event.preventDefault();
    accept(app, Number(li.dataset.index));
  });
}
