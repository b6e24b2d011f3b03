//! Bad input gets a clear error with a code, and nobody else in the room notices.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use common::{Client, FrameExt, TestServer, raw_next, raw_ws};
use parlor_proto::{Grants, PublishSource, TokenKey};

async fn identify_with(server: &TestServer, token: &str) -> serde_json::Value {
    let mut ws = raw_ws(server).await;
    let _hello = raw_next(&mut ws).await;
    ws.send(Message::text(
        json!({"op": "identify", "d": {"token": token}}).to_string(),
    ))
    .await
    .unwrap();
    let reply = raw_next(&mut ws).await.unwrap_or_default();
    // The server closes an unauthenticated connection.
    assert!(raw_next(&mut ws).await.is_none(), "connection left open");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_harms_no_one() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut alice = Client::join(&server, &server.token("bad", "alice")).await?;
    alice.publish(&["microphone", "camera"]).await?;
    let bob = Client::join(&server, &server.token("bad", "bob")).await?;
    let cam = alice.published.lock().unwrap()["camera"].clone();
    bob.wait_media("bob sees alice", |t| {
        t.get(&cam).is_some_and(|r| r.packets > 10)
    })
    .await?;

    // A token signed with another key.
    let forged =
        TokenKey::new(b"not-the-server-key-0123456789abcdef").sign(&parlor_proto::Claims::new(
            parlor_proto::RoomId::parse("bad").unwrap(),
            parlor_proto::ParticipantId::parse("mallory").unwrap(),
            Duration::from_secs(60),
        ));
    let r = identify_with(&server, &forged).await;
    assert_eq!(
        (r["op"].as_str(), r["d"]["code"].as_str()),
        (Some("error"), Some("invalid_token")),
        "{r}"
    );

    // An expired token.
    let expired = server.token_with("bad", "late", |c| c.exp = c.iat - 120);
    let r = identify_with(&server, &expired).await;
    assert_eq!(r["d"]["code"], "token_expired", "{r}");

    // Garbage, not a token at all.
    let r = identify_with(&server, "garbage").await;
    assert_eq!(r["d"]["code"], "invalid_token", "{r}");

    // A token for another room, on WHIP (the WebSocket's room comes from the token).
    let other = server.token("other-room", "mallory");
    let resp = reqwest::Client::new()
        .post(server.url("/whip/rooms/bad"))
        .bearer_auth(other)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["code"], "wrong_room");

    // Publishing a source the token does not grant.
    let mut carol = Client::join(
        &server,
        &server.token_with("bad", "carol", |c| {
            c.grants = Grants {
                publish: vec![PublishSource::Audio],
                subscribe: true,
                admin: false,
                muted: false,
            }
        }),
    )
    .await?;
    let r = carol.publish(&["camera"]).await?;
    assert_eq!(r.msg_op(), "error");
    assert_eq!(r.to_json()["d"]["code"], "forbidden", "{}", r.to_json());

    // Malformed SDP.
    let r = carol
        .request("offer", json!({"sdp": "this is not sdp", "tracks": []}))
        .await?;
    assert_eq!(r.to_json()["d"]["code"], "invalid_sdp", "{}", r.to_json());
    let r = carol
        .request(
            "offer",
            json!({"sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\n", "tracks": []}),
        )
        .await?;
    assert_eq!(r.to_json()["d"]["code"], "invalid_sdp", "{}", r.to_json());

    // Garbage JSON, a wrong shape and an unknown op: errors, and the connection stays usable.
    let mut raw = raw_ws(&server).await;
    let _hello = raw_next(&mut raw).await;
    raw.send(Message::text("{not json")).await?;
    let r = raw_next(&mut raw).await.unwrap_or_default();
    assert_eq!(r["d"]["code"], "invalid_json", "{r}");
    raw.send(Message::text(r#"{"op":"identify","d":{"tok":1}}"#))
        .await?;
    let r = raw_next(&mut raw).await.unwrap_or_default();
    assert_eq!(r["d"]["code"], "invalid_message", "{r}");
    raw.send(Message::text(r#"{"op":"teleport","id":5,"d":{}}"#))
        .await?;
    let r = raw_next(&mut raw).await.unwrap_or_default();
    assert_eq!(
        (r["d"]["code"].as_str(), r["id"].as_u64()),
        (Some("unknown_op"), Some(5)),
        "{r}"
    );
    raw.send(Message::text(r#"{"op":"join","id":6}"#)).await?;
    let r = raw_next(&mut raw).await.unwrap_or_default();
    assert_eq!(r["d"]["code"], "not_identified", "{r}");
    raw.send(Message::text(r#"{"op":"heartbeat","d":{"seq":0}}"#))
        .await?;
    let r = raw_next(&mut raw).await.unwrap_or_default();
    assert_eq!(r["op"], "heartbeat_ack", "{r}");

    // An oversized frame: an error, then the connection is closed.
    let big = format!(
        r#"{{"op":"heartbeat","d":{{"pad":"{}"}}}}"#,
        "x".repeat(200_000)
    );
    raw.send(Message::text(big)).await?;
    let r = raw_next(&mut raw).await.unwrap_or_default();
    assert_eq!(r["d"]["code"], "frame_too_large", "{r}");
    assert!(raw_next(&mut raw).await.is_none());

    // Carol's session survived all of it: she can still publish what she may.
    let r = carol.publish(&["microphone"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());

    // And bob never stopped receiving alice.
    let before = bob.counts()[&cam].packets;
    bob.wait_media("bob still sees alice", |t| t[&cam].packets > before + 20)
        .await?;
    server.stop().await;
    Ok(())
}
