//! The chat WebSocket over real HTTP and WebSocket, on both stores: ready, dispatch of
//! messages to those who may see them, typing, heartbeats, resume with 50 missed
//! messages, catch-up after a gap too long to resume, and bad input.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use common::{BOTH, Db, Ended, Server};
use reqwest::Method;
use serde_json::{Value, json};

/// An owner with a guild, a member who joined by invite; the guild id and the id of its
/// `general` channel.
struct Guild {
    owner: String,
    member: String,
    member_id: String,
    gid: String,
    general: String,
}

async fn guild(s: &Server) -> Guild {
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (_, gid, general) = s.guild(&owner, &[&member]).await;
    Guild {
        owner,
        member,
        member_id,
        gid,
        general,
    }
}

async fn post(s: &Server, token: &str, channel: &str, content: &str) -> Value {
    let (st, m) = s
        .post(
            &format!("/api/v1/channels/{channel}/messages"),
            Some(token),
            json!({"content": content}),
        )
        .await;
    assert_eq!(st, 201, "{m}");
    m
}

fn content(f: &Value) -> &str {
    f["d"]["content"].as_str().unwrap()
}

async fn events_and_resume(db: Db) {
    let s = Server::start(db).await;
    let g = guild(&s).await;

    let mut ws = s.ws().await;
    let ready = ws.identify(&g.member).await;
    assert_eq!(ready["s"], 1);
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    assert_eq!(ready["d"]["user"]["id"], g.member_id.as_str());
    let guilds = ready["d"]["guilds"].as_array().unwrap();
    assert_eq!(guilds.len(), 1);
    assert_eq!(guilds[0]["id"], g.gid.as_str());

    // A message, its edit and its deletion reach the member.
    let m = post(&s, &g.owner, &g.general, "hello").await;
    let f = ws.dispatch("message_create").await;
    assert_eq!((content(&f), &f["d"]["id"]), ("hello", &m["id"]));
    let mid = m["id"].as_str().unwrap();
    let path = format!("/api/v1/channels/{}/messages/{mid}", g.general);
    s.send(Method::PATCH, &path, &g.owner, json!({"content": "hello!"}))
        .await;
    assert_eq!(content(&ws.dispatch("message_update").await), "hello!");
    s.send(Method::DELETE, &path, &g.owner, json!({})).await;
    assert_eq!(ws.dispatch("message_delete").await["d"]["id"], mid);

    // Typing is delivered with its expiry.
    let (st, _) = s
        .post(
            &format!("/api/v1/channels/{}/typing", g.general),
            Some(&g.owner),
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let t = ws.dispatch("typing_start").await;
    let d = &t["d"];
    assert_eq!(
        d["expires_at"].as_i64().unwrap() - d["timestamp"].as_i64().unwrap(),
        10_000
    );

    // Heartbeats are acknowledged.
    ws.send(json!({"op": "heartbeat", "d": {"seq": 1}})).await;
    loop {
        if ws.next().await.unwrap()["op"] == "heartbeat_ack" {
            break;
        }
    }

    // A channel created where the member can see it arrives as an event; the member is
    // then sent its messages.
    let (st, c) = s
        .post(
            &format!("/api/v1/guilds/{}/channels", g.gid),
            Some(&g.owner),
            json!({"name": "news", "kind": "text"}),
        )
        .await;
    assert_eq!(st, 201);
    let news = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ws.dispatch("channel_create").await["d"]["id"],
        news.as_str()
    );
    post(&s, &g.owner, &news, "in news").await;
    assert_eq!(content(&ws.dispatch("message_create").await), "in news");

    // Drop the connection; 50 messages are posted meanwhile; resume gets all 50, in
    // order, once each, then live events again.
    let seq = ws.seq;
    drop(ws);
    let want: Vec<String> = (0..50).map(|i| format!("missed {i}")).collect();
    for c in &want {
        post(&s, &g.owner, &g.general, c).await;
    }
    let mut ws = s.ws().await;
    let first = ws.resume(&g.member, &session, seq).await;
    assert_eq!(first["s"].as_u64(), Some(seq + 1), "{first}");
    let mut got = vec![content(&first).to_owned()];
    got.extend(ws.messages(49).await);
    assert_eq!(got, want);
    post(&s, &g.owner, &g.general, "live again").await;
    assert_eq!(ws.messages(1).await, vec!["live again"]);
    let extra = ws.next_within(Duration::from_millis(300)).await;
    assert!(
        extra
            .as_ref()
            .is_none_or(|f| f.as_ref().is_ok_and(|f| f["t"] != "message_create")),
        "nothing twice: {extra:?}"
    );

    // A second resume of the same session takes it over from the first connection.
    let mut other = s.ws().await;
    let seq = ws.seq;
    let f = other.resume(&g.member, &session, seq).await;
    assert_eq!(f["t"], "resumed", "nothing to replay: {f}");
    assert_eq!(ws.closed().await, Ended::Closed(4000));

    // Another user's token cannot resume the session.
    let mut thief = s.ws().await;
    let f = thief.resume(&g.owner, &session, seq).await;
    assert_eq!(
        (f["op"].as_str(), f["d"]["code"].as_str()),
        (Some("invalid_session"), Some("session_invalid"))
    );
    // The same connection may identify after an invalid session.
    let ready = thief.identify(&g.owner).await;
    assert_ne!(ready["d"]["session_id"].as_str(), Some(session.as_str()));
    s.stop().await;
}

