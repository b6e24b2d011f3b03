// @ts-check
// Publishing: our microphone, camera and screen as tracks of the peer connection, muting
// them, and stopping them.

import { describeError } from "../shared/errors.js";
import { showError } from "./state.js";
import { render } from "./tiles.js";

/** @typedef {import("./state.js").Call} Call */
/** @typedef {import("./state.js").Pub} Pub */
/** @typedef {import("./session.js").Devices} Devices */

/** Simulcast layers of the camera, lowest first. */
const CAMERA_ENCODINGS = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "h", maxBitrate: 1_500_000 },
];

/**
 * Publishes the microphone and camera the token allows, in one offer.
 * @param {Call} call
 * @param {Devices} devices
 */
export async function publishDevices(call, devices) {
  if (devices.error) {
    showError(call, `Could not use your ${devices.mic ? "camera" : devices.cam ? "microphone" : "microphone or camera"}: ${describeError(devices.error)}`);
  }
  const pubs = [];
  if (devices.mic) {
    if (mayPublish(call, "audio")) pubs.push(newPub("microphone", devices.mic));
    else devices.mic.stop();
  }
  if (devices.cam) {
    if (mayPublish(call, "video")) pubs.push(newPub("camera", devices.cam));
    else devices.cam.stop();
  }
  await publish(call, pubs);
}

/**
 * @param {Call} call
 * @param {string} family
 */
export function mayPublish(call, family) {
  return call.grants?.publish?.includes(family) ?? true;
}

/**
 * @returns {Pub}
 * @param {string} source
 * @param {MediaStreamTrack} track
 * @param {MediaStream} [stream]
 */
function newPub(source, track, stream = new MediaStream([track])) {
  return {
    source,
    track,
    stream,
    transceiver: null,
    trackId: null,
    muted: !track.enabled,
    announcedMuted: !track.enabled,
    retired: false,
  };
}

/**
 * Adds the pubs' transceivers and offers them. Rejects if the server refuses.
 * @param {Call} call
 * @param {Pub[]} pubs
 */
export async function publish(call, pubs) {
  if (pubs.length === 0) return;
  for (const pub of pubs) call.local.set(pub.source, pub);
  render(call);
  const negotiator = call.negotiator;
  try {
    await negotiator.offer(() => {
      for (const pub of pubs) if (!pub.retired) attach(call, pub);
    });
  } catch (error) {
    if (negotiator !== call.negotiator) return;
    for (const pub of pubs) retire(call, pub);
    render(call);
    throw error;
  }
}

/**
 * @param {Call} call
 * @param {Pub} pub
 */
function attach(call, pub) {
  /** @type {RTCRtpTransceiverInit} */
  const init = { direction: "sendonly", streams: [pub.stream] };
  if (pub.source === "camera") init.sendEncodings = CAMERA_ENCODINGS.map((e) => ({ ...e }));
  if (pub.source === "screen") pub.track.contentHint = "detail";
  pub.transceiver = call.pc.addTransceiver(pub.track, init);
}

/**
 * Stops a pub's track and forgets it (its transceiver is stopped at the next offer).
 * @param {Call} call
 * @param {Pub} pub
 */
function retire(call, pub) {
  pub.retired = true;
  pub.track.onended = null;
  pub.track.stop();
  if (call.local.get(pub.source) === pub) call.local.delete(pub.source);
  if (pub.transceiver && !pub.transceiver.mid) {
    pub.transceiver.stop(); // never negotiated: nothing to tell the server
    pub.transceiver = null;
  }
}

/**
 * The PublishTrack list of a client offer: every m-line we send on.
 * @param {Call} call
 */
export function describePublished(call) {
  const tracks = [];
  for (const pub of call.local.values()) {
    const mid = pub.transceiver?.mid;
    if (pub.retired || mid == null || pub.transceiver.direction === "stopped") continue;
    /** @type {{mid: string, source: string, muted: boolean, pub: Pub, layers?: string[]}} */
    const track = { mid, source: pub.source, muted: pub.muted, pub };
    if (pub.source === "camera") track.layers = CAMERA_ENCODINGS.map((e) => e.rid);
    tracks.push(track);
  }
  return tracks;
}

/**
 * @param {Call} call
 * @param {string} source
 * @param {boolean} muted
 */
export function setMuted(call, source, muted) {
  const pub = call.local.get(source);
  if (!pub) return;
  pub.muted = muted;
  pub.track.enabled = !muted;
  if (pub.trackId) announceMute(call, pub);
  render(call);
}

/**
 * @param {Call} call
 * @param {Pub} pub
 */
export function announceMute(call, pub) {
  pub.announcedMuted = pub.muted;
  call.signal
    ?.request("mute", { track_id: pub.trackId, muted: pub.muted })
    .catch((error) => reportRequestError(call, "Could not change mute", error));
}

/**
 * @param {Call} call
 * @param {string} what
 * @param {any} error
 */
function reportRequestError(call, what, error) {
  if (error.code === "timeout" || error.code === "closed") {
    console.warn(`parlor: ${what}:`, error.message);
  } else {
    showError(call, `${what}: ${describeError(error)}`, error.code);
  }
}

/** @param {Call} call */
export async function startScreenShare(call) {
  if (call.local.has("screen") || call.pickingScreen) return;
  let stream;
  call.pickingScreen = true;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  } catch (error) {
    // NotAllowedError: the user closed the picker.
    if (error.name !== "NotAllowedError") showError(call, `Could not share your screen: ${describeError(error)}`);
    return;
  } finally {
    call.pickingScreen = false;
  }
  if (call.state !== "joined") {
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  const video = stream.getVideoTracks()[0];
  const audio = stream.getAudioTracks()[0];
  const pubs = [newPub("screen", video, stream)];
  if (audio) pubs.push(newPub("screen_audio", audio, stream));
  // The browser's own "Stop sharing" ends the video track.
  video.onended = () => stopScreenShare(call);
  try {
    await publish(call, pubs);
  } catch (error) {
    showError(call, `Could not share your screen: ${describeError(error)}`, error.code);
  }
}

/** @param {Call} call */
export async function stopScreenShare(call) {
  const pubs = ["screen", "screen_audio"].map((s) => call.local.get(s)).filter(Boolean);
  if (pubs.length === 0) return;
  for (const pub of pubs) retire(call, pub);
  render(call);
  try {
    await call.negotiator?.offer(() => {
      for (const pub of pubs) {
        if (pub.trackId) {
          call.signal
            .request("unpublish", { track_id: pub.trackId })
            .catch((error) => reportRequestError(call, "Could not stop sharing", error));
        }
        if (pub.transceiver) pub.transceiver.stop();
      }
    });
  } catch (error) {
    reportRequestError(call, "Could not stop sharing", error);
  }
}
