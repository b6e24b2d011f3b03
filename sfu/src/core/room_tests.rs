//! The forwarding core of one room, in virtual time.

use super::*;
use parlor_proto::PublishSource;

fn pid(s: &str) -> ParticipantId {
    ParticipantId::parse(s).unwrap()
}

fn room_with(n: u32) -> Room {
    let mut r = Room::new(CapsConfig::default(), 0);
    for i in 0..n {
        r.admit(
            PeerKey(i),
            pid(&format!("p{i}")),
            format!("P{i}"),
            Grants::default(),
            false,
        )
        .unwrap();
    }
    r
}

fn forwards(out: &[Action]) -> Vec<Forward> {
    out.iter()
        .filter_map(|a| match a {
            Action::Forward(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn keyframe_requests(out: &[Action]) -> Vec<usize> {
    out.iter()
        .filter_map(|a| match a {
            Action::KeyframeRequest { layer, .. } => Some(*layer),
            _ => None,
        })
        .collect()
}

fn pkt(seq: u64, ts: u32, keyframe: bool) -> PacketIn {
    PacketIn {
        seq,
        ts,
        keyframe,
        len: 1000,
    }
}

#[test]
fn caps_race_admits_exactly_the_cap() {
    let mut r = Room::new(
        CapsConfig {
            max_participants: 10,
            ..CapsConfig::default()
        },
        0,
    );
    let results: Vec<_> = (0..50)
        .map(|i| {
            r.admit(
                PeerKey(i),
                pid(&format!("u{i}")),
                String::new(),
                Grants::default(),
                false,
            )
        })
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    assert!(
        results[10..]
            .iter()
            .all(|r| *r == Err(JoinError::RoomFull(10)))
    );
    // A seat frees up when someone leaves.
    r.remove(PeerKey(3));
    assert!(
        r.admit(
            PeerKey(99),
            pid("late"),
            String::new(),
            Grants::default(),
            false
        )
        .is_ok()
    );
}

#[test]
fn publish_checks_grants_and_caps() {
    let mut r = Room::new(
        CapsConfig {
            max_video_publishers: 1,
            max_screen_shares: 1,
            ..CapsConfig::default()
        },
        0,
    );
    let audio_only = Grants {
        publish: vec![PublishSource::Audio],
        subscribe: true,
        admin: false,
        muted: false,
    };
    r.admit(PeerKey(0), pid("a"), "A".into(), audio_only, false)
        .unwrap();
    r.admit(PeerKey(1), pid("b"), "B".into(), Grants::default(), false)
        .unwrap();
    r.admit(PeerKey(2), pid("c"), "C".into(), Grants::default(), false)
        .unwrap();
    assert_eq!(
        r.publish(PeerKey(0), Source::Camera, vec![], false),
        Err(PublishError::NotGranted("camera"))
    );
    assert!(
        r.publish(PeerKey(0), Source::Microphone, vec![], false)
            .is_ok()
    );
    assert!(r.publish(PeerKey(1), Source::Camera, vec![], false).is_ok());
    // The same publisher may add a second camera; a second publisher may not.
    assert!(r.publish(PeerKey(1), Source::Camera, vec![], false).is_ok());
    assert_eq!(
        r.publish(PeerKey(2), Source::Camera, vec![], false),
        Err(PublishError::VideoPublishersFull(1))
    );
    assert!(r.publish(PeerKey(1), Source::Screen, vec![], false).is_ok());
    assert_eq!(
        r.publish(PeerKey(2), Source::Screen, vec![], false),
        Err(PublishError::ScreenSharesFull(1))
    );
    // Screen audio does not count as a screen share.
    assert!(
        r.publish(PeerKey(2), Source::ScreenAudio, vec![], false)
            .is_ok()
    );
}

#[test]
fn subscribe_unsubscribe_and_pause() {
    let t0 = Instant::now();
    let mut r = room_with(3);
    let audio = r
        .publish(PeerKey(0), Source::Microphone, vec![], false)
        .unwrap();
    let mut out = Vec::new();
    for s in [1, 2] {
        assert_eq!(r.subscribe(PeerKey(s), audio), Ok(true));
        r.downtrack_ready(t0, PeerKey(s), audio, 10 + s, &mut out);
    }
    assert_eq!(
        r.subscribe(PeerKey(0), audio),
        Err(SubscribeError::OwnTrack)
    );
    out.clear();
    r.on_rtp(t0, audio, 0, pkt(100, 960, true), &mut out);
    let subs: Vec<_> = forwards(&out).iter().map(|f| f.sub).collect();
    assert_eq!(subs, vec![PeerKey(1), PeerKey(2)]);

    // Pause stops packets to that subscriber only.
    assert!(r.set_paused(t0, PeerKey(1), audio, true, &mut out));
    out.clear();
    r.on_rtp(t0, audio, 0, pkt(101, 1920, true), &mut out);
    let subs: Vec<_> = forwards(&out).iter().map(|f| f.sub).collect();
    assert_eq!(subs, vec![PeerKey(2)]);

    // Resume continues the sequence without a gap.
    let before = forwards(&out)[0];
    r.set_paused(t0, PeerKey(1), audio, false, &mut out);
    out.clear();
    for s in 102..110 {
        r.on_rtp(t0, audio, 0, pkt(s, s as u32 * 960, true), &mut out);
    }
    let to1: Vec<_> = forwards(&out)
        .into_iter()
        .filter(|f| f.sub == PeerKey(1))
        .collect();
    assert_eq!(to1.len(), 8);
    assert!(to1.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let to2: Vec<_> = forwards(&out)
        .into_iter()
        .filter(|f| f.sub == PeerKey(2))
        .collect();
    assert_eq!(to2[0].seq, before.seq + 1);

    // Unsubscribe stops packets to that subscriber only, for good.
    assert_eq!(r.unsubscribe(PeerKey(2), audio), Some(Some(12)));
    out.clear();
    r.on_rtp(t0, audio, 0, pkt(110, 960 * 110, true), &mut out);
    let subs: Vec<_> = forwards(&out).iter().map(|f| f.sub).collect();
    assert_eq!(subs, vec![PeerKey(1)]);
}

#[test]
fn a_newer_session_of_an_identity_replaces_the_older_one() {
    let mut r = Room::new(
        CapsConfig {
            max_participants: 2,
            ..CapsConfig::default()
        },
        0,
    );
    let join = |r: &mut Room, k: u32, who: &str| {
        r.admit(PeerKey(k), pid(who), who.into(), Grants::default(), false)
    };
    assert_eq!(join(&mut r, 0, "ann"), Ok(None));
    assert_eq!(join(&mut r, 1, "ben"), Ok(None));
    // The room is full, but ann's second session takes the first one's seat.
    assert_eq!(join(&mut r, 2, "ann"), Ok(Some(PeerKey(0))));
    assert_eq!(join(&mut r, 3, "cat"), Err(JoinError::RoomFull(2)));
    assert_eq!(join(&mut r, 2, "dan"), Err(JoinError::AlreadyJoined));
}

#[test]
fn auto_subscribers_get_every_track_but_their_own() {
    let mut r = room_with(4);
    let watch_only = Grants {
        publish: vec![],
        subscribe: false,
        admin: false,
        muted: false,
    };
    r.admit(
        PeerKey(9),
        pid("whep"),
        String::new(),
        Grants::default(),
        true,
    )
    .unwrap();
    r.admit(PeerKey(8), pid("mute"), String::new(), watch_only, false)
        .unwrap();
    r.set_auto_subscribe(PeerKey(8), true);
    r.set_auto_subscribe(PeerKey(3), false);
    let mic = r
        .publish(PeerKey(0), Source::Microphone, vec![], false)
        .unwrap();
    let cam = r
        .publish(PeerKey(1), Source::Camera, vec![], false)
        .unwrap();
    // Hidden viewers, members without the subscribe grant and members who asked
    // not to auto-subscribe are left out.
    assert_eq!(r.auto_subscribers(mic), vec![PeerKey(1), PeerKey(2)]);
    assert_eq!(r.auto_subscribers(cam), vec![PeerKey(0), PeerKey(2)]);
    r.admit(
        PeerKey(5),
        pid("late"),
        String::new(),
        Grants::default(),
        false,
    )
    .unwrap();
    assert_eq!(r.auto_subscriptions(PeerKey(5)), vec![mic, cam]);
    assert_eq!(r.auto_subscriptions(PeerKey(0)), vec![cam], "not its own");
    assert!(r.auto_subscriptions(PeerKey(9)).is_empty());
    assert!(r.auto_subscriptions(PeerKey(3)).is_empty());
}

#[test]
fn occupancy_counts_as_the_caps_do() {
    let mut r = room_with(3);
    r.publish(PeerKey(0), Source::Camera, vec![], false)
        .unwrap();
    r.publish(PeerKey(0), Source::Camera, vec![], false)
        .unwrap();
    r.publish(PeerKey(1), Source::Camera, vec![], false)
        .unwrap();
    r.publish(PeerKey(1), Source::Screen, vec![], false)
        .unwrap();
    r.publish(PeerKey(1), Source::ScreenAudio, vec![], false)
        .unwrap();
    assert_eq!(
        r.occupancy(),
        Occupancy {
            participants: 3,
            video_publishers: 2,
            screen_shares: 1,
        }
    );
}

#[test]
fn at_most_three_simulcast_layers() {
    let mut r = room_with(1);
    let rids = |n: usize| (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>();
    assert!(Room::check_layers(&rids(3)).is_ok());
    assert_eq!(
        Room::check_layers(&rids(4)),
        Err(PublishError::TooManyLayers(3))
    );
    assert_eq!(
        r.publish(PeerKey(0), Source::Camera, rids(4), false),
        Err(PublishError::TooManyLayers(3))
    );
    assert!(r.member(PeerKey(0)).unwrap().tracks.is_empty());
}

#[test]
fn a_transport_down_longer_than_the_grace_expires() {
    let t0 = Instant::now();
    assert!(!transport_expired(None, t0 + Duration::from_secs(60)));
    assert!(!transport_expired(Some(t0), t0 + DISCONNECT_GRACE));
    assert!(transport_expired(
        Some(t0),
        t0 + DISCONNECT_GRACE + Duration::from_millis(1)
    ));
}

fn closes(out: &[Action]) -> Vec<(PeerKey, CloseReason)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Close { peer, reason } => Some((*peer, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_member_whose_transport_stays_down_is_closed_once() {
    let t0 = Instant::now();
    let mut r = room_with(2);
    let mut out = Vec::new();
    r.transport(PeerKey(0), false, t0);
    r.transport(PeerKey(1), false, t0);
    // One comes back within the grace; a second "down" does not restart the clock.
    r.transport(PeerKey(1), true, t0 + Duration::from_secs(5));
    r.transport(PeerKey(0), false, t0 + Duration::from_secs(5));
    r.tick(t0 + DISCONNECT_GRACE, &mut out);
    assert!(closes(&out).is_empty(), "not before the grace has passed");
    let late = t0 + DISCONNECT_GRACE + Duration::from_secs(1);
    r.tick(late, &mut out);
    assert_eq!(closes(&out), [(PeerKey(0), CloseReason::MediaTimeout)]);
    out.clear();
    r.tick(late + Duration::from_secs(1), &mut out);
    assert!(closes(&out).is_empty(), "a close is decided once");
}

#[test]
fn active_speakers_change_at_most_every_interval() {
    let t0 = Instant::now();
    let mut r = room_with(3);
    let ms = |n: u64| t0 + Duration::from_millis(n);
    r.on_audio_level(ms(0), PeerKey(1), 20);
    r.on_audio_level(ms(0), PeerKey(2), 127);
    let s = r.poll_speakers(ms(0)).unwrap();
    assert_eq!(s.iter().map(|s| s.0).collect::<Vec<_>>(), vec![PeerKey(1)]);
    r.on_audio_level(ms(50), PeerKey(2), 10);
    assert_eq!(r.poll_speakers(ms(100)), None, "inside the interval");
    let s = r.poll_speakers(ms(200)).unwrap();
    assert_eq!(
        s.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![PeerKey(2), PeerKey(1)]
    );
    assert_eq!(
        r.poll_speakers(ms(400)),
        None,
        "unchanged set is not repeated"
    );
    // Silence: both drop out after the hold time.
    assert_eq!(r.poll_speakers(ms(1000)).unwrap(), vec![]);
}

#[test]
fn leaving_removes_tracks_and_subscriptions() {
    let t0 = Instant::now();
    let mut r = room_with(2);
    let a = r
        .publish(PeerKey(0), Source::Microphone, vec![], false)
        .unwrap();
    let b = r
        .publish(PeerKey(1), Source::Microphone, vec![], false)
        .unwrap();
    r.subscribe(PeerKey(1), a).unwrap();
    r.subscribe(PeerKey(0), b).unwrap();
    let mut out = Vec::new();
    r.downtrack_ready(t0, PeerKey(1), a, 1, &mut out);
    let gone = r.remove(PeerKey(0));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].key, a);
    assert!(r.track(b).unwrap().downtracks.is_empty());
    assert_eq!(r.len(), 1);
}

#[test]
fn a_pipe_carries_local_tracks_only_and_never_counts_as_a_participant() {
    let mut r = Room::new(
        CapsConfig {
            max_participants: 3,
            ..CapsConfig::default()
        },
        0,
    );
    r.admit(
        PeerKey(1),
        pid("local"),
        "L".into(),
        Grants::default(),
        false,
    )
    .unwrap();
    r.admit_remote(PeerKey(2), pid("remote"), "R".into());
    r.admit_pipe(PeerKey(3), pid("pipe:east"));
    let local = r
        .publish(PeerKey(1), Source::Microphone, vec![], false)
        .unwrap();
    let remote = r
        .publish_remote(PeerKey(2), Source::Camera, false, vec![])
        .unwrap();

    // The pipe gets the local track, now and when published; never the mirrored one,
    // which would send it back where it came from.
    assert_eq!(r.auto_subscriptions(PeerKey(3)), [local]);
    assert!(r.auto_subscribers(local).contains(&PeerKey(3)));
    assert!(!r.auto_subscribers(remote).contains(&PeerKey(3)));
    // A local subscriber gets both.
    r.admit(
        PeerKey(4),
        pid("viewer"),
        "V".into(),
        Grants::default(),
        false,
    )
    .unwrap();
    assert_eq!(r.auto_subscriptions(PeerKey(4)), [local, remote]);

    // The mirrored participant counts against the cap, the pipe does not: with three
    // participants (local, remote, viewer) the room is full.
    assert_eq!(r.occupancy().participants, 3);
    assert_eq!(
        r.admit(
            PeerKey(5),
            pid("late"),
            "X".into(),
            Grants::default(),
            false
        ),
        Err(JoinError::RoomFull(3))
    );
    // A newcomer with a mirrored participant's identity does not replace the mirror.
    r.remove(PeerKey(4));
    assert_eq!(
        r.admit(
            PeerKey(6),
            pid("remote"),
            "R2".into(),
            Grants::default(),
            false
        ),
        Ok(None)
    );
}

#[test]
fn a_remote_track_is_forwarded_like_a_local_one() {
    let mut r = room_with(1);
    r.admit_remote(PeerKey(9), pid("far"), "F".into());
    let t = r
        .publish_remote(PeerKey(9), Source::Microphone, false, vec![])
        .unwrap();
    r.subscribe(PeerKey(0), t).unwrap();
    let now = Instant::now();
    let mut out = Vec::new();
    r.downtrack_ready(now, PeerKey(0), t, 0, &mut out);
    out.clear();
    r.on_rtp(now, t, 0, pkt(70_000, 960, true), &mut out);
    r.on_rtp(now, t, 0, pkt(70_001, 1920, true), &mut out);
    let f = forwards(&out);
    assert_eq!(f.len(), 2);
    assert_eq!(f[1].seq, f[0].seq + 1);
}

#[test]
fn a_pipe_gets_every_layer_as_it_arrives_and_asks_keyframes_per_layer() {
    let mut r = room_with(1);
    r.admit_pipe(PeerKey(7), pid("pipe:east"));
    let rids = vec!["q".to_owned(), "h".to_owned(), "f".to_owned()];
    let t = r.publish(PeerKey(0), Source::Camera, rids, false).unwrap();
    assert_eq!(r.subscribe(PeerKey(7), t), Ok(true));
    assert_eq!(r.subscribe(PeerKey(7), t), Ok(false));
    let now = Instant::now();
    let mut out = Vec::new();
    r.on_rtp(now, t, 0, pkt(100, 10, true), &mut out);
    r.on_rtp(now, t, 2, pkt(900, 10, false), &mut out);
    let f: Vec<(PeerKey, u32, u64)> = forwards(&out)
        .iter()
        .map(|f| (f.sub, f.slot, f.seq))
        .collect();
    // Unchanged sequence numbers, the layer in `slot`, no wait for a keyframe.
    assert_eq!(f, [(PeerKey(7), 0, 100), (PeerKey(7), 2, 900)]);
    out.clear();
    r.layer_keyframe_request(now, t, 2, &mut out);
    r.layer_keyframe_request(now, t, 2, &mut out);
    r.layer_keyframe_request(now, t, 1, &mut out);
    assert_eq!(keyframe_requests(&out), [2, 1], "throttled per layer");
    // A mirrored track keeps the layers its node announced.
    r.admit_remote(PeerKey(9), pid("far"), "F".into());
    let m = r
        .publish_remote(
            PeerKey(9),
            Source::Camera,
            false,
            vec!["a".into(), "b".into()],
        )
        .unwrap();
    assert_eq!(r.track(m).map(|t| t.layer_count()), Some(2));
}

#[path = "room_forward_tests.rs"]
mod forward;
