// What the chat app's browser tests share: a real `parlor serve` and Chromium per test
// file (`useServer`), people with their own browser contexts, and the steps they take
// (sign up, make a server, invite, send, join a voice channel).

import { after, before } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, poll, recordCspViolations, startServer } from "./server.mjs";

/** How long media may take to start flowing. */
export const MEDIA_TIMEOUT_MS = 30_000;
/** How long a live chat event may take to show. */
export const LIVE_MS = 10_000;
export const PASSWORD = "correct horse battery";

/** This test file's server and browser, once `useServer` has started them. */
export const env = { server: null, browser: null };

/**
 * Starts a server (with `options`, as `startServer` takes) and Chromium before the file's
 * tests, and stops both after them.
 */
export function useServer(options) {
  before(async () => {
    env.server = await startServer(options);
    env.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
}


/** A fresh, valid username (2–32 letters, digits, "_", "."). */
export function uniqueUsername(prefix) {
  return `${prefix}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** A browser context with /chat open. */
export async function openPerson(label, displayName, viewport = { width: 1100, height: 720 }) {
  const context = await env.browser.newContext({ viewport });
  const cspViolations = [];
  await recordCspViolations(context, cspViolations);
  const page = await context.newPage();
  const person = {
    label,
    displayName,
    username: uniqueUsername(label.toLowerCase()),
    context,
    page,
    pageErrors: [],
    cspViolations,
    console: [],
  };
  const started = Date.now();
  page.on("pageerror", (error) => person.pageErrors.push(error.message));
  page.on("console", (message) => {
    person.console.push(`${Date.now() - started}ms ${message.type()}: ${message.text()}`);
    if (person.console.length > 300) person.console.shift();
  });
  await page.goto(`${env.server.url}/chat`);
  await page.waitForSelector("#auth-view:not([hidden])");
  return person;
}

/** Opens one page per [label, display name], runs `body`, closes them; prints consoles on failure. */
export async function withPeople(specs, body) {
  const people = await Promise.all(specs.map(([label, name, viewport]) => openPerson(label, name, viewport)));
  try {
    await body(people);
    for (const p of people) assert.deepEqual(p.pageErrors, [], `${p.label} had uncaught page errors`);
    for (const p of people) assert.deepEqual(p.cspViolations, [], `${p.label}'s page broke its Content-Security-Policy`);
  } catch (error) {
    for (const p of people) {
      if (p.console.length) console.log(`--- console of ${p.label} ---\n${p.console.join("\n")}`);
    }
    throw error;
  } finally {
    await Promise.all(people.map((p) => p.context.close().catch(() => {})));
  }
}

export const chatState = (page) =>
  page.evaluate(() => ({
    wsState: window.parlorChat.wsState,
    sessionId: window.parlorChat.sessionId,
    stats: window.parlorChat.stats,
    selectedGuildId: window.parlorChat.selectedGuildId,
    selectedChannelId: window.parlorChat.selectedChannelId,
    view: window.parlorChat.view,
  }));

export const messages = (page) => page.evaluate(() => window.parlorChat.messages());

/** Submits the auth form in `mode` ("signin" or "signup"). */
export async function submitAuth(person, mode, { username = person.username, password = PASSWORD, displayName } = {}) {
  const { page } = person;
  if ((await page.getAttribute("#auth-form", "data-mode")) !== mode) await page.click("#auth-switch");
  await page.fill("#auth-username", username);
  if (mode === "signup") await page.fill("#auth-display-name", displayName ?? person.displayName);
  await page.fill("#auth-password", password);
  await page.click("#auth-submit");
}

/** Waits for the auth form's error and returns {code, text}. */
export async function authError(page) {
  await page.waitForSelector("#auth-error:not([hidden])", { timeout: LIVE_MS });
  return { code: await page.getAttribute("#auth-error", "data-code"), text: await page.textContent("#auth-error") };
}

/** Signs up through the form and waits until the chat WebSocket is ready. */
export async function signUp(person) {
  await submitAuth(person, "signup");
  await person.page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });
  const user = await person.page.evaluate(() => window.parlorChat.user);
  assert.equal(user.username, person.username);
  assert.equal(user.display_name, person.displayName);
  person.userId = user.id;
  assert.equal(await person.page.textContent("#me-name"), person.displayName);
}

