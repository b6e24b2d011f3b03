// Friends end to end in real Chromium against a real `parlor serve`: two people who share
// no server become friends from the friends view, see each other online, message each
// other, and a block stops the conversation and hides the blocked person's messages.
//
//   PARLOR_BIN=../../target/debug/parlor node --test friends.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { LIVE_MS, send, shareGuild, signUp, useServer, waitForMessage, withPeople } from "./people.mjs";

useServer();

const DESKTOP = { width: 1440, height: 900 };
const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");

const friends = (p) => p.page.evaluate(() => window.parlorChat.friends());

/** Opens the DM home's friends view on a tab. */
async function openFriends(person, tab) {
  await person.page.click("#dm-home-btn");
  await person.page.click("#channel-list .friends-entry");
  await person.page.waitForSelector("#friends-view:not([hidden])", { timeout: LIVE_MS });
  await person.page.click(`#friends-tabs [data-tab="${tab}"]`);
}

test("friends without a shared server: a request, accepting, presence, a DM, and a block", { timeout: 120_000 }, async () => {
  await withPeople([["Uma", "우마 Uma", DESKTOP], ["Vic", "Vic", DESKTOP]], async ([uma, vic]) => {
    await signUp(uma);
    await signUp(vic);
    await openFriends(uma, "pending");
    await openFriends(vic, "pending");

    // Uma asks by username; Vic sees it live, with a count on the Friends entry.
    await uma.page.fill("#friend-add-input", vic.username);
    await uma.page.press("#friend-add-input", "Enter");
    await uma.page.waitForSelector("#friend-add-result:not([hidden])", { timeout: LIVE_MS });
    assert.match(await uma.page.textContent("#friend-add-result"), /Request sent/);
    await vic.page.waitForFunction((id) => window.parlorChat.friends().some((f) => f.userId === id && f.kind === "incoming"), uma.userId, { timeout: LIVE_MS });
    assert.equal((await vic.page.textContent("#channel-list .friends-entry .mention-badge")).trim(), "1");
    fs.mkdirSync(SHOTS, { recursive: true });
    await vic.page.screenshot({ path: path.join(SHOTS, "desktop-friend-request.png") });
    // A username no one has is said in words.
    await uma.page.fill("#friend-add-input", "no_such_person_here");
    await uma.page.press("#friend-add-input", "Enter");
    await uma.page.waitForFunction(() => document.querySelector("#friend-add-result").dataset.code === "unknown_user", null, { timeout: LIVE_MS });

    // Vic accepts: both are friends, online, on the Online tab.
    await vic.page.click(`#friends-list .friend[data-user-id="${uma.userId}"] [data-act="accept"]`);
    await uma.page.click('#friends-tabs [data-tab="online"]');
    await uma.page.waitForFunction((id) => window.parlorChat.friends().some((f) => f.userId === id && f.kind === "friend" && f.status === "online"), vic.userId, { timeout: LIVE_MS });
    await uma.page.screenshot({ path: path.join(SHOTS, "desktop-friends.png") });

    // Uma messages Vic although they share no server.
    await uma.page.click(`#friends-list .friend[data-user-id="${vic.userId}"] [data-act="message"]`);
    await uma.page.waitForFunction(() => window.parlorChat.openDmId !== null, null, { timeout: LIVE_MS });
    await send(uma, "친구가 됐네요!");
    await waitForMessage(uma, "친구가 됐네요!");
    await vic.page.waitForFunction(() => window.parlorChat.dms.length === 1, null, { timeout: LIVE_MS });
    const dmId = await vic.page.evaluate(() => window.parlorChat.dms[0].id);
    await vic.page.click(`#channel-list .channel[data-channel-id="${dmId}"]`);
    await waitForMessage(vic, "친구가 됐네요!");

    // Vic blocks Uma: her message hides behind "show", she drops from Uma's list, and
    // Uma's next message is refused in words.
    await vic.page.click("#channel-list .friends-entry");
    await vic.page.click('#friends-tabs [data-tab="all"]');
    await vic.page.click(`#friends-list .friend[data-user-id="${uma.userId}"] [data-act="block"]`);
    await vic.page.click('#friends-tabs [data-tab="blocked"]');
    await vic.page.waitForFunction((id) => window.parlorChat.friends().some((f) => f.userId === id && f.kind === "blocked"), uma.userId, { timeout: LIVE_MS });
    await vic.page.click(`#channel-list .channel[data-channel-id="${dmId}"]`);
    await vic.page.waitForSelector(".message .blocked-message", { timeout: LIVE_MS });
    assert.equal(await vic.page.evaluate(() => window.parlorChat.messages()[0].content), null, "the text is not on the page");
    await vic.page.click('.message [data-action="reveal"]');
    await waitForMessage(vic, "친구가 됐네요!");

    await send(uma, "are you there?");
    await uma.page.waitForSelector("#chat-error:not([hidden])", { timeout: LIVE_MS });
    assert.equal(await uma.page.getAttribute("#chat-error", "data-code"), "not_reachable");
    await uma.page.click("#channel-list .friends-entry");
    await uma.page.click('#friends-tabs [data-tab="all"]');
    assert.deepEqual(await friends(uma), [], "Uma's friendship is gone; the block is not shown to her");
  });
});

