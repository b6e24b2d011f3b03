//! A real Parlor server on port 0 and webrtc-rs clients that speak the `/ws` protocol.
//!
//! The clients use webrtc-rs, a WebRTC stack independent of the server's str0m, so these
//! tests prove interoperability rather than str0m talking to itself.

#![allow(dead_code, clippy::unwrap_used)]

mod client;
pub mod json_seam;
mod peer;
mod waits;

pub use client::*;
pub use peer::*;

#[allow(unused_imports)] // Not every test binary waits on media.
pub use waits::{packets_of, settled, sleep_ms};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::oneshot;

use parlor_proto::{Claims, ParticipantId, RoomId, TokenKey};
use parlor_sfu::{CapsConfig, Sfu};

pub const WAIT: Duration = Duration::from_secs(20);

/// The room-token key of test servers.
pub const TEST_SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";

pub struct TestServer {
    pub http: SocketAddr,
    pub key: TokenKey,
    pub sfu: Arc<Sfu>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(CapsConfig::default()).await
    }

    pub async fn start_with(caps: CapsConfig) -> TestServer {
        TestServer::start_seam(caps, None).await
    }

    /// A server whose signaling gets every room event from the SFU through JSON and
    /// `delay` late ([`json_seam::EventDelay`]).
    pub async fn start_slow_events(delay: Duration) -> TestServer {
        TestServer::start_seam(CapsConfig::default(), Some(json_seam::EventDelay(delay))).await
    }

    async fn start_seam(caps: CapsConfig, delay: Option<json_seam::EventDelay>) -> TestServer {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let registry = prometheus::Registry::new();
        let sfu = Arc::new(
            Sfu::start(
                &parlor_sfu::Config {
                    workers: 2,
                    bind_ip: "127.0.0.1".parse().unwrap(),
                    media_port: 0,
                    public_ip: None,
                    caps,
                    node: parlor_sfu::LOCAL_NODE.into(),
                },
                parlor_sfu::Metrics::new(&registry).unwrap(),
            )
            .unwrap(),
        );
        let key = TokenKey::new(TEST_SECRET);
        // PARLOR_TEST_SEAM=json: signaling drives the SFU through JSON (json_seam.rs).
        let control: Arc<dyn parlor_proto::control::SfuControl> =
            match (delay, std::env::var("PARLOR_TEST_SEAM").as_deref()) {
                (Some(d), _) => Arc::new(json_seam::JsonSeam(sfu.clone(), d)),
                (None, Ok("json")) => {
                    Arc::new(json_seam::JsonSeam(sfu.clone(), Default::default()))
                }
                _ => sfu.clone(),
            };
        let state = parlor_signaling::AppState::new(
            parlor_signaling::Config::new(key.clone()),
            control,
            parlor_signaling::Metrics::new(&registry).unwrap(),
        );
        let app = parlor_signaling::router(state.clone())
            .merge(parlor_signaling::ops::router(registry, state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(parlor_signaling::run(listener, app, state, async move {
            let _ = stopped.await;
        }));
        TestServer {
            http,
            key,
            sfu,
            stop: Some(stop),
        }
    }

    pub fn token(&self, room: &str, identity: &str) -> String {
        self.token_with(room, identity, |_| {})
    }

    pub fn token_with(&self, room: &str, identity: &str, f: impl FnOnce(&mut Claims)) -> String {
        let mut c = Claims::new(
            RoomId::parse(room).unwrap(),
            ParticipantId::parse(identity).unwrap(),
            Duration::from_secs(600),
        );
        f(&mut c);
        self.key.sign(&c)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// The sum of a metric's series, from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits for a metric (published about once a second) to satisfy `pred`.
    pub async fn wait_metric(&self, name: &str, pred: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.metric(name).await;
            if pred(v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("{name} stayed at {v}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.sfu.shutdown().await;
    }
}
