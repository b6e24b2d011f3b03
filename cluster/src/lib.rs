//! Parlor across machines, on engines operators already run.
//!
//! - **NATS** carries the SFU control interface ([`parlor_proto::control::SfuControl`])
//!   between signaling and SFU nodes: one request subject per SFU node
//!   (`parlor.sfu.<node>.control`, request/reply with a deadline), and one event subject
//!   per signaling node (`parlor.signal.<node>.events`), which that node subscribes to
//!   once and fans out to its participants. [`NodeServer`] serves an SFU on a node;
//!   [`ClusterSfu`] is the client signaling drives.
//! - **Redis** holds the cluster's shared state ([`Registry`]): the SFU nodes, each with
//!   its address, region, capacity and load, kept by heartbeat under a TTL; and which node
//!   hosts each room, decided once and atomically (two random choices, the less loaded),
//!   and released when the room empties.
//! - **Rooms that span nodes** ([`cascade`]): a participant whose region has a node goes
//!   there even when the room is placed elsewhere, and the room's nodes pipe each other
//!   their participants' tracks as RTP, once per pair, set up over NATS.
//!
//! Everything that crosses is the control interface's plain data, as JSON ([`wire`]).

mod cascade;
pub mod client;
pub mod node;
pub mod registry;
pub mod wire;

pub use async_nats;
pub use client::ClusterSfu;
pub use node::NodeServer;
pub use registry::{NodeInfo, NodeLoad, Registry, RegistryError};

/// Whether `s` can name a node: it becomes one token of a NATS subject and a Redis key.
pub fn valid_node_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
