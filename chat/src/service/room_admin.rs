//! Moderating voice rooms: chat asks signaling's room admin API, with an admin token for
//! that one room, to server-mute or remove a participant. The SFU enforces it, on
//! whichever node the participant is connected to.

use std::time::Duration;

use parlor_proto::{Claims, Grants, ParticipantId, RoomId, RoomNamespace, TokenKey};

use crate::Config;

/// How long a moderation token is good for: one request.
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// The client of signaling's room admin API.
#[derive(Debug, Clone)]
pub struct RoomAdmin {
    http: reqwest::Client,
    /// Signaling's HTTP base (`http://host:port`), if known.
    base: Option<String>,
    key: Option<TokenKey>,
}

/// Why a room could not be moderated.
#[derive(Debug, thiserror::Error)]
pub enum RoomAdminError {
    #[error("no signaling API is configured")]
    Unconfigured,
    #[error("signaling answered {0}")]
    Refused(reqwest::StatusCode),
    #[error("signaling could not be reached: {0}")]
    Unreachable(#[from] reqwest::Error),
}

/// Signaling's HTTP base: the one configured, else the one behind the signaling WebSocket
/// handed to clients (`ws://host/ws` → `http://host`).
pub fn api_base(config: &Config) -> Option<String> {
    if let Some(u) = &config.signaling_api_url {
        return Some(u.trim_end_matches('/').to_owned());
    }
    let ws = config.signaling_url.as_deref()?;
    let (scheme, rest) = ws.split_once("://")?;
    let scheme = match scheme {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let host = rest.split('/').next()?;
    Some(format!("{scheme}://{host}"))
}

impl RoomAdmin {
    pub fn new(config: &Config) -> RoomAdmin {
        RoomAdmin {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            base: api_base(config),
            key: config.room_key.as_deref().map(TokenKey::new),
        }
    }

    /// Server-mutes (or unmutes) a participant. `Ok(false)`: it is not in the room.
    pub async fn mute(
        &self,
        room: &str,
        identity: &str,
        muted: bool,
    ) -> Result<bool, RoomAdminError> {
        let body = serde_json::json!({ "muted": muted });
        self.send(reqwest::Method::PATCH, room, identity, Some(body))
            .await
    }

    /// Removes a participant from the room. `Ok(false)`: it is not in the room.
    pub async fn remove(&self, room: &str, identity: &str) -> Result<bool, RoomAdminError> {
        self.send(reqwest::Method::DELETE, room, identity, None)
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        room: &str,
        identity: &str,
        body: Option<serde_json::Value>,
    ) -> Result<bool, RoomAdminError> {
        let (Some(base), Some(token)) = (&self.base, self.token(room)) else {
            return Err(RoomAdminError::Unconfigured);
        };
        let url = format!("{base}/admin/rooms/{room}/participants/{identity}");
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            s => Err(RoomAdminError::Refused(s)),
        }
    }

    /// An admin token for one room of chat's namespace.
    fn token(&self, room: &str) -> Option<String> {
        let key = self.key.as_ref()?;
        let mut claims = Claims::new(
            RoomId::parse(room)?,
            ParticipantId::parse("chat-moderation")?,
            TOKEN_TTL,
        );
        claims.ns = Some(RoomNamespace::Chat);
        claims.grants = Grants {
            publish: Vec::new(),
            subscribe: false,
            admin: true,
            muted: false,
        };
        Some(key.sign(&claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_follows_the_signaling_socket_unless_configured() {
        let mut c = Config::new("sqlite::memory:", b"k");
        assert_eq!(api_base(&c), None);
        c.signaling_url = Some("wss://rtc.example.com/ws".into());
        assert_eq!(api_base(&c).as_deref(), Some("https://rtc.example.com"));
        c.signaling_url = Some("ws://127.0.0.1:8080/ws".into());
        assert_eq!(api_base(&c).as_deref(), Some("http://127.0.0.1:8080"));
        c.signaling_api_url = Some("http://signaling.internal:8080/".into());
        assert_eq!(
            api_base(&c).as_deref(),
            Some("http://signaling.internal:8080")
        );
    }
}
