//! Presence and voice state: the rules, apart from where they are kept.
//!
//! A user chooses a status (online, idle, do-not-disturb or invisible) and an optional
//! custom status text; each of their connected devices is active or idle. What others see
//! follows from both ([`effective`]): offline with no device or when invisible,
//! do-not-disturb or idle when chosen, otherwise online while any device is active and
//! idle when all are.

use serde::{Deserialize, Serialize};

use super::{ChannelId, GuildId, UserId};

/// Longest custom status text, in characters.
pub const MAX_CUSTOM_STATUS: usize = 128;

/// What others see of a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    Idle,
    Dnd,
    /// Chosen only: others see it as offline.
    Invisible,
    #[default]
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Idle => "idle",
            Status::Dnd => "dnd",
            Status::Invisible => "invisible",
            Status::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "online" => Status::Online,
            "idle" => Status::Idle,
            "dnd" => Status::Dnd,
            "invisible" => Status::Invisible,
            "offline" => Status::Offline,
            _ => return None,
        })
    }
}

/// What a user chose: kept across sign-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pref {
    /// Online (the default), idle, dnd or invisible; never offline.
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<String>,
}

impl Default for Pref {
    /// Online, with no custom status.
    fn default() -> Pref {
        Pref {
            status: Status::Online,
            custom_status: None,
        }
    }
}

impl Pref {
    /// Checks a choice a client sent.
    pub fn validate(status: Status, custom_status: Option<String>) -> Result<Pref, &'static str> {
        if status == Status::Offline {
            return Err("choose invisible to appear offline");
        }
        let custom_status = custom_status
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if custom_status
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_CUSTOM_STATUS || s.contains('\n'))
        {
            return Err("a custom status is one line of at most 128 characters");
        }
        Ok(Pref {
            status,
            custom_status,
        })
    }
}

/// The status others see, from the user's choice and whether each connected device is
/// idle.
pub fn effective(pref: &Pref, idle_devices: impl IntoIterator<Item = bool>) -> Status {
    let mut any = false;
    let mut active = false;
    for idle in idle_devices {
        any = true;
        active |= !idle;
    }
    match pref.status {
        _ if !any => Status::Offline,
        Status::Invisible | Status::Offline => Status::Offline,
        Status::Dnd => Status::Dnd,
        Status::Idle => Status::Idle,
        Status::Online if active => Status::Online,
        Status::Online => Status::Idle,
    }
}

/// A user's presence as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceView {
    pub user_id: String,
    pub status: Status,
    /// Shown only while the user is not offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<String>,
}

impl PresenceView {
    pub fn of(user_id: UserId, pref: &Pref, status: Status) -> PresenceView {
        PresenceView {
            user_id: user_id.to_string(),
            status,
            custom_status: if status == Status::Offline {
                None
            } else {
                pref.custom_status.clone()
            },
        }
    }
}

/// Where a user is in voice, and what they do there. One per user: joining a voice
/// channel on another device moves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceState {
    pub guild_id: GuildId,
    pub channel_id: ChannelId,
    pub user_id: UserId,
    /// The gateway session that holds it: it ends with that session.
    pub session_id: String,
    /// Server-muted by a moderator (the member's standing in the guild).
    #[serde(default)]
    pub mute: bool,
    #[serde(flatten)]
    pub flags: VoiceFlags,
}

/// What a member does in a voice channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceFlags {
    #[serde(default)]
    pub self_mute: bool,
    #[serde(default)]
    pub self_deaf: bool,
    #[serde(default)]
    pub self_video: bool,
    #[serde(default)]
    pub self_stream: bool,
    #[serde(default)]
    pub speaking: bool,
}

/// A voice state as members see it; `channel_id` is `None` when the user left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceStateView {
    pub guild_id: String,
    pub channel_id: Option<String>,
    pub user_id: String,
    /// Server-muted by a moderator.
    pub mute: bool,
    #[serde(flatten)]
    pub flags: VoiceFlags,
}

impl VoiceStateView {
    pub fn of(v: &VoiceState) -> VoiceStateView {
        VoiceStateView {
            guild_id: v.guild_id.to_string(),
            channel_id: Some(v.channel_id.to_string()),
            user_id: v.user_id.to_string(),
            mute: v.mute,
            flags: v.flags,
        }
    }

    /// The user is no longer in the voice channel `v` names.
    pub fn left(v: &VoiceState) -> VoiceStateView {
        VoiceStateView {
            channel_id: None,
            mute: false,
            flags: VoiceFlags::default(),
            ..VoiceStateView::of(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pref(status: Status) -> Pref {
        Pref {
            status,
            custom_status: None,
        }
    }

    #[test]
    fn any_active_device_makes_a_user_online() {
        let p = pref(Status::Online);
        assert_eq!(effective(&p, []), Status::Offline);
        assert_eq!(effective(&p, [true]), Status::Idle);
        assert_eq!(effective(&p, [true, false]), Status::Online);
        assert_eq!(effective(&p, [false]), Status::Online);
    }

    #[test]
    fn a_chosen_status_wins_while_connected() {
        assert_eq!(effective(&pref(Status::Dnd), [false]), Status::Dnd);
        assert_eq!(effective(&pref(Status::Dnd), [true, true]), Status::Dnd);
        assert_eq!(effective(&pref(Status::Idle), [false]), Status::Idle);
        assert_eq!(
            effective(&pref(Status::Invisible), [false]),
            Status::Offline
        );
        assert_eq!(effective(&pref(Status::Dnd), []), Status::Offline);
    }

    #[test]
    fn custom_status_shows_only_while_not_offline() {
        let p = Pref::validate(Status::Online, Some("  in a meeting ".into())).unwrap();
        assert_eq!(p.custom_status.as_deref(), Some("in a meeting"));
        let on = PresenceView::of(UserId(1), &p, Status::Online);
        assert_eq!(on.custom_status.as_deref(), Some("in a meeting"));
        let off = PresenceView::of(UserId(1), &p, Status::Offline);
        assert_eq!(off.custom_status, None);
    }

    #[test]
    fn by_default_a_connected_user_is_online() {
        assert_eq!(effective(&Pref::default(), [false]), Status::Online);
    }

    #[test]
    fn choices_are_checked() {
        assert!(Pref::validate(Status::Offline, None).is_err());
        assert!(Pref::validate(Status::Online, Some("x".repeat(129))).is_err());
        assert!(Pref::validate(Status::Online, Some("a\nb".into())).is_err());
        let blank = Pref::validate(Status::Idle, Some("   ".into())).unwrap();
        assert_eq!(blank.custom_status, None);
        for s in ["online", "idle", "dnd", "invisible", "offline"] {
            assert_eq!(Status::parse(s).map(Status::as_str), Some(s));
        }
    }

    #[test]
    fn leaving_clears_the_flags() {
        let v = VoiceState {
            guild_id: GuildId(1),
            channel_id: ChannelId(2),
            user_id: UserId(3),
            session_id: "s".into(),
            mute: false,
            flags: VoiceFlags {
                self_mute: true,
                ..VoiceFlags::default()
            },
        };
        let json = serde_json::to_value(VoiceStateView::of(&v)).unwrap();
        assert_eq!(json["channel_id"], "2");
        assert_eq!(json["self_mute"], true);
        assert!(json.get("session_id").is_none());
        let left = serde_json::to_value(VoiceStateView::left(&v)).unwrap();
        assert!(left["channel_id"].is_null());
        assert_eq!(left["self_mute"], false);
    }
}
