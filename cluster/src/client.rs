//! The control interface as signaling drives it in a cluster: each call goes over NATS
//! to the SFU node that hosts the room, with a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tracing::{debug, warn};

use parlor_proto::control::{
    CloseReason, EventSender, JoinRequest, Joined, Moderation, ParticipantHandle, Replied, Request,
    RoomEvent, RoomEvents, RoomStatus, SfuControl, SfuError,
};
use parlor_proto::{ParticipantId, RoomCaps, RoomId};

use crate::registry::{Registry, RegistryError};
use crate::wire::{Answer, Call, Routed, control_subject, encode, events_subject};

/// How often signaling checks that the SFU nodes of its participants are alive.
pub const WATCH: Duration = Duration::from_millis(300);
/// How long a participant's entry in the connection registry outlives its node's last
/// refresh (refreshed every `CONNECTIONS_TTL / 3`).
pub const CONNECTIONS_TTL: Duration = Duration::from_secs(3);

/// One participant's event stream on this signaling node.
struct Route {
    events: EventSender,
    /// Known once the join has been answered.
    handle: Option<ParticipantHandle>,
}

type Routes = Arc<Mutex<HashMap<u64, Route>>>;

fn lock(routes: &Routes) -> std::sync::MutexGuard<'_, HashMap<u64, Route>> {
    // Held for a map lookup or update, never across an await.
    routes.lock().unwrap_or_else(|p| p.into_inner())
}

/// The SFU control interface over NATS, for a signaling node.
pub struct ClusterSfu {
    nats: async_nats::Client,
    registry: Registry,
    /// This signaling node's id, and its event subject.
    node: String,
    inbox: String,
    routes: Routes,
    next_route: AtomicU64,
    /// How long a call may take before its node counts as gone.
    pub deadline: Duration,
    /// The region rooms are placed in, when a node is there.
    pub region: Option<String>,
}

impl std::fmt::Debug for ClusterSfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSfu")
            .field("inbox", &self.inbox)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl ClusterSfu {
    /// Subscribes to this signaling node's event subject (one subscription for all its
    /// participants) and returns the client.
    pub async fn connect(
        nats: async_nats::Client,
        registry: Registry,
        node: &str,
    ) -> Result<ClusterSfu, async_nats::SubscribeError> {
        let inbox = events_subject(registry.cluster(), node);
        let events = nats.subscribe(inbox.clone()).await?;
        let routes: Routes = Arc::default();
        let sfu = ClusterSfu {
            nats: nats.clone(),
            registry,
            node: node.to_owned(),
            inbox,
            routes: routes.clone(),
            next_route: AtomicU64::new(1),
            deadline: Duration::from_secs(2),
            region: None,
        };
        let cluster = sfu.registry.cluster().to_owned();
        tokio::spawn(fan_out(events, routes.clone(), nats, cluster));
        tokio::spawn(watch(sfu.registry.clone(), routes.clone()));
        tokio::spawn(refresh_connections(
            sfu.registry.clone(),
            routes,
            node.to_owned(),
        ));
        Ok(sfu)
    }

    /// Sends a call to a node and waits for its answer, within the deadline. A node that
    /// does not answer in time, or has no subscriber, is unavailable.
    async fn call(&self, node: &str, call: &Call) -> Result<Answer, SfuError> {
        let request = self.nats.request(
            control_subject(self.registry.cluster(), node),
            encode(call).into(),
        );
        let msg = match tokio::time::timeout(self.deadline, request).await {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => {
                debug!(node, error = %e, "control call failed");
                return Err(SfuError::Unavailable);
            }
            Err(_) => {
                warn!(node, "control call timed out");
                return Err(SfuError::Unavailable);
            }
        };
        match serde_json::from_slice::<Answer>(&msg.payload) {
            Ok(Answer::Error(e)) => Err(e),
            Ok(answer) => Ok(answer),
            Err(e) => {
                warn!(node, error = %e, "malformed answer");
                Err(SfuError::Unavailable)
            }
        }
    }

    /// Takes a participant out of the connection registry at once.
    fn forget(&self, who: &ParticipantHandle) {
        let (registry, node) = (self.registry.clone(), self.node.clone());
        let (room, identity) = (who.room.to_string(), who.identity.to_string());
        tokio::spawn(async move {
            if let Err(e) = registry.disconnected(&node, &room, &identity).await {
                debug!(error = %e, "connection registry: remove failed");
            }
        });
    }

    async fn place(&self, room: &RoomId) -> Result<String, SfuError> {
        self.registry
            .place(room.as_str(), self.region.as_deref())
            .await
            .map_err(unavailable)
    }

    /// The node a participant of this signaling node's region joins a room on.
    async fn place_member(&self, room: &RoomId) -> Result<String, SfuError> {
        self.registry
            .place_member(room.as_str(), self.region.as_deref())
            .await
            .map_err(unavailable)
    }

    /// Any node taking rooms, for calls that concern no room.
    async fn any_node(&self) -> Result<String, SfuError> {
        let nodes = self.registry.nodes().await.map_err(unavailable)?;
        crate::registry::choose(&nodes, self.region.as_deref()).ok_or(SfuError::Unavailable)
    }
}

