//! What crosses a pipe between SFU nodes (`cascade.rs`): RTP packets with their payload
//! types, SSRCs and audio level, RTCP PLIs, SRTP under a pipe's key, and the extension of
//! sequence numbers at the receiving end.

use super::*;

/// Payload types on a pipe, one per codec.
const PT_OPUS: u8 = 111;
const PT_VP8: u8 = 96;
const PT_VP9: u8 = 98;
const PT_H264: u8 = 102;
/// The one-byte header extension id carrying the audio level (RFC 6464) on a pipe.
const EXT_AUDIO_LEVEL: u8 = 1;

pub(super) fn pt_of(c: Codec) -> u8 {
    match c {
        Codec::Opus => PT_OPUS,
        Codec::Vp8 => PT_VP8,
        Codec::Vp9 => PT_VP9,
        Codec::H264 => PT_H264,
    }
}

pub(super) fn codec_of(pt: u8) -> Option<Codec> {
    match pt {
        PT_OPUS => Some(Codec::Opus),
        PT_VP8 => Some(Codec::Vp8),
        PT_VP9 => Some(Codec::Vp9),
        PT_H264 => Some(Codec::H264),
        _ => None,
    }
}

/// The SSRC a track's layer has on a pipe: FNV-1a of the room, the sending node's track
/// id and the layer.
pub(super) fn pipe_ssrc(room: &RoomId, track: &TrackId, layer: usize) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in room
        .as_str()
        .bytes()
        .chain([b'/'])
        .chain(track.as_str().bytes())
        .chain([b'/', layer as u8])
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Whether a datagram is RTCP rather than RTP (RFC 5761: packet types 192–223).
pub(super) fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && (192..=223).contains(&data[1])
}

/// An RTP packet as a pipe carries it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PipePacket<'a> {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub audio_level: Option<i8>,
    pub payload: &'a [u8],
}

impl PipePacket<'_> {
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        let ext = self.audio_level.is_some();
        out.push(0x80 | if ext { 0x10 } else { 0 });
        out.push(u8::from(self.marker) << 7 | self.pt);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        if let Some(level) = self.audio_level {
            // RFC 8285 one-byte header: one 4-byte word holding one element.
            out.extend_from_slice(&[0xBE, 0xDE, 0, 1]);
            out.extend_from_slice(&[EXT_AUDIO_LEVEL << 4, level.unsigned_abs() & 0x7f, 0, 0]);
        }
        out.extend_from_slice(self.payload);
    }

    pub(super) fn parse(data: &[u8]) -> Option<PipePacket<'_>> {
        if data.len() < 12 || data[0] >> 6 != 2 {
            return None;
        }
        let padding = data[0] & 0x20 != 0;
        let has_ext = data[0] & 0x10 != 0;
        let cc = usize::from(data[0] & 0x0f);
        let mut at = 12 + 4 * cc;
        let mut audio_level = None;
        if has_ext {
            let head = data.get(at..at + 4)?;
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let body = data.get(at + 4..at + 4 + 4 * words)?;
            if head[..2] == [0xBE, 0xDE] {
                let mut i = 0;
                while i < body.len() {
                    let id = body[i] >> 4;
                    let len = usize::from(body[i] & 0x0f) + 1;
                    if id == 0 {
                        i += 1;
                        continue;
                    }
                    if id == 15 {
                        break;
                    }
                    if id == EXT_AUDIO_LEVEL && len >= 1 {
                        audio_level = body.get(i + 1).map(|b| -((b & 0x7f) as i8));
                    }
                    i += 1 + len;
                }
            }
            at += 4 + 4 * words;
        }
        let mut end = data.len();
        if padding {
            end = end.checked_sub(usize::from(*data.last()?))?;
        }
        Some(PipePacket {
            pt: data[1] & 0x7f,
            marker: data[1] & 0x80 != 0,
            seq: u16::from_be_bytes([data[2], data[3]]),
            ts: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            audio_level,
            payload: data.get(at..end)?,
        })
    }
}

/// An RTCP PLI (RFC 4585 §6.3.1) for `media_ssrc`. Its sender SSRC is the media SSRC
/// too: it stays readable under SRTCP, so the sending node finds the pipe's key by it.
pub(super) fn pli(media_ssrc: u32) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0] = 0x81; // V=2, FMT=1
    p[1] = 206; // payload-specific feedback
    p[3] = 2; // length: 3 words - 1
    p[4..8].copy_from_slice(&media_ssrc.to_be_bytes());
    p[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    p
}

/// The SRTP profile of pipes, and its keying material: a 16-byte key, a 12-byte salt.
const PIPE_PROFILE: rtc_srtp::protection_profile::ProtectionProfile =
    rtc_srtp::protection_profile::ProtectionProfile::AeadAes128Gcm;
pub(super) const PIPE_KEY_LEN: usize = 28;

/// Fresh keying material for a pipe.
pub(super) fn new_pipe_key() -> Vec<u8> {
    (0..PIPE_KEY_LEN).map(|_| rand::random::<u8>()).collect()
}

/// One end of a pipe's SRTP: sealing what it sends, opening what it receives.
pub(super) struct PipeCrypto(rtc_srtp::context::Context);

impl PipeCrypto {
    pub(super) fn new(key: &[u8]) -> Option<PipeCrypto> {
        if key.len() != PIPE_KEY_LEN {
            return None;
        }
        let provider = rtc_crypto::default_provider().ok()?;
        rtc_srtp::context::Context::new(
            &key[..16],
            &key[16..],
            PIPE_PROFILE,
            None,
            None,
            provider.crypto(),
        )
        .ok()
        .map(PipeCrypto)
    }

