//! What a security review found, each as an attacker with a valid low-privilege account
//! would try it, over real HTTP and WebSocket, on both stores: ended sessions whose access
//! tokens kept working, bots minting bots, outgoing webhooks aimed at internal addresses,
//! and a `null` that could not reset a notification level.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use common::{BOTH, Db, Ended, Server};
use reqwest::Method;
use serde_json::{Value, json};

async fn login(s: &Server, user: &str, password: &str) -> (String, String) {
    let (st, b) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": user, "password": password}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    (
        b["access_token"].as_str().unwrap().to_owned(),
        b["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(s: &Server, token: &str) -> (u16, Value) {
    s.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": token}),
    )
    .await
}

/// The status and error code of `GET /users/@me` with this access token.
async fn me(s: &Server, access: &str) -> (u16, Option<String>) {
    let (st, b) = s.get("/api/v1/users/@me", access).await;
    (st, b["code"].as_str().map(str::to_owned))
}

async fn ended_sessions(db: Db) {
    let s = Server::start(db).await;
    let (first, _) = s.register("ria").await;
    let (a1, r1) = login(&s, "ria", "password 123").await;
    let (a2, r2) = login(&s, "ria", "password 123").await;
    let mut ws1 = s.ws().await;
    ws1.identify(&a1).await;
    let mut ws2 = s.ws().await;
    ws2.identify(&a2).await;

    // Logout ends the session's access token at once, and closes its WebSocket.
    let (st, _) = s
        .post("/api/v1/auth/logout", None, json!({"refresh_token": r1}))
        .await;
    assert_eq!(st, 204);
    assert_eq!(me(&s, &a1).await, (401, Some("session_ended".into())));
    assert_eq!(ws1.closed().await, Ended::Closed(4004));
    let mut again = s.ws().await;
    again
        .send(json!({"op": "identify", "d": {"token": a1}}))
        .await;
    assert_eq!(again.closed().await, Ended::Closed(4001));
    // Other sessions of the account go on.
    assert_eq!(me(&s, &a2).await.0, 200);
    assert_eq!(me(&s, &first).await.0, 200);

    // A replayed refresh token ends its whole session: the access tokens issued before
    // and after the rotation both stop working, and so does its WebSocket.
    let (st, rotated) = refresh(&s, &r2).await;
    assert_eq!(st, 200, "{rotated}");
    let a2b = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&s, &a2b).await.0, 200);
    let (st, _) = refresh(&s, &r2).await;
    assert_eq!(st, 401, "a spent refresh token is refused");
    assert_eq!(me(&s, &a2b).await, (401, Some("session_ended".into())));
    assert_eq!(me(&s, &a2).await, (401, Some("session_ended".into())));
    assert_eq!(ws2.closed().await, Ended::Closed(4004));
    assert_eq!(me(&s, &first).await.0, 200);

    // A password change ends every session, the one that made the change included.
    let (a3, _) = login(&s, "ria", "password 123").await;
    let (st, _) = s
        .post(
            "/api/v1/users/@me/password",
            Some(&first),
            json!({"current_password": "password 123", "new_password": "new password 9"}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(me(&s, &first).await, (401, Some("session_ended".into())));
    assert_eq!(me(&s, &a3).await, (401, Some("session_ended".into())));
    let (a4, _) = login(&s, "ria", "new password 9").await;
    assert_eq!(me(&s, &a4).await.0, 200, "a new sign-in works");
    s.stop().await;
}

#[tokio::test]
async fn ended_sessions_stop_authorising_at_once_on_both_stores() {
    for db in BOTH {
        ended_sessions(db).await;
    }
}

async fn bots_cannot_mint_bots(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("maker").await;
    let (st, app) = s
        .post("/api/v1/applications", Some(&owner), json!({"name": "one"}))
        .await;
    assert_eq!(st, 201, "{app}");
    let bot = format!("Bot {}", app["token"].as_str().unwrap());
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/applications",
            &bot,
            json!({"name": "child"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("bots_not_allowed")));
    let (_, mine) = s.get("/api/v1/applications", &owner).await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "nothing was created");
    // A user account owns at most 25.
    for i in 1..25 {
        let (st, _) = s
            .post(
                "/api/v1/applications",
                Some(&owner),
                json!({"name": format!("b{i}")}),
            )
            .await;
        assert_eq!(st, 201);
    }
    let (st, b) = s
        .post("/api/v1/applications", Some(&owner), json!({"name": "b26"}))
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("too_many_applications"))
    );
    s.stop().await;
}

#[tokio::test]
async fn only_user_accounts_create_applications_on_both_stores() {
    for db in BOTH {
        bots_cannot_mint_bots(db).await;
    }
}

