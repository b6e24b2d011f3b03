// @ts-check
// Search: the shown guild's messages (or, in DMs, the shown conversation's), newest first;
// the results panel, and opening a result around its message.

import { closestTarget, h } from "../shared/dom.js";
import { dmName } from "./dms.js";
import { jumpToMessage } from "./history.js";
import { nameOf } from "./members.js";
import { formatTime } from "./message-view.js";
import { DM_KINDS, findChannel, inDmHome } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** Search results per page. */
const SEARCH_LIMIT = 25;

/**
 * The filters offered as chips for the current search: [label, query part].
 * @param {ChatApp} app
 * @returns {[string, string][]}
 */
function chips(app) {
  const { chat } = app;
  const me = chat.user?.username;
  const weekAgo = new Date(Date.now() - 7 * 24 * 3600_000).toISOString().slice(0, 10);
  /** @type {[string, string][]} */
  const list = [];
  if (me) list.push(["From me", `from:${me}`], ["Mentions me", `mentions:${me}`]);
  const { channel } = findChannel(app, chat.channelId);
  if (channel && !DM_KINDS.has(channel.kind) && !inDmHome(app)) list.push([`In #${channel.name}`, `in:${channel.id}`]);
  list.push(["Has a file", "has:attachment"], ["This week", `after:${weekAgo}`]);
  return list;
}

/**
 * The filter chips: each adds its part to the query, or takes it out again.
 * @param {ChatApp} app
 */
function renderChips(app) {
  const { chat, ui } = app;
  const parts = new Set((chat.search?.query ?? "").split(/\s+/));
  ui.searchChips.replaceChildren(
    ...chips(app).map(([label, part]) =>
      h("button", { type: "button", class: "search-chip", "aria-pressed": String(parts.has(part)), dataset: { filter: part }, text: label }),
    ),
  );
}

/**
 * Searches the shown guild (or, in DMs, the shown conversation); `more` pages on.
 * @param {ChatApp} app
 * @param {string | null} query
 * @param {{more?: boolean}} [options]
 */
export async function runSearch(app, query, { more = false } = {}) {
  const { chat, api } = app;
  if (!more) {
    const q = query.trim();
    if (!q) {
      closeSearch(app);
      return;
    }
    const path = inDmHome(app)
      ? chat.channelId
        ? `/channels/${chat.channelId}/messages/search`
        : null
      : chat.guildId
        ? `/guilds/${chat.guildId}/messages/search`
        : null;
    if (!path) return;
    chat.search = { query: q, path, results: [], nextBefore: null, loading: false, error: null };
  }
  const search = chat.search;
  if (!search || search.loading) return;
  search.loading = true;
  search.error = null;
  const seq = ++chat.searchSeq;
  renderSearch(app);
  try {
    const before = more && search.nextBefore ? `&before=${search.nextBefore}` : "";
    const page = await api("GET", `${search.path}?q=${encodeURIComponent(search.query)}&limit=${SEARCH_LIMIT}${before}`);
    if (seq !== chat.searchSeq || chat.search !== search) return;
    const seen = new Set(search.results.map((m) => m.id));
    search.results.push(...(page.messages ?? []).filter((m) => !seen.has(m.id)));
    search.nextBefore = page.next_before ?? null;
  } catch (error) {
    if (chat.search === search) search.error = error;
  } finally {
    search.loading = false;
  }
  if (chat.search === search) renderSearch(app);
}

/** @param {ChatApp} app */
export function closeSearch(app) {
  const { chat } = app;
  chat.search = null;
  chat.searchSeq += 1;
  renderSearch(app);
}

/**
 * The search panel: results, newest first, each opening its message.
 * @param {ChatApp} app
 */
export function renderSearch(app) {
  const { chat, ui } = app;
  const search = chat.search;
  ui.searchPanel.hidden = !search;
  renderChips(app);
  if (!search) {
    ui.searchResults.replaceChildren();
    ui.searchMore.hidden = true;
    return;
  }
  const n = search.results.length;
  ui.searchStatus.textContent = search.error
    ? `Search failed: ${search.error.message}`
    : search.loading && n === 0
      ? "Searching…"
      : `${n}${search.nextBefore ? "+" : ""} result${n === 1 ? "" : "s"} for “${search.query}”`;
  ui.searchPanel.dataset.state = search.loading ? "loading" : search.error ? "error" : "done";
  ui.searchMore.hidden = !search.nextBefore || search.loading;
  ui.searchResults.replaceChildren(
    ...search.results.map((m) => {
      const { channel } = findChannel(app, m.channel_id);
      const where = !channel ? "" : DM_KINDS.has(channel.kind) ? `@${dmName(app, channel)}` : `#${channel.name}`;
      const files = m.attachments?.length ?? 0;
      return h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "search-result", dataset: { messageId: m.id, channelId: m.channel_id } },
          h(
            "span",
            { class: "search-result-header" },
            h("span", { class: "author", text: nameOf(app, m.author_id) }),
            h("span", { class: "search-result-channel", text: where }),
            h("time", { class: "timestamp", datetime: new Date(m.created_at).toISOString(), text: formatTime(m.created_at) }),
          ),
          h("span", { class: "search-result-content", text: m.content }),
          files ? h("span", { class: "search-result-files", text: `📎 ${files} file${files === 1 ? "" : "s"}` }) : null,
        ),
      );
    }),
  );
}

/**
 * The search box and the results panel.
 * @param {ChatApp} app
 */
export function wireSearch(app) {
  const { ui } = app;
  ui.searchChips.addEventListener("click", (event) => {
    const chip = closestTarget(event, "[data-filter]");
    if (!chip || !app.chat.search) return;
    const filter = chip.dataset.filter;
    const parts = app.chat.search.query.split(/\s+/).filter(Boolean);
    const next = parts.includes(filter) ? parts.filter((p) => p !== filter) : [...parts, filter];
    ui.searchInput.value = next.join(" ");
    runSearch(app, ui.searchInput.value);
  });
  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch(app, ui.searchInput.value);
  });
  ui.searchInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      ui.searchInput.value = "";
      closeSearch(app);
    }
  });
  ui.searchClose.addEventListener("click", () => {
    ui.searchInput.value = "";
    closeSearch(app);
  });
  ui.searchMore.addEventListener("click", () => runSearch(app, null, { more: true }));
  ui.searchResults.addEventListener("click", (event) => {
    const result = closestTarget(event, ".search-result");
    if (result) jumpToMessage(app, result.dataset.channelId, result.dataset.messageId);
  });
}
