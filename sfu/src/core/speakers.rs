//! Active-speaker detection from RFC 6464 audio levels.

use std::time::{Duration, Instant};

/// Louder than this (in -dBov, 0 is loudest) counts as speaking.
const SPEAKING_DBOV: u8 = 55;
/// How long a loud packet keeps its speaker active.
const HOLD: Duration = Duration::from_millis(600);

#[derive(Debug, Default, Clone)]
pub(crate) struct LevelMeter {
    /// Loudest level (lowest -dBov) seen in the current hold window, and when.
    loudest: Option<(u8, Instant)>,
}

impl LevelMeter {
    pub(crate) fn observe(&mut self, now: Instant, level_dbov: u8) {
        let level = level_dbov.min(127);
        match self.loudest {
            Some((l, at)) if now.saturating_duration_since(at) < HOLD && l <= level => {}
            _ => self.loudest = Some((level, now)),
        }
    }

    /// Speaking loudness 0.0..=1.0 if speaking now.
    pub(crate) fn speaking(&self, now: Instant) -> Option<f32> {
        let (l, at) = self.loudest?;
        (now.saturating_duration_since(at) < HOLD && l <= SPEAKING_DBOV)
            .then(|| (127 - l) as f32 / 127.0)
    }
}
