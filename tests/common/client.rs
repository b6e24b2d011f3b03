//! The webrtc-rs participant that speaks the `/ws` protocol ([`Client`]): its reader, and
//! the negotiator that runs its offers and the server's one at a time.

use super::*;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use parlor_proto::signal::ServerFrame;

use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::PeerConnection;

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
    /// For video from [`pump_simulcast`]: packets received of each layer, lowest first.
    pub layers: [u64; 3],
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
        let (mut sink, mut stream) = open_ws(http).await?;
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
        let (mut sink, mut stream) = open_ws(http).await?;
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
        let reply = self.negotiate_publish(tracks.clone()).await?;
        if reply.msg_op() == "answer" {
            for (t, source) in tracks {
                self.pumps.push(tokio::spawn(pump(t, is_video(source))));
            }
        }
        Ok(reply)
    }

    /// Publishes a camera as three simulcast layers ([`SIMULCAST_KBPS`]) and pumps them.
    pub async fn publish_simulcast_camera(&mut self) -> anyhow::Result<ServerFrame> {
        let track = make_simulcast_track(&self.identity);
        let reply = self
            .negotiate_publish(vec![(track.clone(), "camera")])
            .await?;
        if reply.msg_op() == "answer" {
            let answer = reply.to_json();
            let sdp = answer["d"]["sdp"].as_str().unwrap_or_default();
            let tags = SimulcastTags::from_answer(sdp)
                .ok_or_else(|| anyhow!("no mid or rid extension in the answer: {sdp}"))?;
            self.pumps.push(tokio::spawn(pump_simulcast(track, tags)));
        }
        Ok(reply)
    }

    /// Offers `tracks` with their source labels; the server's reply to the offer.
    async fn negotiate_publish(
        &self,
        tracks: Vec<(Arc<TrackLocalStaticRTP>, &'static str)>,
    ) -> anyhow::Result<ServerFrame> {
        let (done, rx) = oneshot::channel();
        self.neg
            .send(Neg::Publish { tracks, done })
            .map_err(|_| anyhow!("negotiator gone"))?;
        tokio::time::timeout(WAIT, rx).await??
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

/// A socket to the signaling node at `http`, split, past its `hello`.
async fn open_ws(http: SocketAddr) -> anyhow::Result<(WsSink, WsStream)> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
        .await
        .context("ws connect")?;
    let (sink, mut stream) = ws.split();
    let hello = next_frame(&mut stream).await?;
    if hello.msg_op() != "hello" {
        bail!("expected hello, got {}", hello.to_json());
    }
    Ok((sink, stream))
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
                        let mut label = json!({"mid": mid, "source": source});
                        let rids: Vec<String> = t
                            .codings()
                            .await
                            .into_iter()
                            .map(|c| c.rtp_coding_parameters.rid)
                            .filter(|rid| !rid.is_empty())
                            .collect();
                        if !rids.is_empty() {
                            label["layers"] = json!(rids);
                        }
                        labels.push(label);
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
