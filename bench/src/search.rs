//! Search latency over a large guild: `parlor chat` with N messages in one channel
//! (SQLite, or Postgres with a URL), queried through the API.
//!
//! The messages are written straight into the chat database in one statement, because a
//! million posts through the API would take longer than the measurement; the server's
//! search index takes them as it takes posted ones (SQLite: triggers; Postgres: the
//! index, then `VACUUM ANALYZE` as autovacuum would run soon after). Every query is
//! checked for the number of results a scan would give.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::Executor;

use crate::chat::{ChatServer, guild, percentile, register};

/// One query kind: the text, and how many of `n` messages contain it.
struct Query {
    name: &'static str,
    q: &'static str,
    matches: fn(u64) -> u64,
}

/// Message `i` (1-based) reads `note <i> <a topic>`, with one in 7 about the deploy, one in
/// 13 in Korean, and one in 10,000 with a rare word.
const QUERIES: &[Query] = &[
    Query {
        name: "no match (ASCII)",
        q: "zqxjvk",
        matches: |_| 0,
    },
    Query {
        name: "no match (Korean)",
        q: "없는말이야",
        matches: |_| 0,
    },
    Query {
        name: "rare (Korean, 1 in 10,000)",
        q: "희귀한단어",
        matches: |n| n / 10_000,
    },
    Query {
        name: "common (1 in 7)",
        q: "deploy",
        matches: |n| n / 7,
    },
    Query {
        name: "two characters (Korean, 1 in 13)",
        q: "회의",
        matches: |n| n / 13,
    },
];

/// The text of message `i`, as SQL over `i`.
const TEXT: &str = "'note ' || i || ' ' || \
    CASE WHEN i % 10000 = 0 THEN '희귀한단어 ' ELSE '' END || \
    CASE WHEN i % 7 = 0 THEN 'deploy the build to staging' \
         WHEN i % 13 = 0 THEN '오늘 회의록 정리했어요' \
         ELSE 'lunch at noon, anyone' END";

pub async fn run(
    parlor: &str,
    messages: u64,
    runs: usize,
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    let server = ChatServer::start(parlor, database_url).await?;
    let result = measure(&server, messages, runs, database_url).await;
    server.stop().await;
    println!("{}", serde_json::to_string_pretty(&result?)?);
    Ok(())
}

async fn measure(
    server: &ChatServer,
    messages: u64,
    runs: usize,
    database_url: Option<&str>,
) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let (token, user) = register(&http, &server.base, "searcher").await?;
    let (guild_id, channel) = guild(&http, &server.base, &token).await?;

    let url = match database_url {
        Some(u) => u.to_owned(),
        None => format!("sqlite://{}", server.data.join("chat.db").display()),
    };
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    let series = if url.starts_with("postgres") {
        format!("SELECT i FROM generate_series(1, {messages}) AS i")
    } else {
        format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {messages}) \
             SELECT i FROM s"
        )
    };
    let started = Instant::now();
    eprintln!("seeding {messages} messages ...");
    // The ids come from the server's own answers (decimal numbers).
    let insert = format!(
        "INSERT INTO messages (id, channel_id, author_id, content, created_at, search_text) \
         SELECT 1000 + i, {channel}, {user}, {TEXT}, 1700000000000 + i, LOWER({TEXT}) \
         FROM ({series}) AS n"
    );
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .execute(&db)
        .await?;
    if url.starts_with("postgres") {
        // What autovacuum does soon after a bulk load: statistics, and the GIN index's
        // pending list merged.
        db.execute("VACUUM ANALYZE messages").await?;
        // And the load's writes flushed, so a checkpoint does not land inside the runs.
        db.execute("CHECKPOINT").await?;
    }
    let seeded_s = started.elapsed().as_secs_f64();
    eprintln!("seeded in {seeded_s:.1} s");
    db.close().await;

    let mut report = Vec::new();
    for q in QUERIES {
        let mut times = Vec::with_capacity(runs);
        let mut first_page = 0;
        for run in 0..runs + 2 {
            let t = Instant::now();
            let r = http
                .get(format!(
                    "{}/api/v1/guilds/{guild_id}/messages/search",
                    server.base
                ))
                .query(&[("q", q.q), ("limit", "25")])
                .bearer_auth(&token)
                .timeout(Duration::from_secs(60))
                .send()
                .await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if !r.status().is_success() {
                bail!("{}: {}", q.name, r.status());
            }
            let page: Value = r.json().await?;
            first_page = page["messages"].as_array().map_or(0, Vec::len);
            // The first two warm the caches.
            if run >= 2 {
                times.push(ms);
            }
        }
        let want = (q.matches)(messages).min(25) as usize;
        if first_page != want {
            bail!(
                "{}: {first_page} results on the first page, want {want}",
                q.name
            );
        }
        times.sort_by(f64::total_cmp);
        report.push(json!({
            "query": q.name,
            "q": q.q,
            "matching_messages": (q.matches)(messages),
            "first_page": first_page,
            "p50_ms": percentile(&times, 0.5),
            "p99_ms": percentile(&times, 0.99),
            "max_ms": times.last().copied().unwrap_or(f64::NAN),
        }));
        eprintln!(
            "{}: p50 {:.1} ms, p99 {:.1} ms",
            q.name,
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    Ok(json!({
        "scenario": "search",
        "store": if database_url.is_some() { "postgres" } else { "sqlite" },
        "messages": messages,
        "runs_per_query": runs,
        "seed_seconds": seeded_s,
        "queries": report,
    }))
}
