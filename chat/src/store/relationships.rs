//! Friends, friend requests and blocks in the [`Store`].

use sqlx::Row;

use crate::model::UserId;
use crate::store::{Store, StoreError};

/// What `other` is to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Friend,
    /// The user asked `other` to be friends.
    Outgoing,
    /// `other` asked the user.
    Incoming,
    /// The user blocked `other`.
    Blocked,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Friend => "friend",
            Relation::Outgoing => "outgoing",
            Relation::Incoming => "incoming",
            Relation::Blocked => "blocked",
        }
    }

    fn parse(s: &str) -> Option<Relation> {
        Some(match s {
            "friend" => Relation::Friend,
            "outgoing" => Relation::Outgoing,
            "incoming" => Relation::Incoming,
            "blocked" => Relation::Blocked,
            _ => return None,
        })
    }
}

impl Store {
    pub async fn relation(
        &self,
        user: UserId,
        other: UserId,
    ) -> Result<Option<Relation>, StoreError> {
        let row =
            sqlx::query("SELECT kind FROM relationships WHERE user_id = $1 AND other_id = $2")
                .bind(user)
                .bind(other)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(r) => Relation::parse(&r.try_get::<String, _>("kind")?),
            None => None,
        })
    }

    /// Every relationship of the user: (other, relation, since).
    pub async fn relations(
        &self,
        user: UserId,
    ) -> Result<Vec<(UserId, Relation, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT other_id, kind, created_at FROM relationships WHERE user_id = $1 \
             ORDER BY created_at",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(k) = Relation::parse(&r.try_get::<String, _>("kind")?) {
                out.push((r.try_get("other_id")?, k, r.try_get("created_at")?));
            }
        }
        Ok(out)
    }

    /// The user's friends.
    pub async fn friends(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(self
            .relations(user)
            .await?
            .into_iter()
            .filter(|(_, k, _)| *k == Relation::Friend)
            .map(|(o, _, _)| o)
            .collect())
    }

    /// Sets what `other` is to `user` (`None` removes it).
    pub async fn set_relation(
        &self,
        user: UserId,
        other: UserId,
        kind: Option<Relation>,
        now: i64,
    ) -> Result<(), StoreError> {
        match kind {
            Some(k) => {
                sqlx::query(
                    "INSERT INTO relationships (user_id, other_id, kind, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, other_id) DO UPDATE SET \
                     kind = excluded.kind, created_at = excluded.created_at",
                )
                .bind(user)
                .bind(other)
                .bind(k.as_str())
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM relationships WHERE user_id = $1 AND other_id = $2")
                    .bind(user)
                    .bind(other)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether either blocked the other.
    pub async fn blocked_between(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM relationships WHERE kind = 'blocked' AND \
             ((user_id = $1 AND other_id = $2) OR (user_id = $2 AND other_id = $1)) LIMIT 1",
        )
        .bind(a)
        .bind(b)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.is_some())
    }
}
