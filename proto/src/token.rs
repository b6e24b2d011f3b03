//! Room tokens: HS256 JWTs whose claims name the room, the identity and the grants.
//!
//! The chat service and `parlor token` mint them; signaling verifies them with the same key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{ParticipantId, RoomId};

/// A source family a token may allow to be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishSource {
    /// Microphone audio.
    Audio,
    /// Camera video.
    Video,
    /// Screen video and screen audio.
    Screen,
}

impl PublishSource {
    pub fn parse(s: &str) -> Option<PublishSource> {
        match s.trim() {
            "audio" => Some(PublishSource::Audio),
            "video" => Some(PublishSource::Video),
            "screen" => Some(PublishSource::Screen),
            _ => None,
        }
    }
}

/// What a participant may do in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Sources the participant may publish. Left out, everything; `[]`, nothing.
    #[serde(default = "all_sources")]
    pub publish: Vec<PublishSource>,
    /// Whether the participant may receive others' tracks.
    #[serde(default = "yes")]
    pub subscribe: bool,
    /// Room admin: may use the room admin API for this room.
    #[serde(default)]
    pub admin: bool,
    /// Server-muted by a moderator: the microphone may be published, but the SFU forwards
    /// none of it and reports it muted until the room's moderation lifts the mute.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
}

fn yes() -> bool {
    true
}

fn all_sources() -> Vec<PublishSource> {
    vec![
        PublishSource::Audio,
        PublishSource::Video,
        PublishSource::Screen,
    ]
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            publish: all_sources(),
            subscribe: true,
            admin: false,
            muted: false,
        }
    }
}

impl Grants {
    pub fn may_publish(&self, s: PublishSource) -> bool {
        self.publish.contains(&s)
    }
}

/// Per-room limits. A field left out falls back to the server's configured default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCaps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_video_publishers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_screen_shares: Option<u32>,
}

/// A namespace of rooms that belong to a service, not to whoever names them.
///
/// A room whose name starts with a namespace's prefix (`chat:`) can be named only by a
/// token that carries that namespace in its `ns` claim, and a token with an `ns` claim
/// can name only rooms under its prefix. The chat service mints `ns: "chat"` tokens for
/// members allowed to connect to a voice channel (`chat:voice-<channel id>`); guest tokens
/// never carry `ns`, and the guest-token endpoint refuses names under a prefix. So no
/// choice of room name takes a guest, or any token another issuer minted, into a room
/// chat owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomNamespace {
    /// Voice channels of the chat service.
    Chat,
}

impl RoomNamespace {
    pub const ALL: [RoomNamespace; 1] = [RoomNamespace::Chat];

    /// What room names in this namespace start with.
    pub fn prefix(self) -> &'static str {
        match self {
            RoomNamespace::Chat => "chat:",
        }
    }

    /// The namespace a room belongs to, if any.
    pub fn of(room: &RoomId) -> Option<RoomNamespace> {
        RoomNamespace::ALL
            .into_iter()
            .find(|ns| room.as_str().starts_with(ns.prefix()))
    }
}

/// The claims of a room token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The participant's identity.
    pub sub: ParticipantId,
    /// Display name; defaults to the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The room the token is for.
    pub room: RoomId,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    #[serde(default)]
    pub grants: Grants,
    /// Room caps, the issuer's word about the room: applied when the token's holder joins,
    /// whether the join creates the room or not, admin or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<RoomCaps>,
    /// The namespace of the room, for rooms a service owns ([`RoomNamespace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<RoomNamespace>,
}

impl Claims {
    pub fn new(room: RoomId, identity: ParticipantId, ttl: Duration) -> Claims {
        let now = unix_now();
        Claims {
            sub: identity,
            name: None,
            room,
            exp: now + ttl.as_secs(),
            iat: now,
            grants: Grants::default(),
            caps: None,
            ns: None,
        }
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.sub.as_str())
    }
}

/// Why a token was refused. Each maps to a protocol error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token has expired")]
    Expired,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error(
        "the token may not name room {0}: rooms under chat: need a token the chat service minted for them, and such a token names only those"
    )]
    WrongNamespace(RoomId),
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            TokenError::BadSignature | TokenError::Malformed(_) | TokenError::WrongNamespace(_) => {
                "invalid_token"
            }
        }
    }
}

/// The shared HMAC key that signs and verifies room tokens.
#[derive(Clone)]
pub struct TokenKey {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        // Signing with an HMAC key over serializable claims cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.enc).unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.validate_exp = true;
        v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        match jsonwebtoken::decode::<Claims>(token, &self.dec, &v) {
            // Every entry point (identify, WHIP, WHEP, the admin API) verifies here, so
            // the namespace rule holds for all of them.
            Ok(data) if RoomNamespace::of(&data.claims.room) != data.claims.ns => {
                Err(TokenError::WrongNamespace(data.claims.room))
            }
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            }),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims::new(
            RoomId::parse("r1").unwrap(),
            ParticipantId::parse("alice").unwrap(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn round_trip() {
        let k = TokenKey::new(b"secret");
        let t = k.sign(&claims());
        assert_eq!(k.verify(&t).unwrap(), claims());
    }

    #[test]
    fn wrong_key_is_bad_signature() {
        let t = TokenKey::new(b"one").sign(&claims());
        assert_eq!(
            TokenKey::new(b"two").verify(&t),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired_is_refused() {
        let k = TokenKey::new(b"secret");
        let mut c = claims();
        c.exp = unix_now() - 120;
        assert_eq!(k.verify(&k.sign(&c)), Err(TokenError::Expired));
    }

    #[test]
    fn rooms_under_a_namespace_need_its_claim_and_only_those_take_it() {
        let k = TokenKey::new(b"secret");
        let token = |room: &str, ns: Option<RoomNamespace>| {
            let mut c = claims();
            c.room = RoomId::parse(room).unwrap();
            c.ns = ns;
            k.verify(&k.sign(&c)).map(|c| c.room.to_string())
        };
        let chat = Some(RoomNamespace::Chat);
        assert_eq!(token("chat:voice-1", chat), Ok("chat:voice-1".into()));
        assert!(matches!(
            token("chat:voice-1", None),
            Err(TokenError::WrongNamespace(_))
        ));
        assert!(matches!(
            token("voice-1", chat),
            Err(TokenError::WrongNamespace(_))
        ));
        assert_eq!(token("voice-1", None), Ok("voice-1".into()));
        // The prefix is exact: other spellings are ordinary rooms, and distinct ones.
        assert_eq!(token("CHAT:voice-1", None), Ok("CHAT:voice-1".into()));
        assert_eq!(token("chat-voice-1", None), Ok("chat-voice-1".into()));
        assert_eq!(
            TokenError::WrongNamespace(RoomId::parse("chat:x").unwrap()).code(),
            "invalid_token"
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let k = TokenKey::new(b"secret");
        assert!(matches!(k.verify("nope"), Err(TokenError::Malformed(_))));
    }
}
