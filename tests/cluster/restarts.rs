//! Redis restarting under the nodes, and a rolling restart of every node.

use super::*;

/// A Redis server of the test's own, on a port of its own, so it can be stopped.
fn private_redis(port: u16) -> Node {
    let node = Node {
        child: Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
        http: None,
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return node;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Dropping `node` stops the process.
    panic!("redis-server did not start on {port}");
}

/// Redis stops and comes back, empty, while SFU, signaling and chat nodes run:
/// - new joins fail with `unavailable` meanwhile, and chat still stores messages;
/// - once Redis is back, the SFU node is in the registry again, joins succeed, and chat
///   events cross nodes again, without restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_a_redis_restart() -> anyhow::Result<()> {
    let port = 20_000 + (rand::random::<u16>() % 20_000);
    let redis_url = format!("redis://127.0.0.1:{port}");
    let cluster = cluster_name();
    let mut redis = private_redis(port);
    let ip = "127.0.0.20";
    let _sfu = start_on(
        &redis_url,
        &cluster,
        "sfu-r",
        &[
            "sfu",
            "--listen",
            &format!("{ip}:0"),
            "--media-bind",
            ip,
            "--media-port",
            "0",
            "--workers",
            "1",
        ],
    );
    let sig = start_on(
        &redis_url,
        &cluster,
        "sig-r",
        &["signaling", "--listen", "127.0.0.21:0"],
    );
    let url = database(&format!("parlor_{cluster}")).await;
    let chat_node = |id: &str, ip: &str| {
        let dir = std::env::temp_dir().join(format!("{cluster}-{id}"));
        start_on(
            &redis_url,
            &cluster,
            id,
            &[
                "chat",
                "--listen",
                &format!("{ip}:0"),
                "--database-url",
                &url,
                "--data-dir",
                dir.to_str().unwrap(),
            ],
        )
    };
    let c1 = chat_node("chat-r1", "127.0.0.22");
    let c2 = chat_node("chat-r2", "127.0.0.23");
    let reg = Registry::connect(&redis_url, Duration::from_secs(3), &cluster).await?;
    wait_nodes(&reg, &["sfu-r"]).await;
    let http = sig.http.unwrap();
    assert_eq!(
        raw_join_addr(http, &token("before", "a", None)).await.0,
        "joined"
    );

    let api = Api {
        http: reqwest::Client::new(),
    };
    let (alice, g) = api.owner_of_new_guild(&c1).await;
    let msgs = format!("/api/v1/channels/{}/messages", general_of(&g));
    let (mut ws2, _) = gateway(&c2, &alice).await;

    // Redis goes away.
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let (op, code) = raw_join_addr(http, &token("during", "b", None)).await;
    assert_eq!((op.as_str(), code.as_str()), ("error", "unavailable"));
    let (st, _) = api
        .call(
            reqwest::Method::POST,
            &c1,
            &msgs,
            Some(&alice),
            serde_json::json!({"content": "stored anyway"}),
        )
        .await;
    assert_eq!(st, 201, "chat stores messages while Redis is away");

    // Redis comes back, empty: the SFU node announces itself again, joins work again, and
    // chat events cross nodes again.
    let _redis = private_redis(port);
    let mut joined = false;
    for _ in 0..100 {
        if raw_join_addr(http, &token("after", "c", None)).await.0 == "joined" {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(joined, "joins work again once Redis is back");
    let mut crossed = false;
    for n in 0..30 {
        api.post(
            &c1,
            &msgs,
            Some(&alice),
            serde_json::json!({"content": format!("after {n}")}),
        )
        .await;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            use futures_util::StreamExt;
            let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(100), ws2.next()).await
            else {
                continue;
            };
            let f: serde_json::Value = serde_json::from_str(t.as_str())?;
            if f["t"] == "message_create"
                && f["d"]["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("after"))
            {
                crossed = true;
            }
        }
        if crossed {
            break;
        }
    }
    assert!(crossed, "chat events cross nodes again once Redis is back");
    Ok(())
}

/// A gateway client of one user that reads every `message_create` until one says
/// `the end`, resuming its session on whichever chat node answers whenever its
/// connection drops (`addrs` is kept current by the test). Returns the contents in the
/// order received and how many times it resumed on another node.
async fn resuming_reader(
    addrs: std::sync::Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    token: String,
    ready: tokio::sync::oneshot::Sender<()>,
) -> (Vec<String>, u32) {
    let mut ready = Some(ready);
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = |i: usize| format!("ws://{}/api/v1/gateway", addrs.lock().unwrap()[i % 2]);
    let (mut ws, _) = tokio_tungstenite::connect_async(url(0)).await.unwrap();
    let _hello = next_json(&mut ws).await;
    send_json(
        &mut ws,
        serde_json::json!({"op": "identify", "d": {"token": token}}),
    )
    .await;
    let (mut node, mut resumes) = (0usize, 0u32);
    let (mut session, mut seq, mut position) = (String::new(), 0u64, String::new());
    let mut got = Vec::new();
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(Duration::from_secs(5), ws.next()) => f,
            _ = beat.tick() => {
                let _ = ws.send(Message::text(r#"{"op":"heartbeat"}"#)).await;
                continue;
            }
        };
        let text = match frame {
            Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
            Ok(Some(Ok(_))) => continue,
            // Closed, failed or silent: resume on the other node (or this one restarted).
            _ => {
                let deadline = Instant::now() + Duration::from_secs(20);
                ws = loop {
                    assert!(Instant::now() < deadline, "no chat node took the session");
                    node += 1;
                    let Ok((mut w, _)) = tokio_tungstenite::connect_async(url(node)).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let _hello = next_json(&mut w).await;
                    send_json(
                        &mut w,
                        serde_json::json!({"op": "resume", "d": {
                            "token": token, "session_id": session, "seq": seq,
                            "position": position,
                        }}),
                    )
                    .await;
                    break w;
                };
                resumes += 1;
                continue;
            }
        };
        let f: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_ne!(f["op"], "invalid_session", "the resume was refused: {f}");
        if f["op"] != "dispatch" {
            continue;
        }
        if f["t"] == "ready" {
            session = f["d"]["session_id"].as_str().unwrap().to_owned();
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        let s = f["s"].as_u64().unwrap();
        assert!(s > seq, "frame {s} after {seq}: {f}");
        seq = s;
        if let Some(p) = f["p"].as_str() {
            position = p.to_owned();
        }
        if f["t"] == "message_create" {
            let content = f["d"]["content"].as_str().unwrap().to_owned();
            if content == "the end" {
                return (got, resumes);
            }
            got.push(content);
        }
    }
}

/// Every node of a cluster restarted in turn (SIGTERM, wait for the exit, start a new
/// process) during a call and a chat conversation: both signaling nodes, both SFU nodes,
/// both chat nodes.
/// - The call: a stopping signaling node's clients resume their sessions on the other
///   one, keeping their participants (media never stops); a stopping SFU node's
///   participants are told to move and join again on the other, where media flows again.
/// - The conversation: a client keeps posting to whichever chat node is up; every
///   acknowledged message is stored exactly once, in acknowledgement order; and a reader
///   on the gateway, resuming its one session across nodes, receives every stored
///   message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_drops_nothing() -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};
    let cluster = cluster_name();
    let reg = registry(&cluster).await;
    let url = database(&format!("parlor_{cluster}")).await;
    let ips = ["127.0.0.27", "127.0.0.28"];
    let mut nodes: Vec<Node> = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        nodes.push(chat(&cluster, &format!("chat-k{i}"), ip, &url));
    }
    let sfu_ips = ["127.0.0.32", "127.0.0.33"];
    let mut sfus: Vec<Node> = (0..2)
        .map(|i| sfu(&cluster, &format!("sfu-k{i}"), sfu_ips[i], 1000))
        .collect();
    let sig_ips = ["127.0.0.34", "127.0.0.35"];
    let mut sigs: Vec<Node> = (0..2)
        .map(|i| signaling(&cluster, &format!("sig-k{i}"), sig_ips[i]))
        .collect();
    wait_nodes(&reg, &["sfu-k0", "sfu-k1"]).await;

    let api = Api {
        http: reqwest::Client::new(),
    };
    let (alice, g) = api.owner_of_new_guild(&nodes[0]).await;
    let msgs = format!("/api/v1/channels/{}/messages", general_of(&g));
    let addrs: Arc<Mutex<Vec<SocketAddr>>> =
        Arc::new(Mutex::new(nodes.iter().map(|n| n.http.unwrap()).collect()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready, reading) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(resuming_reader(addrs.clone(), alice.clone(), ready));
    reading.await?;

    let writer = {
        let (addrs, stop, token, path) = (addrs.clone(), stop.clone(), alice.clone(), msgs.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let content = format!("m{n}");
                let addr = addrs.lock().unwrap()[n as usize % 2];
                n += 1;
                let sent = http
                    .post(format!("http://{addr}{path}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"content": content}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let b: serde_json::Value = r.json().await.unwrap();
                        acked.push((b["id"].as_str().unwrap().to_owned(), content));
                    }
                    // Not acknowledged (the node is going or gone): not counted.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };

    // The call: alice publishes through signaling node 0, bob receives through node 1.
    let room = "everything";
    let (mut a, mut b) = call(room, &sigs[0], &sigs[1]).await?;
    let mut on = [0usize, 1usize]; // the signaling node of alice and of bob
    for i in 0..2 {
        sigs[i].terminate();
        let other = 1 - i;
        // The draining node closes its sockets with 1012; each client resumes its session
        // on the other node, which takes it over: nobody leaves the room.
        let [on_a, on_b] = &mut on;
        for (c, at) in [(&mut a, on_a), (&mut b, on_b)] {
            if *at == i {
                let r = c.resume_at(sigs[other].http.unwrap()).await?;
                assert_eq!(r.msg_op(), "resumed", "{}", r.to_json());
                *at = other;
            }
        }
        let before = packets_from(&b.counts(), "alice");
        b.wait_media("bob receives alice again after a signaling restart", |t| {
            packets_from(t, "alice") > before + 20
        })
        .await?;
        assert!(
            sigs[i].exits_within(Duration::from_secs(15)),
            "signaling node {i} stops on SIGTERM"
        );
        let (c, ip) = (cluster.clone(), sig_ips[i]);
        sigs[i] =
            tokio::task::spawn_blocking(move || signaling(&c, &format!("sig-k{i}"), ip)).await?;
    }
    let alice_tracks = b.counts().values().filter(|r| r.owner == "alice").count();
    assert_eq!(
        alice_tracks, 2,
        "alice kept her participant through both restarts"
    );
    for _ in 0..2 {
        let host = reg.placement(room).await?.expect("the call is placed");
        let i = if host == "sfu-k0" { 0 } else { 1 };
        sfus[i].terminate();
        told_to_move(&mut a).await?;
        told_to_move(&mut b).await?;
        (a, b) = call(room, &sigs[0], &sigs[1]).await?;
        assert!(
            sfus[i].exits_within(Duration::from_secs(15)),
            "SFU node {i} stops on SIGTERM"
        );
        let (c, ip) = (cluster.clone(), sfu_ips[i]);
        sfus[i] =
            tokio::task::spawn_blocking(move || sfu(&c, &format!("sfu-k{i}"), ip, 1000)).await?;
        wait_nodes(&reg, &["sfu-k0", "sfu-k1"]).await;
    }

    for (i, ip) in ips.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(400)).await;
        nodes[i].terminate();
        assert!(
            nodes[i].exits_within(Duration::from_secs(10)),
            "chat node {i} stops on SIGTERM"
        );
        let (c, u, ip) = (cluster.clone(), url.clone(), ip.to_string());
        let fresh =
            tokio::task::spawn_blocking(move || chat(&c, &format!("chat-k{i}b"), &ip, &u)).await?;
        addrs.lock().unwrap()[i] = fresh.http.unwrap();
        nodes[i] = fresh;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.await?;
    assert!(
        acked.len() > 20,
        "the client kept posting: {} acknowledged",
        acked.len()
    );
    api.post(
        &nodes[0],
        &msgs,
        Some(&alice),
        serde_json::json!({"content": "the end"}),
    )
    .await;
    let (received, resumes) = tokio::time::timeout(Duration::from_secs(30), reader).await??;

    // The whole history, oldest first, through the restarted nodes.
    let mut history: Vec<(String, String)> = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let page = api
            .get(
                &nodes[1],
                &format!("{msgs}?after={after}&limit=100"),
                &alice,
            )
            .await;
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        let mut items: Vec<(String, String)> = page
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        items.sort_by_key(|(id, _)| id.parse::<i64>().unwrap());
        after = items.last().unwrap().0.clone();
        history.extend(items);
    }
    history.retain(|(_, c)| c != "the end");
    // Each acknowledged message is there, once, and in the order acknowledged. (A post
    // whose node went down after storing it but before answering may be stored without
    // having been acknowledged; that is not a loss.)
    let positions: Vec<usize> = acked
        .iter()
        .map(|a| {
            history
                .iter()
                .position(|h| h == a)
                .unwrap_or_else(|| panic!("acknowledged {a:?} is not in the history"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "out of order");
    let mut contents: Vec<&str> = history.iter().map(|(_, c)| c.as_str()).collect();
    let total = contents.len();
    contents.sort_unstable();
    contents.dedup();
    assert_eq!(contents.len(), total, "a message is stored twice");
    // The reader got every stored message once, across its resumes.
    let mut got = received.clone();
    got.sort_unstable();
    let n = got.len();
    got.dedup();
    assert_eq!(got.len(), n, "the reader got a message twice: {received:?}");
    assert_eq!(got, contents, "the reader's messages are the stored ones");
    assert!(resumes >= 2, "the reader resumed across nodes ({resumes})");
    eprintln!(
        "rolling restart: {} acknowledged, {} stored, {} received by a reader that resumed {resumes} times",
        acked.len(),
        history.len(),
        received.len()
    );
    Ok(())
}
