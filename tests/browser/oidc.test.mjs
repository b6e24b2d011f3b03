// Sign-in with OpenID Connect end to end: a real provider on this machine
// (oidc-provider-mock from PyPI: discovery, signed ID tokens, the authorization code flow),
// a real `parlor serve` configured with it, and real Chromium. A new provider account gets
// a Parlor account; one whose verified address belongs to a password account is linked
// only after that account's password is given; no token ever appears in a URL.
//
//   PARLOR_BIN=../../target/debug/parlor node --test oidc.test.mjs

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { freePort, poll } from "./server.mjs";
import { LIVE_MS, PASSWORD, signUp, useServer, withPeople } from "./people.mjs";

const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");


const port = await freePort();
const issuer = `http://127.0.0.1:${port}`;
let provider;

before(async () => {
  provider = spawn("python3", ["-m", "oidc_provider_mock", "--port", String(port), "--require-nonce", "true"], { stdio: "ignore" });
  const up = await poll(() => fetch(`${issuer}/.well-known/openid-configuration`).then((r) => r.ok).catch(() => false), Boolean, { timeout: 15_000 });
  assert.ok(up, "the OIDC provider answers");
});

after(() => provider?.kill());

useServer({
  env: {
    PARLOR_OIDC: JSON.stringify([{ id: "mock", name: "Mock ID", issuer, client_id: "parlor-test", client_secret: "a client secret" }]),
  },
});

/** The provider's account `sub`, with these claims. */
async function providerUser(sub, claims) {
  const r = await fetch(`${issuer}/users/${encodeURIComponent(sub)}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(claims) });
  assert.equal(r.status, 204);
}

/** From the sign-in page, through the provider as `sub`, back to Parlor. */
async function signInWithProvider(person, sub) {
  const { page } = person;
  const urls = [];
  const record = (frame) => {
    if (frame === page.mainFrame()) urls.push(frame.url());
  };
  page.on("framenavigated", record);
  await page.click('.oidc-button[data-provider="mock"]');
  await page.waitForURL((u) => u.href.startsWith(issuer), { timeout: LIVE_MS });
  await page.fill('input[name="sub"]', sub);
  await page.click('button[type="submit"]:has-text("Authorize")');
  await page.waitForURL((u) => u.pathname === "/chat" && !u.search.includes("oidc"), { timeout: LIVE_MS });
  page.off("framenavigated", record);
  return urls;
}

test("sign in with an OpenID Connect provider: a new account, and linking an existing one only with its password", { timeout: 120_000 }, async () => {
  await withPeople([["Sol", "Sol Provider", { width: 1440, height: 900 }], ["Tae", "태 Tae", { width: 1440, height: 900 }]], async ([sol, tae]) => {
    // A provider account with no Parlor account: one is made, named as the provider says.
    await providerUser("sol-sub", { email: `sol-${Date.now()}@example.org`, email_verified: true, name: "솔 Sol", preferred_username: "sol.kim" });
    await sol.page.waitForSelector('.oidc-button[data-provider="mock"]', { timeout: LIVE_MS });
    fs.mkdirSync(SHOTS, { recursive: true });
    await sol.page.screenshot({ path: path.join(SHOTS, "desktop-sign-in.png") });
    const urls = await signInWithProvider(sol, "sol-sub");
    await sol.page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });
    const me = await sol.page.evaluate(() => window.parlorChat.user);
    assert.equal(me.display_name, "솔 Sol");
    assert.match(me.username, /^sol\.kim\d*$/);
    // No token in any address the browser visited.
    for (const u of urls) assert.ok(!/token|ticket|eyJ/.test(new URL(u).search), `a credential in ${u}`);
    // Signing in again with the provider is the same account.
    await sol.page.evaluate(() => window.parlorChat.signOut());
    await sol.page.waitForSelector("#auth-view:not([hidden])");
    await signInWithProvider(sol, "sol-sub");
    await sol.page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });
    assert.equal((await sol.page.evaluate(() => window.parlorChat.user)).id, me.id);

    // Tae has a password account with an address; the provider vouches for the same one.
    const email = `tae-${Date.now()}@example.org`;
    await tae.page.click("#auth-switch");
    await tae.page.fill("#auth-email", email);
    await signUp(tae);
    await tae.page.evaluate(() => window.parlorChat.signOut());
    await tae.page.waitForSelector("#auth-view:not([hidden])");
    await providerUser("tae-sub", { email, email_verified: true, name: "Tae at the provider" });
    await signInWithProvider(tae, "tae-sub");
    // Not linked yet: the page asks for the account's password.
    await tae.page.waitForSelector("#oidc-link:not([hidden])", { timeout: LIVE_MS });
    assert.match(await tae.page.textContent("#oidc-link-text"), new RegExp(`@${tae.username}`));
    await tae.page.screenshot({ path: path.join(SHOTS, "desktop-link-account.png") });
    await tae.page.fill("#oidc-link-password", "not the password");
    await tae.page.click("#oidc-link-submit");
    await tae.page.waitForSelector("#oidc-link-error:not([hidden])", { timeout: LIVE_MS });
    assert.equal(await tae.page.getAttribute("#oidc-link-error", "data-code"), "invalid_credentials");
    await tae.page.fill("#oidc-link-password", PASSWORD);
    await tae.page.click("#oidc-link-submit");
    await tae.page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });
    assert.equal((await tae.page.evaluate(() => window.parlorChat.user)).id, tae.userId, "the existing account, linked");
    // From now on the provider signs Tae straight in.
    await tae.page.evaluate(() => window.parlorChat.signOut());
    await tae.page.waitForSelector("#auth-view:not([hidden])");
    await signInWithProvider(tae, "tae-sub");
    await tae.page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });
    assert.equal((await tae.page.evaluate(() => window.parlorChat.user)).id, tae.userId);
  });
});
