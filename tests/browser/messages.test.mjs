// End-to-end tests of messaging in the chat app (/chat), in real Chromium against a real
// `parlor serve`: uploads, search and its filter chips, the emoji picker, threads, quotes and
// spoilers, invite options and the light theme.
//
//   PARLOR_BIN=../../target/debug/parlor node --test messages.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { poll } from "./server.mjs";
import {
  LIVE_MS, chatState, createGuild, createInvite, env, joinGuild, makePng, messages, send, shareGuild, signUp, useServer,
  waitForMessage, withPeople,
} from "./people.mjs";

// The search test seeds 70 messages faster than anyone types; the per-user limits have
// their own tests in chat/tests.
useServer({ env: { PARLOR_CHAT_RATE_LIMITS: "off" } });

/** Waits until every file picked in the composer is uploaded. */
async function waitForUploads(person, count) {
  await person.page
    .waitForFunction(
      (n) => {
        const files = window.parlorChat.pendingFiles();
        return files.length === n && files.every((f) => f.status === "done");
      },
      count,
      { timeout: LIVE_MS },
    )
    .catch(async () => assert.fail(`uploads did not finish: ${JSON.stringify(await person.page.evaluate(() => window.parlorChat.pendingFiles()))}`));
}

/**
 * Waits until `person` shows a message with this `content` (or carrying a file named
 * `fileName`) whose images, if `loaded`, have loaded; returns it.
 */
async function waitForMessageWhere(person, { content, fileName, loaded = false }) {
  const handle = await person.page
    .waitForFunction(
      ({ content, fileName, loaded }) =>
        window.parlorChat
          .messages()
          .find(
            (m) =>
              (content === undefined || m.content === content) &&
              (fileName === undefined || m.attachments.some((x) => x.name === fileName)) &&
              (!loaded || (m.attachments.length > 0 && m.attachments.every((x) => x.kind !== "image" || x.naturalWidth > 0))),
          ) ?? null,
      { content, fileName, loaded },
      { timeout: LIVE_MS },
    )
    .catch(async () => assert.fail(`${person.label} never showed the message; shows ${JSON.stringify(await messages(person.page))}`));
  return handle.jsonValue();
}

