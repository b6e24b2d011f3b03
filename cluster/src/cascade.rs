//! Rooms that span SFU nodes, on the cluster's side: which nodes of a room pipe media to
//! each other, set up and torn down over NATS.
//!
//! Every node holding participants of a room is in the room's node set in Redis. A node
//! that gets its first participant of a room asks each other node of the set for a pipe
//! (`Call::Pipe`): that node starts sending the room's local tracks to this node's pipe
//! address and its events about its participants to this node's pipe subject, and asks
//! for a pipe the other way in turn. So the nodes of a room form a full mesh: a track
//! crosses to each other node once, and a subscriber is at most one hop further from a
//! publisher than on a single node. A node whose last participant of a room leaves ends
//! its pipes for the room (`Call::Unpipe`) and leaves the set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tracing::{debug, info, warn};

use parlor_proto::RoomId;
use parlor_proto::control::{RoomEvent, RoomEvents, SfuError};

use crate::node::NodeServer;
use crate::wire::{Answer, Call, PipeEvent, control_subject, encode, pipe_subject};

/// How long a node waits for another to answer a pipe call.
const PIPE_DEADLINE: Duration = Duration::from_secs(2);

impl NodeServer {
    /// Applies the events other nodes' pipes send here, for as long as the node runs.
    pub(crate) async fn mirror_events(self: Arc<Self>) {
        let Some(cascade) = self.cascade.clone() else {
            return;
        };
        let subject = pipe_subject(self.registry.cluster(), &self.id());
        let mut sub = match self.nats.subscribe(subject).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot receive pipe events; rooms will not span nodes");
                return;
            }
        };
        while let Some(msg) = sub.next().await {
            match serde_json::from_slice::<PipeEvent>(&msg.payload) {
                Ok(p) => cascade.mirror(&p.room, p.from, p.event).await,
                Err(e) => debug!(error = %e, "malformed pipe event"),
            }
        }
    }

    /// After a participant joined a room here: pipes media with the room's other nodes.
    pub(crate) async fn link(self: Arc<Self>, room: RoomId) {
        if self.cascade.is_none() {
            return;
        }
        let others = match self.registry.link_room(room.as_str(), &self.id()).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, room = %room, "cannot record the room's nodes");
                return;
            }
        };
        let live = self.registry.nodes().await.unwrap_or_default();
        for node in others {
            if !live.iter().any(|n| n.id == node) {
                // Died holding participants of the room: not a node to pipe with.
                let _ = self.registry.unlink_room(room.as_str(), &node, "").await;
                continue;
            }
            self.clone().pipe_from(room.clone(), node).await;
        }
    }

    /// Asks `node` for a pipe of the room's tracks to this node, unless there is one.
    pub(crate) async fn pipe_from(self: Arc<Self>, room: RoomId, node: String) {
        let Some(cascade) = self.cascade.clone() else {
            return;
        };
        let Some(to) = cascade.pipe_addr(&room) else {
            return;
        };
        {
            let mut links = self.links();
            let peers = links.entry(room.clone()).or_default();
            if peers.contains_key(&node) {
                return;
            }
            // Claimed before the call, so a pipe call crossing this one is not repeated.
            peers.insert(node.clone(), None);
        }
        let call = Call::Pipe {
            room: room.clone(),
            to,
            from_node: self.id(),
        };
        let subject = control_subject(self.registry.cluster(), &node);
        let answer = tokio::time::timeout(
            PIPE_DEADLINE,
            self.nats.request(subject, encode(&call).into()),
        )
        .await;
        let piped = match answer {
            Ok(Ok(msg)) => serde_json::from_slice::<Answer>(&msg.payload).ok(),
            _ => None,
        };
        let Some(Answer::Piped {
            participants,
            from,
            key,
        }) = piped
        else {
            warn!(room = %room, %node, "no pipe from the node");
            if let Some(peers) = self.links().get_mut(&room) {
                peers.remove(&node);
            }
            return;
        };
        let key = match hex_bytes(&key) {
            Some(k) => k,
            None => {
                warn!(room = %room, %node, "a pipe key that is not hex");
                return;
            }
        };
        if let Err(e) = cascade.pipe_in(&room, from, participants, key).await {
            warn!(error = %e, room = %room, "cannot mirror the node's participants");
            return;
        }
        if let Some(peers) = self.links().get_mut(&room) {
            peers.insert(node.clone(), Some(from));
        }
        info!(room = %room, %node, %from, "media piped from another node");
    }

    /// Another node asks for this node's tracks of a room: starts the pipe out, sends its
    /// events to that node, and asks for a pipe the other way.
    pub(crate) async fn pipe_to(
        self: &Arc<Self>,
        room: RoomId,
        to: SocketAddr,
        node: String,
    ) -> Result<Answer, SfuError> {
        let cascade = self.cascade.clone().ok_or(SfuError::Unavailable)?;
        let from = cascade.pipe_addr(&room).ok_or(SfuError::Unavailable)?;
        let (participants, events, key) = cascade.pipe_out(&room, to).await?;
        let subject = pipe_subject(self.registry.cluster(), &node);
        tokio::spawn(
            self.clone()
                .send_pipe_events(events, subject, room.clone(), from),
        );
        tokio::spawn(self.clone().pipe_from(room, node));
        Ok(Answer::Piped {
            participants,
            from,
            key: key.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    async fn send_pipe_events(
        self: Arc<Self>,
        mut events: RoomEvents,
        subject: String,
        room: RoomId,
        from: SocketAddr,
    ) {
        while let Some(event) = events.recv().await {
            if matches!(event, RoomEvent::Closed(_)) {
                break;
            }
            let p = PipeEvent {
                room: room.clone(),
                from,
                event,
            };
            if let Err(e) = self.nats.publish(subject.clone(), encode(&p).into()).await {
                debug!(error = %e, "could not send a pipe event");
            }
        }
    }

    /// Ends this node's pipes for a room with `peer` (a call from that node).
    pub(crate) async fn unpipe_from(&self, room: &RoomId, peer: SocketAddr) {
        if let Some(c) = &self.cascade {
            c.unpipe(room, peer).await;
        }
        if let Some(peers) = self.links().get_mut(room) {
            peers.retain(|_, addr| *addr != Some(peer));
        }
    }

    /// Ends the pipes with nodes that have left the registry (died without ending them):
    /// their mirrored participants leave the rooms here.
    pub(crate) async fn drop_dead_pipes(&self) {
        let Some(cascade) = self.cascade.clone() else {
            return;
        };
        if self.links().is_empty() {
            return;
        }
        let Ok(live) = self.registry.nodes().await else {
            return;
        };
        let dead: Vec<(RoomId, String, Option<SocketAddr>)> = self
            .links()
            .iter()
            .flat_map(|(room, peers)| {
                peers
                    .iter()
                    .filter(|(node, _)| !live.iter().any(|n| &n.id == *node))
                    .map(|(node, addr)| (room.clone(), node.clone(), *addr))
            })
            .collect();
        for (room, node, addr) in dead {
            warn!(room = %room, %node, "a node of the room is gone; ending its pipes");
            if let Some(addr) = addr {
                cascade.unpipe(&room, addr).await;
            }
            if let Some(peers) = self.links().get_mut(&room) {
                peers.remove(&node);
            }
            if let Err(e) = self.registry.unlink_room(room.as_str(), &node, "").await {
                debug!(error = %e, "could not take a dead node out of a room");
            }
        }
    }

    /// The room's last participant here has left: ends its pipes with every other node
    /// and leaves the room's node set.
    pub(crate) async fn unlink(self: Arc<Self>, room: RoomId) {
        let Some(cascade) = self.cascade.clone() else {
            return;
        };
        let region = self.region();
        if let Err(e) = self
            .registry
            .unlink_room(room.as_str(), &self.id(), &region)
            .await
        {
            warn!(error = %e, room = %room, "cannot leave the room's node set");
        }
        let peers = self.links().remove(&room).unwrap_or_default();
        let Some(me) = cascade.pipe_addr(&room) else {
            return;
        };
        for (node, addr) in peers {
            if let Some(addr) = addr {
                cascade.unpipe(&room, addr).await;
            }
            let call = Call::Unpipe {
                room: room.clone(),
                peer: me,
            };
            let subject = control_subject(self.registry.cluster(), &node);
            if let Err(e) = self.nats.publish(subject, encode(&call).into()).await {
                debug!(error = %e, "could not end a pipe");
            }
        }
    }
}

/// The bytes of a hex string.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
