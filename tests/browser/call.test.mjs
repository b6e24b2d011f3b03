// End-to-end tests of the call view in the chat app, in real Chromium with fake media
// against a real `parlor serve`: tiles that fill the space, a shared screen shown large,
// focus, "stop watching" (the server stops sending that video), per-person volume,
// deafen (seen by others), the device choice, and the call on a phone-sized screen.
// Screenshots go to target/e2e-screenshots/.
//
//   PARLOR_BIN=../../target/debug/parlor node --test call.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { sleep } from "./server.mjs";
import { LIVE_MS, MEDIA_TIMEOUT_MS, joinVoiceChannel, send, shareGuild, signUp, useServer, waitForMediaFrom, waitForMessage, withPeople } from "./people.mjs";

useServer();

const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };
const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");

async function shot(person, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await person.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

const tiles = (person) => person.page.evaluate(() => window.parlor.tiles());

/** Packets received so far on the m-line that carries `trackId`. */
function packetsOf(person, trackId) {
  return person.page.evaluate(async (id) => {
    const mids = window.parlor.receiving().filter((r) => r.track_id === id).map((r) => r.mid);
    let n = 0;
    (await window.parlor.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && mids.includes(s.mid)) n += s.packetsReceived ?? 0;
    });
    return n;
  }, trackId);
}

/** Clicks a tile's action (shown on hover). */
async function tileAction(person, key, action) {
  const tile = person.page.locator(`#tiles .tile[data-key="${key}"]`);
  await tile.hover();
  await tile.locator(`[data-tile-action="${action}"]`).click();
}

