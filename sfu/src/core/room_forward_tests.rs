//! The forwarding path: nothing before negotiation or a keyframe, simulcast layer
//! switches, bandwidth estimates, and keyframe requests.

use super::*;

#[test]
fn nothing_is_forwarded_before_negotiation_or_keyframe() {
    let t0 = Instant::now();
    let mut r = room_with(2);
    let cam = r
        .publish(PeerKey(0), Source::Camera, vec![], false)
        .unwrap();
    r.subscribe(PeerKey(1), cam).unwrap();
    let mut out = Vec::new();
    r.on_rtp(t0, cam, 0, pkt(1, 0, true), &mut out);
    assert!(forwards(&out).is_empty(), "not negotiated yet");
    // Negotiated: a new video subscriber asks the publisher for a keyframe.
    out.clear();
    r.downtrack_ready(t0, PeerKey(1), cam, 7, &mut out);
    assert_eq!(keyframe_requests(&out), vec![0]);
    out.clear();
    r.on_rtp(t0, cam, 0, pkt(2, 3000, false), &mut out);
    assert!(forwards(&out).is_empty(), "delta frame before keyframe");
    r.on_rtp(t0, cam, 0, pkt(3, 6000, true), &mut out);
    r.on_rtp(t0, cam, 0, pkt(4, 6000, false), &mut out);
    assert_eq!(forwards(&out).len(), 2);
}

fn simulcast_room(t0: Instant) -> (Room, TrackKey, Vec<Action>) {
    let mut r = room_with(2);
    let cam = r
        .publish(
            PeerKey(0),
            Source::Camera,
            vec!["l".into(), "m".into(), "h".into()],
            false,
        )
        .unwrap();
    let mut out = Vec::new();
    // All three layers are sending.
    for layer in 0..3 {
        r.on_rtp(
            t0,
            cam,
            layer,
            pkt(layer as u64 * 10_000, 0, false),
            &mut out,
        );
    }
    r.subscribe(PeerKey(1), cam).unwrap();
    out.clear();
    r.downtrack_ready(t0, PeerKey(1), cam, 1, &mut out);
    (r, cam, out)
}

#[test]
fn layer_switch_waits_for_keyframe_and_stays_continuous() {
    let t0 = Instant::now();
    let (mut r, cam, mut out) = simulcast_room(t0);
    assert_eq!(keyframe_requests(&out), vec![2], "default quality is high");
    out.clear();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    r.on_rtp(ms(10), cam, 2, pkt(20_001, 90_000, true), &mut out);
    for i in 2..6 {
        r.on_rtp(
            ms(10 * i),
            cam,
            2,
            pkt(20_000 + i, 90_000 + 3000 * i as u32, false),
            &mut out,
        );
    }
    let high: Vec<_> = forwards(&out);
    assert_eq!(high.len(), 5);
    let last = *high.last().unwrap();

    // Ask for low: a keyframe is requested on layer 0; layer 2 keeps flowing until then.
    out.clear();
    r.set_quality(ms(60), PeerKey(1), cam, Quality::Low, &mut out);
    assert_eq!(keyframe_requests(&out), vec![0]);
    out.clear();
    r.on_rtp(ms(70), cam, 0, pkt(500, 7_000, false), &mut out);
    assert!(forwards(&out).is_empty(), "no switch on a delta frame");
    r.on_rtp(ms(70), cam, 2, pkt(20_006, 108_000, false), &mut out);
    let kept = forwards(&out);
    assert_eq!(kept.len(), 1, "old layer continues until the switch");
    assert_eq!(kept[0].seq, last.seq + 1);
    out.clear();
    r.on_rtp(ms(100), cam, 0, pkt(501, 10_000, true), &mut out);
    r.on_rtp(ms(100), cam, 2, pkt(20_007, 111_000, false), &mut out);
    r.on_rtp(ms(133), cam, 0, pkt(502, 13_000, false), &mut out);
    let after = forwards(&out);
    assert_eq!(after.len(), 2, "only layer 0 after the switch");
    assert_eq!(after[0].seq, kept[0].seq + 1, "sequence continues");
    let dt = after[0].ts.wrapping_sub(kept[0].ts);
    assert!(
        (2000..=3500).contains(&dt),
        "timestamp continues, advanced {dt}"
    );
    assert_eq!(after[1].seq, after[0].seq + 1);
    assert_eq!(after[1].ts.wrapping_sub(after[0].ts), 3000);
}

