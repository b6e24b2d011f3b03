// @ts-check
// The emoji picker: a searchable grid, opened from the composer (the emoji goes in at the
// caret) or from a message's action bar (it becomes a reaction). Keyboard: type to
// search, arrows to move, Enter to pick, Escape to close.

import { closestTarget, h } from "../shared/dom.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** [emoji, words it is found by], by group. */
const EMOJI = {
  People: [
    ["😀", "grin smile happy"], ["😂", "joy laugh tears"], ["🤣", "rofl laugh"], ["😊", "blush smile"],
    ["😍", "heart eyes love"], ["😘", "kiss"], ["😎", "cool sunglasses"], ["🤔", "thinking hmm"],
    ["😮", "wow open mouth surprised"], ["😢", "cry sad tear"], ["😭", "sob cry"], ["😡", "angry rage"],
    ["😴", "sleep tired"], ["🥳", "party celebrate"], ["🙃", "upside down"], ["😅", "sweat smile"],
    ["🤯", "mind blown"], ["🥺", "pleading"], ["😇", "angel innocent"], ["🤗", "hug"],
    ["👍", "thumbs up yes like +1"], ["👎", "thumbs down no -1"], ["👏", "clap applause"], ["🙏", "pray please thanks"],
    ["👋", "wave hello bye"], ["💪", "muscle strong"], ["🙌", "raised hands hooray"], ["👀", "eyes look"],
    ["🤝", "handshake deal"], ["✌️", "peace victory"],
  ],
  Nature: [
    ["🐶", "dog puppy"], ["🐱", "cat kitten"], ["🐻", "bear"], ["🐼", "panda"], ["🦊", "fox"],
    ["🐸", "frog"], ["🐧", "penguin"], ["🌸", "cherry blossom flower"], ["🌻", "sunflower"], ["🌈", "rainbow"],
    ["☀️", "sun sunny"], ["🌙", "moon night"], ["⭐", "star"], ["🔥", "fire hot lit"], ["❄️", "snow cold"],
  ],
  Food: [
    ["🍕", "pizza"], ["🍔", "burger"], ["🍜", "ramen noodles"], ["🍣", "sushi"], ["🍚", "rice"],
    ["🍰", "cake"], ["🍩", "donut"], ["☕", "coffee"], ["🍺", "beer"], ["🍉", "watermelon"],
    ["🍎", "apple"], ["🍓", "strawberry"],
  ],
  Activities: [
    ["🎉", "tada party celebrate"], ["🎂", "birthday cake"], ["🎁", "gift present"], ["🏆", "trophy win"],
    ["⚽", "soccer football"], ["🏀", "basketball"], ["🎮", "game controller"], ["🎵", "music note"],
    ["🎧", "headphones music"], ["📚", "books study"], ["💻", "laptop computer"], ["🚀", "rocket launch ship"],
  ],
  Symbols: [
    ["❤️", "heart love red"], ["💙", "blue heart"], ["💚", "green heart"], ["💛", "yellow heart"], ["💜", "purple heart"],
    ["💯", "hundred perfect"], ["✅", "check done yes"], ["❌", "cross no wrong"], ["⚠️", "warning"], ["❓", "question"],
    ["❗", "exclamation"], ["💡", "idea bulb"], ["🔔", "bell notification"], ["📌", "pin"], ["✨", "sparkles"],
  ],
};

/**
 * The emoji matching a search, or all of them by group.
 * @param {string} query
 */
function matching(query) {
  const q = query.trim().toLowerCase();
  return Object.entries(EMOJI)
    .map(([group, list]) => [group, list.filter(([e, words]) => !q || words.includes(q) || words.split(" ").some((w) => w.startsWith(q)) || e === q)])
    .filter(([, list]) => list.length > 0);
}

/**
 * Opens the picker next to `anchor`; `onPick(emoji)` takes the choice.
 * @param {ChatApp} app
 * @param {HTMLElement} anchor
 * @param {(emoji: string) => void} onPick
 */
