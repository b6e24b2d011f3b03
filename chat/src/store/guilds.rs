//! Guilds, channels, members, messages and invites in the [`Store`].

use std::collections::{HashMap, HashSet};

use sqlx::{Executor, Row};

use crate::model::ChannelKind;
use crate::model::perms::{MemberPerms, Overwrite, Perms, Target, channel_perms};
use crate::model::{ChannelId, GuildId, Mention, MessageId, RoleId, UserId};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct Guild {
    pub id: GuildId,
    pub name: String,
    pub owner_id: UserId,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Channel {
    pub id: ChannelId,
    /// 0 for DMs and group DMs.
    pub guild_id: GuildId,
    pub kind: ChannelKind,
    pub name: String,
    /// A category, or a thread's text channel.
    pub parent_id: Option<ChannelId>,
    pub position: i64,
    /// Voice channels: the participant cap.
    pub user_limit: Option<i64>,
    /// A group DM's owner, a thread's creator.
    pub owner_id: Option<UserId>,
    /// A thread's first message, in its parent channel.
    pub starter_message_id: Option<MessageId>,
    pub archived: bool,
    /// A one-to-one DM's pair of users, `low:high`: one DM per pair.
    pub dm_key: Option<String>,
    /// DMs and group DMs: who is in it (loaded with the channel).
    pub recipients: Vec<UserId>,
}

impl Channel {
    pub fn is_dm(&self) -> bool {
        self.guild_id == GuildId(0)
    }

    /// The channel whose overwrites decide who sees this one: a thread follows its
    /// parent.
    pub fn perms_channel(&self) -> ChannelId {
        if self.kind == ChannelKind::Thread {
            self.parent_id.unwrap_or(self.id)
        } else {
            self.id
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Message {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub content: String,
    pub reply_to: Option<MessageId>,
    pub edited_at: Option<i64>,
    pub created_at: i64,
    pub pinned_at: Option<i64>,
    pub mention_everyone: bool,
    /// Resolved mentions.
    pub mentions: Vec<Mention>,
    pub attachments: Vec<crate::store::attachments::Attachment>,
}

/// Where a page of history is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Latest,
    Before(MessageId),
    After(MessageId),
    Around(MessageId),
}

/// What permissions need to know about a member.
#[derive(Debug, Clone)]
pub struct Membership {
    pub is_owner: bool,
    pub everyone: Perms,
    pub roles: Vec<(RoleId, Perms)>,
}

pub(crate) fn message_from(r: &sqlx::any::AnyRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: r.try_get("id")?,
        channel_id: r.try_get("channel_id")?,
        author_id: r.try_get("author_id")?,
        content: r.try_get("content")?,
        reply_to: r.try_get("reply_to")?,
        edited_at: r.try_get("edited_at")?,
        created_at: r.try_get("created_at")?,
        pinned_at: r.try_get("pinned_at")?,
        mention_everyone: r.try_get::<i64, _>("mention_everyone")? != 0,
        mentions: Vec::new(),
        attachments: Vec::new(),
    })
}

pub(super) fn channel_from(r: &sqlx::any::AnyRow) -> Result<Channel, sqlx::Error> {
    Ok(Channel {
        id: r.try_get("id")?,
        guild_id: r
            .try_get::<Option<GuildId>, _>("guild_id")?
            .unwrap_or(GuildId(0)),
        kind: {
            let k: String = r.try_get("kind")?;
            ChannelKind::parse(&k)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown channel kind {k:?}").into()))?
        },
        name: r.try_get("name")?,
        parent_id: r.try_get("parent_id")?,
        position: r.try_get("position")?,
        user_limit: r.try_get("user_limit")?,
        owner_id: r.try_get("owner_id")?,
        starter_message_id: r.try_get("starter_message_id")?,
        archived: r.try_get::<i64, _>("archived")? != 0,
        dm_key: r.try_get("dm_key")?,
        recipients: Vec::new(),
    })
}

/// Everything needed to resolve any member's channel permissions in a guild, loaded in
/// a few queries: for ready, and for refreshing every connected member after a change.
#[derive(Debug, Clone)]
pub struct GuildAccess {
    pub guild: Guild,
    pub everyone: Perms,
    pub channels: Vec<(Channel, Vec<Overwrite>)>,
    /// Each member's roles.
    pub members: HashMap<UserId, Vec<(RoleId, Perms)>>,
}

impl GuildAccess {
    /// The member's standing; `None` if not a member.
    pub fn member(&self, user_id: UserId) -> Option<MemberPerms<'_>> {
        self.members.get(&user_id).map(|roles| MemberPerms {
            user_id,
            is_owner: self.guild.owner_id == user_id,
            everyone: self.everyone,
            roles,
        })
    }

    /// The channels the member can view; `None` if not a member.
    pub fn visible(&self, user_id: UserId) -> Option<HashSet<ChannelId>> {
        let m = self.member(user_id)?;
        // A thread follows its parent channel's overwrites.
        let overwrites = |c: &Channel| {
            let pid = c.perms_channel();
            self.channels
                .iter()
                .find(|(p, _)| p.id == pid)
                .map_or(&[][..], |(_, ow)| ow.as_slice())
        };
        Some(
            self.channels
                .iter()
                .filter(|(c, _)| {
                    channel_perms(&m, self.guild.id, overwrites(c)).contains(Perms::VIEW_CHANNEL)
                })
                .map(|(c, _)| c.id)
                .collect(),
        )
    }
}

