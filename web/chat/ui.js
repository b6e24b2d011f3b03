// @ts-check
// The chat page's elements (web/chat.html), looked up once.

import { $ } from "../shared/dom.js";

/** @typedef {ReturnType<typeof chatElements>} ChatUi */

/** The elements of the chat app's views, by what they are for. */
export function chatElements() {
  return {
    /** @type {HTMLElement} */
    authView: $("#auth-view"),
    /** @type {HTMLFormElement} */
    authForm: $("#auth-form"),
    /** @type {HTMLElement} */
    authTitle: $("#auth-title"),
    /** @type {HTMLElement} */
    authHint: $("#auth-hint"),
    /** @type {HTMLInputElement} */
    authUsername: $("#auth-username"),
    /** @type {HTMLInputElement} */
    authPassword: $("#auth-password"),
    /** @type {HTMLInputElement} */
    authDisplayName: $("#auth-display-name"),
    /** @type {HTMLElement} */
    displayNameField: $("#display-name-field"),
    /** @type {HTMLInputElement} */
    authEmail: $("#auth-email"),
    /** @type {HTMLElement} */
    forgotRow: $("#forgot-row"),
    /** @type {HTMLButtonElement} */
    forgotBtn: $("#forgot-btn"),
    /** @type {HTMLElement} */
    oidcProviders: $("#oidc-providers"),
    /** @type {HTMLFormElement} */
    oidcLink: $("#oidc-link"),
    /** @type {HTMLElement} */
    oidcLinkText: $("#oidc-link-text"),
    /** @type {HTMLInputElement} */
    oidcLinkPassword: $("#oidc-link-password"),
    /** @type {HTMLElement} */
    oidcLinkError: $("#oidc-link-error"),
    /** @type {HTMLButtonElement} */
    oidcLinkCreate: $("#oidc-link-create"),
    /** @type {HTMLFormElement} */
    resetForm: $("#reset-form"),
    /** @type {HTMLElement} */
    resetHint: $("#reset-hint"),
    /** @type {HTMLInputElement} */
    resetEmail: $("#reset-email"),
    /** @type {HTMLElement} */
    resetCodeFields: $("#reset-code-fields"),
    /** @type {HTMLInputElement} */
    resetCode: $("#reset-code"),
    /** @type {HTMLInputElement} */
    resetPassword: $("#reset-password"),
    /** @type {HTMLElement} */
    resetError: $("#reset-error"),
    /** @type {HTMLElement} */
    resetInfo: $("#reset-info"),
    /** @type {HTMLButtonElement} */
    resetSubmit: $("#reset-submit"),
    /** @type {HTMLButtonElement} */
    resetBack: $("#reset-back"),
    /** @type {HTMLElement} */
    authError: $("#auth-error"),
    /** @type {HTMLButtonElement} */
    authSubmit: $("#auth-submit"),
    /** @type {HTMLButtonElement} */
    authSwitch: $("#auth-switch"),
    /** @type {HTMLElement} */
    authSwitchText: $("#auth-switch-text"),
    /** @type {HTMLElement} */
    loadingView: $("#loading-view"),
    /** @type {HTMLElement} */
    appView: $("#app-view"),
    /** @type {HTMLElement} */
    guildList: $("#guild-list"),
    /** @type {HTMLButtonElement} */
    dmHomeBtn: $("#dm-home-btn"),
    /** @type {HTMLElement} */
    memberPanel: $("#member-panel"),
    /** @type {HTMLElement} */
    memberList: $("#member-list"),
    /** @type {HTMLElement} */
    autocomplete: $("#autocomplete"),
    /** @type {HTMLButtonElement} */
    serverSettingsBtn: $("#server-settings-btn"),
    /** @type {HTMLDialogElement} */
    serverDialog: $("#server-dialog"),
    /** @type {HTMLElement} */
    serverTitle: $("#server-title"),
    /** @type {HTMLElement} */
    serverTabs: $("#server-tabs"),
    /** @type {HTMLElement} */
    serverResult: $("#server-result"),
    /** @type {HTMLButtonElement} */
    serverClose: $("#server-close"),
    /** @type {HTMLElement} */
    rolesList: $("#roles-list"),
    /** @type {HTMLFormElement} */
    roleForm: $("#role-form"),
    /** @type {HTMLInputElement} */
    roleName: $("#role-name"),
    /** @type {HTMLElement} */
    rolePerms: $("#role-perms"),
    permChannel: $("#perm-channel"),
    overwritesList: $("#overwrites-list"),
    overwriteForm: $("#overwrite-form"),
    overwriteTarget: $("#overwrite-target"),
    overwritePerms: $("#overwrite-perms"),
    overwriteRemove: $("#overwrite-remove"),
    /** @type {HTMLElement} */
    eventsList: $("#events-list"),
    /** @type {HTMLFormElement} */
    eventForm: $("#event-form"),
    /** @type {HTMLInputElement} */
    eventTitle: $("#event-title"),
    /** @type {HTMLInputElement} */
    eventStart: $("#event-start"),
    /** @type {HTMLElement} */
    insightsTitle: $("#insights-title"),
    /** @type {HTMLElement} */
    insightsList: $("#insights-list"),
    /** @type {HTMLFormElement} */
    insightsForm: $("#insights-form"),
    /** @type {HTMLInputElement} */
    insightsExcluded: $("#insights-excluded"),
    /** @type {HTMLElement} */
    botsList: $("#bots-list"),
    /** @type {HTMLFormElement} */
    botForm: $("#bot-form"),
    /** @type {HTMLInputElement} */
    botName: $("#bot-name"),
    /** @type {HTMLElement} */
    botTokenBox: $("#bot-token-box"),
    /** @type {HTMLElement} */
    botToken: $("#bot-token"),
    /** @type {HTMLElement} */
    webhooksTitle: $("#webhooks-title"),
    /** @type {HTMLElement} */
    webhooksList: $("#webhooks-list"),
    /** @type {HTMLFormElement} */
    webhookForm: $("#webhook-form"),
    /** @type {HTMLInputElement} */
    webhookName: $("#webhook-name"),
    /** @type {HTMLElement} */
    webhookUrlBox: $("#webhook-url-box"),
    /** @type {HTMLElement} */
    webhookUrl: $("#webhook-url"),
    /** @type {HTMLButtonElement} */
    settingsBtn: $("#settings-btn"),
    panelMicBtn: $("#panel-mic-btn"),
    panelDeafenBtn: $("#panel-deafen-btn"),
    /** @type {HTMLDialogElement} */
    settingsDialog: $("#settings-dialog"),
    /** @type {HTMLButtonElement} */
    settingsClose: $("#settings-close"),
    /** @type {HTMLFormElement} */
    profileForm: $("#profile-form"),
    /** @type {HTMLInputElement} */
    settingsName: $("#settings-name"),
    /** @type {HTMLInputElement} */
    avatarInput: $("#avatar-input"),
    /** @type {HTMLElement} */
    profileResult: $("#profile-result"),
    /** @type {HTMLFormElement} */
    emailForm: $("#email-form"),
    /** @type {HTMLInputElement} */
    settingsEmail: $("#settings-email"),
    /** @type {HTMLInputElement} */
    emailPassword: $("#email-password"),
    /** @type {HTMLElement} */
    emailResult: $("#email-result"),
    /** @type {HTMLFormElement} */
    passwordForm: $("#password-form"),
    /** @type {HTMLInputElement} */
    currentPassword: $("#current-password"),
    /** @type {HTMLInputElement} */
    newPassword: $("#new-password"),
    /** @type {HTMLElement} */
    passwordResult: $("#password-result"),
    /** @type {HTMLDialogElement} */
    groupDialog: $("#group-dialog"),
    /** @type {HTMLFormElement} */
    groupForm: $("#group-form"),
    /** @type {HTMLElement} */
    groupList: $("#group-list"),
    /** @type {HTMLElement} */
    groupCount: $("#group-count"),
    /** @type {HTMLInputElement} */
    groupName: $("#group-name"),
    /** @type {HTMLElement} */
    groupError: $("#group-error"),
    /** @type {HTMLButtonElement} */
    groupClose: $("#group-close"),
    /** @type {HTMLButtonElement} */
    groupCreate: $("#group-create"),
    /** @type {HTMLSelectElement} */
    inviteAge: $("#invite-age"),
    /** @type {HTMLSelectElement} */
    inviteUses: $("#invite-uses"),
    /** @type {HTMLElement} */
    inviteTerms: $("#invite-terms"),
    /** @type {HTMLElement} */
    profileCard: $("#profile-card"),
    /** @type {HTMLElement} */
    searchChips: $("#search-chips"),
    /** @type {HTMLButtonElement} */
    notifyBtn: $("#notify-btn"),
    /** @type {HTMLButtonElement} */
    membersBtn: $("#members-btn"),
    /** @type {HTMLElement} */
    notifyMenu: $("#notify-menu"),
    /** @type {HTMLElement} */
    threadPanel: $("#thread-panel"),
    /** @type {HTMLElement} */
    threadName: $("#thread-name"),
    /** @type {HTMLButtonElement} */
    threadClose: $("#thread-close"),
    /** @type {HTMLElement} */
    threadMessages: $("#thread-messages"),
    /** @type {HTMLFormElement} */
    threadForm: $("#thread-form"),
    /** @type {HTMLInputElement} */
    threadInput: $("#thread-input"),
    /** @type {HTMLElement} */
    emojiPicker: $("#emoji-picker"),
    /** @type {HTMLInputElement} */
    emojiSearch: $("#emoji-search"),
    /** @type {HTMLElement} */
    emojiGrid: $("#emoji-grid"),
    /** @type {HTMLButtonElement} */
    emojiBtn: $("#emoji-btn"),
    /** @type {HTMLElement} */
    friendsView: $("#friends-view"),
    /** @type {HTMLElement} */
    friendsTabs: $("#friends-tabs"),
    /** @type {HTMLElement} */
    friendsList: $("#friends-list"),
    /** @type {HTMLFormElement} */
    friendAddForm: $("#friend-add-form"),
    /** @type {HTMLInputElement} */
    friendAddInput: $("#friend-add-input"),
    /** @type {HTMLElement} */
    friendAddResult: $("#friend-add-result"),

    /** @type {HTMLButtonElement} */
    unreadBar: $("#unread-bar"),
    /** @type {HTMLElement} */
    unreadBarText: $("#unread-bar-text"),
    /** @type {HTMLElement} */
    notifyAsk: $("#notify-ask"),
    /** @type {HTMLButtonElement} */
    notifyEnable: $("#notify-enable"),
    /** @type {HTMLButtonElement} */
    notifyDismiss: $("#notify-dismiss"),
    /** @type {HTMLButtonElement} */
    statusBtn: $("#status-btn"),
    /** @type {HTMLElement} */
    myStatusDot: $("#my-status-dot"),
    /** @type {HTMLElement} */
    meCustomStatus: $("#me-custom-status"),
    /** @type {HTMLElement} */
    statusMenu: $("#status-menu"),
    /** @type {HTMLFormElement} */
    customStatusForm: $("#custom-status-form"),
    /** @type {HTMLInputElement} */
    customStatusInput: $("#custom-status-input"),
    /** @type {HTMLButtonElement} */
    customStatusClear: $("#custom-status-clear"),
    /** @type {HTMLFormElement} */
    searchForm: $("#search-form"),
    /** @type {HTMLInputElement} */
    searchInput: $("#search-input"),
    /** @type {HTMLElement} */
    searchPanel: $("#search-panel"),
    /** @type {HTMLElement} */
    searchStatus: $("#search-status"),
    /** @type {HTMLElement} */
    searchResults: $("#search-results"),
    /** @type {HTMLButtonElement} */
    searchMore: $("#search-more"),
    /** @type {HTMLButtonElement} */
    searchClose: $("#search-close"),
    /** @type {HTMLElement} */
    pendingList: $("#pending-attachments"),
    /** @type {HTMLButtonElement} */
    attachBtn: $("#attach-btn"),
    /** @type {HTMLInputElement} */
    fileInput: $("#file-input"),
    /** @type {HTMLButtonElement} */
    addGuildBtn: $("#add-guild-btn"),
    /** @type {HTMLElement} */
    guildName: $("#guild-name"),
    /** @type {HTMLButtonElement} */
    inviteBtn: $("#invite-btn"),
    /** @type {HTMLElement} */
    inviteBox: $("#invite-box"),
    /** @type {HTMLInputElement} */
    inviteCode: $("#invite-code"),
    /** @type {HTMLButtonElement} */
    inviteCopy: $("#invite-copy"),
    /** @type {HTMLAnchorElement} */
    inviteLink: $("#invite-link"),
    /** @type {HTMLButtonElement} */
    inviteClose: $("#invite-close"),
    /** @type {HTMLElement} */
    channelList: $("#channel-list"),
    /** @type {HTMLElement} */
    voicePanel: $("#voice-panel"),
    /** @type {HTMLElement} */
    voiceChannelName: $("#voice-channel-name"),
    /** @type {HTMLButtonElement} */
    voiceDisconnect: $("#voice-disconnect"),
    /** @type {HTMLElement} */
    meAvatar: $("#me-avatar"),
    /** @type {HTMLElement} */
    meName: $("#me-name"),
    /** @type {HTMLElement} */
    meUsername: $("#me-username"),
    /** @type {HTMLElement} */
    wsState: $("#ws-state"),
    /** @type {HTMLButtonElement} */
    logoutBtn: $("#logout-btn"),
    /** @type {HTMLElement} */
    channelTitle: $("#channel-title"),
    /** @type {HTMLElement} */
    chatError: $("#chat-error"),
    /** @type {HTMLElement} */
    emptyView: $("#empty-view"),
    /** @type {HTMLButtonElement} */
    emptyAddBtn: $("#empty-add-btn"),
    /** @type {HTMLElement} */
    textView: $("#text-view"),
    /** @type {HTMLElement} */
    scroller: $("#message-scroller"),
    /** @type {HTMLElement} */
    historyStatus: $("#history-status"),
    /** @type {HTMLElement} */
    messages: $("#messages"),
    /** @type {HTMLFormElement} */
    composer: $("#composer"),
    /** @type {HTMLTextAreaElement} */
    input: $("#message-input"),
    /** @type {HTMLElement} */
    replyBanner: $("#reply-banner"),
    /** @type {HTMLElement} */
    replyName: $("#reply-name"),
    /** @type {HTMLButtonElement} */
    replyCancel: $("#reply-cancel"),
    /** @type {HTMLElement} */
    typing: $("#typing"),
    /** @type {HTMLElement} */
    roomView: $("#room-view"),
    /** @type {HTMLDialogElement} */
    guildDialog: $("#guild-dialog"),
    /** @type {HTMLFormElement} */
    createGuildForm: $("#create-guild-form"),
    /** @type {HTMLInputElement} */
    newGuildName: $("#new-guild-name"),
    /** @type {HTMLFormElement} */
    joinGuildForm: $("#join-guild-form"),
    /** @type {HTMLInputElement} */
    inviteInput: $("#invite-input"),
    /** @type {HTMLElement} */
    guildDialogError: $("#guild-dialog-error"),
    /** @type {HTMLButtonElement} */
    guildDialogClose: $("#guild-dialog-close"),
    /** @type {HTMLDialogElement} */
    channelDialog: $("#channel-dialog"),
    /** @type {HTMLFormElement} */
    channelForm: $("#channel-form"),
    /** @type {HTMLSelectElement} */
    newChannelKind: $("#new-channel-kind"),
    /** @type {HTMLInputElement} */
    newChannelName: $("#new-channel-name"),
    /** @type {HTMLInputElement} */
    newChannelLimit: $("#new-channel-limit"),
    /** @type {HTMLElement} */
    userLimitField: $("#user-limit-field"),
    /** @type {HTMLElement} */
    channelDialogError: $("#channel-dialog-error"),
    /** @type {HTMLButtonElement} */
    channelDialogClose: $("#channel-dialog-close"),
  };
}
