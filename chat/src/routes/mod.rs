//! HTTP and gateway handlers. They translate requests into calls on the services and the
//! store, and answers into views; they decide nothing a service could.

pub mod api;
pub mod attachments;
pub mod bots;
pub mod channels;
pub mod dms;
pub mod events;
pub mod extract;
pub mod gateway;
pub mod gateway_frames;
mod gateway_ops;
pub mod guilds;
pub mod invites;
pub mod members;
pub mod messages;
mod notify;
pub mod oidc;
pub mod ops;
pub mod presence;
pub mod push;
pub mod reactions;
pub mod reads;
pub mod recovery;
pub mod relationships;
pub mod search;
pub mod voice;
pub mod voice_moderation;
