//! Room caps set per room: through the admin API and through an admin token.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use serde_json::{Value, json};

use common::{TestServer, raw_join};
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