    pub(super) fn seal_rtp(&mut self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt_rtp(plain).ok().map(|b| b.to_vec())
    }

    pub(super) fn open_rtp(&mut self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt_rtp(sealed).ok().map(|b| b.to_vec())
    }

    pub(super) fn seal_rtcp(&mut self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt_rtcp(plain).ok().map(|b| b.to_vec())
    }

    pub(super) fn open_rtcp(&mut self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt_rtcp(sealed).ok().map(|b| b.to_vec())
    }
}

/// The media SSRCs of the PLIs in an RTCP compound packet.
pub(super) fn plis(data: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let words = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        let len = 4 * (words + 1);
        if data[at] >> 6 != 2 || at + len > data.len() {
            break;
        }
        if data[at + 1] == 206 && data[at] & 0x1f == 1 && len >= 12 {
            out.push(u32::from_be_bytes([
                data[at + 8],
                data[at + 9],
                data[at + 10],
                data[at + 11],
            ]));
        }
        at += len;
    }
    out
}

/// Extends a 16-bit sequence number after `last`.
pub(super) fn extend_seq(last: Option<u64>, seq: u16) -> u64 {
    match last {
        None => u64::from(seq) + (1 << 16),
        Some(last) => {
            let delta = i64::from(seq.wrapping_sub(last as u16) as i16);
            (last as i64 + delta).max(0) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_packets_read_back_as_written() {
        let p = PipePacket {
            pt: PT_OPUS,
            marker: true,
            seq: 65_535,
            ts: 0xdead_beef,
            ssrc: 42,
            audio_level: Some(-30),
            payload: b"opus",
        };
        let mut buf = Vec::new();
        p.write(&mut buf);
        assert_eq!(PipePacket::parse(&buf), Some(p));
        assert!(!is_rtcp(&buf));
        let plain = PipePacket {
            pt: PT_VP8,
            marker: false,
            seq: 7,
            ts: 9,
            ssrc: 1,
            audio_level: None,
            payload: &[1, 2, 3],
        };
        plain.write(&mut buf);
        assert_eq!(buf.len(), 15);
        assert_eq!(PipePacket::parse(&buf), Some(plain));
        assert_eq!(PipePacket::parse(&buf[..11]), None);
    }

    #[test]
    fn pipes_are_srtp_both_ways_and_refuse_what_was_altered() {
        let key = new_pipe_key();
        let (mut sender, mut receiver) = (
            PipeCrypto::new(&key).unwrap_or_else(|| unreachable!()),
            PipeCrypto::new(&key).unwrap_or_else(|| unreachable!()),
        );
        let mut plain = Vec::new();
        PipePacket {
            pt: PT_VP8,
            marker: true,
            seq: 7,
            ts: 9,
            ssrc: 1234,
            audio_level: None,
            payload: b"a keyframe, perhaps",
        }
        .write(&mut plain);
        let sealed = sender.seal_rtp(&plain).unwrap_or_default();
        assert_ne!(sealed, plain);
        assert!(
            !sealed.windows(8).any(|w| w == b"keyframe"),
            "the payload is hidden"
        );
        assert_eq!(
            sealed[8..12],
            1234u32.to_be_bytes(),
            "the SSRC stays readable"
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(receiver.open_rtp(&altered).is_none());
        assert_eq!(receiver.open_rtp(&sealed), Some(plain));
        // PLIs go back under the same key as SRTCP.
        let pli = receiver.seal_rtcp(&pli(1234)).unwrap_or_default();
        assert!(is_rtcp(&pli));
        assert_eq!(pli[4..8], 1234u32.to_be_bytes());
        let opened = sender.open_rtcp(&pli).unwrap_or_default();
        assert_eq!(plis(&opened), [1234]);
        // Another key opens nothing.
        let mut stranger = PipeCrypto::new(&new_pipe_key()).unwrap_or_else(|| unreachable!());
        assert!(stranger.open_rtcp(&pli).is_none());
        assert!(PipeCrypto::new(&key[..20]).is_none());
    }

    #[test]
    fn a_pli_names_its_media_ssrc() {
        let p = pli(0x0102_0304);
        assert!(is_rtcp(&p));
        let mut compound = p.to_vec();
        compound.extend_from_slice(&pli(7));
        assert_eq!(plis(&compound), [0x0102_0304, 7]);
    }

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        let a = extend_seq(None, 65_534);
        let b = extend_seq(Some(a), 65_535);
        let c = extend_seq(Some(b), 0);
        let d = extend_seq(Some(c), 1);
        assert_eq!((b - a, c - b, d - c), (1, 1, 1));
        // A late packet from before the wrap.
        assert_eq!(extend_seq(Some(d), 65_535), b);
    }

    #[test]
    fn both_ends_name_a_track_alike() {
        let room = RoomId::parse("r").unwrap_or_else(|| unreachable!());
        let t = TrackId::from_serial(5);
        assert_eq!(pipe_ssrc(&room, &t, 0), pipe_ssrc(&room, &t, 0));
        assert_ne!(pipe_ssrc(&room, &t, 0), pipe_ssrc(&room, &t, 1));
        assert_ne!(
            pipe_ssrc(&room, &t, 0),
            pipe_ssrc(&RoomId::parse("s").unwrap_or_else(|| unreachable!()), &t, 0)
        );
    }
}
