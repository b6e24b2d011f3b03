//! One client of the `media` scenario: a str0m `Rtc` in RTP mode (DTLS, SRTP, RTCP, NACK;
//! cheap enough that hundreds share a core) behind a `/ws` session, publishing or
//! receiving, and the counters every client of a run shares.
//!
//! Every packet a publisher sends carries its send time in its last 8 bytes, so a
//! subscriber in this process knows each packet's one-way latency through the SFU; a video
//! packet carries its simulcast layer in the byte before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

/// What a publishing client sends: audio, and video at `video_kbps` unless `None`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Publish {
    pub video_kbps: Option<u64>,
    /// Video as three simulcast layers ([`LAYERS`]) instead of one stream.
    pub simulcast: bool,
}

/// Simulcast layers, lowest first: rid and the share of the video bitrate, as numerator
/// and denominator. At 1,500 kbit/s that is 150, 500 and 1,500, the encodings
/// `docs/protocol.md` §6.6 suggests to browsers.
pub(crate) const LAYERS: [(&str, u64, u64); 3] = [("l", 1, 10), ("m", 1, 3), ("h", 1, 1)];

/// Payloads at least this long are video (audio packets are 100 bytes).
const MIN_VIDEO_PAYLOAD: usize = 250;

/// Counters every client of a run shares.
#[derive(Default)]
pub(crate) struct Stats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Set during the measurement window: latencies, layers and sequence spans are kept
    /// only then.
    pub recording: AtomicBool,
    /// One-way latency of each packet received in the window, µs.
    pub latency_us: Mutex<Vec<u32>>,
    /// Subscribers' WebSocket connect → first video packet, ms.
    pub ttff_ms: Mutex<Vec<f64>>,
    pub failed: AtomicU64,
    /// Server offers that did not apply (stale after glare).
    pub stale_offers: AtomicU64,
    /// Video packets received in the window, by the simulcast layer they were sent on
    /// (layer 0 without simulcast).
    pub received_by_layer: [AtomicU64; 3],
    /// Summed over every stream a client received in the window: the sequence numbers
    /// from its first packet to its highest. The SFU numbers what it forwards to each
    /// subscriber as one continuous stream across layer switches, so the numbers in that
    /// span that never arrived are packets lost (in the SFU, the network or the client).
    pub seq_span: AtomicU64,
    /// Packets counted against `seq_span`.
    pub seq_received: AtomicU64,
}

impl Stats {
    /// The share of packets subscribers should have received in the window and did not,
    /// from the gaps in each received stream's sequence numbers.
    pub fn loss_from_gaps(&self) -> f64 {
        let span = self.seq_span.load(Ordering::Relaxed) as f64;
        let got = self.seq_received.load(Ordering::Relaxed) as f64;
        if span == 0.0 {
            return 0.0;
        }
        (1.0 - got / span).max(0.0)
    }
}

/// The clock publishers stamp packets with, shared by every client of this process.
pub(crate) fn clock() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn stamp(payload: &mut [u8]) {
    let n = payload.len();
    let t = clock().elapsed().as_nanos() as u64;
    payload[n - 8..].copy_from_slice(&t.to_be_bytes());
}

fn age_us(payload: &[u8]) -> Option<u32> {
    let n = payload.len();
    let t = u64::from_be_bytes(payload.get(n.checked_sub(8)?..)?.try_into().ok()?);
    let now = clock().elapsed().as_nanos() as u64;
    Some((now.saturating_sub(t) / 1000).min(u64::from(u32::MAX)) as u32)
}

/// Packets per 20 ms frame and their size for `kbps` of video: 1200-byte packets, and
/// one smaller packet (at least [`MIN_VIDEO_PAYLOAD`]) when a frame is under 1200 bytes.
fn frame_packets(kbps: u64) -> (u64, usize) {
    let bytes = kbps * 1000 / 8 / 50;
    if bytes >= 1200 {
        (bytes / 1200, 1200)
    } else {
        (1, (bytes as usize).max(MIN_VIDEO_PAYLOAD))
    }
}

/// A received stream's highest sequence number in the window, for the gap count.
#[derive(Default)]
struct Spans {
    window: bool,
    highest: HashMap<Ssrc, u64>,
}