#[tokio::test]
async fn interactions_urls_never_name_internal_addresses() {
    let s = Server::start(Db::Sqlite).await;
    let (owner, _) = s.register("maker").await;
    let (st, app) = s
        .post("/api/v1/applications", Some(&owner), json!({"name": "w"}))
        .await;
    assert_eq!(st, 201);
    let path = format!("/api/v1/applications/{}", app["id"].as_str().unwrap());
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
    ] {
        let (st, b) = s
            .send(
                Method::PATCH,
                &path,
                &owner,
                json!({"interactions_url": url}),
            )
            .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("forbidden_url")),
            "{url}"
        );
        let (st, b) = s
            .post(
                "/api/v1/applications",
                Some(&owner),
                json!({"name": "x", "interactions_url": url}),
            )
            .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("forbidden_url")),
            "{url}"
        );
    }
    let (_, a) = s.get("/api/v1/applications", &owner).await;
    assert_eq!(a[0]["interactions_url"], Value::Null, "nothing was stored");
    s.stop().await;
}

/// An HTTP endpoint on 127.0.0.1 that reports each request it receives.
async fn listener() -> (u16, tokio::sync::mpsc::Receiver<Value>) {
    listener_on("127.0.0.1").await
}

async fn listener_on(ip: &str) -> (u16, tokio::sync::mpsc::Receiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let app = axum::Router::new().route(
        "/interactions",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_str(&body).unwrap()).await;
                axum::Json(json!({"content": "pong"}))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (port, rx)
}

