// @ts-check
// Small DOM helpers shared by the room page and the chat app.

/**
 * The page's element for a selector (every page has the elements its modules look up).
 * @param {string} selector
 * @returns {any} the element, typed where it is stored (see the `*Elements()` functions)
 */
export const $ = (selector) => document.querySelector(selector);

/**
 * Creates an element: `h("li", {class: "x", dataset: {id}}, child, "text")`. `text` sets
 * textContent, which is how user text is always shown; `innerHTML` is for constant markup
 * (an icon) only, never user text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [props]
 * @param {...(Node | string | null | false | undefined | (Node | string | null | false | undefined)[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key === "innerHTML") el.innerHTML = value; // constant markup only, never user text
    else if (key in el && typeof value !== "string") /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child != null && child !== false) el.append(child);
  return el;
}

/**
 * The element an event happened in, or its nearest ancestor, that matches `selector`.
 * @param {Event} event
 * @param {string} selector
 * @returns {HTMLElement | null}
 */
export function closestTarget(event, selector) {
  return /** @type {Element} */ (event.target).closest(selector);
}

/**
 * The elements under `root` that match `selector`, in document order.
 * @param {ParentNode} root
 * @param {string} selector
 * @returns {HTMLElement[]}
 */
export function queryAll(root, selector) {
  return [.../** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll(selector))];
}

/**
 * Shows what a request did in a status element: an error, or (`ok`) a success; hidden
 * when `text` is empty.
 * @param {HTMLElement} el
 * @param {string} text
 * @param {boolean} [ok]
 */
export function showResult(el, text, ok = false) {
  el.textContent = text;
  el.hidden = !text;
  el.classList.toggle("ok", ok);
}
