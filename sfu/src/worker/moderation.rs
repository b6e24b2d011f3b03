//! A moderator's actions on a participant connected to this worker: server-mute and
//! removal (the room admin API).

use super::*;
use crate::core::Origin;

impl Worker {
    /// Applies a moderator's action to `identity` in `room`. The mute is remembered for
    /// the identity while the room is open here, so a rejoin with a token minted before
    /// it does not undo it; a participant not connected here is unknown (in a cluster,
    /// another node may have it).
    pub(super) fn moderate(
        &mut self,
        room: &RoomId,
        identity: &ParticipantId,
        action: Moderation,
    ) -> Result<(), SfuError> {
        let unknown = || SfuError::UnknownParticipant(identity.to_string());
        let r = self.rooms.get_mut(room).ok_or_else(unknown)?;
        if let Moderation::Mute(muted) = action {
            r.server_muted.insert(identity.clone(), muted);
        }
        let k = r
            .core
            .members()
            .find(|(_, m)| &m.identity == identity && m.origin == Origin::Local)
            .map(|(k, _)| k)
            .ok_or_else(unknown)?;
        match action {
            Moderation::Remove => {
                info!(room = %room, identity = %identity, "removed by a moderator");
                self.remove_peer(k, CloseReason::Removed, true);
            }
            Moderation::Mute(muted) => {
                let changed = r.core.set_server_muted(k, muted);
                info!(room = %room, identity = %identity, muted, "server mute");
                for (t, muted) in changed {
                    let Some(track_id) = self
                        .rooms
                        .get(room)
                        .and_then(|r| r.core.track(t))
                        .map(|t| t.id.clone())
                    else {
                        continue;
                    };
                    let ev = RoomEvent::TrackMuted {
                        track_id,
                        participant: identity.clone(),
                        muted,
                    };
                    // Everyone, the participant itself included: its own track muted by
                    // the server is how it learns of the mute. Other nodes mirror it.
                    self.tell_pipes(room, k, &ev);
                    self.broadcast(room, None, ev);
                }
            }
        }
        Ok(())
    }
}
