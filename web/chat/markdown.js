// @ts-check
// Message text as people format it in chat: ```code blocks```, `inline code`, **bold**,
// *italic* or _italic_, ~~strikethrough~~, ||spoilers||, > quoted lines, and http(s)
// links. Everything becomes DOM nodes built with text: user text is never parsed as HTML,
// and only http and https URLs become links (opened in a new tab, without a referrer).

import { h } from "../shared/dom.js";

/** @typedef {Node | string} Piece */

const FENCE = /```(?:[A-Za-z0-9_+-]*\n)?([\s\S]*?)```/g;
const INLINE_CODE = /`([^`\n]+)`/g;
/** Lines that start with `>`: a quote, a run of them together. */
const QUOTE = /(?:^|(?<=\n))(?:>[^\n]*(?:\n|$))+/g;
// A URL runs to white space; trailing punctuation that usually ends a sentence stays out.
const URL = /\bhttps?:\/\/[^\s<>"]*[^\s<>".,:;!?'")\]]/g;
/** Emphasis, strongest first: [pattern, element]. A marker must hug its text. */
const EMPHASIS = /** @type {const} */ ([
  [/\|\|(?=\S)([\s\S]*?\S)\|\|/g, "spoiler"],
  [/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "strong"],
  [/~~(?=\S)([\s\S]*?\S)~~/g, "s"],
  [/(?<![\w*])\*(?=\S)([^*]*?\S)\*(?![\w*])/g, "em"],
  [/(?<![\w_])_(?=\S)([^_]*?\S)_(?![\w_])/g, "em"],
]);

/**
 * Splits `text` by `pattern`: the gaps go through `rest`, the matches through `match`.
 * @param {string} text
 * @param {RegExp} pattern a global pattern
 * @param {(m: RegExpExecArray) => Piece[]} match
 * @param {(s: string) => Piece[]} rest
 * @returns {Piece[]}
 */
function split(text, pattern, match, rest) {
  /** @type {Piece[]} */
  const out = [];
  let at = 0;
  pattern.lastIndex = 0;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    if (m[0].length === 0) {
      pattern.lastIndex += 1;
      continue;
    }
    if (m.index > at) out.push(...rest(text.slice(at, m.index)));
    out.push(...match(m));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(...rest(text.slice(at)));
  return out;
}

/**
 * Links and emphasis in plain text (no code in it).
 * @param {string} text
 * @param {number} [level] the first emphasis rule still to apply
 * @returns {Piece[]}
 */
function inline(text, level = 0) {
  if (level === 0) {
    return split(
      text,
      URL,
      (m) => [h("a", { href: m[0], target: "_blank", rel: "noopener noreferrer nofollow", text: m[0] })],
      (s) => inline(s, 1),
    );
  }
  const rule = EMPHASIS[level - 1];
  if (!rule) return [text];
  const [pattern, tag] = rule;
  return split(
    text,
    pattern,
    (m) => [
      tag === "spoiler"
        ? h("span", { class: "spoiler", tabindex: "0", role: "button", "aria-label": "Spoiler: press to show" }, ...inline(m[1], level + 1))
        : h(tag, {}, ...inline(m[1], level + 1)),
    ],
    (s) => inline(s, level + 1),
  );
}

/**
 * The nodes that show a message's text.
 * @param {string} text
 * @returns {Piece[]}
 */
export function renderMarkdown(text) {
  return split(
    text,
    FENCE,
    (m) => [h("pre", { class: "code-block" }, h("code", { text: m[1] }))],
    (s) =>
      split(
        s,
        QUOTE,
        (m) => [h("blockquote", { class: "quote" }, ...codeAndInline(m[0].replace(/^> ?/gm, "").replace(/\n$/, "")))],
        codeAndInline,
      ),
  );
}

/**
 * Inline code, then links and emphasis, in text outside code blocks and quotes' markers.
 * @param {string} t
 * @returns {Piece[]}
 */
function codeAndInline(t) {
  return split(
    t,
    INLINE_CODE,
    (m) => [h("code", { class: "inline-code", text: m[1] })],
    (x) => inline(x),
  );
}
