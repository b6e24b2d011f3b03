//! A light reading of an SDP offer's m-sections, enough to check what a client is about to
//! send before the offer is applied: which m-lines send media, of which kind, with which
//! simulcast rids.

use parlor_proto::MediaKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: Option<MediaKind>,
    pub mid: String,
    /// The offerer sends media on this m-line.
    pub sends: bool,
    /// The offerer receives media on this m-line.
    pub receives: bool,
    /// Simulcast rids the offerer sends, in SDP order.
    pub rids: Vec<String>,
}

/// Splits an SDP into its m-sections. Fails on text that is not an SDP at all.
pub fn scan(sdp: &str) -> Result<Vec<Section>, String> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err("SDP must start with v=0".into());
    }
    let mut out: Vec<Section> = Vec::new();
    // Per section: whether its port is 0 (rejected or stopped), which no attribute revives.
    let mut stopped: Vec<bool> = Vec::new();
    let mut session_dir = "sendrecv";
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = match parts.next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                _ => None,
            };
            let port_zero = parts.next() == Some("0");
            stopped.push(port_zero);
            out.push(Section {
                kind,
                mid: String::new(),
                sends: !port_zero && matches!(session_dir, "sendrecv" | "sendonly"),
                receives: !port_zero && matches!(session_dir, "sendrecv" | "recvonly"),
                rids: Vec::new(),
            });
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let dir = matches!(attr, "sendrecv" | "sendonly" | "recvonly" | "inactive");
        let (Some(s), Some(&port_zero)) = (out.last_mut(), stopped.last()) else {
            if dir {
                session_dir = attr;
            }
            continue;
        };
        if dir {
            s.sends = !port_zero && matches!(attr, "sendrecv" | "sendonly");
            s.receives = !port_zero && matches!(attr, "sendrecv" | "recvonly");
        } else if let Some(mid) = attr.strip_prefix("mid:") {
            s.mid = mid.trim().to_owned();
        } else if let Some(rid) = attr.strip_prefix("rid:") {
            let mut p = rid.split_whitespace();
            if let (Some(id), Some("send")) = (p.next(), p.next()) {
                s.rids.push(id.to_owned());
            }
        }
    }
    if out.is_empty() {
        return Err("SDP has no m-lines".into());
    }
    if let Some(s) = out.iter().find(|s| s.kind.is_some() && s.mid.is_empty()) {
        return Err(format!("an m-line of kind {:?} has no a=mid", s.kind));
    }
    Ok(out)
}

/// Some stacks (webrtc-rs, Chrome) leave `a=group:BUNDLE` out when every m-line is
/// stopped; str0m requires it. An empty group says the same thing, so add one.
pub fn normalize_bundle(sdp: &str) -> std::borrow::Cow<'_, str> {
    let has_group = sdp.lines().any(|l| l.starts_with("a=group:"));
    let all_stopped = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("m="))
        .all(|m| m.split_whitespace().nth(1) == Some("0"));
    if has_group || !all_stopped {
        return sdp.into();
    }
    let mut out = String::with_capacity(sdp.len() + 20);
    let mut added = false;
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        if !added && line.starts_with("t=") {
            out.push_str("a=group:BUNDLE\r\n");
            added = true;
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendrecv\r\na=rid:l send\r\na=rid:h send\r\na=simulcast:send l;h\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n";

    #[test]
    fn reads_sections() {
        let s = scan(OFFER).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(
            (s[0].kind, s[0].sends, s[0].receives),
            (Some(MediaKind::Audio), true, false)
        );
        assert_eq!(s[1].rids, vec!["l", "h"]);
        assert!(s[1].sends && s[1].receives);
        assert!(!s[2].sends && s[2].receives);
        assert!(!s[3].sends && !s[3].receives, "port 0 is stopped");
        assert_eq!(s[4].kind, None);
    }

    #[test]
    fn adds_an_empty_bundle_when_everything_stopped() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
        let n = normalize_bundle(sdp);
        assert!(n.contains("t=0 0\r\na=group:BUNDLE\r\nm=audio"), "{n}");
        assert_eq!(
            normalize_bundle(OFFER),
            OFFER,
            "live m-lines are left alone"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(scan("hello").is_err());
        assert!(scan("v=0\r\ns=-\r\n").is_err());
        assert!(scan("v=0\r\nm=audio 9 RTP/AVP 0\r\n").is_err(), "no mid");
    }
}
