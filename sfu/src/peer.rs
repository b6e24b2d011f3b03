//! One participant's WebRTC session on a worker: its `Rtc`, what it publishes, and the
//! outgoing m-lines that carry other participants' tracks to it.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::format::Codec as StrCodec;
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::Ssrc;

use parlor_proto::{MediaKind, ParticipantId, RoomId, TrackId};

use crate::control::{CloseReason, EventSender, RoomEvent};
use crate::core::codec::Codec;
use crate::core::{PeerKey, TrackKey};

/// An m-line this participant publishes on.
#[derive(Debug)]
pub(crate) struct Published {
    pub mid: Mid,
    pub track: TrackKey,
    /// Simulcast rids, lowest first; empty without simulcast.
    pub rids: Vec<Rid>,
    /// NACKs sent upstream as of the last stats report (str0m's counts are cumulative).
    pub stat_nacks: u64,
}

/// Where an outgoing m-line is in its negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutState {
    /// Wanted; goes into the next server offer.
    ToOpen,
    /// In a server offer awaiting the answer.
    Negotiating,
    /// Negotiated: packets flow.
    Open,
    /// To be stopped in the next server offer.
    ToStop,
    /// Stopped in a server offer awaiting the answer.
    NegotiatingStop,
}

/// An outgoing m-line carrying one track to this participant.
#[derive(Debug)]
pub(crate) struct Out {
    pub track: TrackKey,
    pub track_id: TrackId,
    pub owner: ParticipantId,
    pub kind: MediaKind,
    pub state: OutState,
    pub mid: Option<Mid>,
    pub ssrc: Option<Ssrc>,
    /// Negotiated payload type per forwarded codec, resolved on first use.
    pts: [Option<Option<Pt>>; 4],
    /// Packets written by the forwarder.
    pub written: u64,
    /// As of the last stats report: str0m's cumulative sent packets and NACKs received,
    /// and `written` then. Sent minus written is retransmissions.
    pub stat_packets: u64,
    pub stat_nacks: u64,
    pub stat_written: u64,
}

impl Out {
    pub fn new(track: TrackKey, track_id: TrackId, owner: ParticipantId, kind: MediaKind) -> Out {
        Out {
            track,
            track_id,
            owner,
            kind,
            state: OutState::ToOpen,
            mid: None,
            ssrc: None,
            pts: [None; 4],
            written: 0,
            stat_packets: 0,
            stat_nacks: 0,
            stat_written: 0,
        }
    }

    /// The payload type this participant's session uses for `codec` on this m-line.
    pub fn pt(&mut self, codec: Codec, rtc: &Rtc) -> Option<Pt> {
        let i = codec as usize;
        if let Some(pt) = self.pts[i] {
            return pt;
        }
        let want = match codec {
            Codec::Opus => StrCodec::Opus,
            Codec::Vp8 => StrCodec::Vp8,
            Codec::Vp9 => StrCodec::Vp9,
            Codec::H264 => StrCodec::H264,
        };
        let remote = self.mid.and_then(|m| rtc.media(m)).map(|m| m.remote_pts());
        let pt = rtc
            .codec_config()
            .params()
            .iter()
            .filter(|p| p.spec().codec == want)
            .find(|p| remote.is_none_or(|r| r.contains(&p.pt())))
            .map(|p| p.pt());
        self.pts[i] = Some(pt);
        pt
    }
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub offer_id: u64,
    pub offer: SdpPendingOffer,
    /// The offer restarts ICE; a rolled-back restart is offered again.
    pub ice_restart: bool,
}

