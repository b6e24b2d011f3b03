//! Mentions, replies, reactions and pins over real HTTP and WebSocket, on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

const ADD_REACTIONS: u64 = 1 << 7;

async fn scenario(db: Db) {
    let s = Server::start(db).await;
    let (owner, owner_id) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (_, outsider_id) = s.register("outsider").await;
    let (_, gid, general) = s.guild(&owner, &[&member]).await;
    let (_, role) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&owner),
            json!({"name": "devs"}),
        )
        .await;
    let role_id = id(&role);
    let msgs = format!("/api/v1/channels/{general}/messages");
    let mut ws = s.ws().await;
    ws.identify(&member).await;

    // Every mention form resolves against the guild; outsiders, unknown ids and code
    // spans mention nobody.
    let text = format!(
        "hi @member <@{owner_id}> <@{outsider_id}> @devs <@&{role_id}> <#{general}> #general \
         `@owner` <@&999> @nobody"
    );
    let (st, m) = s.post(&msgs, Some(&owner), json!({"content": text})).await;
    assert_eq!(st, 201, "{m}");
    let mut users: Vec<&str> = m["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    users.sort();
    let mut want = vec![owner_id.as_str(), member_id.as_str()];
    want.sort();
    assert_eq!(users, want);
    assert_eq!(m["mention_roles"], json!([role_id]));
    assert_eq!(m["mention_channels"], json!([general]));
    assert_eq!(m["mention_everyone"], false);
    // The mentions reach the member with the message, and history keeps them.
    let f = ws.dispatch("message_create").await;
    assert_eq!(f["d"]["mentions"], m["mentions"]);
    let (_, page) = s.get(&format!("{msgs}?limit=1"), &member).await;
    assert_eq!(page[0]["mention_roles"], json!([role_id]));

    // @everyone counts only with the permission for it.
    let (_, e) = s
        .post(&msgs, Some(&member), json!({"content": "@everyone look"}))
        .await;
    assert_eq!(e["mention_everyone"], false);
    let (_, e) = s
        .post(&msgs, Some(&owner), json!({"content": "@here look"}))
        .await;
    assert_eq!(e["mention_everyone"], true);

    // Edits re-parse mentions.
    let (st, edited) = s
        .send(
            Method::PATCH,
            &format!("{msgs}/{}", id(&m)),
            &owner,
            json!({"content": "just @member now"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(edited["mentions"], json!([member_id]));
    assert_eq!(edited["mention_roles"], json!([]));

    // Replies point at a message in the same channel.
    let (st, r) = s
        .post(
            &msgs,
            Some(&member),
            json!({"content": "replying", "reply_to": id(&m)}),
        )
        .await;
    assert_eq!((st, r["reply_to"].as_str()), (201, Some(id(&m).as_str())));
    let (st, b) = s
        .post(
            &msgs,
            Some(&member),
            json!({"content": "x", "reply_to": "123"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("unknown_message")));

    // Reactions: an emoji maps to the users who added it.
    let target = format!("{msgs}/{}", id(&m));
    let react = |emoji: &str, who: &str| format!("{target}/reactions/{emoji}/{who}");
    let thumbs = "%F0%9F%91%8D"; // 👍
    let (st, _) = s
        .send(Method::PUT, &react(thumbs, "@me"), &owner, json!({}))
        .await;
    assert_eq!(st, 204);
    let f = ws.dispatch("message_reaction_add").await;
    assert_eq!(
        (f["d"]["emoji"].as_str(), f["d"]["user_id"].as_str()),
        (Some("👍"), Some(owner_id.as_str()))
    );
    // Take add-reactions away from @everyone: the member may still join 👍 but not add
    // a new emoji.
    let base = (1u64 << 0) | (1 << 3);
    s.send(
        Method::PATCH,
        &format!("/api/v1/guilds/{gid}/roles/{gid}"),
        &owner,
        json!({"permissions": base.to_string()}),
    )
    .await;
    let (st, b) = s
        .send(
            Method::PUT,
            &react("%F0%9F%8E%89", "@me"),
            &member,
            json!({}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("missing_permissions")));
    let (st, _) = s
        .send(Method::PUT, &react(thumbs, "@me"), &member, json!({}))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .send(Method::PUT, &react(thumbs, "@me"), &member, json!({}))
        .await;
    assert_eq!(st, 204, "adding twice is a no-op");
    s.send(
        Method::PATCH,
        &format!("/api/v1/guilds/{gid}/roles/{gid}"),
        &owner,
        json!({"permissions": (base | ADD_REACTIONS).to_string()}),
    )
    .await;
    let (_, page) = s
        .get(&format!("{msgs}?around={}&limit=1", id(&m)), &member)
        .await;
    assert_eq!(
        page[0]["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}])
    );
    let (st, who) = s
        .get(&format!("{target}/reactions/{thumbs}"), &member)
        .await;
    assert_eq!((st, who), (200, json!([owner_id, member_id])));
    let (st, _) = s
        .send(
            Method::DELETE,
            &react(thumbs, &owner_id),
            &member,
            json!({}),
        )
        .await;
    assert_eq!(st, 403, "removing others' reactions needs manage messages");
    let (st, _) = s
        .send(
            Method::DELETE,
            &react(thumbs, &member_id),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let f = ws.dispatch("message_reaction_remove").await;
    assert_eq!(f["d"]["user_id"], member_id.as_str());
    let (st, b) = s
        .send(Method::PUT, &react("a%20b", "@me"), &owner, json!({}))
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_emoji")));

    // Pins need manage messages.
    let pin = format!("/api/v1/channels/{general}/pins/{}", id(&m));
    let (st, _) = s.send(Method::PUT, &pin, &member, json!({})).await;
    assert_eq!(st, 403);
    let (st, _) = s.send(Method::PUT, &pin, &owner, json!({})).await;
    assert_eq!(st, 204);
    let f = ws.dispatch("channel_pins_update").await;
    assert_eq!(f["d"]["pinned"], true);
    let (st, pins) = s
        .get(&format!("/api/v1/channels/{general}/pins"), &member)
        .await;
    assert_eq!(st, 200);
    assert_eq!(pins.as_array().unwrap().len(), 1);
    assert_eq!(
        (pins[0]["id"].as_str(), &pins[0]["pinned"]),
        (Some(id(&m).as_str()), &json!(true))
    );
    let (st, _) = s.send(Method::DELETE, &pin, &owner, json!({})).await;
    assert_eq!(st, 204);
    let (_, pins) = s
        .get(&format!("/api/v1/channels/{general}/pins"), &member)
        .await;
    assert_eq!(pins, json!([]));
    s.stop().await;
}

#[tokio::test]
async fn mentions_reactions_pins_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
