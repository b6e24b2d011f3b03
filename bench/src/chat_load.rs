//! The `chat` scenario: C gateway clients (sessions of U users) across K channels, each
//! channel in a guild of its own so that a message's audience is exactly that channel's
//! clients. The clients connect at a rate (a connection storm: time from opening the
//! WebSocket to `ready`), sit idle (the server's memory per connection), then the
//! channels' owners post over REST at a total rate. Reported: delivery latency from each
//! POST to each client's `message_create` (p50/p99/max), deliveries per second and per
//! second of server CPU, loss, and post latency. A sweep raises the rate until p99
//! passes 50 ms or loss passes 1%.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use crate::chat::{ChatServer, percentile};
use crate::chat_clients::{
    Histogram, Shared, client, make_channels, quantile_ms, refresh, register_users, stamp,
};
use crate::deploy::Probe;
use crate::progress::Progress;
use crate::report::{Chart, MAX_LOSS, MAX_P99_MS, chart};

/// What one `chat` run does.
#[derive(Debug, Clone)]
pub(crate) struct ChatLoad {
    pub clients: usize,
    pub users: usize,
    pub channels: usize,
    /// Messages per second, all channels together; with `sweep`, the first step.
    pub rate: f64,
    pub seconds: u64,
    /// Connections opened per second.
    pub connect_rate: f64,
    pub sweep: Option<f64>,
    pub max_rate: f64,
    pub database_url: Option<String>,
    /// A deployment elsewhere: its chat base URL and the `/metrics` base to read.
    pub remote: Option<(String, String)>,
}

pub(crate) async fn run(parlor: &str, load: &ChatLoad) -> anyhow::Result<Value> {
    if load.clients == 0 || load.users == 0 || load.channels == 0 || load.rate <= 0.0 {
        bail!("--clients, --users, --channels and --rate must be above zero");
    }
    if load.users < load.channels {
        bail!("each channel needs a user to own it: --users at least --channels");
    }
    let server = match &load.remote {
        Some(_) => None,
        None => Some(ChatServer::start(parlor, load.database_url.as_deref()).await?),
    };
    let (base, metrics) = match (&load.remote, &server) {
        (Some((url, m)), _) => (url.trim_end_matches('/').to_owned(), m.clone()),
        (None, Some(s)) => (s.base.clone(), s.base.clone()),
        (None, None) => unreachable!("a local run starts a server"),
    };
    let probe = Probe {
        pid: server.as_ref().map(|s| s.pid),
        metrics,
    };
    let r = measure(&base, &probe, load).await;
    if let Some(s) = server {
        s.stop().await;
    }
    r
}

