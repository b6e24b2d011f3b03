// End-to-end tests of the chat app (/chat): real Chromium pages, each its own browser
// context (own localStorage), against a real `parlor serve`. People sign up, make a server,
// invite each other, chat live, see each other typing, survive dropped connections and meet
// in a voice channel.
//
//   PARLOR_BIN=../../target/debug/parlor node --test chat.test.mjs
//
// Environment as for room.test.mjs (see server.mjs and README.md).

import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep } from "./server.mjs";
import {
  LIVE_MS, MEDIA_TIMEOUT_MS, authError, chatState, createGuild, createInvite, env, joinGuild, joinVoiceChannel, messages,
  send, shareGuild, signUp, submitAuth, useServer, waitForMediaFrom, waitForMessage, withPeople,
} from "./people.mjs";

// The history test seeds 70 messages faster than anyone types; the per-user limits have
// their own tests in chat/tests.
useServer({ env: { PARLOR_CHAT_RATE_LIMITS: "off" } });

// -------------------------------------------------------------------------------------------
// Tests
// -------------------------------------------------------------------------------------------

test("on a phone the messages take the whole width, and servers and channels are a drawer", { timeout: 60_000 }, async () => {
  await withPeople([["Phone", "폰으로 보는 사람", { width: 390, height: 844 }]], async ([p]) => {
    const { page } = p;
    await signUp(p);
    // No server yet: the empty view offers one, with the drawer closed.
    await page.click("#empty-add-btn");
    await page.fill("#new-guild-name", "Phone club");
    await page.click("#create-guild-btn");
    await page.waitForSelector("#guild-dialog", { state: "hidden" });
    await page.waitForSelector('#channel-list .channel[data-kind="text"][aria-current="true"]', { timeout: LIVE_MS });
    const text = "a line long enough to wrap on a narrow screen, with some more words after it";
    await send(p, text);
    await waitForMessage(p, text);
    const box = (selector) => page.evaluate((s) => document.querySelector(s).getBoundingClientRect().toJSON(), selector);
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= 390, `the page scrolls sideways: ${scrollWidth}px wide`);
    assert.ok((await box("#messages")).width >= 360, `messages ${(await box("#messages")).width}px wide`);
    assert.ok((await box("#message-input")).width >= 250, "the composer has room");
    assert.ok((await box(".sidebar")).right <= 0 && (await box("#guild-rail")).right <= 0, "the drawer starts closed");
    assert.ok((await box("#nav-toggle")).width > 0, "the header has the drawer's button");

    // The drawer opens from the header with the channels, and closes on a channel.
    await page.click("#nav-toggle");
    await page.waitForFunction(() => document.querySelector(".sidebar").getBoundingClientRect().left >= 0);
    assert.equal(await page.getAttribute("#nav-toggle", "aria-expanded"), "true");
    const sidebar = await box(".sidebar");
    assert.ok(sidebar.right <= 390, `the drawer fits the screen: ${sidebar.right}`);
    await page.click('#channel-list .channel[data-kind="text"]');
    await page.waitForFunction(() => document.querySelector(".sidebar").getBoundingClientRect().right <= 0);
    assert.equal(await page.getAttribute("#nav-toggle", "aria-expanded"), "false");
  });
});

