//! Attachment URLs: each is signed with the server's secret and valid for a day or two,
//! so a link can be shared without a session but not forever.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::store::attachments::Attachment;
use crate::{ChatState, now_ms};

/// How long a download URL is valid.
pub const URL_TTL_MS: i64 = 24 * 3600 * 1000;

type HmacSha256 = Hmac<Sha256>;

fn url_key(state: &ChatState) -> Vec<u8> {
    let mut k = state.config.secret.clone();
    k.extend_from_slice(b"/attachments");
    k
}

fn signature(state: &ChatState, id: i64, exp: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(&url_key(state)).expect("hmac takes any key");
    mac.update(format!("{id}:{exp}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub(crate) fn verify(state: &ChatState, id: i64, exp: i64, sig: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(&url_key(state)).expect("hmac takes any key");
    mac.update(format!("{id}:{exp}").as_bytes());
    mac.verify_slice(&raw).is_ok() && exp > now_ms()
}

#[derive(Debug, Serialize, Clone)]
pub struct AttachmentView {
    id: String,
    filename: String,
    content_type: String,
    size: i64,
    width: Option<i64>,
    height: Option<i64>,
    /// Signed; valid for a day.
    url: String,
    thumbnail_url: Option<String>,
}

impl AttachmentView {
    pub fn new(state: &ChatState, a: &Attachment) -> AttachmentView {
        let exp = (now_ms() / URL_TTL_MS + 2) * URL_TTL_MS;
        let sig = signature(state, a.id, exp);
        let name: String = url_escape(&a.filename);
        AttachmentView {
            id: a.id.to_string(),
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            width: a.width,
            height: a.height,
            url: format!("/api/v1/attachments/{}/{name}?exp={exp}&sig={sig}", a.id),
            thumbnail_url: a.has_thumb.then(|| {
                format!(
                    "/api/v1/attachments/{}/thumbnail/thumb.png?exp={exp}&sig={sig}",
                    a.id
                )
            }),
        }
    }
}

pub(crate) fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