export function openPicker(app, anchor, onPick) {
  const { ui, chat } = app;
  chat.pickEmoji = onPick;
  ui.emojiSearch.value = "";
  render(app);
  ui.emojiPicker.hidden = false;
  const r = anchor.getBoundingClientRect();
  const w = ui.emojiPicker.offsetWidth;
  const hgt = ui.emojiPicker.offsetHeight;
  ui.emojiPicker.style.left = `${Math.max(8, Math.min(innerWidth - w - 8, r.right - w))}px`;
  ui.emojiPicker.style.top = `${Math.max(8, r.top - hgt - 8 < 8 ? r.bottom + 8 : r.top - hgt - 8)}px`;
  ui.emojiSearch.focus();
}

/** @param {ChatApp} app */
export function closePicker(app) {
  const { ui, chat } = app;
  ui.emojiPicker.hidden = true;
  chat.pickEmoji = null;
}

/** @param {ChatApp} app */
function render(app) {
  const { ui } = app;
  const groups = matching(ui.emojiSearch.value);
  let first = true;
  ui.emojiGrid.replaceChildren(
    ...(groups.length
      ? groups.map(([group, list]) =>
          h(
            "div",
            { class: "emoji-group" },
            h("div", { class: "emoji-group-name", text: /** @type {string} */ (group) }),
            h(
              "div",
              { class: "emoji-cells", role: "listbox", "aria-label": /** @type {string} */ (group) },
              /** @type {string[][]} */ (list).map(([e, words]) => {
                const cell = h("button", { type: "button", class: "emoji-cell", role: "option", dataset: { emoji: e }, title: words.split(" ")[0], "aria-label": words.split(" ")[0], text: e });
                if (first) cell.classList.add("active");
                first = false;
                return cell;
              }),
            ),
          ),
        )
      : [h("p", { class: "hint small", text: "No emoji found." })]),
  );
}

/**
 * @param {ChatApp} app
 * @param {string} emoji
 */
function pick(app, emoji) {
  const take = app.chat.pickEmoji;
  closePicker(app);
  take?.(emoji);
}

/**
 * The picker's search, keys and clicks; the composer's emoji button.
 * @param {ChatApp} app
 */
export function wireEmoji(app) {
  const { ui } = app;
  ui.emojiSearch.addEventListener("input", () => render(app));
  ui.emojiPicker.addEventListener("click", (event) => {
    const cell = closestTarget(event, ".emoji-cell");
    if (cell) pick(app, cell.dataset.emoji);
  });
  ui.emojiPicker.addEventListener("keydown", (event) => {
    const cells = [...ui.emojiGrid.querySelectorAll(".emoji-cell")];
    const i = cells.findIndex((c) => c.classList.contains("active"));
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 8, ArrowUp: -8 }[event.key];
    if (move && cells.length) {
      event.preventDefault();
      cells[i]?.classList.remove("active");
      const next = cells[Math.max(0, Math.min(cells.length - 1, i + move))];
      next.classList.add("active");
      next.scrollIntoView({ block: "nearest" });
    } else if (event.key === "Enter" && cells[i]) {
      event.preventDefault();
      pick(app, /** @type {HTMLElement} */ (cells[i]).dataset.emoji);
    } else if (event.key === "Escape") {
      event.preventDefault();
      closePicker(app);
    }
  });
  document.addEventListener("mousedown", (event) => {
    if (!ui.emojiPicker.hidden && !closestTarget(event, "#emoji-picker, [data-opens-picker]")) closePicker(app);
  });
  ui.emojiBtn.addEventListener("click", () =>
    openPicker(app, ui.emojiBtn, (emoji) => {
      const input = ui.input;
      const at = input.selectionStart ?? input.value.length;
      input.value = input.value.slice(0, at) + emoji + input.value.slice(input.selectionEnd ?? at);
      input.focus();
      input.setSelectionRange(at + emoji.length, at + emoji.length);
      input.dispatchEvent(new Event("input"));
    }),
  );
}