fn unavailable(e: RegistryError) -> SfuError {
    warn!(error = %e, "registry unavailable");
    SfuError::Unavailable
}

fn unexpected(a: Answer) -> SfuError {
    warn!(answer = ?a, "unexpected answer");
    SfuError::Unavailable
}

#[async_trait]
impl SfuControl for ClusterSfu {
    async fn join(&self, req: JoinRequest) -> Result<(Joined, RoomEvents), SfuError> {
        let node = self.place_member(&req.room).await?;
        // The route exists before the call: events may arrive before the answer.
        let route = self.next_route.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = RoomEvents::channel();
        lock(&self.routes).insert(
            route,
            Route {
                events: tx,
                handle: None,
            },
        );
        let call = Call::Join {
            req,
            events_to: self.inbox.clone(),
            route,
        };
        match self.call(&node, &call).await {
            Ok(Answer::Joined(joined)) => {
                if let Some(r) = lock(&self.routes).get_mut(&route) {
                    r.handle = Some(joined.handle.clone());
                }
                let entry = vec![(
                    joined.handle.room.to_string(),
                    joined.handle.identity.to_string(),
                )];
                if let Err(e) = self
                    .registry
                    .connected(&self.node, &entry, CONNECTIONS_TTL)
                    .await
                {
                    debug!(error = %e, "connection registry: add failed");
                }
                Ok((joined, events))
            }
            other => {
                lock(&self.routes).remove(&route);
                Err(match other {
                    Err(e) => e,
                    Ok(a) => unexpected(a),
                })
            }
        }
    }

    async fn attach(&self, who: &ParticipantHandle, after: u64) -> Result<RoomEvents, SfuError> {
        let route = self.next_route.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = RoomEvents::channel();
        lock(&self.routes).insert(
            route,
            Route {
                events: tx,
                handle: Some(who.clone()),
            },
        );
        let call = Call::Attach {
            who: who.clone(),
            events_to: self.inbox.clone(),
            route,
            after,
        };
        match self.call(&who.node, &call).await {
            Ok(Answer::Done) => Ok(events),
            other => {
                lock(&self.routes).remove(&route);
                Err(match other {
                    Err(e) => e,
                    Ok(a) => unexpected(a),
                })
            }
        }
    }

    async fn request(&self, who: &ParticipantHandle, req: Request) -> Replied {
        let call = Call::Request {
            who: who.clone(),
            req,
        };
        match self.call(&who.node, &call).await {
            Ok(Answer::Replied(r)) => r,
            Ok(Answer::Reply(r)) => Replied {
                result: Ok(r),
                after_event: 0,
            },
            Ok(a) => Replied::failed(unexpected(a)),
            Err(e) => Replied::failed(e),
        }
    }

    async fn leave(&self, who: &ParticipantHandle, reason: CloseReason) {
        lock(&self.routes).retain(|_, r| r.handle.as_ref() != Some(who));
        self.forget(who);
        let call = Call::Leave {
            who: who.clone(),
            reason,
        };
        if let Err(e) = self.call(&who.node, &call).await {
            debug!(error = %e, "leave not delivered");
        }
    }

    async fn set_caps(&self, room: &RoomId, caps: RoomCaps) -> Result<RoomStatus, SfuError> {
        let node = self.place(room).await?;
        let call = Call::SetCaps {
            room: room.clone(),
            caps,
        };
        match self.call(&node, &call).await? {
            Answer::Status(s) => Ok(s),
            a => Err(unexpected(a)),
        }
    }

    async fn room_status(&self, room: &RoomId) -> Result<RoomStatus, SfuError> {
        let node = match self.registry.placement(room.as_str()).await {
            Ok(Some(node)) => node,
            Ok(None) => self.any_node().await?,
            Err(e) => return Err(unavailable(e)),
        };
        let call = Call::RoomStatus { room: room.clone() };
        match self.call(&node, &call).await? {
            Answer::Status(s) => Ok(s),
            a => Err(unexpected(a)),
        }
    }