async fn measure(base: &str, probe: &Probe, load: &ChatLoad) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let run_id = crate::deploy::rand_suffix() % 1_000_000;
    let mut users = register_users(&http, base, run_id, load.users).await?;
    let channels = make_channels(&http, base, &users, load.channels).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = probe.rss().await?;

    let sh = Arc::new(Shared {
        epoch: Instant::now(),
        latency: Histogram::new(),
        delivered: AtomicU64::new(0),
        live: (0..load.channels).map(|_| AtomicUsize::new(0)).collect(),
        ready_ms: Mutex::new(Vec::with_capacity(load.clients)),
        failed: Mutex::new(Vec::new()),
        dropped: AtomicU64::new(0),
    });
    let ws_url = format!(
        "{}/api/v1/gateway",
        base.replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    let gap = Duration::from_secs_f64(1.0 / load.connect_rate.max(0.1));
    let settled = |sh: &Shared| {
        sh.ready_ms.lock().unwrap_or_else(|p| p.into_inner()).len()
            + sh.failed.lock().unwrap_or_else(|p| p.into_inner()).len()
    };
    // Two halves, each left to settle: the memory per connection is the growth from the
    // first half to the whole, so what registering users left in the allocator (password
    // hashing takes tens of MiB, returned when the allocator gets to it) does not count.
    let half = load.clients / 2;
    let mut rss_half = rss_before;
    let mut storm_s = 0.0;
    let mut progress = Progress::new("connecting", load.clients as u64);
    for (from, to) in [(0, half), (half, load.clients)] {
        let start = Instant::now();
        for c in from..to {
            tokio::time::sleep_until((start + gap.mul_f64((c - from) as f64)).into()).await;
            let u = c % load.users;
            let token = users[u].token.clone();
            tokio::spawn(client(ws_url.clone(), token, u % load.channels, sh.clone()));
            progress.set(c as u64 + 1);
        }
        let wait = Instant::now();
        while settled(&sh) < to && wait.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        storm_s += start.elapsed().as_secs_f64();
        // Idle a moment: what is left is what idle connections cost.
        tokio::time::sleep(Duration::from_secs(2)).await;
        if to == half {
            rss_half = probe.rss().await?;
        }
    }
    progress.done();
    let rss_idle = probe.rss().await?;
    let mut ready = sh
        .ready_ms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ready.sort_by(f64::total_cmp);
    let failed = sh.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let second_half = (load.clients - half).max(1) as f64;
    let connections = json!({
        "opened": load.clients,
        "ready": ready.len(),
        "failed": failed.len(),
        "first_failure": failed.first(),
        "connect_rate_per_s": load.connect_rate,
        "storm_s": storm_s,
        "ready_ms": {
            "p50": percentile(&ready, 0.5),
            "p99": percentile(&ready, 0.99),
            "max": ready.last().copied().unwrap_or(f64::NAN),
        },
        "server_rss_before_mib": rss_before as f64 / 1048576.0,
        "server_rss_half_mib": rss_half as f64 / 1048576.0,
        "server_rss_idle_mib": rss_idle as f64 / 1048576.0,
        "server_bytes_per_idle_connection":
            rss_idle.saturating_sub(rss_half) as f64 / second_half,
    });
    if ready.is_empty() {
        bail!(
            "no client got ready: {}",
            failed.first().cloned().unwrap_or_default()
        );
    }

    let mut runs = Vec::new();
    let mut best = None;
    let mut rate = load.rate;
    let mut seq = 0;
    if load.sweep.is_some() {
        eprintln!("{}\n{HEADER}", connections_line(&connections));
    }
    loop {
        refresh(&http, base, &mut users[..load.channels]).await?;
        let posters: Vec<(String, String)> = users[..load.channels]
            .iter()
            .zip(&channels)
            .map(|(u, c)| (u.token.clone(), c.clone()))
            .collect();
        let r = window(
            &http,
            base,
            probe,
            &sh,
            &posters,
            rate,
            load.seconds,
            &mut seq,
        )
        .await?;
        if load.sweep.is_some() {
            eprintln!("{}", row(&r));
        }
        let within = within_limits(&r);
        if within {
            best = Some(rate);
        }
        runs.push(r);
        let Some(step) = load.sweep else { break };
        rate += step;
        if !within || rate > load.max_rate {
            break;
        }
    }
    let mut report = json!({
        "scenario": "chat",
        "deployment": match &load.remote { Some((url, _)) => format!("remote: {url}"), None => "parlor chat".into() },
        "store": if load.remote.is_some() { "remote" } else if load.database_url.is_some() { "postgres" } else { "sqlite" },
        "clients": load.clients,
        "users": load.users,
        "channels": load.channels,
        "clients_per_channel": load.clients as f64 / load.channels as f64,
        "connections": connections,
        "runs": runs,
    });
    if load.sweep.is_some() {
        report["limits"] = json!({"loss": MAX_LOSS, "p99_ms": MAX_P99_MS});
        report["max_rate_within_limits"] = json!(best);
    }
    Ok(report)
}

fn connections_line(c: &Value) -> String {
    format!(
        "connections: {} ready, {} failed, at {}/s; ready p50 {:.1} ms, p99 {:.1} ms; server memory {:.0} B per idle connection",
        c["ready"],
        c["failed"],
        c["connect_rate_per_s"],
        c["ready_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        c["ready_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        c["server_bytes_per_idle_connection"]
            .as_f64()
            .unwrap_or(f64::NAN),
    )
}

/// Posts at `rate` for `seconds`, round-robin over the channels, open loop: a post not
/// answered yet does not hold back the next (at most 1,024 in flight; beyond that a
/// post is skipped and counted).
#[allow(clippy::too_many_arguments)]
async fn window(
    http: &reqwest::Client,
    base: &str,
    probe: &Probe,
    sh: &Arc<Shared>,
    posters: &[(String, String)],
    rate: f64,
    seconds: u64,
    seq: &mut u64,
) -> anyhow::Result<Value> {
    sh.latency.take();
    let delivered0 = sh.delivered.load(Ordering::Relaxed);
    let expected = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let post_ms = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(1024));
    let mut skipped = 0u64;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let cpu0 = probe.cpu_seconds().await?;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    let mut progress = Progress::new("posting", seconds);
    for i in 0u64.. {
        let at = t0 + gap.mul_f64(i as f64);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        progress.set(t0.elapsed().as_secs());
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let k = i as usize % posters.len();
        let (token, channel) = &posters[k];
        let req = http
            .post(format!("{base}/api/v1/channels/{channel}/messages"))
            .bearer_auth(token);
        let (sh, expected, ok, errors, post_ms) = (
            sh.clone(),
            expected.clone(),
            ok.clone(),
            errors.clone(),
            post_ms.clone(),
        );
        *seq += 1;
        let s = *seq;
        tokio::spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let sent = sh.epoch.elapsed().as_micros() as u64;
            // The audience as the post leaves: the channel's clients then connected.
            let audience = sh.live[k].load(Ordering::Relaxed) as u64;
            let r = req.json(&json!({"content": stamp(sent, s)})).send().await;
            match r {
                Ok(r) if r.status().is_success() => {
                    post_ms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(started.elapsed().as_secs_f64() * 1e3);
                    ok.fetch_add(1, Ordering::Relaxed);
                    expected.fetch_add(audience, Ordering::Relaxed);
                }
                Ok(r) => {
                    *errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(r.status().to_string())
                        .or_default() += 1
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    };
                    *errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(what.into())
                        .or_default() += 1;
                }
            }
        });
    }
    progress.done();
    let window_s = t0.elapsed().as_secs_f64();
    let delivered_in_window = sh.delivered.load(Ordering::Relaxed) - delivered0;
    let cpu = probe.cpu_seconds().await? - cpu0;
    // Let the posts in flight finish and their deliveries arrive (5 s at most).
    let _all = in_flight.acquire_many(1024).await?;
    let drain = Instant::now();
    while sh.delivered.load(Ordering::Relaxed) - delivered0 < expected.load(Ordering::Relaxed)
        && drain.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = sh.delivered.load(Ordering::Relaxed) - delivered0;
    let expected = expected.load(Ordering::Relaxed);
    // What the sessions keep of what they were sent (their replay buffers) shows here.
    let rss_after = probe.rss().await?;
    let counts = sh.latency.take();
    let mut post = std::mem::take(&mut *post_ms.lock().unwrap_or_else(|p| p.into_inner()));
    post.sort_by(f64::total_cmp);
    let posted = ok.load(Ordering::Relaxed);
    Ok(json!({
        "rate_per_s": rate,
        "window_s": window_s,
        "server_rss_after_mib": rss_after as f64 / 1048576.0,
        "posted": posted,
        "posted_per_s": posted as f64 / window_s,
        "post_errors": *errors.lock().unwrap_or_else(|p| p.into_inner()),
        "posts_skipped": skipped,
        "deliveries_expected": expected,
        "deliveries": delivered,
        "loss": if expected == 0 { 0.0 } else { 1.0 - delivered.min(expected) as f64 / expected as f64 },
        "deliveries_per_s": delivered_in_window as f64 / window_s,
        "delivery_ms": {
            "p50": quantile_ms(&counts, 0.5),
            "p99": quantile_ms(&counts, 0.99),
            "max": quantile_ms(&counts, 1.0),
        },
        "post_ms": {"p50": percentile(&post, 0.5), "p99": percentile(&post, 0.99)},
        "server_cpu_share_of_one_core": cpu / window_s,
        "deliveries_per_server_cpu_s": if cpu > 0.0 { delivered_in_window as f64 / cpu } else { f64::NAN },
        "clients_dropped": sh.dropped.load(Ordering::Relaxed),
    }))
}

