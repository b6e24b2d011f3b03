// End-to-end tests of presence and voice state in the chat app, in real Chromium pages at
// 1440×900 against a real `parlor serve`: statuses and custom statuses change live on other
// pages, a closed page goes offline, a member outside a call sees who is in it and their
// mute state, a capped channel refuses a third caller in words, and the call keeps running
// while its member reads a text channel. Screenshots go to target/e2e-screenshots/.
//
//   PARLOR_BIN=../../target/debug/parlor node --test presence.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { LIVE_MS, MEDIA_TIMEOUT_MS, createGuild, createInvite, joinGuild, joinVoiceChannel, signUp, useServer, waitForMediaFrom, withPeople } from "./people.mjs";

useServer();

const DESKTOP = { width: 1440, height: 900 };
const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");

/** Saves a screenshot of the page as target/e2e-screenshots/<name>.png. */
async function shot(person, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await person.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Waits until `person`'s member list shows `other` as `status` (and `customStatus`, if given). */
async function waitForMember(person, other, status, customStatus) {
  await person.page
    .waitForFunction(
      ({ id, status, customStatus }) =>
        window.parlorChat.members().some((m) => m.id === id && m.status === status && (customStatus === undefined || m.customStatus === customStatus)),
      { id: other.userId, status, customStatus },
      { timeout: LIVE_MS },
    )
    .catch(async () => {
      const shown = await person.page.evaluate(() => window.parlorChat.members());
      assert.fail(`${person.label} never showed ${other.label} as ${status} ${customStatus ?? ""}: ${JSON.stringify(shown)}`);
    });
}

/** Everyone signs up; the first makes a guild the others join; resolves with its id. */
async function oneGuild(people, name) {
  for (const p of people) await signUp(p);
  const [owner, ...rest] = people;
  const guildId = await createGuild(owner, name);
  for (const p of rest) await joinGuild(p, await createInvite(owner), guildId);
  return guildId;
}

test("presence: statuses, custom status and idle show live on other pages, and a closed page goes offline", { timeout: 120_000 }, async () => {
  await withPeople([["Ara", "아라 Ara", DESKTOP], ["Ben", "Ben", DESKTOP], ["Cho", "조 Cho", DESKTOP]], async (people) => {
    const [ara, ben, cho] = people;
    await oneGuild(people, "Presence");
    for (const other of [ben, cho]) await waitForMember(ara, other, "online");
    // The member list is its own column right of the messages, with sections.
    const column = await ara.page.evaluate(() => {
      const r = (s) => document.querySelector(s).getBoundingClientRect();
      return { members: r("#member-panel").left, main: r(".main-pane").right, sections: [...document.querySelectorAll("#member-list .member-section")].map((e) => e.textContent) };
    });
    assert.ok(column.members >= column.main - 1, `the member list is right of the messages: ${JSON.stringify(column)}`);
    assert.deepEqual(column.sections, ["Online — 3"]);

    // Ben goes idle without input, and back to online on input.
    await ben.page.evaluate(() => window.parlorChat.setIdleAfter(300));
    await waitForMember(ara, ben, "idle");
    await ben.page.evaluate(() => window.parlorChat.setIdleAfter(10 * 60_000));
    await ben.page.mouse.move(200, 200);
    await ben.page.mouse.move(300, 300);
    await waitForMember(ara, ben, "online");

    // Ben chooses do-not-disturb and a custom status from the menu under his avatar.
    await ben.page.click("#status-btn");
    await ben.page.click('#status-menu [data-status="dnd"]');
    await waitForMember(ara, ben, "dnd");
    await ben.page.click("#status-btn");
    await ben.page.fill("#custom-status-input", "회의 중 🎧");
    await ben.page.press("#custom-status-input", "Enter");
    await waitForMember(ara, ben, "dnd", "회의 중 🎧");
    assert.deepEqual(await ben.page.evaluate(() => window.parlorChat.myStatus), { status: "dnd", customStatus: "회의 중 🎧" });
    await ben.page.click("#status-btn");
    await shot(ben, "desktop-status-menu");
    await ben.page.keyboard.press("Escape");
    assert.equal(await ben.page.isVisible("#status-menu"), false, "Escape closes the menu");
    await shot(ara, "desktop-member-list");

    // Invisible: Ara sees him offline, without the custom status.
    await ben.page.click("#status-btn");
    await ben.page.click('#status-menu [data-status="invisible"]');
    await waitForMember(ara, ben, "offline", null);

    // Cho closes her page: offline at once (the page ends its session), listed under Offline.
    await cho.page.close();
    await waitForMember(ara, cho, "offline");
    const sections = await ara.page.$$eval("#member-list .member-section", (els) => els.map((e) => e.textContent));
    assert.deepEqual(sections, ["Online — 1", "Offline — 2"]);

    // The choice outlives a reload.
    await ben.page.reload();
    await ben.page.waitForFunction(() => window.parlorChat?.wsState === "ready", null, { timeout: LIVE_MS });
    assert.deepEqual(await ben.page.evaluate(() => window.parlorChat.myStatus), { status: "invisible", customStatus: "회의 중 🎧" });
  });
});

test("voice: a member outside the call sees who is in it and their mute state; the call keeps running over a text channel", { timeout: 180_000 }, async () => {
  await withPeople([["Dae", "대 Dae", DESKTOP], ["Eun", "은 Eun", DESKTOP], ["Fay", "Fay", DESKTOP]], async (people) => {
    const [dae, eun, fay] = people;
    await oneGuild(people, "Voice");
    await Promise.all([joinVoiceChannel(dae, "General"), joinVoiceChannel(eun, "General")]);
    await waitForMediaFrom(dae, eun);
    await waitForMediaFrom(eun, dae);

    // Fay, not in the call, sees both in the voice channel, live.
    const occupants = () => fay.page.evaluate(() => {
      const general = window.parlorChat.guilds[0].channels.find((c) => c.kind === "voice");
      return window.parlorChat.voiceOccupants(general.id);
    });
    await fay.page
      .waitForFunction(
        () => {
          const shown = [...document.querySelectorAll("#channel-list .voice-member")];
          return shown.length === 2 && shown.every((el) => el.querySelector(".icon-video") && !el.querySelector(".icon-muted"));
        },
        null,
        { timeout: LIVE_MS },
      )
      .catch(async () => assert.fail(`Fay never saw both, unmuted with cameras on: ${JSON.stringify(await occupants())}`));
    const seen = await occupants();
    assert.deepEqual(seen.map((o) => o.name).sort(), [dae.displayName, eun.displayName].sort());
    assert.equal(await fay.page.evaluate(() => window.parlor.state), "idle", "Fay is not in the call");

    // Eun mutes: Fay sees it.
    await eun.page.click("#mic-btn");
    await fay.page
      .waitForFunction((id) => document.querySelector(`.voice-member[data-user-id="${id}"] .icon-muted`), eun.userId, { timeout: LIVE_MS })
      .catch(async () => assert.fail(`Fay never saw Eun muted: ${JSON.stringify(await occupants())}`));
    await shot(fay, "desktop-voice-occupants");

    // Dae reads #general: the call keeps running, docked in the voice panel.
    await dae.page.click('#channel-list .channel[data-kind="text"]');
    await dae.page.waitForFunction(() => window.parlorChat.view === "text", null, { timeout: LIVE_MS });
    assert.equal(await dae.page.evaluate(() => window.parlor.state), "joined");
    assert.equal(await dae.page.isVisible("#voice-panel"), true);
    const before = await dae.page.evaluate(async () => {
      let n = 0;
      (await window.parlor.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") n += s.packetsReceived ?? 0;
      });
      return n;
    });
    await dae.page.waitForFunction(
      async (was) => {
        let n = 0;
        (await window.parlor.pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") n += s.packetsReceived ?? 0;
        });
        return n > was + 20;
      },
      before,
      { timeout: MEDIA_TIMEOUT_MS },
    );
    await shot(dae, "desktop-text-with-call-docked");

    // Eun leaves: Fay's sidebar drops her.
    await eun.page.click("#voice-disconnect");
    await fay.page.waitForFunction(() => document.querySelectorAll("#channel-list .voice-member").length === 1, null, { timeout: LIVE_MS });
  });
});

