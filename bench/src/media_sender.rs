//! The publishing side of a `media` client: its m-lines, and its 20 ms frames of audio
//! and video (one stream, or three simulcast layers), each packet stamped with its send
//! time as it is written. Frames go out whole or, with pacing, spread as a browser's
//! pacer spreads them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use parlor_sfu::udp_sys::realtime_ns;
use serde_json::{Value, json};
use str0m::Rtc;
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::rtp::RtpWrite;

/// What a publishing client sends: audio, and video at `video_kbps` unless `None`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Publish {
    pub video_kbps: Option<u64>,
    /// Video as three simulcast layers ([`LAYERS`]) instead of one stream.
    pub simulcast: bool,
    /// Send as a browser does instead of all of a 20 ms frame at once: audio halfway
    /// between video frames, and a frame's video packets spread at [`PACING_FACTOR`]
    /// times the video bitrate.
    pub paced: bool,
}

/// A publisher's frame interval: an Opus frame, and 50 video frames a second.
pub(crate) const FRAME: Duration = Duration::from_millis(20);

/// libwebrtc's pacer sends video at 2.5 times its target bitrate (audio is not paced).
const PACING_FACTOR: f64 = 2.5;

/// Simulcast layers, lowest first: rid and the share of the video bitrate, as numerator
/// and denominator. At 1,500 kbit/s that is 150, 500 and 1,500, the encodings
/// `docs/protocol.md` §6.6 suggests to browsers.
pub(crate) const LAYERS: [(&str, u64, u64); 3] = [("l", 1, 10), ("m", 1, 3), ("h", 1, 1)];

/// Payloads at least this long are video (audio packets are 100 bytes).
pub(crate) const MIN_VIDEO_PAYLOAD: usize = 250;

/// Stamps a payload with the time now, `CLOCK_REALTIME` nanoseconds: the clock of the
/// kernel's receive times.
pub(crate) fn stamp(payload: &mut [u8]) {
    let n = payload.len();
    payload[n - 8..].copy_from_slice(&realtime_ns().to_be_bytes());
}

/// Packets per 20 ms frame and their size for `kbps` of video: 1200-byte packets, and
/// one smaller packet (at least [`MIN_VIDEO_PAYLOAD`]) when a frame is under 1200 bytes.
fn frame_packets(kbps: u64) -> (u64, usize) {
    let bytes = kbps * 1000 / 8 / 50;
    if bytes >= 1200 {
        (bytes / 1200, 1200)
    } else {
        (1, (bytes as usize).max(MIN_VIDEO_PAYLOAD))
    }
}

/// A publisher's media: audio, and video on one stream or on each simulcast layer.
pub(crate) struct Sender {
    audio: Mid,
    video: Option<Mid>,
    /// The video streams: rid (none without simulcast) and kbit/s.
    layers: Vec<(Option<Rid>, u64)>,
    seq_audio: u64,
    seq_video: [u64; 3],
    keyframe_due: [bool; 3],
    /// Frames sent.
    frames: u64,
    paced: bool,
    /// Packets written at their time, soonest first: audio, or a video layer's index.
    queue: VecDeque<Queued>,
}

/// A packet a [`Sender`] writes when its time comes.
struct Queued {
    due: Instant,
    /// `None` for audio, else the video layer.
    layer: Option<usize>,
    seq: u64,
    rtp_time: u32,
    marker: bool,
    payload: Vec<u8>,
}