test("a group conversation starts from the DM list with people chosen in a dialog", { timeout: 120_000 }, async () => {
  await withPeople([["Wes", "Wes", DESKTOP], ["Xia", "夏 Xia", DESKTOP], ["Yul", "율 Yul", DESKTOP]], async ([wes, xia, yul]) => {
    await shareGuild(wes, xia, "Group");
    await signUp(yul);
    // Yul is Wes's friend, sharing no server.
    await wes.page.evaluate((u) => window.parlorChat.api("POST", "/users/@me/relationships", { username: u }), yul.username);
    await yul.page.evaluate(
      (id) => window.parlorChat.api("PUT", `/users/@me/relationships/${id}`, { kind: "friend" }),
      wes.userId,
    );
    await wes.page.click("#dm-home-btn");
    await wes.page.click("#channel-list .new-group");
    await wes.page.waitForSelector("#group-dialog[open]");
    // The friend first, then the server member.
    await wes.page.waitForFunction(() => document.querySelectorAll("#group-list input").length === 2, null, { timeout: LIVE_MS });
    const listed = await wes.page.$$eval("#group-list label", (els) => els.map((e) => e.textContent));
    assert.deepEqual(listed, [yul.displayName, xia.displayName]);
    await wes.page.check(`#group-list input[value="${xia.userId}"]`);
    await wes.page.check(`#group-list input[value="${yul.userId}"]`);
    await wes.page.fill("#group-name", "셋이서");
    await wes.page.click("#group-create");
    await wes.page.waitForFunction(() => window.parlorChat.openDmId !== null, null, { timeout: LIVE_MS });
    await send(wes, "다 모였다");
    for (const p of [xia, yul]) {
      await p.page.waitForFunction(() => window.parlorChat.dms.some((d) => d.name === "셋이서" && d.kind === "group_dm"), null, { timeout: LIVE_MS });
    }
    const dm = await yul.page.evaluate(() => window.parlorChat.dms.find((d) => d.name === "셋이서"));
    assert.equal(dm.recipients.length, 3);
    await yul.page.click("#dm-home-btn");
    await yul.page.click(`#channel-list .channel[data-channel-id="${dm.id}"]`);
    await waitForMessage(yul, "다 모였다");
  });
});

