//! Typed identifiers. They are strings on the wire and newtypes in code, so a room name is
//! never passed where an identity is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).ok_or_else(|| {
                    format!(
                        "invalid {}: 1-{} letters, digits and -_.:@",
                        stringify!($name),
                        Self::MAX_LEN
                    )
                })
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps a value: 1..=MAX_LEN bytes of letters, digits and `-_.:@`.
            pub fn parse(s: &str) -> Option<Self> {
                let ok = !s.is_empty()
                    && s.len() <= Self::MAX_LEN
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
                ok.then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A room's name. Rooms exist while someone is in them.
    RoomId,
    64
);
string_id!(
    /// A participant's identity within a room, taken from the room token's `sub`.
    ParticipantId,
    128
);
string_id!(
    /// A published track, unique within its room: `TR_<hex>`. It is also the track's
    /// `a=msid` id in SDP, so it uses only SDP token characters.
    TrackId,
    64
);

impl TrackId {
    pub fn from_serial(n: u64) -> TrackId {
        TrackId(format!("TR_{n:x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_bad_input() {
        assert!(RoomId::parse("lobby-1").is_some());
        assert!(RoomId::parse("").is_none());
        assert!(RoomId::parse("a/b").is_none());
        assert!(RoomId::parse("../etc").is_none());
        assert!(RoomId::parse(&"x".repeat(65)).is_none());
        assert!(ParticipantId::parse("alice@example.com").is_some());
        assert!(ParticipantId::parse("bob smith").is_none());
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<RoomId>(r#""lobby""#).is_ok());
        assert!(serde_json::from_str::<RoomId>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<TrackId>(r#""""#).is_err());
    }
}
