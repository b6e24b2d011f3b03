//! Domain operations over the store: sending a message, presence, sign-in sessions and
//! the tokens behind them, the event hub and the dispatches it carries, the views
//! that REST answers and events carry, and the policy for outgoing requests. Services
//! use the store and the model, never the routes.

pub mod attachments;
pub mod auth;
pub mod bus;
pub mod dispatch;
pub mod hub;
pub mod mail;
pub mod mentions;
pub mod message_writer;
pub mod messages;
pub mod metrics;
pub mod oidc;
pub mod outgoing;
pub mod presence;
pub mod push;
pub mod room_admin;
pub mod sessions;
pub mod views;
pub mod visibility;
