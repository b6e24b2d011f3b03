//! Presence and voice state over the real gateway, on both stores: statuses across two
//! devices, idle, do-not-disturb, invisible and a custom status that survives sign-in;
//! a connection that stops heartbeating goes offline; voice channels show who is in
//! them to members outside the call, with caps and leaving.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use common::{BOTH, Db, Server, Ws};
use serde_json::{Value, json};

/// The next dispatch of `kind` about `user`.
async fn update_of(ws: &mut Ws, kind: &str, user: &str) -> Value {
    ws.update_of(kind, user).await
}

/// The next `error` frame (skipping dispatches).
async fn error(ws: &mut Ws) -> Value {
    loop {
        let f = ws.next().await.unwrap();
        if f["op"] == "error" {
            return f["d"].clone();
        }
    }
}

/// Nothing about `user` of `kind` arrives for a while.
async fn quiet(ws: &mut Ws, kind: &str, user: &str) {
    while let Some(f) = ws.next_within(Duration::from_millis(700)).await {
        let f = f.unwrap();
        assert!(
            !(f["t"] == kind && f["d"]["user_id"] == user),
            "unexpected {f}"
        );
    }
}

async fn presence(ws: &mut Ws, d: Value) {
    ws.send(json!({"op": "presence", "d": d})).await;
}

