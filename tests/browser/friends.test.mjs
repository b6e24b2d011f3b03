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
