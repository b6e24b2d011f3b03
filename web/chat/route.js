// @ts-check
// The address names what is open: /chat/channels/<guild id>/<channel id> (`@me` for
// direct messages), so a channel can be linked, reloaded, and reached again with Back.

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * The guild and channel an address names, or null for any other address.
 * @param {string} pathname
 * @returns {{guildId: string, channelId: string | null} | null}
 */
export function parsePath(pathname) {
  const m = /^\/chat\/channels\/([^/]+)(?:\/([^/]+))?\/?$/.exec(pathname);
  if (!m) return null;
  return { guildId: decodeURIComponent(m[1]), channelId: m[2] ? decodeURIComponent(m[2]) : null };
}

/**
 * The address of a guild's channel (the guild alone without one; the app's own without a guild).
 * @param {string | null} guildId
 * @param {string | null} channelId
 */
export function pathFor(guildId, channelId) {
  if (!guildId) return "/chat";
  const guild = `/chat/channels/${encodeURIComponent(guildId)}`;
  return channelId ? `${guild}/${encodeURIComponent(channelId)}` : guild;
}

/** While Back or Forward is being followed, selections replace the entry instead of adding one. */
let following = false;

/**
 * Shows the current selection in the address: a new history entry when it changed,
 * except while following Back or Forward.
 * @param {string | null} guildId
 * @param {string | null} channelId
 */
export function showInAddress(guildId, channelId) {
  const path = pathFor(guildId, channelId);
  if (location.pathname === path) return;
  const url = `${path}${location.search}${location.hash}`;
  if (following || !parsePath(location.pathname)) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

/**
 * Follows Back and Forward between channels.
 * @param {(guildId: string, channelId: string | null) => void} select
 */
export function wireRoutes(select) {
  addEventListener("popstate", () => {
    const linked = parsePath(location.pathname);
    if (!linked) return;
    following = true;
    try {
      select(linked.guildId, linked.channelId);
    } finally {
      following = false;
    }
  });
}
