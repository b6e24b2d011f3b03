//! Presence and voice state in Redis, shared by every chat node of a cluster.
//!
//! Keys, under `<cluster>:presence` and `<cluster>:voice`:
//! - `presence:exp`, a sorted set of `<user>|<session>` by when the entry expires. Nodes
//!   refresh their connected sessions; a node that dies stops refreshing, and whichever
//!   node pops the expired entries first takes those users offline.
//! - `presence:u:<user>`, a hash: `s:<session>` → `1` if that device is idle, else `0`;
//!   `pref` → the user's choice as JSON.
//! - `presence:shown`, a hash: user → `<status>\n<custom status>` as others last saw it
//!   (absent: offline). Recomputing compares with it in the same script, so two nodes
//!   that notice the same change announce it once.
//! - `voice:g:<guild>`, a hash: user → voice state JSON; `voice:u:<user>` → its guild.
//!
//! Scripts touch keys they compute, so this expects one Redis (or one shard), as the
//! rest of the cluster state does.

use redis::aio::ConnectionManager;

use crate::model::presence::{Pref, PresenceView, Status, VoiceState};
use crate::model::{GuildId, UserId};

/// Pops the entries that expired by `ARGV[1]` (at most `ARGV[2]`), removing their
/// devices from the users' hashes.
const POP: &str = r"
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, x in ipairs(m) do
  redis.call('ZREM', KEYS[1], x)
  local i = string.find(x, '|', 1, true)
  redis.call('HDEL', ARGV[3] .. string.sub(x, 1, i - 1), 's:' .. string.sub(x, i + 1))
end
return m
";

/// The status others see, by the rules of `model::presence::effective`; returns the new
/// `<status>\n<custom>` if it changed, else nil.
const RECOMPUTE: &str = r"
local h = redis.call('HGETALL', KEYS[1])
local pref, any, active = nil, false, false
for i = 1, #h, 2 do
  local f, v = h[i], h[i + 1]
  if f == 'pref' then pref = v
  elseif string.sub(f, 1, 2) == 's:' then
    any = true
    if v == '0' then active = true end
  end
end
local status, custom = 'online', ''
if pref then
  local p = cjson.decode(pref)
  if type(p.status) == 'string' then status = p.status end
  if type(p.custom_status) == 'string' then custom = p.custom_status end
end
local eff
if not any or status == 'invisible' or status == 'offline' then eff = 'offline'
elseif status == 'dnd' or status == 'idle' then eff = status
elseif active then eff = 'online'
else eff = 'idle' end
if eff == 'offline' then custom = '' end
local shown = eff .. '\n' .. custom
local before = redis.call('HGET', KEYS[2], ARGV[1])
if eff == 'offline' then
  if not before then return false end
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  if before == shown then return false end
  redis.call('HSET', KEYS[2], ARGV[1], shown)
end
return shown
";

/// Sets a user's voice state (`ARGV`: prefix, user, guild, JSON); returns the one it
/// replaced.
const SET_VOICE: &str = r"
local uk = ARGV[1] .. ':u:' .. ARGV[2]
local old_g = redis.call('GET', uk)
local old = false
if old_g then
  old = redis.call('HGET', ARGV[1] .. ':g:' .. old_g, ARGV[2])
  if old_g ~= ARGV[3] then redis.call('HDEL', ARGV[1] .. ':g:' .. old_g, ARGV[2]) end
end
redis.call('HSET', ARGV[1] .. ':g:' .. ARGV[3], ARGV[2], ARGV[4])
redis.call('SET', uk, ARGV[3])
return old
";

/// Removes a user's voice state if session `ARGV[3]` holds it; returns it.
const CLEAR_VOICE: &str = r"
local uk = ARGV[1] .. ':u:' .. ARGV[2]
local g = redis.call('GET', uk)
if not g then return false end
local gk = ARGV[1] .. ':g:' .. g
local v = redis.call('HGET', gk, ARGV[2])
if not v then
  redis.call('DEL', uk)
  return false
end
if cjson.decode(v).session_id ~= ARGV[3] then return false end
redis.call('HDEL', gk, ARGV[2])
redis.call('DEL', uk)
return v
";

pub struct RedisPresence {
    conn: ConnectionManager,
    presence: String,
    voice: String,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.presence)
            .finish()
    }
}

type R<T> = Result<T, redis::RedisError>;

fn parse_shown(user: UserId, shown: &str) -> Option<PresenceView> {
    let (status, custom) = shown.split_once('\n')?;
    Some(PresenceView {
        user_id: user.to_string(),
        status: Status::parse(status)?,
        custom_status: (!custom.is_empty()).then(|| custom.to_owned()),
    })
}

impl RedisPresence {
    pub fn new(conn: ConnectionManager, cluster: &str) -> RedisPresence {
        RedisPresence {
            conn,
            presence: format!("{cluster}:presence"),
            voice: format!("{cluster}:voice"),
        }
    }

    fn exp(&self) -> String {
        format!("{}:exp", self.presence)
    }

    fn user(&self, user: UserId) -> String {
        format!("{}:u:{user}", self.presence)
    }

