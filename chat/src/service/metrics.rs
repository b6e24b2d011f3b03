//! The chat service's Prometheus metrics.

use std::future::Future;

use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The store operations whose latency is measured (`op` label).
pub const DB_OPS: &[&str] = &[
    "insert_message",
    "messages",
    "search",
    "read_state",
    "channel",
];

/// HTTP status classes (`class` label).
const CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Clone)]
pub struct ChatMetrics {
    pub registry: Registry,
    /// Chat WebSocket sessions on this node (attached or waiting for a resume).
    pub gateway_sessions: IntGauge,
    /// Gateway frames received and sent (`parlor_chat_gateway_frames_total{direction}`),
    /// resolved once: they count on every frame.
    pub frames_in: IntCounter,
    pub frames_out: IntCounter,
    /// Chat API responses by status class.
    pub http_requests: IntCounterVec,
    /// Latency of the store's main operations.
    pub db_query: HistogramVec,
    /// Messages stored by this node.
    pub messages: IntCounter,
    /// Messages per group commit.
    pub message_batch: Histogram,
    /// Messages sent to and received from other chat nodes on the bus.
    pub bus_out: IntCounter,
    pub bus_in: IntCounter,
    /// Gateway sessions this node took over from another (`resume` with a position).
    pub resumed_elsewhere: IntCounter,
    /// Web Push messages a push service accepted.
    pub pushes_sent: IntCounter,
}

impl ChatMetrics {
    pub fn new() -> ChatMetrics {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        // Every label value is there from the start, so dashboards and alerts never point
        // at a series that does not exist yet.
        let counter_vec = |name: &str, help: &str, label: &str, values: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|_| unreachable_metric(name));
            let _ = registry.register(Box::new(c.clone()));
            for v in values {
                c.with_label_values(&[v]);
            }
            c
        };
        let db_query = HistogramVec::new(
            HistogramOpts::new(
                "parlor_chat_db_query_duration_seconds",
                "Latency of the chat store's main operations",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["op"],
        )
        .unwrap_or_else(|_| unreachable_metric("parlor_chat_db_query_duration_seconds"));
        let _ = registry.register(Box::new(db_query.clone()));
        for op in DB_OPS {
            db_query.with_label_values(&[op]);
        }
        let frames = counter_vec(
            "parlor_chat_gateway_frames_total",
            "Chat WebSocket frames received (in) and sent (out)",
            "direction",
            &["in", "out"],
        );
        ChatMetrics {
            frames_in: frames.with_label_values(&["in"]),
            frames_out: frames.with_label_values(&["out"]),
            gateway_sessions: gauge(
                "parlor_chat_gateway_sessions",
                "Chat WebSocket sessions on this node, attached or awaiting a resume",
            ),
            http_requests: counter_vec(
                "parlor_chat_http_requests_total",
                "Chat API responses by status class",
                "class",
                CLASSES,
            ),
            db_query,
            messages: counter("parlor_chat_messages_total", "Messages stored by this node"),
            message_batch: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "parlor_chat_message_batch_size",
                        "Messages written per transaction (group commit)",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                )
                .unwrap_or_else(|_| unreachable_metric("parlor_chat_message_batch_size"));
                let _ = registry.register(Box::new(h.clone()));
                h
            },
            bus_out: counter(
                "parlor_chat_bus_published_total",
                "Messages published to the other chat nodes",
            ),
            bus_in: counter(
                "parlor_chat_bus_received_total",
                "Messages received from the other chat nodes",
            ),
            resumed_elsewhere: counter(
                "parlor_chat_sessions_taken_over_total",
                "Gateway sessions resumed here that another chat node held",
            ),
            pushes_sent: counter(
                "parlor_chat_web_pushes_total",
                "Web Push messages a push service accepted from this node",
            ),
            registry,
        }
    }

    /// Runs a store operation and records how long it took under `op` (one of
    /// [`DB_OPS`]).
    pub async fn db<T>(&self, op: &'static str, f: impl Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let out = f.await;
        self.db_query
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        out
    }

    /// Counts a response by its status class.
    pub fn response(&self, status: u16) {
        let class = CLASSES
            .get(usize::from(status / 100).saturating_sub(1))
            .copied()
            .unwrap_or("5xx");
        self.http_requests.with_label_values(&[class]).inc();
    }
}

impl Default for ChatMetrics {
    fn default() -> ChatMetrics {
        ChatMetrics::new()
    }
}

/// Chat's series as of now, for a `/metrics` (chat's own, or `parlor serve`'s).
pub fn gather(state: &crate::ChatState) -> Vec<MetricFamily> {
    let m = &state.metrics;
    m.gateway_sessions.set(state.hub.session_count() as i64);
    m.registry.gather()
}

/// Metric names and help texts above are constants that the prometheus crate accepts.
fn unreachable_metric<T>(name: &str) -> T {
    panic!("invalid metric definition {name}")
}
