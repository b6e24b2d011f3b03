//! The `media` scenario: R rooms × P publishers × S subscribers over `/ws` and real UDP,
//! measured on the SFU's process.
//!
//! Clients are str0m in RTP mode (DTLS, SRTP, RTCP, NACK; cheap enough that hundreds share
//! a core). Every packet a publisher sends carries its send time in its last 8 bytes, so a
//! subscriber in this process knows each packet's one-way latency through the SFU.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::percentile;
use crate::deploy::{Deployment, Layout, Probe, Remote, cluster, remote, serve};
use crate::procfs::{cpu_seconds, pin};
use crate::progress::Progress;

/// What one `media` run loads the server with.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub rooms: usize,
    pub publishers: usize,
    pub subscribers: usize,
    /// Video kbit/s per publisher in 1200-byte packets; `None`: audio only.
    pub video_kbps: Option<u64>,
    pub seconds: u64,
    /// Subscribers connecting per second (after the publishers).
    pub join_rate: f64,
    pub layout: Layout,
    /// Cores for the server's threads.
    pub pin_server: Option<Vec<usize>>,
    /// Run against this deployment instead of starting one.
    pub remote: Option<Remote>,
}

/// Counters every client of a run shares.
#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    received: AtomicU64,
    /// Set during the measurement window: latencies are kept only then.
    recording: AtomicBool,
    /// One-way latency of each packet received in the window, µs.
    latency_us: Mutex<Vec<u32>>,
    /// Subscribers' WebSocket connect → first video packet, ms.
    ttff_ms: Mutex<Vec<f64>>,
    failed: AtomicU64,
    /// Server offers that did not apply (stale after glare).
    stale_offers: AtomicU64,
}

/// The clock publishers stamp packets with, shared by every client of this process.
fn clock() -> Instant {
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

/// Runs one load and returns its report.
pub(crate) async fn run(parlor: &str, load: &Load) -> anyhow::Result<Value> {
    clock();
    let data = std::env::temp_dir().join(format!(
        "parlor-bench-{}-{}",
        std::process::id(),
        crate::deploy::rand_suffix()
    ));
    let cap = load.publishers + load.subscribers + 1;
    let d = match (&load.remote, load.layout) {
        (Some(r), _) => remote(r),
        (None, Layout::Serve) => serve(parlor, &data, cap).await?,
        (None, Layout::Cluster) => cluster(parlor, false, cap).await?,
        (None, Layout::Span) => cluster(parlor, true, cap).await?,
    };
    if let (Some(cpus), Some(pid)) = (&load.pin_server, d.sfu_pid) {
        pin(pid, cpus)?;
    }
    let r = measure(&d, load).await;
    drop(d);
    let _ = std::fs::remove_dir_all(&data);
    r
}

/// Where the measured SFU's CPU seconds and memory come from.
fn probe(d: &Deployment) -> Probe {
    Probe {
        pid: d.sfu_pid,
        metrics: d.metrics.clone(),
    }
}

/// The measured SFU's CPU seconds: from `/proc` when it runs here, else from its
/// `/metrics`.
async fn cpu(d: &Deployment) -> anyhow::Result<f64> {
    probe(d).cpu_seconds().await
}

/// The measured SFU's resident memory, bytes.
async fn memory(d: &Deployment) -> anyhow::Result<u64> {
    probe(d).rss().await
}

/// A room token: signed with the deployment's secret, or from its guest-token endpoint.
pub(crate) async fn room_token(
    d: &Deployment,
    base: &str,
    room: &str,
    name: &str,
) -> anyhow::Result<String> {
    match &d.token_secret {
        Some(secret) => {
            let claims = parlor_proto::Claims::new(
                parlor_proto::RoomId::parse(room).ok_or_else(|| anyhow!("bad room {room}"))?,
                parlor_proto::ParticipantId::parse(name)
                    .ok_or_else(|| anyhow!("bad identity {name}"))?,
                Duration::from_secs(3600),
            );
            Ok(parlor_proto::TokenKey::new(secret.as_bytes()).sign(&claims))
        }
        None => guest_token(base, room, name).await,
    }
}

/// The WebSocket URL of a signaling base URL.
pub(crate) fn ws_url(base: &str) -> String {
    let ws = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.trim_start_matches("http://")),
    };
    format!("{ws}/ws")
}