    fn shown(&self) -> String {
        format!("{}:shown", self.presence)
    }

    pub async fn put_session(
        &self,
        user: UserId,
        session: &str,
        idle: bool,
        expires: i64,
    ) -> R<()> {
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(self.exp(), format!("{user}|{session}"), expires)
            .hset(
                self.user(user),
                format!("s:{session}"),
                if idle { "1" } else { "0" },
            )
            .query_async(&mut c)
            .await
    }

    /// Refreshes many sessions at once: `(user, session, idle, expires)`.
    pub async fn put_sessions(&self, all: &[(UserId, String, bool, i64)]) -> R<()> {
        if all.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for (user, session, idle, expires) in all {
            p.zadd(self.exp(), format!("{user}|{session}"), *expires)
                .ignore()
                .hset(
                    self.user(*user),
                    format!("s:{session}"),
                    if *idle { "1" } else { "0" },
                )
                .ignore();
        }
        let mut c = self.conn.clone();
        p.query_async(&mut c).await
    }

    pub async fn drop_session(&self, user: UserId, session: &str) -> R<()> {
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(self.exp(), format!("{user}|{session}"))
            .hdel(self.user(user), format!("s:{session}"))
            .query_async(&mut c)
            .await
    }

    pub async fn put_pref(&self, user: UserId, pref: &Pref) -> R<()> {
        let json = serde_json::to_string(pref).unwrap_or_default();
        let mut c = self.conn.clone();
        redis::cmd("HSET")
            .arg(self.user(user))
            .arg("pref")
            .arg(json)
            .query_async(&mut c)
            .await
    }

    pub async fn pop_expired(&self, now: i64) -> R<Vec<(UserId, String)>> {
        let mut c = self.conn.clone();
        let popped: Vec<String> = redis::Script::new(POP)
            .key(self.exp())
            .arg(now)
            .arg(256)
            .arg(format!("{}:u:", self.presence))
            .invoke_async(&mut c)
            .await?;
        Ok(popped
            .iter()
            .filter_map(|m| {
                let (u, s) = m.split_once('|')?;
                Some((UserId(u.parse().ok()?), s.to_owned()))
            })
            .collect())
    }

    pub async fn recompute(&self, user: UserId) -> R<Option<PresenceView>> {
        let mut c = self.conn.clone();
        let shown: Option<String> = redis::Script::new(RECOMPUTE)
            .key(self.user(user))
            .key(self.shown())
            .arg(user.0)
            .invoke_async(&mut c)
            .await?;
        Ok(shown.and_then(|s| parse_shown(user, &s)))
    }

    pub async fn has_device(&self, user: UserId) -> R<bool> {
        let mut c = self.conn.clone();
        let fields: Vec<String> = redis::cmd("HKEYS")
            .arg(self.user(user))
            .query_async(&mut c)
            .await?;
        Ok(fields.iter().any(|f| f.starts_with("s:")))
    }

    pub async fn views(&self, users: &[UserId]) -> R<Vec<PresenceView>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.shown());
        for u in users {
            cmd.arg(u.0);
        }
        let shown: Vec<Option<String>> = cmd.query_async(&mut c).await?;
        Ok(users
            .iter()
            .zip(shown)
            .filter_map(|(u, s)| parse_shown(*u, s.as_deref()?))
            .collect())
    }

    pub async fn set_voice(&self, v: &VoiceState) -> R<Option<VoiceState>> {
        let json = serde_json::to_string(v).unwrap_or_default();
        let mut c = self.conn.clone();
        let old: Option<String> = redis::Script::new(SET_VOICE)
            .arg(&self.voice)
            .arg(v.user_id.0)
            .arg(v.guild_id.0)
            .arg(json)
            .invoke_async(&mut c)
            .await?;
        Ok(old.and_then(|o| serde_json::from_str(&o).ok()))
    }

    pub async fn voice_of(&self, user: UserId) -> R<Option<VoiceState>> {
        let mut c = self.conn.clone();
        let guild: Option<i64> = redis::cmd("GET")
            .arg(format!("{}:u:{user}", self.voice))
            .query_async(&mut c)
            .await?;
        let Some(g) = guild else { return Ok(None) };
        let v: Option<String> = redis::cmd("HGET")
            .arg(format!("{}:g:{g}", self.voice))
            .arg(user.0)
            .query_async(&mut c)
            .await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    pub async fn clear_voice(&self, user: UserId, session: &str) -> R<Option<VoiceState>> {
        let mut c = self.conn.clone();
        let old: Option<String> = redis::Script::new(CLEAR_VOICE)
            .arg(&self.voice)
            .arg(user.0)
            .arg(session)
            .invoke_async(&mut c)
            .await?;
        Ok(old.and_then(|o| serde_json::from_str(&o).ok()))
    }

    pub async fn voice_in(&self, guild: GuildId) -> R<Vec<VoiceState>> {
        let mut c = self.conn.clone();
        let all: Vec<String> = redis::cmd("HVALS")
            .arg(format!("{}:g:{guild}", self.voice))
            .query_async(&mut c)
            .await?;
        Ok(all
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect())
    }
}
