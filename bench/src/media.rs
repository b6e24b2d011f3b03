//! The `media` scenario: R rooms × P publishers × S subscribers over `/ws` and real UDP,
//! measured on the SFU's process.
//!
//! The clients are in `media_client.rs`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::chat::percentile;
use crate::deploy::{
    Caps, Deployment, Layout, Probe, Remote, cluster, metric, metric_where, remote, serve,
};
use crate::media_client::{Stats, client};
use crate::media_sender::{LAYERS, Publish};
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
    /// Video as three simulcast layers (10%, a third and all of `video_kbps`).
    pub simulcast: bool,
    /// Publishers pace their packets as a browser does ([`Publish::paced`]).
    pub paced: bool,
    /// Rooms whose caps allow no video (voice-only): the caps go in the tokens the bench
    /// signs, or in the environment of the deployment it starts.
    pub voice_rooms: bool,
    pub seconds: u64,
    /// Subscribers connecting per second (after the publishers).
    pub join_rate: f64,
    pub layout: Layout,
    /// Cores for the server's threads.
    pub pin_server: Option<Vec<usize>>,
    /// Run against this deployment instead of starting one.
    pub remote: Option<Remote>,
}

/// Runs one load and returns its report.
pub(crate) async fn run(parlor: &str, load: &Load) -> anyhow::Result<Value> {
    if load.voice_rooms
        && load
            .remote
            .as_ref()
            .is_some_and(|r| r.token_secret.is_none())
    {
        bail!("voice-only rooms in a deployment elsewhere need --token-secret");
    }
    let data = std::env::temp_dir().join(format!(
        "parlor-bench-{}-{}",
        std::process::id(),
        crate::deploy::rand_suffix()
    ));
    let caps = Caps {
        participants: load.publishers + load.subscribers + 1,
        voice_only: load.voice_rooms,
    };
    let d = match (&load.remote, load.layout) {
        (Some(r), _) => remote(r),
        (None, Layout::Serve) => serve(parlor, &data, caps).await?,
        (None, Layout::Cluster) => cluster(parlor, false, caps).await?,
        (None, Layout::Span) => cluster(parlor, true, caps).await?,
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
/// With `voice_only`, signed tokens carry caps that allow no video (guest tokens carry
/// none: a deployment the bench starts gets those caps as its defaults).
pub(crate) async fn room_token(
    d: &Deployment,
    base: &str,
    room: &str,
    name: &str,
    voice_only: bool,
) -> anyhow::Result<String> {
    match &d.token_secret {
        Some(secret) => {
            let mut claims = parlor_proto::Claims::new(
                parlor_proto::RoomId::parse(room).ok_or_else(|| anyhow!("bad room {room}"))?,
                parlor_proto::ParticipantId::parse(name)
                    .ok_or_else(|| anyhow!("bad identity {name}"))?,
                Duration::from_secs(3600),
            );
            if voice_only {
                claims.caps = Some(crate::deploy::VOICE_ONLY);
            }
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
    let spawn = |url: String, token: String, publish: Option<Publish>, who: String| {
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
            let token = room_token(
                d,
                &pub_base,
                &room_name(r),
                &format!("pub{p}"),
                load.voice_rooms,
            )
            .await?;
            let who = format!("publisher {p} of room {r}");
            let publish = Publish {
                video_kbps: load.video_kbps,
                simulcast: load.simulcast,
                paced: load.paced,
            };
            clients.push(spawn(ws_url(&pub_base), token, Some(publish), who));
            // One publisher's negotiation at a time.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let sub_base = d.subscribers.clone();
    let mut progress = Progress::new("joining", total_subs as u64);
    let gap = Duration::from_secs_f64(1.0 / load.join_rate.max(0.1));
    let mut next = Instant::now();
    for i in 0..total_subs {
        let token = room_token(
            d,
            &sub_base,
            &room_name(i % load.rooms),
            &format!("sub{i}"),
            load.voice_rooms,
        )
        .await?;
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
    // Every participant receives every other one's packets; with simulcast, one layer of
    // each video track, which the sender-side count cannot tell: the gaps in what each
    // subscriber received tell it.
    let per_room = load.publishers + load.subscribers;
    let expected = sent as f64 * (per_room - 1) as f64;
    let loss_from_sent = (1.0 - rx as f64 / expected.max(1.0)).max(0.0);
    let loss_from_gaps = stats.loss_from_gaps();
    let by_layer: Vec<f64> = stats
        .received_by_layer
        .iter()
        .map(|n| n.load(Ordering::Relaxed) as f64 / elapsed)
        .collect();
    let video_by_layer = if load.simulcast {
        let layers = LAYERS.iter().zip(&by_layer);
        json!(
            layers
                .map(|((rid, ..), n)| json!({"rid": rid, "packets_per_s": n}))
                .collect::<Vec<_>>()
        )
    } else {
        Value::Null
    };
    let lat_ms = sorted_ms(&stats.latency_us);
    let arrival_ms = sorted_ms(&stats.arrival_us);
    let mut ttff = std::mem::take(&mut *stats.ttff_ms.lock().expect("ttff"));
    ttff.sort_by(f64::total_cmp);
    let participants = (load.rooms * per_room) as f64;
    Ok(json!({
        "deployment": d.what,
        "rooms": load.rooms,
        "publishers_per_room": load.publishers,
        "subscribers_per_room": load.subscribers,
        "video_kbps": load.video_kbps,
        "simulcast": load.simulcast,
        "paced": load.paced,
        "voice_rooms": load.voice_rooms,
        "window_s": elapsed,
        "clients_failed": stats.failed.load(Ordering::Relaxed),
        "stale_server_offers": stats.stale_offers.load(Ordering::Relaxed),
        "publisher_packets_per_s": sent as f64 / elapsed,
        "forwarded_packets_per_s": forwarded / elapsed,
        "received_packets_per_s": rx as f64 / elapsed,
        "loss": if load.simulcast { loss_from_gaps } else { loss_from_sent },
        "loss_from_sequence_gaps": loss_from_gaps,
        "received_video_packets_per_s_by_layer": video_by_layer,
        "latency_ms": spread(&arrival_ms),
        "latency_read_ms": spread(&lat_ms),
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

/// The latencies of the window, sorted, in ms.
fn sorted_ms(us: &Mutex<Vec<u32>>) -> Vec<f64> {
    let mut v = std::mem::take(&mut *us.lock().expect("latency"));
    v.sort_unstable();
    v.iter().map(|&u| f64::from(u) / 1000.0).collect()
}

fn spread(sorted: &[f64]) -> Value {
    json!({
        "p50": percentile(sorted, 0.50),
        "p99": percentile(sorted, 0.99),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
    })
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
}
