//! Publishing in a room: grants and caps, simulcast layers, unpublishing, mute and codec.

use super::*;

impl Room {
    /// Checks a video track's simulcast layers: at most [`MAX_LAYERS`].
    pub fn check_layers(rids: &[String]) -> Result<(), PublishError> {
        if rids.len() > MAX_LAYERS {
            return Err(PublishError::TooManyLayers(MAX_LAYERS));
        }
        Ok(())
    }

    /// Publishes a track after checking the member's grants and the room's caps.
    pub fn publish(
        &mut self,
        owner: PeerKey,
        source: Source,
        rids: Vec<String>,
        muted: bool,
    ) -> Result<TrackKey, PublishError> {
        let m = self.members.get(&owner).ok_or(PublishError::NotJoined)?;
        if !m.grants.may_publish(source.grant()) {
            return Err(PublishError::NotGranted(source.as_str()));
        }
        Room::check_layers(&rids)?;
        match source {
            Source::Camera => {
                if self.video_publishers(Some(owner)) >= self.caps.max_video_publishers {
                    return Err(PublishError::VideoPublishersFull(
                        self.caps.max_video_publishers,
                    ));
                }
            }
            Source::Screen => {
                if self.screen_shares() >= self.caps.max_screen_shares {
                    return Err(PublishError::ScreenSharesFull(self.caps.max_screen_shares));
                }
            }
            Source::Microphone | Source::ScreenAudio => {}
        }
        self.add_track(owner, source, muted, rids)
            .ok_or(PublishError::NotJoined)
    }

    /// Adds a member's track with its simulcast layers (video only, at most
    /// [`MAX_LAYERS`]); `None` if there is no such member.
    pub(super) fn add_track(
        &mut self,
        owner: PeerKey,
        source: Source,
        muted: bool,
        rids: Vec<String>,
    ) -> Option<TrackKey> {
        let key = TrackKey(self.next_track);
        let m = self.members.get_mut(&owner)?;
        m.tracks.push(key);
        let silenced = m.grants.muted && source == Source::Microphone;
        self.next_track += 1;
        let layers = if source.kind() == MediaKind::Video {
            rids.len().clamp(1, MAX_LAYERS)
        } else {
            1
        };
        self.tracks.insert(
            key,
            Track {
                key,
                id: TrackId::from_serial(key.0 as u64),
                owner,
                source,
                muted,
                silenced,
                rids,
                codec: None,
                layers: vec![Layer::new(); layers],
                downtracks: Vec::new(),
                pipes: Vec::new(),
            },
        );
        Some(key)
    }

    pub fn unpublish(&mut self, track: TrackKey) -> Option<Track> {
        let t = self.tracks.remove(&track)?;
        if let Some(m) = self.members.get_mut(&t.owner) {
            m.tracks.retain(|k| *k != track);
        }
        Some(t)
    }

    /// Sets the publisher's mute; true if that changes what the room is told
    /// ([`Track::is_muted`]): a silenced track stays muted to the room.
    pub fn set_muted(&mut self, track: TrackKey, muted: bool) -> bool {
        let Some(t) = self.tracks.get_mut(&track) else {
            return false;
        };
        let before = t.is_muted();
        t.muted = muted;
        before != t.is_muted()
    }

    pub fn set_codec(&mut self, track: TrackKey, codec: Codec) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.codec = Some(codec);
        }
    }
}
