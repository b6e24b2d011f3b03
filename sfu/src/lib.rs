//! Parlor's SFU: routes audio, video and screen tracks between participants.
//!
//! [`core`] is the sans-IO forwarding logic. The runtime owns the UDP sockets and the
//! worker threads: each worker owns the rooms placed on it and their `str0m::Rtc`s, so a
//! room is forwarded by one thread without locks. Signaling drives it through
//! [`control::SfuControl`].

pub mod core;
pub mod metrics;
mod peer;
pub mod sdp_scan;
mod udp;
pub mod udp_sys;
mod worker;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use parlor_proto::{ParticipantId, RoomCaps, RoomId};

/// The control interface this SFU serves ([`parlor_proto::control`]).
pub use parlor_proto::control::{
    self, Cascade, CloseReason, JoinRequest, Joined, Moderation, ParticipantHandle, Replied, Reply,
    Request, RoomEvent, RoomEvents, RoomStatus, SfuControl, SfuError,
};
use parlor_proto::signal::ParticipantInfo;

/// The node name in the handles of an in-process SFU.
pub const LOCAL_NODE: &str = "local";
pub use core::CapsConfig;
pub use metrics::Metrics;

use worker::{Command, Worker, WorkerConfig};

/// How to run the SFU.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Address the media sockets bind to.
    pub bind_ip: IpAddr,
    /// First UDP port; worker `i` uses `media_port + i`. 0 picks free ports.
    pub media_port: u16,
    /// Address announced in ICE candidates. Defaults to `bind_ip`, or, when binding to all
    /// interfaces, 127.0.0.1 and this machine's primary LAN address.
    pub public_ip: Option<IpAddr>,
    /// Caps for rooms that do not set their own.
    pub caps: CapsConfig,
    /// This node's name in participant handles ([`LOCAL_NODE`] in one process).
    pub node: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 0,
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            media_port: 7880,
            public_ip: None,
            caps: CapsConfig::default(),
            node: LOCAL_NODE.into(),
        }
    }
}

/// The address this machine uses toward the rest of the network, if it has one. Connecting
/// a UDP socket only looks up a route; nothing is sent.
fn primary_lan_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Checks that an SDP offer can be applied, before anything is set up for it.
/// Whether str0m can apply an SDP offer, after the checks of [`sdp_scan`].
fn check_offer(sdp: &str) -> Result<(), SfuError> {
    sdp_scan::scan(sdp).map_err(SfuError::InvalidSdp)?;
    str0m::change::SdpOffer::from_sdp_string(&sdp_scan::normalize_bundle(sdp))
        .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
    Ok(())
}

struct WorkerHandle {
    tx: mpsc::Sender<Command>,
    addr: SocketAddr,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The in-process SFU: a set of worker threads.
pub struct Sfu {
    workers: Vec<WorkerHandle>,
    node: String,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("media_addrs", &self.media_addrs())
            .finish()
    }
}

