// End-to-end test of voice moderation in the chat app, in real Chromium with fake media
// against a real `parlor serve`: the owner server-mutes a caller from their card (the
// caller's microphone stops at the SFU and their button says why), moves them to another
// voice channel (their page follows), and disconnects them; the user panel's mute and
// deafen buttons drive the call.
//
//   PARLOR_BIN=../../target/debug/parlor node --test moderation.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { sleep } from "./server.mjs";
import { LIVE_MS, inbound, joinVoiceChannel, shareGuild, useServer, waitForMediaFrom, withPeople } from "./people.mjs";

useServer();

const DESKTOP = { width: 1440, height: 900 };
const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");

async function shot(person, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await person.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Audio packets `person` has received from `other` so far. */
async function audioFrom(person, other) {
  const streams = await inbound(person.page);
  return streams.filter((s) => s.kind === "audio" && s.participant === other.identity).reduce((n, s) => n + s.packetsReceived, 0);
}

/** Opens `other`'s card from the voice channel list on `person`'s page. */
async function openVoiceCard(person, other) {
  await person.page.click(`#channel-list .voice-member[data-user-id="${other.userId}"] .voice-member-name`);
  await person.page.waitForSelector("#profile-card:not([hidden]) .profile-voice");
}

test("a moderator server-mutes, moves and disconnects a caller, and the panel mutes and deafens", { timeout: 180_000 }, async () => {
  await withPeople([["Mod", "Mod 관리자", DESKTOP], ["Kai", "Kai", DESKTOP]], async ([mod, kai]) => {
    const guildId = await shareGuild(mod, kai, "Moderated");
    const stage = await mod.page.evaluate((g) => window.parlorChat.api("POST", `/guilds/${g}/channels`, { name: "Stage", kind: "voice" }).then((c) => c.id), guildId);
    await kai.page.waitForSelector(`#channel-list .channel[data-channel-id="${stage}"]`, { timeout: LIVE_MS });
    await Promise.all([joinVoiceChannel(mod, "General"), joinVoiceChannel(kai, "General")]);
    await waitForMediaFrom(mod, kai);

    // The member's card offers moderation to the owner, not to the member.
    await kai.page.click(`#channel-list .voice-member[data-user-id="${mod.userId}"] .voice-member-name`);
    await kai.page.waitForSelector("#profile-card:not([hidden])");
    assert.equal(await kai.page.locator("#profile-card .profile-voice").count(), 0, "a plain member was offered moderation");
    await kai.page.keyboard.press("Escape");

    // Server-mute: Kai's button says so and cannot unmute; Mod stops receiving Kai's audio.
    await openVoiceCard(mod, kai);
    await shot(mod, "desktop-voice-moderation-card");
    await mod.page.click('#profile-card [data-act="server-mute"]');
    await kai.page.waitForFunction(() => document.querySelector("#mic-btn").textContent === "Server muted", null, { timeout: LIVE_MS });
    assert.equal(await kai.page.locator("#mic-btn").isDisabled(), true, "a server-muted caller could press unmute");
    assert.equal(await kai.page.locator("#panel-mic-btn").isDisabled(), true);
    await mod.page.waitForSelector(`.voice-member[data-user-id="${kai.userId}"] .icon-muted.server`, { timeout: LIVE_MS });
    await sleep(1000);
    const before = await audioFrom(mod, kai);
    await sleep(2000);
    const during = (await audioFrom(mod, kai)) - before;
    assert.ok(during <= 5, `Mod still received ${during} audio packets from a server-muted Kai in 2 s`);
    await shot(kai, "desktop-voice-server-muted");

    // Lifted: Kai is heard again.
    await openVoiceCard(mod, kai);
    await mod.page.click('#profile-card [data-act="server-mute"]');
    await kai.page.waitForFunction(() => document.querySelector("#mic-btn").textContent === "Mute", null, { timeout: LIVE_MS });
    const lifted = await audioFrom(mod, kai);
    await sleep(2000);
    assert.ok((await audioFrom(mod, kai)) - lifted > 20, "Kai was not heard after the mute was lifted");

    // Move to Stage: Kai's page follows into the other room.
    await openVoiceCard(mod, kai);
    await mod.page.selectOption("#profile-card .move-target", stage);
    await mod.page.click('#profile-card [data-act="voice-move"]');
    await kai.page.waitForFunction((id) => window.parlorChat.voiceChannelId === id && window.parlor.state === "joined", stage, { timeout: 20_000 });
    await mod.page.waitForSelector(`.voice-members[data-channel-id="${stage}"] .voice-member[data-user-id="${kai.userId}"]`, { timeout: LIVE_MS });

    // Disconnect: Kai's call ends with a message, and nobody sees Kai in voice.
    await openVoiceCard(mod, kai);
    await mod.page.click('#profile-card [data-act="voice-disconnect"]');
    await kai.page.waitForFunction(() => window.parlor.state !== "joined" && !window.parlorChat.voiceChannelId, null, { timeout: LIVE_MS });
    await kai.page.waitForFunction(() => /moderator/i.test(document.body.innerText), null, { timeout: LIVE_MS });
    await mod.page.waitForFunction((id) => !document.querySelector(`.voice-member[data-user-id="${id}"]`), kai.userId, { timeout: LIVE_MS });

    // The user panel: mute and deafen before joining apply to the call; in the call they
    // drive its microphone and hearing.
    await kai.page.click("#panel-mic-btn");
    assert.equal(await kai.page.getAttribute("#panel-mic-btn", "aria-pressed"), "true");
    await joinVoiceChannel(kai, "General");
    await kai.page.waitForFunction(() => document.querySelector("#mic-btn").textContent === "Unmute", null, { timeout: LIVE_MS });
    await mod.page.waitForSelector(`.voice-member[data-user-id="${kai.userId}"] .icon-muted`, { timeout: LIVE_MS });
    await kai.page.click("#panel-deafen-btn");
    await kai.page.waitForFunction(() => window.parlor.deafened === true, null, { timeout: LIVE_MS });
    assert.equal(await kai.page.getAttribute("#panel-deafen-btn", "aria-pressed"), "true");
    await shot(kai, "desktop-user-panel-deafened");
    await kai.page.click("#panel-mic-btn");
    await kai.page.waitForFunction(() => window.parlor.deafened === false && document.querySelector("#mic-btn").textContent === "Mute", null, { timeout: LIVE_MS });
  });
});

test("channel permissions in the server settings hide a channel from everyone but one member", { timeout: 120_000 }, async () => {
  await withPeople([["Ona", "Ona", DESKTOP], ["Pim", "Pim 핌", DESKTOP]], async ([ona, pim]) => {
    const guildId = await shareGuild(ona, pim, "Private rooms");
    const staff = await ona.page.evaluate((g) => window.parlorChat.api("POST", `/guilds/${g}/channels`, { name: "staff", kind: "text" }).then((c) => c.id), guildId);
    const pimSees = (yes) =>
      pim.page.waitForFunction(([id, want]) => Boolean(document.querySelector(`#channel-list .channel[data-channel-id="${id}"]`)) === want, [staff, yes], { timeout: LIVE_MS });
    await pimSees(true);

    await ona.page.click("#server-settings-btn");
    await ona.page.click('#server-tabs [data-tab="permissions"]');
    await ona.page.waitForSelector(`#perm-channel option[value="${staff}"]`, { state: "attached" });
    await ona.page.selectOption("#perm-channel", staff);
    await ona.page.waitForSelector("#overwrites-list li.hint", { state: "attached" });
    // @everyone may not view it: Pim loses it.
    await ona.page.selectOption("#overwrite-target", `role:${guildId}`);
    await ona.page.selectOption('#overwrite-perms select[data-bit="0"]', "deny");
    await ona.page.click('#overwrite-form button[type="submit"]');
    await ona.page.waitForFunction(() => /Saved for @everyone/.test(document.querySelector("#server-result").textContent));
    await pimSees(false);
    // Pim by name may: Pim has it back.
    await ona.page.selectOption("#overwrite-target", `member:${pim.userId}`);
    await ona.page.selectOption('#overwrite-perms select[data-bit="0"]', "allow");
    await ona.page.click('#overwrite-form button[type="submit"]');
    await ona.page.waitForFunction(() => document.querySelectorAll("#overwrites-list .overwrite-row").length === 2);
    await pimSees(true);
    const rows = await ona.page.$$eval("#overwrites-list .overwrite-row", (els) => els.map((e) => e.textContent));
    assert.ok(rows.some((r) => r.includes("@everyone") && r.includes("Denied: View channels")), JSON.stringify(rows));
    assert.ok(rows.some((r) => r.includes(pim.displayName) && r.includes("Allowed: View channels")), JSON.stringify(rows));
    await shot(ona, "desktop-channel-permissions");

    // Removing the member's overwrite hides it again.
    await ona.page.click(`#overwrites-list .overwrite-edit[data-target="member:${pim.userId}"]`);
    await ona.page.click("#overwrite-remove");
    await ona.page.waitForFunction(() => document.querySelectorAll("#overwrites-list .overwrite-row").length === 1);
    await pimSees(false);
  });
});
