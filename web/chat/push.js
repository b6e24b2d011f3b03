// @ts-check
// Web Push on this browser: once desktop notifications are allowed, the service worker
// (/sw.js) subscribes with the server's VAPID key and the subscription is registered, so
// mentions, replies and DMs reach the user while no page is open. Signing out forgets it.

/** @typedef {import("./state.js").ChatApp} ChatApp */

/**
 * @param {string} s base64url
 */
function bytes(s) {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "="));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** Whether this browser can receive Web Push at all. */
function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && typeof Notification !== "undefined";
}

/**
 * Subscribes this browser and registers it, when notifications are allowed. Resolves
 * with what happened: subscribed, not-allowed, unsupported or failed.
 * @param {ChatApp} app
 */
export async function enablePush(app) {
  if (!supported()) return "unsupported";
  try {
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    if (Notification.permission !== "granted") return "not-allowed";
    const { public_key: key } = await app.api("GET", "/push/vapid-public-key");
    let subscription = await registration.pushManager.getSubscription();
    subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(key) });
    await app.api("POST", "/users/@me/push-subscriptions", subscription.toJSON());
    return "subscribed";
  } catch (error) {
    // No push service reachable (a browser offline, or without one): notifications still
    // show while a page is open.
    console.info("parlor chat: Web Push is not available here:", error?.message ?? error);
    return "failed";
  }
}

/**
 * Before signing out: the server forgets this browser, which stops its pushes.
 * @param {ChatApp} app
 */
export async function disablePush(app) {
  if (!supported()) return;
  try {
    const registration = await navigator.serviceWorker.getRegistration("/");
    const subscription = await registration?.pushManager.getSubscription();
    if (!subscription) return;
    await app.api("DELETE", "/users/@me/push-subscriptions", { endpoint: subscription.endpoint }).catch(() => {});
    await subscription.unsubscribe();
  } catch (error) {
    console.info("parlor chat: could not end Web Push", error?.message ?? error);
  }
}