impl Sfu {
    /// Binds the media sockets and starts the workers.
    pub fn start(config: &Config, metrics: Metrics) -> io::Result<Sfu> {
        let n = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let provider = str0m::crypto::from_feature_flags();
        let advertise_ips: Vec<IpAddr> = match config.public_ip {
            Some(ip) => vec![ip],
            None if config.bind_ip.is_unspecified() => {
                let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
                ips.extend(primary_lan_ip());
                ips
            }
            None => vec![config.bind_ip],
        };
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let port = if config.media_port == 0 {
                0
            } else {
                config.media_port + i as u16
            };
            let (tx, rx) = mpsc::channel(1024);
            // Sockets are bound here so a taken port fails startup, not a worker.
            let std_addr = SocketAddr::new(config.bind_ip, port);
            let cert = provider
                .dtls_provider
                .generate_certificate()
                .ok_or_else(|| io::Error::other("cannot generate a DTLS certificate"))?;
            let caps = config.caps;
            let metrics = metrics.clone();
            let ips = advertise_ips.clone();
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("sfu-worker-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let udp = match udp::Udp::bind(std_addr) {
                            Ok(u) => u,
                            Err(e) => {
                                let _ = addr_tx.send(Err(e));
                                return;
                            }
                        };
                        let local = udp.local;
                        let mut w = Worker::new(WorkerConfig {
                            index: i,
                            udp,
                            advertised: ips
                                .iter()
                                .map(|ip| SocketAddr::new(*ip, local.port()))
                                .collect(),
                            caps,
                            cert,
                            metrics,
                            commands: rx,
                        });
                        // The worker's series exist (at zero) once `start` returns.
                        w.publish_metrics();
                        let _ = addr_tx.send(Ok(local));
                        w.run().await;
                    });
                })?;
            let local = addr_rx
                .recv()
                .map_err(|_| io::Error::other("SFU worker died at startup"))??;
            workers.push(WorkerHandle {
                tx,
                addr: SocketAddr::new(advertise_ips[0], local.port()),
                thread: Mutex::new(Some(thread)),
            });
        }
        Ok(Sfu {
            workers,
            node: config.node.clone(),
        })
    }

    /// The advertised media address of each worker.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.addr).collect()
    }

    /// The worker a room lives on.
    /// The worker that holds a participant, and its key there: its room's worker.
    fn worker_of(&self, who: &ParticipantHandle) -> Option<(&WorkerHandle, core::PeerKey)> {
        if who.node != self.node {
            return None;
        }
        let key = core::PeerKey(u32::try_from(who.key).ok()?);
        Some((&self.workers[self.worker_for(&who.room)], key))
    }

    fn worker_for(&self, room: &RoomId) -> usize {
        let mut h = DefaultHasher::new();
        room.hash(&mut h);
        (h.finish() % self.workers.len() as u64) as usize
    }

    /// Tells every participant the server is going away, closes their sessions and stops
    /// the workers.
    pub async fn shutdown(&self) {
        for w in &self.workers {
            let (tx, rx) = oneshot::channel();
            if w.tx.send(Command::Shutdown(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
        for w in &self.workers {
            let handle = w.thread.lock().ok().and_then(|mut t| t.take());
            if let Some(h) = handle {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
        }
    }
}

#[async_trait]
impl SfuControl for Sfu {
    async fn join(&self, req: JoinRequest) -> Result<(Joined, RoomEvents), SfuError> {
        let w = &self.workers[self.worker_for(&req.room)];
        let (events, stream) = RoomEvents::channel();
        let (tx, rx) = oneshot::channel();
        w.tx.send(Command::Join(req, events, tx))
            .await
            .map_err(|_| SfuError::Unavailable)?;
        let mut joined: Joined = rx.await.map_err(|_| SfuError::Unavailable)??;
        joined.handle.node.clone_from(&self.node);
        Ok((joined, stream))
    }

    async fn request(&self, who: &ParticipantHandle, req: Request) -> Replied {
        let Some((w, key)) = self.worker_of(who) else {
            return Replied::failed(SfuError::NotJoined);
        };
        let (tx, rx) = oneshot::channel();
        if w.tx.send(Command::Request(key, req, tx)).await.is_err() {
            return Replied::failed(SfuError::Unavailable);
        }
        rx.await
            .unwrap_or_else(|_| Replied::failed(SfuError::Unavailable))
    }

    async fn leave(&self, who: &ParticipantHandle, reason: CloseReason) {
        if let Some((w, key)) = self.worker_of(who) {
            let _ = w.tx.send(Command::Leave(key, reason)).await;
        }
    }

    async fn set_caps(&self, room: &RoomId, caps: RoomCaps) -> Result<RoomStatus, SfuError> {
        let w = &self.workers[self.worker_for(room)];
        let (tx, rx) = oneshot::channel();
        w.tx.send(Command::SetCaps(room.clone(), Some(caps), tx))
            .await
            .map_err(|_| SfuError::Unavailable)?;
        rx.await.map_err(|_| SfuError::Unavailable)
    }

    async fn room_status(&self, room: &RoomId) -> Result<RoomStatus, SfuError> {
        let w = &self.workers[self.worker_for(room)];
        let (tx, rx) = oneshot::channel();
        w.tx.send(Command::SetCaps(room.clone(), None, tx))
            .await
            .map_err(|_| SfuError::Unavailable)?;
        rx.await.map_err(|_| SfuError::Unavailable)
    }

    async fn check_offer(&self, sdp: &str) -> Result<(), SfuError> {
        check_offer(sdp)
    }

    async fn moderate(
        &self,
        room: &RoomId,
        identity: &ParticipantId,
        action: Moderation,
    ) -> Result<(), SfuError> {
        let w = &self.workers[self.worker_for(room)];
        let (tx, rx) = oneshot::channel();
        w.tx.send(Command::Moderate(
            room.clone(),
            identity.clone(),
            action,
            tx,
        ))
        .await
        .map_err(|_| SfuError::Unavailable)?;
        rx.await.map_err(|_| SfuError::Unavailable)?
    }
}

#[async_trait]
impl Cascade for Sfu {
    fn pipe_addr(&self, room: &RoomId) -> Option<SocketAddr> {
        self.workers.get(self.worker_for(room)).map(|w| w.addr)
    }

    async fn pipe_out(
        &self,
        room: &RoomId,
        to: SocketAddr,
    ) -> Result<(Vec<ParticipantInfo>, RoomEvents, Vec<u8>), SfuError> {
        let w = &self.workers[self.worker_for(room)];
        let (events, stream) = RoomEvents::channel();
        let (tx, rx) = oneshot::channel();
        w.tx.send(Command::PipeOut(room.clone(), to, events, tx))
            .await
            .map_err(|_| SfuError::Unavailable)?;
        let (people, key) = rx.await.map_err(|_| SfuError::Unavailable)??;
        Ok((people, stream, key))
    }

    async fn pipe_in(
        &self,
        room: &RoomId,
        from: SocketAddr,
        participants: Vec<ParticipantInfo>,
        key: Vec<u8>,
    ) -> Result<(), SfuError> {
        let w = &self.workers[self.worker_for(room)];
        let (tx, rx) = oneshot::channel();
        w.tx.send(Command::PipeIn(room.clone(), from, participants, key, tx))
            .await
            .map_err(|_| SfuError::Unavailable)?;
        rx.await.map_err(|_| SfuError::Unavailable)?
    }

    async fn mirror(&self, room: &RoomId, from: SocketAddr, event: RoomEvent) {
        let w = &self.workers[self.worker_for(room)];
        let _ = w.tx.send(Command::Mirror(room.clone(), from, event)).await;
    }

    async fn unpipe(&self, room: &RoomId, peer: SocketAddr) {
        let w = &self.workers[self.worker_for(room)];
        let _ = w.tx.send(Command::Unpipe(room.clone(), peer)).await;
    }

    async fn local_members(&self, room: &RoomId) -> u32 {
        let w = &self.workers[self.worker_for(room)];
        let (tx, rx) = oneshot::channel();
        if w.tx
            .send(Command::LocalMembers(room.clone(), tx))
            .await
            .is_err()
        {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}
