//! Members, bans, roles, overwrites, channel edits and invites in the [`Store`].

use sqlx::Row;

use crate::model::perms::{Overwrite, Perms, Target};
use crate::model::{ChannelId, GuildId, RoleId, UserId};
use crate::store::guilds::Channel;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub joined_at: i64,
    pub roles: Vec<RoleId>,
    /// Server-muted by a moderator, in every voice channel of the guild.
    pub server_mute: bool,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub id: RoleId,
    pub guild_id: GuildId,
    pub name: String,
    pub permissions: Perms,
    pub position: i64,
}

#[derive(Debug, Clone)]
pub struct Ban {
    pub user_id: UserId,
    pub reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct Invite {
    pub code: String,
    pub guild_id: GuildId,
    pub creator_id: UserId,
    pub uses: i64,
    pub max_uses: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// Why an invite cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteRefusal {
    Unknown,
    Expired,
    UsedUp,
}

fn role_from(r: &sqlx::any::AnyRow) -> Result<Role, sqlx::Error> {
    Ok(Role {
        id: r.try_get("id")?,
        guild_id: r.try_get("guild_id")?,
        name: r.try_get("name")?,
        permissions: Perms(r.try_get::<i64, _>("permissions")? as u64),
        position: r.try_get("position")?,
    })
}

fn invite_from(r: &sqlx::any::AnyRow) -> Result<Invite, sqlx::Error> {
    Ok(Invite {
        code: r.try_get("code")?,
        guild_id: r.try_get("guild_id")?,
        creator_id: r.try_get("creator_id")?,
        uses: r.try_get("uses")?,
        max_uses: r.try_get("max_uses")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// The users among `ids` and `usernames` (any case), in one query: `(id, lowercased
    /// username)`. With a guild, only its members.
    pub async fn users_named(
        &self,
        guild_id: Option<GuildId>,
        ids: &[UserId],
        usernames: &[String],
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        if ids.is_empty() && usernames.is_empty() {
            return Ok(Vec::new());
        }
        let mut n = 0;
        let mut params = |k: usize, wrap: &str| {
            (0..k)
                .map(|_| {
                    n += 1;
                    wrap.replace('?', &format!("${n}"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = String::from("SELECT u.id, lower(u.username) AS name FROM users u");
        if guild_id.is_some() {
            sql.push_str(" JOIN members m ON m.user_id = u.id AND m.guild_id = ");
            sql.push_str(&params(1, "?"));
        }
        let mut any = Vec::new();
        if !ids.is_empty() {
            any.push(format!("u.id IN ({})", params(ids.len(), "?")));
        }
        if !usernames.is_empty() {
            any.push(format!(
                "lower(u.username) IN ({})",
                params(usernames.len(), "lower(?)")
            ));
        }
        sql.push_str(" WHERE ");
        sql.push_str(&any.join(" OR "));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(g) = guild_id {
            q = q.bind(g);
        }
        for id in ids {
            q = q.bind(*id);
        }
        for name in usernames {
            q = q.bind(name.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// The member's standing in a guild; `None` if not a member.
    /// A page of members ordered by user id, after `after`.
    pub async fn members(
        &self,
        guild_id: GuildId,
        after: UserId,
        limit: i64,
    ) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.username, u.display_name, m.joined_at, m.server_mute \
             FROM members m \
             JOIN users u ON u.id = m.user_id WHERE m.guild_id = $1 AND m.user_id > $2 \
             ORDER BY m.user_id LIMIT $3",
        )
        .bind(guild_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let user_id: UserId = r.try_get("user_id")?;
            out.push(Member {
                user_id,
                username: r.try_get("username")?,
                display_name: r.try_get("display_name")?,
                joined_at: r.try_get("joined_at")?,
                roles: self.member_role_ids(guild_id, user_id).await?,
                server_mute: r.try_get::<i64, _>("server_mute")? != 0,
            });
        }
        Ok(out)
    }

    pub async fn member(
        &self,
        guild_id: GuildId,
        user_id: UserId,
    ) -> Result<Option<Member>, StoreError> {
        let page = self.members(guild_id, UserId(user_id.0 - 1), 1).await?;
        Ok(page.into_iter().find(|m| m.user_id == user_id))
    }

    async fn member_role_ids(
        &self,
        guild_id: GuildId,
        user_id: UserId,
    ) -> Result<Vec<RoleId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT role_id FROM member_roles WHERE guild_id = $1 AND user_id = $2 \
             ORDER BY role_id",
        )
        .bind(guild_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Server-mutes a member (or lifts it); false if they are not one.
    pub async fn set_server_mute(
        &self,
        guild_id: GuildId,
        user_id: UserId,
        muted: bool,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE members SET server_mute = $1 WHERE guild_id = $2 AND user_id = $3")
                .bind(i64::from(muted))
                .bind(guild_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a member (leave or kick); false if they were not one.
    pub async fn remove_member(
        &self,
        guild_id: GuildId,
        user_id: UserId,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM member_roles WHERE guild_id = $1 AND user_id = $2")
            .bind(guild_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM members WHERE guild_id = $1 AND user_id = $2")
            .bind(guild_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Bans a user, removing their membership, in one transaction.
    pub async fn ban(
        &self,
        guild_id: GuildId,
        user_id: UserId,
        reason: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM bans WHERE guild_id = $1 AND user_id = $2")
            .bind(guild_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO bans (guild_id, user_id, reason, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(guild_id)
        .bind(user_id)
        .bind(reason)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM member_roles WHERE guild_id = $1 AND user_id = $2")
            .bind(guild_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM members WHERE guild_id = $1 AND user_id = $2")
            .bind(guild_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts a ban; false if there was none.
    pub async fn unban(&self, guild_id: GuildId, user_id: UserId) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM bans WHERE guild_id = $1 AND user_id = $2")
            .bind(guild_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn is_banned(&self, guild_id: GuildId, user_id: UserId) -> Result<bool, StoreError> {
        let r: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM bans WHERE guild_id = $1 AND user_id = $2")
                .bind(guild_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.is_some())
    }

    pub async fn bans(&self, guild_id: GuildId) -> Result<Vec<Ban>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, reason, created_at FROM bans WHERE guild_id = $1 ORDER BY user_id",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Ban {
                    user_id: r.try_get("user_id")?,
                    reason: r.try_get("reason")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// The guild's roles, `@everyone` (position 0) first.
    pub async fn roles(&self, guild_id: GuildId) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, guild_id, name, permissions, position FROM roles WHERE guild_id = $1 \
             ORDER BY position, id",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(role_from).collect::<Result<_, _>>()?)
    }

    pub async fn role(&self, guild_id: GuildId, id: RoleId) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(
            "SELECT id, guild_id, name, permissions, position FROM roles \
             WHERE guild_id = $1 AND id = $2",
        )
        .bind(guild_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| role_from(&r)).transpose()?)
    }

    pub async fn create_role(&self, r: &Role) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO roles (id, guild_id, name, permissions, position) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id)
        .bind(r.guild_id)
        .bind(&r.name)
        .bind(r.permissions.0 as i64)
        .bind(r.position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn update_role(&self, r: &Role) -> Result<(), StoreError> {
        sqlx::query("UPDATE roles SET name = $1, permissions = $2, position = $3 WHERE id = $4")
            .bind(&r.name)
            .bind(r.permissions.0 as i64)
            .bind(r.position)
            .bind(r.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_role(&self, id: RoleId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM overwrites WHERE target_kind = 'role' AND target_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives or takes a role; false if nothing changed.
    pub async fn set_member_role(
        &self,
        guild_id: GuildId,
        user_id: UserId,
        role_id: RoleId,
        on: bool,
    ) -> Result<bool, StoreError> {
        let r = if on {
            sqlx::query(
                "INSERT INTO member_roles (guild_id, user_id, role_id) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
        } else {
            sqlx::query(
                "DELETE FROM member_roles WHERE guild_id = $1 AND user_id = $2 AND role_id = $3",
            )
        }
        .bind(guild_id)
        .bind(user_id)
        .bind(role_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sets (or, with `None`, removes) a channel's overwrite for a role or member.
    pub async fn set_overwrite(
        &self,
        channel_id: ChannelId,
        target: Target,
        bits: Option<(Perms, Perms)>,
    ) -> Result<(), StoreError> {
        let (kind, id) = match target {
            Target::Role(id) => ("role", id.0),
            Target::Member(id) => ("member", id.0),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM overwrites WHERE channel_id = $1 AND target_kind = $2 AND target_id = $3",
        )
        .bind(channel_id)
        .bind(kind)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some((allow, deny)) = bits {
            sqlx::query(
                "INSERT INTO overwrites (channel_id, target_kind, target_id, allow_bits, \
                 deny_bits) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(channel_id)
            .bind(kind)
            .bind(id)
            .bind(allow.0 as i64)
            .bind(deny.0 as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a channel's name, parent, position, cap, archived flag and owner.
    pub async fn update_channel(&self, c: &Channel) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE channels SET name = $1, parent_id = $2, position = $3, user_limit = $4, \
             archived = $5, owner_id = $6 WHERE id = $7",
        )
        .bind(&c.name)
        .bind(c.parent_id)
        .bind(c.position)
        .bind(c.user_limit)
        .bind(i64::from(c.archived))
        .bind(c.owner_id)
        .bind(c.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a channel with its threads; a category's children move to the top level.
    pub async fn delete_channel(&self, id: ChannelId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM channels WHERE parent_id = $1 AND kind = 'thread'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE channels SET parent_id = NULL WHERE parent_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM channels WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_invite(&self, i: &Invite) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO invites (code, guild_id, creator_id, uses, max_uses, expires_at, \
             created_at) VALUES ($1, $2, $3, 0, $4, $5, $6)",
        )
        .bind(&i.code)
        .bind(i.guild_id)
        .bind(i.creator_id)
        .bind(i.max_uses)
        .bind(i.expires_at)
        .bind(i.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn invite(&self, code: &str) -> Result<Option<Invite>, StoreError> {
        let row = sqlx::query(
            "SELECT code, guild_id, creator_id, uses, max_uses, expires_at, created_at \
             FROM invites WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| invite_from(&r)).transpose()?)
    }

    pub async fn invites(&self, guild_id: GuildId) -> Result<Vec<Invite>, StoreError> {
        let rows = sqlx::query(
            "SELECT code, guild_id, creator_id, uses, max_uses, expires_at, created_at \
             FROM invites WHERE guild_id = $1 ORDER BY created_at",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(invite_from).collect::<Result<_, _>>()?)
    }

    pub async fn delete_invite(&self, code: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM invites WHERE code = $1")
            .bind(code)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Counts a use of an invite, atomically within its limits; the guild it leads to.
    pub async fn use_invite(
        &self,
        code: &str,
        now: i64,
    ) -> Result<Result<GuildId, InviteRefusal>, StoreError> {
        let used: Option<GuildId> = sqlx::query_scalar(
            "UPDATE invites SET uses = uses + 1 WHERE code = $1 \
             AND (expires_at IS NULL OR expires_at > $2) \
             AND (max_uses IS NULL OR uses < max_uses) RETURNING guild_id",
        )
        .bind(code)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(g) = used {
            return Ok(Ok(g));
        }
        Ok(Err(match self.invite(code).await? {
            None => InviteRefusal::Unknown,
            Some(i) if i.expires_at.is_some_and(|e| e <= now) => InviteRefusal::Expired,
            Some(_) => InviteRefusal::UsedUp,
        }))
    }
}

/// Overwrites in API form.
pub fn overwrite_target(kind: &str, id: i64) -> Option<Target> {
    match kind {
        "role" => Some(Target::Role(RoleId(id))),
        "member" => Some(Target::Member(UserId(id))),
        _ => None,
    }
}

pub fn overwrite_kind(o: &Overwrite) -> (&'static str, i64) {
    match o.target {
        Target::Role(id) => ("role", id.0),
        Target::Member(id) => ("member", id.0),
    }
}
