//! Token-bucket rate limits by key (an IP, or a user and a route).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct Limiter<K = IpAddr> {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> Limiter<K> {
    pub fn new(burst: f64, per_sec: f64) -> Limiter<K> {
        Limiter {
            burst,
            per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A shared limiter of (burst, per second), or none.
    pub fn maybe(rate: Option<(f64, f64)>) -> Option<std::sync::Arc<Limiter<K>>> {
        rate.map(|(burst, per_sec)| std::sync::Arc::new(Limiter::new(burst, per_sec)))
    }

    /// Takes one token; on refusal, the seconds until one is free.
    pub fn check(&self, key: K, now: Instant) -> Result<(), f64> {
        // A std Mutex: held for a few arithmetic operations, never across an await.
        let mut g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() > 100_000 {
            // Forget full buckets rather than grow without bound.
            let (burst, rate) = (self.burst, self.per_sec);
            g.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = g.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / self.per_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let l: Limiter<u8> = Limiter::new(3.0, 1.0);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.check(1, t0).is_ok()));
        let wait = l.check(1, t0).unwrap_err();
        assert!((0.9..=1.0).contains(&wait), "{wait}");
        assert!(l.check(2, t0).is_ok(), "keys are separate");
        assert!(l.check(1, t0 + Duration::from_millis(1100)).is_ok());
    }
}
