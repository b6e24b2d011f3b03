// @ts-check
// The dialogs: adding a server (create one, or join with an invite) and creating a channel.

import { $ } from "../shared/dom.js";
import { showErrorIn } from "../shared/errors.js";
import { createChannel, createGuild, joinByInvite } from "./guilds.js";
import { currentGuild } from "./state.js";

/** @typedef {import("./state.js").ChatApp} ChatApp */

/** @param {ChatApp} app */
export function openGuildDialog(app) {
  const { ui } = app;
  ui.guildDialogError.hidden = true;
  ui.newGuildName.value = "";
  ui.inviteInput.value = "";
  ui.guildDialog.showModal();
  ui.newGuildName.focus();
}

/**
 * Runs a dialog's action, showing its error in the dialog.
 * @param {HTMLButtonElement} button
 * @param {HTMLElement} errorEl
 * @param {() => Promise<void>} action
 * @returns {Promise<boolean>} whether it succeeded
 */
export async function dialogAction(button, errorEl, action) {
  button.disabled = true;
  errorEl.hidden = true;
  try {
    await action();
    return true;
  } catch (error) {
    showErrorIn(errorEl, error.message, error.code);
    return false;
  } finally {
    button.disabled = false;
  }
}

/**
 * Opens the dialog that creates a channel in a category.
 * @param {ChatApp} app
 * @param {string} parentId
 */
export function openChannelDialog(app, parentId) {
  const { ui } = app;
  ui.channelForm.dataset.parentId = parentId;
  ui.channelDialogError.hidden = true;
  ui.newChannelName.value = "";
  ui.newChannelLimit.value = "";
  const category = currentGuild(app)?.channels.get(parentId);
  ui.newChannelKind.value = /voice/i.test(category?.name ?? "") ? "voice" : "text";
  ui.userLimitField.hidden = ui.newChannelKind.value !== "voice";
  ui.channelDialog.showModal();
  ui.newChannelName.focus();
}

/**
 * The dialogs: adding a server (create or join), creating a channel.
 * @param {ChatApp} app
 */
export function wireDialogs(app) {
  const { ui } = app;
  ui.addGuildBtn.addEventListener("click", () => openGuildDialog(app));
  ui.emptyAddBtn.addEventListener("click", () => openGuildDialog(app));
  ui.guildDialogClose.addEventListener("click", () => ui.guildDialog.close());
  ui.createGuildForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = await dialogAction($("#create-guild-btn"), ui.guildDialogError, () => createGuild(app, ui.newGuildName.value.trim()));
    if (ok) ui.guildDialog.close();
  });
  ui.joinGuildForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = await dialogAction($("#join-guild-btn"), ui.guildDialogError, () => joinByInvite(app, ui.inviteInput.value));
    if (ok) ui.guildDialog.close();
  });

  ui.newChannelKind.addEventListener("change", () => {
    ui.userLimitField.hidden = ui.newChannelKind.value !== "voice";
  });
  ui.channelDialogClose.addEventListener("click", () => ui.channelDialog.close());
  ui.channelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const limit = Number(ui.newChannelLimit.value) || null;
    const ok = await dialogAction($("#create-channel-btn"), ui.channelDialogError, () =>
      createChannel(app, ui.newChannelKind.value, ui.newChannelName.value.trim(), ui.channelForm.dataset.parentId, limit),
    );
    if (ok) ui.channelDialog.close();
  });
}