test("messages show bold, italic, strikethrough, code and links, and never run the HTML people type", { timeout: 60_000 }, async () => {
  await withPeople([["Writer", "글쓴이"]], async ([p]) => {
    const { page } = p;
    await signUp(p);
    await createGuild(p, "Formatting");
    const text = '**굵게** and _기울임_ and ~~gone~~ and `x < y` at https://example.com/a?b=1. <img src=x onerror="window.pwned=1">';
    await send(p, text);
    await waitForMessage(p, text);
    const last = () =>
      page.evaluate(() => {
        const el = [...document.querySelectorAll(".message .content")].at(-1);
        const one = (s) => el.querySelector(s)?.textContent ?? null;
        const a = el.querySelector("a");
        return {
          strong: one("strong"),
          em: one("em"),
          s: one("s"),
          code: one("code"),
          link: a && [a.getAttribute("href"), a.getAttribute("target"), a.getAttribute("rel")],
          images: el.querySelectorAll("img").length,
          text: el.textContent,
          block: one("pre code"),
          pwned: window.pwned ?? null,
        };
      });
    const shown = await last();
    assert.equal(shown.strong, "굵게");
    assert.equal(shown.em, "기울임");
    assert.equal(shown.s, "gone");
    assert.equal(shown.code, "x < y");
    assert.deepEqual(shown.link, ["https://example.com/a?b=1", "_blank", "noopener noreferrer nofollow"]);
    assert.equal(shown.images, 0, "typed HTML stays text");
    assert.ok(shown.text.endsWith('<img src=x onerror="window.pwned=1">'), shown.text);
    assert.equal(shown.pwned, null);
    // A code block keeps its lines, and markers inside it stay as typed.
    const block = "```\nlet **a** = 1;\nlet b = 2;\n```";
    await send(p, block);
    await waitForMessage(p, block);
    const code = await last();
    assert.equal(code.block, "let **a** = 1;\nlet b = 2;\n");
    assert.equal(code.strong, null);
    // Reactions other than 👍 from the action bar.
    const lastMessage = page.locator(".message").last();
    await lastMessage.hover();
    await lastMessage.locator('button.react-btn[data-emoji="🎉"]').click();
    await page.waitForSelector('.message:last-child .reaction[data-emoji="🎉"][aria-pressed="true"]', { timeout: LIVE_MS });
    assert.equal((await lastMessage.locator(".reaction").textContent()).trim(), "🎉 1");
  });
});

test("an invite's Copy gives its link, and a bad invite says so in words", { timeout: 60_000 }, async () => {
  await withPeople([["Host", "Host"], ["Guest", "Guest"]], async ([host, guest]) => {
    await host.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: env.server.url });
    await signUp(host);
    await createGuild(host, "Invites");
    const code = await createInvite(host);
    await host.page.click("#invite-copy");
    await host.page.waitForFunction(() => document.querySelector("#invite-copy").textContent === "Copied");
    const copied = await host.page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, `${env.server.url}/chat?invite=${code}`);

    await signUp(guest);
    await guest.page.click("#add-guild-btn");
    await guest.page.fill("#invite-input", "no-such-invite-code");
    await guest.page.click("#join-guild-btn");
    await guest.page.waitForSelector("#guild-dialog-error:not([hidden])", { timeout: LIVE_MS });
    const said = await guest.page.textContent("#guild-dialog-error");
    assert.match(said, /invalid or has expired/, said);
    // The link works as a code too.
    await guest.page.fill("#invite-input", copied);
    await guest.page.click("#join-guild-btn");
    await guest.page.waitForSelector("#guild-dialog", { state: "hidden", timeout: LIVE_MS });
  });
});

