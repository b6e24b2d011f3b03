//! A real chat server on port 0, on either store: SQLite in a temporary directory, or a
//! fresh database on the Postgres at `PARLOR_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/test`).

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use sqlx::Executor;

pub struct Server {
    pub addr: SocketAddr,
    /// Where the server stores attachments.
    pub files: PathBuf,
    /// The store the server runs on, for tests that must reach past the API (to age an
    /// invite, or to check what survived).
    pub db_url: String,
    pub http: reqwest::Client,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Database { admin_url: String, name: String },
}

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub const BOTH: [Db; 2] = [Db::Sqlite, Db::Postgres];

fn postgres_admin_url() -> String {
    std::env::var("PARLOR_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

impl Server {
    pub async fn start(db: Db) -> Server {
        Server::start_with(db, |_| {}).await
    }

    /// Starts a server with a changed configuration (smaller buffers, shorter timeouts).
    pub async fn start_with(db: Db, tune: impl FnOnce(&mut parlor_chat::Config)) -> Server {
        let (url, cleanup) = match db {
            Db::Sqlite => {
                let dir = std::env::temp_dir().join(unique("parlor_chat"));
                std::fs::create_dir_all(&dir).unwrap();
                (
                    format!("sqlite://{}?mode=rwc", dir.join("chat.db").display()),
                    Cleanup::Dir(dir),
                )
            }
            Db::Postgres => {
                sqlx::any::install_default_drivers();
                let admin_url = postgres_admin_url();
                let name = unique("parlor_t");
                let mut admin = sqlx::AnyConnection::connect_any(&admin_url).await;
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                let base = admin_url.rsplit_once('/').unwrap().0;
                (
                    format!("{base}/{name}"),
                    Cleanup::Database { admin_url, name },
                )
            }
        };
        let db_url = url.clone();
        let files = std::env::temp_dir().join(unique("parlor_files"));
        let mut config = parlor_chat::Config::new(url, b"chat-test-secret-0123456789abcdef");
        config.attachments_dir = Some(files.clone());
        // Scenarios post faster than people do; the limits have their own tests.
        config.user_rate = None;
        tune(&mut config);
        let state = parlor_chat::ChatState::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(parlor_chat::run(listener, state, std::future::pending()));
        Server {
            addr,
            files,
            db_url,
            http: reqwest::Client::new(),
            cleanup,
        }
    }

    /// Runs SQL on the server's store directly.
    pub async fn exec(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect_any(&self.db_url).await;
        c.execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .unwrap();
    }

    /// Registers a user; their access token and id.
    pub async fn register(&self, name: &str) -> (String, String) {
        let (st, b) = self
            .post(
                "/api/v1/auth/register",
                None,
                serde_json::json!({"username": name, "password": "password 123"}),
            )
            .await;
        assert_eq!(st, 201, "{b}");
        (
            b["access_token"].as_str().unwrap().to_owned(),
            b["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// A guild `owner` creates, with `members` joined by invite: the guild as created, its
    /// id, and the id of its `general` channel.
    pub async fn guild(&self, owner: &str, members: &[&str]) -> (Value, String, String) {
        let (st, g) = self
            .post(
                "/api/v1/guilds",
                Some(owner),
                serde_json::json!({"name": "g"}),
            )
            .await;
        assert_eq!(st, 201, "{g}");
        let gid = g["id"].as_str().unwrap().to_owned();
        let general = g["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "general")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for m in members {
            self.join(owner, &gid, m).await;
        }
        (g, gid, general)
    }

    /// `token` joins the guild through a fresh invite from `owner`.
    pub async fn join(&self, owner: &str, gid: &str, token: &str) {
        let (st, inv) = self
            .post(
                &format!("/api/v1/guilds/{gid}/invites"),
                Some(owner),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(st, 201, "{inv}");
        let (st, b) = self
            .post(
                &format!("/api/v1/invites/{}", inv["code"].as_str().unwrap()),
                Some(token),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }

    /// Opens the chat WebSocket and reads hello.
    pub async fn ws(&self) -> Ws {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/api/v1/gateway", self.addr))
                .await
                .unwrap();
        let mut ws = Ws { ws, seq: 0 };
        let hello = ws.next().await.unwrap();
        assert_eq!(hello["op"], "hello", "{hello}");
        ws
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs JSON; returns the status and the body as JSON (Null when empty).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        respond(r.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        respond(
            self.http
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        respond(
            self.http
                .request(method, self.url(path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A request with a raw Authorization header (`Bot <token>`, `Bearer <token>`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &str,
        body: Value,
    ) -> (u16, Value) {
        respond(
            self.http
                .request(method, self.url(path))
                .header("authorization", auth)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn stop(self) {
        let _ = std::fs::remove_dir_all(&self.files);
        match self.cleanup {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::Database { admin_url, name } => {
                // The server's pool still holds connections; FORCE ends them.
                let mut admin = sqlx::AnyConnection::connect_any(&admin_url).await;
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
            }
        }
    }
}

trait ConnectAny {
    async fn connect_any(url: &str) -> sqlx::AnyConnection;
}

impl ConnectAny for sqlx::AnyConnection {
    async fn connect_any(url: &str) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::AnyConnection::connect(url).await.unwrap()
    }
}

async fn respond(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A chat WebSocket client.
pub struct Ws {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The sequence number of the last dispatch read.
    pub seq: u64,
}

/// How a connection ended, as seen by the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Closed(u16),
    Dropped,
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame within 5 s; the close code if the connection ends.
    pub async fn next(&mut self) -> Result<Value, Ended> {
        self.next_within(std::time::Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no frame within 5 s"))
    }

    /// The next JSON frame, `None` if nothing comes within `d`.
    pub async fn next_within(&mut self, d: std::time::Duration) -> Option<Result<Value, Ended>> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let m = tokio::time::timeout(d, self.ws.next()).await.ok()?;
            return Some(match m {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if let Some(s) = v["s"].as_u64() {
                        assert!(
                            s > self.seq,
                            "sequence numbers increase: {s} after {}",
                            self.seq
                        );
                        self.seq = s;
                    }
                    Ok(v)
                }
                Some(Ok(Message::Close(Some(f)))) => Err(Ended::Closed(f.code.into())),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => Err(Ended::Dropped),
                Some(Ok(_)) => continue,
            });
        }
    }

    /// The next dispatch of this type, skipping others (presence, typing).
    pub async fn dispatch(&mut self, kind: &str) -> Value {
        loop {
            let f = self.next().await.unwrap();
            if f["op"] == "dispatch" && f["t"] == kind {
                return f;
            }
        }
    }

    /// The next dispatch of this type about `user` (`d.user_id`); its `d`.
    pub async fn update_of(&mut self, kind: &str, user: &str) -> Value {
        loop {
            let f = self.dispatch(kind).await;
            if f["d"]["user_id"] == user {
                return f["d"].clone();
            }
        }
    }

    /// Identifies; the ready dispatch.
    pub async fn identify(&mut self, token: &str) -> Value {
        self.seq = 0;
        self.send(serde_json::json!({"op": "identify", "d": {"token": token}}))
            .await;
        self.dispatch("ready").await
    }

    /// Resumes a session after `seq`; the first frame back.
    pub async fn resume(&mut self, token: &str, session: &str, seq: u64) -> Value {
        self.seq = seq;
        self.send(serde_json::json!({"op": "resume", "d": {
            "token": token, "session_id": session, "seq": seq,
        }}))
        .await;
        self.next().await.unwrap()
    }

    /// Reads `n` message_create dispatches (skipping ephemeral events); their contents.
    pub async fn messages(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let f = self.next().await.unwrap();
            if f["t"] == "message_create" {
                out.push(f["d"]["content"].as_str().unwrap().to_owned());
            }
        }
        out
    }

    /// The close code the server ends with, skipping frames before it.
    pub async fn closed(&mut self) -> Ended {
        loop {
            if let Err(e) = self.next().await {
                return e;
            }
        }
    }
}
