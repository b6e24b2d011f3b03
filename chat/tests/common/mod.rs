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
        let state = parlor_chat::ChatState::open(parlor_chat::Config::new(
            url,
            b"chat-test-secret-0123456789abcdef",
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(parlor_chat::run(listener, state, std::future::pending()));
        Server {
            addr,
            http: reqwest::Client::new(),
            cleanup,
        }
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

    pub async fn stop(self) {
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
