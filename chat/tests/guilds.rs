//! Guilds, channels, messages and invites over real HTTP, on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::{Value, json};

async fn user(s: &Server, name: &str) -> String {
    s.register(name).await.0
}

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn guilds(db: Db) {
    let s = Server::start(db).await;
    let owner = user(&s, "owner").await;
    let guest = user(&s, "guest").await;

    let (st, g) = s
        .post(
            "/api/v1/guilds",
            Some(&owner),
            json!({"name": "한국어 서버"}),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let channels = g["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 4);
    let general = channels.iter().find(|c| c["name"] == "general").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let msgs = format!("/api/v1/channels/{general}/messages");

    // History: ids are time-ordered cursors; pages come newest first.
    let mut sent = Vec::new();
    for i in 0..30 {
        let (st, m) = s
            .post(
                &msgs,
                Some(&owner),
                json!({"content": format!("m{i} 안녕하세요")}),
            )
            .await;
        assert_eq!(st, 201, "{m}");
        sent.push(m["id"].as_str().unwrap().to_owned());
    }
    let page = |q: String| {
        let s = &s;
        let owner = owner.clone();
        let msgs = msgs.clone();
        async move { s.get(&format!("{msgs}?{q}"), &owner).await }
    };
    let name = |i: usize| format!("m{i} 안녕하세요");
    let (st, p) = page("limit=3".into()).await;
    assert_eq!((st, ids(&p)), (200, vec![name(29), name(28), name(27)]));
    let (_, p) = page(format!("before={}&limit=2", sent[20])).await;
    assert_eq!(ids(&p), vec![name(19), name(18)]);
    let (_, p) = page(format!("after={}&limit=3", sent[5])).await;
    assert_eq!(ids(&p), vec![name(8), name(7), name(6)]);
    let (_, p) = page(format!("around={}&limit=5", sent[10])).await;
    assert_eq!(
        ids(&p),
        vec![name(12), name(11), name(10), name(9), name(8)]
    );
    let (_, p) = page("limit=100".into()).await;
    assert_eq!(p.as_array().unwrap().len(), 30);
    for bad in ["limit=0", "limit=101", "before=1&after=2", "before=abc"] {
        let (st, b) = page(bad.into()).await;
        assert_eq!(st, 400, "{bad}: {b}");
    }

    // Content limits, replies, edits.
    let (st, b) = s
        .post(&msgs, Some(&owner), json!({"content": "x".repeat(4001)}))
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_content")));
    let (st, _) = s
        .post(&msgs, Some(&owner), json!({"content": "가".repeat(4000)}))
        .await;
    assert_eq!(st, 201, "4000 characters are allowed, whatever their bytes");
    let (st, b) = s.post(&msgs, Some(&owner), json!({"content": "   "})).await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_content")));
    let (st, reply) = s
        .post(
            &msgs,
            Some(&owner),
            json!({"content": "re", "reply_to": sent[0]}),
        )
        .await;
    assert_eq!(
        (st, reply["reply_to"].as_str()),
        (201, Some(sent[0].as_str()))
    );
    let (st, edited) = s
        .send(
            Method::PATCH,
            &format!("{msgs}/{}", sent[29]),
            &owner,
            json!({"content": "fixed"}),
        )
        .await;
    assert_eq!(st, 200, "{edited}");
    assert!(edited["edited_at"].as_i64().is_some());

    // An outsider sees nothing.
    let (st, b) = s.get(&format!("/api/v1/guilds/{gid}"), &guest).await;
    assert_eq!((st, b["code"].as_str()), (404, Some("unknown_guild")));
    let (st, b) = s.post(&msgs, Some(&guest), json!({"content": "hi"})).await;
    assert_eq!((st, b["code"].as_str()), (404, Some("unknown_channel")));
    let (st, _) = s.get("/api/v1/guilds/999", &owner).await;
    assert_eq!(st, 404);

    // Invites: an unknown code is refused; a real one lets the guest in.
    let (st, b) = s
        .post("/api/v1/invites/nope", Some(&guest), json!({}))
        .await;
    assert_eq!((st, b["code"].as_str()), (404, Some("unknown_invite")));
    let (st, inv) = s
        .post(
            &format!("/api/v1/guilds/{gid}/invites"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(st, 201, "{inv}");
    let code = inv["code"].as_str().unwrap();
    assert!(code.len() >= 20, "codes are long enough not to be guessed");
    let (st, joined) = s
        .post(&format!("/api/v1/invites/{code}"), Some(&guest), json!({}))
        .await;
    assert_eq!((st, joined["id"].as_str()), (200, Some(gid.as_str())));

    // A member may talk, but not edit or delete others' messages or manage the guild.
    let (st, mine) = s
        .post(&msgs, Some(&guest), json!({"content": "hello!"}))
        .await;
    assert_eq!(st, 201);
    let target = format!("{msgs}/{}", sent[1]);
    let (st, b) = s
        .send(
            Method::PATCH,
            &target,
            &guest,
            json!({"content": "mine now"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("not_author")));
    let (st, b) = s.send(Method::DELETE, &target, &guest, json!({})).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("missing_permissions")),
        "{b}"
    );
    let (st, b) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/guilds/{gid}"),
            &guest,
            json!({"name": "taken over"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("missing_permissions")));
    let (st, _) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&guest),
            json!({"name": "x", "kind": "text"}),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}"),
            &guest,
            json!({}),
        )
        .await;
    assert_eq!(st, 403);
    // The owner may delete anyone's message.
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("{msgs}/{}", mine["id"].as_str().unwrap()),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);

    // Channels: a capped voice channel; a cap on a text channel is refused.
    let (st, v) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "Standup", "kind": "voice", "user_limit": 5}),
        )
        .await;
    assert_eq!((st, v["user_limit"].as_i64()), (201, Some(5)), "{v}");
    let (st, b) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "t", "kind": "text", "user_limit": 5}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_user_limit")));
    let (st, b) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "t", "kind": "forum"}),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("invalid_channel_kind"))
    );

    // Renaming and deleting.
    let (st, g) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/guilds/{gid}"),
            &owner,
            json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!((st, g["name"].as_str()), (200, Some("Renamed")));
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/api/v1/guilds/{gid}"), &owner).await;
    assert_eq!(st, 404);
    let (st, _) = s.get(&msgs, &owner).await;
    assert_eq!(st, 404, "the guild's channels went with it");
    s.stop().await;
}

#[tokio::test]
async fn guilds_channels_messages_on_both_stores() {
    for db in BOTH {
        guilds(db).await;
    }
}
