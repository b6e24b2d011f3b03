// Accounts the way people expect, end to end: a password reset by a code sent through a
// real SMTP server on this machine (aiosmtpd from PyPI, writing what it receives to a
// maildir), in real Chromium against a real `parlor serve`. The answers never tell whether
// an address has an account; a code works once.
//
//   PARLOR_BIN=../../target/debug/parlor node --test accounts.test.mjs

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort, poll, sleep } from "./server.mjs";
import { LIVE_MS, PASSWORD, createGuild, env, makePng, signUp, useServer, withPeople } from "./people.mjs";

const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");


const smtpPort = await freePort();
const maildir = fs.mkdtempSync(path.join(os.tmpdir(), "parlor-mail-"));
for (const sub of ["tmp", "new", "cur"]) fs.mkdirSync(path.join(maildir, sub));
let smtp;

before(async () => {
  smtp = spawn("python3", ["-m", "aiosmtpd", "-n", "-l", `127.0.0.1:${smtpPort}`, "-c", "aiosmtpd.handlers.Mailbox", maildir], { stdio: "ignore" });
  const up = await poll(
    () =>
      new Promise((resolve) => {
        const c = net.connect(smtpPort, "127.0.0.1", () => {
          c.end();
          resolve(true);
        });
        c.on("error", () => resolve(false));
      }),
    Boolean,
    { timeout: 10_000 },
  );
  assert.ok(up, "aiosmtpd listens");
});

after(() => {
  smtp?.kill();
  fs.rmSync(maildir, { recursive: true, force: true });
});

useServer({ env: { PARLOR_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`, PARLOR_SMTP_FROM: "Parlor <no-reply@parlor.test>" } });

/** The messages the SMTP server received, as raw text, oldest first. */
function mails() {
  const dir = path.join(maildir, "new");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => ({ f, t: fs.statSync(path.join(dir, f)).mtimeMs }))
    .sort((a, b) => a.t - b.t)
    .map(({ f }) => fs.readFileSync(path.join(dir, f), "utf8"));
}

async function api(method, p, body) {
  const r = await fetch(`${env.server.url}/api/v1${p}`, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

test("a forgotten password is reset with a code sent by e-mail, once, without telling who has an account", { timeout: 120_000 }, async () => {
  await withPeople([["Rae", "Rae", { width: 1440, height: 900 }]], async ([rae]) => {
    const { page } = rae;
    const email = `${rae.username}@example.org`;
    // Sign up with an address.
    await page.click("#auth-switch");
    await page.fill("#auth-email", email);
    await signUp(rae);
    await page.evaluate(() => window.parlorChat.signOut());
    await page.waitForSelector("#auth-view:not([hidden])");

    // An address with no account gets the same answer, and no mail goes out for it.
    const unknown = await api("POST", "/auth/password-reset", { email: `nobody-${rae.username}@example.org` });
    assert.equal(unknown.status, 202);

    // "Forgot your password?" sends a code to the address.
    await page.click("#forgot-btn");
    await page.fill("#reset-email", email);
    await page.click("#reset-submit");
    await page.waitForSelector("#reset-code-fields:not([hidden])", { timeout: LIVE_MS });
    const said = await page.textContent("#reset-info");
    assert.equal(said.startsWith(unknown.body.message), true, `the same words for every address: ${said}`);
    const received = await poll(() => mails(), (m) => m.some((x) => x.includes(email)), { timeout: LIVE_MS });
    assert.equal(received.length, 1, "one mail, to the address that has an account");
    const [mail] = received;
    assert.match(mail, /^Subject: Your Parlor password reset code/m);
    assert.match(mail, /^From: Parlor <no-reply@parlor\.test>/m);
    const code = /Your code: ([2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5})/.exec(mail)?.[1];
    assert.ok(code, `a code in the mail:\n${mail}`);

    // A wrong code is refused in words.
    await page.fill("#reset-code", "AAAAA-AAAAA");
    await page.fill("#reset-password", "a new password 2");
    await page.click("#reset-submit");
    await page.waitForSelector("#reset-error:not([hidden])", { timeout: LIVE_MS });
    assert.equal(await page.getAttribute("#reset-error", "data-code"), "invalid_reset_code");
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, "desktop-password-reset.png") });

    // The right one sets the new password.
    await page.fill("#reset-code", code.toLowerCase());
    await page.click("#reset-submit");
    await page.waitForSelector("#auth-form:not([hidden])", { timeout: LIVE_MS });
    assert.match(await page.textContent("#auth-hint"), /password is changed/);

    // The old password no longer works; the new one does, in the page.
    const old = await api("POST", "/auth/login", { username: rae.username, password: PASSWORD });
    assert.deepEqual([old.status, old.body.code], [401, "invalid_credentials"]);
    await page.fill("#auth-username", rae.username);
    await page.fill("#auth-password", "a new password 2");
    await page.click("#auth-submit");
    await page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });

    // The code was single-use.
    const again = await api("POST", "/auth/password-reset/confirm", { email, code, new_password: "a third password" });
    assert.deepEqual([again.status, again.body.code], [400, "invalid_reset_code"]);
    await sleep(500);
    assert.equal(mails().length, 1, "still no mail for the unknown address");
  });
});

test("settings: a new display name and avatar show at once; the address needs the password", { timeout: 60_000 }, async () => {
  await withPeople([["Sam", "Sam", { width: 1440, height: 900 }]], async ([sam]) => {
    const { page } = sam;
    await signUp(sam);
    await createGuild(sam, "Profile");
    await page.click("#settings-btn");
    await page.waitForSelector("#settings-dialog[open]");
    await page.fill("#settings-name", "샘 Sam");
    await page.setInputFiles("#avatar-input", { name: "me.png", mimeType: "image/png", buffer: makePng(64, 48) });
    await page.click('#profile-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector("#profile-result").textContent === "Saved.", null, { timeout: LIVE_MS });
    assert.equal(await page.textContent("#me-name"), "샘 Sam");
    const avatar = await page.evaluate(() => {
      const img = document.querySelector("#me-avatar img");
      return img && { src: img.getAttribute("src"), w: img.naturalWidth };
    });
    assert.ok(avatar?.src.startsWith("/api/v1/avatars/"), JSON.stringify(avatar));
    await page.waitForFunction(() => document.querySelector("#me-avatar img").naturalWidth === 256, null, { timeout: LIVE_MS });
    await page.waitForFunction((n) => window.parlorChat.members().some((m) => m.name === n), "샘 Sam", { timeout: LIVE_MS });
    // The address: a wrong password is refused, the right one saves it.
    await page.fill("#settings-email", `${sam.username}@example.org`);
    await page.fill("#email-password", "not it at all");
    await page.click('#email-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector("#email-result").textContent === "Wrong password.", null, { timeout: LIVE_MS });
    await page.fill("#email-password", PASSWORD);
    await page.click('#email-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector("#email-result").textContent.startsWith("Saved."), null, { timeout: LIVE_MS });
    const email = await page.evaluate(() => window.parlorChat.api("GET", "/users/@me/email"));
    assert.equal(email.email, `${sam.username}@example.org`);
    await page.screenshot({ path: path.join(SHOTS, "desktop-settings.png") });
  });
});
