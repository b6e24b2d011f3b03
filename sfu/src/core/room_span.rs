//! A room that spans SFU nodes, in its core: pipes to other nodes and the participants
//! mirrored from them ([`Origin`]).

use super::*;

impl Room {
    /// Adds a pipe to another node ([`Origin::Pipe`]): hidden, outside the caps, and
    /// subscribed to every local track.
    pub fn admit_pipe(&mut self, key: PeerKey, identity: ParticipantId) {
        let grants = Grants {
            publish: Vec::new(),
            subscribe: true,
            admin: false,
            muted: false,
        };
        let member = Member::new(identity, String::new(), grants, true, Origin::Pipe);
        self.members.insert(key, member);
    }

    /// Adds a participant of another node, beyond the caps (its own node counted it).
    pub fn admit_remote(&mut self, key: PeerKey, identity: ParticipantId, name: String) {
        let grants = Grants {
            subscribe: false,
            ..Grants::default()
        };
        let member = Member::new(identity, name, grants, false, Origin::Remote);
        self.members.insert(key, member);
    }

    /// Whether a pipe member may carry a track: only tracks of this node's participants.
    pub(super) fn pipe_carries(&self, sub: PeerKey, track: &Track) -> bool {
        let is_pipe = self
            .members
            .get(&sub)
            .is_some_and(|m| m.origin == Origin::Pipe);
        !is_pipe
            || self
                .members
                .get(&track.owner)
                .is_some_and(|m| m.origin == Origin::Local)
    }

    /// Publishes a remote member's track (its node checked grants and caps), with the
    /// simulcast layers its node announced.
    pub fn publish_remote(
        &mut self,
        owner: PeerKey,
        source: Source,
        muted: bool,
        rids: Vec<String>,
    ) -> Option<TrackKey> {
        self.add_track(owner, source, muted, rids)
    }
}