impl Sender {
    /// Adds the publisher's m-lines to `rtc`: the offer, its pending state and the track
    /// labels that go with it.
    pub(crate) fn offer(
        rtc: &mut Rtc,
        publish: Publish,
    ) -> anyhow::Result<(Sender, SdpOffer, SdpPendingOffer, Vec<Value>)> {
        let simulcast = publish.simulcast && publish.video_kbps.is_some();
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let sim = simulcast.then(|| {
            let mut s = Simulcast::new();
            for (rid, _, _) in LAYERS {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video = publish
            .video_kbps
            .map(|_| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim));
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
        let mut tracks = vec![json!({"mid": audio.to_string(), "source": "microphone"})];
        if let Some(v) = video {
            let mut t = json!({"mid": v.to_string(), "source": "camera"});
            if simulcast {
                t["layers"] = json!(LAYERS.map(|l| l.0));
            }
            tracks.push(t);
        }
        let layers = match publish.video_kbps {
            Some(kbps) if simulcast => LAYERS
                .iter()
                .map(|&(rid, num, den)| (Some(Rid::from(rid)), kbps * num / den))
                .collect(),
            Some(kbps) => vec![(None, kbps)],
            None => Vec::new(),
        };
        let sender = Sender {
            audio,
            video,
            layers,
            seq_audio: 1,
            seq_video: [1; 3],
            keyframe_due: [true; 3],
            frames: 0,
            paced: publish.paced,
            queue: Default::default(),
        };
        Ok((sender, offer, pending, tracks))
    }

    /// A keyframe request for one layer (`rid`), or for every layer.
    pub(crate) fn keyframe_requested(&mut self, rid: Option<Rid>) {
        for (due, (r, _)) in self.keyframe_due.iter_mut().zip(&self.layers) {
            if rid.is_none() || *r == rid {
                *due = true;
            }
        }
    }

    /// Queues one 20 ms frame: a 100-byte audio packet, and each video layer's bitrate at
    /// 50 frames/s, a keyframe when asked and every 2 s; then writes what is due.
    pub(crate) fn frame(&mut self, rtc: &mut Rtc, sent: &AtomicU64) {
        let now = Instant::now();
        let n = self.frames;
        self.frames += 1;
        let audio_at = if self.paced { now + FRAME / 2 } else { now };
        let audio = Queued {
            due: audio_at,
            layer: None,
            seq: self.seq_audio,
            rtp_time: (n * 960) as u32,
            marker: false,
            payload: vec![0xfc; 100],
        };
        self.seq_audio += 1;
        // A frame's packets go out in order, one every packet's time at the pacing rate.
        let video_kbps: u64 = self.layers.iter().map(|l| l.1).sum();
        let gap = |bytes: usize| {
            let bits_per_s = PACING_FACTOR * video_kbps as f64 * 1000.0;
            Duration::from_secs_f64(bytes as f64 * 8.0 / bits_per_s)
        };
        let mut at = now;
        let mut video = Vec::new();
        if self.video.is_some() {
            for (i, (_, kbps)) in self.layers.iter().enumerate() {
                let key = std::mem::take(&mut self.keyframe_due[i]) || n.is_multiple_of(100);
                let (count, size) = frame_packets(*kbps);
                for k in 0..count {
                    let mut p = vec![0u8; size];
                    // VP8: start of partition 0 in the first packet; P bit 0 on a keyframe.
                    p[0] = if k == 0 { 0x10 } else { 0 };
                    p[1] = if key { 0 } else { 1 };
                    p[size - 9] = i as u8;
                    video.push(Queued {
                        due: at,
                        layer: Some(i),
                        seq: self.seq_video[i],
                        rtp_time: (n * 1800) as u32,
                        marker: k + 1 == count,
                        payload: p,
                    });
                    self.seq_video[i] += 1;
                    if self.paced {
                        at += gap(size);
                    }
                }
            }
        }
        // Behind whatever is still queued from the last frame, in the order they are due
        // (a stable sort: a frame's packets keep their order).
        self.queue.push_back(audio);
        self.queue.extend(video);
        self.queue.make_contiguous().sort_by_key(|q| q.due);
        self.send_due(rtc, sent);
    }

    /// When the next queued packet is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|q| q.due)
    }

    /// Writes every queued packet whose time has come, stamped with the time now; counts
    /// them in `sent`.
    pub(crate) fn send_due(&mut self, rtc: &mut Rtc, sent: &AtomicU64) {
        let now = Instant::now();
        // Called on every wake-up of the client's loop: most have nothing due.
        if self.next_due().is_none_or(|t| t > now) {
            return;
        }
        let pt = |c: Codec| {
            let params = rtc.codec_config().params();
            params.iter().find(|p| p.spec().codec == c).map(|p| p.pt())
        };
        let (pt_a, pt_v) = (pt(Codec::Opus), pt(Codec::Vp8));
        let mut api = rtc.direct_api();
        while self.queue.front().is_some_and(|q| q.due <= now) {
            let Some(mut q) = self.queue.pop_front() else {
                break;
            };
            let (mid, rid, pt) = match q.layer {
                None => (Some(self.audio), None, pt_a),
                Some(i) => (self.video, self.layers[i].0, pt_v),
            };
            let (Some(mid), Some(pt)) = (mid, pt) else {
                continue;
            };
            let Some(s) = api.stream_tx_by_mid(mid, rid) else {
                continue;
            };
            stamp(&mut q.payload);
            let w = RtpWrite::new(pt, q.seq.into(), q.rtp_time, now, q.payload);
            s.write_rtp(if q.layer.is_some() {
                w.marker(q.marker).nackable(true)
            } else {
                w
            });
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_frame_spreads_its_video_and_sends_its_audio_between_frames() {
        let frame = |paced| {
            let mut rtc = Rtc::builder().set_rtp_mode(true).build(Instant::now());
            let publish = Publish {
                video_kbps: Some(1200),
                simulcast: false,
                paced,
            };
            let (mut s, ..) = Sender::offer(&mut rtc, publish).unwrap();
            let start = Instant::now();
            s.frame(&mut rtc, &AtomicU64::new(0));
            // The first video packet went at once; what is left, by when it is due.
            let left: Vec<_> = s.queue.iter().map(|q| (q.layer, q.due - start)).collect();
            left
        };
        let left = frame(true);
        assert_eq!(left.len(), 2, "{left:?}");
        // The second 1,200-byte packet one packet's time at 3 Mbit/s later: 3.2 ms.
        assert_eq!(left[0].0, Some(0));
        assert!(left[0].1 >= Duration::from_micros(3200), "{left:?}");
        assert!(left[0].1 < Duration::from_micros(4200), "{left:?}");
        // The audio halfway to the next frame.
        assert_eq!(left[1].0, None);
        assert!(left[1].1 >= FRAME / 2 && left[1].1 < FRAME, "{left:?}");
        // Unpaced, the whole frame goes at once.
        assert!(frame(false).is_empty());
    }

    #[test]
    fn frames_are_full_packets_and_a_small_one_for_low_bitrates() {
        // 1,200 kbit/s: 3,000 bytes a frame, two full packets (as before simulcast).
        assert_eq!(frame_packets(1200), (2, 1200));
        assert_eq!(frame_packets(1500), (3, 1200));
        // The low layer of 1,500: 150 kbit/s, one 375-byte packet.
        assert_eq!(frame_packets(150), (1, 375));
        assert_eq!(frame_packets(10), (1, MIN_VIDEO_PAYLOAD));
    }
}