test("files upload from the composer, by picking or pasting, and show on the other page", { timeout: 120_000 }, async () => {
  await withPeople([["Jin", "진 Jin"], ["Kai", "Kai"]], async ([jin, kai]) => {
    await shareGuild(jin, kai, "Files");

    // An 800 × 500 PNG with a caption: Kai sees its 320 × 200 thumbnail, linking to the file.
    const png = makePng(800, 500);
    await jin.page.setInputFiles("#file-input", { name: "사진.png", mimeType: "image/png", buffer: png });
    await waitForUploads(jin, 1);
    assert.equal(await jin.page.isVisible("#pending-attachments .pending"), true, "the file shows in the composer");
    await send(jin, "사진 보내요");
    await waitForMessage(kai, "사진 보내요");
    const photo = await waitForMessageWhere(kai, { content: "사진 보내요", loaded: true });
    assert.equal(photo.attachments.length, 1);
    assert.equal(photo.attachments[0].kind, "image");
    assert.equal(photo.attachments[0].naturalWidth, 320, "the thumbnail (800 wide scaled into 320 × 320)");
    assert.match(photo.attachments[0].href, /^\/api\/v1\/attachments\/\d+\//);
    const original = await kai.page.evaluate(async (href) => {
      const r = await fetch(href);
      return { status: r.status, type: r.headers.get("content-type"), bytes: (await r.arrayBuffer()).byteLength };
    }, photo.attachments[0].href);
    assert.deepEqual(original, { status: 200, type: "image/png", bytes: png.length }, "the link is the original file");
    assert.deepEqual(await jin.page.evaluate(() => window.parlorChat.pendingFiles()), [], "sending empties the composer");

    // A text file with no caption: a download link with its name and size.
    const notes = Buffer.from("회의록: 다음 주 화요일\n", "utf8");
    await jin.page.setInputFiles("#file-input", { name: "notes.txt", mimeType: "text/plain", buffer: notes });
    await waitForUploads(jin, 1);
    await jin.page.press("#message-input", "Enter");
    const file = await waitForMessageWhere(kai, { fileName: "notes.txt" });
    assert.equal(file.content, "");
    assert.deepEqual(
      { kind: file.attachments[0].kind, name: file.attachments[0].name, size: file.attachments[0].size },
      { kind: "file", name: "notes.txt", size: `${notes.length} B` },
    );
    const text = await kai.page.evaluate(async (href) => (await fetch(href)).text(), file.attachments[0].href);
    assert.equal(text, notes.toString("utf8"));

    // A pasted image (no file name) goes the same way.
    await jin.page.evaluate(async () => {
      const canvas = document.createElement("canvas");
      canvas.width = 60;
      canvas.height = 40;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#3a7";
      ctx.fillRect(0, 0, 60, 40);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      const data = new DataTransfer();
      data.items.add(new File([blob], "", { type: "image/png" }));
      document.querySelector("#message-input").dispatchEvent(
        new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }),
      );
    });
    await waitForUploads(jin, 1);
    await send(jin, "붙여넣기");
    const pasted = await waitForMessageWhere(kai, { content: "붙여넣기", loaded: true });
    assert.equal(pasted.attachments[0].kind, "image");
    assert.equal(pasted.attachments[0].name, "pasted.png", "a pasted image without a name gets one");
    assert.ok(pasted.attachments[0].naturalWidth > 0);
    const pastedFile = await kai.page.evaluate(async (href) => {
      const bitmap = await createImageBitmap(await (await fetch(href)).blob());
      return [bitmap.width, bitmap.height];
    }, pasted.attachments[0].href);
    assert.deepEqual(pastedFile, [60, 40], "the link is the pasted image itself");
  });
});

test("search finds Korean text across the guild and opens the channel around the result", { timeout: 120_000 }, async () => {
  await withPeople([["Lee", "이 Lee"], ["Min", "민 Min"]], async ([lee, min]) => {
    const guildId = await shareGuild(lee, min, "검색 서버");
    const generalId = (await chatState(min.page)).selectedChannelId;

    // #general has a near miss; #notes has the target, then 70 more messages, so the target
    // is not in the latest page.
    const seeded = await lee.page.evaluate(
      async ({ guildId, generalId }) => {
        const { api } = window.parlorChat;
        const notes = await api("POST", `/guilds/${guildId}/channels`, { name: "notes", kind: "text" });
        const near = await api("POST", `/channels/${generalId}/messages`, { content: "회의 시간은 3시예요" });
        const target = await api("POST", `/channels/${notes.id}/messages`, { content: "내일까지 회의록 정리해 주세요" });
        for (let i = 0; i < 70; i += 1) await api("POST", `/channels/${notes.id}/messages`, { content: `잡담 ${i}` });
        return { notesId: notes.id, nearId: near.id, targetId: target.id };
      },
      { guildId, generalId },
    );

    const search = async (query) => {
      await min.page.fill("#search-input", query);
      await min.page.press("#search-input", "Enter");
      await min.page.waitForFunction(
        (q) => window.parlorChat.search?.query === q && !window.parlorChat.search.loading,
        query,
        { timeout: LIVE_MS },
      );
      return min.page.evaluate(() => window.parlorChat.search);
    };

    // A substring of a word with a particle: only the target.
    const exact = await search("회의록");
    assert.equal(exact.error, null);
    assert.deepEqual(
      exact.results.map((r) => [r.id, r.author, r.channel, r.content]),
      [[seeded.targetId, lee.displayName, "#notes", "내일까지 회의록 정리해 주세요"]],
    );
    // A shorter term finds both, newest first.
    const broad = await search("회의");
    assert.deepEqual(broad.results.map((r) => r.id), [seeded.targetId, seeded.nearId]);
    const none = await search("없는말");
    assert.deepEqual(none.results, []);

    // Clicking the result opens #notes around the target, which is marked and on screen.
    await search("회의록");
    await min.page.click(`#search-results .search-result[data-message-id="${seeded.targetId}"]`);
    await min.page.waitForFunction(
      (id) => window.parlorChat.messages().some((m) => m.id === id),
      seeded.targetId,
      { timeout: LIVE_MS },
    );
    const state = await chatState(min.page);
    assert.equal(state.selectedChannelId, seeded.notesId);
    assert.equal(state.view, "text");
    const onScreen = await min.page.evaluate((id) => {
      const el = document.querySelector(`#messages .message[data-message-id="${id}"]`);
      const box = el.getBoundingClientRect();
      const pane = document.querySelector("#message-scroller").getBoundingClientRect();
      return { highlighted: el.classList.contains("highlight"), visible: box.top >= pane.top && box.bottom <= pane.bottom };
    }, seeded.targetId);
    assert.deepEqual(onScreen, { highlighted: true, visible: true });


    // Scrolling down pages the newer messages in; then live messages show again.
    const all = ["내일까지 회의록 정리해 주세요", ...Array.from({ length: 70 }, (_, i) => `잡담 ${i}`)];
    await poll(
      async () => {
        await min.page.$eval("#message-scroller", (el) => el.scrollTo(0, el.scrollHeight));
        return messages(min.page);
      },
      (shown) => shown.some((m) => m.content === "잡담 69"),
      { timeout: LIVE_MS },
    );
    await lee.page.evaluate((id) => window.parlorChat.api("POST", `/channels/${id}/messages`, { content: "실시간 메시지" }), seeded.notesId);
    await waitForMessage(min, "실시간 메시지");
    const shown = (await messages(min.page)).map((m) => m.content);
    const fromTarget = shown.slice(shown.indexOf(all[0]));
    assert.deepEqual(fromTarget, [...all, "실시간 메시지"], "in order, none twice, no gap");
  });
});

