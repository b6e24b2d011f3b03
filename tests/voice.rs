//! Chat and rooms together: a voice channel's join tokens admit members to the SFU room,
//! and the channel's cap holds there.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, FrameExt, TestServer, packets_of, raw_join_addr, settled, sleep_ms};
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

/// A chat service beside `server`, sharing its room-token key: its base URL, and its
/// data directory to remove.
async fn start_chat(server: &TestServer, name: &str) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("parlor_voice_{name}_{}", std::process::id()));
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
    (api, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_channel_cap_holds_in_its_room() {
    let server = TestServer::start().await;
    let (api, dir) = start_chat(&server, "cap").await;
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

/// Identifies with `token` and joins; the reply to join (`joined` or `error`), or the
/// error that refused the token. The socket stays in the room until the test ends.
async fn join_reply(http: std::net::SocketAddr, token: &str) -> Value {
    use futures_util::SinkExt;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .unwrap();
    let _hello = common::raw_next(&mut ws).await;
    let send = |v: Value| tokio_tungstenite::tungstenite::Message::text(v.to_string());
    ws.send(send(json!({"op": "identify", "d": {"token": token}})))
        .await
        .unwrap();
    let ready = common::raw_next(&mut ws).await.unwrap_or(Value::Null);
    if ready["op"] != "ready" {
        return ready;
    }
    ws.send(send(json!({"op": "join", "id": 1, "d": {}})))
        .await
        .unwrap();
    loop {
        let v = common::raw_next(&mut ws).await.unwrap_or(Value::Null);
        if v["id"] == 1 || v.is_null() {
            tokio::spawn(async move { while common::raw_next(&mut ws).await.is_some() {} });
            return v;
        }
    }
}

/// A guest token never reaches the room of a chat voice channel, whatever room name the
/// guest asks for, even where the channel denies CONNECT to everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_tokens_never_reach_a_voice_channel() {
    let server = TestServer::start().await;
    let (api, dir) = start_chat(&server, "guest").await;
    let http = reqwest::Client::new();

    let s = post(
        &http,
        format!("{api}/api/v1/auth/register"),
        None,
        json!({"username": "owner", "password": "password 123"}),
    )
    .await;
    let owner = s["access_token"].as_str().unwrap().to_owned();
    let g = post(
        &http,
        format!("{api}/api/v1/guilds"),
        Some(&owner),
        json!({"name": "g"}),
    )
    .await;
    let gid = g["id"].as_str().unwrap();
    let v = post(
        &http,
        format!("{api}/api/v1/guilds/{gid}/channels"),
        Some(&owner),
        json!({"name": "Private", "kind": "voice"}),
    )
    .await;
    let vid = v["id"].as_str().unwrap();
    // CONNECT (1 << 14) denied to @everyone; the owner bypasses overwrites.
    let r = http
        .put(format!("{api}/api/v1/channels/{vid}/permissions/{gid}"))
        .bearer_auth(&owner)
        .json(&json!({"type": "role", "deny": "16384"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let j = post(
        &http,
        format!("{api}/api/v1/channels/{vid}/voice/join"),
        Some(&owner),
        json!({}),
    )
    .await;
    let room = j["room"].as_str().unwrap().to_owned();
    let owner_join = join_reply(server.http, j["token"].as_str().unwrap()).await;
    assert_eq!(owner_join["op"], "joined", "{owner_join}");

    // Asking for the channel's room by its name is refused.
    let r = http
        .post(server.url("/api/guest-token"))
        .json(&json!({"room": room, "name": "eve"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("reserved_room"))
    );

    // Any other name is a room no guild owns: the guest is alone there.
    for name in [
        format!("voice-{vid}"),
        room.to_uppercase(),
        format!("{room}x"),
    ] {
        let r = http
            .post(server.url("/api/guest-token"))
            .json(&json!({"room": name, "name": "eve"}))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            continue;
        }
        let t: Value = r.json().await.unwrap();
        let joined = join_reply(server.http, t["token"].as_str().unwrap()).await;
        assert_eq!(joined["op"], "joined", "{joined}");
        assert_eq!(
            joined["d"]["participants"],
            json!([]),
            "a guest in {name} shares a room with the channel's call"
        );
    }

    // A token signed with the room key but not minted by chat for the channel is refused,
    // however it names the room.
    let forged = server.token(&room, "eve");
    let refused = join_reply(server.http, &forged).await;
    assert_eq!(
        (refused["op"].as_str(), refused["d"]["code"].as_str()),
        (Some("error"), Some("invalid_token")),
        "{refused}"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Registers a chat account; its access token and user id.
async fn register(http: &reqwest::Client, api: &str, name: &str) -> (String, String) {
    let s = post(
        http,
        format!("{api}/api/v1/auth/register"),
        None,
        json!({"username": name, "password": "password 123"}),
    )
    .await;
    (
        s["access_token"].as_str().unwrap().to_owned(),
        s["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Opens the chat gateway as `token` and says the user is in voice channel `channel`;
/// the socket stays open until the test ends.
async fn in_voice(api: &str, token: &str, channel: &str) {
    use futures_util::{SinkExt, StreamExt};
    let ws_url = api.replacen("http://", "ws://", 1) + "/api/v1/gateway";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let send = |v: Value| tokio_tungstenite::tungstenite::Message::text(v.to_string());
    ws.send(send(json!({"op": "identify", "d": {"token": token}})))
        .await
        .unwrap();
    ws.send(send(
        json!({"op": "voice_state", "d": {"channel_id": channel}}),
    ))
    .await
    .unwrap();
    tokio::spawn(async move { while ws.next().await.is_some() {} });
}

/// A moderator in chat server-mutes and disconnects a member of a voice channel, and the
/// SFU enforces it: chat → signaling's room admin API → the SFU, with webrtc-rs clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_in_chat_silences_and_disconnects_at_the_sfu() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let (api, dir) = start_chat(&server, "moderation").await;
    let http = reqwest::Client::new();
    let (owner, _) = register(&http, &api, "owner").await;
    let (member, member_id) = register(&http, &api, "member").await;
    let g = post(
        &http,
        format!("{api}/api/v1/guilds"),
        Some(&owner),
        json!({"name": "g"}),
    )
    .await;
    let gid = g["id"].as_str().unwrap();
    let v = post(
        &http,
        format!("{api}/api/v1/guilds/{gid}/channels"),
        Some(&owner),
        json!({"name": "Talk", "kind": "voice"}),
    )
    .await;
    let vid = v["id"].as_str().unwrap();
    let inv = post(
        &http,
        format!("{api}/api/v1/guilds/{gid}/invites"),
        Some(&owner),
        json!({}),
    )
    .await;
    post(
        &http,
        format!("{api}/api/v1/invites/{}", inv["code"].as_str().unwrap()),
        Some(&member),
        json!({}),
    )
    .await;

    // Both in the channel: the member speaks, the owner listens.
    let join = |t: String| {
        let (http, url) = (
            http.clone(),
            format!("{api}/api/v1/channels/{vid}/voice/join"),
        );
        async move {
            post(&http, url, Some(&t), json!({})).await["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    in_voice(&api, &member, vid).await;
    let mut speaker = Client::join(&server, &join(member.clone()).await).await?;
    speaker.publish(&["microphone"]).await?;
    let listener = Client::join(&server, &join(owner.clone()).await).await?;
    let mic = speaker.published.lock().unwrap()["microphone"].clone();
    listener
        .wait_media("the owner hears the member", |t| {
            t.get(&mic).is_some_and(|r| r.packets > 10)
        })
        .await?;

    let moderate = |body: Value| {
        let r = http
            .patch(format!(
                "{api}/api/v1/guilds/{gid}/members/{member_id}/voice"
            ))
            .bearer_auth(&owner)
            .json(&body)
            .send();
        async move { r.await.unwrap().status().as_u16() }
    };
    assert_eq!(moderate(json!({"mute": true})).await, 204);
    let m = speaker.wait_event("track_muted").await?.to_json();
    assert_eq!(
        (m["d"]["track_id"].as_str(), m["d"]["muted"].as_bool()),
        (Some(mic.as_str()), Some(true))
    );
    let stopped = settled(&listener, &mic).await;
    sleep_ms(800).await;
    assert_eq!(
        packets_of(&listener, &mic),
        stopped,
        "a server-muted member was heard"
    );

    assert_eq!(moderate(json!({"mute": false})).await, 204);
    listener
        .wait_media("heard again", |t| {
            t.get(&mic).is_some_and(|r| r.packets > stopped + 10)
        })
        .await?;

    assert_eq!(moderate(json!({"channel_id": null})).await, 204);
    let e = speaker.wait_event("error").await?.to_json();
    assert_eq!(e["d"]["code"], "removed", "{e}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