/// The answer to a resume from further back than the session keeps.
fn assert_too_old(f: &Value) {
    assert_eq!(
        (f["op"].as_str(), f["d"]["code"].as_str()),
        (Some("invalid_session"), Some("resume_too_old")),
        "{f}"
    );
}

/// After a gap too long to resume, the client identifies afresh and catches up with
/// `after=<last id>`: every message arrives once, in order.
async fn catch_up(db: Db) {
    let s = Server::start_with(db, |c| c.hub.replay = 16).await;
    let g = guild(&s).await;
    let mut ws = s.ws().await;
    let ready = ws.identify(&g.member).await;
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    let last = post(&s, &g.owner, &g.general, "seen").await;
    assert_eq!(ws.messages(1).await, vec!["seen"]);
    let mut last_id = last["id"].as_str().unwrap().to_owned();
    let seq = ws.seq;
    drop(ws);
    let want: Vec<String> = (0..50).map(|i| format!("missed {i}")).collect();
    for c in &want {
        post(&s, &g.owner, &g.general, c).await;
    }
    let mut ws = s.ws().await;
    let f = ws.resume(&g.member, &session, seq).await;
    assert_too_old(&f);
    // Identify first, so nothing posted from here on is missed, then page with after=.
    ws.identify(&g.member).await;
    post(&s, &g.owner, &g.general, "after identify").await;
    let mut got: Vec<(String, String)> = Vec::new();
    loop {
        let (st, page) = s
            .get(
                &format!(
                    "/api/v1/channels/{}/messages?after={last_id}&limit=20",
                    g.general
                ),
                &g.member,
            )
            .await;
        assert_eq!(st, 200);
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        // Pages come newest first.
        for m in page.iter().rev() {
            got.push((
                m["id"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            ));
        }
        last_id = got.last().unwrap().0.clone();
    }
    // The live event for the message posted after identify is a duplicate of what paging
    // returned; the client drops it by id.
    let live = ws.dispatch("message_create").await;
    assert!(got.iter().any(|(id, _)| live["d"]["id"] == id.as_str()));
    let mut want = want;
    want.push("after identify".into());
    let contents: Vec<String> = got.into_iter().map(|(_, c)| c).collect();
    assert_eq!(contents, want);
    s.stop().await;
}

/// A heartbeat that carries the last `s` the client has lets the session drop what came up
/// to it: a resume from there replays what followed, one from before it is too old.
async fn heartbeat_acks(db: Db) {
    let s = Server::start(db).await;
    let g = guild(&s).await;
    let mut ws = s.ws().await;
    let ready = ws.identify(&g.member).await;
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    post(&s, &g.owner, &g.general, "one").await;
    let one = ws.dispatch("message_create").await["s"].as_u64().unwrap();
    post(&s, &g.owner, &g.general, "two").await;
    let two = ws.dispatch("message_create").await["s"].as_u64().unwrap();
    ws.send(json!({"op": "heartbeat", "d": {"seq": two}})).await;
    while ws.next().await.unwrap()["op"] != "heartbeat_ack" {}
    post(&s, &g.owner, &g.general, "three").await;
    assert_eq!(ws.messages(1).await, vec!["three"]);
    drop(ws);

    let mut ws = s.ws().await;
    let f = ws.resume(&g.member, &session, one).await;
    assert_too_old(&f);
    let mut ws = s.ws().await;
    let f = ws.resume(&g.member, &session, two).await;
    assert_eq!(content(&f), "three", "{f}");
    s.stop().await;
}

/// Bad input on the socket gets a close code, and nobody else is affected.
async fn bad_input(db: Db) {
    let s = Server::start_with(db, |c| c.heartbeat_interval = Duration::from_secs(1)).await;
    let g = guild(&s).await;
    let mut bystander = s.ws().await;
    bystander.identify(&g.owner).await;

    let mut ws = s.ws().await;
    ws.send(json!({"op": "identify", "d": {"token": "not a token"}}))
        .await;
    assert_eq!(ws.closed().await, Ended::Closed(4001));

    let mut ws = s.ws().await;
    ws.send(json!({"op": "dance"})).await;
    let f = ws.next().await.unwrap();
    assert_eq!(f["d"]["code"], "invalid_frame");
    assert_eq!(ws.closed().await, Ended::Closed(4002));

    let mut ws = s.ws().await;
    ws.send(json!({"op": "identify", "d": {"token": "x".repeat(20_000)}}))
        .await;
    assert_eq!(ws.closed().await, Ended::Closed(1009));

    // No heartbeat within 1.5 intervals ends the connection; the bystander, who
    // heartbeats, stays.
    bystander.send(json!({"op": "heartbeat"})).await;
    let mut ws = s.ws().await;
    ws.identify(&g.member).await;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    bystander.send(json!({"op": "heartbeat"})).await;
    assert_eq!(ws.closed().await, Ended::Closed(4009));
    assert!(started.elapsed() >= Duration::from_millis(1400));
    post(&s, &g.member, &g.general, "still here").await;
    assert_eq!(bystander.messages(1).await, vec!["still here"]);
    s.stop().await;
}

#[tokio::test]
async fn gateway_events_and_resume_on_both_stores() {
    for db in BOTH {
        events_and_resume(db).await;
    }
}

#[tokio::test]
async fn gateway_catch_up_after_a_long_gap_on_both_stores() {
    for db in BOTH {
        catch_up(db).await;
    }
}

#[tokio::test]
async fn gateway_bad_input_on_both_stores() {
    for db in BOTH {
        bad_input(db).await;
    }
}

#[tokio::test]
async fn gateway_heartbeat_acks_on_both_stores() {
    for db in BOTH {
        heartbeat_acks(db).await;
    }
}
