//! The chat store: one interface over SQLite (the embedded default) and Postgres (for
//! scale). Both speak the same SQL through sqlx's `Any` driver; each has its own
//! migrations, applied at open. Every SQL statement of chat lives in this module and its
//! children, one per area; nothing else issues SQL.

pub mod access;
pub mod attachments;
pub mod blobs;
pub mod bots;
pub mod dms;
pub mod events;
pub mod guilds;
pub mod members;
pub mod messages;
pub mod oidc;
pub mod presence;
pub mod push;
pub mod reads;
pub mod recovery;
pub mod relationships;
pub mod search;

use crate::model::UserId;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The store of attachment files could not be opened.
    #[error("file store: {0}")]
    Files(String),
}

impl StoreError {
    pub(crate) fn from_db(e: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(d) = &e
            && d.is_unique_violation()
        {
            return StoreError::Conflict;
        }
        StoreError::Db(e)
    }

    /// Whether the database could not be reached (down, restarting, or every connection
    /// busy for too long), as opposed to refusing the request: worth retrying shortly.
    /// The same error for another caller (`sqlx::Error` cannot be cloned): the same
    /// kind, so an unavailable database still reads as unavailable, with its text.
    pub(crate) fn replica(&self) -> StoreError {
        match self {
            StoreError::Conflict => StoreError::Conflict,
            StoreError::Files(s) => StoreError::Files(s.clone()),
            e if e.is_unavailable() => StoreError::Db(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                e.to_string(),
            ))),
            e => StoreError::Db(sqlx::Error::Protocol(e.to_string())),
        }
    }

    pub fn is_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // Class 08: connection exceptions; 57P01-57P03: the server is shutting down
            // or starting.
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
            _ => false,
        }
    }
}

/// The form text is stored and matched in.
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// Which database a store runs on. Migrations live in `migrations/<backend>/` where the
/// SQL differs between the two, and in `migrations/` where one text suits both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The advisory lock key that serialises migrations across processes (\"parlor\" in ASCII).
const MIGRATION_LOCK: i64 = 0x70_61_72_6c_6f_72;

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_accounts.sql")),
    (2, include_str!("../../migrations/0002_guilds.sql")),
    (3, include_str!("../../migrations/0003_members.sql")),
    (4, include_str!("../../migrations/0004_read_states.sql")),
    (
        5,
        include_str!("../../migrations/0005_search_attachments.sql"),
    ),
    (6, include_str!("../../migrations/0006_dms_threads.sql")),
    (7, include_str!("../../migrations/0007_bots_events.sql")),
    (8, include_str!("../../migrations/0008_ended_sessions.sql")),
    (9, include_str!("../../migrations/0009_presence.sql")),
    (
        10,
        include_str!("../../migrations/0010_push_subscriptions.sql"),
    ),
    (11, include_str!("../../migrations/0011_email_recovery.sql")),
    (12, include_str!("../../migrations/0012_oidc.sql")),
    (13, include_str!("../../migrations/0013_relationships.sql")),
    (
        14,
        include_str!("../../migrations/0014_voice_moderation.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_search_index.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_accounts.sql"),
    ),
    (2, include_str!("../../migrations/0002_guilds.sql")),
    (3, include_str!("../../migrations/0003_members.sql")),
    (4, include_str!("../../migrations/0004_read_states.sql")),
    (
        5,
        include_str!("../../migrations/0005_search_attachments.sql"),
    ),
    (6, include_str!("../../migrations/0006_dms_threads.sql")),
    (7, include_str!("../../migrations/0007_bots_events.sql")),
    (8, include_str!("../../migrations/0008_ended_sessions.sql")),
    (9, include_str!("../../migrations/0009_presence.sql")),
    (
        10,
        include_str!("../../migrations/0010_push_subscriptions.sql"),
    ),
    (11, include_str!("../../migrations/0011_email_recovery.sql")),
    (12, include_str!("../../migrations/0012_oidc.sql")),
    (13, include_str!("../../migrations/0013_relationships.sql")),
    (
        14,
        include_str!("../../migrations/0014_voice_moderation.sql"),
    ),
    (
        15,
        include_str!("../../migrations/postgres/0015_search_index.sql"),
    ),
];

/// The `users` columns a [`User`] is read from.
macro_rules! user_columns {
    () => {
        "id, username, display_name, password_hash, avatar, is_bot, login_allowlist, created_at"
    };
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar: Option<String>,
    pub is_bot: bool,
    pub password_hash: String,
    pub login_allowlist: Vec<String>,
    pub created_at: i64,
}

/// A refresh token that was just spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid and now spent: issue the next one in the same family.
    Fresh {
        user_id: UserId,
        family: String,
        expires_at: i64,
    },
    /// Spent before: someone replays it. The family must be revoked.
    Replayed { user_id: UserId, family: String },
}

