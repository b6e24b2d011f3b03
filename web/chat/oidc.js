// @ts-check
// Signing in with an OpenID Connect provider (docs/chat-api.md, "Sign in with a
// provider"): a button per provider the server offers; back from the provider at
// /chat?oidc=done, the page collects the result (a session, or the question whether to
// link the provider to the existing account that has its address).

import { h } from "../shared/dom.js";
import { http } from "./api.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** What the page says when the provider sign-in went wrong (`?oidc=error&reason=`). */
const REASONS = {
  denied: "The sign-in was cancelled at the provider.",
  expired: "The sign-in took too long. Try again.",
  provider_error: "The provider's answer could not be checked. Try again, or sign in with a password.",
  bad_callback: "The provider sent the browser back without an answer. Try again.",
  unavailable: "Parlor could not finish the sign-in. Try again shortly.",
  unknown_provider: "That sign-in provider is not configured here.",
};

/**
 * Shows a button for each provider on the sign-in form.
 * @param {ChatApp} app
 */
export async function renderProviders(app) {
  const { ui } = app;
  let list = [];
  try {
    list = await http("GET", "/auth/oidc/providers");
  } catch {
    // No providers shown: passwords still work.
  }
  ui.oidcProviders.hidden = list.length === 0;
  ui.oidcProviders.replaceChildren(
    ...list.map((p) =>
      h("a", { class: "oidc-button", href: `/api/v1/auth/oidc/${encodeURIComponent(p.id)}/start`, dataset: { provider: p.id }, text: `Sign in with ${p.name}` }),
    ),
  );
}

/**
 * Back from a provider: collects the result. Resolves with a session to adopt, or null
 * (nothing to do, a question shown, or an error shown through `showError`).
 * @param {ChatApp} app
 * @param {(message: string, code: string) => void} showError
 */
export async function finishOidc(app, showError) {
  const { ui } = app;
  const params = new URLSearchParams(location.search);
  const outcome = params.get("oidc");
  if (!outcome) return null;
  params.delete("oidc");
  const reason = params.get("reason");
  params.delete("reason");
  history.replaceState(history.state, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
  if (outcome !== "done") {
    showError(REASONS[reason] ?? "The sign-in did not work. Try again.", reason ?? "oidc_error");
    return null;
  }
  try {
    const r = await http("POST", "/auth/oidc/complete");
    if (r.session) return r.session;
    const { provider, email, username } = r.link;
    ui.oidcLinkText.textContent = `An account (@${username}) already has ${email}. Enter its password to sign in with ${provider} from now on, or make a separate account.`;
    ui.oidcLink.hidden = false;
    ui.authForm.hidden = true;
    ui.oidcLinkPassword.focus();
    return null;
  } catch (error) {
    showError(error.message, error.code);
    return null;
  }
}

/**
 * The link question's form.
 * @param {ChatApp} app
 * @param {(session: any) => void} adopt
 */
export function wireOidcLink(app, adopt) {
  const { ui } = app;
  const send = async (/** @type {any} */ body) => {
    ui.oidcLinkError.hidden = true;
    try {
      const r = await http("POST", "/auth/oidc/link", body);
      ui.oidcLink.hidden = true;
      ui.authForm.hidden = false;
      ui.oidcLinkPassword.value = "";
      adopt(r.session);
    } catch (error) {
      ui.oidcLinkError.textContent = error.code === "invalid_credentials" ? "Wrong password." : error.message;
      ui.oidcLinkError.dataset.code = error.code ?? "";
      ui.oidcLinkError.hidden = false;
    }
  };
  ui.oidcLink.addEventListener("submit", (event) => {
    event.preventDefault();
    send({ password: ui.oidcLinkPassword.value });
  });
  ui.oidcLinkCreate.addEventListener("click", () => send({ create: true }));
}