impl Spans {
    /// Counts a received packet against its stream's span; whether the window is open.
    fn on_packet(&mut self, stats: &Stats, ssrc: Ssrc, seq: u64) -> bool {
        let recording = stats.recording.load(Ordering::Relaxed);
        if recording != self.window {
            self.window = recording;
            self.highest.clear();
        }
        if !recording {
            return false;
        }
        let highest = self.highest.entry(ssrc).or_insert_with(|| {
            stats.seq_span.fetch_add(1, Ordering::Relaxed);
            seq
        });
        if seq > *highest {
            stats.seq_span.fetch_add(seq - *highest, Ordering::Relaxed);
            *highest = seq;
        }
        stats.seq_received.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// One participant: joins through `ws` with `token`, then publishes (`publish`) or only
/// receives, until it fails or is aborted.
pub(crate) async fn client(
    ws: String,
    token: String,
    publish: Option<Publish>,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut tx, mut rx) = open_session(ws, &token).await?;
    let send = |v: Value| Message::text(v.to_string());

    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let local = sock.local_addr()?;
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);

    let mut pending = None;
    let mut sender = None;
    if let Some(publish) = publish {
        let (s, offer, p, tracks) = Sender::offer(&mut rtc, publish)?;
        sender = Some(s);
        pending = Some(p);
        tx.send(send(json!({"op": "offer", "id": 2, "d": {
            "sdp": offer.to_sdp_string(), "tracks": tracks}})))
            .await?;
    }

