//! A real Parlor server on port 0 and webrtc-rs clients that speak the `/ws` protocol.
//!
//! The clients use webrtc-rs, a WebRTC stack independent of the server's str0m, so these
//! tests prove interoperability rather than str0m talking to itself.

#![allow(dead_code, clippy::unwrap_used)]

pub mod json_seam;
mod waits;

#[allow(unused_imports)] // Not every test binary waits on media.
pub use waits::{packets_of, settled, sleep_ms};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use parlor_proto::signal::ServerFrame;
use parlor_proto::{Claims, ParticipantId, RoomId, TokenKey};
use parlor_sfu::{CapsConfig, Sfu};

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCPeerConnectionState,
};

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

/// Packets received on one remote track.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// The publisher's identity (the msid stream id).
    pub owner: String,
    pub kind: Option<RtpCodecKind>,
    pub packets: u64,
    pub seqs: Vec<u16>,
    /// For audio from [`spawn_pump`]: each packet's frame number and when it arrived.
    pub stamps: Vec<(u64, Instant)>,
    pub ended: bool,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<ServerFrame>>>>;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type WsSink = futures_util::stream::SplitSink<Ws, Message>;
type WsStream = futures_util::stream::SplitStream<Ws>;

/// What the task reading a client's socket hands frames to; kept so that a new socket
/// (a resume on another node) gets a reader of its own.
#[derive(Clone)]
struct ReaderParts {
    pending: Pending,
    neg: mpsc::UnboundedSender<Neg>,
    awaiting: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<ServerFrame>,
    /// The last `seq` and `ev` seen.
    seq: Arc<AtomicU64>,
    ev: Arc<AtomicU64>,
}

fn spawn_reader(mut stream: WsStream, p: ReaderParts) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(f) = next_frame(&mut stream).await {
            p.seq.fetch_max(f.seq, Ordering::SeqCst);
            if let Some(ev) = f.ev {
                p.ev.fetch_max(ev, Ordering::SeqCst);
            }
            if let Some(id) = f.id
                && let Some(tx) = p.pending.lock().unwrap().remove(&id)
            {
                // Wire order decides glare: an answer ends our offer.
                if p.awaiting.load(Ordering::SeqCst) == id {
                    p.awaiting.store(0, Ordering::SeqCst);
                }
                let _ = tx.send(f);
                continue;
            }
            let v = f.to_json();
            if f.msg_op() == "error" {
                eprintln!("[client] error frame: {v}");
            }
            if f.msg_op() == "offer" {
                // The impolite side: a server offer that crosses ours is ignored;
                // the server rolls it back and offers again after answering.
                if p.awaiting.load(Ordering::SeqCst) != 0 {
                    continue;
                }
                let _ = p.neg.send(Neg::ServerOffer {
                    seq: f.seq,
                    offer_id: v["d"]["offer_id"].as_u64().unwrap_or(0),
                    sdp: v["d"]["sdp"].as_str().unwrap_or_default().to_owned(),
                });
                continue;
            }
            let _ = p.events.send(f);
        }
    })
}

enum Neg {
    Publish {
        tracks: Vec<(Arc<TrackLocalStaticRTP>, &'static str)>,
        done: oneshot::Sender<anyhow::Result<ServerFrame>>,
    },
    ServerOffer {
        /// The frame's `seq`, which orders it against the answers to our own offers.
        seq: u64,
        offer_id: u64,
        sdp: String,
    },
}

struct Handler {
    received: Arc<Mutex<HashMap<String, Received>>>,
    connected: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.connected.store(true, Ordering::SeqCst);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        tokio::spawn(async move {
            let id = track.track_id().await.to_string();
            let kind = track.kind().await;
            let owner = track.stream_id().await.to_string();
            {
                let mut g = received.lock().unwrap();
                let r = g.entry(id.clone()).or_default();
                r.kind = Some(kind);
                r.owner = owner;
            }
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        let mut g = received.lock().unwrap();
                        let r = g.entry(id.clone()).or_default();
                        r.packets += 1;
                        r.seqs.push(p.header.sequence_number);
                        if kind == RtpCodecKind::Audio && p.payload.len() >= 9 {
                            let mut n = [0u8; 8];
                            n.copy_from_slice(&p.payload[1..9]);
                            r.stamps.push((u64::from_be_bytes(n), Instant::now()));
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            received.lock().unwrap().entry(id).or_default().ended = true;
        });
    }
}

/// A participant: a WebSocket to `/ws` and a webrtc-rs peer connection.
pub struct Client {
    pub identity: String,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: AtomicU64,
    pub events: mpsc::UnboundedReceiver<ServerFrame>,
    neg: mpsc::UnboundedSender<Neg>,
    pub received: Arc<Mutex<HashMap<String, Received>>>,
    pub connected: Arc<AtomicBool>,
    pub session_id: String,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    /// The socket the writer task writes to; replaced by a resume elsewhere.
    sink: Arc<tokio::sync::Mutex<WsSink>>,
    reader: ReaderParts,
    pc: Arc<dyn PeerConnection>,
    /// Track ids the server assigned to what this client publishes, by source.
    pub published: Arc<Mutex<HashMap<String, String>>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
    }
}