test("the emoji picker puts an emoji in the composer and reacts to a message", { timeout: 60_000 }, async () => {
  await withPeople([["Emo", "Emo"]], async ([p]) => {
    const { page } = p;
    await signUp(p);
    await createGuild(p, "Emoji");
    // From the composer: search, Enter, and it is in the text at the caret.
    await page.fill("#message-input", "hello ");
    await page.click("#emoji-btn");
    await page.waitForSelector("#emoji-picker:not([hidden])");
    await page.keyboard.type("pizza");
    await page.keyboard.press("Enter");
    assert.equal(await page.inputValue("#message-input"), "hello 🍕");
    assert.equal(await page.isVisible("#emoji-picker"), false, "the picker closes after a pick");
    await page.press("#message-input", "Enter");
    await waitForMessage(p, "hello 🍕");
    // From a message: any emoji as a reaction.
    const message = page.locator(".message").last();
    await message.hover();
    await message.locator('[data-action="pick-reaction"]').click();
    await page.fill("#emoji-search", "rocket");
    await page.click('#emoji-picker .emoji-cell[data-emoji="🚀"]');
    await page.waitForSelector('.message:last-child .reaction[data-emoji="🚀"][aria-pressed="true"]', { timeout: LIVE_MS });
    // Escape closes it without a pick.
    await message.hover();
    await message.locator('[data-action="pick-reaction"]').click();
    await page.keyboard.press("Escape");
    assert.equal(await page.isVisible("#emoji-picker"), false);
  });
});