    /// Every live node hears it: a room that spans nodes has its participants on
    /// several, and each node remembers a mute for the room while it is open there.
    async fn moderate(
        &self,
        room: &RoomId,
        identity: &ParticipantId,
        action: Moderation,
    ) -> Result<(), SfuError> {
        let nodes = self.registry.nodes().await.map_err(unavailable)?;
        let call = Call::Moderate {
            room: room.clone(),
            identity: identity.clone(),
            action,
        };
        let answers =
            futures_util::future::join_all(nodes.iter().map(|n| self.call(&n.id, &call))).await;
        if answers.iter().any(|a| matches!(a, Ok(Answer::Done))) {
            return Ok(());
        }
        // Unknown everywhere, unless a node could not be asked.
        match answers.into_iter().find_map(Result::err) {
            Some(SfuError::UnknownParticipant(_)) | None => {
                Err(SfuError::UnknownParticipant(identity.to_string()))
            }
            Some(e) => Err(e),
        }
    }

    async fn check_offer(&self, sdp: &str) -> Result<(), SfuError> {
        let node = self.any_node().await?;
        let call = Call::CheckOffer {
            sdp: sdp.to_owned(),
        };
        match self.call(&node, &call).await? {
            Answer::Done => Ok(()),
            a => Err(unexpected(a)),
        }
    }
}

/// Hands each event from the node's one subscription to its participant's stream. A
/// participant whose stream is gone or full is removed from its SFU node, as the
/// in-process SFU does with a slow consumer.
async fn fan_out(
    mut events: async_nats::Subscriber,
    routes: Routes,
    nats: async_nats::Client,
    cluster: String,
) {
    while let Some(msg) = events.next().await {
        let Ok(Routed { route, n, event }) = serde_json::from_slice::<Routed>(&msg.payload) else {
            warn!("malformed room event");
            continue;
        };
        let closed = matches!(event, RoomEvent::Closed(_));
        let ephemeral = event.is_ephemeral();
        // The participant to remove, if its stream is gone or full.
        let slow = {
            let mut map = lock(&routes);
            let Some(r) = map.get(&route) else { continue };
            let failed = match r.events.try_send_numbered(n, event) {
                Ok(()) => false,
                Err(_) if r.events.is_closed() => true,
                Err(_) => !ephemeral,
            };
            if closed || failed {
                let gone = map.remove(&route);
                gone.filter(|_| failed).and_then(|r| r.handle)
            } else {
                None
            }
        };
        if let Some(who) = slow {
            let call = Call::Leave {
                who: who.clone(),
                reason: CloseReason::SlowConsumer,
            };
            let _ = nats
                .publish(control_subject(&cluster, &who.node), encode(&call).into())
                .await;
        }
    }
}

/// Tells the participants on an SFU node that has died (its registry entry lapsed) to
/// move: they get `Closed(Moved)`, join again, and the room is placed on a live node.
async fn watch(registry: Registry, routes: Routes) {
    let mut tick = tokio::time::interval(WATCH);
    loop {
        tick.tick().await;
        let live: Vec<String> = match registry.nodes().await {
            Ok(nodes) => nodes.into_iter().map(|n| n.id).collect(),
            // Without the registry nothing can be told apart from a dead node.
            Err(_) => continue,
        };
        let mut map = lock(&routes);
        let lost: Vec<u64> = map
            .iter()
            .filter(|(_, r)| r.handle.as_ref().is_some_and(|h| !live.contains(&h.node)))
            .map(|(k, _)| *k)
            .collect();
        for k in lost {
            if let Some(r) = map.remove(&k) {
                warn!(node = ?r.handle.map(|h| h.node), "SFU node lost; moving its participant");
                // Not one of the SFU's events: unnumbered.
                let _ = r
                    .events
                    .try_send_numbered(0, RoomEvent::Closed(CloseReason::Moved));
            }
        }
    }
}

/// Keeps this node's participants in the connection registry (who is in which room,
/// through which signaling node): refreshed every third of the TTL, so a node that dies
/// takes its participants out within the TTL. Entries of participants who have gone
/// are removed when they go (`leave`) or expire.
async fn refresh_connections(registry: Registry, routes: Routes, node: String) {
    let mut tick = tokio::time::interval(CONNECTIONS_TTL / 3);
    let mut last: Vec<(String, String)> = Vec::new();
    loop {
        tick.tick().await;
        let now: Vec<(String, String)> = lock(&routes)
            .values()
            .filter_map(|r| r.handle.as_ref())
            .map(|h| (h.room.to_string(), h.identity.to_string()))
            .collect();
        for (room, identity) in last.iter().filter(|e| !now.contains(e)) {
            let _ = registry.disconnected(&node, room, identity).await;
        }
        if let Err(e) = registry.connected(&node, &now, CONNECTIONS_TTL).await {
            debug!(error = %e, "connection registry: refresh failed");
        }
        last = now;
    }
}
