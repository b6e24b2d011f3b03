//! Sequence-number and timestamp rewriting for one outgoing stream.
//!
//! A subscriber sees one continuous stream per track even when the forwarder switches
//! simulcast layers or pauses and resumes: each switch re-bases the offsets so that the
//! next packet follows the last one sent.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Munger {
    clock_rate: u32,
    /// Added to the incoming extended sequence number.
    seq_offset: u64,
    /// Added to the incoming RTP timestamp.
    ts_offset: u32,
    /// Packets of the current run older than this are from before the switch: dropped.
    run_start_in: u64,
    /// The highest outgoing sequence number so far.
    last_out_seq: u64,
    last_out_ts: u32,
    last_out_at: Option<Instant>,
    /// Whether the next packet starts a new run.
    rebase: bool,
}

/// Rewritten header fields of one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Munged {
    pub seq: u64,
    pub ts: u32,
}

impl Munger {
    /// `first_seq` is the first outgoing sequence number; keep it below 2^16 so the SRTP
    /// rollover counter starts at zero.
    pub fn new(clock_rate: u32, first_seq: u64) -> Munger {
        Munger {
            clock_rate,
            seq_offset: 0,
            ts_offset: 0,
            run_start_in: 0,
            last_out_seq: first_seq.saturating_sub(1),
            last_out_ts: 0,
            last_out_at: None,
            rebase: true,
        }
    }

    /// The next packet starts a new run (layer switch, resume after pause).
    pub fn start_new_run(&mut self) {
        self.rebase = true;
    }

    pub fn last_out_seq(&self) -> u64 {
        self.last_out_seq
    }

    /// Rewrites one packet. `None` means it belongs before the current run and is dropped.
    pub fn munge(&mut self, in_seq: u64, in_ts: u32, now: Instant) -> Option<Munged> {
        if self.rebase {
            self.rebase = false;
            let next_seq = self.last_out_seq + 1;
            self.seq_offset = next_seq.wrapping_sub(in_seq);
            self.run_start_in = in_seq;
            let next_ts = match self.last_out_at {
                None => in_ts,
                Some(at) => {
                    let elapsed = now.saturating_duration_since(at);
                    let ticks = (elapsed.as_secs_f64() * self.clock_rate as f64) as u32;
                    self.last_out_ts.wrapping_add(ticks.max(1))
                }
            };
            self.ts_offset = next_ts.wrapping_sub(in_ts);
        } else if in_seq < self.run_start_in {
            return None;
        }
        let seq = in_seq.wrapping_add(self.seq_offset);
        let ts = in_ts.wrapping_add(self.ts_offset);
        if seq > self.last_out_seq {
            self.last_out_seq = seq;
            self.last_out_ts = ts;
            self.last_out_at = Some(now);
        }
        Some(Munged { seq, ts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn passes_through_with_offset() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 1000);
        let a = m.munge(50_000, 7777, t0).unwrap();
        assert_eq!(
            a,
            Munged {
                seq: 1000,
                ts: 7777
            }
        );
        let b = m.munge(50_001, 7777 + 3000, t0).unwrap();
        assert_eq!(
            b,
            Munged {
                seq: 1001,
                ts: 10_777
            }
        );
        // Reordered packet inside the run keeps its relative place.
        let c = m.munge(50_003, 13_777, t0).unwrap();
        let d = m.munge(50_002, 10_777, t0).unwrap();
        assert_eq!((c.seq, d.seq), (1003, 1002));
        assert_eq!(m.last_out_seq(), 1003);
    }

    #[test]
    fn switch_keeps_sequence_and_time_continuous() {
        let t0 = Instant::now();
        let mut m = Munger::new(90_000, 100);
        for i in 0..10u64 {
            m.munge(
                5_000 + i,
                1_000 + i as u32 * 3000,
                t0 + Duration::from_millis(33 * i),
            )
            .unwrap();
        }
        let last = m
            .munge(5_010, 31_000, t0 + Duration::from_millis(330))
            .unwrap();
        m.start_new_run();
        // New layer: unrelated numbering, 33 ms later.
        let first = m
            .munge(60_000, 4_000_000_000, t0 + Duration::from_millis(363))
            .unwrap();
        assert_eq!(first.seq, last.seq + 1);
        let dt = first.ts.wrapping_sub(last.ts);
        assert!((2900..=3100).contains(&dt), "timestamp advanced by {dt}");
        // Old-layer stragglers from before the switch are dropped.
        assert_eq!(m.munge(59_999, 3_999_990_000, t0), None);
        let next = m
            .munge(60_001, 4_000_003_000, t0 + Duration::from_millis(396))
            .unwrap();
        assert_eq!(next.seq, first.seq + 1);
        assert_eq!(next.ts, first.ts.wrapping_add(3000));
    }

    #[test]
    fn timestamp_wraps() {
        let t0 = Instant::now();
        let mut m = Munger::new(48_000, 10);
        let a = m.munge(1, u32::MAX - 10, t0).unwrap();
        let b = m.munge(2, 949, t0).unwrap();
        assert_eq!(b.ts.wrapping_sub(a.ts), 960);
    }
}
