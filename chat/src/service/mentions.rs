//! Finds mentions in message text. Pure logic; the caller resolves names against the
//! guild's members, roles and channels.
//!
//! Forms: `<@id>` and `@username` for users, `<@&id>` and `@rolename` for roles,
//! `<#id>` and `#channel-name` for channels, and `@everyone` and `@here`. Text inside
//! backticks (code) mentions nobody.

use crate::model::{ChannelId, RoleId, UserId};

/// What a message mentions, before resolution.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub user_ids: Vec<UserId>,
    pub role_ids: Vec<RoleId>,
    pub channel_ids: Vec<ChannelId>,
    /// `@name`: a username or a role name.
    pub names: Vec<String>,
    /// `#name`: a channel name.
    pub channel_names: Vec<String>,
    pub everyone: bool,
    pub here: bool,
}

/// At most this many mentions of each kind are taken from one message.
pub const MAX_PER_KIND: usize = 50;

fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if v.len() < MAX_PER_KIND && !v.contains(&x) {
        v.push(x);
    }
}

fn name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.' || c == '-'
}

/// The text outside code spans and blocks.
fn outside_code(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let fence = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        match after.find(fence) {
            Some(end) => {
                out.push(' ');
                rest = &after[end + ticks..];
            }
            None => {
                // An unclosed fence is plain text.
                out.push_str(fence);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn parse(content: &str) -> Found {
    let text = outside_code(content);
    let mut f = Found::default();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        // `<@x>` is a malformed canonical mention, not `@x`.
        let prev_ok = i == 0 || !(name_char(chars[i - 1].1) || chars[i - 1].1 == '<');
        let rest = &text[at..];
        if c == '<' {
            // <@id>, <@!id>, <@&id>, <#id>
            if let Some(end) = rest.find('>') {
                let inner = &rest[1..end];
                let (kind, digits) = if let Some(d) = inner.strip_prefix("@&") {
                    (1, d)
                } else if let Some(d) = inner.strip_prefix("@!") {
                    (0, d)
                } else if let Some(d) = inner.strip_prefix('@') {
                    (0, d)
                } else if let Some(d) = inner.strip_prefix('#') {
                    (2, d)
                } else {
                    (9, "")
                };
                if kind != 9
                    && !digits.is_empty()
                    && digits.len() <= 19
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && let Ok(id) = digits.parse::<i64>()
                {
                    match kind {
                        0 => push(&mut f.user_ids, UserId(id)),
                        1 => push(&mut f.role_ids, RoleId(id)),
                        _ => push(&mut f.channel_ids, ChannelId(id)),
                    }
                    i += rest[..=end].chars().count();
                    continue;
                }
            }
        } else if (c == '@' || c == '#') && prev_ok {
            let name: String = rest[1..].chars().take_while(|c| name_char(*c)).collect();
            // Trailing dots and dashes end a sentence, not a name.
            let name = name.trim_end_matches(['.', '-']).to_owned();
            let len = name.chars().count();
            if len > 0 {
                if c == '@' {
                    match name.as_str() {
                        "everyone" => f.everyone = true,
                        "here" => f.here = true,
                        _ if len <= 100 => push(&mut f.names, name),
                        _ => {}
                    }
                } else if len <= 100 {
                    push(&mut f.channel_names, name);
                }
                i += 1 + len;
                continue;
            }
        }
        i += 1;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_form() {
        let f = parse("hi <@12> <@!13> <@&7> <#99> @alice @everyone @here #general #공지 ok");
        assert_eq!(f.user_ids, vec![UserId(12), UserId(13)]);
        assert_eq!(f.role_ids, vec![RoleId(7)]);
        assert_eq!(f.channel_ids, vec![ChannelId(99)]);
        assert_eq!(f.names, vec!["alice"]);
        assert_eq!(f.channel_names, vec!["general", "공지"]);
        assert!(f.everyone && f.here);
    }

    #[test]
    fn ignores_code_emails_and_malformed_tokens() {
        let f = parse("`@everyone` ```\n<@1>\n``` mail bob@example.com <@x> <@> <#> <@&>");
        assert_eq!(f, Found::default());
        let f = parse("unclosed ` @bob");
        assert_eq!(f.names, vec!["bob"]);
    }

    #[test]
    fn sentence_punctuation_ends_a_name_and_duplicates_count_once() {
        let f = parse("thanks @bob. and @bob, again <@5><@5>");
        assert_eq!(f.names, vec!["bob"]);
        assert_eq!(f.user_ids, vec![UserId(5)]);
    }

    #[test]
    fn mentions_are_capped() {
        let text: String = (0..200).map(|i| format!("<@{i}> ")).collect();
        assert_eq!(parse(&text).user_ids.len(), MAX_PER_KIND);
    }
}
