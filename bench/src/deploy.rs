//! The Parlor processes a bench runs against: `parlor serve`, or a cluster of `parlor sfu`
//! and `parlor signaling` nodes on this machine, stopped when dropped.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The server processes a forward bench runs against, stopped when dropped.
pub(crate) struct Deployment {
    _children: Vec<tokio::process::Child>,
    /// The process that forwards media, whose CPU time is measured; `None` for a
    /// deployment elsewhere, measured through its `/metrics`.
    pub(crate) sfu_pid: Option<u32>,
    /// Where the SFU's counters are (`/metrics`).
    pub(crate) metrics: String,
    /// The signaling nodes (base URLs) of the publishers and of the subscribers.
    pub(crate) publisher: String,
    pub(crate) subscribers: String,
    pub(crate) what: String,
    /// The deployment's token secret, when room tokens are signed here rather than asked
    /// of its guest-token endpoint.
    pub(crate) token_secret: Option<String>,
    /// When the room spans nodes: the publisher's SFU node (pid, `/metrics` base), which
    /// pipes the tracks to the measured one.
    pub(crate) origin: Option<(u32, String)>,
}

/// What `forward` runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Serve,
    Cluster,
    Span,
}

/// Starts `parlor <args>` and returns it with the first line of its output that contains
/// `marker`.
pub(crate) async fn start(
    parlor: &str,
    args: &[String],
    envs: &[(&str, &str)],
    marker: &str,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = tokio::process::Command::new(parlor)
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {parlor}"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = loop {
        let line = lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("{parlor} {} exited", args.join(" ")))?;
        if line.contains(marker) {
            break line;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, line))
}

/// The `http://ADDR` a started node printed.
pub(crate) fn printed_http(line: &str) -> anyhow::Result<(String, SocketAddr)> {
    let i = line
        .find("http://")
        .ok_or_else(|| anyhow!("no address in {line:?}"))?;
    let base = line[i..].trim().to_owned();
    let addr = base.trim_start_matches("http://").parse()?;
    Ok((base, addr))
}

pub(crate) fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The default caps of the rooms in a deployment the bench starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub participants: usize,
    /// Rooms that allow no camera and no screen share: voice-only rooms.
    pub voice_only: bool,
}

/// The room caps of a voice-only room: no camera, no screen share.
pub(crate) const VOICE_ONLY: parlor_proto::RoomCaps = parlor_proto::RoomCaps {
    max_participants: None,
    max_video_publishers: Some(0),
    max_screen_shares: Some(0),
};

impl Caps {
    /// As the environment of the SFU's process.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PARLOR_MAX_PARTICIPANTS", self.participants.to_string())];
        if self.voice_only {
            let n = |cap: Option<u32>| cap.unwrap_or_default().to_string();
            env.push((
                "PARLOR_MAX_VIDEO_PUBLISHERS",
                n(VOICE_ONLY.max_video_publishers),
            ));
            env.push(("PARLOR_MAX_SCREEN_SHARES", n(VOICE_ONLY.max_screen_shares)));
        }
        env
    }
}

/// `parlor serve` with one SFU worker, rooms capped by `caps`.
pub(crate) async fn serve(
    parlor: &str,
    data: &std::path::Path,
    caps: Caps,
) -> anyhow::Result<Deployment> {
    let mut a = args(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--media-port",
        "0",
        "--workers",
        "1",
    ]);
    a.extend(["--data-dir".into(), data.display().to_string()]);
    let env = caps.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (child, line) = start(parlor, &a, &env, "http://").await?;
    let pid = child.id().ok_or_else(|| anyhow!("server exited"))?;
    let (base, _) = printed_http(&line)?;
    Ok(Deployment {
        _children: vec![child],
        sfu_pid: Some(pid),
        metrics: base.clone(),
        publisher: base.clone(),
        subscribers: base,
        what: "parlor serve".into(),
        token_secret: None,
        origin: None,
    })
}

/// One `parlor sfu` node (one worker) with its `/metrics` address, in a region.
pub(crate) async fn sfu_node(
    parlor: &str,
    env: &[(&str, &str)],
    id: &str,
    region: &str,
) -> anyhow::Result<(tokio::process::Child, u32, String)> {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let a = args(&[
        "sfu",
        "--node-id",
        id,
        "--region",
        region,
        "--media-bind",
        "127.0.0.1",
        "--media-port",
        "0",
        "--workers",
        "1",
        "--listen",
        &format!("127.0.0.1:{metrics_port}"),
    ]);
    let (child, _) = start(parlor, &a, env, " is running").await?;
    let pid = child.id().ok_or_else(|| anyhow!("SFU node {id} exited"))?;
    Ok((child, pid, format!("http://127.0.0.1:{metrics_port}")))
}

