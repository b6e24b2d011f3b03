// @ts-check
// Parlor's service worker: shows the Web Push messages the server sends for mentions,
// replies and DMs while no page of the app is open (docs/chat-api.md, "Web Push"), and
// opens the message when the notification is clicked. It caches nothing.

/** @type {any} */
const worker = self;

worker.addEventListener("push", (/** @type {any} */ event) => {
  let d = {};
  try {
    d = event.data?.json() ?? {};
  } catch {
    d = { title: "Parlor", body: event.data?.text() ?? "" };
  }
  event.waitUntil(
    (async () => {
      // An open, visible page shows the message itself.
      const pages = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      if (pages.some((p) => p.visibilityState === "visible")) return;
      await worker.registration.showNotification(d.title ?? "Parlor", {
        body: d.body ?? "",
        tag: d.tag,
        data: { url: d.url ?? "/chat" },
      });
    })(),
  );
});

worker.addEventListener("notificationclick", (/** @type {any} */ event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url ?? "/chat", worker.location.origin).href;
  event.waitUntil(
    (async () => {
      const pages = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      const page = pages.find((p) => new URL(p.url).pathname.startsWith("/chat"));
      if (page) {
        await page.navigate(url).catch(() => {});
        return page.focus();
      }
      return worker.clients.openWindow(url);
    })(),
  );
});
