//! DMs, group DMs and threads over real HTTP and WebSocket, on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn dms(db: Db) {
    let s = Server::start(db).await;
    let (a, a_id) = s.register("anna").await;
    let (b, b_id) = s.register("bora").await;
    let (c, c_id) = s.register("chen").await;
    let (d, d_id) = s.register("dara").await;
    let (_, g) = s
        .post("/api/v1/guilds", Some(&a), json!({"name": "g"}))
        .await;
    let gid = id(&g);
    s.join(&a, &gid, &b).await;
    s.join(&a, &gid, &d).await;
    let mut b_ws = s.ws().await;
    b_ws.identify(&b).await;

    // One DM per pair, only with people you share a guild with.
    let open = |token: &str, body: Value| {
        let (s, token) = (&s, token.to_owned());
        async move {
            s.post("/api/v1/users/@me/channels", Some(&token), body)
                .await
        }
    };
    let (st, dm) = open(&a, json!({"recipient_id": b_id})).await;
    assert_eq!((st, dm["kind"].as_str()), (201, Some("dm")), "{dm}");
    assert!(dm.get("guild_id").is_none());
    let dm_id = id(&dm);
    assert_eq!(
        b_ws.dispatch("channel_create").await["d"]["id"],
        dm_id.as_str()
    );
    let (st, again) = open(&b, json!({"recipient_id": a_id})).await;
    assert_eq!((st, id(&again)), (200, dm_id.clone()));
    let (st, e) = open(&a, json!({"recipient_id": c_id})).await;
    assert_eq!((st, e["code"].as_str()), (403, Some("not_reachable")));
    let (st, _) = open(&a, json!({"recipient_id": a_id})).await;
    assert_eq!(st, 400);
    let (st, _) = open(&a, json!({"recipient_id": "42"})).await;
    assert_eq!(st, 404);

    // Messages, notifications and unread state.
    let msgs = format!("/api/v1/channels/{dm_id}/messages");
    let (st, m) = s
        .post(&msgs, Some(&a), json!({"content": "안녕 bora"}))
        .await;
    assert_eq!(st, 201);
    assert_eq!(b_ws.dispatch("message_create").await["d"]["id"], m["id"]);
    let n = b_ws.dispatch("notification_create").await;
    assert_eq!(n["d"]["reason"], "message", "DMs notify every message");
    let (_, rs) = s.get("/api/v1/users/@me/read-states", &b).await;
    let r = rs["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel_id"] == dm_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (r["unread_count"].as_i64(), r["mention_count"].as_i64()),
        (Some(1), Some(1))
    );
    let (_, page) = s.get(&format!("{msgs}?limit=1"), &a).await;
    assert_eq!(page[0]["unread_by"], 1);
    s.post(&format!("{msgs}/{}/ack", id(&m)), Some(&b), json!({}))
        .await;
    let (_, page) = s.get(&format!("{msgs}?limit=1"), &a).await;
    assert_eq!(page[0]["unread_by"], 0);
    let (st, _) = s.get(&msgs, &c).await;
    assert_eq!(st, 404, "outsiders cannot read a DM");
    let (st, found) = s
        .get(
            &format!("/api/v1/channels/{dm_id}/messages/search?q=%EC%95%88%EB%85%95"),
            &b,
        )
        .await;
    assert_eq!((st, found["messages"].as_array().unwrap().len()), (200, 1));
    let (_, found) = s
        .get(
            &format!("/api/v1/guilds/{gid}/messages/search?q=%EC%95%88%EB%85%95"),
            &a,
        )
        .await;
    assert!(
        found["messages"].as_array().unwrap().is_empty(),
        "guild search leaves DMs out"
    );
    let (st, _) = s
        .send(Method::DELETE, &format!("{msgs}/{}", id(&m)), &b, json!({}))
        .await;
    assert_eq!(st, 403, "nobody moderates a DM");
    let (st, _) = s
        .send(
            Method::PUT,
            &format!("/api/v1/channels/{dm_id}/pins/{}", id(&m)),
            &b,
            json!({}),
        )
        .await;
    assert_eq!(st, 204, "anyone in a DM may pin");
    let ready = s.ws().await.identify(&b).await;
    assert!(
        ready["d"]["private_channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == dm_id.as_str())
    );

    // Group DMs: members, leaving, the owner removing someone, ownership passing on.
    let (st, grp) = open(&a, json!({"recipient_ids": [b_id, d_id], "name": "trio"})).await;
    assert_eq!((st, grp["kind"].as_str()), (201, Some("group_dm")), "{grp}");
    let grp_id = id(&grp);
    assert_eq!(grp["recipients"].as_array().unwrap().len(), 3);
    let rec = |u: &str| format!("/api/v1/channels/{grp_id}/recipients/{u}");
    let (st, _) = s.send(Method::DELETE, &rec(&a_id), &b, json!({})).await;
    assert_eq!(st, 403, "only the owner removes others");
    let (st, _) = s.send(Method::DELETE, &rec(&b_id), &a, json!({})).await;
    assert_eq!(st, 204);
    let (st, _) = s
        .post(
            &format!("/api/v1/channels/{grp_id}/messages"),
            Some(&b),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(st, 404, "a removed member is out");
    let (st, _) = s.send(Method::DELETE, &rec("@me"), &a, json!({})).await;
    assert_eq!(st, 204);
    let (_, left) = s.get("/api/v1/users/@me/channels", &d).await;
    let g2 = left
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == grp_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(g2["owner_id"], d_id.as_str());
    let (st, e) = open(&a, json!({"recipient_ids": []})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("invalid_recipients")));
    s.stop().await;
}

