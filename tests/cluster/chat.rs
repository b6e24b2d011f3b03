//! Chat on several nodes: events across nodes, resume on another node, Postgres restarting.

use super::*;

/// Two chat processes on one Postgres database, started together (the migrations run
/// once), with Redis between them: messages and typing posted on one reach sockets on
/// the other; writers on both nodes at once get distinct, ordered ids; and a client whose
/// node is killed catches up on the other without losing a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_nodes_share_events_through_redis_and_lose_nothing() -> anyhow::Result<()> {
    let cluster = cluster_name();
    let url = database(&format!("parlor_{cluster}")).await;
    let (u1, u2, c) = (url.clone(), url.clone(), cluster.clone());
    let first = std::thread::spawn(move || chat(&c, "chat-1", "127.0.0.18", &u1));
    let second = chat(&cluster, "chat-2", "127.0.0.19", &u2);
    let first = first.join().unwrap();
    let mut nodes = vec![first, second];
    let api = Api {
        http: reqwest::Client::new(),
    };

    let alice = api.register(&nodes[0], "alice").await;
    let bob = api.register(&nodes[1], "bob").await;
    let g = api
        .post(
            &nodes[0],
            "/api/v1/guilds",
            Some(&alice),
            serde_json::json!({"name": "g"}),
        )
        .await;
    let gid = g["id"].as_str().unwrap();
    let general = general_of(&g);
    let (mut alice_ws, _) = gateway(&nodes[0], &alice).await;
    let (mut bob_ws, _) = gateway(&nodes[1], &bob).await;
    // Bob joins through node 2; alice's socket on node 1 hears of it.
    api.join_by_invite((&nodes[0], &alice), gid, (&nodes[1], &bob))
        .await;
    dispatch(&mut alice_ws, "guild_member_add").await;
    dispatch(&mut bob_ws, "guild_create").await;

    // A message posted on node 1 reaches bob's socket on node 2, and typing crosses too.
    let msgs = format!("/api/v1/channels/{general}/messages");
    api.post(
        &nodes[0],
        &msgs,
        Some(&alice),
        serde_json::json!({"content": "안녕 from node 1"}),
    )
    .await;
    let m = dispatch(&mut bob_ws, "message_create").await;
    assert_eq!(m["d"]["content"], "안녕 from node 1");
    api.post(
        &nodes[1],
        &format!("/api/v1/channels/{general}/typing"),
        Some(&bob),
        serde_json::json!({}),
    )
    .await;
    let t = dispatch(&mut alice_ws, "typing_start").await;
    assert_eq!(t["d"]["channel_id"], general.as_str());

    // Writers on both nodes at once: every id distinct, every message stored.
    let mut writers = Vec::new();
    for (i, (node, token)) in [(0, &alice), (1, &bob)].into_iter().enumerate() {
        let http = nodes[node].http.unwrap();
        let (token, path) = (token.clone(), msgs.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            for n in 0..25 {
                let r = client
                    .post(format!("http://{http}{path}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"content": format!("w{i}-{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let b: serde_json::Value = r.json().await.unwrap();
                ids.push(b["id"].as_str().unwrap().parse::<i64>().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for w in writers {
        ids.extend(w.await?);
    }
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "ids from two nodes collided");
    let stored = api.get(&nodes[1], &format!("{msgs}?limit=100"), &bob).await;
    assert_eq!(stored.as_array().unwrap().len(), 51);

    // Each node reports itself ready (its database answers) and counts what it did.
    for node in &nodes {
        let base = format!("http://{}", node.http.unwrap());
        let ready = api.http.get(format!("{base}/readyz")).send().await?;
        assert_eq!(ready.status().as_u16(), 200);
    }
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    };
    let m2 = api
        .http
        .get(format!("http://{}/metrics", nodes[1].http.unwrap()))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(metric(&m2, "parlor_chat_messages_total"), 25.0, "{m2}");
    assert!(metric(&m2, "parlor_chat_bus_received_total") > 0.0, "{m2}");
    assert_eq!(metric(&m2, "parlor_chat_gateway_sessions"), 1.0, "{m2}");

    // Node 2 dies; bob's last message seen is `m`. He comes back on node 1: his session
    // cannot be resumed there, so he identifies and catches up by id, losing nothing.
    let last_seen = m["d"]["id"].as_str().unwrap().to_owned();
    drop(bob_ws);
    drop(nodes.remove(1));
    api.post(
        &nodes[0],
        &msgs,
        Some(&alice),
        serde_json::json!({"content": "while bob was away"}),
    )
    .await;
    let (_bob_ws, _) = gateway(&nodes[0], &bob).await;
    let missed = api
        .get(
            &nodes[0],
            &format!("{msgs}?after={last_seen}&limit=100"),
            &bob,
        )
        .await;
    let contents: Vec<&str> = missed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents.len(), 51, "{contents:?}");
    assert!(contents.contains(&"while bob was away"));
    Ok(())
}

/// A chat node is killed under a client: the client resumes its session on the other
/// node with the last sequence number and stream position it saw, and gets exactly what
/// it missed (what the dead node had sent it unread, and what happened while it was
/// away), numbered on from there, then live events; no `ready`, no repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_session_resumes_on_another_node_after_its_node_is_killed() -> anyhow::Result<()> {
    let cluster = cluster_name();
    let url = database(&format!("parlor_{cluster}")).await;
    let mut nodes = vec![
        chat(&cluster, "chat-1", "127.0.0.29", &url),
        chat(&cluster, "chat-2", "127.0.0.30", &url),
    ];
    let api = Api {
        http: reqwest::Client::new(),
    };
    let (alice, g) = api.owner_of_new_guild(&nodes[0]).await;
    let bob = api.register(&nodes[1], "bob").await;
    let carol = api.register(&nodes[0], "carol").await;
    let gid = g["id"].as_str().unwrap();
    let general = general_of(&g);
    api.join_by_invite((&nodes[0], &alice), gid, (&nodes[1], &bob))
        .await;

    // Bob on node 2 receives three messages posted on node 1, each with its position.
    let (mut bob_ws, ready) = gateway(&nodes[1], &bob).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_owned();
    assert!(ready["p"].is_string(), "ready carries a position: {ready}");
    let msgs = format!("/api/v1/channels/{general}/messages");
    let mut ids = Vec::new();
    for n in 1..=3 {
        let m = api
            .post(
                &nodes[0],
                &msgs,
                Some(&alice),
                serde_json::json!({"content": format!("m{n}")}),
            )
            .await;
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    for _ in 1..=3 {
        seen.push(dispatch(&mut bob_ws, "message_create").await);
    }
    let contents: Vec<&str> = seen
        .iter()
        .map(|f| f["d"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["m1", "m2", "m3"]);
    // The client has handled m1 only when node 2 dies (m2 and m3 sit unread).
    let (seq, position) = (
        seen[0]["s"].as_u64().unwrap(),
        seen[0]["p"].as_str().unwrap().to_owned(),
    );
    assert_ne!(seen[1]["p"], seen[0]["p"]);
    drop(bob_ws);
    drop(nodes.remove(1));

    // While bob is away: a message, an edit of m1, and typing (ephemeral, not replayed).
    api.post(
        &nodes[0],
        &msgs,
        Some(&alice),
        serde_json::json!({"content": "while bob was away"}),
    )
    .await;
    let (st, _) = api
        .call(
            reqwest::Method::PATCH,
            &nodes[0],
            &format!("{msgs}/{}", ids[0]),
            Some(&alice),
            serde_json::json!({"content": "m1 (edited)"}),
        )
        .await;
    assert_eq!(st, 200);
    api.post(
        &nodes[0],
        &format!("/api/v1/channels/{general}/typing"),
        Some(&alice),
        serde_json::json!({}),
    )
    .await;

    // Another user cannot take bob's session.
    let url = format!("ws://{}/api/v1/gateway", nodes[0].http.unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    let _hello = next_json(&mut ws).await;
    let resume = |token: &str| {
        serde_json::json!({"op": "resume", "d": {
            "token": token, "session_id": session_id, "seq": seq, "position": position,
        }})
    };
    send_json(&mut ws, resume(&carol)).await;
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["op"], "invalid_session", "{refused}");
    assert_eq!(refused["d"]["code"], "session_invalid");

    // Bob resumes on node 1.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    let _hello = next_json(&mut ws).await;
    send_json(&mut ws, resume(&bob)).await;
    let mut replayed = Vec::new();
    loop {
        let f = next_json(&mut ws).await;
        assert_eq!(f["op"], "dispatch", "{f}");
        assert_ne!(f["t"], "ready", "{f}");
        if f["t"] == "resumed" {
            assert_eq!(f["s"].as_u64(), Some(seq + replayed.len() as u64 + 1));
            break;
        }
        replayed.push(f);
    }
    let got: Vec<(String, String)> = replayed
        .iter()
        .map(|f| {
            (
                f["t"].as_str().unwrap().to_owned(),
                f["d"]["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("message_create".into(), "m2".into()),
            ("message_create".into(), "m3".into()),
            ("message_create".into(), "while bob was away".into()),
            ("message_update".into(), "m1 (edited)".into()),
        ],
        "{replayed:?}"
    );
    for (i, f) in replayed.iter().enumerate() {
        assert_eq!(f["s"].as_u64(), Some(seq + 1 + i as u64), "{f}");
        assert!(f["p"].is_string(), "{f}");
    }
    // Live again, numbered on.
    api.post(
        &nodes[0],
        &msgs,
        Some(&alice),
        serde_json::json!({"content": "welcome back"}),
    )
    .await;
    let live = dispatch(&mut ws, "message_create").await;
    assert_eq!(live["d"]["content"], "welcome back");
    assert_eq!(live["s"].as_u64(), Some(seq + replayed.len() as u64 + 2));
    let metrics = api
        .http
        .get(format!("http://{}/metrics", nodes[0].http.unwrap()))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("parlor_chat_sessions_taken_over_total 1"),
        "{metrics}"
    );
    Ok(())
}

/// A Postgres server of the test's own (`initdb` in a temporary directory, as the
/// `postgres` user when the tests run as root), stopped and started with `pg_ctl`.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        // Postgres refuses to run as root.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn new(port: u16) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres is installed under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("pg_ctl").exists())
            .expect("pg_ctl under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("parlor-pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status();
        let pg = PrivatePostgres { dir, bin, port };
        let data = pg.dir.join("data");
        assert!(
            pg.run(
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres"
                ]
            ),
            "initdb"
        );
        pg.start();
        pg
    }

    fn start(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        assert!(
            self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &opts,
                    "-w",
                    "start"
                ]
            ),
            "pg_ctl start"
        );
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Postgres stops and comes back under a chat node: meanwhile requests that need it fail
/// fast with 503 `database_unavailable` and `/readyz` says 503 (while `/healthz` stays
/// 200, so the node is not restarted); once it is back, the same process stores and
/// delivers messages again, and nothing stored before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rides_out_a_postgres_restart() -> anyhow::Result<()> {
    let port = 20_000 + (rand::random::<u16>() % 20_000);
    let pg = PrivatePostgres::new(port);
    let cluster = cluster_name();
    let node = chat(&cluster, "chat-pg", "127.0.0.31", &pg.url());
    let base = format!("http://{}", node.http.unwrap());
    let api = Api {
        http: reqwest::Client::new(),
    };
    let (alice, g) = api.owner_of_new_guild(&node).await;
    let msgs = format!("/api/v1/channels/{}/messages", general_of(&g));
    api.post(
        &node,
        &msgs,
        Some(&alice),
        serde_json::json!({"content": "before"}),
    )
    .await;
    let (mut ws, _) = gateway(&node, &alice).await;

    pg.stop();
    let t = Instant::now();
    let (st, body) = api
        .call(
            reqwest::Method::POST,
            &node,
            &msgs,
            Some(&alice),
            serde_json::json!({"content": "lost to the outage"}),
        )
        .await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["code"], "database_unavailable", "{body}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let status = |path: &'static str| {
        let (http, base) = (api.http.clone(), base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/readyz").await, 503);
    assert_eq!(status("/healthz").await, 200);

    pg.start();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, body) = api
            .call(
                reqwest::Method::POST,
                &node,
                &msgs,
                Some(&alice),
                serde_json::json!({"content": "after"}),
            )
            .await;
        if st == 201 {
            break;
        }
        assert_eq!(body["code"], "database_unavailable", "{st} {body}");
        assert!(Instant::now() < deadline, "chat did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status("/readyz").await, 200);
    let live = dispatch(&mut ws, "message_create").await;
    assert_eq!(live["d"]["content"], "after");
    let stored = api.get(&node, &format!("{msgs}?limit=10"), &alice).await;
    let contents: Vec<&str> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["after", "before"]);
    Ok(())
}
