//! Permissions: a 64-bit field per role, allow/deny overwrites per channel for roles and
//! single members, resolved in Discord's order. Pure logic; the store supplies the inputs.

use crate::model::{GuildId, RoleId, UserId};

/// A set of permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Perms(pub u64);

macro_rules! bits {
    ($($(#[$doc:meta])* $name:ident = $bit:expr;)*) => {
        impl Perms {
            $($(#[$doc])* pub const $name: Perms = Perms(1 << $bit);)*

            /// Every defined bit.
            pub const ALL: Perms = Perms(0 $(| (1 << $bit))*);

            /// Names of the bits set, for errors and the API.
            pub fn names(self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(if self.contains(Perms::$name) { out.push(stringify!($name)); })*
                out
            }
        }
    };
}

bits! {
    // General
    VIEW_CHANNEL = 0;
    /// Every permission, and channel overwrites do not apply.
    ADMINISTRATOR = 1;
    MANAGE_GUILD = 2;
    // Text
    SEND_MESSAGES = 3;
    SEND_IN_THREADS = 4;
    MANAGE_MESSAGES = 5;
    ATTACH_FILES = 6;
    ADD_REACTIONS = 7;
    MENTION_EVERYONE = 8;
    // Management
    MANAGE_CHANNELS = 9;
    MANAGE_ROLES = 10;
    CREATE_INVITES = 11;
    KICK_MEMBERS = 12;
    BAN_MEMBERS = 13;
    // Voice
    CONNECT = 14;
    SPEAK = 15;
    VIDEO = 16;
    SCREEN_SHARE = 17;
    MUTE_MEMBERS = 18;
    MOVE_MEMBERS = 19;
}

impl Perms {
    /// What `@everyone` gets in a new guild.
    pub const DEFAULT_EVERYONE: Perms = Perms(
        Perms::VIEW_CHANNEL.0
            | Perms::SEND_MESSAGES.0
            | Perms::SEND_IN_THREADS.0
            | Perms::ATTACH_FILES.0
            | Perms::ADD_REACTIONS.0
            | Perms::CREATE_INVITES.0
            | Perms::CONNECT.0
            | Perms::SPEAK.0
            | Perms::VIDEO.0
            | Perms::SCREEN_SHARE.0,
    );

    /// What every member of a DM or group DM may do there.
    pub const DM: Perms = Perms(
        Perms::VIEW_CHANNEL.0
            | Perms::SEND_MESSAGES.0
            | Perms::ATTACH_FILES.0
            | Perms::ADD_REACTIONS.0
            | Perms::CONNECT.0
            | Perms::SPEAK.0
            | Perms::VIDEO.0
            | Perms::SCREEN_SHARE.0,
    );

    pub fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    fn allow_deny(self, allow: Perms, deny: Perms) -> Perms {
        Perms((self.0 & !deny.0) | allow.0)
    }
}

impl std::ops::BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

/// Whom a channel overwrite is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Role(RoleId),
    Member(UserId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overwrite {
    pub target: Target,
    pub allow: Perms,
    pub deny: Perms,
}

/// A member as far as permissions go.
#[derive(Debug, Clone)]
pub struct MemberPerms<'a> {
    pub user_id: UserId,
    pub is_owner: bool,
    /// Permissions of `@everyone` (whose role id is the guild id).
    pub everyone: Perms,
    /// Permissions of each role the member has.
    pub roles: &'a [(RoleId, Perms)],
}

/// The member's permissions in the guild, before channel overwrites.
pub fn guild_perms(m: &MemberPerms<'_>) -> Perms {
    if m.is_owner {
        return Perms::ALL;
    }
    let base = m.roles.iter().fold(m.everyone, |acc, (_, p)| acc | *p);
    if base.contains(Perms::ADMINISTRATOR) {
        Perms::ALL
    } else {
        base
    }
}

/// The member's permissions in a channel: `@everyone`, then the guild's roles, then the
/// channel's overwrites for `@everyone`, for the member's roles (allows and denies of all
/// of them together) and for the member. Owners and administrators bypass overwrites.
/// Without `VIEW_CHANNEL` a member has nothing in the channel.
pub fn channel_perms(m: &MemberPerms<'_>, guild_id: GuildId, overwrites: &[Overwrite]) -> Perms {
    let base = guild_perms(m);
    if base.contains(Perms::ADMINISTRATOR) {
        return Perms::ALL;
    }
    let mut p = base;
    if let Some(o) = overwrites
        .iter()
        .find(|o| o.target == Target::Role(guild_id.everyone_role()))
    {
        p = p.allow_deny(o.allow, o.deny);
    }
    let (mut allow, mut deny) = (Perms(0), Perms(0));
    for o in overwrites {
        if let Target::Role(r) = o.target
            && r != guild_id.everyone_role()
            && m.roles.iter().any(|(id, _)| *id == r)
        {
            allow = allow | o.allow;
            deny = deny | o.deny;
        }
    }
    p = p.allow_deny(allow, deny);
    if let Some(o) = overwrites
        .iter()
        .find(|o| o.target == Target::Member(m.user_id))
    {
        p = p.allow_deny(o.allow, o.deny);
    }
    if p.contains(Perms::VIEW_CHANNEL) {
        p
    } else {
        Perms(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUILD: GuildId = GuildId(1);
    const EVERYONE: RoleId = RoleId(1);
    const MODS: RoleId = RoleId(10);
    const MUTED: RoleId = RoleId(11);
    const MEMBER: UserId = UserId(100);

    fn member(roles: &[(RoleId, Perms)]) -> MemberPerms<'_> {
        MemberPerms {
            user_id: MEMBER,
            is_owner: false,
            everyone: Perms::DEFAULT_EVERYONE,
            roles,
        }
    }

    fn ow(target: Target, allow: Perms, deny: Perms) -> Overwrite {
        Overwrite {
            target,
            allow,
            deny,
        }
    }

    #[test]
    fn roles_add_to_everyone() {
        let roles = [(MODS, Perms::MANAGE_MESSAGES | Perms::KICK_MEMBERS)];
        let p = guild_perms(&member(&roles));
        assert!(p.contains(Perms::SEND_MESSAGES | Perms::MANAGE_MESSAGES | Perms::KICK_MEMBERS));
        assert!(!p.contains(Perms::BAN_MEMBERS));
    }

    #[test]
    fn overwrites_apply_in_order() {
        let roles = [(MODS, Perms(0)), (MUTED, Perms(0))];
        let m = member(&roles);
        // @everyone may not send here; the mods role may; the member may not.
        let mut ows = vec![
            ow(Target::Role(EVERYONE), Perms(0), Perms::SEND_MESSAGES),
            ow(Target::Role(MODS), Perms::SEND_MESSAGES, Perms(0)),
        ];
        assert!(channel_perms(&m, GUILD, &ows).contains(Perms::SEND_MESSAGES));
        ows.push(ow(Target::Member(MEMBER), Perms(0), Perms::SEND_MESSAGES));
        assert!(!channel_perms(&m, GUILD, &ows).contains(Perms::SEND_MESSAGES));
        // A member overwrite beats role denies.
        let ows = [
            ow(Target::Role(MUTED), Perms(0), Perms::SPEAK),
            ow(Target::Member(MEMBER), Perms::SPEAK, Perms(0)),
        ];
        assert!(channel_perms(&m, GUILD, &ows).contains(Perms::SPEAK));
        // Between roles, an allow wins over a deny.
        let ows = [
            ow(Target::Role(MUTED), Perms(0), Perms::SPEAK),
            ow(Target::Role(MODS), Perms::SPEAK, Perms(0)),
        ];
        assert!(channel_perms(&m, GUILD, &ows).contains(Perms::SPEAK));
    }

    #[test]
    fn no_view_means_nothing() {
        let m = member(&[]);
        let ows = [ow(Target::Role(EVERYONE), Perms(0), Perms::VIEW_CHANNEL)];
        assert_eq!(channel_perms(&m, GUILD, &ows), Perms(0));
    }

    #[test]
    fn administrators_and_owners_bypass_overwrites() {
        let roles = [(MODS, Perms::ADMINISTRATOR)];
        let ows = [
            ow(Target::Role(EVERYONE), Perms(0), Perms::VIEW_CHANNEL),
            ow(Target::Member(MEMBER), Perms(0), Perms::SEND_MESSAGES),
        ];
        assert_eq!(channel_perms(&member(&roles), GUILD, &ows), Perms::ALL);
        let owner = MemberPerms {
            is_owner: true,
            everyone: Perms(0),
            ..member(&[])
        };
        assert_eq!(channel_perms(&owner, GUILD, &ows), Perms::ALL);
    }

    #[test]
    fn names_list_the_bits() {
        assert_eq!(
            (Perms::SPEAK | Perms::VIDEO).names(),
            vec!["SPEAK", "VIDEO"]
        );
        assert_eq!(Perms::ALL.names().len(), 20);
    }
}