async fn threads(db: Db) {
    let s = Server::start(db).await;
    let (a, _) = s.register("anna").await;
    let (b, _) = s.register("bora").await;
    let (_, g) = s
        .post("/api/v1/guilds", Some(&a), json!({"name": "g"}))
        .await;
    let gid = id(&g);
    let general = id(g["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap());
    s.join(&a, &gid, &b).await;
    let mut a_ws = s.ws().await;
    a_ws.identify(&a).await;

    let (_, m) = s
        .post(
            &format!("/api/v1/channels/{general}/messages"),
            Some(&a),
            json!({"content": "topic"}),
        )
        .await;
    let start = format!("/api/v1/channels/{general}/messages/{}/threads", id(&m));
    let (st, t) = s
        .post(&start, Some(&b), json!({"name": "discussion"}))
        .await;
    assert_eq!((st, t["kind"].as_str()), (201, Some("thread")), "{t}");
    assert_eq!(t["starter_message_id"], m["id"]);
    let tid = id(&t);
    assert_eq!(
        a_ws.dispatch("channel_create").await["d"]["id"],
        tid.as_str()
    );
    let (st, e) = s.post(&start, Some(&a), json!({"name": "again"})).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("thread_exists")));

    let tmsgs = format!("/api/v1/channels/{tid}/messages");
    let (st, _) = s
        .post(&tmsgs, Some(&b), json!({"content": "in the thread"}))
        .await;
    assert_eq!(st, 201);
    let f = a_ws.dispatch("message_create").await;
    assert_eq!(f["d"]["channel_id"], tid.as_str());

    // Archive: the creator may; the list moves; a new message brings it back.
    let (st, x) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/channels/{tid}"),
            &b,
            json!({"archived": true}),
        )
        .await;
    assert_eq!((st, &x["archived"]), (200, &json!(true)), "{x}");
    let (_, active) = s
        .get(&format!("/api/v1/channels/{general}/threads"), &a)
        .await;
    assert!(active.as_array().unwrap().is_empty());
    let (_, archived) = s
        .get(
            &format!("/api/v1/channels/{general}/threads?archived=true"),
            &a,
        )
        .await;
    assert_eq!(archived[0]["id"], tid.as_str());
    let (st, _) = s.post(&tmsgs, Some(&a), json!({"content": "reopen"})).await;
    assert_eq!(st, 201);
    let (_, active) = s
        .get(&format!("/api/v1/channels/{general}/threads"), &a)
        .await;
    assert_eq!(active[0]["id"], tid.as_str());

    // A thread follows its channel's notification settings unless it has its own.
    let settings = |scope: String, body: Value| {
        let (s, a) = (&s, a.clone());
        async move {
            let (st, b) = s
                .send(
                    Method::PUT,
                    &format!("/api/v1/users/@me/notification-settings/{scope}"),
                    &a,
                    body,
                )
                .await;
            assert_eq!(st, 200, "{b}");
        }
    };
    settings(format!("channels/{general}"), json!({"level": "nothing"})).await;
    let (_, quiet) = s
        .post(&tmsgs, Some(&b), json!({"content": "@anna look"}))
        .await;
    let (_, inbox) = s.get("/api/v1/users/@me/inbox", &a).await;
    assert!(
        inbox
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["message"]["id"] != quiet["id"]),
        "the channel's `nothing` holds in its thread"
    );
    settings(format!("channels/{tid}"), json!({"level": "all"})).await;
    let (_, loud) = s.post(&tmsgs, Some(&b), json!({"content": "plain"})).await;
    loop {
        let n = a_ws.dispatch("notification_create").await;
        if n["d"]["message"]["id"] == loud["id"] {
            assert_eq!(n["d"]["reason"], "message");
            break;
        }
    }

    // Sending in threads is its own permission.
    s.send(
        Method::PATCH,
        &format!("/api/v1/guilds/{gid}/roles/{gid}"),
        &a,
        json!({"permissions": ((1u64 << 0) | (1 << 3)).to_string()}),
    )
    .await;
    let (st, e) = s.post(&tmsgs, Some(&b), json!({"content": "no"})).await;
    assert_eq!((st, e["code"].as_str()), (403, Some("missing_permissions")));
    let (st, _) = s
        .post(
            &format!("/api/v1/channels/{general}/messages"),
            Some(&b),
            json!({"content": "ok"}),
        )
        .await;
    assert_eq!(st, 201);

    // Hiding the channel hides its threads.
    s.send(
        Method::PUT,
        &format!("/api/v1/channels/{general}/permissions/{gid}"),
        &a,
        json!({"type": "role", "deny": "1"}),
    )
    .await;
    let (st, _) = s.get(&tmsgs, &b).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn dms_and_group_dms_on_both_stores() {
    for db in BOTH {
        dms(db).await;
    }
}

#[tokio::test]
async fn threads_on_both_stores() {
    for db in BOTH {
        threads(db).await;
    }
}
