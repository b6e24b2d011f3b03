// End-to-end tests of the room page: real Chromium pages with fake camera and microphone,
// against a real `parlor serve`.
//
//   PARLOR_BIN=../../target/debug/parlor node --test
//
// PARLOR_URL=http://127.0.0.1:PORT runs them against a server that is already running
// instead; PARLOR_LOG=1 copies the server's output to stderr; PARLOR_WEB_FROM_DISK=1 serves
// web/ from disk in front of the server (server.mjs).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, poll, recordCspViolations, startServer } from "./server.mjs";

/** How long media may take to start flowing everywhere. */
const MEDIA_TIMEOUT_MS = 30_000;
/** How fast a departed participant's tiles must disappear. */
const LEAVE_BUDGET_MS = 2_000;

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

function uniqueRoom() {
  return `t-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A browser context with the room page open, named for the display name it joins with. */
async function openParticipant(name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const cspViolations = [];
  await recordCspViolations(context, cspViolations);
  const page = await context.newPage();
  const participant = { name, context, page, identity: null, pageErrors: [], cspViolations, console: [] };
  const started = Date.now();
  page.on("pageerror", (error) => participant.pageErrors.push(error.message));
  page.on("console", (message) => {
    participant.console.push(`${Date.now() - started}ms ${message.type()}: ${message.text()}`);
    if (participant.console.length > 200) participant.console.shift();
  });
  await page.goto(`${server.url}/`);
  return participant;
}

/**
 * Opens one page per name, runs `body` with them and closes them. If `body` throws, each
 * page's console output is printed first.
 */
async function withParticipants(names, body) {
  const people = await Promise.all(names.map(openParticipant));
  try {
    await body(people);
    for (const p of people) assert.deepEqual(p.cspViolations, [], `${p.name}'s page broke its Content-Security-Policy`);
  } catch (error) {
    for (const p of people) {
      if (p.console.length) console.log(`--- console of ${p.name} (${p.identity}) ---\n${p.console.join("\n")}`);
    }
    throw error;
  } finally {
    await Promise.all(people.map((p) => p.context.close().catch(() => {})));
  }
}

/** Fills the form and joins; resolves with the Date.now() of the click once joined. */
async function join(participant, room) {
  const { page } = participant;
  await page.fill("#room", room);
  await page.fill("#name", participant.name);
  const clickedAt = Date.now();
  await page.click("#join-btn");
  await page.waitForFunction(() => ["joined", "error"].includes(window.parlor.state), null, {
    timeout: 20_000,
  });
  const { state, identity } = await page.evaluate(() => ({
    state: window.parlor.state,
    identity: window.parlor.identity,
  }));
  if (state !== "joined") {
    const error = await page.textContent("#error");
    throw new Error(`${participant.name} could not join ${room}: ${error}`);
  }
  participant.identity = identity;
  return clickedAt;
}

/**
 * Inbound RTP streams of a page's peer connection, each with the participant and source
 * the page believes it carries (from the server's mid -> track mapping).
 */
function inbound(page) {
  return page.evaluate(async () => {
    const { pc } = window.parlor;
    if (!pc) return [];
    const byMid = new Map(window.parlor.receiving().map((r) => [r.mid, r]));
    const report = await pc.getStats();
    const streams = [];
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      const receiving = byMid.get(s.mid);
      streams.push({
        kind: s.kind,
        mid: s.mid,
        participant: receiving?.participant ?? null,
        source: receiving?.source ?? null,
        packetsReceived: s.packetsReceived ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
      });
    });
    return streams;
  });
}

const decodingVideo = (streams) => streams.filter((s) => s.kind === "video" && s.framesDecoded > 0);
const flowingAudio = (streams) => streams.filter((s) => s.kind === "audio" && s.packetsReceived > 0);

function remoteTiles(page) {
  return page.evaluate(() => window.parlor.remoteTiles());
}

/** Waits until `participant` sees every one of `others`' camera tiles. */
async function waitForCameraTiles(participant, others) {
  const tiles = await poll(
    () => remoteTiles(participant.page),
    (t) => others.every((o) => t.some((x) => x.identity === o.identity && x.source === "camera")),
  );
  for (const other of others) {
    assert.ok(
      tiles.some((t) => t.identity === other.identity && t.source === "camera"),
      `${participant.name} shows no camera tile for ${other.name}; remote tiles: ${JSON.stringify(tiles)}`,
    );
  }
}