test("a voice channel capped at 2 refuses a third caller with a message", { timeout: 180_000 }, async () => {
  await withPeople([["Gil", "Gil", DESKTOP], ["Han", "Han", DESKTOP], ["Ivy", "Ivy", DESKTOP]], async (people) => {
    const [gil, han, ivy] = people;
    const guildId = await oneGuild(people, "Capped");
    await gil.page.evaluate((g) => window.parlorChat.api("POST", `/guilds/${g}/channels`, { name: "Pair", kind: "voice", user_limit: 2 }), guildId);
    for (const p of people) await p.page.waitForSelector('#channel-list .channel[data-kind="voice"]:has-text("Pair")', { timeout: LIVE_MS });
    await joinVoiceChannel(gil, "Pair");
    await joinVoiceChannel(han, "Pair");
    await ivy.page.waitForFunction(
      () => [...document.querySelectorAll('#channel-list .channel[data-kind="voice"]')].some((c) => c.textContent.includes("Pair") && c.querySelector(".user-limit")?.textContent === "2/2"),
      null,
      { timeout: LIVE_MS },
    );
    await ivy.page.click('#channel-list .channel[data-kind="voice"]:has-text("Pair")');
    await ivy.page.waitForSelector("#error:not([hidden])", { timeout: LIVE_MS });
    const said = await ivy.page.textContent("#error");
    assert.match(said, /Pair is full \(2 people at most\)/, said);
    assert.notEqual(await ivy.page.evaluate(() => window.parlor.state), "joined");
    await shot(ivy, "desktop-voice-full");
  });
});

