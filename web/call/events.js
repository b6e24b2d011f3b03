// @ts-check
// Server events of the room: participants and tracks coming and going, mutes, speakers,
// server offers, and the server ending or disturbing our membership.

import { ParlorError } from "../shared/errors.js";
import { addParticipant, fail, forgetRemoteTrack, rejoinRoom, removeParticipant, restartSession, teardown } from "./session.js";
import { setState, setStatus, showError } from "./state.js";
import { render } from "./tiles.js";

/** @typedef {import("./state.js").Call} Call */

/**
 * Unsolicited errors that mean the server removed us from the room (protocol §5.8);
 * `moved`: the room's SFU node died or is draining, and joining again lands on another.
 */
const REMOVED_CODES = new Set(["replaced", "media_timeout", "media_error", "slow_consumer", "moved"]);

/**
 * A server frame that is not a reply to a request.
 * @param {Call} call
 * @param {any} frame
 */
export function onEvent(call, frame) {
  const d = frame.d ?? {};
  switch (frame.op) {
    case "offer":
      call.negotiator?.serverOffer(frame);
      break;
    case "participant_joined":
      addParticipant(call, d.participant);
      render(call);
      break;
    case "participant_left":
      removeParticipant(call, d.identity);
      render(call);
      break;
    case "track_published":
      if (d.track.participant !== call.identity) call.remoteTracks.set(d.track.track_id, { ...d.track });
      render(call);
      break;
    case "track_unpublished":
      forgetRemoteTrack(call, d.track_id);
      render(call);
      break;
    case "track_muted": {
      if (d.participant === call.identity) {
        // Our own track muted by the server: a moderator's server-mute (protocol §5.5).
        call.serverMuted = Boolean(d.muted);
        setStatus(call, d.muted ? "A moderator muted you" : "A moderator unmuted you");
      }
      const track = call.remoteTracks.get(d.track_id);
      if (track) track.muted = d.muted;
      render(call);
      break;
    }
    case "active_speakers":
      call.speakers = new Set((d.speakers ?? []).map((s) => s.identity));
      render(call);
      break;
    case "left":
      // The server ended our participation (kicked, or the room closed).
      teardown(call);
      setState(call, "left");
      break;
    case "shutdown":
      // On a cluster, a draining signaling node says `moved`: the same address reaches
      // another node, so start a new session there at once.
      if (d.reason === "moved") restartSession(call, new ParlorError("moved", "The signaling node is restarting."));
      else fail(call, new ParlorError("shutdown", `The server is shutting down${d.reason ? ` (${d.reason})` : ""}. Try joining again in a moment.`));
      break;
    case "error":
      if (d.code === "removed") {
        // A moderator took us out (disconnected, or moved elsewhere: the page follows).
        teardown(call);
        setState(call, "left");
        showError(call, "A moderator removed you from the call.", d.code);
      } else if (d.code === "replaced") {
        // Another tab or device joined as us. Rejoining would only replace it in turn.
        teardown(call);
        setState(call, "left");
        showError(call, "You joined this room from somewhere else, so this page left.", d.code);
      } else if (REMOVED_CODES.has(d.code)) {
        rejoinRoom(call, d);
      } else {
        console.warn("parlor: server error:", d.code, d.message);
        if (d.code !== "rate_limited") showError(call, d.message || d.code, d.code);
      }
      break;
    default:
      console.debug("parlor: unhandled frame", frame.op);
  }
}
