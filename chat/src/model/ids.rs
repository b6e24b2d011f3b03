//! Typed ids: a user id cannot be passed where a channel id is expected. Each is the
//! number stored in the database; JSON views send it as a string, as before.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<$name, Self::Err> {
                s.parse().map($name)
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            i64: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <i64 as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <i64 as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            i64: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <i64 as sqlx::Encode<'q, DB>>::encode_by_ref(&self.0, buf)
            }

            fn produces(&self) -> Option<DB::TypeInfo> {
                <i64 as sqlx::Encode<'q, DB>>::produces(&self.0)
            }

            fn size_hint(&self) -> usize {
                <i64 as sqlx::Encode<'q, DB>>::size_hint(&self.0)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            i64: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<$name, sqlx::error::BoxDynError> {
                <i64 as sqlx::Decode<'r, DB>>::decode(value).map($name)
            }
        }
    )*};
}

ids! {
    /// An account, person or bot.
    UserId;
    /// A guild; `GuildId(0)` is no guild (a DM's).
    GuildId;
    /// A channel, thread or DM.
    ChannelId;
    MessageId;
    /// A role; `@everyone`'s is its guild's id.
    RoleId;
}

impl GuildId {
    /// The guild's `@everyone` role, whose id is the guild's.
    pub fn everyone_role(self) -> RoleId {
        RoleId(self.0)
    }
}

/// Whom or what a message mentions. Stored as its kind (`user`, `role`, `channel`) and
/// the target's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mention {
    User(UserId),
    Role(RoleId),
    Channel(ChannelId),
}

impl Mention {
    /// The stored kind: `user`, `role` or `channel`.
    pub fn kind(self) -> &'static str {
        match self {
            Mention::User(_) => "user",
            Mention::Role(_) => "role",
            Mention::Channel(_) => "channel",
        }
    }

    /// The target's id as stored.
    pub fn target_id(self) -> i64 {
        match self {
            Mention::User(id) => id.0,
            Mention::Role(id) => id.0,
            Mention::Channel(id) => id.0,
        }
    }

    /// From the stored kind and id; `None` for an unknown kind.
    pub fn from_parts(kind: &str, id: i64) -> Option<Mention> {
        Some(match kind {
            "user" => Mention::User(UserId(id)),
            "role" => Mention::Role(RoleId(id)),
            "channel" => Mention::Channel(ChannelId(id)),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_show_and_parse_as_their_numbers() {
        assert_eq!(UserId(42).to_string(), "42");
        assert_eq!("42".parse::<ChannelId>(), Ok(ChannelId(42)));
        assert!("x".parse::<GuildId>().is_err());
        assert_eq!(
            serde_json::to_value(MessageId(7)).ok(),
            Some(serde_json::json!(7))
        );
        assert_eq!(GuildId(5).everyone_role(), RoleId(5));
        for m in [
            Mention::User(UserId(1)),
            Mention::Role(RoleId(2)),
            Mention::Channel(ChannelId(3)),
        ] {
            assert_eq!(Mention::from_parts(m.kind(), m.target_id()), Some(m));
        }
        assert_eq!(Mention::from_parts("guild", 1), None);
    }
}
