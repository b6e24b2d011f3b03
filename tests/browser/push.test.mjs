// Web Push end to end: a push service running in this process (the npm package
// `web-push-testing`, which checks the VAPID signature and decrypts what arrives as a
// browser would), a real `parlor serve`, and real Chromium pages. A mention of a user with
// no page open arrives encrypted at the push service and decrypts to the right message;
// a user with a page open gets no push; a subscription the push service says is gone is
// forgotten. The page itself registers the service worker, /sw.js.
//
//   PARLOR_BIN=../../target/debug/parlor node --test push.test.mjs

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { freePort, poll, sleep } from "./server.mjs";
import { LIVE_MS, PASSWORD, env, send, shareGuild, useServer, withPeople } from "./people.mjs";

const require = createRequire(import.meta.url);
const PushServer = require("web-push-testing/src/server.js");
const { PushApiModel } = require("web-push-testing/src/PushApiModel.js");

// Parlor may send pushes to this machine only when told to: requests to user-named URLs
// are kept off internal addresses otherwise.
useServer({ env: { PARLOR_OUTGOING_ALLOW: "127.0.0.0/8,::1/128" } });

let push;
let pushUrl;


before(async () => {
  const port = await freePort();
  push = new PushServer(new PushApiModel(), port);
  push.startServer();
  pushUrl = `http://localhost:${port}`;
  await poll(() => fetch(`${pushUrl}/status`, { method: "POST" }).then((r) => r.ok).catch(() => false), Boolean, { timeout: 5000 });
});

after(() => push?._server?.close());

/** POSTs JSON to the push service. */
async function pushApi(path, input) {
  const r = await fetch(`${pushUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(input ?? {}) });
  const text = await r.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Some answers are plain text ("OK").
    body = text;
  }
  return { status: r.status, body };
}

/** What arrived at the push service for a subscription, decrypted. */
async function received(clientHash) {
  const { body } = await pushApi("/get-notifications", { clientHash });
  return (body?.data?.messages ?? []).map((m) => (typeof m === "string" ? JSON.parse(m) : m));
}

/** Parlor's REST API with a token. */
async function parlor(method, path, token, body) {
  const r = await fetch(`${env.server.url}/api/v1${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

test("a mention reaches a user with no page open as an encrypted Web Push, and a gone subscription is forgotten", { timeout: 120_000 }, async () => {
  await withPeople([["Ana", "아나 Ana"], ["Ben", "Ben"]], async ([ana, ben]) => {
    const guildId = await shareGuild(ana, ben, "Push");
    // The page registered the service worker (Chromium here has no push service to
    // subscribe with, so the subscription below comes from the local one).
    await ben.page.waitForFunction(async () => Boolean(await navigator.serviceWorker.getRegistration("/")), null, { timeout: LIVE_MS });
    const sw = await fetch(`${env.server.url}/sw.js`);
    assert.match(sw.headers.get("content-type"), /javascript/);

    // Ben's browser subscribes at the push service with Parlor's VAPID key, and registers.
    const { body: vapid } = await parlor("GET", "/push/vapid-public-key");
    assert.match(vapid.public_key, /^[A-Za-z0-9_-]{87}$/, "an uncompressed P-256 point, base64url");
    // (The service takes its options as form values: the boolean is a string.)
    const { body: subscribed } = await pushApi("/subscribe", { userVisibleOnly: "true", applicationServerKey: vapid.public_key });
    assert.ok(subscribed?.data, `the push service refused the key: ${JSON.stringify(subscribed)}`);
    const { clientHash, ...subscription } = subscribed.data;
    const registered = await ben.page.evaluate((s) => window.parlorChat.api("POST", "/users/@me/push-subscriptions", s), subscription);
    assert.equal(registered.endpoint, subscription.endpoint);

    // While Ben's page is open, a mention pushes nothing: the page shows it.
    await send(ana, `@${ben.username} 지금 있어요?`);
    await sleep(1500);
    assert.deepEqual(await received(clientHash), [], "no push while a device is connected");

    // Ben closes his page. A mention now arrives at the push service, decrypted.
    await ben.page.close();
    await poll(() => ana.page.evaluate(() => window.parlorChat.members()), (ms) => ms.some((m) => m.status === "offline"), { timeout: LIVE_MS });
    const text = `@${ben.username} 회의 3시로 옮겼어요 🙂`;
    await send(ana, text);
    const messages = await poll(() => received(clientHash), (m) => m.length > 0, { timeout: LIVE_MS });
    assert.equal(messages.length, 1, `one push arrived: ${JSON.stringify(messages)}`);
    const [p] = messages;
    assert.equal(p.body, text);
    assert.equal(p.reason, "mention");
    assert.match(p.title, new RegExp(`^${ana.displayName} \\(#general · Push\\)$`));
    const channelId = await ana.page.evaluate(() => window.parlorChat.selectedChannelId);
    assert.equal(p.url, `/chat/${guildId}/${channelId}/${p.message_id}`);
    const shown = await ana.page.evaluate(() => window.parlorChat.messages());
    assert.equal(shown.find((m) => m.id === p.message_id)?.content, text, "the push names the message sent");

    // The push service says the subscription is gone: Parlor forgets it.
    const login = await parlor("POST", "/auth/login", null, { username: ben.username, password: PASSWORD });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const token = login.body.access_token;
    assert.equal((await parlor("GET", "/users/@me/push-subscriptions", token)).body.length, 1);
    assert.equal((await pushApi(`/expire-subscription/${clientHash}`)).status, 200);
    await send(ana, `@${ben.username} one more`);
    const left = await poll(() => parlor("GET", "/users/@me/push-subscriptions", token), (r) => r.body.length === 0, { timeout: LIVE_MS });
    assert.deepEqual(left.body, [], "the gone subscription is forgotten");

    // Bad subscriptions get a code.
    const bad = await parlor("POST", "/users/@me/push-subscriptions", token, { endpoint: "ftp://x", keys: { p256dh: "AA", auth: "AA" } });
    assert.deepEqual([bad.status, bad.body.code], [400, "invalid_subscription"]);
  });
});