#[test]
fn bandwidth_estimate_lowers_the_layer() {
    let t0 = Instant::now();
    let (mut r, cam, mut out) = simulcast_room(t0);
    measure_layers(&mut r, cam, t0, &mut out);
    out.clear();
    r.set_bandwidth(
        t0 + Duration::from_millis(1100),
        PeerKey(1),
        500_000,
        &mut out,
    );
    assert_eq!(keyframe_requests(&out), vec![1]);
    assert_eq!(
        r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target,
        Some(1)
    );
    out.clear();
    r.set_bandwidth(
        t0 + Duration::from_millis(1700),
        PeerKey(1),
        50_000,
        &mut out,
    );
    assert_eq!(
        r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target,
        Some(0)
    );
}

/// Feeds ~1.6 Mbps, ~400 kbps and ~100 kbps on the three layers for 1.1 s.
fn measure_layers(r: &mut Room, cam: TrackKey, t0: Instant, out: &mut Vec<Action>) {
    let sizes = [12usize, 50, 200];
    for ms in 0..=1100u64 {
        let now = t0 + Duration::from_millis(ms);
        for (layer, size) in sizes.iter().enumerate() {
            let p = PacketIn {
                seq: 1 + ms + layer as u64 * 100_000,
                ts: ms as u32 * 90,
                keyframe: false,
                len: *size,
            };
            r.on_rtp(now, cam, layer, p, out);
        }
    }
}

/// The rate a subscriber's estimator is told to probe toward follows the quality it asked
/// for and the layers that are sending, not its estimate: held on the low layer by a low
/// estimate, it still wants the high layer's rate, or it could never climb back.
#[test]
fn a_subscriber_wants_the_rate_of_the_layer_it_asked_for_whatever_its_estimate() {
    let wanted_by = |r: &Room, sub, now| r.wanted_bitrates(now).get(&sub).copied().unwrap_or(0);
    let t0 = Instant::now();
    let now = t0 + Duration::from_millis(1100);
    let (mut r, cam, mut out) = simulcast_room(t0);
    measure_layers(&mut r, cam, t0, &mut out);
    r.set_bandwidth(now, PeerKey(1), 150_000, &mut out);
    let target = r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target;
    assert_eq!(target, Some(0), "the estimate holds it on the low layer");
    let wanted = wanted_by(&r, PeerKey(1), now);
    assert!((1_500_000..1_700_000).contains(&wanted), "high: {wanted}");

    r.set_quality(now, PeerKey(1), cam, Quality::Medium, &mut out);
    let wanted = wanted_by(&r, PeerKey(1), now);
    assert!((380_000..420_000).contains(&wanted), "medium: {wanted}");

    // A layer that stopped sending is not wanted: the best one below it is.
    r.set_quality(now, PeerKey(1), cam, Quality::High, &mut out);
    let later = t0 + Duration::from_millis(1100) + LAYER_TIMEOUT;
    let mut p = 500_000;
    for ms in (1101..=later.duration_since(t0).as_millis() as u64).step_by(10) {
        let at = t0 + Duration::from_millis(ms);
        for (layer, len) in [(0, 120), (1, 500)] {
            p += 1;
            let pkt = PacketIn {
                seq: p + layer as u64 * 1_000_000,
                ts: ms as u32 * 90,
                keyframe: false,
                len,
            };
            r.on_rtp(at, cam, layer, pkt, &mut out);
        }
    }
    let wanted = wanted_by(&r, PeerKey(1), later);
    assert!(
        (380_000..420_000).contains(&wanted),
        "high stopped: {wanted}"
    );

    // Paused, and the publisher itself: nothing.
    r.set_paused(later, PeerKey(1), cam, true, &mut out);
    assert_eq!(wanted_by(&r, PeerKey(1), later), 0);
    assert_eq!(wanted_by(&r, PeerKey(0), later), 0);
}

/// A subscriber who arrived before the publisher's layer rates were measured got the
/// top layer whatever its estimate; once the rates are known, the periodic pass lowers it
/// to the layer that fits.
#[test]
fn a_layer_chosen_before_its_rate_was_known_is_lowered_once_it_does_not_fit() {
    let t0 = Instant::now();
    let target = |r: &Room, cam| r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target;
    let (mut r, cam, mut out) = simulcast_room(t0);
    r.set_bandwidth(t0, PeerKey(1), 500_000, &mut out);
    assert_eq!(
        target(&r, cam),
        Some(2),
        "no rate measured yet: the top layer"
    );
    r.on_rtp(t0, cam, 2, pkt(20_001, 3000, true), &mut out);
    measure_layers(&mut r, cam, t0, &mut out);
    let current = r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().current;
    assert_eq!(current, Some(2));
    out.clear();
    r.tick(t0 + Duration::from_millis(1200), &mut out);
    // ~1.6 Mbit/s does not fit 500 kbit/s; the medium layer's ~400 kbit/s does.
    assert_eq!(target(&r, cam), Some(1));
    assert_eq!(keyframe_requests(&out), vec![1]);
}