    let mut buf = vec![0u8; 2000];
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    let mut frame_tick = tokio::time::interval(Duration::from_millis(20));
    let mut last_seq = 0u64;
    let mut first_video = publish.is_some();
    let mut spans = Spans::default();
    // The `seq` of the answer to our offer.
    let mut answered_at = 0u64;
    loop {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    sock.send_to(&t.contents, t.destination).await?;
                }
                Output::Event(Event::RtpPacket(p)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let video = p.payload.len() >= MIN_VIDEO_PAYLOAD;
                    if !first_video && video {
                        first_video = true;
                        let ms = started.elapsed().as_secs_f64() * 1000.0;
                        stats.ttff_ms.lock().expect("ttff").push(ms);
                    }
                    if spans.on_packet(&stats, p.header.ssrc, *p.seq_no) {
                        if let Some(us) = age_us(&p.payload) {
                            stats.latency_us.lock().expect("latency").push(us);
                        }
                        if video {
                            let layer = usize::from(p.payload[p.payload.len() - 9]).min(2);
                            stats.received_by_layer[layer].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Output::Event(Event::KeyframeRequest(r)) => {
                    if let Some(s) = &mut sender {
                        s.keyframe_requested(r.rid);
                    }
                }
                Output::Event(_) => {}
            }
        };
        let wait = timeout.saturating_duration_since(Instant::now());
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (len, source) = r?;
                if let Ok(input) = Receive::new(Protocol::Udp, source, local, &buf[..len]) {
                    rtc.handle_input(Input::Receive(Instant::now(), input))?;
                }
            }
            m = rx.next() => {
                let Some(Ok(Message::Text(t))) = m else { bail!("signaling closed") };
                let v: Value = serde_json::from_str(t.as_str())?;
                last_seq = v["seq"].as_u64().unwrap_or(last_seq);
                match v["op"].as_str() {
                    // Glare (protocol §6.5): a server offer that crosses ours is rolled
                    // back by the server when ours arrives, and a fresh one follows the
                    // answer. Ignore it.
                    Some("offer") if pending.is_some() => {}
                    // Sent before the server handled our offer, so rolled back (§6.5,
                    // rule 3).
                    Some("offer") if v["seq"].as_u64().is_some_and(|s| s < answered_at) => {}
                    Some("offer") => {
                        // An offer after the answer to ours is a fresh one (§6.5). One
                        // that fails to apply would be a rolled-back offer sent after the
                        // answer, which the protocol rules out: count it, as a browser
                        // would log it, and go on (the fresh one follows).
                        if let Err(e) = answer_offer(&mut rtc, &mut tx, &v).await {
                            stats.stale_offers.fetch_add(1, Ordering::Relaxed);
                            tracing_note(&e);
                        }
                    }
                    Some("answer") => {
                        if let Some(p) = pending.take() {
                            answered_at = v["seq"].as_u64().unwrap_or(answered_at);
                            let answer = SdpAnswer::from_sdp_string(v["d"]["sdp"].as_str().unwrap_or(""))?;
                            rtc.sdp_api().accept_answer(p, answer)?;
                        }
                    }
                    Some("error") => bail!("server error: {v}"),
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                tx.send(send(json!({"op": "heartbeat", "d": {"seq": last_seq}}))).await?;
            }
            _ = frame_tick.tick(), if sender.is_some() && rtc.is_connected() => {
                if let Some(s) = &mut sender {
                    s.frame(&mut rtc, &stats);
                }
            }
            _ = tokio::time::sleep(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    }
}

/// A publisher's media: audio, and video on one stream or on each simulcast layer.
struct Sender {
    audio: Mid,
    video: Option<Mid>,
    /// The video streams: rid (none without simulcast) and kbit/s.
    layers: Vec<(Option<Rid>, u64)>,
    seq_audio: u64,
    seq_video: [u64; 3],
    keyframe_due: [bool; 3],
    /// Frames sent.
    frames: u64,
}

impl Sender {
    /// Adds the publisher's m-lines to `rtc`: the offer, its pending state and the track
    /// labels that go with it.
    fn offer(
        rtc: &mut Rtc,
        publish: Publish,
    ) -> anyhow::Result<(Sender, SdpOffer, SdpPendingOffer, Vec<Value>)> {
        let simulcast = publish.simulcast && publish.video_kbps.is_some();
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let sim = simulcast.then(|| {
            let mut s = Simulcast::new();
            for (rid, _, _) in LAYERS {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video = publish
            .video_kbps
            .map(|_| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim));
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
        let mut tracks = vec![json!({"mid": audio.to_string(), "source": "microphone"})];
        if let Some(v) = video {
            let mut t = json!({"mid": v.to_string(), "source": "camera"});
            if simulcast {
                t["layers"] = json!(LAYERS.map(|l| l.0));
            }
            tracks.push(t);
        }
        let layers = match publish.video_kbps {
            Some(kbps) if simulcast => LAYERS
                .iter()
                .map(|&(rid, num, den)| (Some(Rid::from(rid)), kbps * num / den))
                .collect(),
            Some(kbps) => vec![(None, kbps)],
            None => Vec::new(),
        };
        let sender = Sender {
            audio,
            video,
            layers,
            seq_audio: 1,
            seq_video: [1; 3],
            keyframe_due: [true; 3],
            frames: 0,
        };
        Ok((sender, offer, pending, tracks))
    }

    /// A keyframe request for one layer (`rid`), or for every layer.
    fn keyframe_requested(&mut self, rid: Option<Rid>) {
        for (due, (r, _)) in self.keyframe_due.iter_mut().zip(&self.layers) {
            if rid.is_none() || *r == rid {
                *due = true;
            }
        }
    }

    /// Writes one 20 ms frame: a 100-byte audio packet, and each video layer's bitrate at
    /// 50 frames/s, a keyframe when asked and every 2 s.
    fn frame(&mut self, rtc: &mut Rtc, stats: &Stats) {
        let now = Instant::now();
        let n = self.frames;
        self.frames += 1;
        let pt = |c: Codec| {
            let params = rtc.codec_config().params();
            params.iter().find(|p| p.spec().codec == c).map(|p| p.pt())
        };
        let (pt_a, pt_v) = (pt(Codec::Opus), pt(Codec::Vp8));
        let mut api = rtc.direct_api();
        if let (Some(pt_a), Some(s)) = (pt_a, api.stream_tx_by_mid(self.audio, None)) {
            let mut p = vec![0xfc; 100];
            stamp(&mut p);
            let seq = self.seq_audio.into();
            s.write_rtp(RtpWrite::new(pt_a, seq, (n * 960) as u32, now, p));
            self.seq_audio += 1;
            stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        let (Some(v), Some(pt_v)) = (self.video, pt_v) else {
            return;
        };
        for (i, (rid, kbps)) in self.layers.iter().enumerate() {
            let Some(s) = api.stream_tx_by_mid(v, *rid) else {
                continue;
            };
            let key = std::mem::take(&mut self.keyframe_due[i]) || n.is_multiple_of(100);
            let (count, size) = frame_packets(*kbps);
            for k in 0..count {
                let mut p = vec![0u8; size];
                // VP8: start of partition 0 in the first packet; P bit 0 on a keyframe.
                p[0] = if k == 0 { 0x10 } else { 0 };
                p[1] = if key { 0 } else { 1 };
                p[size - 9] = i as u8;
                stamp(&mut p);
                let seq = self.seq_video[i].into();
                s.write_rtp(
                    RtpWrite::new(pt_v, seq, (n * 1800) as u32, now, p)
                        .marker(k + 1 == count)
                        .nackable(true),
                );
                self.seq_video[i] += 1;
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn tracing_note(e: &anyhow::Error) {
    if std::env::var_os("PARLOR_BENCH_VERBOSE").is_some() {
        eprintln!("a server offer did not apply: {e:#}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a signaling session at `url`: connects, identifies with `token` and asks to
/// join (request id 1); the socket's two halves.
pub(crate) async fn open_session(
    url: String,
    token: &str,
) -> anyhow::Result<(
    futures_util::stream::SplitSink<Ws, Message>,
    futures_util::stream::SplitStream<Ws>,
)> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    let (mut tx, rx) = ws.split();
    let send = |v: Value| Message::text(v.to_string());
    tx.send(send(json!({"op": "identify", "d": {"token": token}})))
        .await?;
    tx.send(send(json!({"op": "join", "id": 1, "d": {}})))
        .await?;
    Ok((tx, rx))
}

/// Answers a server offer (`v`, the whole frame).
async fn answer_offer(
    rtc: &mut Rtc,
    tx: &mut (impl futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin),
    v: &Value,
) -> anyhow::Result<()> {
    let offer = SdpOffer::from_sdp_string(v["d"]["sdp"].as_str().unwrap_or(""))?;
    let answer = rtc.sdp_api().accept_offer(offer)?;
    let frame = json!({"op": "answer", "d": {
        "offer_id": v["d"]["offer_id"], "sdp": answer.to_sdp_string()}});
    tx.send(Message::text(frame.to_string())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_payload_reads_its_age() {
        let mut p = vec![0u8; 100];
        stamp(&mut p);
        std::thread::sleep(Duration::from_millis(5));
        let us = age_us(&p).unwrap();
        assert!((5_000..1_000_000).contains(&us), "{us}");
        assert_eq!(age_us(&[0; 4]), None);
    }

    #[test]
    fn frames_are_full_packets_and_a_small_one_for_low_bitrates() {
        // 1,200 kbit/s: 3,000 bytes a frame, two full packets (as before simulcast).
        assert_eq!(frame_packets(1200), (2, 1200));
        assert_eq!(frame_packets(1500), (3, 1200));
        // The low layer of 1,500: 150 kbit/s, one 375-byte packet.
        assert_eq!(frame_packets(150), (1, 375));
        assert_eq!(frame_packets(10), (1, MIN_VIDEO_PAYLOAD));
    }

    #[test]
    fn loss_is_the_share_of_the_sequence_span_that_never_arrived() {
        let stats = Stats::default();
        stats.recording.store(true, Ordering::Relaxed);
        let mut spans = Spans::default();
        // Stream 1: 10..=19 with 13 and 17 missing, 15 late (after 16).
        for s in [10, 11, 12, 14, 16, 15, 18, 19] {
            spans.on_packet(&stats, 1.into(), s);
        }
        // Stream 2: 100..=104, complete.
        for s in 100..=104 {
            spans.on_packet(&stats, 2.into(), s);
        }
        assert_eq!(stats.seq_span.load(Ordering::Relaxed), 15);
        assert_eq!(stats.seq_received.load(Ordering::Relaxed), 13);
        assert!((stats.loss_from_gaps() - 2.0 / 15.0).abs() < 1e-9);
        // Outside the window nothing counts.
        stats.recording.store(false, Ordering::Relaxed);
        spans.on_packet(&stats, 2.into(), 200);
        assert_eq!(stats.seq_span.load(Ordering::Relaxed), 15);
    }
}