test("a thread opens beside the channel, and its replies reach the other page live", { timeout: 90_000 }, async () => {
  await withPeople([["Tia", "티아 Tia", { width: 1440, height: 900 }], ["Udo", "Udo", { width: 1440, height: 900 }]], async ([tia, udo]) => {
    await shareGuild(tia, udo, "Threads");
    await send(tia, "다음 회의 안건");
    await waitForMessage(udo, "다음 회의 안건");
    // Tia starts a thread from the message: it opens beside the channel, named after it.
    const message = tia.page.locator(".message", { hasText: "다음 회의 안건" });
    await message.hover();
    await message.locator('[data-action="thread"]').click();
    await tia.page.waitForSelector("#thread-panel:not([hidden])", { timeout: LIVE_MS });
    assert.equal(await tia.page.textContent("#thread-name"), "다음 회의 안건");
    const side = await tia.page.evaluate(() => ({
      panel: document.querySelector("#thread-panel").getBoundingClientRect().left,
      main: document.querySelector(".main-pane").getBoundingClientRect().right,
    }));
    assert.ok(side.panel >= side.main - 1, `the thread is beside the channel: ${JSON.stringify(side)}`);
    await tia.page.fill("#thread-input", "1. 예산");
    await tia.page.press("#thread-input", "Enter");
    await tia.page.waitForSelector('#thread-messages .thread-message:has-text("1. 예산")', { timeout: LIVE_MS });
    // Udo sees the thread's link on the message, opens it, and replies; Tia sees it live.
    await udo.page.waitForSelector('.message .thread-link:has-text("다음 회의 안건")', { timeout: LIVE_MS });
    await udo.page.click(".message .thread-link");
    await udo.page.waitForSelector('#thread-messages .thread-message:has-text("1. 예산")', { timeout: LIVE_MS });
    await udo.page.fill("#thread-input", "2. 일정");
    await udo.page.press("#thread-input", "Enter");
    await tia.page.waitForSelector('#thread-messages .thread-message:has-text("2. 일정")', { timeout: LIVE_MS });
    // The channel itself did not get the thread's messages.
    const inChannel = (await messages(tia.page)).map((m) => m.content);
    assert.deepEqual(inChannel, ["다음 회의 안건"]);
    await tia.page.screenshot({ path: "../../target/e2e-screenshots/desktop-thread.png" });
    await tia.page.click("#thread-close");
    assert.equal(await tia.page.isVisible("#thread-panel"), false);
  });
});

test("the light theme is chosen from the status menu and kept across a reload", { timeout: 60_000 }, async () => {
  await withPeople([["Lux", "Lux", { width: 1440, height: 900 }]], async ([p]) => {
    const { page } = p;
    // The system prefers dark; the page follows it until told otherwise.
    await page.emulateMedia({ colorScheme: "dark" });
    await signUp(p);
    await createGuild(p, "Light");
    await send(p, "밝은 테마 light theme");
    await waitForMessage(p, "밝은 테마 light theme");
    const colours = () =>
      page.evaluate(() => ({
        theme: document.documentElement.dataset.theme,
        main: getComputedStyle(document.querySelector(".main-pane")).backgroundColor,
        text: document.querySelector(".message-body") && getComputedStyle(document.querySelector(".message-body")).color,
      }));
    assert.equal((await colours()).theme, "dark", "the system's dark by default");
    await page.click("#status-btn");
    await page.click('#status-menu [data-theme-choice="light"]');
    const light = await colours();
    assert.deepEqual(light, { theme: "light", main: "rgb(255, 255, 255)", text: "rgb(46, 51, 56)" });
    await page.keyboard.press("Escape");
    await page.screenshot({ path: "../../target/e2e-screenshots/desktop-light-theme.png" });
    await page.reload();
    await page.waitForFunction(() => window.parlorChat?.wsState === "ready", null, { timeout: LIVE_MS });
    assert.equal((await colours()).theme, "light");
  });
});

