//! Room caps set per room: through the admin API and through an admin token.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use serde_json::{Value, json};

use common::{Client, FrameExt, TestServer, packets_of, raw_join, settled, sleep_ms};
use parlor_proto::RoomCaps;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_sets_caps_that_joins_obey() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let admin = server.token_with("capped", "boss", |c| c.grants.admin = true);

    // Not an admin, or another room's admin: refused.
    let plain = server.token("capped", "pleb");
    let r = http
        .put(server.url("/admin/rooms/capped/caps"))
        .bearer_auth(&plain)
        .json(&json!({"max_participants": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let other = server.token_with("elsewhere", "boss", |c| c.grants.admin = true);
    let r = http
        .put(server.url("/admin/rooms/capped/caps"))
        .bearer_auth(&other)
        .json(&json!({"max_participants": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let r = http
        .put(server.url("/admin/rooms/capped/caps"))
        .bearer_auth(&admin)
        .body("{nope")
        .header("content-type", "application/json")
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    // Set before the room opens: the cap applies when it does.
    let r = http
        .put(server.url("/admin/rooms/capped/caps"))
        .bearer_auth(&admin)
        .json(&json!({"max_participants": 2}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await?;
    assert_eq!(body["caps"]["max_participants"], 2);
    assert_eq!(body["open"], false);

    assert_eq!(
        raw_join(&server, &server.token("capped", "a")).await.0,
        "joined"
    );
    assert_eq!(
        raw_join(&server, &server.token("capped", "b")).await.0,
        "joined"
    );
    assert_eq!(
        raw_join(&server, &server.token("capped", "c")).await,
        ("error".to_owned(), "room_full".to_owned())
    );
    let status: Value = http
        .get(server.url("/admin/rooms/capped"))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(status["participants"], 2);
    assert_eq!(status["open"], true);

    // Raised while open: the next join gets in.
    http.put(server.url("/admin/rooms/capped/caps"))
        .bearer_auth(&admin)
        .json(&json!({"max_participants": 3}))
        .send()
        .await?;
    assert_eq!(
        raw_join(&server, &server.token("capped", "d")).await.0,
        "joined"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_in_a_token_apply_without_the_admin_grant() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let caps = RoomCaps {
        max_participants: Some(1),
        ..Default::default()
    };
    // The issuer's caps apply to a participant's token: the room holds one.
    let capped = server.token_with("tok", "first", |c| c.caps = Some(caps));
    assert_eq!(raw_join(&server, &capped).await.0, "joined");
    assert_eq!(
        raw_join(&server, &server.token("tok", "second")).await.1,
        "room_full"
    );
    // Without the admin grant, the same token cannot use the admin API.
    let r = reqwest::Client::new()
        .put(server.url("/admin/rooms/tok/caps"))
        .bearer_auth(&capped)
        .json(&serde_json::json!({"max_participants": 50}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    server.stop().await;
    Ok(())
}

/// A moderator's server-mute stops the microphone at the SFU, whatever the muted client
/// does, and tells everyone; removal closes the participant with `removed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_server_mutes_and_removes_participants() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let admin = server.token_with("modded", "boss", |c| c.grants.admin = true);
    let mut alice = Client::join(&server, &server.token("modded", "alice")).await?;
    alice.publish(&["microphone", "camera"]).await?;
    let mut bob = Client::join(&server, &server.token("modded", "bob")).await?;
    let mic = alice.published.lock().unwrap()["microphone"].clone();
    let cam = alice.published.lock().unwrap()["camera"].clone();
    bob.wait_media("bob hears alice", |t| {
        t.get(&mic).is_some_and(|r| r.packets > 10)
    })
    .await?;

    // Only the room's admin may; bad bodies and unknown participants are refused.
    let url = server.url("/admin/rooms/modded/participants/alice");
    let r = http
        .patch(&url)
        .bearer_auth(server.token("modded", "bob"))
        .json(&json!({"muted": true}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let r = http
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"mute": "yes"}))
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = http
        .patch(server.url("/admin/rooms/modded/participants/nobody"))
        .bearer_auth(&admin)
        .json(&json!({"muted": true}))
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await?["code"], "unknown_participant");

    // Server-muted: bob is told, alice is told (her own track), and the microphone stops
    // at the SFU while the camera flows.
    let r = http
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"muted": true}))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    for c in [&mut bob, &mut alice] {
        let m = c.wait_event("track_muted").await?.to_json();
        assert_eq!(m["d"]["track_id"], mic.as_str());
        assert_eq!(m["d"]["muted"], true);
    }
    let stopped = settled(&bob, &mic).await;
    // Alice's client unmutes itself: nothing changes.
    let r = alice
        .request("mute", json!({"track_id": mic, "muted": false}))
        .await?;
    assert_eq!(r.msg_op(), "ok", "{}", r.to_json());
    let cam_before = packets_of(&bob, &cam);
    sleep_ms(1000).await;
    assert_eq!(packets_of(&bob, &mic), stopped, "a server-muted mic flowed");
    assert!(
        packets_of(&bob, &cam) > cam_before + 10,
        "the camera stopped"
    );

    // Lifted: it flows again.
    let r = http
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"muted": false}))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    assert_eq!(
        bob.wait_event("track_muted").await?.to_json()["d"]["muted"],
        false
    );
    bob.wait_media("alice is heard again", |t| {
        t.get(&mic).is_some_and(|r| r.packets > stopped + 10)
    })
    .await?;

    // Removed: alice is told why, bob sees her leave for that reason.
    let r = http.delete(&url).bearer_auth(&admin).send().await?;
    assert_eq!(r.status(), 204);
    let e = alice.wait_event("error").await?.to_json();
    assert_eq!(e["d"]["code"], "removed");
    let left = bob.wait_event("participant_left").await?.to_json();
    assert_eq!(left["d"]["identity"], "alice");
    assert_eq!(left["d"]["reason"], "removed");
    let r = http.delete(&url).bearer_auth(&admin).send().await?;
    assert_eq!(r.status(), 404);
    server.stop().await;
    Ok(())
}