/// A bot whose interactions_url is `url`; a member runs its `/ping`. What the endpoint
/// received within two seconds.
async fn run_ping(s: &Server, url: &str, rx: &mut tokio::sync::mpsc::Receiver<Value>) -> bool {
    let (owner, _) = s.register("owner").await;
    let (_, gid, general) = s.guild(&owner, &[]).await;
    let (st, app) = s
        .post(
            "/api/v1/applications",
            Some(&owner),
            json!({"name": "pinger"}),
        )
        .await;
    assert_eq!(st, 201, "{app}");
    let bot = format!("Bot {}", app["token"].as_str().unwrap());
    let app_id = app["id"].as_str().unwrap();
    let (st, b) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/applications/{app_id}"),
            &owner,
            json!({"interactions_url": url}),
        )
        .await;
    assert_eq!(st, 200, "a host name is checked when connecting: {b}");
    let (_, inv) = s
        .post(
            &format!("/api/v1/guilds/{gid}/invites"),
            Some(&owner),
            json!({}),
        )
        .await;
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/invites/{}", inv["code"].as_str().unwrap()),
            &bot,
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(
            Method::PUT,
            &format!("/api/v1/applications/{app_id}/commands"),
            &bot,
            json!([{"name": "ping"}]),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post(
            &format!("/api/v1/channels/{general}/messages"),
            Some(&owner),
            json!({"content": "/ping"}),
        )
        .await;
    assert_eq!(st, 202);
    tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .ok()
        .flatten()
        .is_some()
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_not_contacted() {
    // `localhost` passes the URL check; what it resolves to does not.
    let (port, mut rx) = listener().await;
    let url = format!("http://localhost:{port}/interactions");
    let s = Server::start(Db::Sqlite).await;
    assert!(
        !run_ping(&s, &url, &mut rx).await,
        "the delivery reached a loopback address"
    );
    s.stop().await;
}

async fn null_resets(db: Db) {
    let s = Server::start(db).await;
    let (owner, _) = s.register("owner").await;
    let (g, gid, general) = s.guild(&owner, &[]).await;
    let setting = |scope: String, body: Value| {
        let (s, owner) = (&s, owner.clone());
        async move {
            let (st, b) = s
                .send(
                    Method::PUT,
                    &format!("/api/v1/users/@me/notification-settings/{scope}"),
                    &owner,
                    body,
                )
                .await;
            assert_eq!(st, 200, "{b}");
            b
        }
    };
    for scope in [format!("channels/{general}"), format!("guilds/{gid}")] {
        let b = setting(scope.clone(), json!({"level": "all", "mute": "1h"})).await;
        assert_eq!(b["level"], "all");
        // A field left out keeps its value; `null` resets the level to inherit.
        let b = setting(scope.clone(), json!({"keep_mentions": false})).await;
        assert_eq!(b["level"], "all");
        let b = setting(scope.clone(), json!({"level": null})).await;
        assert_eq!(b["level"], Value::Null, "{scope}: null means inherit");
        assert!(b["muted_until"].is_i64(), "the mute is untouched");
        let (_, all) = s
            .get("/api/v1/users/@me/notification-settings", &owner)
            .await;
        let stored = all
            .as_array()
            .unwrap()
            .iter()
            .find(|x| scope.ends_with(x["id"].as_str().unwrap()))
            .unwrap();
        assert_eq!(stored["level"], Value::Null, "{scope}: stored as inherit");
    }

    // The same rule on a channel edit: `null` moves a channel to the top level and lifts
    // a voice channel's cap.
    let category = g["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "category")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = s
        .post(
            &format!("/api/v1/guilds/{gid}/channels"),
            Some(&owner),
            json!({"name": "Talk", "kind": "voice", "parent_id": category, "user_limit": 5}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, b) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/channels/{}", v["id"].as_str().unwrap()),
            &owner,
            json!({"parent_id": null, "user_limit": null}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (&b["parent_id"], &b["user_limit"]),
        (&Value::Null, &Value::Null)
    );

    // And on a scheduled event: `null` removes its end and its channel.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let (st, e) = s
        .post(
            &format!("/api/v1/guilds/{gid}/scheduled-events"),
            Some(&owner),
            json!({"title": "Standup", "start_at": start, "end_at": start + 60_000,
                   "channel_id": v["id"]}),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    let path = format!(
        "/api/v1/guilds/{gid}/scheduled-events/{}",
        e["id"].as_str().unwrap()
    );
    let (st, e) = s
        .send(Method::PATCH, &path, &owner, json!({"title": "Daily"}))
        .await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["end_at"], start + 60_000, "left out: kept");
    let (st, e) = s
        .send(
            Method::PATCH,
            &path,
            &owner,
            json!({"end_at": null, "channel_id": null}),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(
        (&e["end_at"], &e["channel_id"]),
        (&Value::Null, &Value::Null)
    );
    s.stop().await;
}

#[tokio::test]
async fn null_resets_a_field_on_both_stores() {
    for db in BOTH {
        null_resets(db).await;
    }
}

#[tokio::test]
async fn the_operator_can_allow_an_internal_range() {
    let (port, mut rx) = listener().await;
    let url = format!("http://localhost:{port}/interactions");
    let s = Server::start_with(Db::Sqlite, |c| {
        c.outgoing.allow =
            parlor_chat::service::outgoing::OutgoingPolicy::parse_allow("127.0.0.1").unwrap();
    })
    .await;
    assert!(
        run_ping(&s, &url, &mut rx).await,
        "PARLOR_OUTGOING_ALLOW=127.0.0.1 lets a local bot be reached"
    );
    // Only that address: the rest of 127.0.0.0/8 stays closed.
    let (st, b) = s
        .post(
            "/api/v1/applications",
            Some(&s.register("second").await.0),
            json!({"name": "x", "interactions_url": "http://127.0.0.2/"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("forbidden_url")));
    s.stop().await;
}

/// A bot endpoint that redirects to an address outgoing requests may not reach: the
/// redirect is not followed.
#[tokio::test]
async fn redirects_are_not_followed() {
    let (inner_port, mut inner) = listener_on("127.0.0.2").await;
    let target = format!("http://127.0.0.2:{inner_port}/interactions");
    let app = axum::Router::new().route(
        "/interactions",
        axum::routing::post(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/interactions",
        l.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let s = Server::start_with(Db::Sqlite, |c| {
        c.outgoing.allow =
            parlor_chat::service::outgoing::OutgoingPolicy::parse_allow("127.0.0.1").unwrap();
    })
    .await;
    assert!(
        !run_ping(&s, &url, &mut inner).await,
        "the redirect was followed"
    );
    s.stop().await;
}

/// An ended session stays ended when the server restarts: the set of ended sessions is
/// kept in the store and loaded at start.
#[tokio::test]
async fn an_ended_session_stays_ended_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("parlor_ended_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("chat.db").display());
    let start = |url: String| async move {
        let state = parlor_chat::ChatState::open(parlor_chat::Config::new(url, b"restart-secret"))
            .await
            .unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(parlor_chat::run(l, state, async move {
            let _ = stopped.await;
        }));
        (base, stop, served)
    };
    let http = reqwest::Client::new();
    let (base, stop, served) = start(url.clone()).await;
    let s: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"username": "ria", "password": "password 123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = s["access_token"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{base}/api/v1/auth/logout"))
        .json(&json!({"refresh_token": s["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();

    let (base, stop, _) = start(url).await;
    let r = http
        .get(format!("{base}/api/v1/users/@me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!((status, b["code"].as_str()), (401, Some("session_ended")));
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(dir);
}

/// Requests without a webhook's secret do not spend its rate-limit budget.
#[tokio::test]
async fn wrong_secrets_do_not_use_up_a_webhooks_budget() {
    let s = Server::start(Db::Sqlite).await;
    let (owner, _) = s.register("owner").await;
    let (_, _, general) = s.guild(&owner, &[]).await;
    let (st, hook) = s
        .post(
            &format!("/api/v1/channels/{general}/webhooks"),
            Some(&owner),
            json!({"name": "CI"}),
        )
        .await;
    assert_eq!(st, 201, "{hook}");
    let url = hook["url"].as_str().unwrap().to_owned();
    let wrong = url.rsplit_once('/').unwrap().0.to_owned() + "/wrong";
    // More than the burst of 30.
    for _ in 0..40 {
        let (st, _) = s.post(&wrong, None, json!({"content": "x"})).await;
        assert_eq!(st, 404);
    }
    let (st, b) = s.post(&url, None, json!({"content": "deploy done"})).await;
    assert_eq!(st, 201, "the webhook can still post: {b}");
    s.stop().await;
}
