// @ts-check
// Parlor rooms: the media side of the web app, shared by the guest room page (app.js) and
// the chat app's voice channels (chat.js).
//
// One WebSocket to /ws carries the signaling protocol (call/signal.js); one
// RTCPeerConnection carries every track, both ways (call/negotiator.js). The page provides
// the room view's elements (ids in call/state.js), makes its call with `startCall` and joins
// with `joinRoom`, giving a room token and the signaling URL it is good for.
// `window.parlor` is the test handle.

import { queryAll } from "../shared/dom.js";
import { setMuted, startScreenShare, stopScreenShare } from "./publish.js";
import { leave } from "./session.js";
import { callElements, createCall, setState } from "./state.js";
import { wireViewing } from "./viewing.js";

export { clearError, configureCall } from "./state.js";
export { defaultSignalingUrl, fetchGuestToken, joinRoom, leave } from "./session.js";
export { setMuted } from "./publish.js";
export { toggleDeafen } from "./viewing.js";

/** @typedef {import("./state.js").Call} Call */
/** @typedef {ReturnType<typeof parlorHandle>} ParlorHandle */

/**
 * The page's call, shown in the room view's elements, with its controls wired and
 * `window.parlor` installed. Call it once per page; `configureCall` adds the page's hooks.
 * @returns {Call}
 */
export function startCall() {
  const call = createCall(callElements());
  window.parlor = parlorHandle(call);
  wireControls(call);
  setState(call, "idle");
  return call;
}

/**
 * The call controls, and leaving when the page goes away.
 * @param {Call} call
 */
function wireControls(call) {
  call.ui.micBtn.addEventListener("click", () => setMuted(call, "microphone", !call.local.get("microphone")?.muted));
  call.ui.camBtn.addEventListener("click", () => setMuted(call, "camera", !call.local.get("camera")?.muted));
  call.ui.screenBtn.addEventListener("click", () => (call.local.has("screen") ? stopScreenShare(call) : startScreenShare(call)));
  call.ui.leaveBtn.addEventListener("click", () => leave(call));
  wireViewing(call);
  // Closing the tab leaves at once instead of waiting for the server to notice.
  addEventListener("pagehide", () => {
    if (call.state !== "joined") return;
    call.signal?.sendNow("leave", {});
    call.signal?.close();
  });
}

/**
 * `window.parlor`, the test and debugging handle (tests/browser/README.md).
 * @param {Call} call
 */
function parlorHandle(call) {
  return {
    get state() {
      return call.state;
    },
    get pc() {
      return call.pc;
    },
    get identity() {
      return call.identity;
    },
    get name() {
      return call.name;
    },
    get room() {
      return call.room;
    },
    /** The signaling WebSocket of the current room. */
    get url() {
      return call.url;
    },
    get sessionId() {
      return call.sessionId;
    },
    get signal() {
      return call.signal;
    },
    /** Every known track, ours and others': track_id -> TrackInfo (ours with `local: true`). */
    get tracks() {
      /** @type {Record<string, any>} */
      const tracks = {};
      for (const pub of call.local.values()) {
        if (!pub.trackId) continue;
        tracks[pub.trackId] = {
          track_id: pub.trackId,
          participant: call.identity,
          kind: pub.track.kind,
          source: pub.source,
          muted: pub.muted,
          local: true,
        };
      }
      for (const [id, info] of call.remoteTracks) tracks[id] = { ...info, local: false };
      return tracks;
    },
    /** Everyone else in the room. */
    get participants() {
      return [...call.participants.values()].map((p) => ({ ...p }));
    },
    get speakers() {
      return [...call.speakers];
    },
    /** The server's m-lines that carry a track to us: [{mid, track_id, participant, source, kind}]. */
    receiving() {
      const list = [];
      for (const [mid, trackId] of call.remoteMids) {
        const info = call.remoteTracks.get(trackId);
        list.push({
          mid,
          track_id: trackId,
          participant: info?.participant ?? null,
          source: info?.source ?? null,
          kind: info?.kind ?? null,
        });
      }
      return list;
    },
    /** The remote tiles now in the page. */
    remoteTiles() {
      return queryAll(call.ui.tiles, ".tile:not([data-local])").map((el) => ({
        identity: el.dataset.identity,
        source: el.dataset.source,
      }));
    },
    /** Every tile and how it is shown: {key, identity, source, trackId, stage, stopped, width, height}. */
    tiles() {
      return queryAll(call.ui.tiles, ".tile").map((el) => {
        const r = el.getBoundingClientRect();
        return {
          key: el.dataset.key,
          identity: el.dataset.identity,
          source: el.dataset.source,
          trackId: el.dataset.trackId ?? null,
          stage: el.classList.contains("stage"),
          stopped: el.classList.contains("stopped"),
          width: Math.round(r.width),
          height: Math.round(r.height),
        };
      });
    },
    get deafened() {
      return call.deafened;
    },
    /** Each remote audio element's state: {trackId, muted, volume}. */
    audio() {
      return [...call.audios].map(([trackId, a]) => ({ trackId, muted: a.muted, volume: a.volume }));
    },
    leave: () => leave(call),
  };
}
