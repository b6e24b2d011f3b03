//! Who is speaking in a room: members' microphone levels, and the active speakers when
//! they change.

use std::time::Instant;

use super::{PeerKey, Room, SPEAKERS_INTERVAL};

impl Room {
    /// An audio level (RFC 6464, -dBov) from a member's microphone.
    pub fn on_audio_level(&mut self, now: Instant, owner: PeerKey, level_dbov: u8) {
        // A server-muted member is heard by nobody, so it is not speaking.
        if let Some(m) = self.members.get_mut(&owner).filter(|m| !m.grants.muted) {
            m.level.observe(now, level_dbov);
        }
    }

    /// Active speakers, loudest first, when the set changed since it was last reported.
    /// Evaluated at most every [`SPEAKERS_INTERVAL`].
    pub fn poll_speakers(&mut self, now: Instant) -> Option<Vec<(PeerKey, f32)>> {
        if self
            .last_speakers_check
            .is_some_and(|t| now.saturating_duration_since(t) < SPEAKERS_INTERVAL)
        {
            return None;
        }
        self.last_speakers_check = Some(now);
        let mut speaking: Vec<(PeerKey, f32)> = self
            .members
            .iter()
            .filter(|(_, m)| !m.hidden)
            .filter_map(|(k, m)| m.level.speaking(now).map(|l| (*k, l)))
            .collect();
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut keys: Vec<PeerKey> = speaking.iter().map(|s| s.0).collect();
        keys.sort();
        if keys == self.last_speakers {
            return None;
        }
        self.last_speakers = keys;
        Some(speaking)
    }
}
