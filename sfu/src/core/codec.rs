//! Codec knowledge the forwarder needs without decoding: which payloads start a keyframe.

/// Codecs the SFU forwards. Anything else is negotiated away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Opus,
    Vp8,
    Vp9,
    H264,
}

impl Codec {
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => 90_000,
        }
    }

    pub fn is_video(self) -> bool {
        !matches!(self, Codec::Opus)
    }
}

/// Whether this RTP payload is the first packet of a keyframe. Audio is always "key".
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Opus => true,
        Codec::Vp8 => vp8_keyframe_start(payload),
        Codec::Vp9 => vp9_keyframe_start(payload),
        Codec::H264 => h264_keyframe(payload),
    }
}

/// RFC 7741 payload descriptor, then the VP8 frame tag's P bit (0 = key frame).
fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else {
        return false;
    };
    let start_of_partition = b0 & 0x10 != 0;
    let partition_id = b0 & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // I: picture id, 7 or 15 bits.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // L: TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // T or K: TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|tag| tag & 0x01 == 0)
}

/// VP9 payload descriptor: not inter-predicted (P=0), start of a frame (B=1), base spatial layer.
fn vp9_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else {
        return false;
    };
    let has_picture_id = b0 & 0x80 != 0;
    let inter_predicted = b0 & 0x40 != 0;
    let has_layers = b0 & 0x20 != 0;
    let begin = b0 & 0x08 != 0;
    if inter_predicted || !begin {
        return false;
    }
    if !has_layers {
        return true;
    }
    let mut i = 1;
    if has_picture_id {
        let Some(&pid) = p.get(i) else { return false };
        i += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    // Layer indices: TID(3) U(1) SID(3) D(1).
    p.get(i).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

/// RFC 6184: an IDR slice or SPS, alone, in a STAP-A, or as the first FU-A fragment.
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else {
        return false;
    };
    let is_key = |t: u8| t == 5 || t == 7;
    match b0 & 0x1f {
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let len = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if is_key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + len;
            }
            false
        }
        28 => p.get(1).is_some_and(|h| h & 0x80 != 0 && is_key(h & 0x1f)),
        t => is_key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_key_and_delta() {
        // S=1, PID=0, no extension, frame tag P=0.
        assert!(is_keyframe_start(Codec::Vp8, &[0x10, 0x00, 0x9d]));
        // P=1: delta frame.
        assert!(!is_keyframe_start(Codec::Vp8, &[0x10, 0x01]));
        // Not start of partition.
        assert!(!is_keyframe_start(Codec::Vp8, &[0x00, 0x00]));
        // X with I (15-bit picture id), L, T: 5 descriptor bytes, then tag.
        assert!(is_keyframe_start(
            Codec::Vp8,
            &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00]
        ));
        assert!(!is_keyframe_start(
            Codec::Vp8,
            &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x01]
        ));
        // Truncated input is never a keyframe and never panics.
        assert!(!is_keyframe_start(Codec::Vp8, &[0x90, 0xe0]));
        assert!(!is_keyframe_start(Codec::Vp8, &[]));
    }

    #[test]
    fn h264_forms() {
        assert!(is_keyframe_start(Codec::H264, &[0x65, 0x88])); // IDR
        assert!(is_keyframe_start(Codec::H264, &[0x67, 0x42])); // SPS
        assert!(!is_keyframe_start(Codec::H264, &[0x41, 0x9a])); // non-IDR slice
        // STAP-A carrying SPS.
        assert!(is_keyframe_start(
            Codec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42]
        ));
        // FU-A start of IDR, and a middle fragment.
        assert!(is_keyframe_start(Codec::H264, &[0x7c, 0x85]));
        assert!(!is_keyframe_start(Codec::H264, &[0x7c, 0x05]));
    }

    #[test]
    fn vp9_forms() {
        assert!(is_keyframe_start(Codec::Vp9, &[0x08])); // B, not P
        assert!(!is_keyframe_start(Codec::Vp9, &[0x48])); // P set
        assert!(!is_keyframe_start(Codec::Vp9, &[0x00])); // not beginning
        // I + L: picture id (7-bit) then layer byte with SID=1: not the base layer.
        assert!(!is_keyframe_start(Codec::Vp9, &[0xa8, 0x01, 0x02]));
        assert!(is_keyframe_start(Codec::Vp9, &[0xa8, 0x01, 0x00]));
    }
}
