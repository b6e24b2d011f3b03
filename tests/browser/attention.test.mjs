// End-to-end tests of what draws attention in the chat app, in real Chromium at 1440×900
// against a real `parlor serve`: `@` autocomplete, unread and mention badges on channels
// and servers that clear when read (on every device, through acks), the tab title, the
// highlight of a message that mentions you, the "new messages" divider, and a desktop
// notification for a mention while the page is hidden.
//
//   PARLOR_BIN=../../target/debug/parlor node --test attention.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { LIVE_MS, env, send, shareGuild, signUp, useServer, waitForMessage, withPeople } from "./people.mjs";

useServer();

const DESKTOP = { width: 1440, height: 900 };
const SHOTS = path.resolve(import.meta.dirname, "../../target/e2e-screenshots");

/** Makes the page look hidden (another tab in front), or visible again. */
function setHidden(person, hidden) {
  return person.page.evaluate((h) => {
    window.__hidden = h;
    if (!window.__hiddenPatched) {
      window.__hiddenPatched = true;
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (window.__hidden ? "hidden" : "visible") });
      document.hasFocus = () => !window.__hidden;
    }
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

const badges = (person) => person.page.evaluate(() => window.parlorChat.badges());

test("mentions: autocomplete, badges that clear when read, the divider, the highlight and a desktop notification", { timeout: 120_000 }, async () => {
  await withPeople([["Ann", "앤 Ann", DESKTOP], ["Bo", "Bo", DESKTOP]], async ([ann, bo]) => {
    await bo.context.grantPermissions(["notifications"], { origin: env.server.url });
    const guildId = await shareGuild(ann, bo, "Attention");
    const random = await ann.page.evaluate(
      (g) => window.parlorChat.api("POST", `/guilds/${g}/channels`, { name: "random", kind: "text" }).then((c) => c.id),
      guildId,
    );
    await bo.page.waitForSelector(`#channel-list .channel[data-channel-id="${random}"]`, { timeout: LIVE_MS });
    await ann.page.click(`#channel-list .channel[data-channel-id="${random}"]`);

    // A plain message in #random while Bo reads #general: unread, no mention.
    await send(ann, "평범한 메시지 plain");
    await bo.page.waitForFunction((c) => window.parlorChat.badges().channels[c]?.unread, random, { timeout: LIVE_MS });
    assert.equal((await badges(bo)).channels[random].mentions, 0);
    assert.match(await bo.page.title(), /^\(1\) /);

    // Ann mentions Bo through the autocomplete.
    await ann.page.click("#message-input");
    await ann.page.keyboard.type(`hey @${bo.username.slice(0, 3)}`);
    await ann.page.waitForFunction(() => window.parlorChat.suggestions().length > 0, null, { timeout: LIVE_MS });
    const offered = await ann.page.evaluate(() => window.parlorChat.suggestions());
    assert.equal(offered[0].label, bo.displayName, JSON.stringify(offered));
    assert.equal(offered[0].detail, `@${bo.username}`);
    fs.mkdirSync(SHOTS, { recursive: true });
    await ann.page.screenshot({ path: path.join(SHOTS, "desktop-mention-autocomplete.png") });
    await ann.page.keyboard.press("Enter");
    assert.equal(await ann.page.inputValue("#message-input"), `hey @${bo.username} `, "Enter took the suggestion and sent nothing");
    await ann.page.keyboard.type("look at this");
    await ann.page.keyboard.press("Enter");
    const mention = `hey @${bo.username} look at this`;
    await waitForMessage(ann, mention);

    // Bo: a red 1 on #random and on the server.
    await bo.page.waitForFunction((c) => window.parlorChat.badges().channels[c]?.mentions === 1, random, { timeout: LIVE_MS });
    assert.equal((await badges(bo)).guilds[guildId].mentions, 1);

    // While Bo's page is hidden, another mention shows a desktop notification.
    await setHidden(bo, true);
    await send(ann, `@${bo.username} are you there? 🙂`);
    await bo.page
      .waitForFunction(() => window.parlorChat.notifications.length > 0, null, { timeout: LIVE_MS })
      .catch(async () => assert.fail(`no notification; permission ${await bo.page.evaluate(() => Notification.permission)}`));
    const [shown] = await bo.page.evaluate(() => window.parlorChat.notifications);
    assert.equal(shown.reason, "mention");
    assert.equal(shown.channelId, random);
    assert.match(shown.title, new RegExp(ann.displayName));
    assert.equal(shown.body, `@${bo.username} are you there? 🙂`);
    await bo.page.waitForFunction((c) => window.parlorChat.badges().channels[c]?.mentions === 2, random, { timeout: LIVE_MS });
    await setHidden(bo, false);
    await bo.page.screenshot({ path: path.join(SHOTS, "desktop-mention-badges.png") });

    // Bo opens #random: the divider sits above the first message he had not read, the
    // mentions are highlighted, and the badges clear.
    await bo.page.click(`#channel-list .channel[data-channel-id="${random}"]`);
    await waitForMessage(bo, mention);
    const seen = await bo.page.evaluate(() => ({ ...window.parlorChat.attention(), messages: window.parlorChat.messages() }));
    const byContent = (t) => seen.messages.find((m) => m.content === t)?.id;
    assert.equal(seen.firstUnread, byContent("평범한 메시지 plain"));
    assert.deepEqual(seen.mentioned.sort(), [byContent(mention), byContent(`@${bo.username} are you there? 🙂`)].sort());
    const cleared = await badges(bo);
    assert.deepEqual(cleared.channels[random], { unread: false, mentions: 0 });
    assert.equal(cleared.guilds[guildId].mentions, 0);
    await bo.page.screenshot({ path: path.join(SHOTS, "desktop-new-messages-divider.png") });

    // The read is stored: the server's read state for Bo says nothing is left.
    await bo.page.waitForFunction(
      async (c) => {
        const rs = await window.parlorChat.api("GET", "/users/@me/read-states");
        const r = rs.channels.find((x) => x.channel_id === c);
        return r && r.unread_count === 0 && r.mention_count === 0;
      },
      random,
      { timeout: LIVE_MS, polling: 300 },
    );
  });
});

test("a muted channel marks nothing unread until it is unmuted; the level follows the menu", { timeout: 90_000 }, async () => {
  await withPeople([["Mia", "Mia", DESKTOP], ["Ned", "Ned", DESKTOP]], async ([mia, ned]) => {
    const guildId = await shareGuild(mia, ned, "Quiet");
    const quiet = await mia.page.evaluate(
      (g) => window.parlorChat.api("POST", `/guilds/${g}/channels`, { name: "quiet", kind: "text" }).then((c) => c.id),
      guildId,
    );
    await ned.page.waitForSelector(`#channel-list .channel[data-channel-id="${quiet}"]`, { timeout: LIVE_MS });
    // Ned mutes #quiet for an hour from its bell.
    await ned.page.click(`#channel-list .channel[data-channel-id="${quiet}"]`);
    await ned.page.click("#notify-btn");
    await ned.page.click('#notify-menu [data-act="mute"][data-value="1h"]');
    await ned.page.waitForSelector(`#channel-list .channel.muted[data-channel-id="${quiet}"]`, { timeout: LIVE_MS });
    await ned.page.click('#channel-list .channel[data-kind="text"]:not(.muted)');
    // Mia writes in #quiet: nothing unread on Ned's page.
    await mia.page.click(`#channel-list .channel[data-channel-id="${quiet}"]`);
    await send(mia, "shh");
    await waitForMessage(mia, "shh");
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await badges(ned)).channels[quiet].unread, false, "a muted channel marks nothing unread");
    // The mute is kept by the server: another page of Ned's sees it.
    const setting = await ned.page.evaluate(
      (c) => window.parlorChat.api("GET", "/users/@me/notification-settings").then((l) => l.find((s) => s.id === c)),
      quiet,
    );
    assert.ok(setting.muted_until > Date.now(), JSON.stringify(setting));
    // Unmuted, the next message marks it unread again; the level set from the menu stays.
    await ned.page.click(`#channel-list .channel[data-channel-id="${quiet}"]`);
    await ned.page.click("#notify-btn");
    await ned.page.click('#notify-menu [data-act="mute"][data-value="off"]');
    await ned.page.click("#notify-btn");
    await ned.page.click('#notify-menu [data-act="level"][data-value="all"]');
    await ned.page.click("#notify-btn");
    assert.equal(await ned.page.getAttribute('#notify-menu [data-act="level"][data-value="all"]', "aria-checked"), "true");
    await ned.page.keyboard.press("Escape");
    await ned.page.click('#channel-list .channel[data-kind="text"]:not([data-channel-id="' + quiet + '"])');
    await send(mia, "now you hear me");
    await ned.page.waitForFunction((c) => window.parlorChat.badges().channels[c]?.unread, quiet, { timeout: LIVE_MS });
  });
});

