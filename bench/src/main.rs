//! `parlor-bench`: load and cost measurements against a real `parlor serve` process.
//!
//! `parlor-bench forward` starts the server (one SFU worker), connects one publisher and N
//! subscribers over `/ws` and real UDP, and reports the server's CPU time per forwarded
//! packet, read from `/proc` and `/metrics`. With `--cluster` it starts one `parlor sfu`
//! node and two `parlor signaling` nodes instead (publisher and subscribers on different
//! signaling nodes) and measures the SFU node's process alone; with `--cluster --span`, two
//! SFU nodes in two regions that the room spans through a pipe.
//!
//! The load clients use str0m in RTP mode: they are cheap enough that 50 of them share a
//! core with the server. The interoperability tests use webrtc-rs instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
mod chat;
mod deploy;
mod search;

use clap::{Parser, Subcommand};
use deploy::{Layout, cluster, serve};
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

#[derive(Parser)]
#[command(name = "parlor-bench", about = "Parlor load and cost measurements")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// CPU time of the SFU per forwarded packet: one publisher, N subscribers.
    Forward {
        /// The parlor binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 50)]
        subscribers: usize,
        /// Measurement window, after a warm-up of 3 s.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Video bitrate of the publisher, kbit/s (1200-byte packets).
        #[arg(long, default_value_t = 1200)]
        video_kbps: u64,
        /// Run against a cluster on this machine instead of `parlor serve`: one
        /// `parlor sfu` node and two `parlor signaling` nodes (the publisher on one, the
        /// subscribers on the other), through the NATS and Redis at their default
        /// addresses.
        #[arg(long)]
        cluster: bool,
        /// With `--cluster`: two SFU nodes in two regions, the publisher's signaling node
        /// in one and the subscribers' in the other, so the room spans both through a pipe.
        /// The subscribers' node is measured as the SFU; the publisher's as the origin.
        #[arg(long, requires = "cluster")]
        span: bool,
    },
    /// Chat messages persisted per second: concurrent writers post for a while.
    ChatWrite {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 16)]
        writers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// `postgres://...`; SQLite in a temporary directory by default.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Search latency over one guild of N messages, by kind of query (no match, rare,
    /// common, Korean, two characters), each checked for its number of results.
    Search {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Timed queries per kind, after two untimed ones.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// `postgres://...` (an empty database); SQLite in a temporary directory by
        /// default.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Chat fan-out: latency from one message to N connected clients in one channel,
    /// and server memory per idle WebSocket.
    ChatFanout {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 50)]
        messages: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The media bench leaves the second core to the server; the chat bench has many
    // clients to drive and uses both.
    let threads = if matches!(cli.command, Command::Forward { .. }) {
        1
    } else {
        2
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match cli.command {
        Command::ChatWrite {
            parlor,
            writers,
            seconds,
            database_url,
        } => rt.block_on(chat::write(
            &parlor,
            writers,
            seconds,
            database_url.as_deref(),
        )),
        Command::ChatFanout {
            parlor,
            clients,
            messages,
            rate,
        } => rt.block_on(chat::fanout(&parlor, clients, messages, rate)),
        Command::Search {
            parlor,
            messages,
            runs,
            database_url,
        } => rt.block_on(search::run(
            &parlor,
            messages,
            runs,
            database_url.as_deref(),
        )),
        Command::Forward {
            parlor,
            subscribers,
            seconds,
            video_kbps,
            cluster: in_cluster,
            span,
        } => {
            let layout = match (in_cluster, span) {
                (false, _) => Layout::Serve,
                (true, false) => Layout::Cluster,
                (true, true) => Layout::Span,
            };
            rt.block_on(forward(&parlor, subscribers, seconds, video_kbps, layout))
        }
    }
}

