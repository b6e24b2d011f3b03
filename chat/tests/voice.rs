//! Joining voice channels: room tokens whose grants follow channel permissions, on both
//! stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use parlor_proto::{PublishSource, TokenKey};
use reqwest::Method;
use serde_json::{Value, json};

const ROOM_SECRET: &[u8] = b"voice-test-room-secret-0123456789";
const CONNECT: u64 = 1 << 14;
const SPEAK: u64 = 1 << 15;
const VIDEO: u64 = 1 << 16;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn scenario(db: Db) {
    let s = Server::start_with(db, |c| c.room_key = Some(ROOM_SECRET.to_vec())).await;
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (outsider, _) = s.register("outsider").await;
    // The guild's first text channel is `general`.
    let (_, gid, text) = s.guild(&owner, &[&member]).await;
    let (_, voice) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "Standup", "kind": "voice", "user_limit": 3}),
        )
        .await;
    let vid = id(&voice);
    let join = |c: &str| format!("/api/v1/channels/{c}/voice/join");
    let key = TokenKey::new(ROOM_SECRET);

    // A member with the default permissions may speak, show video and share a screen.
    let (st, j) = s.post(&join(&vid), Some(&member), json!({})).await;
    assert_eq!(st, 200, "{j}");
    let claims = key.verify(j["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.room.as_str(), format!("chat:voice-{vid}"));
    assert_eq!(claims.ns, Some(parlor_proto::RoomNamespace::Chat));
    assert_eq!(claims.sub.as_str(), format!("user-{member_id}"));
    assert_eq!(claims.name.as_deref(), Some("member"));
    assert_eq!(
        claims.grants.publish,
        vec![
            PublishSource::Audio,
            PublishSource::Video,
            PublishSource::Screen
        ]
    );
    assert_eq!(claims.caps.unwrap().max_participants, Some(3));
    assert!(!claims.grants.admin, "members are never room admins");
    assert!(j["url"].as_str().unwrap().ends_with("/ws"));

    // Deny video in the channel: the token no longer grants it. Deny speak too, and
    // only the screen remains.
    let perm = format!("/api/v1/channels/{vid}/permissions/{gid}");
    let (st, _) = s
        .send(
            Method::PUT,
            &perm,
            &owner,
            json!({"type": "role", "deny": (VIDEO | SPEAK).to_string()}),
        )
        .await;
    assert_eq!(st, 204);
    let (_, j) = s.post(&join(&vid), Some(&member), json!({})).await;
    let claims = key.verify(j["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.grants.publish, vec![PublishSource::Screen]);

    // Without connect, no token.
    s.send(
        Method::PUT,
        &perm,
        &owner,
        json!({"type": "role", "deny": CONNECT.to_string()}),
    )
    .await;
    let (st, b) = s.post(&join(&vid), Some(&member), json!({})).await;
    assert_eq!((st, b["code"].as_str()), (403, Some("missing_permissions")));

    // An uncapped channel's tokens carry no caps and no admin grant.
    let (_, open) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "Lounge", "kind": "voice"}),
        )
        .await;
    let (_, j) = s.post(&join(&id(&open)), Some(&member), json!({})).await;
    let claims = key.verify(j["token"].as_str().unwrap()).unwrap();
    assert!(claims.caps.is_none());

    // Text channels, outsiders and bad tokens are refused.
    let (st, b) = s.post(&join(&text), Some(&member), json!({})).await;
    assert_eq!((st, b["code"].as_str()), (400, Some("not_a_voice_channel")));
    let (st, _) = s.post(&join(&vid), Some(&outsider), json!({})).await;
    assert_eq!(st, 404);
    let (st, _) = s.post(&join(&vid), Some("garbage"), json!({})).await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn voice_join_tokens_follow_permissions_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