test("a member's card shows their presence and offers a message and friendship", { timeout: 90_000 }, async () => {
  await withPeople([["Cal", "Cal", DESKTOP], ["Dee", "디 Dee", DESKTOP]], async (people) => {
    const [cal, dee] = people;
    await oneGuild(people, "Cards");
    await dee.page.click("#status-btn");
    await dee.page.click('#status-menu [data-status="dnd"]');
    await dee.page.click("#status-btn");
    await dee.page.fill("#custom-status-input", "집중 중");
    await dee.page.press("#custom-status-input", "Enter");
    await waitForMember(cal, dee, "dnd", "집중 중");
    await cal.page.click(`#member-list .member[data-user-id="${dee.userId}"] .member-name`);
    await cal.page.waitForSelector("#profile-card:not([hidden])", { timeout: LIVE_MS });
    assert.equal(await cal.page.textContent("#profile-card .profile-name"), dee.displayName);
    assert.equal(await cal.page.textContent("#profile-card .profile-status"), "Do not disturb — 집중 중");
    await cal.page.screenshot({ path: path.join(SHOTS, "desktop-profile-card.png") });
    // Add friend: Dee gets the request.
    await cal.page.click('#profile-card [data-act="friend"]');
    await dee.page.waitForFunction(
      (id) => window.parlorChat.api("GET", "/users/@me/relationships").then((l) => l.some((r) => r.user.id === id && r.kind === "incoming")),
      cal.userId,
      { timeout: LIVE_MS, polling: 300 },
    );
    // Message: the DM opens.
    await cal.page.click(`#member-list .member[data-user-id="${dee.userId}"] .member-name`);
    await cal.page.click('#profile-card [data-act="message"]');
    await cal.page.waitForFunction(() => window.parlorChat.openDmId !== null, null, { timeout: LIVE_MS });
  });
});
