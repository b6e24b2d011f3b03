//! `parlor sfu` and `parlor signaling`: one service per process, meeting through NATS
//! (the SFU control interface) and Redis (the node registry and room placement).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};

use parlor_cluster::{ClusterSfu, NodeInfo, NodeLoad, NodeServer, Registry, valid_node_id};
use parlor_sfu::Sfu;

/// How long a node's registry entry outlives its last heartbeat, and how often it beats.
/// A node that dies drops out of placement within `NODE_TTL`, and its participants are
/// told to move within one more `parlor_cluster::client::WATCH`.
const NODE_TTL: Duration = Duration::from_millis(1200);
const HEARTBEAT: Duration = Duration::from_millis(300);

/// Where the cluster's engines are, and this node's place in it.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// This node's id: letters, digits, `-` and `_`; unique in the cluster.
    #[arg(long, env = "PARLOR_NODE_ID")]
    node_id: String,
    /// Region label; rooms are placed on SFU nodes of the joining signaling node's region
    /// when there are any.
    #[arg(long, env = "PARLOR_REGION", default_value = "default")]
    region: String,
    /// The cluster's name: the prefix of its Redis keys and NATS subjects, so that
    /// several clusters can share one Redis and one NATS.
    #[arg(long, env = "PARLOR_CLUSTER", default_value = "parlor")]
    cluster: String,
    #[arg(long, env = "PARLOR_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[arg(
        long,
        env = "PARLOR_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
}

#[derive(clap::Args, Debug)]
pub struct SfuArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// HTTP address for /metrics, /healthz and /readyz.
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    #[command(flatten)]
    media: crate::MediaArgs,
    /// Participants this node is meant to hold. Placement prefers emptier nodes, and a
    /// room whose node holds this many spreads to other nodes of the region.
    #[arg(long, env = "PARLOR_CAPACITY", default_value_t = 1000)]
    capacity: u32,
    /// On SIGTERM: how long to wait for the node's rooms to empty before stopping.
    #[arg(long, env = "PARLOR_DRAIN_GRACE", default_value = "20s")]
    drain_grace: humantime::Duration,
}

#[derive(clap::Args, Debug)]
pub struct SignalingArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// HTTP address for the page, /ws, WHIP/WHEP and /metrics.
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the token key is kept when PARLOR_TOKEN_SECRET is unset (every signaling
    /// node and chat must share it: set PARLOR_TOKEN_SECRET in a cluster).
    #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Hand out guest tokens to the page.
    #[arg(long, env = "PARLOR_GUEST_TOKENS", default_value_t = false, action = clap::ArgAction::Set)]
    guest_tokens: bool,
    /// How long a call to an SFU node may take before the node counts as gone.
    #[arg(long, env = "PARLOR_SFU_DEADLINE", default_value = "2s")]
    sfu_deadline: humantime::Duration,
}

