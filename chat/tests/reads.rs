//! Read states, badges, notification settings, notifications and the inbox, over real
//! HTTP and WebSocket on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use common::{BOTH, Db, Server, Ws};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

struct G {
    owner: String,
    member: String,
    member_id: String,
    third: String,
    gid: String,
    general: String,
}

async fn setup(s: &Server) -> G {
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (third, _) = s.register("third").await;
    let (_, gid, general) = s.guild(&owner, &[&member, &third]).await;
    G {
        owner,
        member,
        member_id,
        third,
        gid,
        general,
    }
}

async fn post(s: &Server, token: &str, channel: &str, body: Value) -> Value {
    let (st, m) = s
        .post(
            &format!("/api/v1/channels/{channel}/messages"),
            Some(token),
            body,
        )
        .await;
    assert_eq!(st, 201, "{m}");
    m
}

/// (unread_count, mention_count, muted) of a channel, and the guild's (unread, mentions).
async fn badge(s: &Server, token: &str, g: &G) -> ((i64, i64, bool), (bool, i64)) {
    let (st, r) = s.get("/api/v1/users/@me/read-states", token).await;
    assert_eq!(st, 200, "{r}");
    let c = r["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_id"] == g.general.as_str())
        .unwrap();
    let gr = r["guilds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["guild_id"] == g.gid.as_str())
        .unwrap();
    (
        (
            c["unread_count"].as_i64().unwrap(),
            c["mention_count"].as_i64().unwrap(),
            c["muted"].as_bool().unwrap(),
        ),
        (
            gr["unread"].as_bool().unwrap(),
            gr["mention_count"].as_i64().unwrap(),
        ),
    )
}

/// The next notification, skipping other events; `None` within 300 ms.
async fn notification(ws: &mut Ws) -> Option<Value> {
    loop {
        let f = ws.next_within(Duration::from_millis(300)).await?.unwrap();
        if f["t"] == "notification_create" {
            return Some(f["d"].clone());
        }
    }
}

async fn settings(s: &Server, token: &str, scope: &str, body: Value) -> (u16, Value) {
    s.send(
        Method::PUT,
        &format!("/api/v1/users/@me/notification-settings/{scope}"),
        token,
        body,
    )
    .await
}