test("channels and messages have addresses: linked, reloaded and reached with Back", { timeout: 60_000 }, async () => {
  await withPeople([["Linker", "Linker"]], async ([p]) => {
    const { page } = p;
    await p.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: env.server.url });
    await signUp(p);
    const guildId = await createGuild(p, "Links");
    const general = (await chatState(page)).selectedChannelId;
    const path = () => new URL(page.url()).pathname;
    assert.equal(path(), `/chat/${guildId}/${general}`);
    // A message's Link copies its address.
    await send(p, "find me later");
    const [found] = await waitForMessage(p, "find me later");
    const message = page.locator(`.message[data-message-id="${found.id}"]`);
    await message.hover();
    await message.locator("button.link-btn").click();
    await page.waitForFunction(() => [...document.querySelectorAll("button.link-btn")].some((b) => b.textContent === "Copied"));
    const messageLink = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(messageLink, `${env.server.url}/chat/${guildId}/${general}/${found.id}`);
    await page.click('#channel-list .category:has-text("Text Channels") .add-channel');
    await page.selectOption("#new-channel-kind", "text");
    await page.fill("#new-channel-name", "notes");
    await page.click("#create-channel-btn");
    await page.waitForSelector('#channel-list .channel[aria-current="true"]:has-text("notes")', { timeout: LIVE_MS });
    const notes = (await chatState(page)).selectedChannelId;
    assert.notEqual(notes, general);
    assert.equal(path(), `/chat/${guildId}/${notes}`);
    // Back returns to general, Forward to notes.
    await page.goBack();
    await page.waitForFunction((id) => window.parlorChat.selectedChannelId === id, general, { timeout: LIVE_MS });
    await page.goForward();
    await page.waitForFunction((id) => window.parlorChat.selectedChannelId === id, notes, { timeout: LIVE_MS });
    // The message's link opens general at the message, marked, though notes was open last.
    await page.goto(messageLink);
    await page.waitForFunction(() => window.parlorChat.wsState === "ready", null, { timeout: LIVE_MS });
    await page.waitForFunction((id) => window.parlorChat.selectedChannelId === id, general, { timeout: LIVE_MS });
    await page.waitForSelector(`.message.highlight[data-message-id="${found.id}"]`, { timeout: LIVE_MS });
    assert.equal(path(), `/chat/${guildId}/${general}/${found.id}`);
    // So does a reload of a channel's address; a module's address is still the module.
    await page.goto(`${env.server.url}/chat/${guildId}/${notes}`);
    await page.waitForFunction((id) => window.parlorChat.selectedChannelId === id, notes, { timeout: LIVE_MS });
    const module = await page.request.get(`${env.server.url}/chat/app.js`);
    assert.match(module.headers()["content-type"], /javascript/);
  });
});

test("the tab title counts channels with unread messages", { timeout: 60_000 }, async () => {
  await withPeople([["Poster", "Poster"], ["Reader", "Reader"]], async ([poster, reader]) => {
    await shareGuild(poster, reader, "Title");
    const general = (await chatState(reader.page)).selectedChannelId;
    assert.equal(await reader.page.title(), "#general · Title · Parlor");
    // The reader reads another channel while a message comes to general.
    await poster.page.click('#channel-list .category:has-text("Text Channels") .add-channel');
    await poster.page.selectOption("#new-channel-kind", "text");
    await poster.page.fill("#new-channel-name", "elsewhere");
    await poster.page.click("#create-channel-btn");
    await poster.page.waitForSelector('#channel-list .channel[aria-current="true"]:has-text("elsewhere")', { timeout: LIVE_MS });
    await reader.page.click('#channel-list .channel[data-kind="text"]:has-text("elsewhere")', { timeout: LIVE_MS });
    await reader.page.waitForSelector('#channel-list .channel[aria-current="true"]:has-text("elsewhere")', { timeout: LIVE_MS });
    await poster.page.click(`#channel-list .channel[data-channel-id="${general}"]`);
    await send(poster, "are you there?");
    await reader.page.waitForFunction(() => document.title === "(1) #elsewhere · Title · Parlor", null, { timeout: LIVE_MS });
    await reader.page.click(`#channel-list .channel[data-channel-id="${general}"]`);
    await reader.page.waitForFunction(() => document.title === "#general · Title · Parlor", null, { timeout: LIVE_MS });
  });
});

