//! Bots with slash commands answered over the WebSocket and over a signed outgoing
//! webhook, and incoming webhooks, on both stores.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{BOTH, Db, Server};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// A bot's outgoing-webhook endpoint: checks the signature, answers "pong", and
/// reports what it received.
async fn endpoint(secret: String) -> (String, tokio::sync::mpsc::Receiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let app = axum::Router::new().route(
        "/interactions",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (tx, secret) = (tx.clone(), secret.clone());
            async move {
                let ts = headers["x-parlor-timestamp"].to_str().unwrap().to_owned();
                let sig = headers["x-parlor-signature"].to_str().unwrap().to_owned();
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(format!("{ts}.{body}").as_bytes());
                let want: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(sig, format!("sha256={want}"), "deliveries are signed");
                tx.send(serde_json::from_str(&body).unwrap()).await.unwrap();
                axum::Json(json!({"content": "pong"}))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/interactions", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, rx)
}

async fn scenario(db: Db) {
    // The bot's endpoint runs on this machine, which outgoing requests may reach only
    // when the operator allows it.
    let s = Server::start_with(db, |c| {
        c.outgoing.allow = vec![parlor_chat::service::auth::Cidr::parse("127.0.0.1").unwrap()];
    })
    .await;
    let (owner, _) = s.register("owner").await;
    let (member, member_id) = s.register("member").await;
    let (_, g) = s
        .post("/api/v1/guilds", Some(&owner), json!({"name": "g"}))
        .await;
    let gid = id(&g);
    let general = id(g["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap());
    let (_, inv) = s
        .post(
            &format!("/api/v1/guilds/{gid}/invites"),
            Some(&owner),
            json!({"max_age": 0}),
        )
        .await;
    let code = inv["code"].as_str().unwrap().to_owned();
    s.post(&format!("/api/v1/invites/{code}"), Some(&member), json!({}))
        .await;

    // The owner makes a bot; the bot joins by invite and registers commands.
    let (st, app) = s
        .post(
            "/api/v1/applications",
            Some(&owner),
            json!({"name": "Weather"}),
        )
        .await;
    assert_eq!(st, 201, "{app}");
    let app_id = id(&app);
    let bot = format!("Bot {}", app["token"].as_str().unwrap());
    let bot_id = app["bot_user_id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/invites/{code}"),
            &bot,
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(Method::GET, "/api/v1/users/@me", "Bot nope", json!({}))
        .await;
    assert_eq!(st, 401);
    let (st, b) = s
        .call(
            Method::PUT,
            &format!("/api/v1/applications/{app_id}/commands"),
            &bot,
            json!([{"name": "Bad Name"}]),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_command")));
    let (st, _) = s.call(Method::PUT,
        &format!("/api/v1/applications/{app_id}/commands"),
        &bot,
        json!([
            {"name": "weather", "description": "the weather", "options": [{"name": "city", "required": true}]},
            {"name": "ping"}
        ]),
    )
    .await;
    assert_eq!(st, 200);
    let (_, cmds) = s
        .get(&format!("/api/v1/guilds/{gid}/commands"), &member)
        .await;
    assert_eq!(cmds.as_array().unwrap().len(), 2);

    // The bot listens on the WebSocket; a member's /weather reaches it.
    let mut bot_ws = s.ws().await;
    let ready = bot_ws.identify(&bot).await;
    assert_eq!(ready["d"]["user"]["bot"], true);
    let mut member_ws = s.ws().await;
    member_ws.identify(&member).await;
    let msgs = format!("/api/v1/channels/{general}/messages");
    let (st, r) = s
        .post(
            &msgs,
            Some(&member),
            json!({"content": "/weather 서울 내일"}),
        )
        .await;
    assert_eq!(st, 202, "{r}");
    assert!(
        r["interaction"].get("token").is_none(),
        "the user never sees the token"
    );
    let i = bot_ws.dispatch("interaction_create").await["d"].clone();
    assert_eq!(i["command"], "weather");
    assert_eq!(
        i["options"],
        json!([{"name": "city", "value": "서울 내일"}])
    );
    assert_eq!(i["user"]["id"], member_id.as_str());
    let callback = format!(
        "/api/v1/interactions/{}/{}/callback",
        i["id"].as_str().unwrap(),
        i["token"].as_str().unwrap()
    );
    let (st, _) = s
        .call(
            Method::POST,
            &callback,
            &format!("Bearer {member}"),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(st, 403, "only bots answer");
    let (st, m) = s
        .call(
            Method::POST,
            &callback,
            &bot,
            json!({"content": "서울: 맑음"}),
        )
        .await;
    assert_eq!(
        (st, m["author_id"].as_str()),
        (201, Some(bot_id.as_str())),
        "{m}"
    );
    let f = member_ws.dispatch("message_create").await;
    assert_eq!(f["d"]["content"], "서울: 맑음");
    let (st, _) = s
        .call(Method::POST, &callback, &bot, json!({"content": "again"}))
        .await;
    assert_eq!(st, 404, "one answer per interaction");

    // Options are checked; text that is not a command is a message.
    let (st, b) = s
        .post(&msgs, Some(&member), json!({"content": "/weather"}))
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("invalid_command_options"))
    );
    let (st, _) = s
        .post(&msgs, Some(&member), json!({"content": "/shrug ok"}))
        .await;
    assert_eq!(st, 201);

    // An outgoing webhook: signed delivery, and its answer posted as the bot.
    let (url, mut delivered) = endpoint(app["webhook_secret"].as_str().unwrap().to_owned()).await;
    let (st, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/applications/{app_id}"),
            &owner,
            json!({"interactions_url": url}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post(&msgs, Some(&member), json!({"content": "/ping"}))
        .await;
    assert_eq!(st, 202);
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), delivered.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["command"], "ping");
    loop {
        let f = member_ws.dispatch("message_create").await;
        if f["d"]["content"] == "pong" {
            assert_eq!(f["d"]["author_id"], bot_id.as_str());
            break;
        }
    }

    // Incoming webhooks: created by managers, posted to by URL alone.
    let hooks = format!("/api/v1/channels/{general}/webhooks");
    let (st, _) = s.post(&hooks, Some(&member), json!({"name": "CI"})).await;
    assert_eq!(st, 403);
    let (st, hook) = s.post(&hooks, Some(&owner), json!({"name": "CI"})).await;
    assert_eq!(st, 201, "{hook}");
    let hook_url = hook["url"].as_str().unwrap().to_owned();
    let r = s
        .http
        .post(s.url(&hook_url))
        .json(&json!({"content": "build passed ✅"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    loop {
        let f = member_ws.dispatch("message_create").await;
        if f["d"]["content"] == "build passed ✅" {
            break;
        }
    }
    let bad = hook_url.rsplit_once('/').unwrap().0.to_owned() + "/wrong";
    let r = s
        .http
        .post(s.url(&bad))
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, list) = s.get(&hooks, &owner).await;
    assert_eq!(list[0]["name"], "CI");
    let (st, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/webhooks/{}", id(&hook)),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    let r = s
        .http
        .post(s.url(&hook_url))
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Bot accounts cannot sign in with a password.
    let (_, me) = s
        .call(Method::GET, "/api/v1/users/@me", &bot, json!({}))
        .await;
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": me["username"], "password": "!"}),
        )
        .await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn bots_commands_and_webhooks_on_both_stores() {
    for db in BOTH {
        scenario(db).await;
    }
}