async fn forward(
    parlor: &str,
    subscribers: usize,
    seconds: u64,
    video_kbps: u64,
    layout: Layout,
) -> anyhow::Result<()> {
    let data = std::env::temp_dir().join(format!("parlor-bench-{}", std::process::id()));
    let d = match layout {
        Layout::Serve => serve(parlor, &data).await?,
        Layout::Cluster => cluster(parlor, false).await?,
        Layout::Span => cluster(parlor, true).await?,
    };
    let pid = d.sfu_pid;
    let room = "bench";

    let received = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    let (sub_base, sub_http) = d.subscribers.clone();
    for i in 0..subscribers {
        let token = guest_token(&sub_base, room, &format!("sub{i}")).await?;
        let received = received.clone();
        let http = sub_http;
        clients.push(tokio::spawn(async move {
            if let Err(e) = run_client(http, token, None, received).await {
                eprintln!("subscriber {i}: {e:#}");
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (pub_base, pub_http) = d.publisher.clone();
    let token = guest_token(&pub_base, room, "publisher").await?;
    let sent = Arc::new(AtomicU64::new(0));
    {
        let sent = sent.clone();
        let http = pub_http;
        clients.push(tokio::spawn(async move {
            if let Err(e) = run_client(http, token, Some((video_kbps, sent)), Arc::default()).await
            {
                eprintln!("publisher: {e:#}");
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let base = d.metrics.clone();
    let origin0 = match &d.origin {
        Some((p, m)) => Some((
            cpu_seconds(*p)?,
            metric(m, "parlor_sfu_rtp_forwarded_total").await?,
        )),
        None => None,
    };
    let cpu0 = cpu_seconds(pid)?;
    let fwd0 = metric(&base, "parlor_sfu_rtp_forwarded_total").await?;
    let rx0 = received.load(Ordering::Relaxed);
    let sent0 = sent.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Metrics are published once a second; wait for the window's last second to land.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu0;
    let forwarded = metric(&base, "parlor_sfu_rtp_forwarded_total").await? - fwd0;
    let rx = received.load(Ordering::Relaxed) - rx0;
    let sent = sent.load(Ordering::Relaxed) - sent0;
    let origin = match (&d.origin, origin0) {
        (Some((p, m)), Some((cpu0, fwd0))) => {
            let cpu = cpu_seconds(*p)? - cpu0;
            let piped = metric(m, "parlor_sfu_rtp_forwarded_total").await? - fwd0;
            json!({
                "origin_cpu_s": cpu,
                "origin_piped_packets_per_s": piped / elapsed,
                "origin_cpu_us_per_piped_packet": cpu * 1e6 / piped.max(1.0),
                "origin_cpu_share_of_one_core": cpu / elapsed,
            })
        }
        _ => Value::Null,
    };
    let syscalls = metric(&base, "parlor_sfu_send_syscalls_total").await?;
    let out = metric(&base, "parlor_sfu_packets_out_total").await?;
    if forwarded <= 0.0 {
        bail!("nothing was forwarded");
    }
    let report = json!({
        "deployment": d.what,
        "subscribers": subscribers,
        "window_s": elapsed,
        "publisher_packets_per_s": sent as f64 / elapsed,
        "forwarded_packets_per_s": forwarded / elapsed,
        "subscriber_packets_received_per_s": rx as f64 / elapsed,
        "delivery_ratio": rx as f64 / forwarded,
        "server_cpu_s": cpu,
        "server_cpu_us_per_forwarded_packet": cpu * 1e6 / forwarded,
        "server_cpu_share_of_one_core": cpu / elapsed,
        "packets_per_send_syscall": out / syscalls.max(1.0),
        "origin": origin,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    drop(d);
    let _ = std::fs::remove_dir_all(&data);
    for c in clients {
        c.abort();
    }
    Ok(())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().ok_or_else(|| anyhow!("bad stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

async fn metric(base: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn guest_token(base: &str, room: &str, name: &str) -> anyhow::Result<String> {
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

/// One participant: `/ws` signaling plus a str0m `Rtc` on its own UDP socket.
/// With `publish`, it sends Opus-sized audio and VP8-sized video; otherwise it counts
/// the RTP packets it receives.
async fn run_client(
    http: SocketAddr,
    token: String,
    publish: Option<(u64, Arc<AtomicU64>)>,
    received: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws")).await?;
    let (mut tx, mut rx) = ws.split();
    let send = |v: Value| Message::text(v.to_string());
    tx.send(send(json!({"op": "identify", "d": {"token": token}})))
        .await?;
    tx.send(send(json!({"op": "join", "id": 1, "d": {}})))
        .await?;

    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let local = sock.local_addr()?;
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);

    let mut pending = None;
    let mut media: Option<(Mid, Mid)> = None;
    if publish.is_some() {
        let mut api = rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, p) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
        pending = Some(p);
        media = Some((a, v));
        tx.send(send(json!({"op": "offer", "id": 2, "d": {
            "sdp": offer.to_sdp_string(),
            "tracks": [{"mid": a.to_string(), "source": "microphone"},
                       {"mid": v.to_string(), "source": "camera"}]}})))
            .await?;
    }

    let mut buf = vec![0u8; 2000];
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    let mut frame_tick = tokio::time::interval(Duration::from_millis(20));
    let mut seq_a: u64 = 1;
    let mut seq_v: u64 = 1;
    let mut n: u64 = 0;
    let mut last_seq = 0u64;
    loop {
        let timeout = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    sock.send_to(&t.contents, t.destination).await?;
                }
                Output::Event(Event::RtpPacket(_)) => {
                    received.fetch_add(1, Ordering::Relaxed);
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
                    Some("offer") => {
                        let offer = SdpOffer::from_sdp_string(v["d"]["sdp"].as_str().unwrap_or(""))?;
                        let answer = rtc.sdp_api().accept_offer(offer)?;
                        tx.send(send(json!({"op": "answer", "d": {
                            "offer_id": v["d"]["offer_id"], "sdp": answer.to_sdp_string()}})))
                            .await?;
                    }
                    Some("answer") => {
                        if let Some(p) = pending.take() {
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
                let Some((kbps, sent)) = &publish else { continue };
                let Some((a, v)) = media else { continue };
                let now = Instant::now();
                let pt = |c: Codec| rtc.codec_config().params().iter().find(|p| p.spec().codec == c).map(|p| p.pt());
                let (Some(pt_a), Some(pt_v)) = (pt(Codec::Opus), pt(Codec::Vp8)) else { continue };
                // Audio: one 100-byte packet per 20 ms.
                if let Some(s) = rtc.direct_api().stream_tx_by_mid(a, None) {
                    s.write_rtp(RtpWrite::new(pt_a, seq_a.into(), (n * 960) as u32, now, vec![0xfc; 100]));
                    seq_a += 1;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                // Video: the bitrate in 1200-byte packets, keyframe every 2 s.
                let per_tick = (*kbps * 1000 / 8 / 1200 / 50).max(1);
                if let Some(s) = rtc.direct_api().stream_tx_by_mid(v, None) {
                    for i in 0..per_tick {
                        let mut p = vec![0u8; 1200];
                        p[0] = if i == 0 { 0x10 } else { 0 };
                        p[1] = if n.is_multiple_of(100) { 0 } else { 1 };
                        s.write_rtp(
                            RtpWrite::new(pt_v, seq_v.into(), (n * 1800) as u32, now, p)
                                .marker(i + 1 == per_tick)
                                .nackable(true),
                        );
                        seq_v += 1;
                        sent.fetch_add(1, Ordering::Relaxed);
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