#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing, WAL mode) or `postgres://...`, and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            // A Postgres that is down fails requests in seconds (503), not after the
            // default 30 s; SQLite's writers may queue longer.
            .acquire_timeout(Duration::from_secs(if backend == Backend::Sqlite {
                30
            } else {
                3
            }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. NORMAL sync in WAL mode keeps
                        // every committed transaction across a crash of the process.
                        conn.execute(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                             PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied. On Postgres, where several chat processes
    /// may start together, one at a time: each holds an advisory lock while it checks and
    /// applies, so every migration runs exactly once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut lock = None;
        if self.backend == Backend::Postgres {
            let mut conn = self.pool.acquire().await?;
            sqlx::query("SELECT CAST(pg_advisory_lock($1) AS TEXT)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
            lock = Some(conn);
        }
        let result = self.apply_migrations().await;
        if let Some(mut conn) = lock {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn apply_migrations(&self) -> Result<(), StoreError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
                 applied_at BIGINT NOT NULL)",
            )
            .await?;
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        for (version, sql) in migrations {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            tx.execute(*sql).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, avatar, is_bot, \
             login_allowlist, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.avatar.clone())
        .bind(u.is_bot)
        .bind(serde_json::to_string(&u.login_allowlist).unwrap_or_else(|_| "[]".into()))
        .bind(u.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_db)?;
        Ok(())
    }

    fn user_from(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
        let allow: String = row.try_get("login_allowlist")?;
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            display_name: row.try_get("display_name")?,
            password_hash: row.try_get("password_hash")?,
            avatar: row.try_get("avatar")?,
            is_bot: row
                .try_get::<i64, _>("is_bot")
                .or_else(|_| row.try_get::<bool, _>("is_bot").map(i64::from))?
                != 0,
            login_allowlist: serde_json::from_str(&allow).unwrap_or_default(),
            created_at: row.try_get("created_at")?,
        })
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Self::user_from(&r)).transpose()?)
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Self::user_from(&r)).transpose()?)
    }

    pub async fn set_password(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_profile(
        &self,
        id: UserId,
        display_name: &str,
        avatar: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET display_name = $1, avatar = $2 WHERE id = $3")
            .bind(display_name)
            .bind(avatar.map(str::to_owned))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_login_allowlist(
        &self,
        id: UserId,
        entries: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET login_allowlist = $1 WHERE id = $2")
            .bind(serde_json::to_string(entries).unwrap_or_else(|_| "[]".into()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_refresh(
        &self,
        token_hash: &str,
        user_id: UserId,
        family: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, family, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(family)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token, atomically: of two racing uses, one is `Fresh`.
    pub async fn use_refresh(&self, token_hash: &str) -> Result<Option<RefreshUse>, StoreError> {
        if let Some(row) = sqlx::query(
            "UPDATE refresh_tokens SET used = TRUE WHERE token_hash = $1 AND used = FALSE \
             RETURNING user_id, family, expires_at",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        {
            return Ok(Some(RefreshUse::Fresh {
                user_id: row.try_get("user_id")?,
                family: row.try_get("family")?,
                expires_at: row.try_get("expires_at")?,
            }));
        }
        let row = sqlx::query("SELECT user_id, family FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(RefreshUse::Replayed {
                user_id: r.try_get("user_id")?,
                family: r.try_get("family")?,
            })
        })
        .transpose()
        .map_err(StoreError::Db)
    }

    /// Ends one session: its refresh tokens go, and it is recorded as ended until
    /// `until` (ms) so its access tokens stop working everywhere.
    pub async fn end_session(
        &self,
        user_id: UserId,
        family: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE family = $1")
            .bind(family)
            .execute(&mut *tx)
            .await?;
        record_ended(&mut tx, user_id, family, until).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of the user; the sessions that ended. A session is known
    /// by its refresh tokens, spent ones included, which stay until it ends.
    pub async fn end_user_sessions(
        &self,
        user_id: UserId,
        until: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let families: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT family FROM refresh_tokens WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for f in &families {
            record_ended(&mut tx, user_id, f, until).await?;
        }
        tx.commit().await?;
        Ok(families)
    }

    /// Sessions ended whose access tokens could still be unexpired at `now` (ms); drops
    /// the older rows.
    pub async fn ended_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query("DELETE FROM ended_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query("SELECT session_id, expires_at FROM ended_sessions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("session_id")?, r.try_get("expires_at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    pub async fn record_login_refusal(
        &self,
        user_id: UserId,
        ip: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO login_refusals (user_id, ip, reason, at) VALUES ($1, $2, $3, $4)")
            .bind(user_id)
            .bind(ip)
            .bind(reason)
            .bind(crate::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (ip, reason, at ms) of refused logins, newest first.
    pub async fn login_refusals(
        &self,
        user_id: UserId,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT ip, reason, at FROM login_refusals WHERE user_id = $1 ORDER BY id DESC LIMIT 100",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("ip")?, r.try_get("reason")?, r.try_get("at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }
}

async fn record_ended(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
    family: &str,
    until: i64,
) -> Result<(), StoreError> {
    // A session ends once; ending it again (a second replay) moves nothing.
    sqlx::query(
        "INSERT INTO ended_sessions (session_id, user_id, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (session_id) DO NOTHING",
    )
    .bind(family)
    .bind(user_id)
    .bind(until)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