test("the call view: a filling grid, a screen on the stage, focus, stop watching, volume, deafen and devices", { timeout: 180_000 }, async () => {
  await withPeople([["Dae", "대 Dae", DESKTOP], ["Eun", "은 Eun", DESKTOP]], async ([dae, eun]) => {
    await shareGuild(dae, eun, "Calls");
    await Promise.all([joinVoiceChannel(dae, "General"), joinVoiceChannel(eun, "General")]);
    await waitForMediaFrom(dae, eun);

    // Two cameras share the space, each far larger than a fixed small tile.
    const grid = await tiles(dae);
    assert.equal(grid.length, 2);
    for (const t of grid) assert.ok(t.width >= 560, `tiles fill the space: ${JSON.stringify(grid)}`);
    await shot(dae, "desktop-call-grid");

    // Eun shares her screen: on Dae's page it takes the stage, the cameras a strip.
    await eun.page.click("#screen-btn");
    await dae.page.waitForFunction(() => window.parlor.tiles().some((t) => t.source === "screen" && t.stage), null, { timeout: MEDIA_TIMEOUT_MS });
    await sleep(500);
    const staged = await tiles(dae);
    const screen = staged.find((t) => t.source === "screen");
    for (const t of staged.filter((t) => t.source !== "screen")) {
      assert.ok(screen.width > 3 * t.width && screen.height > 3 * t.height, `the screen is shown large: ${JSON.stringify(staged)}`);
    }
    await shot(dae, "desktop-call-screen-share");

    // Focus on Eun's camera instead.
    const eunCam = staged.find((t) => t.source === "camera" && t.identity === eun.identity);
    await tileAction(dae, eunCam.key, "focus");
    await dae.page.waitForFunction((k) => window.parlor.tiles().find((t) => t.key === k)?.stage, eunCam.key, { timeout: LIVE_MS });
    assert.equal((await tiles(dae)).find((t) => t.source === "screen").stage, false);

    // Stop watching Eun's camera: its packets stop arriving; watching again brings them back.
    await tileAction(dae, eunCam.key, "stop-watching");
    await dae.page.waitForFunction((k) => window.parlor.tiles().find((t) => t.key === k)?.stopped, eunCam.key, { timeout: LIVE_MS });
    await sleep(1000);
    const before = await packetsOf(dae, eunCam.trackId);
    await sleep(2000);
    const during = (await packetsOf(dae, eunCam.trackId)) - before;
    assert.ok(during <= 5, `packets still arrive for a video not watched: ${during} in 2 s`);
    await dae.page.locator(`#tiles .tile[data-key="${eunCam.key}"] [data-tile-action="watch"]`).click();
    const again = await packetsOf(dae, eunCam.trackId);
    await dae.page.waitForFunction(
      async ({ id, was }) => {
        const mids = window.parlor.receiving().filter((r) => r.track_id === id).map((r) => r.mid);
        let n = 0;
        (await window.parlor.pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && mids.includes(s.mid)) n += s.packetsReceived ?? 0;
        });
        return n > was + 30;
      },
      { id: eunCam.trackId, was: again },
      { timeout: MEDIA_TIMEOUT_MS, polling: 500 },
    );

    // Eun's volume, for Dae only.
    const volume = dae.page.locator(`#tiles .tile[data-key="${eunCam.key}"] .tile-volume`);
    await dae.page.locator(`#tiles .tile[data-key="${eunCam.key}"]`).hover();
    await volume.fill("30");
    const eunAudio = await dae.page.evaluate((who) => {
      const ids = Object.values(window.parlor.tracks).filter((t) => t.participant === who && t.kind === "audio").map((t) => t.track_id);
      return window.parlor.audio().filter((a) => ids.includes(a.trackId));
    }, eun.identity);
    assert.ok(eunAudio.length > 0 && eunAudio.every((a) => Math.abs(a.volume - 0.3) < 0.01), JSON.stringify(eunAudio));

    // Dae deafens: he hears nothing, his microphone mutes, and Eun sees him deafened.
    await dae.page.click("#deafen-btn");
    const deaf = await dae.page.evaluate(() => ({ deafened: window.parlor.deafened, audio: window.parlor.audio(), mic: window.parlor.tracks }));
    assert.equal(deaf.deafened, true);
    assert.ok(deaf.audio.every((a) => a.muted), JSON.stringify(deaf.audio));
    assert.ok(Object.values(deaf.mic).some((t) => t.local && t.source === "microphone" && t.muted), "the microphone muted");
    await eun.page.waitForSelector(`.voice-member[data-user-id="${dae.userId}"] .icon-muted[aria-label="Deafened"]`, { timeout: LIVE_MS });
    await dae.page.click("#deafen-btn");
    assert.equal(await dae.page.evaluate(() => window.parlor.deafened), false);

    // The devices panel lists the fake microphone and camera.
    await dae.page.click("#devices-btn");
    // The panel opens once the devices are listed.
    await dae.page.waitForSelector("#devices-panel:not([hidden])", { timeout: LIVE_MS });
    const listed = () =>
      dae.page.evaluate(() => ({
        mic: document.querySelectorAll("#mic-select option").length,
        cam: document.querySelectorAll("#cam-select option").length,
      }));
    const options = await listed();
    assert.ok(options.mic > 0 && options.cam > 0, JSON.stringify(options));
    await shot(dae, "desktop-call-devices");
  });
});

test("on a phone: a channel, a message and the call, with nothing scrolling sideways", { timeout: 120_000 }, async () => {
  await withPeople([["Pia", "피아 Pia", PHONE]], async ([pia]) => {
    const { page } = pia;
    await signUp(pia);
    await page.click("#empty-add-btn");
    await page.fill("#new-guild-name", "Phone call");
    await page.click("#create-guild-btn");
    await page.waitForSelector('#channel-list .channel[data-kind="text"][aria-current="true"]', { timeout: LIVE_MS });
    await send(pia, "폰에서 보내요 📱");
    await waitForMessage(pia, "폰에서 보내요 📱");
    await shot(pia, "phone-chat");
    const wide = () => page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok((await wide()) <= 390, `the chat scrolls sideways: ${await wide()}px`);

    // The call: from the drawer, then full screen with every control on screen.
    await page.click("#nav-toggle");
    await page.waitForFunction(() => document.querySelector(".sidebar").getBoundingClientRect().left >= 0);
    await joinVoiceChannel(pia, "General");
    await page.waitForFunction(() => window.parlorChat.view === "voice", null, { timeout: LIVE_MS });
    await page.waitForFunction(() => document.querySelector(".sidebar").getBoundingClientRect().right <= 0, null, { timeout: LIVE_MS });
    assert.ok((await wide()) <= 390, `the call scrolls sideways: ${await wide()}px`);
    const controls = await page.evaluate(() =>
      ["#mic-btn", "#deafen-btn", "#cam-btn", "#leave-btn"].map((s) => {
        const r = document.querySelector(s).getBoundingClientRect();
        return { s, left: r.left, right: r.right, bottom: r.bottom, width: r.width };
      }),
    );
    for (const c of controls) assert.ok(c.left >= 0 && c.right <= 390 && c.bottom <= 844 && c.width > 40, `control on screen: ${JSON.stringify(c)}`);
    const [me] = await page.evaluate(() => window.parlor.tiles());
    assert.ok(me.width >= 340, `the tile takes the width: ${JSON.stringify(me)}`);
    await shot(pia, "phone-call");
  });
});