test("two people chat live, see each other type, and meet in the voice channel", { timeout: 180_000 }, async () => {
  await withPeople([["Ada", "에이다 Ada"], ["Bob", "민준 Bob"]], async ([ada, bob]) => {
    await signUp(ada);

    // Ada makes a server: the default channels, grouped under their categories.
    const guildId = await createGuild(ada, "한국어 서버");
    const categories = await ada.page.$$eval("#channel-list .category", (els) =>
      els.map((el) => ({
        name: el.querySelector(".category-name").textContent,
        channels: [...el.querySelectorAll(".channel")].map((c) => ({
          kind: c.dataset.kind,
          icon: c.querySelector(".channel-icon").textContent,
          name: c.querySelector(".channel-name").textContent,
          hasSvg: Boolean(c.querySelector(".channel-icon svg")),
        })),
      })),
    );
    assert.deepEqual(categories, [
      { name: "Text Channels", channels: [{ kind: "text", icon: "#", name: "general", hasSvg: false }] },
      { name: "Voice Channels", channels: [{ kind: "voice", icon: "", name: "General", hasSvg: true }] },
    ]);
    const code = await createInvite(ada);

    // Bob: the form shows the API's errors, then he signs up and joins with the code.
    await submitAuth(bob, "signin", { username: ada.username, password: "not the password" });
    const wrong = await authError(bob.page);
    assert.equal(wrong.code, "invalid_credentials");
    assert.match(wrong.text, /wrong username or password/i);
    await submitAuth(bob, "signup", { username: ada.username.toUpperCase() });
    const taken = await authError(bob.page);
    assert.equal(taken.code, "username_taken");
    assert.match(taken.text, /taken/i);
    await signUp(bob);
    await joinGuild(bob, code, guildId);
    assert.equal(await bob.page.textContent("#guild-name"), "한국어 서버");
    const generalId = (await chatState(bob.page)).selectedChannelId;
    assert.equal((await chatState(ada.page)).selectedChannelId, generalId, "both are in #general");

    // Ada writes in Korean; Bob's page shows it live, once, with her name, without a reload.
    await bob.page.evaluate(() => {
      window.__sameDocument = true;
    });
    const hello = "안녕하세요! 처음 뵙겠습니다 🙂 — 한국어 메시지";
    await send(ada, hello);
    const copies = await waitForMessage(bob, hello);
    assert.equal(copies.length, 1, `Bob shows the message once: ${JSON.stringify(copies)}`);
    assert.equal(copies[0].author, ada.displayName);
    assert.equal(copies[0].authorId, ada.userId);
    assert.equal(await bob.page.evaluate(() => window.__sameDocument), true, "Bob's page did not reload");
    assert.equal((await waitForMessage(ada, hello)).length, 1, "Ada shows her own message once");
    assert.equal(await ada.page.inputValue("#message-input"), "", "the composer is cleared after sending");

    // Bob types: Ada sees him typing (and Bob does not see himself).
    await bob.page.click("#message-input");
    await bob.page.keyboard.type("타이핑 중", { delay: 20 });
    await ada.page
      .waitForFunction(() => /is typing/.test(window.parlorChat.typingText()), null, { timeout: LIVE_MS })
      .catch(() => assert.fail("Ada never saw Bob typing"));
    assert.equal(await ada.page.textContent("#typing"), `${bob.displayName} is typing…`);
    assert.equal(await bob.page.evaluate(() => window.parlorChat.typingText()), "", "no indicator for oneself");
    // His message ends the indicator at once, not after 10 s.
    await bob.page.press("#message-input", "Enter");
    await waitForMessage(ada, "타이핑 중");
    assert.equal(await ada.page.evaluate(() => window.parlorChat.typingText()), "", "the indicator ends with the message");

    // An edit and a delete reach the other page live.
    const typo = "회의는 3시에 해요";
    await send(ada, typo);
    await waitForMessage(bob, typo);
    const typoEl = ada.page.locator("#messages .message", { hasText: typo });
    await typoEl.hover();
    await typoEl.locator(".edit-btn").click();
    await ada.page.fill("#messages .edit-input", "회의는 4시에 해요");
    await ada.page.press("#messages .edit-input", "Enter");
    const [edited] = await waitForMessage(bob, "회의는 4시에 해요");
    assert.equal(edited.edited, true, "Bob sees the (edited) marker");
    assert.equal((await messages(bob.page)).some((m) => m.content === typo), false, "the old text is gone");
    const editedEl = ada.page.locator("#messages .message", { hasText: "회의는 4시에 해요" });
    await editedEl.hover();
    await editedEl.locator(".delete-btn").click();
    await editedEl.locator(".delete-btn").click(); // confirms
    await bob.page
      .waitForFunction(() => !window.parlorChat.messages().some((m) => m.content.startsWith("회의는")), null, { timeout: LIVE_MS })
      .catch(() => assert.fail("the deleted message stayed on Bob's page"));

    // Both click the voice channel: each sees the other's tile and gets their media.
    await Promise.all([joinVoiceChannel(ada, "General"), joinVoiceChannel(bob, "General")]);
    for (const [me, other] of [[ada, bob], [bob, ada]]) {
      const tile = `#tiles .tile[data-identity="${other.identity}"][data-source="camera"]`;
      await me.page.waitForSelector(tile, { timeout: MEDIA_TIMEOUT_MS });
      assert.equal(await me.page.textContent(`${tile} .name`), other.displayName, "the tile shows the display name");
      assert.equal(other.identity, `user-${other.userId}`);
      await waitForMediaFrom(me, other);
      const state = await chatState(me.page);
      assert.equal(state.view, "voice");
      const sidebar = await me.page.$$eval("#channel-list .voice-member-name", (els) => els.map((e) => e.textContent).sort());
      assert.deepEqual(sidebar, [ada.displayName, bob.displayName].sort(), "the sidebar lists who is in the channel");
      assert.equal(await me.page.isVisible("#voice-panel"), true, "the voice connection panel shows");
    }

    // Ada disconnects: her tile leaves Bob's page, and her page goes back to #general.
    await ada.page.click("#voice-disconnect");
    await bob.page.waitForSelector(`#tiles .tile[data-identity="${ada.identity}"]`, { state: "detached", timeout: LIVE_MS });
    assert.equal((await chatState(ada.page)).view, "text");
    assert.equal(await ada.page.isVisible("#voice-panel"), false);
  });
});

