// @ts-check
// Joining and leaving a room: the session on the signaling connection, the peer connection,
// the participants, and joining again when the session or the membership is lost.

import { ParlorError, describeError } from "../shared/errors.js";
import { requestJson } from "../shared/http.js";
import { socketUrl } from "../shared/socket.js";
import { onEvent } from "./events.js";
import { Negotiator } from "./negotiator.js";
import { announceMute, describePublished, publish, publishDevices } from "./publish.js";
import { Signal } from "./signal.js";
import { clearError, setState, setStatus, showError } from "./state.js";
import { render } from "./tiles.js";

/** @typedef {import("./state.js").Call} Call */
/** @typedef {import("./state.js").Pub} Pub */
/**
 * What a room is joined with: a room token, the signaling WebSocket it is good for, and how
 * to renew it (see `Call.renew`).
 * @typedef {{token: string, url?: string | null, renew?: Call["renew"]}} Credentials
 */
/** @typedef {{mic: MediaStreamTrack | null, cam: MediaStreamTrack | null, error: any}} Devices */

/** The signaling WebSocket of the server that served the page. */
export function defaultSignalingUrl() {
  return socketUrl("/ws");
}

/**
 * A guest token from the server that served the page (when it hands them out).
 * @param {string} room
 * @param {string} name
 * @returns {Promise<string>}
 */
export async function fetchGuestToken(room, name) {
  const body = await requestJson("POST", "/api/guest-token", { room, name }, {
    refused: (status) => `The server refused to let you in (HTTP ${status}).`,
  });
  if (!body?.token) throw new ParlorError("bad_response", "The server sent no token.");
  return body.token;
}

/**
 * Microphone and camera, whichever can be had.
 * @returns {Promise<Devices>}
 */
async function openDevices() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const attempts = [{ audio, video }, { audio }, { video }];
  let lastError = null;
  for (const constraints of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      return {
        mic: stream.getAudioTracks()[0] ?? null,
        cam: stream.getVideoTracks()[0] ?? null,
        error: constraints.audio && constraints.video ? null : lastError,
      };
    } catch (error) {
      lastError = error;
    }
  }
  return { mic: null, cam: null, error: lastError };
}

/**
 * Joins a room with the microphone and camera. `credentials` is `{token, url, renew}` or a
 * promise of it, so that fetching the token and opening the devices run side by side:
 * `token` is a room token, `url` the signaling WebSocket it is good for (the page's own
 * server by default) and `renew` what `call.renew` says. `onJoined` runs once in the room,
 * before the devices are published. Failures end in the "error" state with the message
 * shown; the returned promise resolves either way.
 * @param {Call} call
 * @param {Credentials | Promise<Credentials>} credentials
 * @param {{onJoined?: () => void}} [options]
 */
export async function joinRoom(call, credentials, { onJoined } = {}) {
  if (call.state === "joining" || call.state === "joined") return;
  const attempt = ++call.joinAttempt;
  const overtaken = () => attempt !== call.joinAttempt;
  clearError(call);
  setState(call, "joining");

  const [creds, devices] = await Promise.allSettled([
    credentials,
    navigator.mediaDevices ? openDevices() : Promise.resolve(/** @type {Devices} */ ({ mic: null, cam: null, error: null })),
  ]);
  // Opening the devices never rejects.
  const opened = devices.status === "fulfilled" ? devices.value : undefined;
  // (The cast keeps tsc from narrowing `call.state`, which the awaits below change.)
  if (overtaken() || /** @type {string} */ (call.state) !== "joining") {
    // Left (or left and joined elsewhere) while the token was on its way.
    stopDevices(opened);
    return;
  }
  if (creds.status === "rejected") {
    stopDevices(opened);
    fail(call, creds.reason);
    return;
  }
  call.url = creds.value.url || defaultSignalingUrl();
  call.renew = creds.value.renew ?? null;
  try {
    await startSession(call, creds.value.token);
  } catch (error) {
    stopDevices(opened);
    if (!overtaken()) fail(call, error);
    return;
  }
  if (overtaken() || call.state !== "joined") {
    stopDevices(opened);
    return;
  }
  onJoined?.();
  try {
    await publishDevices(call, opened);
  } catch (error) {
    // Still in the room, just not heard or seen.
    if (call.state === "joined") {
      showError(call, `Could not publish your microphone and camera: ${describeError(error)}`, error.code);
    }
  }
}

