//! Bots in the store: applications with their bot account and token, slash commands,
//! interactions, and incoming webhooks.

use crate::model::{ChannelId, GuildId, UserId};
use crate::now_ms;
use crate::store::{Store, StoreError, User};
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct App {
    pub id: i64,
    pub owner_id: UserId,
    pub bot_user_id: UserId,
    pub name: String,
    pub webhook_secret: String,
    pub interactions_url: Option<String>,
}

/// A command option: a named string argument.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandOption {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: Vec<CommandOption>,
}

fn app_from(r: &sqlx::any::AnyRow) -> Result<App, sqlx::Error> {
    Ok(App {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        bot_user_id: r.try_get("bot_user_id")?,
        name: r.try_get("name")?,
        webhook_secret: r.try_get("webhook_secret")?,
        interactions_url: r.try_get("interactions_url")?,
    })
}

macro_rules! app_columns {
    () => {
        "id, owner_id, bot_user_id, name, webhook_secret, interactions_url"
    };
}

impl Store {
    pub async fn create_app(
        &self,
        app: &App,
        bot: &User,
        token_hash: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.create_user(bot).await?;
        sqlx::query(
            "INSERT INTO applications (id, owner_id, bot_user_id, name, token_hash, \
             webhook_secret, interactions_url, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(app.id)
        .bind(app.owner_id)
        .bind(app.bot_user_id)
        .bind(&app.name)
        .bind(token_hash)
        .bind(&app.webhook_secret)
        .bind(&app.interactions_url)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bot account a bot token belongs to.
    pub async fn bot_by_token(&self, token_hash: &str) -> Result<Option<UserId>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT bot_user_id FROM applications WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn app(&self, id: i64) -> Result<Option<App>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM applications WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| app_from(&r)).transpose()?)
    }

    pub async fn app_of_bot(&self, bot_user_id: UserId) -> Result<Option<App>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM applications WHERE bot_user_id = $1"
        ))
        .bind(bot_user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| app_from(&r)).transpose()?)
    }

    pub async fn apps_of(&self, owner_id: UserId) -> Result<Vec<App>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM applications WHERE owner_id = $1 ORDER BY id"
        ))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(app_from).collect::<Result<_, _>>()?)
    }

    pub async fn set_interactions_url(&self, id: i64, url: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE applications SET interactions_url = $1 WHERE id = $2")
            .bind(url)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces a bot's commands.
    pub async fn set_commands(
        &self,
        app_id: i64,
        commands: &[(i64, Command)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM commands WHERE application_id = $1")
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        for (id, c) in commands {
            sqlx::query(
                "INSERT INTO commands (id, application_id, name, description, options) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(*id)
            .bind(app_id)
            .bind(&c.name)
            .bind(&c.description)
            .bind(serde_json::to_string(&c.options).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Commands of bots that are members of the guild: (application, bot account, command).
    pub async fn guild_commands(
        &self,
        guild_id: GuildId,
    ) -> Result<Vec<(i64, UserId, Command)>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.application_id, a.bot_user_id, c.name, c.description, c.options \
             FROM commands c JOIN applications a ON a.id = c.application_id \
             JOIN members m ON m.user_id = a.bot_user_id AND m.guild_id = $1 \
             ORDER BY c.name, c.application_id",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let options: String = r.try_get("options")?;
                Ok((
                    r.try_get("application_id")?,
                    r.try_get("bot_user_id")?,
                    Command {
                        name: r.try_get("name")?,
                        description: r.try_get("description")?,
                        options: serde_json::from_str(&options).unwrap_or_default(),
                    },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    pub async fn app_commands(&self, app_id: i64) -> Result<Vec<Command>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, description, options FROM commands WHERE application_id = $1 \
             ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let options: String = r.try_get("options")?;
                Ok(Command {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    options: serde_json::from_str(&options).unwrap_or_default(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// Records an interaction (its token hashed) at `at`, keyed by its id.
    pub async fn create_interaction(
        &self,
        (id, at): (i64, i64),
        app_id: i64,
        channel_id: ChannelId,
        user_id: UserId,
        command: &str,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO interactions (id, application_id, channel_id, user_id, command, \
             token_hash, replied, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(id)
        .bind(app_id)
        .bind(channel_id)
        .bind(user_id)
        .bind(command)
        .bind(token_hash)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims the one answer of a live interaction; its application and channel.
    pub async fn claim_interaction(
        &self,
        id: i64,
        token_hash: &str,
        not_before: i64,
    ) -> Result<Option<(i64, ChannelId)>, StoreError> {
        let row = sqlx::query(
            "UPDATE interactions SET replied = 1 WHERE id = $1 AND token_hash = $2 \
             AND replied = 0 AND created_at > $3 RETURNING application_id, channel_id",
        )
        .bind(id)
        .bind(token_hash)
        .bind(not_before)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("application_id")?, r.try_get("channel_id")?)))
            .transpose()
            .map_err(StoreError::Db)
    }

    pub async fn create_webhook(
        &self,
        id: i64,
        channel_id: ChannelId,
        creator: UserId,
        account: &User,
        name: &str,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        self.create_user(account).await?;
        sqlx::query(
            "INSERT INTO webhooks (id, channel_id, creator_id, user_id, name, token_hash, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(channel_id)
        .bind(creator)
        .bind(account.id)
        .bind(name)
        .bind(token_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// (channel, account, name) of a webhook whose token matches.
    pub async fn webhook(
        &self,
        id: i64,
        token_hash: Option<&str>,
    ) -> Result<Option<(ChannelId, UserId, String)>, StoreError> {
        let row =
            sqlx::query("SELECT channel_id, user_id, name, token_hash FROM webhooks WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let stored: String = r.try_get("token_hash")?;
        if token_hash.is_some_and(|t| t != stored) {
            return Ok(None);
        }
        Ok(Some((
            r.try_get("channel_id")?,
            r.try_get("user_id")?,
            r.try_get("name")?,
        )))
    }

    pub async fn webhooks(&self, channel_id: ChannelId) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, name FROM webhooks WHERE channel_id = $1 ORDER BY id")
            .bind(channel_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    pub async fn delete_webhook(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