/// Connects the publishers of every room, one at a time, then the subscribers at the
/// join rate; the clients' tasks.
async fn join_everyone(
    d: &Deployment,
    load: &Load,
    stats: &Arc<Stats>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut clients = Vec::new();
    let total_subs = load.rooms * load.subscribers;
    // Rooms of their own, even on a deployment in use.
    let run_id = crate::deploy::rand_suffix() % 1_000_000;
    let room_name = |r: usize| format!("bench-{run_id}-{r}");
    let spawn = |url: String, token: String, publish: Option<Option<u64>>, who: String| {
        let stats = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = client(url, token, publish, stats.clone()).await {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("{who}: {e:#}");
            }
        })
    };
    let pub_base = d.publisher.clone();
    for r in 0..load.rooms {
        for p in 0..load.publishers {
            let token = room_token(d, &pub_base, &room_name(r), &format!("pub{p}")).await?;
            let who = format!("publisher {p} of room {r}");
            clients.push(spawn(ws_url(&pub_base), token, Some(load.video_kbps), who));
            // One publisher's negotiation at a time.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let sub_base = d.subscribers.clone();
    let mut progress = Progress::new("joining", total_subs as u64);
    let gap = Duration::from_secs_f64(1.0 / load.join_rate.max(0.1));
    let mut next = Instant::now();
    for i in 0..total_subs {
        let token =
            room_token(d, &sub_base, &room_name(i % load.rooms), &format!("sub{i}")).await?;
        clients.push(spawn(
            ws_url(&sub_base),
            token,
            None,
            format!("subscriber {i}"),
        ));
        progress.set(i as u64 + 1);
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    progress.done();
    Ok(clients)
}

async fn measure(d: &Deployment, load: &Load) -> anyhow::Result<Value> {
    let rss0 = memory(d).await?;
    let stats = Arc::new(Stats::default());
    let clients = join_everyone(d, load, &stats).await?;
    // Everyone connected and media flowing before the window opens.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let origin0 = match &d.origin {
        Some((p, m)) => Some((
            cpu_seconds(*p)?,
            metric(m, "parlor_sfu_rtp_forwarded_total").await?,
        )),
        None => None,
    };
    let cpu0 = cpu(d).await?;
    let fwd0 = metric(&d.metrics, "parlor_sfu_rtp_forwarded_total").await?;
    let late0 = metric_where(
        &d.metrics,
        "parlor_sfu_dropped_packets_total",
        "reason=\"late\"",
    )
    .await?;
    let (rx0, sent0) = (
        stats.received.load(Ordering::Relaxed),
        stats.sent.load(Ordering::Relaxed),
    );
    stats.recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut progress = Progress::new("measuring", load.seconds);
    for s in 0..load.seconds {
        tokio::time::sleep_until((t0 + Duration::from_secs(s + 1)).into()).await;
        progress.set(s + 1);
    }
    stats.recording.store(false, Ordering::Relaxed);
    progress.done();
    let (rx, sent) = (
        stats.received.load(Ordering::Relaxed) - rx0,
        stats.sent.load(Ordering::Relaxed) - sent0,
    );
    let elapsed = t0.elapsed().as_secs_f64();
    let rss1 = memory(d).await?;
    // Metrics are published once a second; wait for the window's last second to land.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cpu = cpu(d).await? - cpu0;
    let forwarded = metric(&d.metrics, "parlor_sfu_rtp_forwarded_total").await? - fwd0;
    let syscalls = metric(&d.metrics, "parlor_sfu_send_syscalls_total").await?;
    let out = metric(&d.metrics, "parlor_sfu_packets_out_total").await?;
    let late = metric_where(
        &d.metrics,
        "parlor_sfu_dropped_packets_total",
        "reason=\"late\"",
    )
    .await?
        - late0;
    let origin = match (&d.origin, origin0) {
        (Some((p, m)), Some((cpu0, fwd0))) => {
            let cpu = cpu_seconds(*p)? - cpu0;
            let piped = metric(m, "parlor_sfu_rtp_forwarded_total").await? - fwd0;
            json!({
                "origin_cpu_s": cpu,
                "origin_piped_packets_per_s": piped / elapsed,
                "origin_cpu_share_of_one_core": cpu / elapsed,
            })
        }
        _ => Value::Null,
    };
    for c in &clients {
        c.abort();
    }
    if forwarded <= 0.0 {
        bail!("nothing was forwarded");
    }
    // Every participant receives every other one's packets.
    let per_room = load.publishers + load.subscribers;
    let expected = sent as f64 * (per_room - 1) as f64;
    let mut lat = std::mem::take(&mut *stats.latency_us.lock().expect("latency"));
    lat.sort_unstable();
    let lat_ms: Vec<f64> = lat.iter().map(|&u| f64::from(u) / 1000.0).collect();
    let mut ttff = std::mem::take(&mut *stats.ttff_ms.lock().expect("ttff"));
    ttff.sort_by(f64::total_cmp);
    let participants = (load.rooms * per_room) as f64;
    Ok(json!({
        "deployment": d.what,
        "rooms": load.rooms,
        "publishers_per_room": load.publishers,
        "subscribers_per_room": load.subscribers,
        "video_kbps": load.video_kbps,
        "window_s": elapsed,
        "clients_failed": stats.failed.load(Ordering::Relaxed),
        "stale_server_offers": stats.stale_offers.load(Ordering::Relaxed),
        "publisher_packets_per_s": sent as f64 / elapsed,
        "forwarded_packets_per_s": forwarded / elapsed,
        "received_packets_per_s": rx as f64 / elapsed,
        "loss": (1.0 - rx as f64 / expected.max(1.0)).max(0.0),
        "latency_ms": {
            "p50": percentile(&lat_ms, 0.50),
            "p99": percentile(&lat_ms, 0.99),
            "max": lat_ms.last().copied().unwrap_or(f64::NAN),
        },
        "ttff_ms": {
            "p50": percentile(&ttff, 0.50),
            "p95": percentile(&ttff, 0.95),
            "count": ttff.len(),
        },
        "server_cpu_s": cpu,
        "server_cpu_us_per_forwarded_packet": cpu * 1e6 / forwarded,
        "server_cpu_share_of_one_core": cpu / elapsed,
        "server_late_dropped_per_s": late / elapsed,
        "packets_per_send_syscall": out / syscalls.max(1.0),
        "server_rss_mib": rss1 as f64 / 1048576.0,
        "server_rss_kib_per_participant": (rss1.saturating_sub(rss0)) as f64 / 1024.0 / participants,
        "origin": origin,
    }))
}

pub(crate) async fn metric(base: &str, name: &str) -> anyhow::Result<f64> {
    metric_where(base, name, "").await
}

/// The sum of a metric's series whose line contains `labels`.
pub(crate) async fn metric_where(base: &str, name: &str, labels: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

pub(crate) async fn guest_token(base: &str, room: &str, name: &str) -> anyhow::Result<String> {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/api/guest-token"))
        .json(&json!({"room": room, "name": name}))
        .send()
        .await?
        .json()
        .await?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no token: {v}"))
}

/// One participant: `/ws` signaling plus a str0m `Rtc` on its own UDP socket. A publisher
/// (`Some(video kbit/s or None for audio only)`) sends Opus-sized audio and VP8-sized
/// video and answers keyframe requests; every client counts what it receives.
async fn client(
    ws: String,
    token: String,
    publish: Option<Option<u64>>,
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
    let mut media: Option<(Mid, Option<Mid>)> = None;
    if let Some(video) = publish {
        let mut api = rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v =
            video.map(|_| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        let (offer, p) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
        pending = Some(p);
        media = Some((a, v));
        let mut tracks = vec![json!({"mid": a.to_string(), "source": "microphone"})];
        if let Some(v) = v {
            tracks.push(json!({"mid": v.to_string(), "source": "camera"}));
        }
        tx.send(send(json!({"op": "offer", "id": 2, "d": {
            "sdp": offer.to_sdp_string(), "tracks": tracks}})))
            .await?;
    }

    let mut buf = vec![0u8; 2000];
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    let mut frame_tick = tokio::time::interval(Duration::from_millis(20));
    let (mut seq_a, mut seq_v, mut n): (u64, u64, u64) = (1, 1, 0);
    let mut last_seq = 0u64;
    let mut first_video = publish.is_some();
    let mut keyframe_due = true;
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
                    if !first_video && p.payload.len() > 200 {
                        first_video = true;
                        let ms = started.elapsed().as_secs_f64() * 1000.0;
                        stats.ttff_ms.lock().expect("ttff").push(ms);
                    }
                    if stats.recording.load(Ordering::Relaxed)
                        && let Some(us) = age_us(&p.payload)
                    {
                        stats.latency_us.lock().expect("latency").push(us);
                    }
                }
                Output::Event(Event::KeyframeRequest(_)) => keyframe_due = true,
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
            _ = frame_tick.tick(), if publish.is_some() && rtc.is_connected() => {
                let Some((a, v)) = media else { continue };
                let now = Instant::now();
                let pt = |c: Codec| rtc.codec_config().params().iter().find(|p| p.spec().codec == c).map(|p| p.pt());
                let (pt_a, pt_v) = (pt(Codec::Opus), pt(Codec::Vp8));
                // Audio: one 100-byte packet per 20 ms.
                if let (Some(pt_a), Some(s)) = (pt_a, rtc.direct_api().stream_tx_by_mid(a, None)) {
                    let mut p = vec![0xfc; 100];
                    stamp(&mut p);
                    s.write_rtp(RtpWrite::new(pt_a, seq_a.into(), (n * 960) as u32, now, p));
                    seq_a += 1;
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                // Video: the bitrate in 1200-byte packets, 50 frames/s; a keyframe when
                // asked and every 2 s.
                let kbps = publish.flatten().unwrap_or(0);
                let per_tick = (kbps * 1000 / 8 / 1200 / 50).max(1);
                let key = std::mem::take(&mut keyframe_due) || n.is_multiple_of(100);
                if let (Some(v), Some(pt_v)) = (v, pt_v)
                    && let Some(s) = rtc.direct_api().stream_tx_by_mid(v, None)
                {
                    for i in 0..per_tick {
                        let mut p = vec![0u8; 1200];
                        p[0] = if i == 0 { 0x10 } else { 0 };
                        p[1] = if key { 0 } else { 1 };
                        stamp(&mut p);
                        s.write_rtp(
                            RtpWrite::new(pt_v, seq_v.into(), (n * 1800) as u32, now, p)
                                .marker(i + 1 == per_tick)
                                .nackable(true),
                        );
                        seq_v += 1;
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            _ = tokio::time::sleep(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
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
    fn signaling_urls_become_websocket_urls() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(
            ws_url("https://parlor.example.com"),
            "wss://parlor.example.com/ws"
        );
    }

    #[test]
    fn a_stamped_payload_reads_its_age() {
        let mut p = vec![0u8; 100];
        stamp(&mut p);
        std::thread::sleep(Duration::from_millis(5));
        let us = age_us(&p).unwrap();
        assert!((5_000..1_000_000).contains(&us), "{us}");
        assert_eq!(age_us(&[0; 4]), None);
    }
}
