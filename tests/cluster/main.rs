//! Parlor across processes: `parlor sfu` and `parlor signaling` nodes on 127.0.0.x of this
//! machine, meeting through the real NATS (127.0.0.1:4222) and Redis (127.0.0.1:6379),
//! with webrtc-rs clients over real UDP. Each test names its own cluster, so its Redis
//! keys and NATS subjects are its own.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

#[path = "../common/mod.rs"]
mod common;

mod calls;
mod chat;
mod overload;
mod presence;
mod restarts;
mod spanning;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, FrameExt, TEST_SECRET, raw_join_addr};
use parlor_cluster::Registry;
use parlor_proto::{Claims, ParticipantId, RoomCaps, RoomId, TokenKey};

const REDIS: &str = "redis://127.0.0.1:6379";

const NATS: &str = "nats://127.0.0.1:4222";

/// A node process, killed when dropped.
struct Node {
    child: Child,
    http: Option<SocketAddr>,
}

impl Node {
    /// SIGTERM: a clean, draining stop.
    fn terminate(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// Whether the process exits within `limit`.
    fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `parlor <args>` and waits for the line that says it runs.
fn start(cluster: &str, id: &str, args: &[&str]) -> Node {
    start_on(REDIS, cluster, id, args)
}

/// Starts `parlor <args>` against the Redis at `redis`.
fn start_on(redis: &str, cluster: &str, id: &str, args: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .args(["--node-id", id, "--cluster", cluster])
        .env("PARLOR_NATS_URL", NATS)
        .env("PARLOR_REDIS_URL", redis)
        .env(
            "PARLOR_TOKEN_SECRET",
            std::str::from_utf8(TEST_SECRET).unwrap(),
        )
        .env("RUST_LOG", "warn")
        // Presence lets a dead node's users go within 3 s, not 30.
        .env("PARLOR_PRESENCE_TTL_MS", "3000")
        .env("PARLOR_PRESENCE_GRACE_MS", "1000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the parlor binary starts");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let line = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(" is running") => break l,
            Some(Ok(_)) => continue,
            _ => panic!("{id} exited before it was running"),
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let http = line
        .split("http://")
        .nth(1)
        .map(|a| a.trim().parse().unwrap());
    Node { child, http }
}

fn sfu(cluster: &str, id: &str, ip: &str, capacity: u32) -> Node {
    sfu_with(cluster, id, ip, &["--capacity", &capacity.to_string()])
}

/// An SFU node with one worker on `ip`, with more arguments.
fn sfu_with(cluster: &str, id: &str, ip: &str, more: &[&str]) -> Node {
    let listen = format!("{ip}:0");
    let mut args = vec![
        "sfu",
        "--listen",
        &listen,
        "--media-bind",
        ip,
        "--media-port",
        "0",
        "--workers",
        "1",
    ];
    args.extend_from_slice(more);
    start(cluster, id, &args)
}

fn signaling(cluster: &str, id: &str, ip: &str) -> Node {
    start(cluster, id, &["signaling", "--listen", &format!("{ip}:0")])
}

/// An SFU node of a region.
fn sfu_in(cluster: &str, id: &str, ip: &str, region: &str) -> Node {
    sfu_with(cluster, id, ip, &["--region", region])
}

/// A signaling node of a region: its participants go to SFU nodes of that region.
fn signaling_in(cluster: &str, id: &str, ip: &str, region: &str) -> Node {
    start(
        cluster,
        id,
        &[
            "signaling",
            "--listen",
            &format!("{ip}:0"),
            "--region",
            region,
        ],
    )
}

/// A fresh cluster of one SFU node and two signaling nodes, named `ids` and on `ips` in
/// that order, once the SFU node is in the registry.
async fn one_sfu_two_signaling(ids: [&str; 3], ips: [&str; 3]) -> (Registry, [Node; 3]) {
    let cluster = cluster_name();
    let reg = registry(&cluster).await;
    let nodes = [
        sfu(&cluster, ids[0], ips[0], 1000),
        signaling(&cluster, ids[1], ips[1]),
        signaling(&cluster, ids[2], ips[2]),
    ];
    wait_nodes(&reg, &ids[..1]).await;
    (reg, nodes)
}

fn cluster_name() -> String {
    format!("t{:08x}", rand::random::<u32>())
}

async fn registry(cluster: &str) -> Registry {
    Registry::connect(REDIS, Duration::from_secs(3), cluster)
        .await
        .expect("Redis at 127.0.0.1:6379")
}

/// Waits until the registry holds exactly these SFU nodes.
async fn wait_nodes(reg: &Registry, ids: &[&str]) {
    for _ in 0..100 {
        let live: Vec<String> = reg
            .nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        if live == ids {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the registry never held {ids:?}");
}

fn token(room: &str, who: &str, caps: Option<RoomCaps>) -> String {
    let mut c = Claims::new(
        RoomId::parse(room).unwrap(),
        ParticipantId::parse(who).unwrap(),
        Duration::from_secs(600),
    );
    c.caps = caps;
    TokenKey::new(TEST_SECRET).sign(&c)
}

type Table = std::collections::HashMap<String, common::Received>;

fn packets_from(t: &Table, owner: &str) -> u64 {
    t.values()
        .filter(|r| r.owner == owner)
        .map(|r| r.packets)
        .sum()
}

/// `n` joins into `room` at once, alternating between two signaling nodes: how many got
/// in, how many were told the room is full, and every outcome.
async fn join_race(
    room: &str,
    caps: RoomCaps,
    n: usize,
    nodes: [&Node; 2],
) -> (usize, usize, Vec<(String, String)>) {
    let joins = (0..n).map(|i| {
        let http = nodes[i % 2].http.unwrap();
        let t = token(room, &format!("p{i}"), Some(caps));
        tokio::spawn(async move { raw_join_addr(http, &t).await })
    });
    let mut outcomes = Vec::new();
    for j in joins.collect::<Vec<_>>() {
        outcomes.push(j.await.unwrap());
    }
    let joined = outcomes.iter().filter(|(op, _)| op == "joined").count();
    let full = outcomes
        .iter()
        .filter(|(_, code)| code == "room_full")
        .count();
    (joined, full, outcomes)
}

/// The two clients of a call, alice on one signaling node publishing, bob on the other
/// receiving; returns once bob gets alice's media.
async fn call(room: &str, sig1: &Node, sig2: &Node) -> anyhow::Result<(Client, Client)> {
    let mut alice = Client::join_at(sig1.http.unwrap(), &token(room, "alice", None)).await?;
    let r = alice.publish(&["microphone", "camera"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    let bob = Client::join_at(sig2.http.unwrap(), &token(room, "bob", None)).await?;
    bob.wait_media("bob receives alice", |t| packets_from(t, "alice") > 20)
        .await?;
    Ok((alice, bob))
}

/// Waits for the unsolicited error that tells a client to move.
async fn told_to_move(c: &mut Client) -> anyhow::Result<()> {
    let e = c.wait_event("error").await?;
    assert_eq!(e.to_json()["d"]["code"], "moved", "{}", e.to_json());
    Ok(())
}

/// The value of a gauge on a node's `/metrics`, summed over its series.
async fn gauge(node: &Node, name: &str) -> f64 {
    series_sum(node, name, "").await
}

/// The sum of a metric's series on a node's `/metrics` whose line contains `labels`.
async fn series_sum(node: &Node, name: &str, labels: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", node.http.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A chat node: `parlor chat` on the shared Postgres database and Redis.
fn chat(cluster: &str, id: &str, ip: &str, database_url: &str) -> Node {
    let dir = std::env::temp_dir().join(format!("{cluster}-{id}"));
    start(
        cluster,
        id,
        &[
            "chat",
            "--listen",
            &format!("{ip}:0"),
            "--database-url",
            database_url,
            "--data-dir",
            dir.to_str().unwrap(),
        ],
    )
}

/// The id of a new guild's `general` channel.
fn general_of(guild: &serde_json::Value) -> String {
    guild["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A fresh Postgres database for one test.
async fn database(name: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("Postgres at 127.0.0.1:5432");
    // The name is made by the test from hex digits.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

struct Api {
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        node: &Node,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut r = self
            .http
            .request(method, format!("http://{}{path}", node.http.unwrap()))
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    async fn post(
        &self,
        node: &Node,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let (st, b) = self
            .call(reqwest::Method::POST, node, path, token, body)
            .await;
        assert!((200..300).contains(&st), "POST {path}: {st} {b}");
        b
    }

    async fn get(&self, node: &Node, path: &str, token: &str) -> serde_json::Value {
        let (st, b) = self
            .call(
                reqwest::Method::GET,
                node,
                path,
                Some(token),
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(st, 200, "GET {path}: {b}");
        b
    }

    /// Registers alice and has her create a guild: her token and the guild.
    async fn owner_of_new_guild(&self, node: &Node) -> (String, serde_json::Value) {
        let alice = self.register(node, "alice").await;
        let g = self
            .post(
                node,
                "/api/v1/guilds",
                Some(&alice),
                serde_json::json!({"name": "g"}),
            )
            .await;
        (alice, g)
    }

    /// `joiner`, through `node`, joins the guild `gid` by an invite its owner makes.
    async fn join_by_invite(&self, owner: (&Node, &str), gid: &str, joiner: (&Node, &str)) {
        let inv = self
            .post(
                owner.0,
                &format!("/api/v1/guilds/{gid}/invites"),
                Some(owner.1),
                serde_json::json!({}),
            )
            .await;
        let code = inv["code"].as_str().unwrap();
        self.post(
            joiner.0,
            &format!("/api/v1/invites/{code}"),
            Some(joiner.1),
            serde_json::json!({}),
        )
        .await;
    }

    /// Registers a user; their access token.
    async fn register(&self, node: &Node, name: &str) -> String {
        let b = self
            .post(
                node,
                "/api/v1/auth/register",
                None,
                serde_json::json!({"username": name, "password": "password 123"}),
            )
            .await;
        b["access_token"].as_str().unwrap().to_owned()
    }
}

type Gateway =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the chat gateway on a node and identifies; the socket and the ready frame.
async fn gateway(node: &Node, token: &str) -> (Gateway, serde_json::Value) {
    use futures_util::SinkExt;
    let url = format!("ws://{}/api/v1/gateway", node.http.unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _hello = next_json(&mut ws).await;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        serde_json::json!({"op": "identify", "d": {"token": token}}).to_string(),
    ))
    .await
    .unwrap();
    let ready = dispatch(&mut ws, "ready").await;
    (ws, ready)
}

async fn next_json(ws: &mut Gateway) -> serde_json::Value {
    use futures_util::StreamExt;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The next dispatch of this type, skipping others.
async fn dispatch(ws: &mut Gateway, kind: &str) -> serde_json::Value {
    loop {
        let f = next_json(ws).await;
        if f["op"] == "dispatch" && f["t"] == kind {
            return f;
        }
    }
}

/// Sends a client frame.
async fn send_json(ws: &mut Gateway, v: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}
