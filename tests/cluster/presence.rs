//! Presence and voice state on two chat nodes sharing Redis: one user on both nodes is
//! one presence, changes cross nodes, and a node that dies takes its users offline (and
//! out of voice channels) within the presence TTL.

use super::*;

/// The next dispatch of `kind` about `user`.
async fn about(ws: &mut Gateway, kind: &str, user: &str) -> serde_json::Value {
    loop {
        let f = dispatch(ws, kind).await;
        if f["d"]["user_id"] == user {
            return f["d"].clone();
        }
    }
}

/// No dispatch of `kind` about `user` for a while.
async fn nothing_about(ws: &mut Gateway, kind: &str, user: &str) {
    use futures_util::StreamExt;
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let f: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            assert!(
                !(f["t"] == kind && f["d"]["user_id"] == user),
                "unexpected {f}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_one_per_user_across_nodes_and_ends_with_a_dead_node() -> anyhow::Result<()> {
    let cluster = cluster_name();
    let url = database(&format!("parlor_{cluster}")).await;
    let (u1, u2, c) = (url.clone(), url.clone(), cluster.clone());
    let first = std::thread::spawn(move || chat(&c, "chat-1", "127.0.0.22", &u1));
    let second = chat(&cluster, "chat-2", "127.0.0.23", &u2);
    let mut nodes = vec![first.join().unwrap(), second];
    let api = Api {
        http: reqwest::Client::new(),
    };
    let carol = api.register(&nodes[0], "carol").await;
    let bob = api.register(&nodes[1], "bob").await;
    let g = api
        .post(
            &nodes[0],
            "/api/v1/guilds",
            Some(&carol),
            serde_json::json!({"name": "g"}),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    api.join_by_invite((&nodes[0], &carol), &gid, (&nodes[1], &bob))
        .await;
    let voice = api
        .post(
            &nodes[0],
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&carol),
            serde_json::json!({"name": "Lounge", "kind": "voice"}),
        )
        .await;
    let vid = voice["id"].as_str().unwrap().to_owned();

    // Carol watches from node 1; bob comes online on node 1, then on node 2 as well.
    let (mut watch, _) = gateway(&nodes[0], &carol).await;
    let (mut bob_1, ready) = gateway(&nodes[0], &bob).await;
    let b = ready["d"]["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        about(&mut watch, "presence_update", &b).await["status"],
        "online"
    );
    let (mut bob_2, _) = gateway(&nodes[1], &bob).await;
    nothing_about(&mut watch, "presence_update", &b).await;

    // Bob leaves node 1 cleanly: still online through node 2, on both nodes' answers.
    bob_1
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .await?;
    nothing_about(&mut watch, "presence_update", &b).await;
    for node in &nodes {
        let list = api
            .get(node, &format!("/api/v1/guilds/{gid}/presences"), &carol)
            .await;
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["user_id"] == b.as_str()),
            "{list}"
        );
    }

    // A choice made on node 2 reaches carol on node 1; so does joining a voice channel.
    send_json(
        &mut bob_2,
        serde_json::json!({"op": "presence", "d": {"status": "dnd", "custom_status": "on air"}}),
    )
    .await;
    let p = about(&mut watch, "presence_update", &b).await;
    assert_eq!(
        (p["status"].as_str(), p["custom_status"].as_str()),
        (Some("dnd"), Some("on air"))
    );
    send_json(
        &mut bob_2,
        serde_json::json!({"op": "voice_state", "d": {"channel_id": vid, "self_mute": true}}),
    )
    .await;
    let v = about(&mut watch, "voice_state_update", &b).await;
    assert_eq!(v["channel_id"], vid.as_str());
    let states = api
        .get(
            &nodes[0],
            &format!("/api/v1/guilds/{gid}/voice-states"),
            &carol,
        )
        .await;
    assert_eq!(states.as_array().unwrap().len(), 1, "{states}");

    // Node 2 dies with bob on it: node 1 takes him offline and out of the channel
    // within the TTL (3 s in these tests), though node 2 never said so.
    let killed = std::time::Instant::now();
    drop(nodes.remove(1));
    drop(bob_2);
    let v = about(&mut watch, "voice_state_update", &b).await;
    assert!(v["channel_id"].is_null(), "{v}");
    assert_eq!(
        about(&mut watch, "presence_update", &b).await["status"],
        "offline"
    );
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "offline {took:?} after the node died"
    );
    let list = api
        .get(
            &nodes[0],
            &format!("/api/v1/guilds/{gid}/presences"),
            &carol,
        )
        .await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|p| p["user_id"] != b.as_str()),
        "{list}"
    );
    Ok(())
}
