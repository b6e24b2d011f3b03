// @ts-check
// The colour theme: dark, light, or the system's preference (the default), kept in
// localStorage and applied to <html data-theme>.

const KEY = "parlor.theme";
const system = matchMedia("(prefers-color-scheme: light)");

/** The theme chosen: "system", "dark" or "light". */
export function chosenTheme() {
  const v = localStorage.getItem(KEY);
  return v === "dark" || v === "light" ? v : "system";
}

/** Applies the chosen theme (again when the system's preference changes). */
export function applyTheme() {
  const choice = chosenTheme();
  const light = choice === "light" || (choice === "system" && system.matches);
  document.documentElement.dataset.theme = light ? "light" : "dark";
}

/**
 * Chooses a theme and applies it.
 * @param {string} choice "system", "dark" or "light"
 */
export function chooseTheme(choice) {
  if (choice === "dark" || choice === "light") localStorage.setItem(KEY, choice);
  else localStorage.removeItem(KEY);
  applyTheme();
}

system.addEventListener("change", applyTheme);
