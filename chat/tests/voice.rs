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

const MUTE_MEMBERS: u64 = 1 << 18;
const MOVE_MEMBERS: u64 = 1 << 19;

/// The next voice state of `user` in `channel`, skipping earlier ones.
async fn moved_to(ws: &mut common::Ws, user: &str, channel: &str) -> Value {
    loop {
        let v = ws.update_of("voice_state_update", user).await;
        if v["channel_id"] == channel {
            return v;
        }
    }
}

/// Server-mute, move and disconnect: who may, what members see, and what the next voice
/// token carries.
async fn moderation(db: Db) {
    let s = Server::start_with(db, |c| c.room_key = Some(ROOM_SECRET.to_vec())).await;
    let (owner, owner_id) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (modr, _) = s.register("modr").await;
    let (_, gid, _) = s.guild(&owner, &[&member, &modr]).await;
    let voice = |name: &'static str, limit: Option<u32>| {
        let (s, owner, gid) = (&s, &owner, &gid);
        async move {
            let (st, c) = s
                .post(
                    &format!("/api/v1/guilds/{gid}/channels"),
                    Some(owner),
                    json!({"name": name, "kind": "voice", "user_limit": limit}),
                )
                .await;
            assert_eq!(st, 201, "{c}");
            id(&c)
        }
    };
    let (a, b, full) = (
        voice("A", None).await,
        voice("B", None).await,
        voice("Full", Some(1)).await,
    );
    let m = member_id.as_str();
    let path = format!("/api/v1/guilds/{gid}/members/{m}/voice");
    let patch = |token: &String, body: Value| {
        let (s, path, token) = (&s, path.clone(), token.clone());
        async move { s.send(Method::PATCH, &path, &token, body).await }
    };

    let mut watch = s.ws().await;
    watch.identify(&owner).await;
    let mut caller = s.ws().await;
    caller.identify(&member).await;
    caller
        .send(json!({"op": "voice_state", "d": {"channel_id": a}}))
        .await;
    let v = watch.update_of("voice_state_update", m).await;
    assert_eq!(
        (v["channel_id"].as_str(), v["mute"].as_bool()),
        (Some(a.as_str()), Some(false))
    );

    // Without the permissions: refused, and nothing changes.
    for body in [
        json!({"mute": true}),
        json!({"channel_id": b}),
        json!({"channel_id": null}),
    ] {
        let (st, e) = patch(&modr, body).await;
        assert_eq!(
            (st, e["code"].as_str()),
            (403, Some("missing_permissions")),
            "{e}"
        );
    }
    let (st, e) = patch(&modr, json!({})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("invalid_json")));
    let (st, e) = patch(&modr, json!({"mute": "loud"})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("invalid_json")));

    // A role with MUTE_MEMBERS and MOVE_MEMBERS.
    let (st, role) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&owner),
            json!({"name": "mods", "permissions": (MUTE_MEMBERS | MOVE_MEMBERS | CONNECT).to_string()}),
        )
        .await;
    assert_eq!(st, 201, "{role}");
    let (_, me) = s.get("/api/v1/users/@me", &modr).await;
    let (st, _) = s
        .send(
            Method::PUT,
            &format!(
                "/api/v1/guilds/{gid}/members/{}/roles/{}",
                id(&me),
                id(&role)
            ),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    // Nobody but the owner moderates the owner.
    let (st, e) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/guilds/{gid}/members/{owner_id}/voice"),
            &modr,
            json!({"mute": true}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (403, Some("role_hierarchy")));

    // Server-mute: the voice state and the member say so, to everyone.
    let (st, _) = patch(&modr, json!({"mute": true})).await;
    assert_eq!(st, 204);
    let u = loop {
        let u = watch.dispatch("guild_member_update").await;
        if u["d"]["user"]["id"] == m {
            break u;
        }
    };
    assert_eq!(u["d"]["mute"], true, "{u}");
    let v = watch.update_of("voice_state_update", m).await;
    assert_eq!(v["mute"], true);
    // The next voice token says so too, so the SFU enforces it on joining.
    let key = TokenKey::new(ROOM_SECRET);
    let (_, j) = s
        .post(
            &format!("/api/v1/channels/{a}/voice/join"),
            Some(&member),
            json!({}),
        )
        .await;
    assert!(
        key.verify(j["token"].as_str().unwrap())
            .unwrap()
            .grants
            .muted
    );
    // The member's own voice_state keeps the mute: it is not theirs to lift.
    caller
        .send(json!({"op": "voice_state", "d": {"channel_id": a, "self_mute": false}}))
        .await;
    let v = watch.update_of("voice_state_update", m).await;
    assert_eq!(v["mute"], true);

    // Moves: not into a full channel or one that is not a channel; into B, with the
    // mute unless lifted on the way.
    let mut other = s.ws().await;
    other.identify(&owner).await;
    other
        .send(json!({"op": "voice_state", "d": {"channel_id": full}}))
        .await;
    watch.update_of("voice_state_update", &owner_id).await;
    let (st, e) = patch(&modr, json!({"channel_id": full})).await;
    assert_eq!((st, e["code"].as_str()), (403, Some("channel_full")), "{e}");
    let (st, _) = patch(&modr, json!({"channel_id": b})).await;
    assert_eq!(st, 204);
    // The member's own client hears where it now is (and joins that room).
    let v = moved_to(&mut caller, m, &b).await;
    assert_eq!(v["mute"], true);
    let mv = caller.dispatch("voice_move").await;
    assert_eq!(
        (mv["d"]["channel_id"].as_str(), mv["d"]["guild_id"].as_str()),
        (Some(b.as_str()), Some(gid.as_str()))
    );
    let (st, e) = patch(&modr, json!({"channel_id": gid})).await;
    assert_eq!(st, 404, "{e}");
    let (st, e) = patch(&modr, json!({"channel_id": a, "mute": false})).await;
    assert_eq!(st, 204, "{e}");
    let v = moved_to(&mut caller, m, &a).await;
    assert_eq!(v["mute"], false);
    let mv = caller.dispatch("voice_move").await;
    assert_eq!(mv["d"]["channel_id"], a.as_str());

    // Disconnect: the member is out of voice, and then there is nothing to move.
    let (st, _) = patch(&modr, json!({"channel_id": null})).await;
    assert_eq!(st, 204);
    let v = watch.update_of("voice_state_update", m).await;
    assert!(v["channel_id"].is_null(), "{v}");
    let mv = caller.dispatch("voice_move").await;
    assert!(mv["d"]["channel_id"].is_null(), "{mv}");
    let (st, e) = patch(&modr, json!({"channel_id": a})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("not_in_voice")));
    let (_, list) = s
        .get(&format!("/api/v1/guilds/{gid}/voice-states"), &owner)
        .await;
    assert!(
        list.as_array().unwrap().iter().all(|v| v["user_id"] != m),
        "{list}"
    );
    s.stop().await;
}

#[tokio::test]
async fn moderators_server_mute_move_and_disconnect_on_both_stores() {
    for db in BOTH {
        moderation(db).await;
    }
}
