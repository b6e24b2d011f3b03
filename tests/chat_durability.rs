//! A message the chat service acknowledged survives `kill -9` of the process, on SQLite
//! (WAL) and on Postgres. Runs the real `parlor chat` binary.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Executor;

struct Chat {
    child: Child,
    base: String,
}

fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Chat {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parlor"));
    cmd.args(["chat", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env(
            "PARLOR_TOKEN_SECRET",
            "durability-test-secret-0123456789abcdef",
        )
        .env("PARLOR_CHAT_RATE_LIMITS", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://"), "{line}");
    Chat { child, base }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn survives_kill_9(database_url: Option<String>) {
    let dir = std::env::temp_dir().join(format!(
        "parlor_kill9_{}_{}",
        std::process::id(),
        database_url.is_some()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::new();
    let mut chat = start(&dir, database_url.as_deref());
    let base = chat.base.clone();
    let (st, s) = post(
        &http,
        format!("{base}/api/v1/auth/register"),
        None,
        json!({"username": "writer", "password": "password 123"}),
    )
    .await;
    assert_eq!(st, 201, "{s}");
    let token = s["access_token"].as_str().unwrap().to_owned();
    let (_, g) = post(
        &http,
        format!("{base}/api/v1/guilds"),
        Some(&token),
        json!({"name": "g"}),
    )
    .await;
    let general = g["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "general")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Four writers post as fast as they can; every acknowledged id is remembered. The
    // process is killed with SIGKILL while they are still writing.
    let url = format!("{base}/api/v1/channels/{general}/messages");
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("writer {w} message {i}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let m: Value = r.json().await.unwrap();
                        acked.push(m["id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    chat.child.kill().unwrap(); // SIGKILL
    chat.child.wait().unwrap();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() >= 20,
        "only {} messages acknowledged",
        acked.len()
    );

    // Restart on the same store: every acknowledged message is there.
    let mut chat = start(&dir, database_url.as_deref());
    let base = chat.base.clone();
    let (st, s) = post(
        &http,
        format!("{base}/api/v1/auth/login"),
        None,
        json!({"username": "writer", "password": "password 123"}),
    )
    .await;
    assert_eq!(st, 200, "{s}");
    let token = s["access_token"].as_str().unwrap().to_owned();
    let mut stored = std::collections::HashSet::new();
    let mut after = "0".to_owned();
    loop {
        let page: Value = http
            .get(format!(
                "{base}/api/v1/channels/{general}/messages?after={after}&limit=100"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for m in page {
            stored.insert(m["id"].as_str().unwrap().to_owned());
        }
        after = page[0]["id"].as_str().unwrap().to_owned();
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "kill -9 ({}): {} acknowledged, all {} found after restart",
        if database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        acked.len(),
        acked.len()
    );
    chat.child.kill().unwrap();
    chat.child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_on_sqlite() {
    survives_kill_9(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_on_postgres() {
    sqlx::any::install_default_drivers();
    let admin = std::env::var("PARLOR_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("parlor_kill9_{}", std::process::id());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .await
    .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    survives_kill_9(Some(url)).await;
    let _ = conn
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await;
}
