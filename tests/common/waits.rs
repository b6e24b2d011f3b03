//! Waiting on media in tests: packet counts per remote track, and waiting for them to stop.

use std::time::{Duration, Instant};

use super::{Client, WAIT};

/// Packets received so far on one remote track.
pub fn packets_of(c: &Client, track_id: &str) -> u64 {
    c.counts().get(track_id).map_or(0, |r| r.packets)
}

/// Waits until no packets arrive on `track_id` for half a second; returns the count then.
/// Fails if they keep coming, so a stop that does not happen is caught.
pub async fn settled(c: &Client, track_id: &str) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let before = packets_of(c, track_id);
        sleep_ms(500).await;
        let after = packets_of(c, track_id);
        if after == before {
            return after;
        }
        assert!(
            Instant::now() < deadline,
            "packets on {track_id} never stopped for {}",
            c.identity
        );
    }
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
