//! Prometheus series of the SFU. Workers count locally and publish once a second, so the
//! forwarding path touches no shared counter.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    pub rooms: IntGaugeVec,
    pub participants: IntGaugeVec,
    pub tracks: IntGaugeVec,
    pub packets_in: IntCounterVec,
    pub bytes_in: IntCounterVec,
    pub packets_out: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub forwarded: IntCounterVec,
    pub dropped: IntCounterVec,
    pub nacks: IntCounterVec,
    pub plis: IntCounterVec,
    pub rtx: IntCounterVec,
    pub send_syscalls: IntCounterVec,
    /// Per participant, once a second: round-trip time, loss, jitter and the egress
    /// bandwidth estimate, from str0m's stats (off the packet path).
    pub rtt: Histogram,
    pub loss: HistogramVec,
    pub jitter: HistogramVec,
    pub bandwidth: Histogram,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        Ok(Metrics {
            rooms: gauge("parlor_sfu_rooms", "Rooms open on this worker", &["worker"])?,
            participants: gauge(
                "parlor_sfu_participants",
                "Participants connected to this worker",
                &["worker"],
            )?,
            tracks: gauge(
                "parlor_sfu_tracks",
                "Published tracks by source",
                &["worker", "source"],
            )?,
            packets_in: counter(
                "parlor_sfu_packets_in_total",
                "UDP datagrams received",
                &["worker"],
            )?,
            bytes_in: counter(
                "parlor_sfu_bytes_in_total",
                "UDP bytes received",
                &["worker"],
            )?,
            packets_out: counter(
                "parlor_sfu_packets_out_total",
                "UDP datagrams sent",
                &["worker"],
            )?,
            bytes_out: counter("parlor_sfu_bytes_out_total", "UDP bytes sent", &["worker"])?,
            forwarded: counter(
                "parlor_sfu_rtp_forwarded_total",
                "RTP packets forwarded to subscribers",
                &["worker"],
            )?,
            dropped: counter(
                "parlor_sfu_dropped_packets_total",
                "Packets dropped, by reason",
                &["worker", "reason"],
            )?,
            nacks: counter(
                "parlor_sfu_nacks_total",
                "NACKs: received from subscribers (rx) or sent to publishers (tx)",
                &["worker", "direction"],
            )?,
            plis: counter(
                "parlor_sfu_plis_total",
                "Keyframe requests: received from subscribers (rx) or sent to publishers (tx)",
                &["worker", "direction"],
            )?,
            rtx: counter(
                "parlor_sfu_rtx_packets_total",
                "Retransmitted packets sent to subscribers",
                &["worker"],
            )?,
            send_syscalls: counter(
                "parlor_sfu_send_syscalls_total",
                "sendmsg calls (each may carry a GSO batch)",
                &["worker"],
            )?,
            rtt: histogram(
                registry,
                HistogramOpts::new(
                    "parlor_sfu_rtt_seconds",
                    "Round-trip time to participants, sampled once a second each",
                )
                .buckets(vec![
                    0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
                ]),
            )?,
            loss: histogram_vec(
                registry,
                HistogramOpts::new(
                    "parlor_sfu_loss_ratio",
                    "Packet loss per participant and second: of what it sent us (ingress) \
                     or of what we sent it, by its receiver reports (egress)",
                )
                .buckets(vec![0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
                "direction",
                &["ingress", "egress"],
            )?,
            jitter: histogram_vec(
                registry,
                HistogramOpts::new(
                    "parlor_sfu_jitter_seconds",
                    "Interarrival jitter subscribers report for what we send them",
                )
                .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2]),
                "kind",
                &["audio", "video"],
            )?,
            bandwidth: histogram(
                registry,
                HistogramOpts::new(
                    "parlor_sfu_bandwidth_estimate_bytes_per_second",
                    "Egress bandwidth estimates toward participants, once a second each",
                )
                .buckets(vec![
                    12.5e3, 31.25e3, 62.5e3, 125e3, 187.5e3, 312.5e3, 500e3, 750e3, 1.25e6, 2.5e6,
                ]),
            )?,
        })
    }
}

fn histogram(registry: &Registry, opts: HistogramOpts) -> Result<Histogram, prometheus::Error> {
    let h = Histogram::with_opts(opts)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

/// A histogram by one label, with each of `values` present from the start.
fn histogram_vec(
    registry: &Registry,
    opts: HistogramOpts,
    label: &str,
    values: &[&str],
) -> Result<HistogramVec, prometheus::Error> {
    let h = HistogramVec::new(opts, &[label])?;
    registry.register(Box::new(h.clone()))?;
    for v in values {
        h.with_label_values(&[v]);
    }
    Ok(h)
}

/// A worker's local tallies since the last publish.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub forwarded: u64,
    pub dropped_send: u64,
    pub dropped_unknown: u64,
    /// Received RTP not forwarded because it waited too long before the worker read it.
    pub dropped_late: u64,
    pub nacks_rx: u64,
    pub nacks_tx: u64,
    pub plis_rx: u64,
    pub plis_tx: u64,
    pub rtx: u64,
    pub syscalls: u64,
}

impl Tally {
    pub(crate) fn publish(&mut self, m: &Metrics, worker: &str) {
        let t = std::mem::take(self);
        m.packets_in
            .with_label_values(&[worker])
            .inc_by(t.packets_in);
        m.bytes_in.with_label_values(&[worker]).inc_by(t.bytes_in);
        m.packets_out
            .with_label_values(&[worker])
            .inc_by(t.packets_out);
        m.bytes_out.with_label_values(&[worker]).inc_by(t.bytes_out);
        m.forwarded.with_label_values(&[worker]).inc_by(t.forwarded);
        m.dropped
            .with_label_values(&[worker, "send"])
            .inc_by(t.dropped_send);
        m.dropped
            .with_label_values(&[worker, "unknown_source"])
            .inc_by(t.dropped_unknown);
        m.dropped
            .with_label_values(&[worker, "late"])
            .inc_by(t.dropped_late);
        m.nacks
            .with_label_values(&[worker, "rx"])
            .inc_by(t.nacks_rx);
        m.nacks
            .with_label_values(&[worker, "tx"])
            .inc_by(t.nacks_tx);
        m.plis.with_label_values(&[worker, "rx"]).inc_by(t.plis_rx);
        m.plis.with_label_values(&[worker, "tx"]).inc_by(t.plis_tx);
        m.rtx.with_label_values(&[worker]).inc_by(t.rtx);
        m.send_syscalls
            .with_label_values(&[worker])
            .inc_by(t.syscalls);
    }
}