test("/ in the composer offers the slash commands of the server's bots", { timeout: 60_000 }, async () => {
  await withPeople([["Ola", "Ola", DESKTOP]], async ([ola]) => {
    const { page } = ola;
    await signUp(ola);
    const guildId = await page.evaluate(() => window.parlorChat.api("POST", "/guilds", { name: "Bots" }).then((g) => g.id));
    await page.waitForFunction((g) => window.parlorChat.guilds.some((x) => x.id === g), guildId, { timeout: LIVE_MS });
    await page.click(`#guild-list [data-guild-id="${guildId}"]`);
    // A bot joins with an invite and registers a command with its own token.
    const bot = await page.evaluate(() => window.parlorChat.api("POST", "/applications", { name: "Weather" }));
    const invite = await page.evaluate((g) => window.parlorChat.api("POST", `/guilds/${g}/invites`, {}), guildId);
    const asBot = (method, p, body) =>
      fetch(`${env.server.url}/api/v1${p}`, { method, headers: { authorization: `Bot ${bot.token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal((await asBot("POST", `/invites/${invite.code}`, {})).status, 200);
    const put = await asBot("PUT", `/applications/${bot.id}/commands`, [
      { name: "weather", description: "the weather", options: [{ name: "city", description: "which city", required: true }] },
      { name: "ping" },
    ]);
    assert.equal(put.status, 200);
    await page.click("#message-input");
    await page.keyboard.type("/we");
    await page.waitForFunction(() => window.parlorChat.suggestions().length > 0, null, { timeout: LIVE_MS });
    assert.deepEqual(await page.evaluate(() => window.parlorChat.suggestions()), [
      { label: "/weather <city>", detail: "the weather · Weather", selected: true },
    ]);
    await page.keyboard.press("Tab");
    assert.equal(await page.inputValue("#message-input"), "/weather ");
  });
});