/** Waits until `participant` decodes video and receives audio from each of `others`. */
async function waitForMediaFrom(participant, others) {
  const enough = (streams) =>
    decodingVideo(streams).length >= others.length && flowingAudio(streams).length >= others.length;
  const streams = await poll(() => inbound(participant.page), enough);
  const detail = JSON.stringify(streams);
  assert.ok(
    decodingVideo(streams).length >= others.length,
    `${participant.name} decodes video from fewer than ${others.length} participants: ${detail}`,
  );
  assert.ok(
    flowingAudio(streams).length >= others.length,
    `${participant.name} receives audio from fewer than ${others.length} participants: ${detail}`,
  );
  // Where the page knows whose stream is whose, each participant must be among them.
  if (streams.every((s) => s.participant)) {
    for (const other of others) {
      assert.ok(
        decodingVideo(streams).some((s) => s.participant === other.identity),
        `${participant.name} decodes no video from ${other.name}: ${detail}`,
      );
      assert.ok(
        flowingAudio(streams).some((s) => s.participant === other.identity),
        `${participant.name} receives no audio from ${other.name}: ${detail}`,
      );
    }
  }
}

/** Puts everyone in a fresh room and waits until each sees the others' tiles. */
async function joinTogether(people) {
  const room = uniqueRoom();
  await Promise.all(people.map((p) => join(p, room)));
  for (const p of people) await waitForCameraTiles(p, people.filter((o) => o !== p));
}

/** Asserts that `leaver`'s tiles vanish from every other page within the budget. */
async function assertTilesGoneQuickly(leaver, others, startedAt, how) {
  const selector = `#tiles .tile[data-identity="${leaver.identity}"]`;
  await Promise.all(
    others.map((o) => o.page.waitForSelector(selector, { state: "detached", timeout: 10_000 })),
  );
  const elapsed = Date.now() - startedAt;
  console.log(`tiles-gone-ms (${how}): ${elapsed}`);
  assert.ok(
    elapsed <= LEAVE_BUDGET_MS,
    `${leaver.name}'s tiles took ${elapsed} ms to disappear after ${how} (budget ${LEAVE_BUDGET_MS} ms)`,
  );
  for (const o of others) {
    const tiles = await remoteTiles(o.page);
    assert.ok(
      !tiles.some((t) => t.identity === leaver.identity),
      `${o.name} still shows ${leaver.name}: ${JSON.stringify(tiles)}`,
    );
  }
}

// -------------------------------------------------------------------------------------------
// Tests
// -------------------------------------------------------------------------------------------

const NAMES = ["Ada", "Bob", "Cleo"];

test("the pages run under a Content-Security-Policy that refuses inline script", { timeout: 60_000 }, async () => {
  for (const path of ["/", "/chat"]) {
    const context = await browser.newContext();
    const violations = [];
    await recordCspViolations(context, violations);
    const page = await context.newPage();
    const response = await page.goto(`${server.url}${path}`);
    assert.match(response.headers()["content-security-policy"] ?? "", /frame-ancestors 'none'/, path);
    // The page's own code ran (module scripts from 'self' are allowed)...
    await page.waitForFunction(() => document.querySelector("script[type=module]") && document.readyState === "complete");
    assert.deepEqual(violations, [], `${path} loads without a violation`);
    // ...while an injected inline script is refused and reported.
    const ran = await page.evaluate(() => {
      window.injected = false;
      const script = document.createElement("script");
      script.textContent = "window.injected = true";
      document.body.append(script);
      return window.injected;
    });
    assert.equal(ran, false, `${path}: inline script ran`);
    await poll(async () => violations.length, (n) => n > 0, { timeout: 5_000 });
    assert.match(violations[0] ?? "", /script-src/, `${path}: the violation was reported`);
    await context.close();
  }
});

test("three participants see and hear each other", { timeout: 120_000 }, async () => {
  await withParticipants(NAMES, async (people) => {
    const [ada, bob, cleo] = people;
    const room = uniqueRoom();
    await Promise.all([join(ada, room), join(bob, room)]);

    // The third joiner: time from the click to its first decoded remote frame.
    const clickedAt = await join(cleo, room);
    const firstFrame = await poll(
      () => inbound(cleo.page),
      (streams) => decodingVideo(streams).length > 0,
      { interval: 50 },
    );
    assert.ok(decodingVideo(firstFrame).length > 0, `Cleo decoded no remote video: ${JSON.stringify(firstFrame)}`);
    console.log(`first-frame-ms: ${Date.now() - clickedAt}`);

    for (const p of people) {
      const others = people.filter((o) => o !== p);
      await waitForCameraTiles(p, others);
      await waitForMediaFrom(p, others);
      const tiles = (await remoteTiles(p.page)).filter((t) => t.source === "camera");
      assert.equal(tiles.length, 2, `${p.name} should show exactly two remote camera tiles: ${JSON.stringify(tiles)}`);
      assert.equal(
        await p.page.locator('#tiles .tile[data-local="true"][data-source="camera"]').count(),
        1,
        `${p.name} should show its own camera tile`,
      );
      assert.deepEqual(p.pageErrors, [], `${p.name} had uncaught page errors`);
    }
  });
});

