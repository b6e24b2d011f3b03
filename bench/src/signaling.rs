//! The `signaling` scenario: join storms. Participants connect to `/ws`, identify and join
//! rooms of a given size at a given rate, stay a while and leave. Reports the time from
//! opening the WebSocket to the `joined` reply, errors by code, and presence fan-out: how
//! many `participant_joined` events reached the others in the room, and how long after
//! the newcomer's own `joined` they arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::chat::percentile;
use crate::deploy::{Deployment, Remote, remote, serve};
use crate::media::{room_token, ws_url};
use crate::media_client::open_session;
use crate::progress::Progress;

/// What one storm does.
#[derive(Debug, Clone)]
pub(crate) struct Storm {
    pub joins: usize,
    /// Joins per second.
    pub rate: f64,
    pub room_size: usize,
    /// How long each participant stays before leaving.
    pub hold: Duration,
    pub remote: Option<Remote>,
}

#[derive(Default)]
struct Tally {
    /// WebSocket connect → `joined`, ms.
    join_ms: Vec<f64>,
    errors: HashMap<String, u64>,
    /// When each identity's `joined` arrived.
    joined_at: HashMap<String, Instant>,
    /// Newcomer's `joined` → another member's `participant_joined` for it, ms.
    fanout_ms: Vec<f64>,
    /// `participant_joined` events for identities not yet seen joined (their own reply
    /// was still on its way): counted, not timed.
    early: u64,
}

pub(crate) async fn run(parlor: &str, storm: &Storm) -> anyhow::Result<Value> {
    if storm.room_size == 0 || storm.joins == 0 {
        bail!("--joins and --room-size must be at least 1");
    }
    let data = std::env::temp_dir().join(format!(
        "parlor-bench-sig-{}-{}",
        std::process::id(),
        crate::deploy::rand_suffix()
    ));
    let d = match &storm.remote {
        Some(r) => remote(r),
        None => {
            let caps = crate::deploy::Caps {
                participants: storm.room_size + 1,
                voice_only: false,
            };
            serve(parlor, &data, caps).await?
        }
    };
    let r = measure(&d, storm).await;
    drop(d);
    let _ = std::fs::remove_dir_all(&data);
    r
}

async fn measure(d: &Deployment, storm: &Storm) -> anyhow::Result<Value> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let run_id = crate::deploy::rand_suffix() % 1_000_000;
    let gap = Duration::from_secs_f64(1.0 / storm.rate.max(0.1));
    let started = Instant::now();
    let mut next = started;
    let mut tasks = Vec::with_capacity(storm.joins);
    let mut progress = Progress::new("joining", storm.joins as u64);
    for i in 0..storm.joins {
        let room = format!("storm-{run_id}-{}", i / storm.room_size);
        let identity = format!("u{i}");
        let token = room_token(d, &d.subscribers, &room, &identity, false).await?;
        let (url, tally, hold) = (ws_url(&d.subscribers), tally.clone(), storm.hold);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = participant(url, token, identity, hold, tally.clone()).await {
                let mut t = tally.lock().expect("tally");
                *t.errors.entry(format!("{e:#}")).or_default() += 1;
            }
        }));
        progress.set(i as u64 + 1);
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    progress.done();
    let offered = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let t = std::mem::take(&mut *tally.lock().expect("tally"));
    let mut join_ms = t.join_ms;
    join_ms.sort_by(f64::total_cmp);
    let mut fanout_ms = t.fanout_ms;
    fanout_ms.sort_by(f64::total_cmp);
    let expected = announcements(storm.joins, storm.room_size);
    let delivered = fanout_ms.len() as u64 + t.early;
    Ok(json!({
        "deployment": d.what,
        "joins": storm.joins,
        "offered_joins_per_s": storm.joins as f64 / offered,
        "room_size": storm.room_size,
        "joined": join_ms.len(),
        "errors": t.errors,
        "join_ms": {
            "p50": percentile(&join_ms, 0.50),
            "p95": percentile(&join_ms, 0.95),
            "p99": percentile(&join_ms, 0.99),
            "max": join_ms.last().copied().unwrap_or(f64::NAN),
        },
        "presence": {
            "participant_joined_expected": expected,
            "participant_joined_delivered": delivered,
            "fanout_ms_p50": percentile(&fanout_ms, 0.50),
            "fanout_ms_p99": percentile(&fanout_ms, 0.99),
        },
    }))
}

/// The `participant_joined` events a storm should deliver: each newcomer is announced to
/// everyone already in its room (rooms fill in order, the last one perhaps partly).
fn announcements(joins: usize, room_size: usize) -> usize {
    let pairs = |k: usize| k * k.saturating_sub(1) / 2;
    (joins / room_size) * pairs(room_size) + pairs(joins % room_size)
}

/// One participant: connect, identify, join, stay `hold` answering heartbeats and
/// counting who joins after it, leave.
async fn participant(
    url: String,
    token: String,
    identity: String,
    hold: Duration,
    tally: Arc<Mutex<Tally>>,
) -> anyhow::Result<()> {
    let opened = Instant::now();
    let (mut tx, mut rx) = open_session(url, &token).await?;
    let send = |v: Value| Message::text(v.to_string());
    let leave_at = tokio::time::Instant::now() + hold;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    let mut last_seq = 0u64;
    let mut joined = false;
    loop {
        tokio::select! {
            m = rx.next() => {
                let Some(Ok(Message::Text(t))) = m else { bail!("signaling closed") };
                let v: Value = serde_json::from_str(t.as_str())?;
                last_seq = v["seq"].as_u64().unwrap_or(last_seq);
                match v["op"].as_str() {
                    Some("joined") => {
                        let now = Instant::now();
                        let mut t = tally.lock().expect("tally");
                        t.join_ms.push(now.duration_since(opened).as_secs_f64() * 1000.0);
                        // The identity the server knows (a guest token picks its own).
                        let me = v["d"]["self"]["identity"].as_str().unwrap_or(&identity);
                        t.joined_at.insert(me.to_owned(), now);
                        joined = true;
                    }
                    Some("participant_joined") if joined => {
                        let who = v["d"]["participant"]["identity"].as_str().unwrap_or("");
                        let now = Instant::now();
                        let mut t = tally.lock().expect("tally");
                        match t.joined_at.get(who).copied() {
                            Some(at) => t.fanout_ms.push(now.saturating_duration_since(at).as_secs_f64() * 1000.0),
                            None => t.early += 1,
                        }
                    }
                    Some("error") if !joined => {
                        bail!("{}", v["d"]["code"].as_str().unwrap_or("error"))
                    }
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                tx.send(send(json!({"op": "heartbeat", "d": {"seq": last_seq}}))).await?;
            }
            _ = tokio::time::sleep_until(leave_at) => {
                tx.send(send(json!({"op": "leave", "id": 2, "d": {}}))).await?;
                let _ = tx.close().await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_newcomer_is_announced_to_those_already_in() {
        assert_eq!(super::announcements(200, 10), 20 * 45);
        assert_eq!(super::announcements(13, 5), 2 * 10 + 3);
        assert_eq!(super::announcements(1, 1), 0);
    }
}