pub(crate) struct Peer {
    pub key: PeerKey,
    pub room: RoomId,
    pub identity: ParticipantId,
    pub hidden: bool,
    /// A WHEP viewer: its m-lines are fixed by its one offer and never renegotiated.
    pub whep: bool,
    /// M-lines the client unpublished; still sending until its next offer stops them.
    pub unpublished: Vec<Mid>,
    pub rtc: Rtc,
    pub ufrag: String,
    pub events: EventSender,
    pub next_timeout: Instant,
    /// Has output to poll.
    pub dirty: bool,
    pub published: Vec<Published>,
    /// SSRC → (track, layer, codec) for incoming RTP, filled on first sight of an SSRC.
    pub ssrc_map: Vec<(Ssrc, TrackKey, usize, Codec)>,
    /// Outgoing m-lines, indexed by slot; `None` is a free slot.
    pub outs: Vec<Option<Out>>,
    pub pending: Option<Pending>,
    pub next_offer_id: u64,
    pub ice_restart: bool,
    pub addrs: Vec<SocketAddr>,
    /// Set when the session must go (error, dead transport); removed by the worker.
    pub closing: Option<CloseReason>,
    /// The bitrate its bandwidth estimator was last told to probe toward, bits/s.
    pub bwe_desired: u64,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("key", &self.key)
            .field("room", &self.room)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Takes a free slot for a new outgoing m-line.
    pub fn add_out(&mut self, out: Out) -> u32 {
        if let Some(i) = self.outs.iter().position(Option::is_none) {
            self.outs[i] = Some(out);
            i as u32
        } else {
            self.outs.push(Some(out));
            (self.outs.len() - 1) as u32
        }
    }

    pub fn out_for_track(&self, track: TrackKey) -> Option<u32> {
        self.outs
            .iter()
            .position(|o| {
                o.as_ref().is_some_and(|o| {
                    o.track == track
                        && !matches!(o.state, OutState::ToStop | OutState::NegotiatingStop)
                })
            })
            .map(|i| i as u32)
    }

    pub fn out_by_mid(&self, mid: Mid) -> Option<u32> {
        self.outs
            .iter()
            .position(|o| o.as_ref().is_some_and(|o| o.mid == Some(mid)))
            .map(|i| i as u32)
    }

    /// Marks an outgoing m-line for removal; never-negotiated ones are just dropped.
    pub fn stop_out(&mut self, slot: u32) {
        let Some(entry) = self.outs.get_mut(slot as usize) else {
            return;
        };
        match entry.as_ref().map(|o| o.state) {
            Some(_) if self.whep => *entry = None,
            Some(OutState::ToOpen) => *entry = None,
            Some(OutState::Open | OutState::Negotiating) => {
                if let Some(o) = entry.as_mut() {
                    o.state = OutState::ToStop;
                }
            }
            _ => {}
        }
    }

    pub fn needs_negotiation(&self) -> bool {
        !self.whep && self.ice_restart
            || self
                .outs
                .iter()
                .flatten()
                .any(|o| matches!(o.state, OutState::ToOpen) || (o.state == OutState::ToStop))
    }

    /// A client offer invalidated our pending offer: what it carried goes in the next one.
    pub fn roll_back_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.redo_offer(pending.ice_restart);
        }
    }

    /// An offer of ours did not take: its changes go in the next one.
    pub fn redo_offer(&mut self, ice_restart: bool) {
        self.ice_restart |= ice_restart;
        for o in self.outs.iter_mut().flatten() {
            match o.state {
                OutState::Negotiating => {
                    o.state = OutState::ToOpen;
                    o.mid = None;
                }
                OutState::NegotiatingStop => o.state = OutState::ToStop,
                _ => {}
            }
        }
    }

    pub fn published_by_mid(&self, mid: Mid) -> Option<&Published> {
        self.published.iter().find(|p| p.mid == mid)
    }

    pub fn published_track(&self, track: TrackKey) -> Option<&Published> {
        self.published.iter().find(|p| p.track == track)
    }

    /// Queues an event for the participant. A full queue means signaling is not keeping
    /// up: the participant is closed rather than the worker blocked.
    pub fn send(&mut self, ev: RoomEvent) {
        if self.events.try_send(ev).is_err() && self.closing.is_none() {
            self.closing = Some(CloseReason::SlowConsumer);
        }
    }
}
