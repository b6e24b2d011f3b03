//! Chat measurements against a real `parlor chat` process: messages persisted per
//! second, fan-out latency from one message to many connected clients, and server
//! memory per idle WebSocket.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// A running `parlor chat` with its data directory.
pub struct ChatServer {
    pub base: String,
    pub pid: u32,
    child: tokio::process::Child,
    pub data: std::path::PathBuf,
}

impl ChatServer {
    /// Starts `parlor chat` on SQLite in a fresh directory, request limits off.
    pub async fn start(parlor: &str, database_url: Option<&str>) -> anyhow::Result<ChatServer> {
        let data = std::env::temp_dir().join(format!("parlor-chat-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut cmd = tokio::process::Command::new(parlor);
        cmd.args(["chat", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("RUST_LOG", "warn")
            .env("PARLOR_CHAT_RATE_LIMITS", "off")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {parlor}"))?;
        let pid = child.id().ok_or_else(|| anyhow!("server exited"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow!("server exited"))?;
            if let Some(i) = line.find("http://") {
                break line[i..].trim().to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ChatServer {
            base,
            pid,
            child,
            data,
        })
    }

    /// Resident memory, bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        crate::procfs::rss(self.pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub(crate) async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {v}");
    }
    Ok(v)
}

/// A user's access token and id.
pub(crate) async fn register(
    http: &reqwest::Client,
    base: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let v = post(
        http,
        format!("{base}/api/v1/auth/register"),
        None,
        json!({"username": name, "password": "bench password 1"}),
    )
    .await?;
    Ok((
        v["access_token"].as_str().unwrap_or_default().to_owned(),
        v["user"]["id"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// A guild and its `general` channel.
pub(crate) async fn guild(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<(String, String)> {
    guild_named(http, base, token, "bench").await
}

/// A guild of this name and its `general` channel.
pub(crate) async fn guild_named(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let g = post(
        http,
        format!("{base}/api/v1/guilds"),
        Some(token),
        json!({"name": name}),
    )
    .await?;
    let general = g["channels"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "general"))
        .and_then(|c| c["id"].as_str())
        .ok_or_else(|| anyhow!("no general channel"))?
        .to_owned();
    Ok((g["id"].as_str().unwrap_or_default().to_owned(), general))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Messages persisted per second: `writers` concurrent clients post for `seconds`.
pub async fn write(
    parlor: &str,
    writers: usize,
    seconds: u64,
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    let server = ChatServer::start(parlor, database_url).await?;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let (token, _) = register(&http, &base, "writer").await?;
    let (_, general) = guild(&http, &base, &token).await?;
    let url = format!("{base}/api/v1/channels/{general}/messages");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (http, url, token, latencies, errors) = (
            http.clone(),
            url.clone(),
            token.clone(),
            latencies.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("writer {w} message {i}: 안녕하세요, hello")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => mine.push(start.elapsed().as_secs_f64() * 1e3),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_by(f64::total_cmp);
    let report = json!({
        "store": if database_url.is_some() { "postgres" } else { "sqlite" },
        "writers": writers,
        "window_s": elapsed,
        "messages_persisted": lat.len(),
        "messages_per_s": lat.len() as f64 / elapsed,
        "errors": errors.load(Ordering::Relaxed),
        "post_latency_ms_p50": percentile(&lat, 0.5),
        "post_latency_ms_p99": percentile(&lat, 0.99),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    server.stop().await;
    Ok(())
}

/// One message to `clients` connected clients in one channel: latency from the POST to
/// each client's receipt, and server memory per idle connection.
pub async fn fanout(
    parlor: &str,
    clients: usize,
    messages: usize,
    rate: f64,
) -> anyhow::Result<()> {
    let server = ChatServer::start(parlor, None).await?;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    let (owner, _) = register(&http, &base, "poster").await?;
    let (gid, general) = guild(&http, &base, &owner).await?;
    let inv = post(
        &http,
        format!("{base}/api/v1/guilds/{gid}/invites"),
        Some(&owner),
        json!({"max_age": 0}),
    )
    .await?;
    let code = inv["code"].as_str().unwrap_or_default().to_owned();

    eprintln!("registering {clients} users…");
    let tokens = Arc::new(Mutex::new(Vec::with_capacity(clients)));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, base, code, tokens, next) = (
            http.clone(),
            base.clone(),
            code.clone(),
            tokens.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= clients {
                    return Ok::<_, anyhow::Error>(());
                }
                let (t, _) = register(&http, &base, &format!("fan{i}")).await?;
                post(
                    &http,
                    format!("{base}/api/v1/invites/{code}"),
                    Some(&t),
                    json!({}),
                )
                .await?;
                tokens.lock().await.push(t);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let tokens = std::mem::take(&mut *tokens.lock().await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss()?;

    eprintln!("connecting {clients} WebSockets…");
    let ws_url = format!("{}/api/v1/gateway", base.replacen("http://", "ws://", 1));
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(clients * messages)));
    let ready = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for t in tokens {
        let (ws_url, sent_at, latencies, ready) = (
            ws_url.clone(),
            sent_at.clone(),
            latencies.clone(),
            ready.clone(),
        );
        conns.push(tokio::spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(&ws_url).await?;
            let (mut tx, mut rx) = ws.split();
            tx.send(Message::text(
                json!({"op": "identify", "d": {"token": t}}).to_string(),
            ))
            .await?;
            let mut mine = Vec::new();
            let mut heartbeat = tokio::time::interval(Duration::from_secs(20));
            heartbeat.tick().await;
            let mut got = 0;
            loop {
                tokio::select! {
                    _ = heartbeat.tick() => {
                        tx.send(Message::text(json!({"op": "heartbeat"}).to_string())).await?;
                    }
                    m = rx.next() => {
                        let Some(Ok(Message::Text(text))) = m else { break };
                        let now = epoch.elapsed().as_micros() as u64;
                        let v: Value = serde_json::from_str(&text)?;
                        match v["t"].as_str() {
                            Some("ready") => {
                                ready.fetch_add(1, Ordering::Relaxed);
                            }
                            Some("message_create") => {
                                let i: usize = v["d"]["content"]
                                    .as_str()
                                    .and_then(|c| c.strip_prefix("fanout "))
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(usize::MAX);
                                if let Some(at) = sent_at.get(i) {
                                    let sent = at.load(Ordering::Acquire);
                                    mine.push((now.saturating_sub(sent)) as f64 / 1e3);
                                }
                                got += 1;
                                if got == sent_at.len() {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            latencies.lock().await.extend(mine);
            Ok::<_, anyhow::Error>(())
        }));
    }
    let wait = Instant::now();
    while (ready.load(Ordering::Relaxed) as usize) < clients {
        if wait.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {clients} clients got ready",
                ready.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Idle for a moment, then measure what the connections cost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = server.rss()?;

    eprintln!("posting {messages} messages at {rate}/s…");
    let url = format!("{base}/api/v1/channels/{general}/messages");
    let gap = Duration::from_secs_f64(1.0 / rate);
    for (i, at) in sent_at.iter().enumerate() {
        let start = Instant::now();
        at.store(epoch.elapsed().as_micros() as u64, Ordering::Release);
        post(
            &http,
            url.clone(),
            Some(&owner),
            json!({"content": format!("fanout {i}")}),
        )
        .await?;
        tokio::time::sleep(gap.saturating_sub(start.elapsed())).await;
    }
    let drain = tokio::time::timeout(Duration::from_secs(60), async {
        for c in conns {
            let _ = c.await;
        }
    })
    .await;
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_by(f64::total_cmp);
    let report = json!({
        "clients": clients,
        "messages": messages,
        "post_rate_per_s": rate,
        "deliveries_expected": clients * messages,
        "deliveries": lat.len(),
        "all_delivered_within_60s": drain.is_ok(),
        "fanout_latency_ms_p50": percentile(&lat, 0.5),
        "fanout_latency_ms_p99": percentile(&lat, 0.99),
        "fanout_latency_ms_max": lat.last().copied().unwrap_or(f64::NAN),
        "server_rss_before_connections_mib": rss_before as f64 / 1048576.0,
        "server_rss_idle_connections_mib": rss_idle as f64 / 1048576.0,
        "server_bytes_per_idle_connection": (rss_idle.saturating_sub(rss_before)) as f64 / clients as f64,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    server.stop().await;
    Ok(())
}