test("on a phone every main screen fits: sign-in, drawer, members, thread, friends, status and settings", { timeout: 120_000 }, async () => {
  await withPeople([["Ria", "리아 Ria", PHONE], ["Sid", "Sid", PHONE]], async ([ria, sid]) => {
    const { page } = ria;
    const fits = async (what) => {
      const w = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(w <= 390, `${what} scrolls sideways: ${w}px`);
    };
    await shot(ria, "phone-sign-in");
    await fits("sign-in");
    // The server rail is in the drawer here: the server and the invite go through the API.
    await signUp(ria);
    await signUp(sid);
    const guildId = await page.evaluate(() => window.parlorChat.api("POST", "/guilds", { name: "Phone tour" }).then((g) => g.id));
    await page.waitForFunction((g) => window.parlorChat.selectedGuildId === g, guildId, { timeout: LIVE_MS });
    const code = await page.evaluate((g) => window.parlorChat.api("POST", `/guilds/${g}/invites`, {}).then((i) => i.code), guildId);
    await sid.page.evaluate((c) => window.parlorChat.api("POST", `/invites/${c}`, {}), code);
    await page.waitForSelector('#channel-list .channel[data-kind="text"][aria-current="true"]', { timeout: LIVE_MS });
    await send(ria, "폰에서도 잘 보여요?");
    await waitForMessage(ria, "폰에서도 잘 보여요?");
    // Members: an overlay from the header.
    await page.click("#members-btn");
    await page.waitForFunction(() => document.querySelector("#member-panel").getBoundingClientRect().width > 200, null, { timeout: LIVE_MS });
    await page.waitForFunction(() => window.parlorChat.members().length === 2, null, { timeout: LIVE_MS });
    await shot(ria, "phone-members");
    await fits("the member list");
    await page.click("#members-btn");
    // The drawer with servers and channels.
    await page.click("#nav-toggle");
    await page.waitForFunction(() => document.querySelector(".sidebar").getBoundingClientRect().left >= 0);
    await shot(ria, "phone-drawer");
    await page.click('#channel-list .channel[data-kind="text"]');
    await page.waitForFunction(() => document.querySelector(".sidebar").getBoundingClientRect().right <= 0);
    // A thread, over the channel.
    const message = page.locator(".message").last();
    await message.click();
    await message.locator('[data-action="thread"]').click();
    await page.waitForSelector("#thread-panel:not([hidden])", { timeout: LIVE_MS });
    await shot(ria, "phone-thread");
    await fits("a thread");
    await page.click("#thread-close");
    // Friends, the status menu and the settings.
    await page.click("#nav-toggle");
    await page.click("#dm-home-btn");
    await page.click("#channel-list .friends-entry");
    await page.waitForSelector("#friends-view:not([hidden])", { timeout: LIVE_MS });
    await shot(ria, "phone-friends");
    await fits("friends");
    await page.click("#nav-toggle");
    await page.click("#status-btn");
    await page.waitForSelector("#status-menu:not([hidden])");
    await shot(ria, "phone-status-menu");
    await page.keyboard.press("Escape");
    await page.click("#settings-btn");
    await page.waitForSelector("#settings-dialog[open]");
    await shot(ria, "phone-settings");
    await fits("settings");
  });
});
