//! Parlor's SFU: routes audio, video and screen tracks between participants.
//!
//! [`core`] is the sans-IO forwarding logic. The runtime layer owns the UDP sockets and the
//! worker threads, each of which owns the rooms placed on it and their `str0m::Rtc`s.

pub mod core;
