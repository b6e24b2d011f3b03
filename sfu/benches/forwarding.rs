//! The forwarding core's cost per packet, without sockets or str0m: one received packet
//! of a track through the room's decision to N subscribers (who gets it, each one's
//! sequence number and timestamp rewritten), and the rewrite alone.
//!
//! `cargo bench -p parlor-sfu --bench forwarding`; figures in `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parlor_proto::{Grants, ParticipantId, Source};
use parlor_sfu::core::codec::Codec;
use parlor_sfu::core::munger::Munger;
use parlor_sfu::core::{Action, CapsConfig, PacketIn, PeerKey, Room, TrackKey};

/// A room of one publisher of `source` and `subs` subscribers, every one negotiated and
/// past its first keyframe, so each packet is forwarded to all of them.
fn room(subs: u32, source: Source, codec: Codec, t0: Instant) -> (Room, TrackKey) {
    let mut r = Room::new(
        CapsConfig {
            max_participants: subs + 1,
            ..CapsConfig::default()
        },
        0,
    );
    for i in 0..=subs {
        let id = ParticipantId::parse(&format!("p{i}")).expect("a valid identity");
        r.admit(PeerKey(i), id, String::new(), Grants::default(), false)
            .expect("room for everyone");
    }
    let track = r
        .publish(PeerKey(0), source, vec![], false)
        .expect("publishing is granted");
    r.set_codec(track, codec);
    let mut out = Vec::new();
    for i in 1..=subs {
        r.subscribe(PeerKey(i), track)
            .expect("subscribing is granted");
        r.downtrack_ready(t0, PeerKey(i), track, i, &mut out);
    }
    out.clear();
    r.on_rtp(t0, track, 0, packet(0, true), &mut out);
    let forwarded = out
        .iter()
        .filter(|a| matches!(a, Action::Forward(_)))
        .count();
    assert_eq!(forwarded, subs as usize, "the keyframe reaches everyone");
    (r, track)
}

fn packet(seq: u64, keyframe: bool) -> PacketIn {
    PacketIn {
        seq,
        ts: (seq / 3) as u32 * 3000,
        keyframe,
        len: 1200,
    }
}

fn forwarding(c: &mut Criterion) {
    let mut g = c.benchmark_group("on_rtp");
    for (name, source, codec) in [
        ("video", Source::Camera, Codec::Vp8),
        ("audio", Source::Microphone, Codec::Opus),
    ] {
        for subs in [1u32, 50, 200, 800] {
            let t0 = Instant::now();
            let (mut r, track) = room(subs, source, codec, t0);
            let mut out = Vec::with_capacity(subs as usize + 4);
            let mut seq = 1;
            // Throughput in forwarded packets: one received packet is `subs` forwards.
            g.throughput(Throughput::Elements(u64::from(subs)));
            g.bench_with_input(BenchmarkId::new(name, subs), &subs, |b, _| {
                b.iter(|| {
                    out.clear();
                    seq += 1;
                    // Virtual time: 20 ms a packet, so rate windows roll as they do live.
                    let now = t0 + Duration::from_millis(20 * seq);
                    r.on_rtp(now, track, 0, packet(seq, false), &mut out);
                    black_box(out.len())
                })
            });
            // What was timed forwarded every packet to every subscriber.
            out.clear();
            r.on_rtp(t0, track, 0, packet(seq + 1, false), &mut out);
            assert_eq!(out.len(), subs as usize, "{name} to {subs}");
        }
    }
    g.finish();
}

fn rewriting(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut m = Munger::new(90_000, 1);
    let mut seq = 1000u64;
    c.bench_function("munge", |b| {
        b.iter(|| {
            seq += 1;
            black_box(m.munge(black_box(seq), (seq * 30) as u32, t0))
        })
    });
}

criterion_group!(benches, forwarding, rewriting);
criterion_main!(benches);