impl ClusterArgs {
    async fn connect(&self) -> anyhow::Result<(parlor_cluster::async_nats::Client, Registry)> {
        if !valid_node_id(&self.node_id) {
            bail!("--node-id: 1-64 letters, digits, - and _");
        }
        if !valid_node_id(&self.cluster) {
            bail!("--cluster: 1-64 letters, digits, - and _");
        }
        let nats = parlor_cluster::async_nats::connect(&self.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", self.nats_url))?;
        let registry = Registry::connect(&self.redis_url, NODE_TTL, &self.cluster)
            .await
            .with_context(|| format!("connecting to Redis at {}", self.redis_url))?;
        Ok((nats, registry))
    }
}

pub fn sfu(a: SfuArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(sfu_async(a))
}

async fn sfu_async(a: SfuArgs) -> anyhow::Result<()> {
    let (nats, registry) = a.cluster.connect().await?;
    let metrics = prometheus::Registry::new();
    parlor_edge::process::ProcessMetrics::register(&metrics)?;
    let sfu = Arc::new(
        Sfu::start(
            &a.media.sfu_config(&a.cluster.node_id),
            parlor_sfu::Metrics::new(&metrics)?,
        )
        .context("starting the SFU (is the media port free? try --media-port 0)")?,
    );
    let media: Vec<String> = sfu.media_addrs().iter().map(|m| m.to_string()).collect();
    let info = NodeInfo {
        id: a.cluster.node_id.clone(),
        region: a.cluster.region.clone(),
        media: media.clone(),
        capacity: a.capacity,
        load: NodeLoad::default(),
        draining: false,
    };
    let gathered = metrics.clone();
    let forwarded = Arc::new(move || metric_sum(&gathered, "parlor_sfu_rtp_forwarded_total"));
    let cascade: Arc<dyn parlor_sfu::Cascade> = sfu.clone();
    let server = NodeServer::new(
        nats,
        registry,
        info,
        sfu.clone(),
        Some(cascade),
        Some(forwarded),
    );
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let node = server.clone();
    let ops = Router::new()
        .route("/metrics", get(move || metrics_text(metrics.clone())))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let draining = node.is_draining();
                async move {
                    if draining {
                        (StatusCode::SERVICE_UNAVAILABLE, "draining")
                    } else {
                        (StatusCode::OK, "ready")
                    }
                }
            }),
        );
    let ops_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, ops).await });
    println!(
        "Parlor SFU node {} is running; media (UDP): {}; metrics and probes at http://{ops_addr}",
        a.cluster.node_id,
        media.join(", ")
    );
    // SIGTERM drains: no new rooms; stop once the rooms empty or the grace has passed.
    let grace: Duration = a.drain_grace.into();
    let draining = server.clone();
    let stop = async move {
        crate::shutdown_signal().await;
        draining.drain().await;
        let deadline = tokio::time::Instant::now() + grace;
        while draining.participants() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    server.run(HEARTBEAT, stop).await?;
    if tokio::time::timeout(Duration::from_secs(10), sfu.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("SFU did not stop in time");
    }
    Ok(())
}

pub fn signaling(a: SignalingArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(signaling_async(a))
}

async fn signaling_async(a: SignalingArgs) -> anyhow::Result<()> {
    let key = crate::token_key(&a.data_dir)?;
    let (nats, registry) = a.cluster.connect().await?;
    let records = registry.clone();
    let mut sfu = ClusterSfu::connect(nats, registry, &a.cluster.node_id)
        .await
        .context("subscribing to this node's events")?;
    sfu.region = Some(a.cluster.region.clone());
    sfu.deadline = a.sfu_deadline.into();
    let metrics = prometheus::Registry::new();
    parlor_edge::process::ProcessMetrics::register(&metrics)?;
    let mut config = parlor_signaling::Config::new(key);
    config.guest_tokens = a.guest_tokens;
    config.drain_reason = parlor_proto::control::CloseReason::Moved;
    let mut state = parlor_signaling::AppState::new(
        config,
        Arc::new(sfu),
        parlor_signaling::Metrics::new(&metrics)?,
    );
    state.records = Some(Arc::new(records));
    let app = parlor_signaling::router(state.clone())
        .merge(parlor_signaling::ops::router(metrics, state.clone()))
        .merge(crate::web::router())
        .layer(crate::web::security_layer(
            std::env::var("PARLOR_SIGNALING_URL").ok().as_deref(),
        )?);
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    println!(
        "Parlor signaling node {} is running at http://{}",
        a.cluster.node_id,
        listener.local_addr()?
    );
    parlor_signaling::run(listener, app, state, crate::shutdown_signal()).await?;
    Ok(())
}

/// The sum of a metric's series.
fn metric_sum(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

async fn metrics_text(registry: prometheus::Registry) -> impl IntoResponse {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    if enc.encode(&registry.gather(), &mut buf).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed").into_response();
    }
    ([(header::CONTENT_TYPE, enc.format_type().to_owned())], buf).into_response()
}
