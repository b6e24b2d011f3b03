//! Rate limits, on governor's GCRA: one keyed limiter for requests (per IP, per user and
//! route, per webhook) and one per-connection limiter for WebSocket frames. Both answer
//! how long to wait, which the services turn into `429` with `retry_after` or a close.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Keys kept before the limiter forgets those whose buckets have refilled.
const MAX_KEYS: usize = 100_000;

/// `burst` at once, then `per_sec` a second (which may be below one: 20 a minute).
fn quota(burst: f64, per_sec: f64) -> Quota {
    let burst = NonZeroU32::new(burst.max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs_f64(1.0 / per_sec.max(1e-6));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// A rate limit per key: an IP, a user and a route, a webhook.
pub struct KeyedLimit<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `burst` at once, then `per_sec` a second, per key.
    pub fn new(burst: f64, per_sec: f64) -> KeyedLimit<K> {
        KeyedLimit::with_clock(burst, per_sec, DefaultClock::default())
    }

    /// A shared limit of (burst, per second), or none.
    pub fn maybe(rate: Option<(f64, f64)>) -> Option<std::sync::Arc<KeyedLimit<K>>> {
        rate.map(|(burst, per_sec)| std::sync::Arc::new(KeyedLimit::new(burst, per_sec)))
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimit<K, C> {
    pub fn with_clock(burst: f64, per_sec: f64, clock: C) -> KeyedLimit<K, C> {
        KeyedLimit {
            limiter: RateLimiter::new(
                quota(burst, per_sec),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            ),
            clock,
        }
    }

    /// Counts one request; on refusal, the seconds until one would pass.
    pub fn check(&self, key: &K) -> Result<(), f64> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs_f64())
    }
}

/// A rate limit on one connection's frames.
pub struct FrameLimit<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl std::fmt::Debug for FrameLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameLimit")
    }
}

impl FrameLimit {
    /// `burst` frames at once, then `per_sec` a second.
    pub fn new(burst: f64, per_sec: f64) -> FrameLimit {
        FrameLimit::with_clock(burst, per_sec, DefaultClock::default())
    }
}

impl<C: Clock> FrameLimit<C> {
    pub fn with_clock(burst: f64, per_sec: f64, clock: C) -> FrameLimit<C> {
        FrameLimit {
            limiter: RateLimiter::direct_with_clock(quota(burst, per_sec), clock),
        }
    }

    /// Counts one frame; false when the connection is over its limit.
    pub fn take(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn bursts_then_refills_per_key() {
        let clock = FakeRelativeClock::default();
        let l: KeyedLimit<u8, _> = KeyedLimit::with_clock(3.0, 1.0, clock.clone());
        assert!((0..3).all(|_| l.check(&1).is_ok()));
        let wait = l.check(&1).unwrap_err();
        assert!((0.9..=1.0).contains(&wait), "{wait}");
        assert!(l.check(&2).is_ok(), "keys are separate");
        clock.advance(Duration::from_millis(1100));
        assert!(l.check(&1).is_ok());
    }

    #[test]
    fn slower_than_one_a_second() {
        let clock = FakeRelativeClock::default();
        // 20 a minute: after the burst, one every 3 s.
        let l: KeyedLimit<u8, _> = KeyedLimit::with_clock(20.0, 20.0 / 60.0, clock.clone());
        assert!((0..20).all(|_| l.check(&1).is_ok()));
        let wait = l.check(&1).unwrap_err();
        assert!((2.9..=3.0).contains(&wait), "{wait}");
        clock.advance(Duration::from_secs(3));
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_err());
    }

    #[test]
    fn frames_burst_then_are_refused() {
        let clock = FakeRelativeClock::default();
        let l = FrameLimit::with_clock(20.0, 5.0, clock.clone());
        assert!((0..20).all(|_| l.take()));
        assert!(!l.take());
        clock.advance(Duration::from_millis(200));
        assert!(l.take());
        assert!(!l.take());
    }
}
