//! The cluster's shared state in Redis: which SFU nodes are alive and how loaded they are,
//! and which node hosts each room.
//!
//! Keys, under the cluster's name (`parlor` by default, so that several clusters can
//! share one Redis):
//! - `<cluster>:nodes`: the set of node ids ever announced (pruned as their entries lapse);
//! - `<cluster>:node:<id>`: the node's [`NodeInfo`] as JSON, set by its heartbeat with a
//!   TTL, so a node that dies drops out within the TTL;
//! - `<cluster>:room:<room>`: the id of the node hosting the room.
//! - `<cluster>:conn:room:<room>` and `<cluster>:conn:user:<identity>`: who is connected
//!   where, as sorted sets whose scores are expiry times (ms). Signaling nodes refresh
//!   their participants' entries every second; a node that dies leaves entries that
//!   expire within the TTL, and readers skip expired ones. Set once, atomically, by
//!   whoever places the room first; replaced (atomically) only when that node is gone;
//!   deleted by the node when the room empties.

use std::time::Duration;

use rand::seq::IndexedRandom;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// What an SFU node announces about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// A label such as `eu-west`; rooms are placed within the region a join asks for.
    pub region: String,
    /// The media addresses its ICE candidates carry.
    pub media: Vec<String>,
    /// Participants it is meant to hold.
    pub capacity: u32,
    pub load: NodeLoad,
    /// Draining for a restart: it takes no new rooms.
    pub draining: bool,
}

/// A node's load, measured over its last heartbeat interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub participants: u32,
    pub rooms: u32,
    /// Share of one core the process used.
    pub cpu: f64,
    /// RTP packets forwarded per second.
    pub forwarded_pps: f64,
    pub tracks: u32,
}

impl NodeInfo {
    /// How full the node is, 0 (idle) to 1 (at capacity): the larger of its participant
    /// share and its CPU over the cores it may use.
    pub fn score(&self) -> f64 {
        let seats = f64::from(self.load.participants) / f64::from(self.capacity.max(1));
        seats.max(self.load.cpu)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no SFU node is available")]
    NoNodes,
}

/// Sets the room's node to `ARGV[2]` if it is still `ARGV[1]` (`""`: unset); returns
/// the room's node afterwards.
const PLACE: &str = r"
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return cur
";

/// Takes a seat in a room for identity `ARGV[1]` unless the room has `ARGV[4]` seats
/// taken: drops seats that expired before `ARGV[2]`, and holds this one until `ARGV[3]`.
/// An identity that holds a seat keeps it (a session replacing an older one). 1 if seated.
const TAKE_SEAT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// How long a seat outlives its SFU node's last refresh (refreshed every heartbeat).
pub const SEAT_TTL: Duration = Duration::from_secs(3);

/// Deletes the room's placement if it is still `ARGV[1]`.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The registry, over one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct Registry {
    redis: ConnectionManager,
    ttl: Duration,
    cluster: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("cluster", &self.cluster)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Registry {
    /// Connects to Redis, for the cluster named `cluster`. A node entry lives `ttl` past
    /// its last heartbeat.
    pub async fn connect(
        url: &str,
        ttl: Duration,
        cluster: &str,
    ) -> Result<Registry, RegistryError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let redis = ConnectionManager::new_with_config(client, config).await?;
        Ok(Registry {
            redis,
            ttl,
            cluster: cluster.to_owned(),
        })
    }