impl Client {
    /// Connects, identifies and joins.
    pub async fn join(server: &TestServer, token: &str) -> anyhow::Result<Client> {
        Client::join_at(server.http, token).await
    }

    /// Connects to the signaling node at `http`, identifies and joins.
    pub async fn join_at(http: SocketAddr, token: &str) -> anyhow::Result<Client> {
        let c = Client::connect_at(http, token).await?;
        let r = c.request("join", json!({})).await?;
        if r.msg_op() != "joined" {
            bail!("join failed: {}", r.to_json());
        }
        Ok(c)
    }

    /// Connects and identifies, without joining.
    pub async fn connect(server: &TestServer, token: &str) -> anyhow::Result<Client> {
        Client::connect_at(server.http, token).await
    }

    /// Connects to the signaling node at `http` and identifies, without joining.
    pub async fn connect_at(http: SocketAddr, token: &str) -> anyhow::Result<Client> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
            .await
            .context("ws connect")?;
        let (mut sink, mut stream) = ws.split();
        let hello = next_frame(&mut stream).await?;
        if hello.msg_op() != "hello" {
            bail!("expected hello, got {}", hello.to_json());
        }
        sink.send(Message::text(
            json!({"op": "identify", "d": {"token": token}}).to_string(),
        ))
        .await?;
        let ready = next_frame(&mut stream).await?;
        if ready.msg_op() != "ready" {
            bail!("identify failed: {}", ready.to_json());
        }
        let v = ready.to_json();
        let identity = v["d"]["identity"].as_str().unwrap_or_default().to_owned();
        let session_id = v["d"]["session_id"].as_str().unwrap_or_default().to_owned();

        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let writer = {
            let sink = sink.clone();
            tokio::spawn(async move {
                while let Some(m) = out_rx.recv().await {
                    // A failed write is lost; a resume elsewhere brings a new socket.
                    let _ = sink.lock().await.send(m).await;
                }
            })
        };

        let Bare {
            pc,
            received,
            connected,
        } = Bare::new().await?;

        let pending: Pending = Arc::default();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (neg, neg_rx) = mpsc::unbounded_channel();
        let awaiting_answer = Arc::new(AtomicU64::new(0));
        let published = Arc::new(Mutex::new(HashMap::new()));

        let parts = ReaderParts {
            pending: pending.clone(),
            neg: neg.clone(),
            awaiting: awaiting_answer.clone(),
            events: events_tx,
            seq: Arc::new(AtomicU64::new(ready.seq)),
            ev: Arc::default(),
        };
        let reader = spawn_reader(stream, parts.clone());