test("an invite can expire sooner and be limited to one use", { timeout: 60_000 }, async () => {
  await withPeople([["Ivo", "Ivo"], ["Joy", "Joy"], ["Kit", "Kit"]], async ([ivo, joy, kit]) => {
    await signUp(ivo);
    const guildId = await createGuild(ivo, "Once");
    await createInvite(ivo);
    await ivo.page.selectOption("#invite-uses", "1");
    await ivo.page.selectOption("#invite-age", "3600");
    await ivo.page.waitForFunction(() => document.querySelector("#invite-terms").textContent === "Valid for 1 hour, 1 use.", null, { timeout: LIVE_MS });
    const code = await ivo.page.inputValue("#invite-code");
    const invite = await ivo.page.evaluate((c) => window.parlorChat.api("GET", `/invites/${c}`), code);
    assert.equal(invite.max_uses, 1);
    assert.ok(invite.expires_at - Date.now() <= 3600_000 && invite.expires_at - Date.now() > 3500_000, JSON.stringify(invite));
    await signUp(joy);
    await joinGuild(joy, code, guildId);
    // Used once: the next person is told in words.
    await signUp(kit);
    await kit.page.click("#add-guild-btn");
    await kit.page.fill("#invite-input", code);
    await kit.page.click("#join-guild-btn");
    await kit.page.waitForSelector("#guild-dialog-error:not([hidden])", { timeout: LIVE_MS });
    assert.equal(await kit.page.textContent("#guild-dialog-error"), "That invite has been used as many times as it allows. Ask for a new one.");
  });
});

test("search filter chips narrow the results and take themselves out again", { timeout: 90_000 }, async () => {
  await withPeople([["Fia", "Fia"], ["Gus", "Gus"]], async ([fia, gus]) => {
    await shareGuild(fia, gus, "Chips");
    await send(fia, "회의 from Fia");
    await waitForMessage(gus, "회의 from Fia");
    await send(gus, "회의 from Gus");
    await waitForMessage(fia, "회의 from Gus");
    const results = () => fia.page.evaluate(() => window.parlorChat.search?.results.map((r) => r.content) ?? []);
    await fia.page.fill("#search-input", "회의");
    await fia.page.press("#search-input", "Enter");
    await fia.page.waitForFunction(() => window.parlorChat.search?.results.length === 2, null, { timeout: LIVE_MS });
    await fia.page.click('#search-chips [data-filter^="from:"]');
    await fia.page.waitForFunction(() => window.parlorChat.search?.results.length === 1, null, { timeout: LIVE_MS });
    assert.deepEqual(await results(), ["회의 from Fia"]);
    assert.equal(await fia.page.inputValue("#search-input"), `회의 from:${fia.username}`);
    assert.equal(await fia.page.getAttribute('#search-chips [data-filter^="from:"]', "aria-pressed"), "true");
    await fia.page.click('#search-chips [data-filter^="from:"]');
    await fia.page.waitForFunction(() => window.parlorChat.search?.results.length === 2, null, { timeout: LIVE_MS });
  });
});

test("quoted lines show as a quote, and a spoiler stays hidden until clicked", { timeout: 60_000 }, async () => {
  await withPeople([["Qin", "Qin"]], async ([p]) => {
    const { page } = p;
    await signUp(p);
    await createGuild(p, "Quotes");
    const text = "> 회의는 3시\n> 2층에서\n네, 알겠어요. 결말은 ||범인은 집사|| 입니다";
    await send(p, text);
    await waitForMessage(p, text);
    const shown = () =>
      page.evaluate(() => {
        const el = [...document.querySelectorAll(".message .content")].at(-1);
        const spoiler = el.querySelector(".spoiler");
        return {
          quote: el.querySelector("blockquote")?.textContent ?? null,
          after: el.lastChild?.textContent ?? null,
          spoilerText: spoiler?.textContent ?? null,
          spoilerColor: spoiler && getComputedStyle(spoiler).color,
          shownClass: spoiler?.classList.contains("shown") ?? null,
          raw: el.dataset.text,
        };
      });
    const before = await shown();
    assert.equal(before.quote, "회의는 3시\n2층에서");
    assert.equal(before.spoilerText, "범인은 집사");
    assert.equal(before.spoilerColor, "rgba(0, 0, 0, 0)", "the spoiler's text is not visible");
    assert.equal(before.raw, text, "the text as written is kept");
    await page.click(".message .spoiler");
    const after = await shown();
    assert.equal(after.shownClass, true);
    assert.notEqual(after.spoilerColor, "rgba(0, 0, 0, 0)");
  });
});
