// @ts-check
// The address names what is open: /chat/<guild id>/<channel id> (`@me` for direct
// messages), so a channel can be linked, reloaded, and reached again with Back; a
// message's link adds its id, /chat/<guild id>/<channel id>/<message id>.

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * The guild, channel and message an address names, or null for any other address.
 * @param {string} pathname
 * @returns {{guildId: string, channelId: string | null, messageId: string | null} | null}
 */
export function parsePath(pathname) {
  const m = /^\/chat\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?\/?$/.exec(pathname);
  if (!m) return null;
  const part = (/** @type {string | undefined} */ s) => (s ? decodeURIComponent(s) : null);
  return { guildId: decodeURIComponent(m[1]), channelId: part(m[2]), messageId: part(m[3]) };
}

/**
 * The address of a guild's channel or one of its messages (the guild alone without a
 * channel; the app's own without a guild).
 * @param {string | null} guildId
 * @param {string | null} channelId
 * @param {string | null} [messageId]
 */
export function pathFor(guildId, channelId, messageId = null) {
  if (!guildId) return "/chat";
  return ["/chat", guildId, channelId, messageId]
    .filter((s) => s != null)
    .map((s, i) => (i === 0 ? s : encodeURIComponent(/** @type {string} */ (s))))
    .join("/");
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
  // A message's link stays while its channel is open.
  if (location.pathname === path || location.pathname.startsWith(`${path}/`)) return;
  const url = `${path}${location.search}${location.hash}`;
  if (following || !parsePath(location.pathname)) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

/**
 * Follows Back and Forward between channels.
 * @param {(guildId: string, channelId: string | null, messageId: string | null) => void} select
 */
export function wireRoutes(select) {
  addEventListener("popstate", () => {
    const linked = parsePath(location.pathname);
    if (!linked) return;
    following = true;
    try {
      select(linked.guildId, linked.channelId, linked.messageId);
    } finally {
      following = false;
    }
  });
}
