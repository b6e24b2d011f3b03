//! One client of the `media` scenario: a str0m `Rtc` in RTP mode (DTLS, SRTP, RTCP, NACK;
//! cheap enough that hundreds share a core) behind a `/ws` session, publishing (through a
//! [`Sender`]) or receiving, and the counters every client of a run shares.
//!
//! Every packet a publisher sends carries its send time in its last 8 bytes, so a
//! subscriber in this process knows each packet's one-way latency through the SFU twice:
//! at its arrival (the kernel's receive time of the datagram, what the SFU and the network
//! added) and once the client has read and decrypted it (adding the wait for this
//! process, whose one core serves every client). A video packet carries its simulcast
//! layer in the byte before.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use parlor_sfu::udp_sys::{self, RecvMeta, realtime_ns};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Ssrc;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::media_sender::{FRAME, MIN_VIDEO_PAYLOAD, Publish, Sender};

/// Counters every client of a run shares.
#[derive(Default)]
pub(crate) struct Stats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Set during the measurement window: latencies, layers and sequence spans are kept
    /// only then.
    pub recording: AtomicBool,
    /// One-way latency of each packet received in the window when the client read it, µs.
    pub latency_us: Mutex<Vec<u32>>,
    /// The same packets' latency at their arrival in the client's socket, µs.
    pub arrival_us: Mutex<Vec<u32>>,
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

/// How long before `at_ns` the payload was stamped, µs.
fn age_us(payload: &[u8], at_ns: u64) -> Option<u32> {
    let n = payload.len();
    let t = u64::from_be_bytes(payload.get(n.checked_sub(8)?..)?.try_into().ok()?);
    Some((at_ns.saturating_sub(t) / 1000).min(u64::from(u32::MAX)) as u32)
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
    udp_sys::enable_rx_timestamps(sock.as_raw_fd())?;
    // The kernel's receive time of the datagram handled last.
    let mut arrived_ns = None;
    let mut meta = [RecvMeta::default()];
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
    let mut frame_tick = tokio::time::interval(FRAME);
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
                    let arrived = arrived_ns.take();
                    if spans.on_packet(&stats, p.header.ssrc, *p.seq_no) {
                        if let Some(us) = age_us(&p.payload, realtime_ns()) {
                            stats.latency_us.lock().expect("latency").push(us);
                        }
                        if let Some(us) = arrived.and_then(|at| age_us(&p.payload, at)) {
                            stats.arrival_us.lock().expect("latency").push(us);
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
        let paced_at = sender.as_ref().and_then(Sender::next_due);
        let wait = paced_at
            .map_or(timeout, |t| t.min(timeout))
            .saturating_duration_since(Instant::now());
        tokio::select! {
            r = sock.async_io(Interest::READABLE, || udp_sys::recv(sock.as_raw_fd(), &mut buf, &mut meta)) => {
                r?;
                let [m] = meta;
                arrived_ns = m.received_ns;
                if let Ok(input) = Receive::new(Protocol::Udp, m.addr, local, &buf[..m.len]) {
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
                    s.frame(&mut rtc, &stats.sent);
                }
            }
            _ = tokio::time::sleep(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
                if let Some(s) = &mut sender {
                    s.send_due(&mut rtc, &stats.sent);
                }
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
    use crate::media_sender::stamp;

    #[test]
    fn a_stamped_payload_reads_its_age() {
        let mut p = vec![0u8; 100];
        stamp(&mut p);
        std::thread::sleep(Duration::from_millis(5));
        let us = age_us(&p, realtime_ns()).unwrap();
        assert!((5_000..1_000_000).contains(&us), "{us}");
        assert_eq!(age_us(&[0; 4], realtime_ns()), None);
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