/// One `parlor sfu` node (one worker) and two `parlor signaling` nodes, meeting through
/// NATS and Redis at their default addresses, under a cluster name of their own. With
/// `span`, a second SFU node in another region, and the signaling nodes one per region.
/// Rooms are capped by `caps`.
pub(crate) async fn cluster(parlor: &str, span: bool, caps: Caps) -> anyhow::Result<Deployment> {
    let name = format!("bench{}", std::process::id());
    let secret = format!("bench-secret-{}-{}", std::process::id(), rand_suffix());
    let caps = caps.env();
    let mut env = vec![
        ("PARLOR_CLUSTER", name.as_str()),
        ("PARLOR_TOKEN_SECRET", secret.as_str()),
    ];
    env.extend(caps.iter().map(|(k, v)| (*k, v.as_str())));
    let (sfu, pid, metrics) = sfu_node(parlor, &env, "bench-sfu", "east").await?;
    let mut children = vec![sfu];
    let origin = if span {
        let (west, west_pid, west_metrics) = sfu_node(parlor, &env, "bench-west", "west").await?;
        children.push(west);
        Some((west_pid, west_metrics))
    } else {
        None
    };
    let mut nodes = Vec::new();
    let regions = if span {
        ["west", "east"]
    } else {
        ["east", "east"]
    };
    for (id, region) in ["bench-sig1", "bench-sig2"].into_iter().zip(regions) {
        let a = args(&[
            "signaling",
            "--node-id",
            id,
            "--region",
            region,
            "--listen",
            "127.0.0.1:0",
            "--guest-tokens=true",
        ]);
        let (child, line) = start(parlor, &a, &env, "http://").await?;
        nodes.push(printed_http(&line)?.0);
        children.push(child);
    }
    // The SFU node's first heartbeats reach the registry.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let subscribers = nodes.pop().ok_or_else(|| anyhow!("no signaling node"))?;
    let publisher = nodes.pop().ok_or_else(|| anyhow!("no signaling node"))?;
    Ok(Deployment {
        _children: children,
        sfu_pid: Some(pid),
        metrics,
        publisher,
        subscribers,
        what: if span {
            "cluster, room spanning 2 SFU nodes: publisher on one, subscribers on the other"
        } else {
            "cluster: 1 SFU node, 2 signaling nodes, NATS and Redis"
        }
        .into(),
        token_secret: None,
        origin,
    })
}

/// A deployment run elsewhere: its signaling base URL, the `/metrics` base of the SFU
/// node to measure, and its token secret (or `None`: its guest-token endpoint).
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) url: String,
    pub(crate) metrics: String,
    pub(crate) token_secret: Option<String>,
}

pub(crate) fn remote(r: &Remote) -> Deployment {
    Deployment {
        _children: Vec::new(),
        sfu_pid: None,
        metrics: r.metrics.trim_end_matches('/').to_owned(),
        publisher: r.url.trim_end_matches('/').to_owned(),
        subscribers: r.url.trim_end_matches('/').to_owned(),
        what: format!("remote: {}", r.url),
        token_secret: r.token_secret.clone(),
        origin: None,
    }
}

/// Where a measured process's CPU time and memory come from: `/proc` when it runs here
/// (`pid`), else its `/metrics`.
pub(crate) struct Probe {
    pub(crate) pid: Option<u32>,
    pub(crate) metrics: String,
}

impl Probe {
    pub(crate) async fn cpu_seconds(&self) -> anyhow::Result<f64> {
        match self.pid {
            Some(pid) => crate::procfs::cpu_seconds(pid),
            None => metric(&self.metrics, "process_cpu_seconds_total").await,
        }
    }

    pub(crate) async fn rss(&self) -> anyhow::Result<u64> {
        match self.pid {
            Some(pid) => crate::procfs::rss(pid),
            None => Ok(metric(&self.metrics, "process_resident_memory_bytes").await? as u64),
        }
    }
}

pub(crate) fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// A metric from the `/metrics` page at `base`, summed over its series.
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
