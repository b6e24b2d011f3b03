//! webrtc-rs peer connections and synthetic media for the test clients: the event handler
//! that counts what arrives, [`Bare`] for WHIP and WHEP, tracks and their RTP pumps, and
//! bare-socket helpers for bad-input tests.

use super::*;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use parlor_proto::signal::ServerFrame;

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp::header::Header;
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

pub struct Handler {
    pub received: Arc<Mutex<HashMap<String, Received>>>,
    pub connected: Arc<AtomicBool>,
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
                        if kind == RtpCodecKind::Video
                            && p.payload.get(2) == Some(&SIMULCAST_MARK)
                            && let Some(&layer) = p.payload.get(3)
                        {
                            r.layers[usize::from(layer).min(2)] += 1;
                        }
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

/// The simulcast layers [`make_simulcast_track`] sends, lowest first: rid and kbit/s.
/// The top one is above the 1.5 Mbit/s the SFU's bandwidth estimates start at.
pub const SIMULCAST_LAYERS: [(&str, u64); 3] = [("l", 150), ("m", 500), ("h", 2_500)];

/// In a simulcast packet's payload, byte 2; byte 3 is the layer.
const SIMULCAST_MARK: u8 = 0x5c;

/// A camera track of synthetic VP8 in the three [`SIMULCAST_LAYERS`], each its own rid
/// and SSRC.
pub fn make_simulcast_track(identity: &str) -> Arc<TrackLocalStaticRTP> {
    let encodings = SIMULCAST_LAYERS
        .iter()
        .map(|(rid, _)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: (*rid).to_owned(),
                ssrc: Some(rand_u32()),
                ..Default::default()
            },
            codec: vp8(),
            ..Default::default()
        })
        .collect();
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{identity}-stream"),
        format!("{identity}-camera"),
        "camera".to_owned(),
        RtpCodecKind::Video,
        encodings,
    )))
}

/// The header extension ids a simulcast sender tags its packets with, from the answer
/// to its offer: the m-line's mid and each layer's rid, as a browser sends them (this
/// webrtc-rs writes neither itself).
#[derive(Debug, Clone)]
pub struct SimulcastTags {
    mid: Bytes,
    mid_id: u8,
    rid_id: u8,
}

impl SimulcastTags {
    pub fn from_answer(sdp: &str) -> Option<SimulcastTags> {
        let extmap = |uri: &str| {
            sdp.lines()
                .filter_map(|l| l.strip_prefix("a=extmap:"))
                .find(|l| l.split_whitespace().nth(1) == Some(uri))
                .and_then(|l| l.split([' ', '/']).next()?.parse().ok())
        };
        Some(SimulcastTags {
            mid: Bytes::from(
                sdp.lines()
                    .find_map(|l| l.strip_prefix("a=mid:"))?
                    .trim()
                    .to_owned(),
            ),
            mid_id: extmap("urn:ietf:params:rtp-hdrext:sdes:mid")?,
            rid_id: extmap("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id")?,
        })
    }
}

/// Synthetic simulcast VP8: every 20 ms a frame on each layer at its bitrate in packets
/// of at most 1,200 bytes, a keyframe on every layer each 500 ms. Each payload carries
/// [`SIMULCAST_MARK`] and its layer, so a receiver knows which layer reached it.
pub async fn pump_simulcast(track: Arc<TrackLocalStaticRTP>, tags: SimulcastTags) {
    let ssrcs = track.ssrcs().await;
    let mut seqs = [1u16; 3];
    let mut ts: u32 = 0;
    let mut frame = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let key = frame.is_multiple_of(25);
        for (layer, (_, kbps)) in SIMULCAST_LAYERS.iter().enumerate() {
            let Some(&ssrc) = ssrcs.get(layer) else {
                continue;
            };
            let bytes = (kbps * 1000 / 8 / 50) as usize;
            let count = bytes.div_ceil(1200);
            for i in 0..count {
                let mut p = vp8_payload(bytes / count, i == 0, key);
                p[2] = SIMULCAST_MARK;
                p[3] = layer as u8;
                let mut header = rtp_header(seqs[layer], ts, ssrc, VP8_PT, i + 1 == count);
                let rid = Bytes::from_static(SIMULCAST_LAYERS[layer].0.as_bytes());
                if header.set_extension(tags.mid_id, tags.mid.clone()).is_err()
                    || header.set_extension(tags.rid_id, rid).is_err()
                {
                    continue;
                }
                let pkt = rtc::rtp::packet::Packet {
                    header,
                    payload: Bytes::from(p),
                };
                seqs[layer] = seqs[layer].wrapping_add(1);
                // Fails until the track is bound by negotiation; keep going.
                let _ = track.write_rtp(pkt).await;
            }
        }
        ts = ts.wrapping_add(1800);
        frame += 1;
    }
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
pub fn mids_by_track(sdp: &str) -> HashMap<String, String> {
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

/// The payload types register_default_codecs gives VP8 and Opus.
const VP8_PT: u8 = 96;
const OPUS_PT: u8 = 111;

/// A synthetic VP8 payload of `len` bytes: the start of partition 0 on a frame's first
/// packet, the P bit clear on a keyframe (all the SFU reads), zeros after.
fn vp8_payload(len: usize, first: bool, key: bool) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = if first { 0x10 } else { 0x00 };
    p[1] = if key { 0x00 } else { 0x01 };
    p
}

fn rtp_header(seq: u16, ts: u32, ssrc: u32, payload_type: u8, marker: bool) -> Header {
    Header {
        version: 2,
        marker,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
        payload_type,
        ..Default::default()
    }
}

/// Synthetic media: Opus-sized audio every 20 ms; VP8 frames of three packets every 33 ms
/// with a keyframe every 500 ms. Nothing decodes it; the SFU only reads the VP8 keyframe bit.
pub async fn pump(track: Arc<TrackLocalStaticRTP>, video: bool) {
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
                .map(|i| Bytes::from(vp8_payload(1000, i == 0, key)))
                .collect()
        } else {
            // The frame's number after the TOC byte: receivers match packets by it.
            let mut p = vec![0xfcu8; 80];
            p[1..9].copy_from_slice(&frame.to_be_bytes());
            vec![Bytes::from(p)]
        };
        let n = packets.len();
        for (i, payload) in packets.into_iter().enumerate() {
            let pt = if video { VP8_PT } else { OPUS_PT };
            let pkt = rtc::rtp::packet::Packet {
                header: rtp_header(seq, ts, ssrc, pt, video && i + 1 == n),
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

pub async fn new_peer_connection(handler: Handler) -> anyhow::Result<Arc<dyn PeerConnection>> {
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

pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u32
}

pub async fn next_frame<S>(stream: &mut S) -> anyhow::Result<ServerFrame>
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