/** @param {Devices | undefined} devices */
function stopDevices(devices) {
  devices?.mic?.stop();
  devices?.cam?.stop();
}

/**
 * Connects, identifies and joins; on return the page is in the room.
 * @param {Call} call
 * @param {string} token
 */
async function startSession(call, token) {
  const signal = new Signal(call.url ?? defaultSignalingUrl(), {
    onEvent: (frame) => onEvent(call, frame),
    onReconnecting: () => setStatus(call, "Reconnecting…"),
    onResumed: () => setStatus(call, "Connected"),
    onExpired: (error) => {
      if (signal === call.signal) restartSession(call, error);
    },
  });
  call.signal = signal;
  call.sessionToken = token;
  await signal.connect();
  const ready = await signal.identify(token);
  if (signal !== call.signal) return;
  call.sessionId = ready.session_id;
  call.identity = ready.identity;
  call.name = ready.name;
  call.room = ready.room;
  call.grants = ready.grants ?? { publish: ["audio", "video", "screen"], subscribe: true };
  createPeerConnection(call, signal);
  const joined = await signal.request("join", {});
  if (signal !== call.signal) return;
  applyJoined(call, joined.d);
  setState(call, "joined");
}

/**
 * @param {Call} call
 * @param {Signal} signal
 */
function createPeerConnection(call, signal) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  call.pc = pc;
  call.negotiator = new Negotiator(pc, signal, {
    describe: () => describePublished(call),
    onPublished(pub, trackId) {
      pub.trackId = trackId;
      if (pub.muted !== pub.announcedMuted) announceMute(call, pub);
    },
    onServerTracks(tracks) {
      // Every m-line the server sends on, not only new ones.
      call.remoteMids = new Map(tracks.map((t) => [t.mid, t.track_id]));
    },
    onChanged: () => render(call),
    onError: (message) => showError(call, message),
  });
  pc.ontrack = () => render(call);
  pc.onconnectionstatechange = () => {
    if (pc !== call.pc) return;
    if (pc.connectionState === "failed") {
      setStatus(call, "Media connection lost, restarting…");
      signal.request("ice_restart", {}).catch((error) => console.warn("parlor: ice_restart", error));
    } else if (pc.connectionState === "connected") {
      setStatus(call, "Connected");
    }
  };
}

/**
 * @param {Call} call
 * @param {any} d the `joined` frame's
 */
function applyJoined(call, d) {
  // Merged, not replaced: room events may arrive just before `joined`.
  for (const participant of d.participants ?? []) addParticipant(call, participant);
  render(call);
}

/**
 * @param {Call} call
 * @param {any} info the server's ParticipantInfo
 */
export function addParticipant(call, info) {
  if (info.identity === call.identity) return;
  call.participants.set(info.identity, { identity: info.identity, name: info.name || info.identity });
  for (const track of info.tracks ?? []) call.remoteTracks.set(track.track_id, { ...track });
}

/**
 * @param {Call} call
 * @param {string} identity
 */
export function removeParticipant(call, identity) {
  call.participants.delete(identity);
  for (const [trackId, track] of call.remoteTracks) {
    if (track.participant === identity) forgetRemoteTrack(call, trackId);
  }
  call.speakers.delete(identity);
}

/**
 * @param {Call} call
 * @param {string} trackId
 */
export function forgetRemoteTrack(call, trackId) {
  call.remoteTracks.delete(trackId);
  for (const [mid, id] of call.remoteMids) if (id === trackId) call.remoteMids.delete(mid);
}

/**
 * Leaves the room on purpose.
 * @param {Call} call
 */
export async function leave(call) {
  if (call.state !== "joined" && call.state !== "joining") return;
  call.joinAttempt += 1;
  const signal = call.signal;
  call.signal = null; // its events are no longer ours
  const acknowledged = signal?.request("leave", {}, { timeout: 1_000 }).catch(() => {});
  teardown(call);
  setState(call, "left");
  await acknowledged;
  signal?.close();
}