pub(super) fn overwrite_from(r: &sqlx::any::AnyRow) -> Result<Overwrite, sqlx::Error> {
    let id: i64 = r.try_get("target_id")?;
    let kind: String = r.try_get("target_kind")?;
    Ok(Overwrite {
        target: if kind == "member" {
            Target::Member(UserId(id))
        } else {
            Target::Role(RoleId(id))
        },
        allow: Perms(r.try_get::<i64, _>("allow_bits")? as u64),
        deny: Perms(r.try_get::<i64, _>("deny_bits")? as u64),
    })
}

/// The `messages` columns a [`Message`] is read from.
#[macro_export]
macro_rules! message_columns {
    () => {
        "id, channel_id, author_id, content, reply_to, edited_at, created_at, pinned_at, \
         mention_everyone"
    };
}

impl Store {
    /// Creates a guild with its `@everyone` role, its owner as first member, and its
    /// first channels, in one transaction.
    pub async fn create_guild(
        &self,
        g: &Guild,
        everyone: Perms,
        channels: &[Channel],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO guilds (id, name, owner_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(g.id)
            .bind(&g.name)
            .bind(g.owner_id)
            .bind(g.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO roles (id, guild_id, name, permissions, position) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(g.id.everyone_role())
        .bind(g.id)
        .bind("@everyone")
        .bind(everyone.0 as i64)
        .bind(0_i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO members (guild_id, user_id, joined_at) VALUES ($1, $2, $3)")
            .bind(g.id)
            .bind(g.owner_id)
            .bind(g.created_at)
            .execute(&mut *tx)
            .await?;
        for c in channels {
            insert_channel(&mut *tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn guild(&self, id: GuildId) -> Result<Option<Guild>, StoreError> {
        let row = sqlx::query("SELECT id, name, owner_id, created_at FROM guilds WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Guild {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                owner_id: r.try_get("owner_id")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
        .map_err(StoreError::Db)
    }

    pub async fn rename_guild(&self, id: GuildId, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE guilds SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_guild(&self, id: GuildId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM guilds WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many members a guild has.
    pub async fn member_count(&self, guild_id: GuildId) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE guild_id = $1")
                .bind(guild_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The guilds the user is a member of.
    pub async fn user_guilds(&self, user_id: UserId) -> Result<Vec<GuildId>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT guild_id FROM members WHERE user_id = $1 ORDER BY guild_id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn guild_access(&self, guild_id: GuildId) -> Result<Option<GuildAccess>, StoreError> {
        let Some(guild) = self.guild(guild_id).await? else {
            return Ok(None);
        };
        let everyone: i64 = sqlx::query_scalar("SELECT permissions FROM roles WHERE id = $1")
            .bind(guild_id)
            .fetch_one(&self.pool)
            .await?;
        let mut overwrites: HashMap<ChannelId, Vec<Overwrite>> = HashMap::new();
        let rows = sqlx::query(
            "SELECT o.channel_id, o.target_kind, o.target_id, o.allow_bits, o.deny_bits \
             FROM overwrites o JOIN channels c ON c.id = o.channel_id WHERE c.guild_id = $1",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            overwrites
                .entry(r.try_get("channel_id")?)
                .or_default()
                .push(overwrite_from(r)?);
        }
        let channels = self
            .channels(guild_id)
            .await?
            .into_iter()
            .map(|c| {
                let ow = overwrites.remove(&c.id).unwrap_or_default();
                (c, ow)
            })
            .collect();
        let mut members: HashMap<UserId, Vec<(RoleId, Perms)>> = HashMap::new();
        let ids: Vec<UserId> =
            sqlx::query_scalar("SELECT user_id FROM members WHERE guild_id = $1")
                .bind(guild_id)
                .fetch_all(&self.pool)
                .await?;
        for id in ids {
            members.insert(id, Vec::new());
        }
        let rows = sqlx::query(
            "SELECT m.user_id, r.id, r.permissions FROM member_roles m \
             JOIN roles r ON r.id = m.role_id WHERE m.guild_id = $1",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let user: UserId = r.try_get("user_id")?;
            let role: (RoleId, Perms) = (
                r.try_get("id")?,
                Perms(r.try_get::<i64, _>("permissions")? as u64),
            );
            members.entry(user).or_default().push(role);
        }
        Ok(Some(GuildAccess {
            guild,
            everyone: Perms(everyone as u64),
            channels,
            members,
        }))
    }

    pub async fn add_member(
        &self,
        guild_id: GuildId,
        user_id: UserId,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO members (guild_id, user_id, joined_at) VALUES ($1, $2, $3)")
            .bind(guild_id)
            .bind(user_id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_db)?;
        Ok(())
    }

    pub async fn create_channel(&self, c: &Channel) -> Result<(), StoreError> {
        insert_channel(&self.pool, c).await
    }

    pub async fn channel(&self, id: ChannelId) -> Result<Option<Channel>, StoreError> {
        let row = sqlx::query(
            "SELECT id, guild_id, kind, name, parent_id, position, user_limit, owner_id, \
             starter_message_id, archived, dm_key FROM channels WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(mut c) = row.map(|r| channel_from(&r)).transpose()? else {
            return Ok(None);
        };
        if c.is_dm() {
            c.recipients = self.recipients(c.id).await?;
        }
        Ok(Some(c))
    }

    /// A DM's or group DM's members, in the order they were added.
    pub async fn recipients(&self, channel_id: ChannelId) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM dm_recipients WHERE channel_id = $1 ORDER BY added_at, user_id",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn channels(&self, guild_id: GuildId) -> Result<Vec<Channel>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, guild_id, kind, name, parent_id, position, user_limit, owner_id, \
             starter_message_id, archived, dm_key FROM channels WHERE guild_id = $1 \
             ORDER BY position, id",
        )
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(channel_from).collect::<Result<_, _>>()?)
    }

    pub async fn overwrites(&self, channel_id: ChannelId) -> Result<Vec<Overwrite>, StoreError> {
        let rows = sqlx::query(
            "SELECT target_kind, target_id, allow_bits, deny_bits FROM overwrites \
             WHERE channel_id = $1",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(overwrite_from)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }
}

pub(crate) async fn insert_channel<'e, E>(exec: E, c: &Channel) -> Result<(), StoreError>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO channels (id, guild_id, kind, name, parent_id, position, user_limit, \
         owner_id, starter_message_id, archived, dm_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.id)
    .bind((c.guild_id != GuildId(0)).then_some(c.guild_id))
    .bind(c.kind.as_str())
    .bind(&c.name)
    .bind(c.parent_id)
    .bind(c.position)
    .bind(c.user_limit)
    .bind(c.owner_id)
    .bind(c.starter_message_id)
    .bind(i64::from(c.archived))
    .bind(&c.dm_key)
    .execute(exec)
    .await
    .map_err(StoreError::from_db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_seen_by_whoever_sees_their_channel() {
        let guild = Guild {
            id: GuildId(1),
            name: "g".into(),
            owner_id: UserId(9),
            created_at: 0,
        };
        let text = Channel {
            id: ChannelId(10),
            guild_id: GuildId(1),
            kind: ChannelKind::Text,
            ..Channel::default()
        };
        let thread = Channel {
            id: ChannelId(11),
            guild_id: GuildId(1),
            kind: ChannelKind::Thread,
            parent_id: Some(ChannelId(10)),
            ..Channel::default()
        };
        let hidden = vec![Overwrite {
            target: Target::Role(RoleId(1)),
            allow: Perms(0),
            deny: Perms::VIEW_CHANNEL,
        }];
        let access = GuildAccess {
            guild,
            everyone: Perms::DEFAULT_EVERYONE,
            channels: vec![(text.clone(), hidden), (thread.clone(), Vec::new())],
            members: HashMap::from([(UserId(5), Vec::new()), (UserId(9), Vec::new())]),
        };
        assert!(
            access.visible(UserId(5)).unwrap().is_empty(),
            "the thread follows its channel"
        );
        assert_eq!(
            access.visible(UserId(9)).unwrap().len(),
            2,
            "the owner sees both"
        );
        assert!(access.visible(UserId(77)).is_none(), "not a member");
    }
}
