//! Chat and rooms together: a voice channel's join tokens admit members to the SFU room,
//! and the channel's cap holds there.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, raw_join_addr};
use serde_json::{Value, json};

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_channel_cap_holds_in_its_room() {
    let server = TestServer::start().await;
    // The chat service shares the room-token key with signaling.
    let dir = std::env::temp_dir().join(format!("parlor_voice_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = parlor_chat::Config::new(
        format!("sqlite://{}?mode=rwc", dir.join("chat.db").display()),
        b"chat-access-key-for-the-voice-test",
    );
    config.room_key = Some(common::TEST_SECRET.to_vec());
    config.signaling_url = Some(format!("ws://{}/ws", server.http));
    let chat = parlor_chat::ChatState::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(parlor_chat::run(listener, chat, std::future::pending()));
    let http = reqwest::Client::new();

    let mut tokens = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let s = post(
            &http,
            format!("{api}/api/v1/auth/register"),
            None,
            json!({"username": name, "password": "password 123"}),
        )
        .await;
        tokens.push(s["access_token"].as_str().unwrap().to_owned());
    }
    let g = post(
        &http,
        format!("{api}/api/v1/guilds"),
        Some(&tokens[0]),
        json!({"name": "g"}),
    )
    .await;
    let gid = g["id"].as_str().unwrap();
    let v = post(
        &http,
        format!("{api}/api/v1/guilds/{gid}/channels"),
        Some(&tokens[0]),
        json!({"name": "Pair", "kind": "voice", "user_limit": 2}),
    )
    .await;
    let inv = post(
        &http,
        format!("{api}/api/v1/guilds/{gid}/invites"),
        Some(&tokens[0]),
        json!({}),
    )
    .await;
    for t in &tokens[1..] {
        post(
            &http,
            format!("{api}/api/v1/invites/{}", inv["code"].as_str().unwrap()),
            Some(t),
            json!({}),
        )
        .await;
    }
    let mut results = Vec::new();
    for t in &tokens {
        let j = post(
            &http,
            format!(
                "{api}/api/v1/channels/{}/voice/join",
                v["id"].as_str().unwrap()
            ),
            Some(t),
            json!({}),
        )
        .await;
        assert_eq!(j["url"], format!("ws://{}/ws", server.http));
        results.push(raw_join_addr(server.http, j["token"].as_str().unwrap()).await);
    }
    assert_eq!(results[0].0, "joined");
    assert_eq!(results[1].0, "joined");
    assert_eq!(
        (results[2].0.as_str(), results[2].1.as_str()),
        ("error", "room_full")
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
