//! Accounts over real HTTP, on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use reqwest::Method;
use serde_json::json;

async fn register(s: &Server, user: &str, password: &str) -> serde_json::Value {
    let (status, body) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": user, "password": password, "display_name": "Min-jun 민준"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn login(s: &Server, user: &str, password: &str) -> (u16, serde_json::Value) {
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"username": user, "password": password}),
    )
    .await
}

async fn refresh(s: &Server, token: &str) -> (u16, serde_json::Value) {
    s.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": token}),
    )
    .await
}

async fn accounts(db: Db) {
    let s = Server::start(db).await;
    let session = register(&s, "minjun", "correct horse battery").await;
    let mut access = session["access_token"].as_str().unwrap().to_owned();
    let refresh1 = session["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(session["user"]["display_name"], "Min-jun 민준");

    // Same name, any case: taken.
    let (st, b) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "MinJun", "password": "whatever123"}),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("username_taken")),
        "{b}"
    );
    // Bad input.
    let (st, b) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "../x", "password": "whatever123"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_username")));
    let (st, b) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "short", "password": "1234"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_password")));
    let r = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["code"], "invalid_json");

    // Login.
    let (st, b) = login(&s, "minjun", "nope nope").await;
    assert_eq!((st, b["code"].as_str()), (401, Some("invalid_credentials")));
    let (st, b) = login(&s, "ghost", "nope nope").await;
    assert_eq!((st, b["code"].as_str()), (401, Some("invalid_credentials")));
    let (st, signed_in) = login(&s, "MINJUN", "correct horse battery").await;
    assert_eq!(st, 200, "{signed_in}");

    // The access token works; garbage does not.
    let (st, me) = s.get("/api/v1/users/@me", &access).await;
    assert_eq!((st, me["username"].as_str()), (200, Some("minjun")));
    let (st, b) = s.get("/api/v1/users/@me", "garbage").await;
    assert_eq!((st, b["code"].as_str()), (401, Some("invalid_token")));

    // Refresh rotates; the spent token is refused, and replaying it ends the session.
    let (st, r2) = refresh(&s, &refresh1).await;
    assert_eq!(st, 200, "{r2}");
    let refresh2 = r2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let (st, b) = refresh(&s, &refresh1).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
    let (st, _) = refresh(&s, &refresh2).await;
    assert_eq!(st, 401, "the family was revoked after the replay");
    // The other login's session is untouched.
    let login_refresh = signed_in["refresh_token"].as_str().unwrap();
    let (st, r3) = refresh(&s, login_refresh).await;
    assert_eq!(st, 200);

    // Logout ends that session.
    let refresh3 = r3["refresh_token"].as_str().unwrap();
    let (st, _) = s
        .post(
            "/api/v1/auth/logout",
            None,
            json!({"refresh_token": refresh3}),
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = refresh(&s, refresh3).await;
    assert_eq!(st, 401);
    // The replay ended the first session, its access token included; sign in again.
    let (st, b) = s.get("/api/v1/users/@me", &access).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("session_ended")));
    let (st, again) = login(&s, "minjun", "correct horse battery").await;
    assert_eq!(st, 200);
    access = again["access_token"].as_str().unwrap().to_owned();

    // Profile.
    let (st, me) = s
        .send(
            Method::PATCH,
            "/api/v1/users/@me",
            &access,
            json!({"display_name": "  MJ  ", "avatar": "https://img.example/a.png"}),
        )
        .await;
    assert_eq!((st, me["display_name"].as_str()), (200, Some("MJ")), "{me}");
    let (st, b) = s
        .send(
            Method::PATCH,
            "/api/v1/users/@me",
            &access,
            json!({"avatar": "javascript:alert(1)"}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_avatar")));
    let (_, me) = s.get("/api/v1/users/@me", &access).await;
    assert_eq!(
        me["avatar"], "https://img.example/a.png",
        "a refused update changed nothing"
    );

    // Password change: the old one stops working, sessions end.
    let (st, _) = s
        .post(
            "/api/v1/users/@me/password",
            Some(&access),
            json!({"current_password": "wrong one!", "new_password": "new password 1"}),
        )
        .await;
    assert_eq!(st, 403);
    let (_, fresh) = login(&s, "minjun", "correct horse battery").await;
    let (st, _) = s
        .post(
            "/api/v1/users/@me/password",
            Some(&access),
            json!({"current_password": "correct horse battery", "new_password": "new password 1"}),
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = refresh(&s, fresh["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 401, "sessions from before the change end");
    let (st, _) = login(&s, "minjun", "correct horse battery").await;
    assert_eq!(st, 401);
    let (st, b) = s.get("/api/v1/users/@me", &access).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("session_ended")),
        "the session that changed the password ended too"
    );
    let (st, again) = login(&s, "minjun", "new password 1").await;
    assert_eq!(st, 200);
    access = again["access_token"].as_str().unwrap().to_owned();

    // Login IP allowlist: a login from elsewhere is refused and recorded.
    let (st, b) = s
        .send(
            Method::PUT,
            "/api/v1/users/@me/login-allowlist",
            &access,
            json!({"entries": ["10.0.0.0/8", "bogus"]}),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_allowlist")));
    let (st, _) = s
        .send(
            Method::PUT,
            "/api/v1/users/@me/login-allowlist",
            &access,
            json!({"entries": ["10.0.0.0/8"]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, b) = login(&s, "minjun", "new password 1").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("ip_not_allowed")),
        "{b}"
    );
    let (_, refusals) = s.get("/api/v1/users/@me/login-refusals", &access).await;
    assert_eq!(refusals[0]["ip"], "127.0.0.1", "{refusals}");
    assert_eq!(refusals[0]["reason"], "ip_not_allowed");
    s.send(
        Method::PUT,
        "/api/v1/users/@me/login-allowlist",
        &access,
        json!({"entries": ["10.0.0.0/8", "127.0.0.1/32"]}),
    )
    .await;
    let (st, _) = login(&s, "minjun", "new password 1").await;
    assert_eq!(st, 200);
    s.stop().await;
}

#[tokio::test]
async fn accounts_on_both_stores() {
    for db in BOTH {
        accounts(db).await;
    }
}

#[tokio::test]
async fn auth_routes_are_rate_limited_per_ip() {
    let s = Server::start(Db::Sqlite).await;
    let mut limited = None;
    for _ in 0..40 {
        let (st, b) = login(&s, "nobody", "whatever123").await;
        if st == 429 {
            limited = Some(b);
            break;
        }
        assert_eq!(st, 401);
    }
    let b = limited.expect("never rate limited");
    assert_eq!(b["code"], "rate_limited");
    assert!(b["retry_after"].as_f64().unwrap() > 0.0);
    s.stop().await;
}

/// Requests are limited per user and per route: one user's flood neither blocks their
/// other routes nor anyone else.
#[tokio::test]
async fn requests_are_rate_limited_per_user_per_route() {
    let s = Server::start_with(Db::Sqlite, |c| c.user_rate = Some((5.0, 1.0))).await;
    let (a, _) = s.register("flooder").await;
    let (b, _) = s.register("bystander").await;
    let (_, g) = s
        .post("/api/v1/guilds", Some(&a), json!({"name": "g"}))
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let (_, inv) = s
        .post(
            &format!("/api/v1/guilds/{gid}/invites"),
            Some(&a),
            json!({}),
        )
        .await;
    s.post(
        &format!("/api/v1/invites/{}", inv["code"].as_str().unwrap()),
        Some(&b),
        json!({}),
    )
    .await;
    let ch = g["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let msgs = format!("/api/v1/channels/{ch}/messages");
    let mut limited = None;
    for i in 0..8 {
        let (st, body) = s
            .post(&msgs, Some(&a), json!({"content": format!("{i}")}))
            .await;
        if st == 429 {
            limited = Some((i, body));
            break;
        }
        assert_eq!(st, 201);
    }
    let (i, body) = limited.expect("the sixth message is limited");
    assert_eq!(i, 5);
    assert_eq!(body["code"], "rate_limited");
    assert!(body["retry_after"].as_f64().unwrap() > 0.0);
    let (st, _) = s.get(&msgs, &a).await;
    assert_eq!(st, 200, "other routes are counted apart");
    let (st, _) = s.post(&msgs, Some(&b), json!({"content": "me too"})).await;
    assert_eq!(st, 201, "other users are unaffected");
    s.stop().await;
}

/// Behind a trusted proxy the client is the address in `X-Forwarded-For`: limits and the
/// login allowlist apply to it. From anywhere else the header is ignored.
#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    let s = Server::start_with(Db::Sqlite, |c| {
        c.auth_rate = Some((3.0, 0.001));
        c.trusted_proxies = vec![parlor_chat::service::auth::Cidr::parse("127.0.0.1/32").unwrap()];
    })
    .await;
    let login = |xff: &str, password: &str| {
        let (s, xff, password) = (&s, xff.to_owned(), password.to_owned());
        async move {
            let r = s
                .http
                .post(s.url("/api/v1/auth/login"))
                .header("x-forwarded-for", xff)
                .json(&json!({"username": "roamer", "password": password}))
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (token, _) = s.register("roamer").await; // one token of the loopback bucket
    let (st, _) = s
        .send(
            Method::PUT,
            "/api/v1/users/@me/login-allowlist",
            &token,
            json!({"entries": ["203.0.113.0/24"]}),
        )
        .await;
    assert_eq!(st, 200);
    // The allowlist sees the forwarded address, including past a second proxy hop.
    assert_eq!(login("203.0.113.9", "password 123").await.0, 200);
    let (st, b) = login("198.51.100.1, 127.0.0.1", "password 123").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("ip_not_allowed")),
        "{b}"
    );
    // Each forwarded client has its own bucket of 3.
    for _ in 0..2 {
        assert_ne!(login("203.0.113.9", "wrong").await.0, 429);
    }
    assert_eq!(login("203.0.113.9", "wrong").await.0, 429);
    assert_eq!(login("203.0.113.10", "password 123").await.0, 200);
    s.stop().await;

    // Without trusted proxies, a client cannot pick its own address.
    let s = Server::start(Db::Sqlite).await;
    let (token, _) = s.register("roamer").await;
    s.send(
        Method::PUT,
        "/api/v1/users/@me/login-allowlist",
        &token,
        json!({"entries": ["203.0.113.0/24"]}),
    )
    .await;
    let r = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"username": "roamer", "password": "password 123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;
}