async fn scenario(db: Db) {
    let s = Server::start(db).await;
    let g = setup(&s).await;
    let mut ws = s.ws().await;
    ws.identify(&g.member).await;

    // Unread and mention counts.
    for i in 0..3 {
        post(
            &s,
            &g.owner,
            &g.general,
            json!({"content": format!("plain {i}")}),
        )
        .await;
    }
    assert_eq!(badge(&s, &g.member, &g).await, ((3, 0, false), (true, 0)));
    assert!(
        notification(&mut ws).await.is_none(),
        "plain messages do not notify by default"
    );
    let mention = post(&s, &g.owner, &g.general, json!({"content": "hey @member"})).await;
    assert_eq!(badge(&s, &g.member, &g).await, ((4, 1, false), (true, 1)));
    let n = notification(&mut ws).await.unwrap();
    assert_eq!(
        (n["reason"].as_str(), &n["message"]["id"]),
        (Some("mention"), &mention["id"])
    );
    let (_, ready) = {
        let mut w = s.ws().await;
        let r = w.identify(&g.member).await;
        ((), r)
    };
    let rs = ready["d"]["read_states"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_id"] == g.general.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (rs["unread_count"].as_i64(), rs["mention_count"].as_i64()),
        (Some(4), Some(1))
    );

    // The inbox holds the mention; the owner gets a reply.
    let (st, inbox) = s.get("/api/v1/users/@me/inbox", &g.member).await;
    assert_eq!(st, 200);
    assert_eq!(inbox.as_array().unwrap().len(), 1);
    assert_eq!(inbox[0]["reason"], "mention");
    assert_eq!(inbox[0]["message"]["id"], mention["id"]);
    assert_eq!(inbox[0]["message"]["mentions"], json!([g.member_id]));
    let reply = post(
        &s,
        &g.member,
        &g.general,
        json!({"content": "yes?", "reply_to": mention["id"]}),
    )
    .await;
    let (_, inbox) = s.get("/api/v1/users/@me/inbox", &g.owner).await;
    assert_eq!(
        (inbox[0]["reason"].as_str(), &inbox[0]["message"]["id"]),
        (Some("reply"), &reply["id"])
    );

    // Per-message read counts in a small channel: the other two have not read it.
    let x = post(&s, &g.owner, &g.general, json!({"content": "read me"})).await;
    let (_, page) = s
        .get(
            &format!("/api/v1/channels/{}/messages?limit=1", g.general),
            &g.owner,
        )
        .await;
    assert_eq!(page[0]["unread_by"], 2);

    // Acking clears the badge and tells the user's other sessions.
    let (st, _) = s
        .post(
            &format!("/api/v1/channels/{}/messages/{}/ack", g.general, id(&x)),
            Some(&g.member),
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let ack = ws.dispatch("message_ack").await;
    assert_eq!(ack["d"]["last_read_id"], x["id"]);
    assert_eq!(badge(&s, &g.member, &g).await, ((0, 0, false), (false, 0)));
    let (_, page) = s
        .get(
            &format!("/api/v1/channels/{}/messages?limit=1", g.general),
            &g.owner,
        )
        .await;
    assert_eq!(
        page[0]["unread_by"], 1,
        "only the third member has not read it"
    );

    // Mute for an hour, keeping mentions: no unread badge, mentions still count and
    // notify; plain messages do not.
    let (st, m) = settings(
        &s,
        &g.member,
        &format!("channels/{}", g.general),
        json!({"mute": "1h", "level": "all"}),
    )
    .await;
    assert_eq!(st, 200, "{m}");
    let until = m["muted_until"].as_i64().unwrap();
    assert!(until > 0);
    post(
        &s,
        &g.owner,
        &g.general,
        json!({"content": "plain while muted"}),
    )
    .await;
    assert!(notification(&mut ws).await.is_none());
    post(
        &s,
        &g.owner,
        &g.general,
        json!({"content": "@member urgent"}),
    )
    .await;
    assert_eq!(notification(&mut ws).await.unwrap()["reason"], "mention");
    assert_eq!(badge(&s, &g.member, &g).await, ((0, 1, true), (false, 1)));
    // Not keeping mentions hides them too.
    settings(
        &s,
        &g.member,
        &format!("channels/{}", g.general),
        json!({"keep_mentions": false}),
    )
    .await;
    assert_eq!(badge(&s, &g.member, &g).await, ((0, 0, true), (false, 0)));
    post(
        &s,
        &g.owner,
        &g.general,
        json!({"content": "@member again"}),
    )
    .await;
    assert!(notification(&mut ws).await.is_none());
    // Unmuted with level all: every message notifies.
    settings(
        &s,
        &g.member,
        &format!("channels/{}", g.general),
        json!({"mute": "off"}),
    )
    .await;
    post(&s, &g.owner, &g.general, json!({"content": "for all"})).await;
    assert_eq!(notification(&mut ws).await.unwrap()["reason"], "message");
    assert_eq!(badge(&s, &g.member, &g).await.0, (4, 2, false));

    // A guild set to nothing: mentions neither notify nor reach the inbox.
    let mut third_ws = s.ws().await;
    third_ws.identify(&g.third).await;
    settings(
        &s,
        &g.third,
        &format!("guilds/{}", g.gid),
        json!({"level": "nothing"}),
    )
    .await;
    let quiet = post(&s, &g.owner, &g.general, json!({"content": "@third hello"})).await;
    assert!(notification(&mut third_ws).await.is_none());
    // The member, at level all, hears of every message.
    assert_eq!(notification(&mut ws).await.unwrap()["reason"], "message");
    let (_, inbox) = s.get("/api/v1/users/@me/inbox", &g.third).await;
    assert!(
        inbox
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["message"]["id"] != quiet["id"])
    );

    // Role mentions and @everyone reach members through their roles and the permission.
    let (_, role) = s
        .post(
            &format!("/api/v1/guilds/{}/roles", g.gid),
            Some(&g.owner),
            json!({"name": "crew"}),
        )
        .await;
    s.send(
        Method::PUT,
        &format!(
            "/api/v1/guilds/{}/members/{}/roles/{}",
            g.gid,
            g.member_id,
            id(&role)
        ),
        &g.owner,
        json!({}),
    )
    .await;
    post(
        &s,
        &g.owner,
        &g.general,
        json!({"content": "@crew stand up"}),
    )
    .await;
    assert_eq!(notification(&mut ws).await.unwrap()["reason"], "mention");

    // Inbox marks.
    let (_, unread) = s
        .get("/api/v1/users/@me/inbox?unread=true", &g.member)
        .await;
    let n = unread.as_array().unwrap().len();
    assert!(n >= 2, "{unread}");
    let first = unread[0]["message"]["id"].as_str().unwrap();
    let (st, _) = s
        .post(
            &format!("/api/v1/users/@me/inbox/{first}/read"),
            Some(&g.member),
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let (_, after) = s
        .get("/api/v1/users/@me/inbox?unread=true", &g.member)
        .await;
    assert_eq!(after.as_array().unwrap().len(), n - 1);
    let (st, b) = s
        .post(
            "/api/v1/users/@me/inbox/read-all",
            Some(&g.member),
            json!({}),
        )
        .await;
    assert_eq!((st, b["marked"].as_u64()), (200, Some(n as u64 - 1)));
    let (st, _) = s
        .post(
            &format!("/api/v1/users/@me/inbox/{first}/read"),
            Some(&g.member),
            json!({}),
        )
        .await;
    assert_eq!(st, 404);

    // Muted until turned back on: said as a flag, not as an unrepresentable time.
    let (_, f) = settings(
        &s,
        &g.member,
        &format!("channels/{}", g.general),
        json!({"mute": "forever"}),
    )
    .await;
    assert_eq!(
        (&f["muted_forever"], &f["muted_until"]),
        (&json!(true), &Value::Null)
    );
    assert!(badge(&s, &g.member, &g).await.0.2, "muted");
    let (_, f) = settings(
        &s,
        &g.member,
        &format!("channels/{}", g.general),
        json!({"mute": "off"}),
    )
    .await;
    assert_eq!(f["muted_forever"], false);

    // Bad settings.
    for (scope, body, code) in [
        (
            format!("channels/{}", g.general),
            json!({"mute": "2h"}),
            400,
        ),
        (
            format!("channels/{}", g.general),
            json!({"level": "loud"}),
            400,
        ),
        ("planets/1".to_owned(), json!({}), 404),
        ("channels/999".to_owned(), json!({}), 404),
    ] {
        let (st, b) = settings(&s, &g.member, &scope, body).await;
        assert_eq!(st, code, "{scope}: {b}");
    }
    let (st, list) = s
        .get("/api/v1/users/@me/notification-settings", &g.member)
        .await;
    assert_eq!((st, list.as_array().unwrap().len()), (200, 1));
    s.stop().await;
}

#[tokio::test]
async fn read_states_notifications_inbox_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