async fn statuses_across_devices(db: Db) {
    let s = Server::start_with(db, |c| {
        c.presence.grace = Duration::from_millis(300);
    })
    .await;
    let (owner, owner_id) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (_, gid, _) = s.guild(&owner, &[&member]).await;
    let m = member_id.as_str();

    let mut watch = s.ws().await;
    let ready = watch.identify(&owner).await;
    let shown = ready["d"]["presences"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "only the owner is online: {shown:?}");
    assert_eq!(shown[0]["user_id"], owner_id.as_str());
    assert_eq!(shown[0]["status"], "online");

    // First device: online. Idle: idle.
    let mut phone = s.ws().await;
    phone.identify(&member).await;
    assert_eq!(
        update_of(&mut watch, "presence_update", m).await["status"],
        "online"
    );
    presence(&mut phone, json!({"idle": true})).await;
    assert_eq!(
        update_of(&mut watch, "presence_update", m).await["status"],
        "idle"
    );
    // A second, active device makes the user online again: one presence, not two.
    let mut laptop = s.ws().await;
    laptop.identify(&member).await;
    assert_eq!(
        update_of(&mut watch, "presence_update", m).await["status"],
        "online"
    );

    // Do-not-disturb and a custom status win over activity, on every device.
    presence(
        &mut laptop,
        json!({"status": "dnd", "custom_status": "deep work"}),
    )
    .await;
    let u = update_of(&mut watch, "presence_update", m).await;
    assert_eq!(
        (u["status"].as_str(), u["custom_status"].as_str()),
        (Some("dnd"), Some("deep work"))
    );
    // The user's own sessions hear it too.
    while update_of(&mut phone, "presence_update", m).await["status"] != "dnd" {}

    // Invisible: others see offline, with no custom status.
    presence(&mut laptop, json!({"status": "invisible"})).await;
    let u = update_of(&mut watch, "presence_update", m).await;
    assert_eq!(u["status"], "offline");
    assert!(u.get("custom_status").is_none(), "{u}");
    let (st, list) = s
        .get(&format!("/api/v1/guilds/{gid}/presences"), &owner)
        .await;
    assert_eq!(st, 200);
    assert!(
        list.as_array().unwrap().iter().all(|p| p["user_id"] != m),
        "{list}"
    );

    // Bad input: an error with a code, and the connection stays.
    presence(&mut laptop, json!({"status": "asleep"})).await;
    assert_eq!(error(&mut laptop).await["code"], "invalid_frame");
    presence(&mut laptop, json!({"custom_status": "x".repeat(200)})).await;
    assert_eq!(error(&mut laptop).await["code"], "invalid_presence");
    presence(&mut laptop, json!({"status": "online"})).await;
    let u = update_of(&mut watch, "presence_update", m).await;
    assert_eq!(
        (u["status"].as_str(), u["custom_status"].as_str()),
        (Some("online"), Some("deep work"))
    );

    // The laptop signs off cleanly: the idle phone is left.
    laptop
        .ws
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    assert_eq!(
        update_of(&mut watch, "presence_update", m).await["status"],
        "idle"
    );
    // The phone's connection drops without a close: offline once the grace has passed.
    drop(phone);
    assert_eq!(
        update_of(&mut watch, "presence_update", m).await["status"],
        "offline"
    );

    // The choice outlives the sessions: the next sign-in shows it.
    let mut again = s.ws().await;
    let ready = again.identify(&member).await;
    let me = ready["d"]["presences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == m)
        .cloned()
        .unwrap();
    assert_eq!(me["custom_status"], "deep work");
    assert_eq!(
        ready["d"]["presence"],
        json!({"status": "online", "custom_status": "deep work"})
    );
    let (_, list) = s
        .get(&format!("/api/v1/guilds/{gid}/presences"), &owner)
        .await;
    assert!(
        list.as_array().unwrap().iter().any(|p| p["user_id"] == m),
        "{list}"
    );
    // An outsider cannot list a guild's presences.
    let (outsider, outsider_id) = s.register("outsider").await;
    let (st, _) = s
        .get(&format!("/api/v1/guilds/{gid}/presences"), &outsider)
        .await;
    assert_eq!(st, 404);
    // Someone online who joins the guild shows up online to its members.
    let mut newcomer = s.ws().await;
    newcomer.identify(&outsider).await;
    s.join(&owner, &gid, &outsider).await;
    let u = update_of(&mut watch, "presence_update", &outsider_id).await;
    assert_eq!(u["status"], "online");
    s.stop().await;
}

#[tokio::test]
async fn presence_follows_devices_and_choices_on_both_stores() {
    for db in BOTH {
        statuses_across_devices(db).await;
    }
}

#[tokio::test]
async fn a_connection_that_stops_heartbeating_goes_offline() {
    let s = Server::start_with(Db::Sqlite, |c| {
        c.heartbeat_interval = Duration::from_millis(400);
        c.presence.grace = Duration::from_millis(300);
    })
    .await;
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (_, gid, _) = s.guild(&owner, &[&member]).await;
    let online = || async {
        let (_, list) = s
            .get(&format!("/api/v1/guilds/{gid}/presences"), &owner)
            .await;
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["user_id"] == member_id.as_str())
    };
    // The socket stays open, but the client sends nothing after identify.
    let mut silent = s.ws().await;
    silent.identify(&member).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(online().await, "online while heartbeats are due");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while online().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still online 5 s after heartbeats stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

async fn voice_states(db: Db) {
    let s = Server::start_with(db, |c| {
        c.presence.grace = Duration::from_millis(300);
    })
    .await;
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (other, _) = s.register("other").await;
    let (_, gid, text) = s.guild(&owner, &[&member, &other]).await;
    let (st, voice) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "Pair", "kind": "voice", "user_limit": 1}),
        )
        .await;
    assert_eq!(st, 201, "{voice}");
    let vid = voice["id"].as_str().unwrap().to_owned();
    let m = member_id.as_str();

    let mut watch = s.ws().await;
    watch.identify(&owner).await;
    let mut caller = s.ws().await;
    caller.identify(&member).await;

    // A member outside the call sees who joined, and each change.
    caller
        .send(json!({"op": "voice_state", "d": {"channel_id": vid, "self_mute": true}}))
        .await;
    let v = update_of(&mut watch, "voice_state_update", m).await;
    assert_eq!(v["channel_id"], vid.as_str());
    assert_eq!(
        (v["self_mute"].as_bool(), v["self_video"].as_bool()),
        (Some(true), Some(false))
    );
    caller
        .send(json!({"op": "voice_state", "d": {"channel_id": vid, "self_video": true, "speaking": true}}))
        .await;
    let v = update_of(&mut watch, "voice_state_update", m).await;
    assert_eq!(
        (
            v["self_mute"].as_bool(),
            v["self_video"].as_bool(),
            v["speaking"].as_bool()
        ),
        (Some(false), Some(true), Some(true))
    );

    // Before joining, after a reload: in ready and over REST.
    let mut late = s.ws().await;
    let ready = late.identify(&other).await;
    let states = ready["d"]["voice_states"].as_array().unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0]["user_id"], m);
    assert!(
        states[0].get("session_id").is_none(),
        "session ids stay private"
    );
    let (st, list) = s
        .get(&format!("/api/v1/guilds/{gid}/voice-states"), &owner)
        .await;
    assert_eq!((st, list.as_array().unwrap().len()), (200, 1));

    // The channel holds one: the next is refused, over the gateway and over REST.
    late.send(json!({"op": "voice_state", "d": {"channel_id": vid}}))
        .await;
    let e = error(&mut late).await;
    assert_eq!(e["code"], "channel_full", "{e}");
    assert!(e["message"].as_str().unwrap().contains("1 of 1"), "{e}");
    let (st, b) = s
        .post(
            &format!("/api/v1/channels/{vid}/voice/join"),
            Some(&other),
            json!({}),
        )
        .await;
    // Without a room key the server cannot mint tokens, but a full channel says so first.
    assert_eq!((st, b["code"].as_str()), (403, Some("channel_full")), "{b}");
    // A text channel is not a voice channel; nor is a made-up one.
    late.send(json!({"op": "voice_state", "d": {"channel_id": text}}))
        .await;
    assert_eq!(error(&mut late).await["code"], "not_a_voice_channel");
    late.send(json!({"op": "voice_state", "d": {"channel_id": "12345"}}))
        .await;
    assert_eq!(error(&mut late).await["code"], "unknown_channel");
    late.send(json!({"op": "voice_state", "d": {"self_mute": true}}))
        .await;
    assert_eq!(error(&mut late).await["code"], "invalid_frame");

    // Leaving clears it for everyone.
    caller
        .send(json!({"op": "voice_state", "d": {"channel_id": null}}))
        .await;
    assert!(update_of(&mut watch, "voice_state_update", m).await["channel_id"].is_null());
    let (_, list) = s
        .get(&format!("/api/v1/guilds/{gid}/voice-states"), &owner)
        .await;
    assert!(list.as_array().unwrap().is_empty(), "{list}");

    // A caller whose connection drops leaves the channel once the grace has passed.
    caller
        .send(json!({"op": "voice_state", "d": {"channel_id": vid}}))
        .await;
    assert_eq!(
        update_of(&mut watch, "voice_state_update", m).await["channel_id"],
        vid.as_str()
    );
    drop(caller);
    assert!(update_of(&mut watch, "voice_state_update", m).await["channel_id"].is_null());
    quiet(&mut watch, "voice_state_update", m).await;
    s.stop().await;
}

#[tokio::test]
async fn voice_channels_show_their_occupants_to_every_member_on_both_stores() {
    for db in BOTH {
        voice_states(db).await;
    }
}