        let c = Client {
            identity,
            out,
            pending,
            next_id: AtomicU64::new(1),
            events,
            neg,
            received,
            connected,
            session_id,
            pumps: vec![writer, reader],
            sink,
            reader: parts,
            pc: pc.clone(),
            published,
        };
        let negotiator = tokio::spawn(negotiate(
            pc,
            neg_rx,
            c.out.clone(),
            c.pending.clone(),
            awaiting_answer,
            c.published.clone(),
        ));
        let mut c = c;
        c.pumps.push(negotiator);
        Ok(c)
    }

    /// Moves this client's session to the signaling node at `http`, as a client whose
    /// node died would: a new socket, `resume` with the last `seq` and `ev` it saw. The
    /// peer connection stays. Returns the server's answer to the resume.
    pub async fn resume_at(&mut self, http: SocketAddr) -> anyhow::Result<ServerFrame> {
        self.pumps[1].abort();
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
            .await
            .context("ws connect")?;
        let (mut sink, mut stream) = ws.split();
        let hello = next_frame(&mut stream).await?;
        if hello.msg_op() != "hello" {
            bail!("expected hello, got {}", hello.to_json());
        }
        let ev = self.reader.ev.load(Ordering::SeqCst);
        let resume = json!({"op": "resume", "d": {
            "session_id": self.session_id,
            "seq": self.reader.seq.load(Ordering::SeqCst),
            "event": (ev > 0).then_some(ev),
        }});
        sink.send(Message::text(resume.to_string())).await?;
        let answer = next_frame(&mut stream).await?;
        self.reader.seq.fetch_max(answer.seq, Ordering::SeqCst);
        *self.sink.lock().await = sink;
        self.pumps[1] = spawn_reader(stream, self.reader.clone());
        Ok(answer)
    }

    /// The last `seq` received.
    pub fn last_seq(&self) -> u64 {
        self.reader.seq.load(Ordering::SeqCst)
    }

    pub fn send_raw(&self, m: Message) {
        let _ = self.out.send(m);
    }

    /// Sends a request and waits for the reply with the same id.
    pub async fn request(&self, op: &str, d: Value) -> anyhow::Result<ServerFrame> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1000;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.send_raw(Message::text(
            json!({"op": op, "id": id, "d": d}).to_string(),
        ));
        tokio::time::timeout(WAIT, rx)
            .await
            .map_err(|_| anyhow!("no reply to {op}"))?
            .map_err(|_| anyhow!("connection closed before reply to {op}"))
    }

    /// Publishes Opus audio and/or VP8 video with the given source labels and starts
    /// sending synthetic RTP on them. Returns the server's reply to the offer.
    pub async fn publish(&mut self, sources: &[&'static str]) -> anyhow::Result<ServerFrame> {
        let tracks: Vec<_> = sources
            .iter()
            .map(|&source| (make_track(&self.identity, source), source))
            .collect();
        let (done, rx) = oneshot::channel();
        self.neg
            .send(Neg::Publish {
                tracks: tracks.clone(),
                done,
            })
            .map_err(|_| anyhow!("negotiator gone"))?;
        let reply = tokio::time::timeout(WAIT, rx).await??;
        let reply = reply?;
        if reply.msg_op() == "answer" {
            for (t, source) in tracks {
                self.pumps.push(tokio::spawn(pump(t, is_video(source))));
            }
        }
        Ok(reply)
    }

    /// Waits for an event frame with this op, skipping others.
    pub async fn wait_event(&mut self, op: &str) -> anyhow::Result<ServerFrame> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = tokio::time::timeout(left, self.events.recv())
                .await
                .map_err(|_| anyhow!("no {op} event"))?
                .ok_or_else(|| anyhow!("connection closed waiting for {op}"))?;
            if f.msg_op() == op {
                return Ok(f);
            }
        }
    }

    /// Packets received so far per remote track id.
    pub fn counts(&self) -> HashMap<String, Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the received-packet table.
    pub async fn wait_media(
        &self,
        what: &str,
        pred: impl Fn(&HashMap<String, Received>) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if pred(&self.received.lock().unwrap()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "{what}: timed out; {} saw {:?}",
            self.identity,
            self.counts()
                .iter()
                .map(|(k, v)| (k.clone(), v.packets))
                .collect::<Vec<_>>()
        )
    }

    /// The remote description currently in effect.
    pub async fn remote_sdp(&self) -> String {
        self.pc
            .current_remote_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default()
    }

    /// Whether the negotiated SDP still has a live m-line carrying `track_id`.
    pub async fn has_live_track(&self, track_id: &str) -> bool {
        self.remote_sdp().await.split("\nm=").skip(1).any(|m| {
            m.split_whitespace().nth(1) != Some("0")
                && m.lines()
                    .any(|l| l.starts_with("a=msid:") && l.trim_end().ends_with(track_id))
        })
    }

    pub async fn close(self) {
        let _ = self.pc.close().await;
    }
}