#[test]
fn a_bandwidth_estimate_within_ten_percent_moves_nothing() {
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let target = |r: &Room, cam| r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target;
    // Alone, 390 kbps is below the medium layer's ~400 kbps: the low layer.
    let (mut fresh, cam, mut out) = simulcast_room(t0);
    measure_layers(&mut fresh, cam, t0, &mut out);
    fresh.set_bandwidth(at(1100), PeerKey(1), 390_000, &mut out);
    assert_eq!(target(&fresh, cam), Some(0));

    let (mut r, cam, mut out) = simulcast_room(t0);
    measure_layers(&mut r, cam, t0, &mut out);
    r.set_bandwidth(at(1100), PeerKey(1), 420_000, &mut out);
    assert_eq!(target(&r, cam), Some(1));
    // 390 kbps is within 10% of the 420 kbps the layer was chosen for: no change.
    r.set_bandwidth(at(1200), PeerKey(1), 390_000, &mut out);
    assert_eq!(
        target(&r, cam),
        Some(1),
        "jitter within 10% keeps the layer"
    );
    // A larger change moves it.
    r.set_bandwidth(at(1300), PeerKey(1), 300_000, &mut out);
    assert_eq!(target(&r, cam), Some(0));
}

#[test]
fn keyframe_requests_are_throttled_per_layer() {
    let t0 = Instant::now();
    let mut r = room_with(3);
    let cam = r
        .publish(PeerKey(0), Source::Camera, vec![], false)
        .unwrap();
    let mut out = Vec::new();
    r.on_rtp(t0, cam, 0, pkt(1, 0, true), &mut out);
    for s in [1, 2] {
        r.subscribe(PeerKey(s), cam).unwrap();
        r.downtrack_ready(t0, PeerKey(s), cam, s, &mut out);
    }
    assert_eq!(
        keyframe_requests(&out).len(),
        1,
        "two new subscribers, one PLI"
    );
    out.clear();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    // The publisher answered with a keyframe: the next request may come 200 ms after
    // the last one.
    r.on_rtp(ms(30), cam, 0, pkt(2, 3000, true), &mut out);
    for n in [100, 150, 199] {
        r.subscriber_keyframe_request(ms(n), PeerKey(1), cam, &mut out);
        r.subscriber_keyframe_request(ms(n), PeerKey(2), cam, &mut out);
    }
    assert!(keyframe_requests(&out).is_empty());
    r.subscriber_keyframe_request(ms(200), PeerKey(2), cam, &mut out);
    r.subscriber_keyframe_request(ms(300), PeerKey(1), cam, &mut out);
    assert_eq!(keyframe_requests(&out).len(), 1);
    // Not answered: repeated only after 500 ms.
    r.subscriber_keyframe_request(ms(699), PeerKey(1), cam, &mut out);
    assert_eq!(keyframe_requests(&out).len(), 1);
    r.subscriber_keyframe_request(ms(700), PeerKey(1), cam, &mut out);
    assert_eq!(keyframe_requests(&out).len(), 2);
}

#[test]
fn a_subscriber_waiting_for_a_keyframe_is_asked_for_on_the_next_packet_the_gap_allows() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut r = room_with(3);
    let cam = r
        .publish(PeerKey(0), Source::Camera, vec![], false)
        .unwrap();
    let mut out = Vec::new();
    r.on_rtp(t0, cam, 0, pkt(1, 0, false), &mut out);
    r.subscribe(PeerKey(1), cam).unwrap();
    r.downtrack_ready(t0, PeerKey(1), cam, 1, &mut out);
    assert_eq!(keyframe_requests(&out).len(), 1);
    r.on_rtp(ms(30), cam, 0, pkt(2, 3000, true), &mut out);
    // A second subscriber comes just after that keyframe: too soon to ask again.
    r.subscribe(PeerKey(2), cam).unwrap();
    r.downtrack_ready(ms(50), PeerKey(2), cam, 1, &mut out);
    r.on_rtp(ms(100), cam, 0, pkt(3, 6000, false), &mut out);
    r.on_rtp(ms(199), cam, 0, pkt(4, 9000, false), &mut out);
    assert_eq!(keyframe_requests(&out).len(), 1);
    // The first packet once the gap allows asks again (not the next tick).
    r.on_rtp(ms(210), cam, 0, pkt(5, 12000, false), &mut out);
    assert_eq!(keyframe_requests(&out).len(), 2);
    out.clear();
    r.on_rtp(ms(240), cam, 0, pkt(6, 15000, true), &mut out);
    let to: Vec<PeerKey> = forwards(&out).iter().map(|f| f.sub).collect();
    assert_eq!(to, [PeerKey(1), PeerKey(2)]);
    assert!(keyframe_requests(&out).is_empty(), "nobody waits any more");
}