    /// The cluster's name: the prefix of its keys and NATS subjects.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.cluster)
    }

    fn node_key(&self, id: &str) -> String {
        format!("{}:node:{id}", self.cluster)
    }

    fn room_key(&self, room: &str) -> String {
        format!("{}:room:{room}", self.cluster)
    }

    /// Announces a node, or refreshes its entry.
    pub async fn heartbeat(&self, info: &NodeInfo) -> Result<(), RegistryError> {
        let mut c = self.redis.clone();
        let json = serde_json::to_string(info).unwrap_or_default();
        redis::pipe()
            .pset_ex(
                self.node_key(&info.id),
                json,
                self.ttl.as_millis().max(1) as u64,
            )
            .ignore()
            .sadd(self.nodes_key(), &info.id)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Takes a node out at once (a clean stop), rather than waiting for its TTL.
    pub async fn withdraw(&self, id: &str) -> Result<(), RegistryError> {
        let mut c = self.redis.clone();
        redis::pipe()
            .del(self.node_key(id))
            .ignore()
            .srem(self.nodes_key(), id)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// The nodes alive now.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, RegistryError> {
        let mut c = self.redis.clone();
        let ids: Vec<String> = c.smembers(self.nodes_key()).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.node_key(id)).collect();
        let entries: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let mut out = Vec::new();
        for (id, entry) in ids.iter().zip(entries) {
            match entry.and_then(|e| serde_json::from_str::<NodeInfo>(&e).ok()) {
                Some(info) => out.push(info),
                // Its heartbeat lapsed: forget it.
                None => {
                    let _: Result<(), _> = c.srem(self.nodes_key(), id).await;
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The node hosting `room`, if it is placed.
    pub async fn placement(&self, room: &str) -> Result<Option<String>, RegistryError> {
        let mut c = self.redis.clone();
        Ok(c.get(self.room_key(room)).await?)
    }

    /// The node that hosts `room`: where it is already, if that node is alive and not
    /// draining, else a new
    /// placement: of two live nodes picked at random (within `region` when any node is
    /// there), the less loaded. Joins placing the same room at once on different signaling
    /// nodes all get the same answer.
    pub async fn place(&self, room: &str, region: Option<&str>) -> Result<String, RegistryError> {
        let script = redis::Script::new(PLACE);
        for _ in 0..4 {
            let current = self.placement(room).await?;
            let live = self.nodes().await?;
            // A draining node keeps its participants until they move, but takes no room.
            if let Some(cur) = &current
                && live.iter().any(|n| &n.id == cur && !n.draining)
            {
                return Ok(cur.clone());
            }
            let choice = choose(&live, region).ok_or(RegistryError::NoNodes)?;
            let mut c = self.redis.clone();
            let placed: String = script
                .key(self.room_key(room))
                .arg(current.as_deref().unwrap_or(""))
                .arg(&choice)
                .invoke_async(&mut c)
                .await?;
            if placed == choice || live.iter().any(|n| n.id == placed && !n.draining) {
                return Ok(placed);
            }
        }
        Err(RegistryError::NoNodes)
    }

    /// The node a participant joining from `region` goes to. Usually the room's node
    /// ([`Registry::place`]). The room spans nodes, which pipe media with each other, when
    /// - it is on a node of another region and `region` has a node up: the participant
    ///   goes to the room's node in its region (chosen once, like a placement);
    /// - or its node in the region is full (as many participants as its capacity): the
    ///   participant goes to the least loaded of the room's other nodes there with room
    ///   to spare, or else to a new node of the region. So a stage with a thousand
    ///   listeners spreads them over the region's nodes.
    pub async fn place_member(
        &self,
        room: &str,
        region: Option<&str>,
    ) -> Result<String, RegistryError> {
        let primary = self.place(room, region).await?;
        let live = self.nodes().await?;
        let up = |n: &&NodeInfo| !n.draining;
        let spare = |n: &NodeInfo| n.load.participants < n.capacity;
        let region = match region {
            Some(r) if live.iter().filter(up).any(|n| n.region == r) => r.to_owned(),
            _ => match live.iter().find(|n| n.id == primary) {
                Some(p) => p.region.clone(),
                None => return Ok(primary),
            },
        };
        let home = match live.iter().find(|n| n.id == primary) {
            Some(p) if p.region == region => primary.clone(),
            _ => self.regional(room, &region, &live).await?,
        };
        if live.iter().find(|n| n.id == home).is_none_or(spare) {
            return Ok(home);
        }
        let mut c = self.redis.clone();
        let members: Vec<String> = c.smembers(format!("{}:nodes", self.room_key(room))).await?;
        let in_region = live
            .iter()
            .filter(up)
            .filter(|n| n.region == region && spare(n) && n.id != home);
        if let Some(n) = in_region
            .clone()
            .filter(|n| members.contains(&n.id))
            .min_by(|a, b| a.score().total_cmp(&b.score()))
        {
            return Ok(n.id.clone());
        }
        let fresh: Vec<NodeInfo> = in_region.cloned().collect();
        Ok(choose(&fresh, Some(&region)).unwrap_or(home))
    }

    /// The room's node in `region` when its own node is elsewhere: chosen once, like a
    /// placement, so every participant of the region lands on it.
    async fn regional(
        &self,
        room: &str,
        region: &str,
        live: &[NodeInfo],
    ) -> Result<String, RegistryError> {
        let open_here = |id: &str| {
            live.iter()
                .any(|n| n.id == id && n.region == region && !n.draining)
        };
        let key = format!("{}:edge:{region}", self.room_key(room));
        let script = redis::Script::new(PLACE);
        for _ in 0..4 {
            let mut c = self.redis.clone();
            let current: Option<String> = c.get(&key).await?;
            if let Some(cur) = &current
                && open_here(cur)
            {
                return Ok(cur.clone());
            }
            let choice = choose(live, Some(region)).ok_or(RegistryError::NoNodes)?;
            let placed: String = script
                .key(&key)
                .arg(current.as_deref().unwrap_or(""))
                .arg(&choice)
                .invoke_async(&mut c)
                .await?;
            if placed == choice || open_here(&placed) {
                return Ok(placed);
            }
        }
        Err(RegistryError::NoNodes)
    }

    /// The node holding `room` for participants of `region`, when the room spans nodes.
    pub async fn edge(&self, room: &str, region: &str) -> Result<Option<String>, RegistryError> {
        let mut c = self.redis.clone();
        Ok(c.get(format!("{}:edge:{region}", self.room_key(room)))
            .await?)
    }

    /// Records that `node` holds participants of `room`; the other nodes that do, which
    /// it pipes media with.
    pub async fn link_room(&self, room: &str, node: &str) -> Result<Vec<String>, RegistryError> {
        let key = format!("{}:nodes", self.room_key(room));
        let mut c = self.redis.clone();
        let _: () = c.sadd(&key, node).await?;
        let all: Vec<String> = c.smembers(&key).await?;
        Ok(all.into_iter().filter(|n| n != node).collect())
    }

    /// `node` holds no participant of `room` any more: it leaves the room's node set and
    /// gives up the room's placement in its region, if it had it.
    pub async fn unlink_room(
        &self,
        room: &str,
        node: &str,
        region: &str,
    ) -> Result<(), RegistryError> {
        let mut c = self.redis.clone();
        let _: () = c
            .srem(format!("{}:nodes", self.room_key(room)), node)
            .await?;
        redis::Script::new(RELEASE)
            .key(format!("{}:edge:{region}", self.room_key(room)))
            .arg(node)
            .invoke_async::<i64>(&mut c)
            .await?;
        Ok(())
    }

    fn seats_key(&self, room: &str) -> String {
        format!("{}:seats", self.room_key(room))
    }

    /// Takes a seat in `room` for `identity` if fewer than `cap` are taken, across every
    /// node of the cluster, atomically. False: the room is full.
    pub async fn take_seat(
        &self,
        room: &str,
        identity: &str,
        cap: u32,
    ) -> Result<bool, RegistryError> {
        let now = now_ms();
        let mut c = self.redis.clone();
        let seated: i64 = redis::Script::new(TAKE_SEAT)
            .key(self.seats_key(room))
            .arg(identity)
            .arg(now)
            .arg(now + SEAT_TTL.as_millis() as i64)
            .arg(cap)
            .arg(SEAT_TTL.as_millis() as u64 * 2)
            .invoke_async(&mut c)
            .await?;
        Ok(seated == 1)
    }

    /// Keeps these seats (room, identity) taken for another [`SEAT_TTL`].
    pub async fn refresh_seats(&self, seats: &[(String, String)]) -> Result<(), RegistryError> {
        if seats.is_empty() {
            return Ok(());
        }
        let until = now_ms() + SEAT_TTL.as_millis() as i64;
        let mut pipe = redis::pipe();
        for (room, identity) in seats {
            pipe.cmd("ZADD")
                .arg(self.seats_key(room))
                .arg("XX")
                .arg(until)
                .arg(identity)
                .ignore();
        }
        let mut c = self.redis.clone();
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Gives a seat back.
    pub async fn free_seat(&self, room: &str, identity: &str) -> Result<(), RegistryError> {
        let mut c = self.redis.clone();
        let _: () = c.zrem(self.seats_key(room), identity).await?;
        Ok(())
    }

    /// Places `room` on `node` unless it is placed already; the node it is on now.
    pub async fn claim(&self, room: &str, node: &str) -> Result<String, RegistryError> {
        let mut c = self.redis.clone();
        Ok(redis::Script::new(PLACE)
            .key(self.room_key(room))
            .arg("")
            .arg(node)
            .invoke_async(&mut c)
            .await?)
    }

    /// Records that these participants are in these rooms through signaling node `node`,
    /// until `ttl` from now unless refreshed.
    pub async fn connected(
        &self,
        node: &str,
        entries: &[(String, String)],
        ttl: Duration,
    ) -> Result<(), RegistryError> {
        if entries.is_empty() {
            return Ok(());
        }
        let until = now_ms() + ttl.as_millis() as i64;
        let mut pipe = redis::pipe();
        for (room, identity) in entries {
            let (rk, uk) = (self.conn_room_key(room), self.conn_user_key(identity));
            pipe.zadd(&rk, format!("{identity}|{node}"), until).ignore();
            pipe.pexpire(&rk, ttl.as_millis() as i64).ignore();
            pipe.zadd(&uk, format!("{room}|{node}"), until).ignore();
            pipe.pexpire(&uk, ttl.as_millis() as i64).ignore();
        }
        let mut c = self.redis.clone();
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// A participant left a room it was in through `node`.
    pub async fn disconnected(
        &self,
        node: &str,
        room: &str,
        identity: &str,
    ) -> Result<(), RegistryError> {
        let mut c = self.redis.clone();
        redis::pipe()
            .zrem(self.conn_room_key(room), format!("{identity}|{node}"))
            .ignore()
            .zrem(self.conn_user_key(identity), format!("{room}|{node}"))
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Who is in `room` now, and through which signaling node: (identity, node).
    pub async fn room_connections(
        &self,
        room: &str,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        self.live_pairs(self.conn_room_key(room)).await
    }

    /// Which rooms `identity` is in now, and through which signaling node: (room, node).
    pub async fn user_connections(
        &self,
        identity: &str,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        self.live_pairs(self.conn_user_key(identity)).await
    }

    /// The unexpired members of a sorted set of `a|b` pairs, expired ones removed.
    async fn live_pairs(&self, key: String) -> Result<Vec<(String, String)>, RegistryError> {
        let mut c = self.redis.clone();
        let now = now_ms();
        let _: i64 = c.zrembyscore(&key, "-inf", now).await?;
        let members: Vec<String> = c.zrangebyscore(&key, now, "+inf").await?;
        let mut out: Vec<(String, String)> = members
            .iter()
            .filter_map(|m| m.rsplit_once('|'))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        out.sort();
        Ok(out)
    }

    fn conn_room_key(&self, room: &str) -> String {
        format!("{}:conn:room:{room}", self.cluster)
    }

    fn conn_user_key(&self, identity: &str) -> String {
        format!("{}:conn:user:{identity}", self.cluster)
    }

    /// Forgets the room's placement, if `node` still holds it (the room emptied there).
    pub async fn release(&self, room: &str, node: &str) -> Result<(), RegistryError> {
        let mut c = self.redis.clone();
        redis::Script::new(RELEASE)
            .key(self.room_key(room))
            .arg(node)
            .invoke_async::<i64>(&mut c)
            .await?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a signaling session's record lives: it is rewritten when the session joins or
/// leaves, and forgotten when it ends, so this bounds only what a dead node leaves.
pub const SESSION_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

#[async_trait::async_trait]
impl parlor_proto::control::SessionRecords for Registry {
    async fn save(&self, session: &str, record: &parlor_proto::control::SessionRecord) {
        let Ok(json) = serde_json::to_string(record) else {
            return;
        };
        let mut c = self.redis.clone();
        let r: Result<(), _> = c
            .pset_ex(
                format!("{}:sig:session:{session}", self.cluster),
                json,
                SESSION_RECORD_TTL.as_millis() as u64,
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not record a signaling session");
        }
    }

    async fn load(&self, session: &str) -> Option<parlor_proto::control::SessionRecord> {
        let mut c = self.redis.clone();
        let json: Option<String> = c
            .get(format!("{}:sig:session:{session}", self.cluster))
            .await
            .ok()?;
        serde_json::from_str(&json?).ok()
    }

    async fn forget(&self, session: &str) {
        let mut c = self.redis.clone();
        let _: Result<(), _> = c
            .del(format!("{}:sig:session:{session}", self.cluster))
            .await;
    }
}

/// Two random choices among the nodes taking rooms, within the region if any node is
/// there; the less loaded wins.
pub fn choose(nodes: &[NodeInfo], region: Option<&str>) -> Option<String> {
    let open: Vec<&NodeInfo> = nodes.iter().filter(|n| !n.draining).collect();
    let local: Vec<&NodeInfo> = match region {
        Some(r) if open.iter().any(|n| n.region == r) => {
            open.iter().copied().filter(|n| n.region == r).collect()
        }
        _ => open,
    };
    let mut rng = rand::rng();
    let picks: Vec<&&NodeInfo> = local.choose_multiple(&mut rng, 2).collect();
    picks
        .into_iter()
        .min_by(|a, b| a.score().total_cmp(&b.score()))
        .map(|n| n.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, region: &str, participants: u32) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            region: region.into(),
            media: Vec::new(),
            capacity: 100,
            load: NodeLoad {
                participants,
                ..NodeLoad::default()
            },
            draining: false,
        }
    }

    #[test]
    fn of_two_nodes_the_less_loaded_is_chosen() {
        let nodes = [node("a", "eu", 90), node("b", "eu", 10)];
        for _ in 0..20 {
            assert_eq!(choose(&nodes, None).as_deref(), Some("b"));
        }
    }

    #[test]
    fn the_region_is_kept_when_it_has_a_node_and_draining_nodes_take_nothing() {
        let mut nodes = vec![node("eu1", "eu", 90), node("us1", "us", 0)];
        for _ in 0..20 {
            assert_eq!(choose(&nodes, Some("eu")).as_deref(), Some("eu1"));
            assert_eq!(choose(&nodes, Some("ap")).as_deref(), Some("us1"));
        }
        nodes[0].draining = true;
        assert_eq!(choose(&nodes, Some("eu")).as_deref(), Some("us1"));
        nodes[1].draining = true;
        assert_eq!(choose(&nodes, None), None);
    }
}