/// Owns the SDP state machine: our offers and the server's, one at a time, in order.
async fn negotiate(
    pc: Arc<dyn PeerConnection>,
    mut rx: mpsc::UnboundedReceiver<Neg>,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    awaiting: Arc<AtomicU64>,
    published: Arc<Mutex<HashMap<String, String>>>,
) {
    let mut next_id = 1u64;
    // A server offer older than the answer to our latest offer was rolled back by the
    // server when it accepted ours: it is stale.
    let mut last_answer_seq = 0u64;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Neg::Publish { tracks, done } => {
                let r: anyhow::Result<ServerFrame> = async {
                    let mut senders = Vec::new();
                    for (t, _) in &tracks {
                        let t: Arc<dyn TrackLocal> = t.clone();
                        senders.push(pc.add_track(t).await?);
                    }
                    let offer = pc.create_offer(None).await?;
                    pc.set_local_description(offer).await?;
                    let sdp = pc
                        .local_description()
                        .await
                        .ok_or_else(|| anyhow!("no local description"))?
                        .sdp;
                    let mids = mids_by_track(&sdp);
                    let mut labels = Vec::new();
                    for (t, source) in &tracks {
                        let tid = t.track_id().await.to_string();
                        let mid = mids.get(&tid).ok_or_else(|| anyhow!("no mid for {tid}"))?;
                        labels.push(json!({"mid": mid, "source": source}));
                    }
                    next_id += 1;
                    let id = 1_000_000 + next_id;
                    let (tx, reply_rx) = oneshot::channel();
                    pending.lock().unwrap().insert(id, tx);
                    awaiting.store(id, Ordering::SeqCst);
                    let _ = out.send(Message::text(
                        json!({"op": "offer", "id": id, "d": {"sdp": sdp, "tracks": labels}})
                            .to_string(),
                    ));
                    let reply = tokio::time::timeout(WAIT, reply_rx).await??;
                    last_answer_seq = reply.seq;
                    let v = reply.to_json();
                    if reply.msg_op() == "answer" {
                        let answer = RTCSessionDescription::answer(
                            v["d"]["sdp"].as_str().unwrap_or_default().to_owned(),
                        )?;
                        pc.set_remote_description(answer).await?;
                        if let Some(list) = v["d"]["tracks"].as_array() {
                            let mut p = published.lock().unwrap();
                            for mt in list {
                                let mid = mt["mid"].as_str().unwrap_or_default();
                                if let Some(src) = labels
                                    .iter()
                                    .find(|l| l["mid"] == mid)
                                    .and_then(|l| l["source"].as_str())
                                {
                                    p.insert(
                                        src.to_owned(),
                                        mt["track_id"].as_str().unwrap_or_default().to_owned(),
                                    );
                                }
                            }
                        }
                    } else {
                        // Refused: take the tracks back out, as a browser client would.
                        pc.set_local_description(RTCSessionDescription::rollback(None)?)
                            .await?;
                        for s in &senders {
                            pc.remove_track(s).await?;
                        }
                    }
                    Ok(reply)
                }
                .await;
                let _ = done.send(r);
            }
            Neg::ServerOffer { seq, offer_id, sdp } => {
                if seq < last_answer_seq {
                    continue;
                }
                let r: anyhow::Result<()> = async {
                    pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
                        .await?;
                    let answer = pc.create_answer(None).await?;
                    pc.set_local_description(answer).await?;
                    let sdp = pc
                        .local_description()
                        .await
                        .ok_or_else(|| anyhow!("no local description"))?
                        .sdp;
                    next_id += 1;
                    let _ = out.send(Message::text(
                        json!({"op": "answer", "id": 2_000_000 + next_id,
                               "d": {"offer_id": offer_id, "sdp": sdp}})
                        .to_string(),
                    ));
                    Ok(())
                }
                .await;
                if let Err(e) = r {
                    eprintln!("answering server offer failed: {e:#}");
                }
            }
        }
    }
}

pub fn is_video(source: &str) -> bool {
    source == "camera" || source == "screen"
}

/// A local track of synthetic Opus (audio sources) or VP8 (video sources).
pub fn make_track(identity: &str, source: &str) -> Arc<TrackLocalStaticRTP> {
    let (kind, codec) = if is_video(source) {
        (RtpCodecKind::Video, vp8())
    } else {
        (RtpCodecKind::Audio, opus())
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{identity}-stream"),
        format!("{identity}-{source}"),
        source.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand_u32()),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// A peer connection outside the `/ws` protocol, for WHIP and WHEP.
pub struct Bare {
    pub pc: Arc<dyn PeerConnection>,
    pub received: Arc<Mutex<HashMap<String, Received>>>,
    pub connected: Arc<AtomicBool>,
}

impl Bare {
    pub async fn new() -> anyhow::Result<Bare> {
        let received = Arc::new(Mutex::new(HashMap::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let pc = new_peer_connection(Handler {
            received: received.clone(),
            connected: connected.clone(),
        })
        .await?;
        Ok(Bare {
            pc,
            received,
            connected,
        })
    }

    /// Creates and applies a local offer; returns its SDP.
    pub async fn offer(&self) -> anyhow::Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        Ok(self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?
            .sdp)
    }

    pub async fn apply_answer(&self, sdp: String) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        Ok(())
    }

    pub fn packets(&self, kind: RtpCodecKind) -> u64 {
        self.received
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.kind == Some(kind))
            .map(|r| r.packets)
            .sum()
    }
}

pub fn spawn_pump(track: Arc<TrackLocalStaticRTP>, video: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(pump(track, video))
}

