//! Scheduled events and channel insights over real HTTP and WebSocket, on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn scenario(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (outsider, _) = s.register("outsider").await;
    let (_, g) = s
        .post("/api/v1/guilds", Some(&owner), json!({"name": "g"}))
        .await;
    let gid = id(&g);
    let find = |kind: &str| {
        id(g["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .unwrap())
    };
    let (general, voice) = (find("text"), find("voice"));
    let (_, inv) = s
        .post(
            &format!("/api/v1/guilds/{gid}/invites"),
            Some(&owner),
            json!({}),
        )
        .await;
    s.post(
        &format!("/api/v1/invites/{}", inv["code"].as_str().unwrap()),
        Some(&member),
        json!({}),
    )
    .await;
    let mut ws = s.ws().await;
    ws.identify(&member).await;

    // Scheduled events.
    let events = format!("/api/v1/guilds/{gid}/scheduled-events");
    let start = now_ms() + 3_600_000;
    let body = json!({"title": "주간 회의", "start_at": start, "end_at": start + 3_600_000, "channel_id": voice});
    let (st, _) = s.post(&events, Some(&member), body.clone()).await;
    assert_eq!(st, 403, "members cannot schedule");
    for (bad, code) in [
        (
            json!({"title": "x", "start_at": now_ms() - 1000}),
            "invalid_time",
        ),
        (
            json!({"title": "x", "start_at": start, "end_at": start - 1}),
            "invalid_time",
        ),
        (
            json!({"title": "x", "start_at": start, "channel_id": general}),
            "invalid_channel",
        ),
        (json!({"title": "x"}), "invalid_time"),
    ] {
        let (st, b) = s.post(&events, Some(&owner), bad.clone()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some(code)), "{bad}");
    }
    let (st, e) = s.post(&events, Some(&owner), body).await;
    assert_eq!(st, 201, "{e}");
    let eid = id(&e);
    assert_eq!(
        ws.dispatch("guild_scheduled_event_create").await["d"]["id"],
        eid.as_str()
    );
    let interest = format!("{events}/{eid}/interested");
    let (st, _) = s.send(Method::PUT, &interest, &member, json!({})).await;
    assert_eq!(st, 204);
    let f = ws.dispatch("guild_scheduled_event_user_add").await;
    assert_eq!(f["d"]["user_id"], member_id.as_str());
    let (_, e) = s.get(&format!("{events}/{eid}"), &member).await;
    assert_eq!(
        (e["interested_count"].as_u64(), &e["interested"]),
        (Some(1), &json!(true))
    );
    let (_, who) = s.get(&interest, &owner).await;
    assert_eq!(who, json!([member_id]));
    let (_, list) = s.get(&events, &member).await;
    assert_eq!(list[0]["title"], "주간 회의");
    let (st, e) = s
        .send(
            Method::PATCH,
            &format!("{events}/{eid}"),
            &owner,
            json!({"title": "회의 (변경)"}),
        )
        .await;
    assert_eq!((st, e["title"].as_str()), (200, Some("회의 (변경)")));
    let (st, _) = s
        .send(
            Method::PATCH,
            &format!("{events}/{eid}"),
            &member,
            json!({"title": "mine"}),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s.send(Method::DELETE, &interest, &member, json!({})).await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&events, &outsider).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("{events}/{eid}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let (_, list) = s.get(&events, &member).await;
    assert_eq!(list, json!([]));

    // Insights: the top words of the last seven days, minus the caller's exclusions.
    let msgs = format!("/api/v1/channels/{general}/messages");
    for text in [
        "deploy 회의는 내일",
        "회의를 deploy 합시다",
        "deploy the release",
        "release notes @member https://example.com",
        "회의",
    ] {
        s.post(&msgs, Some(&owner), json!({"content": text})).await;
    }
    let insights = format!("/api/v1/channels/{general}/insights");
    let (st, r) = s.get(&format!("{insights}?top=3"), &member).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["words"],
        json!([
            {"word": "deploy", "count": 3},
            {"word": "회의", "count": 3},
            {"word": "release", "count": 2}
        ])
    );
    let (st, ex) = s
        .send(
            Method::PUT,
            "/api/v1/users/@me/insights/excluded-words",
            &member,
            json!({"words": ["Deploy", "release", " "]}),
        )
        .await;
    assert_eq!((st, &ex["words"]), (200, &json!(["deploy", "release"])));
    let (_, r) = s.get(&format!("{insights}?top=3"), &member).await;
    assert_eq!(r["words"][0], json!({"word": "회의", "count": 3}));
    assert!(
        r["words"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["word"] != "deploy")
    );
    // The owner's list is their own.
    let (_, r) = s.get(&format!("{insights}?top=5"), &owner).await;
    assert_eq!(r["words"][0]["word"], "deploy");
    let (st, _) = s.get(&format!("{insights}?top=4"), &member).await;
    assert_eq!(st, 400);
    let (st, _) = s.get(&insights, &outsider).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn scheduled_events_and_insights_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
