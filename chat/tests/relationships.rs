//! Friends over the real API and gateway, on both stores: a request, accepting it, a DM
//! between friends who share no guild, presence between friends, declining, removing, and
//! a block that stops DMs both ways and is never shown to the blocked user.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server, Ws};
use reqwest::Method;
use serde_json::{Value, json};

async fn kinds(s: &Server, token: &str) -> Vec<(String, String)> {
    let (st, list) = s.get("/api/v1/users/@me/relationships", token).await;
    assert_eq!(st, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"]["username"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn event(ws: &mut Ws, t: &str, user: &str) -> Value {
    loop {
        let f = ws.dispatch(t).await;
        let about = f["d"]["user"]["id"].as_str().or(f["d"]["user_id"].as_str());
        if about == Some(user) {
            return f["d"].clone();
        }
    }
}

async fn scenario(db: Db) {
    let s = Server::start(db).await;
    let (ann, ann_id) = s.register("ann").await;
    let (bo, bo_id) = s.register("bo").await;
    let (cy, cy_id) = s.register("cy").await;
    let rel = "/api/v1/users/@me/relationships";

    // Ann and Bo share no guild: no DM yet.
    let (st, b) = s
        .post(
            "/api/v1/users/@me/channels",
            Some(&ann),
            json!({"recipient_id": bo_id}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("not_reachable")));

    let mut bo_ws = s.ws().await;
    bo_ws.identify(&bo).await;
    // Ann asks; Bo hears it live as incoming.
    let (st, r) = s.post(rel, Some(&ann), json!({"username": "BO"})).await;
    assert_eq!((st, r["kind"].as_str()), (201, Some("outgoing")), "{r}");
    assert_eq!(
        event(&mut bo_ws, "relationship_update", &ann_id).await["kind"],
        "incoming"
    );
    assert_eq!(
        kinds(&s, &bo).await,
        vec![("ann".to_owned(), "incoming".to_owned())]
    );
    // Bad requests get codes.
    let (st, r) = s
        .post(rel, Some(&ann), json!({"username": "nobody_here"}))
        .await;
    assert_eq!((st, r["code"].as_str()), (404, Some("unknown_user")));
    let (st, r) = s.post(rel, Some(&ann), json!({"username": "ann"})).await;
    assert_eq!(
        (st, r["code"].as_str()),
        (400, Some("invalid_relationship"))
    );
    let (st, r) = s
        .call(
            Method::PUT,
            &format!("{rel}/{bo_id}"),
            &format!("Bearer {ann}"),
            json!({"kind": "friend"}),
        )
        .await;
    assert_eq!(
        (st, r["code"].as_str()),
        (400, Some("no_friend_request")),
        "only Bo can accept"
    );

    // Bo accepts: friends both ways; Bo sees Ann's presence.
    let mut ann_ws = s.ws().await;
    ann_ws.identify(&ann).await;
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("{rel}/{ann_id}"),
            &format!("Bearer {bo}"),
            json!({"kind": "friend"}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        event(&mut ann_ws, "relationship_update", &bo_id).await["kind"],
        "friend"
    );
    assert_eq!(
        event(&mut bo_ws, "presence_update", &ann_id).await["status"],
        "online"
    );
    assert_eq!(
        kinds(&s, &ann).await,
        vec![("bo".to_owned(), "friend".to_owned())]
    );
    let mut again = s.ws().await;
    let ready = again.identify(&bo).await;
    assert_eq!(ready["d"]["relationships"][0]["kind"], "friend");
    assert!(
        ready["d"]["presences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["user_id"] == ann_id.as_str()),
        "ready has friends' presence: {}",
        ready["d"]["presences"]
    );

    // Friends can DM without a shared guild.
    let (st, dm) = s
        .post(
            "/api/v1/users/@me/channels",
            Some(&ann),
            json!({"recipient_id": bo_id}),
        )
        .await;
    assert_eq!(st, 201, "{dm}");
    let dm = dm["id"].as_str().unwrap().to_owned();
    let msgs = format!("/api/v1/channels/{dm}/messages");
    let (st, _) = s
        .post(&msgs, Some(&ann), json!({"content": "친구 안녕"}))
        .await;
    assert_eq!(st, 201);

    // Bo blocks Ann: Ann's side is gone (she is not told why), and the DM stops both ways.
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("{rel}/{ann_id}"),
            &format!("Bearer {bo}"),
            json!({"kind": "blocked"}),
        )
        .await;
    assert_eq!(st, 204);
    assert!(event(&mut ann_ws, "relationship_remove", &bo_id).await["user_id"].is_string());
    assert_eq!(kinds(&s, &ann).await, vec![]);
    assert_eq!(
        kinds(&s, &bo).await,
        vec![("ann".to_owned(), "blocked".to_owned())]
    );
    for (who, what) in [(&ann, "from the blocked"), (&bo, "from the blocker")] {
        let (st, b) = s.post(&msgs, Some(who), json!({"content": "hello?"})).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (403, Some("not_reachable")),
            "{what}"
        );
    }
    let (st, r) = s.post(rel, Some(&ann), json!({"username": "bo"})).await;
    assert_eq!((st, r["code"].as_str()), (403, Some("cannot_add_friend")));
    // Unblocking lets messages through again only if they can reach each other.
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("{rel}/{ann_id}"),
            &format!("Bearer {bo}"),
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(kinds(&s, &bo).await, vec![]);

    // Declining a request clears it on both sides.
    let (st, _) = s.post(rel, Some(&cy), json!({"username": "ann"})).await;
    assert_eq!(st, 201);
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("{rel}/{cy_id}"),
            &format!("Bearer {ann}"),
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(kinds(&s, &cy).await, vec![]);
    let (st, r) = s
        .call(
            Method::DELETE,
            &format!("{rel}/{cy_id}"),
            &format!("Bearer {ann}"),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, r["code"].as_str()),
        (404, Some("unknown_relationship"))
    );
    s.stop().await;
}

#[tokio::test]
async fn friends_requests_and_blocks_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
