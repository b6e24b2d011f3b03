//! Chat's domain types that every layer shares.

use serde::{Deserialize, Serialize};

/// What a channel is. Stored and sent as its snake_case name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    #[default]
    Text,
    Voice,
    Category,
    /// A text channel's thread.
    Thread,
    /// A one-to-one DM.
    Dm,
    GroupDm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Text => "text",
            ChannelKind::Voice => "voice",
            ChannelKind::Category => "category",
            ChannelKind::Thread => "thread",
            ChannelKind::Dm => "dm",
            ChannelKind::GroupDm => "group_dm",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        Some(match s {
            "text" => ChannelKind::Text,
            "voice" => ChannelKind::Voice,
            "category" => ChannelKind::Category,
            "thread" => ChannelKind::Thread,
            "dm" => ChannelKind::Dm,
            "group_dm" => ChannelKind::GroupDm,
            _ => return None,
        })
    }

    /// The kinds messages are posted in.
    pub fn has_messages(self) -> bool {
        matches!(
            self,
            ChannelKind::Text | ChannelKind::Thread | ChannelKind::Dm | ChannelKind::GroupDm
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_as_their_names() {
        for k in [
            ChannelKind::Text,
            ChannelKind::Voice,
            ChannelKind::Category,
            ChannelKind::Thread,
            ChannelKind::Dm,
            ChannelKind::GroupDm,
        ] {
            assert_eq!(ChannelKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap_or_default(),
                serde_json::json!(k.as_str())
            );
        }
        assert_eq!(ChannelKind::parse("forum"), None);
    }
}
