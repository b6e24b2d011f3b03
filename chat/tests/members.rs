//! Members, roles, overwrites, kicks, bans and invites over real HTTP and WebSocket, on
//! both stores, with the forbidden cases.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use common::{BOTH, Db, Server, Ws};
use reqwest::Method;
use serde_json::{Value, json};

const VIEW_CHANNEL: u64 = 1 << 0;
const ADMINISTRATOR: u64 = 1 << 1;
const MANAGE_MESSAGES: u64 = 1 << 5;
const MANAGE_ROLES: u64 = 1 << 10;
const KICK_MEMBERS: u64 = 1 << 12;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Reads dispatches until one of this type about this id.
async fn expect_id(ws: &mut Ws, kind: &str, id: &str) {
    loop {
        let f = expect(ws, kind, &[]).await;
        if f["d"]["id"] == id {
            return;
        }
    }
}

/// Reads dispatches until one of this type; panics if `not` comes first.
async fn expect(ws: &mut Ws, kind: &str, not: &[&str]) -> Value {
    loop {
        let f = ws.next().await.unwrap();
        let t = f["t"].as_str().unwrap_or("");
        assert!(!not.contains(&t), "got {t} while waiting for {kind}: {f}");
        if t == kind {
            return f;
        }
    }
}

async fn members_roles_overwrites(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (other, _) = s.register("other").await;
    let (st, g) = s
        .post("/api/v1/guilds", Some(&owner), json!({"name": "g"}))
        .await;
    assert_eq!(st, 201);
    let gid = id(&g);
    let general = id(g["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap());
    let mut owner_ws = s.ws().await;
    owner_ws.identify(&owner).await;

    s.join(&owner, &gid, &member).await;
    let f = expect(&mut owner_ws, "guild_member_add", &[]).await;
    assert_eq!(f["d"]["user"]["id"], member_id.as_str());
    let mut ws = s.ws().await;
    ws.identify(&member).await;

    // Members are listed with their roles.
    let (st, list) = s
        .get(&format!("/api/v1/guilds/{gid}/members"), &member)
        .await;
    assert_eq!((st, list.as_array().unwrap().len()), (200, 2));
    let (st, _) = s
        .get(&format!("/api/v1/guilds/{gid}/members?limit=0"), &member)
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .get(&format!("/api/v1/guilds/{gid}/members"), &other)
        .await;
    assert_eq!(st, 404, "outsiders do not see the member list");

    // A role with manage messages lets the member delete others' messages.
    let (st, b) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&member),
            json!({"name": "mine"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("missing_permissions")));
    let (st, mods) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&owner),
            json!({"name": "mods", "permissions": MANAGE_MESSAGES.to_string(), "position": 5}),
        )
        .await;
    assert_eq!(st, 201, "{mods}");
    let mods_id = id(&mods);
    let (st, b) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&owner),
            json!({"name": "x", "permissions": "not bits"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_permissions")));
    let (_, m) = s
        .post(
            &format!("/api/v1/channels/{general}/messages"),
            Some(&owner),
            json!({"content": "owner's"}),
        )
        .await;
    let owners_msg = format!("/api/v1/channels/{general}/messages/{}", id(&m));
    let (st, _) = s
        .send(Method::DELETE, &owners_msg, &member, json!({}))
        .await;
    assert_eq!(st, 403);
    let role_path = format!("/api/v1/guilds/{gid}/members/{member_id}/roles/{mods_id}");
    let (st, _) = s.send(Method::PUT, &role_path, &member, json!({})).await;
    assert_eq!(st, 403, "members cannot give themselves roles");
    let (st, _) = s.send(Method::PUT, &role_path, &owner, json!({})).await;
    assert_eq!(st, 204);
    let f = expect(&mut ws, "guild_member_update", &[]).await;
    assert_eq!(f["d"]["roles"], json!([mods_id]));
    let (st, _) = s
        .send(Method::DELETE, &owners_msg, &member, json!({}))
        .await;
    assert_eq!(st, 204);

    // Role hierarchy: with manage roles and kick, the member still cannot grant what they
    // lack, place a role at or above their own, or kick the owner.
    let (st, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/guilds/{gid}/roles/{mods_id}"),
            &owner,
            json!({"permissions": (MANAGE_MESSAGES | MANAGE_ROLES | KICK_MEMBERS).to_string()}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, b) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&member),
            json!({"name": "admin", "permissions": ADMINISTRATOR.to_string(), "position": 1}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("missing_permissions")));
    let (st, b) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&member),
            json!({"name": "peer", "position": mods["position"]}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("role_hierarchy")));
    let (st, low) = s
        .post(
            &format!("/api/v1/guilds/{gid}/roles"),
            Some(&member),
            json!({"name": "helpers", "position": 1}),
        )
        .await;
    assert_eq!(st, 201, "{low}");
    let owner_id = g["owner_id"].as_str().unwrap();
    let (st, b) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}/members/{owner_id}"),
            &member,
            json!({}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("role_hierarchy")));
    let (st, b) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/guilds/{gid}/roles/{gid}"),
            &member,
            json!({"permissions": "0"}),
        )
        .await;
    assert_eq!(st, 200, "@everyone is below every role: {b}");
    // Without VIEW_CHANNEL for @everyone, the member's channels go away, and come back.
    expect_id(&mut ws, "channel_delete", &general).await;
    let (st, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/guilds/{gid}/roles/{gid}"),
            &owner,
            json!({"permissions": (VIEW_CHANNEL | (1 << 3) | (1 << 11)).to_string()}),
        )
        .await;
    assert_eq!(st, 200);
    expect_id(&mut ws, "channel_create", &general).await;

    // Overwrites: a channel hidden from @everyone disappears for the member, and its
    // messages stop reaching them; a member overwrite brings it back.
    let (st, secret) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "secret", "kind": "text"}),
        )
        .await;
    assert_eq!(st, 201);
    let secret = id(&secret);
    expect_id(&mut ws, "channel_create", &secret).await;
    let perm = |target: &str| format!("/api/v1/channels/{secret}/permissions/{target}");
    let (st, b) = s
        .send(
            Method::PUT,
            &perm(&gid),
            &owner,
            json!({"type": "role", "deny": VIEW_CHANNEL.to_string()}),
        )
        .await;
    assert_eq!(st, 204, "{b}");
    expect_id(&mut ws, "channel_delete", &secret).await;
    for (ch, text) in [(&secret, "hidden"), (&general, "visible")] {
        s.post(
            &format!("/api/v1/channels/{ch}/messages"),
            Some(&owner),
            json!({"content": text}),
        )
        .await;
    }
    let f = expect(&mut ws, "message_create", &[]).await;
    assert_eq!(
        f["d"]["content"], "visible",
        "the hidden message never came"
    );
    let (st, _) = s
        .get(&format!("/api/v1/channels/{secret}/messages"), &member)
        .await;
    assert_eq!(st, 404);
    let (st, b) = s
        .send(
            Method::PUT,
            &perm(&member_id),
            &owner,
            json!({"type": "member", "allow": VIEW_CHANNEL.to_string()}),
        )
        .await;
    assert_eq!(st, 204, "{b}");
    expect_id(&mut ws, "channel_create", &secret).await;
    s.post(
        &format!("/api/v1/channels/{secret}/messages"),
        Some(&owner),
        json!({"content": "now you see it"}),
    )
    .await;
    assert_eq!(
        expect(&mut ws, "message_create", &[]).await["d"]["content"],
        "now you see it"
    );
    // Both overwrites are listed for those who may edit them; outsiders see no channel.
    let (st, list) = s
        .get(&format!("/api/v1/channels/{secret}/permissions"), &owner)
        .await;
    assert_eq!(st, 200, "{list}");
    let mut seen: Vec<(String, String, String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let f = |k: &str| o[k].as_str().unwrap().to_owned();
            (f("id"), f("type"), f("allow"), f("deny"))
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (
            gid.clone(),
            "role".into(),
            "0".into(),
            VIEW_CHANNEL.to_string(),
        ),
        (
            member_id.clone(),
            "member".into(),
            VIEW_CHANNEL.to_string(),
            "0".into(),
        ),
    ];
    want.sort();
    assert_eq!(seen, want);
    let (st, _) = s
        .get(&format!("/api/v1/channels/{secret}/permissions"), &other)
        .await;
    assert_eq!(st, 404);
    let (st, b) = s
        .send(
            Method::PUT,
            &perm(&member_id),
            &owner,
            json!({"type": "planet", "allow": "1"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_overwrite")));
    let (st, _) = s
        .send(
            Method::PUT,
            &perm("12345"),
            &owner,
            json!({"type": "role", "allow": "1"}),
        )
        .await;
    assert_eq!(st, 404);

    // Channel edits and deletes.
    let (st, c) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/channels/{secret}"),
            &owner,
            json!({"name": "renamed", "position": 5}),
        )
        .await;
    assert_eq!((st, c["name"].as_str()), (200, Some("renamed")));
    assert_eq!(
        expect(&mut ws, "channel_update", &[]).await["d"]["name"],
        "renamed"
    );
    let (st, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/channels/{secret}"),
            &owner,
            json!({"user_limit": 5}),
        )
        .await;
    assert_eq!(st, 400, "text channels have no cap");
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{secret}"),
            &member,
            json!({}),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{secret}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    expect_id(&mut ws, "channel_delete", &secret).await;

    // Kick: the member's guild goes away; the others hear of it.
    let (st, b) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}/members/@me"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("owner_cannot_leave")));
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}/members/{member_id}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        expect(&mut ws, "guild_delete", &[]).await["d"]["id"],
        gid.as_str()
    );
    let f = expect(&mut owner_ws, "guild_member_remove", &[]).await;
    assert_eq!(f["d"]["user_id"], member_id.as_str());
    let (st, _) = s.get(&format!("/api/v1/guilds/{gid}"), &member).await;
    assert_eq!(st, 404);
    s.post(
        &format!("/api/v1/channels/{general}/messages"),
        Some(&owner),
        json!({"content": "after the kick"}),
    )
    .await;
    let late = ws.next_within(Duration::from_millis(300)).await;
    assert!(
        late.as_ref()
            .is_none_or(|f| f.as_ref().is_ok_and(|f| f["t"] != "message_create")),
        "a kicked member gets no messages: {late:?}"
    );

    // Ban: out, and kept out until unbanned.
    s.join(&owner, &gid, &member).await;
    let (st, _) = s
        .send(
            Method::PUT,
            &format!("/api/v1/guilds/{gid}/bans/{member_id}"),
            &owner,
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(st, 204);
    let (_, inv) = s
        .post(
            &format!("/api/v1/guilds/{gid}/invites"),
            Some(&owner),
            json!({}),
        )
        .await;
    let code = inv["code"].as_str().unwrap().to_owned();
    let (st, b) = s
        .post(&format!("/api/v1/invites/{code}"), Some(&member), json!({}))
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("banned")));
    let (st, bans) = s.get(&format!("/api/v1/guilds/{gid}/bans"), &owner).await;
    assert_eq!((st, &bans[0]["reason"]), (200, &json!("spam")));
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}/bans/{member_id}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .post(&format!("/api/v1/invites/{code}"), Some(&member), json!({}))
        .await;
    assert_eq!(st, 200);
    // Leave.
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/guilds/{gid}/members/@me"),
            &member,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/api/v1/guilds/{gid}"), &member).await;
    assert_eq!(st, 404);
    s.stop().await;
}

