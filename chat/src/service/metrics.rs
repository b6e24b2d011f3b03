//! The chat service's Prometheus metrics.

use prometheus::{IntCounter, IntGauge, Registry};

#[derive(Debug, Clone)]
pub struct ChatMetrics {
    pub registry: Registry,
    /// Chat WebSocket sessions on this node (attached or waiting for a resume).
    pub gateway_sessions: IntGauge,
    /// Messages stored by this node.
    pub messages: IntCounter,
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
        ChatMetrics {
            gateway_sessions: gauge(
                "parlor_chat_gateway_sessions",
                "Chat WebSocket sessions on this node, attached or awaiting a resume",
            ),
            messages: counter("parlor_chat_messages_total", "Messages stored by this node"),
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
}

impl Default for ChatMetrics {
    fn default() -> ChatMetrics {
        ChatMetrics::new()
    }
}

/// Metric names and help texts above are constants that the prometheus crate accepts.
fn unreachable_metric<T>(name: &str) -> T {
    panic!("invalid metric definition {name}")
}