fn within_limits(r: &Value) -> bool {
    let errors = r["post_errors"].as_object().is_none_or(|e| e.is_empty());
    errors
        && r["posts_skipped"].as_u64() == Some(0)
        && r["loss"].as_f64().unwrap_or(1.0) <= MAX_LOSS
        && r["delivery_ms"]["p99"].as_f64().unwrap_or(f64::INFINITY) <= MAX_P99_MS
}

const HEADER: &str = "msg/s  posted/s  deliveries/s  loss    p50 ms  p99 ms  max ms  post p99  core   deliveries/CPU-s";

fn row(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    format!(
        "{:>5.0}  {:>8.0}  {:>12.0}  {:>5.2}%  {:>6.1}  {:>6.1}  {:>6.0}  {:>8.1}  {:>4.0}%  {:>16.0}",
        f(&r["rate_per_s"]),
        f(&r["posted_per_s"]),
        f(&r["deliveries_per_s"]),
        f(&r["loss"]) * 100.0,
        f(&r["delivery_ms"]["p50"]),
        f(&r["delivery_ms"]["p99"]),
        f(&r["delivery_ms"]["max"]),
        f(&r["post_ms"]["p99"]),
        f(&r["server_cpu_share_of_one_core"]) * 100.0,
        f(&r["deliveries_per_server_cpu_s"]),
    )
}

/// Prints the table (unless the JSON goes to standard output), writes the JSON and, for
/// a sweep, the chart: p99 delivery latency and deliveries per server CPU-second against
/// the message rate.
pub(crate) fn emit(
    report: &Value,
    json_to: Option<&str>,
    svg_to: Option<&str>,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    if json_to == Some("-") {
        println!("{text}");
    } else {
        println!("{}", connections_line(&report["connections"]));
        println!("{HEADER}");
        for r in &runs {
            println!("{}", row(r));
        }
        if let Some(best) = report.get("max_rate_within_limits") {
            println!(
                "highest message rate within {:.0}% loss and {MAX_P99_MS} ms p99: {best}",
                MAX_LOSS * 100.0
            );
        }
        if let Some(path) = json_to {
            std::fs::write(path, &text)?;
        }
    }
    if let Some(path) = svg_to {
        let pts: Vec<(f64, f64, f64)> = runs
            .iter()
            .map(|r| {
                (
                    r["rate_per_s"].as_f64().unwrap_or(0.0),
                    r["delivery_ms"]["p99"].as_f64().unwrap_or(0.0),
                    r["deliveries_per_server_cpu_s"].as_f64().unwrap_or(0.0) / 1e3,
                )
            })
            .collect();
        let c = Chart {
            x: "messages per second",
            left: "p99 delivery latency, ms",
            right: "thousand deliveries per server CPU-second",
            limit: MAX_P99_MS,
        };
        std::fs::write(path, chart(&pts, &c))?;
    }
    Ok(())
}
