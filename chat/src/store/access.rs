//! What a request's permission check reads, each in one round trip: it runs before
//! nearly every request, and on SQLite every statement is a hand-off to the
//! connection's thread and back.

use sqlx::Row;

use crate::model::perms::{Overwrite, Perms};
use crate::model::{ChannelId, GuildId, RoleId, UserId};
use crate::store::guilds::{Channel, Membership, channel_from, overwrite_from};
use crate::store::{Store, StoreError};

impl Store {
    pub async fn membership(
        &self,
        guild_id: GuildId,
        user_id: UserId,
    ) -> Result<Option<Membership>, StoreError> {
        // One round trip (this runs before nearly every request): the guild's owner
        // and @everyone permissions, whether the user is a member, and their roles.
        let rows = sqlx::query(
            "SELECT CAST(0 AS BIGINT) AS k, g.owner_id AS id, r.permissions AS permissions \
             FROM guilds g JOIN roles r ON r.id = g.id WHERE g.id = $1 \
             UNION ALL \
             SELECT CAST(1 AS BIGINT), m.user_id, CAST(0 AS BIGINT) FROM members m \
             WHERE m.guild_id = $1 AND m.user_id = $2 \
             UNION ALL \
             SELECT CAST(2 AS BIGINT), r.id, r.permissions FROM roles r \
             JOIN member_roles mr ON mr.role_id = r.id \
             WHERE mr.guild_id = $1 AND mr.user_id = $2",
        )
        .bind(guild_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let (mut guild, mut member, mut roles) = (None, false, Vec::new());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let perms = Perms(r.try_get::<i64, _>("permissions")? as u64);
            match r.try_get::<i64, _>("k")? {
                0 => guild = Some((UserId(id), perms)),
                1 => member = true,
                _ => roles.push((RoleId(id), perms)),
            }
        }
        let Some((owner, everyone)) = guild.filter(|_| member) else {
            return Ok(None);
        };
        Ok(Some(Membership {
            is_owner: owner == user_id,
            everyone,
            roles,
        }))
    }

    /// A channel and the permission overwrites that apply in it (a thread's come from
    /// its parent channel); a DM's recipients.
    pub async fn channel_access(
        &self,
        id: ChannelId,
    ) -> Result<Option<(Channel, Vec<Overwrite>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.guild_id, c.kind, c.name, c.parent_id, c.position, c.user_limit, \
             c.owner_id, c.starter_message_id, c.archived, c.dm_key, \
             o.target_kind, o.target_id, o.allow_bits, o.deny_bits \
             FROM channels c LEFT JOIN overwrites o ON o.channel_id = \
             CASE WHEN c.kind = 'thread' AND c.parent_id IS NOT NULL THEN c.parent_id ELSE c.id END \
             WHERE c.id = $1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut c = channel_from(first)?;
        let mut overwrites = Vec::new();
        for r in &rows {
            if r.try_get::<Option<String>, _>("target_kind")?.is_some() {
                overwrites.push(overwrite_from(r)?);
            }
        }
        if c.is_dm() {
            c.recipients = self.recipients(c.id).await?;
        }
        Ok(Some((c, overwrites)))
    }
}
