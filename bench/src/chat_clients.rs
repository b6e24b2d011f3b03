//! The `chat` scenario's accounts and gateway clients: users registered and made members
//! of their channels, clients that connect, identify and time every delivery into a
//! lock-free histogram.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::progress::Progress;

/// Delivery latency in 10 µs buckets up to 2 s (the last bucket holds the rest),
/// counted from every client task without a lock.
pub(crate) struct Histogram(Box<[AtomicU64]>);

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_000;

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram((0..BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    pub(crate) fn record(&self, us: u64) {
        let i = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far, leaving zeros.
    pub(crate) fn take(&self) -> Vec<u64> {
        self.0
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect()
    }
}

/// The `p` quantile of bucket counts, ms (the bucket's upper edge).
pub(crate) fn quantile_ms(counts: &[u64], p: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((total as f64 * p).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return ((i as u64 + 1) * BUCKET_US) as f64 / 1e3;
        }
    }
    f64::NAN
}

/// What the client tasks share with the driver.
pub(crate) struct Shared {
    pub(crate) epoch: Instant,
    pub(crate) latency: Histogram,
    pub(crate) delivered: AtomicU64,
    /// Clients past `ready` and still connected, per channel: each message's audience.
    pub(crate) live: Vec<AtomicUsize>,
    pub(crate) ready_ms: Mutex<Vec<f64>>,
    pub(crate) failed: Mutex<Vec<String>>,
    /// Clients that were ready and lost their connection.
    pub(crate) dropped: AtomicU64,
}

/// The content a posted message carries: when it was sent (µs since `epoch`).
pub(crate) fn stamp(sent_us: u64, seq: u64) -> String {
    format!("bench:{sent_us}:{seq}")
}

/// The send time in a `message_create` frame's content, without parsing the whole frame.
fn stamped(frame: &str) -> Option<u64> {
    if !frame.contains("\"t\":\"message_create\"") {
        return None;
    }
    let at = frame.find("\"content\":\"bench:")? + "\"content\":\"bench:".len();
    let digits = &frame[at..];
    let end = digits.find(':')?;
    digits[..end].parse().ok()
}

/// A dispatch's `s`: what a heartbeat tells the server this client has.
fn seq_of(frame: &str) -> Option<u64> {
    let at = frame.find("\"s\":")? + "\"s\":".len();
    let digits = &frame[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// A registered user: access token, refresh token.
pub(crate) struct User {
    pub(crate) token: String,
    pub(crate) refresh: String,
}

/// Registers `n` users, 16 at a time (each costs the server a password hash).
pub(crate) async fn register_users(
    http: &reqwest::Client,
    base: &str,
    run_id: u64,
    n: usize,
) -> anyhow::Result<Vec<User>> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, base, next, done) = (http.clone(), base.to_owned(), next.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(mine);
                }
                let v = crate::chat::post(
                    &http,
                    format!("{base}/api/v1/auth/register"),
                    None,
                    json!({"username": format!("b{run_id}u{i}"), "password": "bench password 1"}),
                )
                .await?;
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                mine.push((
                    i,
                    User {
                        token: s("access_token"),
                        refresh: s("refresh_token"),
                    },
                ));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut progress = Progress::new("users", n as u64);
    while tasks.iter().any(|t| !t.is_finished()) {
        progress.set(done.load(Ordering::Relaxed) as u64);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.done();
    let mut users = Vec::with_capacity(n);
    for t in tasks {
        users.extend(t.await??);
    }
    users.sort_by_key(|(i, _)| *i);
    Ok(users.into_iter().map(|(_, u)| u).collect())
}

/// Users 0..K each make a guild and share an invite; user u joins guild u % K. Returns
/// each channel's id.
pub(crate) async fn make_channels(
    http: &reqwest::Client,
    base: &str,
    users: &[User],
    k: usize,
) -> anyhow::Result<Vec<String>> {
    let mut channels = Vec::with_capacity(k);
    let mut codes = Vec::with_capacity(k);
    for (i, owner) in users[..k].iter().enumerate() {
        let (gid, general) =
            crate::chat::guild_named(http, base, &owner.token, &format!("bench {i}")).await?;
        let inv = crate::chat::post(
            http,
            format!("{base}/api/v1/guilds/{gid}/invites"),
            Some(&owner.token),
            json!({"max_age": 0}),
        )
        .await?;
        codes.push(inv["code"].as_str().unwrap_or_default().to_owned());
        channels.push(general);
    }
    let mut progress = Progress::new("members", (users.len() - k) as u64);
    let codes = Arc::new(codes);
    let mut joined = 0;
    for chunk in users[k..].iter().enumerate().collect::<Vec<_>>().chunks(16) {
        let mut tasks = Vec::new();
        for (j, u) in chunk {
            let (http, url, token) = (
                http.clone(),
                format!("{base}/api/v1/invites/{}", codes[(j + k) % k]),
                u.token.clone(),
            );
            tasks.push(tokio::spawn(async move {
                crate::chat::post(&http, url, Some(&token), json!({})).await
            }));
        }
        for t in tasks {
            t.await??;
            joined += 1;
        }
        progress.set(joined);
    }
    progress.done();
    Ok(channels)
}

/// One gateway client: hello, identify, ready, then heartbeats and deliveries until the
/// connection ends.
pub(crate) async fn client(url: String, token: String, channel: usize, sh: Arc<Shared>) {
    let start = Instant::now();
    let ready = match open(&url, &token).await {
        Ok(ws) => ws,
        Err(e) => {
            sh.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{e:#}"));
            return;
        }
    };
    let (ws, interval) = ready;
    sh.ready_ms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(start.elapsed().as_secs_f64() * 1e3);
    sh.live[channel].fetch_add(1, Ordering::Relaxed);
    let (mut tx, mut rx) = ws.split();
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // The last `s` received, sent with each heartbeat as a client does.
    let mut seq = 0;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let beat = format!(r#"{{"op":"heartbeat","d":{{"seq":{seq}}}}}"#);
                if tx.send(Message::text(beat)).await.is_err() {
                    break;
                }
            }
            m = rx.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    seq = seq_of(&text).unwrap_or(seq);
                    if let Some(sent) = stamped(&text) {
                        let now = sh.epoch.elapsed().as_micros() as u64;
                        sh.latency.record(now.saturating_sub(sent));
                        sh.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    sh.live[channel].fetch_sub(1, Ordering::Relaxed);
    sh.dropped.fetch_add(1, Ordering::Relaxed);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and identifies; the socket once `ready` came, and the heartbeat interval.
async fn open(url: &str, token: &str) -> anyhow::Result<(Ws, Duration)> {
    // Small buffers: thousands of these share the bench's memory.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    let hello = next_frame(&mut ws).await?;
    let ms = hello["d"]["heartbeat_interval_ms"]
        .as_u64()
        .ok_or_else(|| anyhow!("no hello: {hello}"))?;
    ws.send(Message::text(
        json!({"op": "identify", "d": {"token": token}}).to_string(),
    ))
    .await?;
    loop {
        let v = next_frame(&mut ws).await?;
        match (v["op"].as_str(), v["t"].as_str()) {
            (_, Some("ready")) => return Ok((ws, Duration::from_millis(ms.max(1000)))),
            (Some("error"), _) => bail!("identify refused: {}", v["d"]),
            _ => {}
        }
    }
}

async fn next_frame(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Err(_) => bail!("no frame in 30 s"),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str(&t)?),
            Ok(Some(Ok(Message::Close(c)))) => bail!("closed: {c:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("closed"),
        }
    }
}

/// Fresh access tokens for the posters (they live 15 minutes; a sweep can outlast that).
pub(crate) async fn refresh(
    http: &reqwest::Client,
    base: &str,
    users: &mut [User],
) -> anyhow::Result<()> {
    for u in users {
        let v = crate::chat::post(
            http,
            format!("{base}/api/v1/auth/refresh"),
            None,
            json!({"refresh_token": u.refresh}),
        )
        .await?;
        u.token = v["access_token"].as_str().unwrap_or_default().to_owned();
        u.refresh = v["refresh_token"].as_str().unwrap_or_default().to_owned();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_frame_reads_its_send_time() {
        let frame = format!(
            r#"{{"op":"dispatch","t":"message_create","s":9,"d":{{"id":"1","content":"{}","author":{{}}}}}}"#,
            stamp(123_456, 7)
        );
        assert_eq!(stamped(&frame), Some(123_456));
        assert_eq!(seq_of(&frame), Some(9));
        assert_eq!(seq_of(r#"{"op":"heartbeat_ack"}"#), None);
        assert_eq!(
            stamped(&frame.replace("message_create", "message_update")),
            None
        );
        assert_eq!(
            stamped(r#"{"t":"message_create","d":{"content":"hello"}}"#),
            None
        );
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let h = Histogram::new();
        for us in [5, 15, 25, 1_000, 3_000_000] {
            h.record(us);
        }
        let c = h.take();
        assert_eq!(quantile_ms(&c, 0.5), 0.03);
        assert_eq!(quantile_ms(&c, 0.8), 1.01);
        assert_eq!(quantile_ms(&c, 1.0), 2000.0);
        assert!(h.take().iter().all(|&n| n == 0));
        assert!(quantile_ms(&h.take(), 0.5).is_nan());
    }
}
