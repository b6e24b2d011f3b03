// @ts-check
// A call's state: the room joined (or being joined), its connection and peer connection,
// the other participants and their tracks, our published tracks and the elements that show
// them. One `Call` is made per page (call/room.js) and passed to every call function.

import { $ } from "../shared/dom.js";
import { mountRoomView } from "./markup.js";
import { clearErrorIn, showErrorIn } from "../shared/errors.js";
import { render } from "./tiles.js";

/** @typedef {import("./signal.js").Signal} Signal */
/** @typedef {import("./negotiator.js").Negotiator} Negotiator */

/**
 * A local track and how it is published.
 * @typedef {{source: string, track: MediaStreamTrack, stream: MediaStream,
 *   transceiver: RTCRtpTransceiver|null, trackId: string|null, muted: boolean,
 *   announcedMuted: boolean, retired: boolean}} Pub
 */

/**
 * Another participant's track, as the server describes it (protocol TrackInfo).
 * @typedef {{track_id: string, participant: string, kind: string, source: string,
 *   muted?: boolean} & Record<string, any>} TrackInfo
 */

/**
 * What the page does around the room: `onState(state)` after every state change (to show
 * or hide its views), `onRender()` after the tiles were brought up to date.
 * @typedef {{onState: (state: string) => void, onRender: () => void}} CallHooks
 */

/** @typedef {ReturnType<typeof callElements>} CallUi */
/** @typedef {ReturnType<typeof createCall>} Call */

/** The room view's elements, built into the page's empty #room-view (markup.js). */
export function callElements() {
  mountRoomView($("#room-view"));
  return {
    /** @type {HTMLElement} */
    error: $("#error"),
    /** @type {HTMLElement} */
    status: $("#status"),
    /** @type {HTMLElement} */
    tiles: $("#tiles"),
    /** @type {HTMLElement} */
    audioSink: $("#audio-sink"),
    /** @type {HTMLButtonElement} */
    micBtn: $("#mic-btn"),
    /** @type {HTMLButtonElement} */
    camBtn: $("#cam-btn"),
    /** @type {HTMLButtonElement} */
    screenBtn: $("#screen-btn"),
    /** @type {HTMLButtonElement} */
    leaveBtn: $("#leave-btn"),
    /** @type {HTMLButtonElement} */
    deafenBtn: $("#deafen-btn"),
    /** @type {HTMLButtonElement} */
    devicesBtn: $("#devices-btn"),
    /** @type {HTMLElement} */
    devicesPanel: $("#devices-panel"),
    /** @type {HTMLSelectElement} */
    micSelect: $("#mic-select"),
    /** @type {HTMLSelectElement} */
    camSelect: $("#cam-select"),
    /** @type {HTMLSelectElement} */
    speakerSelect: $("#speaker-select"),
  };
}

/**
 * A call that has joined nothing yet, shown in `ui`.
 * @param {CallUi} ui
 */
export function createCall(ui) {
  return {
    ui,
    /** @type {CallHooks} */
    hooks: { onState() {}, onRender() {} },
    /** @type {string} "idle" | "joining" | "joined" | "left" | "error" */
    state: "idle",
    /** @type {string | null} The signaling WebSocket of the current room. */
    url: null,
    /** @type {string | null} The token the current session identified with. */
    sessionToken: null,
    /**
     * Gets a fresh token when the current one expired before a lost session could be started
     * again: `({room, name}) => Promise<{token, url?}>`, or null if it can't be renewed.
     * @type {((current: {room: string, name: string}) => Promise<{token: string, url?: string}>) | null}
     */
    renew: null,
    /** A lost session is being joined again. */
    restarting: false,
    /** Counts joins and leaves: a join that finds it changed was overtaken and gives up. */
    joinAttempt: 0,
    /** @type {Signal | null} */
    signal: null,
    /** @type {RTCPeerConnection | null} */
    pc: null,
    /** @type {Negotiator | null} */
    negotiator: null,
    /** @type {string | null} */
    identity: null,
    /** @type {string | null} */
    name: null,
    /** @type {string | null} */
    room: null,
    /** @type {string | null} */
    sessionId: null,
    /** @type {{publish?: string[], subscribe?: boolean} | null} */
    grants: null,
    /** @type {Map<string, {identity: string, name: string}>} Everyone else in the room: identity -> {identity, name}. */
    participants: new Map(),
    /** @type {Map<string, TrackInfo>} Other participants' tracks: track_id -> TrackInfo. */
    remoteTracks: new Map(),
    /** @type {Map<string, string>} Which of the server's m-lines carries which track: mid -> track_id. */
    remoteMids: new Map(),
    /** @type {Map<string, Pub>} Our published tracks: source -> Pub. */
    local: new Map(),
    /** @type {Set<string>} */
    speakers: new Set(),
    /** The screen picker is open. */
    pickingScreen: false,
    /** @type {Map<string, HTMLElement & {videoTrack?: MediaStreamTrack | null}>} Tile elements by key ("<identity>|camera", "screen|<track_id>", ...). */
    tiles: new Map(),
    /** @type {Map<string, HTMLAudioElement>} <audio> elements by track_id. */
    audios: new Map(),
    /** @type {string | null} The tile shown large (its key), by the user's choice. */
    focus: null,
    /** @type {Set<string>} Video tracks we stopped watching (paused at the server). */
    stopped: new Set(),
    /** @type {Map<string, number>} Volume per participant, 0–1 (absent: 1). */
    volumes: new Map(),
    /** We hear nothing (and our microphone is muted). */
    deafened: false,
    /** A moderator server-muted our microphone: nobody hears it until they lift it. */
    serverMuted: false,
    /** The microphone was muted before deafening: undeafening leaves it so. */
    mutedBeforeDeafen: false,
    /** The audio output chosen ("" for the default). */
    speakerId: "",
  };
}

/**
 * Sets the page's hooks, and runs `onState` at once with the current state.
 * @param {Call} call
 * @param {Partial<CallHooks>} pageHooks
 */
export function configureCall(call, pageHooks) {
  call.hooks = { ...call.hooks, ...pageHooks };
  setState(call, call.state);
}

/**
 * @param {Call} call
 * @param {string} state
 */
export function setState(call, state) {
  call.state = state;
  if (state !== "joined" && state !== "joining") {
    // A new call starts with everything in view and audible.
    call.focus = null;
    call.stopped.clear();
    call.deafened = false;
    call.serverMuted = false;
    call.ui.devicesPanel.hidden = true;
  }
  call.hooks.onState(state);
  setStatus(call, { joining: "Connecting…", joined: "Connected", left: "You left the room" }[state] ?? "");
  render(call);
}

/**
 * @param {Call} call
 * @param {string} text
 */
export function setStatus(call, text) {
  call.ui.status.textContent = text;
}

/**
 * @param {Call} call
 * @param {string} message
 * @param {string | null} [code]
 */
export function showError(call, message, code) {
  showErrorIn(call.ui.error, message, code);
}

/** @param {Call} call */
export function clearError(call) {
  clearErrorIn(call.ui.error);
}