/** Creates a guild through the dialog; resolves with its id once it is selected. */
export async function createGuild(person, name) {
  const { page } = person;
  await page.click("#add-guild-btn");
  await page.fill("#new-guild-name", name);
  await page.click("#create-guild-btn");
  await page.waitForSelector("#guild-dialog", { state: "hidden" });
  await page.waitForSelector('#channel-list .channel[data-kind="text"][aria-current="true"]', { timeout: LIVE_MS });
  const { selectedGuildId } = await chatState(page);
  assert.equal(await page.textContent("#guild-name"), name);
  return selectedGuildId;
}

/** Clicks the invite button and returns the code it shows. */
export async function createInvite(person) {
  await person.page.click("#invite-btn");
  await person.page.waitForSelector("#invite-box:not([hidden])", { timeout: LIVE_MS });
  const code = await person.page.inputValue("#invite-code");
  assert.match(code, /^[A-Za-z0-9_-]{16,}$/, `an invite code: ${code}`);
  return code;
}

/** Joins with an invite code through the dialog and waits until the guild is selected. */
export async function joinGuild(person, code, guildId) {
  const { page } = person;
  await page.click("#add-guild-btn");
  await page.fill("#invite-input", code);
  await page.click("#join-guild-btn");
  await page.waitForSelector("#guild-dialog", { state: "hidden", timeout: LIVE_MS });
  await page.waitForFunction((id) => window.parlorChat.selectedGuildId === id, guildId, { timeout: LIVE_MS });
  await page.waitForSelector('#channel-list .channel[data-kind="text"][aria-current="true"]');
}

/** Types a message in the composer and sends it with Enter. */
export async function send(person, text) {
  await person.page.fill("#message-input", text);
  await person.page.press("#message-input", "Enter");
}

/** Waits until the page shows a message with exactly this content; returns every copy. */
export async function waitForMessage(person, text, timeout = LIVE_MS) {
  await person.page
    .waitForFunction((t) => window.parlorChat.messages().some((m) => m.content === t), text, { timeout })
    .catch(async () => {
      assert.fail(`${person.label} never showed ${JSON.stringify(text)}; shows ${JSON.stringify(await messages(person.page))}`);
    });
  return (await messages(person.page)).filter((m) => m.content === text);
}

/** Inbound RTP streams of the page's room, each with whose it is. */
export function inbound(page) {
  return page.evaluate(async () => {
    const { pc } = window.parlor;
    if (!pc) return [];
    const byMid = new Map(window.parlor.receiving().map((r) => [r.mid, r]));
    const streams = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      streams.push({
        kind: s.kind,
        participant: byMid.get(s.mid)?.participant ?? null,
        packetsReceived: s.packetsReceived ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
      });
    });
    return streams;
  });
}

/** Waits until `person` decodes `other`'s video and receives their audio. */
export async function waitForMediaFrom(person, other) {
  const theirs = (streams, kind) => streams.filter((s) => s.kind === kind && s.participant === other.identity);
  const flowing = (streams) =>
    theirs(streams, "video").some((s) => s.framesDecoded > 0) && theirs(streams, "audio").some((s) => s.packetsReceived > 0);
  const streams = await poll(() => inbound(person.page), flowing, { timeout: MEDIA_TIMEOUT_MS });
  const detail = JSON.stringify(streams);
  assert.ok(theirs(streams, "video").some((s) => s.framesDecoded > 0), `${person.label} decodes no video from ${other.label}: ${detail}`);
  assert.ok(theirs(streams, "audio").some((s) => s.packetsReceived > 0), `${person.label} receives no audio from ${other.label}: ${detail}`);
}

/** Clicks the guild's voice channel and waits until the page is in its room. */
export async function joinVoiceChannel(person, channelName) {
  const { page } = person;
  await page.click(`#channel-list .channel[data-kind="voice"]:has-text("${channelName}")`);
  await page.waitForFunction(() => ["joined", "error"].includes(window.parlor.state), null, { timeout: 20_000 });
  const { state, identity, error } = await page.evaluate(() => ({
    state: window.parlor.state,
    identity: window.parlor.identity,
    error: document.querySelector("#error").textContent,
  }));
  assert.equal(state, "joined", `${person.label} could not join the voice channel: ${error}`);
  person.identity = identity;
}

/** Two people signed up, in one guild that `owner` made; resolves with the guild id. */
export async function shareGuild(owner, other, name) {
  await signUp(owner);
  await signUp(other);
  const guildId = await createGuild(owner, name);
  await joinGuild(other, await createInvite(owner), guildId);
  return guildId;
}

/** A width × height PNG of one colour (RGB, no compression tricks), as a Buffer. */
export function makePng(width, height, [r, g, b] = [200, 60, 40]) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x += 1) row.set([r, g, b], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