/// Joins with a bare WebSocket (no media) and returns the reply's op and error code.
pub async fn raw_join(server: &TestServer, token: &str) -> (String, String) {
    raw_join_addr(server.http, token).await
}

pub async fn raw_join_addr(http: SocketAddr, token: &str) -> (String, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .unwrap();
    let _hello = raw_next(&mut ws).await;
    let send = |v: Value| Message::text(v.to_string());
    let _ = ws
        .send(send(json!({"op": "identify", "d": {"token": token}})))
        .await;
    let ready = raw_next(&mut ws).await.unwrap_or(Value::Null);
    if ready["op"] != "ready" {
        return (
            "error".into(),
            ready["d"]["code"].as_str().unwrap_or("").into(),
        );
    }
    let _ = ws.send(send(json!({"op": "join", "id": 1, "d": {}}))).await;
    loop {
        let Some(v) = raw_next(&mut ws).await else {
            return ("closed".into(), String::new());
        };
        if v["id"] == 1 {
            let op = v["op"].as_str().unwrap_or("").to_owned();
            let code = v["d"]["code"].as_str().unwrap_or("").to_owned();
            if op == "joined" {
                // Stay in the room until the test ends.
                tokio::spawn(async move { while raw_next(&mut ws).await.is_some() {} });
            }
            return (op, code);
        }
    }
}

/// `a=msid:<stream> <track>` → `a=mid` of the same m-section.
fn mids_by_track(sdp: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut mid = None;
        let mut track = None;
        for line in section.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.to_owned());
            }
            if let Some(m) = line.strip_prefix("a=msid:") {
                track = m.split_whitespace().nth(1).map(str::to_owned);
            }
        }
        if let (Some(m), Some(t)) = (mid, track) {
            out.insert(t, m);
        }
    }
    out
}

/// Synthetic media: Opus-sized audio every 20 ms; VP8 frames of three packets every 33 ms
/// with a keyframe every 500 ms. Nothing decodes it; the SFU only reads the VP8 keyframe bit.
async fn pump(track: Arc<TrackLocalStaticRTP>, video: bool) {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut seq: u16 = 1;
    let mut ts: u32 = 0;
    let mut frame = 0u64;
    let period = if video { 33 } else { 20 };
    let mut tick = tokio::time::interval(Duration::from_millis(period));
    loop {
        tick.tick().await;
        let packets: Vec<Bytes> = if video {
            let key = frame.is_multiple_of(15);
            (0..3)
                .map(|i| {
                    let mut p = vec![0u8; 1000];
                    p[0] = if i == 0 { 0x10 } else { 0x00 };
                    p[1] = if key { 0x00 } else { 0x01 };
                    Bytes::from(p)
                })
                .collect()
        } else {
            // The frame's number after the TOC byte: receivers match packets by it.
            let mut p = vec![0xfcu8; 80];
            p[1..9].copy_from_slice(&frame.to_be_bytes());
            vec![Bytes::from(p)]
        };
        let n = packets.len();
        for (i, payload) in packets.into_iter().enumerate() {
            let pkt = rtc::rtp::packet::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: video && i + 1 == n,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    // The payload types register_default_codecs gives Opus and VP8.
                    payload_type: if video { 96 } else { 111 },
                    ..Default::default()
                },
                payload,
            };
            seq = seq.wrapping_add(1);
            // Fails until the track is bound by negotiation; keep going.
            let _ = track.write_rtp(pkt).await;
        }
        ts = ts.wrapping_add(if video { 2970 } else { 960 });
        frame += 1;
    }
}

async fn new_peer_connection(handler: Handler) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let config = RTCConfigurationBuilder::new().build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await?;
    Ok(Arc::new(pc))
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u32
}

async fn next_frame<S>(stream: &mut S) -> anyhow::Result<ServerFrame>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .map_err(|_| anyhow!("no frame"))?
            .ok_or_else(|| anyhow!("closed"))??;
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).context("bad server frame");
        }
        if let Message::Close(_) = m {
            bail!("closed");
        }
    }
}

pub trait FrameExt {
    fn msg_op(&self) -> String;
    fn to_json(&self) -> Value;
}

impl FrameExt for ServerFrame {
    fn msg_op(&self) -> String {
        self.to_json()["op"].as_str().unwrap_or_default().to_owned()
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Raw WebSocket for bad-input tests.
pub async fn raw_ws(
    server: &TestServer,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http))
        .await
        .unwrap();
    ws
}

/// Next JSON text frame from a raw socket.
pub async fn raw_next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?;
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}
