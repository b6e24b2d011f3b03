//! A moderator's server-mute: a member's microphone stays published, but nothing of it is
//! forwarded and the room is told it is muted until the mute is lifted.

use parlor_proto::Source;

use super::{PeerKey, Room, TrackKey};

impl Room {
    /// Server-mutes (or unmutes) a member: its microphone tracks, now and as they are
    /// published, are silenced. Returns the tracks whose mute as the room is told
    /// ([`super::Track::is_muted`]) changed, with the new value.
    pub fn set_server_muted(&mut self, key: PeerKey, muted: bool) -> Vec<(TrackKey, bool)> {
        let Some(m) = self.members.get_mut(&key) else {
            return Vec::new();
        };
        m.grants.muted = muted;
        let mut changed = Vec::new();
        for k in m.tracks.clone() {
            let Some(t) = self.tracks.get_mut(&k) else {
                continue;
            };
            if t.source != Source::Microphone {
                continue;
            }
            let before = t.is_muted();
            t.silenced = muted;
            if before != t.is_muted() {
                changed.push((k, t.is_muted()));
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use parlor_proto::{Grants, ParticipantId, Source};

    use crate::core::{Action, CapsConfig, PacketIn, PeerKey, Room};

    const SPEAKER: PeerKey = PeerKey(1);
    const LISTENER: PeerKey = PeerKey(2);

    fn room_with_speaker(grants: Grants) -> Room {
        let mut room = Room::new(CapsConfig::default(), 0);
        let id = |s: &str| ParticipantId::parse(s).unwrap();
        room.admit(SPEAKER, id("speaker"), "speaker".into(), grants, false)
            .unwrap();
        room.admit(
            LISTENER,
            id("listener"),
            "listener".into(),
            Grants::default(),
            false,
        )
        .unwrap();
        room
    }

    fn packet(seq: u64) -> PacketIn {
        PacketIn {
            seq,
            ts: seq as u32 * 960,
            len: 100,
            keyframe: true,
        }
    }

    /// Forwards one packet of `track` and counts what the core forwards.
    fn forwarded(room: &mut Room, track: crate::core::TrackKey, seq: u64) -> usize {
        let mut out = Vec::new();
        room.on_rtp(Instant::now(), track, 0, packet(seq), &mut out);
        out.iter()
            .filter(|a| matches!(a, Action::Forward(_)))
            .count()
    }

    #[test]
    fn a_server_muted_microphone_forwards_nothing_until_the_mute_is_lifted() {
        let mut room = room_with_speaker(Grants::default());
        let mic = room
            .publish(SPEAKER, Source::Microphone, Vec::new(), false)
            .unwrap();
        let cam = room
            .publish(SPEAKER, Source::Camera, Vec::new(), false)
            .unwrap();
        for t in [mic, cam] {
            room.subscribe(LISTENER, t).unwrap();
            room.downtrack_ready(Instant::now(), LISTENER, t, t.0, &mut Vec::new());
        }
        assert_eq!(forwarded(&mut room, mic, 1), 1);

        assert_eq!(room.set_server_muted(SPEAKER, true), vec![(mic, true)]);
        assert_eq!(forwarded(&mut room, mic, 2), 0);
        // The camera is not the microphone.
        assert_eq!(forwarded(&mut room, cam, 2), 1);
        // The publisher's own unmute changes nothing the room sees.
        assert!(!room.set_muted(mic, false));
        assert!(room.track(mic).unwrap().is_muted());

        assert_eq!(room.set_server_muted(SPEAKER, false), vec![(mic, false)]);
        assert_eq!(forwarded(&mut room, mic, 3), 1);
    }

    #[test]
    fn a_member_who_joins_server_muted_publishes_a_silenced_microphone() {
        let mut room = room_with_speaker(Grants {
            muted: true,
            ..Grants::default()
        });
        let mic = room
            .publish(SPEAKER, Source::Microphone, Vec::new(), false)
            .unwrap();
        room.subscribe(LISTENER, mic).unwrap();
        room.downtrack_ready(Instant::now(), LISTENER, mic, 0, &mut Vec::new());
        assert!(room.track(mic).unwrap().is_muted());
        assert_eq!(forwarded(&mut room, mic, 1), 0);
        // Muted by its publisher too: lifting the server mute leaves it muted.
        assert!(!room.set_muted(mic, true));
        assert!(room.set_server_muted(SPEAKER, false).is_empty());
        assert!(room.track(mic).unwrap().is_muted());
        assert!(room.set_muted(mic, false));
        assert_eq!(forwarded(&mut room, mic, 2), 1);
    }
}