test("server settings: a role given to a member, an event with interest, the channel's insights and a bot", { timeout: 120_000 }, async () => {
  await withPeople([["Zed", "Zed", DESKTOP], ["Amy", "Amy", DESKTOP]], async ([zed, amy]) => {
    const guildId = await shareGuild(zed, amy, "Settings");
    await send(zed, "deploy 회의는 deploy release");
    await waitForMessage(zed, "deploy 회의는 deploy release");
    const { page } = zed;
    const result = () => page.textContent("#server-result");
    await page.click("#server-settings-btn");
    await page.waitForSelector("#server-dialog[open]");
    // Roles: a new one with a permission, given to Amy.
    await page.fill("#role-name", "운영진");
    await page.check('#role-perms input[value="5"]');
    await page.click('#role-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector("#server-result").textContent === "Role 운영진 created.", null, { timeout: LIVE_MS });
    const role = page.locator('#roles-list .role-row:has-text("운영진")');
    assert.match(await role.textContent(), /Manage messages/);
    await role.locator("select").selectOption(amy.userId);
    await page.waitForFunction((n) => document.querySelector("#server-result").textContent === `Given to ${n}.`, amy.displayName, { timeout: LIVE_MS });
    const member = await page.evaluate(
      ({ g, u }) => window.parlorChat.api("GET", `/guilds/${g}/members?limit=1000`).then((l) => l.find((m) => m.user.id === u)),
      { g: guildId, u: amy.userId },
    );
    assert.equal(member.roles.length, 1, JSON.stringify(member));
    // Events: one tomorrow, and interest in it.
    await page.click('#server-tabs [data-tab="events"]');
    await page.fill("#event-title", "주간 회의");
    const tomorrow = new Date(Date.now() + 24 * 3600_000);
    const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.fill("#event-start", local);
    await page.click('#event-form button[type="submit"]');
    await page.waitForSelector('#events-list .event-row:has-text("주간 회의")', { timeout: LIVE_MS });
    await page.click("#events-list .event-interest");
    await page.waitForFunction(() => document.querySelector("#events-list .event-count")?.textContent === "1 interested", null, { timeout: LIVE_MS });
    // Insights of #general: its words, Korean particles cut; then one left out.
    await page.click('#server-tabs [data-tab="insights"]');
    await page.waitForSelector("#insights-list .insight-word", { timeout: LIVE_MS });
    const words = () => page.$$eval("#insights-list .insight-word", (els) => els.map((e) => e.textContent));
    assert.deepEqual((await words()).slice(0, 3), ["deploy2", "release1", "회의1"]);
    await page.fill("#insights-excluded", "deploy");
    await page.click('#insights-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector("#server-result").textContent === "Left out.", null, { timeout: LIVE_MS });
    assert.deepEqual(await words(), ["release1", "회의1"]);
    // Bots: a new one, its token shown once.
    await page.click('#server-tabs [data-tab="bots"]');
    await page.fill("#bot-name", "Helper");
    await page.click('#bot-form button[type="submit"]');
    await page.waitForSelector("#bot-token-box:not([hidden])", { timeout: LIVE_MS });
    assert.match(await page.textContent("#bot-token"), /^[A-Za-z0-9_-]{43}$/);
    assert.match(await result(), /Helper created/);
    // Webhooks of #general: its URL (shown once) posts into the channel; deleting stops it.
    await page.click('#server-tabs [data-tab="webhooks"]');
    await page.fill("#webhook-name", "CI");
    await page.click('#webhook-form button[type="submit"]');
    await page.waitForSelector("#webhook-url-box:not([hidden])", { timeout: LIVE_MS });
    const url = await page.textContent("#webhook-url");
    const posted = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ content: "빌드 성공 ✅" }) });
    assert.equal(posted.status, 201);
    await waitForMessage(amy, "빌드 성공 ✅");
    await page.click('#webhooks-list .webhook-delete');
    await page.waitForFunction(() => document.querySelector("#server-result").textContent.startsWith("Deleted."), null, { timeout: LIVE_MS });
    assert.equal((await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ content: "x" }) })).status, 404);
    await page.screenshot({ path: "../../target/e2e-screenshots/desktop-server-settings.png" });
  });
});

test("in a DM each message shows how many have not read it, until they do", { timeout: 90_000 }, async () => {
  await withPeople([["Hal", "Hal", DESKTOP], ["Ida", "Ida", DESKTOP]], async ([hal, ida]) => {
    await shareGuild(hal, ida, "Reads");
    // Ida is elsewhere (#general) when Hal writes to her.
    await hal.page.evaluate((id) => window.parlorChat.api("POST", "/users/@me/channels", { recipient_id: id }), ida.userId);
    await hal.page.click("#dm-home-btn");
    await hal.page.waitForFunction(() => window.parlorChat.dms.length === 1, null, { timeout: LIVE_MS });
    const dm = await hal.page.evaluate(() => window.parlorChat.dms[0].id);
    await hal.page.click(`#channel-list .channel[data-channel-id="${dm}"]`);
    await send(hal, "읽으면 1이 사라져요");
    const unreadBy = () => hal.page.evaluate(() => window.parlorChat.messages().find((m) => m.content === "읽으면 1이 사라져요")?.unreadBy ?? -1);
    await hal.page.waitForFunction(() => window.parlorChat.messages().some((m) => m.unreadBy === 1), null, { timeout: LIVE_MS });
    // Ida opens the DM: the 1 goes away on Hal's page.
    await ida.page.click("#dm-home-btn");
    await ida.page.waitForFunction((d) => window.parlorChat.dms.some((x) => x.id === d), dm, { timeout: LIVE_MS });
    await ida.page.click(`#channel-list .channel[data-channel-id="${dm}"]`);
    await waitForMessage(ida, "읽으면 1이 사라져요");
    await hal.page.waitForFunction(() => window.parlorChat.messages().every((m) => m.unreadBy === 0), null, { timeout: LIVE_MS });
    assert.equal(await unreadBy(), 0);
  });
});