test("a dropped chat connection resumes, or catches up, without losing or repeating a message", { timeout: 120_000 }, async () => {
  await withPeople([["Cleo", "클레오 Cleo"], ["Dan", "Dan"]], async ([cleo, dan]) => {
    await signUp(cleo);
    await signUp(dan);
    const guildId = await createGuild(cleo, "Resume club");
    await joinGuild(dan, await createInvite(cleo), guildId);
    await send(cleo, "before the drop");
    await waitForMessage(dan, "before the drop");

    // The connection drops; a message is sent while it is down; the resume replays it.
    const before = await chatState(dan.page);
    await dan.page.evaluate(() => window.parlorChat.dropSocket({ holdMs: 1_500 }));
    await dan.page.waitForFunction(() => window.parlorChat.wsState !== "ready");
    await send(cleo, "끊긴 동안 보낸 메시지");
    assert.equal((await waitForMessage(dan, "끊긴 동안 보낸 메시지", 15_000)).length, 1);
    await dan.page.waitForFunction(() => window.parlorChat.wsState === "ready");
    const resumed = await chatState(dan.page);
    assert.equal(resumed.sessionId, before.sessionId, "the same session goes on");
    assert.equal(resumed.stats.resumes, before.stats.resumes + 1, "one resume");
    assert.equal(resumed.stats.identifies, before.stats.identifies, "no new identify");

    // The resume is refused (the session is unknown): identify again and page forward.
    await dan.page.evaluate(() => window.parlorChat.dropSocket({ holdMs: 1_500, invalidateSession: true }));
    await dan.page.waitForFunction(() => window.parlorChat.wsState !== "ready");
    const gap = ["gap 1", "gap 2 둘", "gap 3"];
    for (const text of gap) await send(cleo, text);
    for (const text of gap) assert.equal((await waitForMessage(dan, text, 15_000)).length, 1, `${text} once`);
    const caught = await chatState(dan.page);
    assert.equal(caught.stats.invalidSessions, resumed.stats.invalidSessions + 1);
    assert.equal(caught.stats.identifies, resumed.stats.identifies + 1);
    assert.notEqual(caught.sessionId, resumed.sessionId, "a new session");
    assert.ok(caught.stats.caughtUp >= gap.length, `the gap came by catching up: ${JSON.stringify(caught.stats)}`);

    // Live again, and nothing twice or out of order.
    await send(cleo, "after the catch-up");
    await waitForMessage(dan, "after the catch-up");
    const shown = await messages(dan.page);
    const ids = shown.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, `no message twice: ${JSON.stringify(shown)}`);
    assert.deepEqual(
      shown.map((m) => m.content),
      ["before the drop", "끊긴 동안 보낸 메시지", ...gap, "after the catch-up"],
    );
  });
});