/**
 * Ends the session because of an error.
 * @param {Call} call
 * @param {any} error
 */
export function fail(call, error) {
  console.error("parlor:", error);
  teardown(call);
  setState(call, "error");
  showError(call, describeError(error), error?.code);
}

/**
 * Ends the membership: closes the connection (unless `keepSignal`) and the peer connection,
 * and forgets the room. With `keepDevices` our tracks stay live and are returned, ready to
 * be published on a new peer connection; otherwise they are stopped.
 * @param {Call} call
 * @param {{keepDevices?: boolean, keepSignal?: boolean}} [options]
 * @returns {Pub[]}
 */
export function teardown(call, { keepDevices = false, keepSignal = false } = {}) {
  if (!keepSignal) {
    call.signal?.close();
    call.signal = null;
  }
  call.negotiator?.close();
  call.negotiator = null;
  call.pc?.close();
  call.pc = null;
  const pubs = [...call.local.values()];
  call.local.clear();
  for (const pub of pubs) {
    if (keepDevices) {
      Object.assign(pub, { transceiver: null, trackId: null, announcedMuted: pub.muted });
    } else {
      pub.track.onended = null;
      pub.track.stop();
    }
  }
  call.participants.clear();
  call.remoteTracks.clear();
  call.remoteMids.clear();
  call.speakers.clear();
  render(call);
  return keepDevices ? pubs : [];
}

/**
 * The session expired (or the socket could not be resumed in time): joins again from
 * scratch on a new connection and peer connection, and publishes the same tracks again.
 * @param {Call} call
 * @param {any} reason
 */
export async function restartSession(call, reason) {
  if (call.state !== "joined" || call.restarting) return;
  call.restarting = true;
  console.warn("parlor: session lost, joining again:", reason?.message);
  const pubs = teardown(call, { keepDevices: true });
  setStatus(call, "Reconnecting…");
  try {
    try {
      await startSession(call, call.sessionToken);
    } catch (error) {
      // The token may have expired meanwhile; renew it if the page can (a guest token, a
      // voice channel's), not if it can't (a link's).
      if (!call.renew || error.code !== "token_expired") throw error;
      const fresh = await call.renew({ room: call.room, name: call.name });
      if (fresh.url) call.url = fresh.url;
      await startSession(call, fresh.token);
    }
  } catch (error) {
    for (const pub of pubs) pub.track.stop();
    fail(call, error);
    return;
  } finally {
    call.restarting = false;
  }
  republish(call, pubs);
}

/**
 * The server removed us from the room (media_timeout, media_error, slow_consumer, moved) but the
 * session lives on: joins again on it with a new peer connection and publishes again.
 * @param {Call} call
 * @param {{code: string}} error the server's `error` frame's `d`
 */
export async function rejoinRoom(call, error) {
  if (call.state !== "joined" || call.restarting) return;
  call.restarting = true;
  console.warn(`parlor: removed from the room (${error.code}), joining again`);
  const signal = call.signal;
  const pubs = teardown(call, { keepDevices: true, keepSignal: true });
  setStatus(call, "Reconnecting…");
  try {
    createPeerConnection(call, signal);
    const joined = await signal.request("join", {});
    if (signal === call.signal) {
      applyJoined(call, joined.d);
      setStatus(call, "Connected");
    }
  } catch (joinError) {
    for (const pub of pubs) pub.track.stop();
    fail(call, joinError);
    return;
  } finally {
    call.restarting = false;
  }
  republish(call, pubs);
}

/**
 * Publishes tracks kept from an earlier membership, unless the page left meanwhile.
 * @param {Call} call
 * @param {Pub[]} pubs
 */
function republish(call, pubs) {
  if (call.state !== "joined" || !call.negotiator) {
    for (const pub of pubs) pub.track.stop();
    return;
  }
  publish(call, pubs).catch((error) => {
    if (call.state === "joined") showError(call, `Could not publish again: ${describeError(error)}`, error.code);
  });
}