async fn invites(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("owner").await;
    let (a, _) = s.register("alice").await;
    let (b, _) = s.register("bob").await;
    let (c, _) = s.register("carol").await;
    let (_, g) = s
        .post("/api/v1/guilds", Some(&owner), json!({"name": "g"}))
        .await;
    let gid = id(&g);
    let invites = format!("/api/v1/guilds/{gid}/invites");

    for bad in [
        json!({"max_age": 60}),
        json!({"max_uses": 101}),
        json!({"max_uses": -1}),
    ] {
        let (st, _) = s.post(&invites, Some(&owner), bad.clone()).await;
        assert_eq!(st, 400, "{bad}");
    }
    // One use only.
    let (st, once) = s
        .post(&invites, Some(&owner), json!({"max_age": 0, "max_uses": 1}))
        .await;
    assert_eq!((st, &once["expires_at"]), (201, &Value::Null));
    let once = once["code"].as_str().unwrap().to_owned();
    let (st, _) = s
        .post(&format!("/api/v1/invites/{once}"), Some(&a), json!({}))
        .await;
    assert_eq!(st, 200);
    let (st, e) = s
        .post(&format!("/api/v1/invites/{once}"), Some(&b), json!({}))
        .await;
    assert_eq!((st, e["code"].as_str()), (410, Some("invite_used_up")));

    // Thirty minutes: valid now, refused once its time has passed.
    let (st, soon) = s
        .post(&invites, Some(&owner), json!({"max_age": 1800}))
        .await;
    assert_eq!(st, 201);
    let expires = soon["expires_at"].as_i64().unwrap();
    assert_eq!(expires - soon["created_at"].as_i64().unwrap(), 1_800_000);
    let soon = soon["code"].as_str().unwrap().to_owned();
    let (st, preview) = s.get(&format!("/api/v1/invites/{soon}"), &b).await;
    assert_eq!((st, preview["guild"]["name"].as_str()), (200, Some("g")));
    s.exec(&format!(
        "UPDATE invites SET expires_at = {} WHERE code = '{soon}'",
        expires - 1_800_001
    ))
    .await;
    let (st, e) = s
        .post(&format!("/api/v1/invites/{soon}"), Some(&b), json!({}))
        .await;
    assert_eq!((st, e["code"].as_str()), (410, Some("invite_expired")));

    // Listing needs manage guild; revoking works for the owner.
    let (st, list) = s.get(&invites, &owner).await;
    assert_eq!(st, 200);
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["uses"], 1);
    let (st, _) = s.get(&invites, &a).await;
    assert_eq!(st, 403);
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/invites/{soon}"),
            &a,
            json!({}),
        )
        .await;
    assert_eq!(st, 403, "only the creator or a manager revokes");
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/invites/{soon}"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let (st, e) = s
        .post(&format!("/api/v1/invites/{soon}"), Some(&b), json!({}))
        .await;
    assert_eq!((st, e["code"].as_str()), (404, Some("unknown_invite")));

    // Guessing is rate-limited per user.
    let mut limited = None;
    for i in 0..15 {
        let (st, e) = s
            .post(&format!("/api/v1/invites/guess{i}"), Some(&c), json!({}))
            .await;
        if st == 429 {
            limited = Some(e);
            break;
        }
        assert_eq!(st, 404);
    }
    let e = limited.expect("guessing is limited");
    assert!(e["retry_after"].as_f64().unwrap() > 0.0);
    s.stop().await;
}

#[tokio::test]
async fn members_roles_and_overwrites_on_both_stores() {
    for db in BOTH {
        members_roles_overwrites(db).await;
    }
}

#[tokio::test]
async fn invites_expire_and_run_out_on_both_stores() {
    for db in BOTH {
        invites(db).await;
    }
}