test("older history loads on scroll-up; new channels appear live", { timeout: 120_000 }, async () => {
  await withPeople([["Eve", "Eve"], ["Finn", "핀 Finn"]], async ([eve, finn]) => {
    await signUp(eve);
    await signUp(finn);
    const guildId = await createGuild(eve, "History");
    await joinGuild(finn, await createInvite(eve), guildId);

    // Eve makes a text channel through the dialog: it shows on Finn's page at once.
    await eve.page.click('#channel-list .category:has-text("Text Channels") .add-channel');
    await eve.page.selectOption("#new-channel-kind", "text");
    await eve.page.fill("#new-channel-name", "archive");
    await eve.page.click("#create-channel-btn");
    await eve.page.waitForSelector('#channel-list .channel[aria-current="true"]:has-text("archive")', { timeout: LIVE_MS });
    const archive = finn.page.locator('#channel-list .channel[data-kind="text"]:has-text("archive")');
    await archive.waitFor({ timeout: LIVE_MS });
    // And a capped voice channel, which shows its cap.
    await eve.page.click('#channel-list .category:has-text("Voice Channels") .add-channel');
    await eve.page.selectOption("#new-channel-kind", "voice");
    await eve.page.fill("#new-channel-name", "Standup");
    await eve.page.fill("#new-channel-limit", "5");
    await eve.page.click("#create-channel-btn");
    const standup = finn.page.locator('#channel-list .channel[data-kind="voice"]:has-text("Standup")');
    await standup.waitFor({ timeout: LIVE_MS });
    assert.match(await standup.locator(".user-limit").textContent(), /5/);

    // 70 messages, more than one page (50).
    const channelId = (await chatState(eve.page)).selectedChannelId;
    await eve.page.evaluate(async (id) => {
      for (let i = 0; i < 70; i += 1) {
        await window.parlorChat.api("POST", `/channels/${id}/messages`, { content: `기록 ${i}` });
      }
    }, channelId);

    await archive.click();
    const expectAll = Array.from({ length: 70 }, (_, i) => `기록 ${i}`);
    await finn.page.waitForFunction(() => window.parlorChat.messages().length >= 50, null, { timeout: LIVE_MS });
    const firstPage = await messages(finn.page);
    assert.deepEqual(firstPage.map((m) => m.content), expectAll.slice(20), "the latest 50, newest at the bottom");
    const scroller = await finn.page.$eval("#message-scroller", (el) => ({
      atBottom: el.scrollHeight - el.scrollTop - el.clientHeight < 80,
    }));
    assert.ok(scroller.atBottom, "the history opens at the bottom");

    // Scrolling up loads the rest, and keeps what was on screen in place.
    await finn.page.$eval("#message-scroller", (el) => el.scrollTo(0, 0));
    await finn.page
      .waitForFunction(() => window.parlorChat.messages().length === 70, null, { timeout: LIVE_MS })
      .catch(async () => assert.fail(`older messages did not load: ${(await messages(finn.page)).length}`));
    const all = await messages(finn.page);
    assert.deepEqual(all.map((m) => m.content), expectAll, "all 70 in order, none twice");
    assert.match(await finn.page.textContent("#history-status"), /start of #archive/);

    // Clicking one voice channel and at once another ends in the second room only.
    const standupId = (await finn.page.evaluate(() => window.parlorChat.guilds[0].channels)).find(
      (c) => c.name === "Standup",
    ).id;
    // Standup's token comes late, so the first join would be done by then if it went on.
    await finn.page.route(`**/api/v1/channels/${standupId}/voice/join`, async (route) => {
      await sleep(1_500);
      await route.continue();
    });
    await finn.page.click('#channel-list .channel[data-kind="voice"]:has-text("General")');
    await standup.click();
    await finn.page.waitForFunction(() => window.parlor.state === "joined", null, { timeout: 20_000 });
    await sleep(2_000); // time for an overtaken join to surface, if it were not dropped
    const voice = await finn.page.evaluate(() => ({
      state: window.parlor.state,
      room: window.parlor.room,
      channel: window.parlorChat.voiceChannelId,
    }));
    assert.deepEqual(voice, { state: "joined", room: `chat:voice-${standupId}`, channel: standupId });
    assert.equal(await standup.locator(".user-limit").textContent(), "1/5", "the cap with who is in");
  });
});

test("the session survives a reload; only the refresh token is stored; signing out ends it", { timeout: 60_000 }, async () => {
  await withPeople([["Gus", "Gus"]], async ([gus]) => {
    await signUp(gus);
    const stored = () =>
      gus.page.evaluate(() => ({
        local: Object.fromEntries(Object.entries(localStorage)),
        session: Object.fromEntries(Object.entries(sessionStorage)),
      }));
    const first = await stored();
    assert.ok(first.local["parlor.chat.refresh"], "the refresh token is kept");
    const everything = JSON.stringify(first);
    assert.ok(!/eyJ[\w-]+\.[\w-]+\./.test(everything), `no access token (JWT) in storage: ${everything}`);

    // A refresh rotates the stored token and the app keeps working.
    const expiresBefore = await gus.page.evaluate(() => window.parlorChat.accessExpiresAt);
    await gus.page.evaluate(() => window.parlorChat.refreshToken());
    const rotated = await stored();
    assert.notEqual(rotated.local["parlor.chat.refresh"], first.local["parlor.chat.refresh"]);
    assert.ok((await gus.page.evaluate(() => window.parlorChat.accessExpiresAt)) >= expiresBefore);
    await createGuild(gus, "After refresh");

    // A reload signs in again with the stored token, back to the same server.
    await gus.page.reload();
    await gus.page.waitForFunction(() => window.parlorChat?.wsState === "ready", null, { timeout: LIVE_MS });
    assert.equal(await gus.page.isVisible("#auth-view"), false);
    assert.equal((await gus.page.evaluate(() => window.parlorChat.user)).username, gus.username);
    assert.equal(await gus.page.textContent("#guild-name"), "After refresh");

    // Signing out forgets the token; a reload shows the sign-in form.
    await gus.page.click("#logout-btn");
    await gus.page.waitForSelector("#auth-view:not([hidden])");
    assert.equal((await stored()).local["parlor.chat.refresh"], undefined);
    await gus.page.reload();
    await gus.page.waitForSelector("#auth-view:not([hidden])");
  });
});

// -------------------------------------------------------------------------------------------
// Direct messages (uploads, search and the rest of messaging: messages.test.mjs)
// -------------------------------------------------------------------------------------------

test("direct messages start from the member list, are listed live and deliver live", { timeout: 120_000 }, async () => {
  await withPeople([["Hana", "하나 Hana"], ["Ivan", "Ivan"]], async ([hana, ivan]) => {
    await shareGuild(hana, ivan, "DM 모임");

    // Hana's member list shows both of them, with a Message button for Ivan only.
    await hana.page
      .waitForFunction(() => window.parlorChat.members().length === 2, null, { timeout: LIVE_MS })
      .catch(async () => assert.fail(`members: ${JSON.stringify(await hana.page.evaluate(() => window.parlorChat.members()))}`));
    const members = await hana.page.evaluate(() => window.parlorChat.members());
    assert.deepEqual(
      members.map((m) => [m.id, m.name, m.username]).sort(),
      [[hana.userId, hana.displayName, hana.username], [ivan.userId, ivan.displayName, ivan.username]].sort(),
    );
    assert.equal(await hana.page.locator(`#member-list .member[data-user-id="${hana.userId}"] .message-member`).count(), 0);

    // "Message" opens the DM in the normal message pane.
    await hana.page.click(`#member-list .member[data-user-id="${ivan.userId}"] .message-member`);
    await hana.page.waitForFunction(() => window.parlorChat.openDmId !== null, null, { timeout: LIVE_MS });
    const dmId = await hana.page.evaluate(() => window.parlorChat.openDmId);
    const hanaState = await chatState(hana.page);
    assert.equal(hanaState.selectedGuildId, "@me");
    assert.equal(hanaState.selectedChannelId, dmId);
    assert.equal(hanaState.view, "text");
    assert.equal(await hana.page.textContent("#channel-title"), `@${ivan.displayName}`);
    const hanaDms = await hana.page.evaluate(() => window.parlorChat.dms);
    assert.equal(hanaDms.length, 1);
    assert.equal(hanaDms[0].kind, "dm");
    assert.equal(hanaDms[0].name, ivan.displayName);
    assert.deepEqual([...hanaDms[0].recipients].sort(), [hana.userId, ivan.userId].sort());
    assert.equal(await hana.page.getAttribute("#dm-home-btn", "aria-current"), "true");

    // Ivan (still in the guild) gets the DM live, and its first message marks DMs unread.
    await ivan.page
      .waitForFunction((id) => window.parlorChat.dms.some((d) => d.id === id), dmId, { timeout: LIVE_MS })
      .catch(() => assert.fail("the new DM never reached Ivan's page"));
    const first = "안녕하세요 Ivan, DM이에요 👋";
    await send(hana, first);
    await waitForMessage(hana, first);
    await ivan.page.waitForSelector("#dm-home-btn.unread", { timeout: LIVE_MS });
    await ivan.page.click("#dm-home-btn");
    const entry = ivan.page.locator(`#channel-list .channel.dm[data-channel-id="${dmId}"]`);
    assert.equal(await entry.locator(".channel-name").textContent(), hana.displayName, "the DM is named after the other person");
    await entry.click();
    const [shown] = await waitForMessage(ivan, first);
    assert.equal(shown.author, hana.displayName);
    assert.equal(await ivan.page.evaluate(() => window.parlorChat.openDmId), dmId);

    // Both ways, live, once.
    const second = "두 번째 메시지";
    await send(hana, second);
    assert.equal((await waitForMessage(ivan, second)).length, 1);
    const reply = "Got it — 고마워요";
    await send(ivan, reply);
    const [replyOnHana] = await waitForMessage(hana, reply);
    assert.equal(replyOnHana.author, ivan.displayName);

    // Searching a DM searches that conversation.
    await ivan.page.fill("#search-input", "dm이에요");
    await ivan.page.press("#search-input", "Enter");
    await ivan.page.waitForFunction(() => window.parlorChat.search && !window.parlorChat.search.loading, null, { timeout: LIVE_MS });
    const dmSearch = await ivan.page.evaluate(() => window.parlorChat.search.results);
    assert.deepEqual(dmSearch.map((r) => [r.content, r.author, r.channel]), [[first, hana.displayName, `@${hana.displayName}`]]);

    // Messaging Ivan again from the guild finds the same DM, not a second one.
    await hana.page.click("#guild-list .guild-button");
    await hana.page.click(`#member-list .member[data-user-id="${ivan.userId}"] .message-member`);
    await hana.page.waitForFunction((id) => window.parlorChat.openDmId === id, dmId, { timeout: LIVE_MS });
    assert.equal((await hana.page.evaluate(() => window.parlorChat.dms)).length, 1);
    assert.deepEqual((await messages(hana.page)).map((m) => m.content), [first, second, reply]);

    // A reload comes back to the open DM.
    await ivan.page.reload();
    await ivan.page.waitForFunction(() => window.parlorChat?.wsState === "ready", null, { timeout: LIVE_MS });
    await ivan.page.waitForFunction((id) => window.parlorChat.openDmId === id, dmId, { timeout: LIVE_MS });
    await waitForMessage(ivan, reply);
  });
});