test("a screen share reaches the others as its own tile", { timeout: 120_000 }, async () => {
  await withParticipants(NAMES, async (people) => {
    const [ada, bob, cleo] = people;
    await joinTogether(people);
    await ada.page.click("#screen-btn");
    await ada.page.waitForSelector('#tiles .tile.screen[data-local="true"][data-source="screen"]', {
      timeout: 10_000,
    });

    for (const viewer of [bob, cleo]) {
      await viewer.page.waitForSelector(
        `#tiles .tile.screen[data-source="screen"][data-identity="${ada.identity}"]`,
        { timeout: MEDIA_TIMEOUT_MS },
      );
      const isScreen = (s) => s.participant === ada.identity && s.source === "screen";
      const streams = await poll(
        () => inbound(viewer.page),
        (s) => decodingVideo(s).length >= 3 && decodingVideo(s).some(isScreen),
      );
      const detail = JSON.stringify(streams);
      assert.ok(
        decodingVideo(streams).length >= 3,
        `${viewer.name} should decode three videos (two cameras and Ada's screen): ${detail}`,
      );
      assert.ok(decodingVideo(streams).some(isScreen), `${viewer.name} decodes no frames of Ada's screen: ${detail}`);
    }

    // Stopping the share removes the tile everywhere.
    await ada.page.click("#screen-btn");
    for (const viewer of [bob, cleo]) {
      await viewer.page.waitForSelector(`#tiles .tile[data-source="screen"]`, {
        state: "detached",
        timeout: 10_000,
      });
    }
    assert.equal(await ada.page.locator('#tiles .tile[data-source="screen"]').count(), 0);
  });
});

test("leaving removes the participant's tiles from the others at once", { timeout: 120_000 }, async () => {
  await withParticipants(NAMES, async (people) => {
    const [ada, bob, cleo] = people;
    await joinTogether(people);
    const clickedAt = Date.now();
    await ada.page.click("#leave-btn");
    await assertTilesGoneQuickly(ada, [bob, cleo], clickedAt, "clicking leave");
    assert.equal(await ada.page.evaluate(() => window.parlor.state), "left");
    assert.equal(await ada.page.locator("#tiles .tile").count(), 0, "the leaver's own page should be empty");
  });
});

test("closing the page removes the participant's tiles from the others at once", { timeout: 120_000 }, async () => {
  await withParticipants(NAMES, async (people) => {
    const [ada, bob, cleo] = people;
    await joinTogether(people);
    const closedAt = Date.now();
    await ada.page.close();
    await assertTilesGoneQuickly(ada, [bob, cleo], closedAt, "closing the page");
  });
});

/** The width of the frames a page decodes from `owner`'s camera, and how many so far. */
function cameraFrames(page, owner) {
  return page.evaluate(async (owner) => {
    const { pc } = window.parlor;
    const byMid = new Map(window.parlor.receiving().map((r) => [r.mid, r]));
    let found = null;
    (await pc.getStats()).forEach((s) => {
      const r = byMid.get(s.mid);
      if (s.type === "inbound-rtp" && s.kind === "video" && r?.participant === owner && r.source === "camera") {
        found = { width: s.frameWidth ?? 0, decoded: s.framesDecoded ?? 0 };
      }
    });
    return found ?? { width: 0, decoded: 0 };
  }, owner);
}

/** The simulcast layers a page is encoding now: rid -> frame width, for active layers. */
function sendingLayers(page) {
  return page.evaluate(async () => {
    const layers = {};
    (await window.parlor.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video" && s.rid && s.framesEncoded > 0) {
        layers[s.rid] = s.frameWidth ?? 0;
      }
    });
    return layers;
  });
}

test("a subscriber's quality choice switches simulcast layers", { timeout: 120_000 }, async () => {
  await withParticipants(["Ada", "Bob"], async ([ada, bob]) => {
    await joinTogether([ada, bob]);
    await waitForMediaFrom(bob, [ada]);
    // Chrome adds its upper layers as its bandwidth estimate grows: wait until it sends
    // more than the lowest one, or there is nothing to switch between.
    const layers = await poll(() => sendingLayers(ada.page), (l) => Object.keys(l).length >= 2);
    assert.ok(Object.keys(layers).length >= 2, `Ada sends one layer only: ${JSON.stringify(layers)}`);
    const setQuality = (quality) =>
      bob.page.evaluate(async ([owner, quality]) => {
        const track = Object.values(window.parlor.tracks).find(
          (t) => t.participant === owner && t.source === "camera",
        );
        await window.parlor.signal.request("quality", { track_id: track.track_id, quality });
      }, [ada.identity, quality]);

    await setQuality("low");
    const low = await poll(() => cameraFrames(bob.page, ada.identity), (f) => f.width > 0 && f.width <= 400);
    assert.ok(low.width > 0 && low.width <= 400, `low layer not received: ${JSON.stringify(low)}`);
    console.log(`simulcast low width: ${low.width}`);

    await setQuality("high");
    const high = await poll(() => cameraFrames(bob.page, ada.identity), (f) => f.width > low.width);
    assert.ok(high.width > low.width, `no switch up from ${low.width}: ${JSON.stringify(high)}`);
    assert.ok(high.decoded > low.decoded, "decoding stopped across the switch");
    console.log(`simulcast high width: ${high.width}`);
  });
});
