//! Mentions that stand for many people in a channel: `@everyone` (everyone who sees
//! the channel), `@here` (those of them online) — both only from someone with
//! MENTION_EVERYONE there — and `@RoleName` for a mentionable role (any role, with
//! MENTION_EVERYONE). They are expanded to user ids when the message is written and
//! stored in the `mentions` table like `@name` mentions, so badges, highlighting
//! (`data-mentions`), live frames and unread counts need nothing new.

use crate::error::AppResult;
use crate::state::AppState;
use crate::with_db;

use super::context::ServerShape;
use super::permissions::Permissions;

/// True when `body` holds `@name` (case-insensitive) standing alone: not inside a word
/// or an address before it, not running on into more of a name after it.
pub fn has_token(body: &str, name: &str) -> bool {
    let (hay, needle) = (body.to_lowercase(), format!("@{}", name.to_lowercase()));
    hay.match_indices(&needle).any(|(at, _)| {
        let before = hay[..at].chars().next_back();
        let after = hay[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | '@' | '/'))
            && !after.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '@'))
    })
}

/// Adds to `mentions` everyone `body` reaches through group mentions in `channel_id`,
/// leaving out the author. `permissions` are the author's in that channel.
pub async fn add_group_mentions(
    state: &AppState,
    shape: &ServerShape,
    channel_id: i64,
    author_id: i64,
    permissions: Permissions,
    body: &str,
    mentions: &mut Vec<i64>,
) -> AppResult<()> {
    if !body.contains('@') {
        return Ok(());
    }
    let everyone_allowed = permissions.contains(Permissions::MENTION_EVERYONE);
    let everyone = everyone_allowed && has_token(body, "everyone");
    let here = everyone_allowed && !everyone && has_token(body, "here");
    let roles: Vec<i64> = shape
        .roles
        .iter()
        .filter(|r| !r.is_everyone && (r.mentionable || everyone_allowed) && has_token(body, &r.name))
        .map(|r| r.id)
        .collect();
    if !everyone && !here && roles.is_empty() {
        return Ok(());
    }
    // The channel's member rows are exactly who sees it (see `visibility`).
    let sql = "SELECT user_id FROM members WHERE conversation_id = $1";
    let viewers: Vec<i64> = with_db!(&state.store, pool => sqlx::query_scalar(sql).bind(channel_id).fetch_all(pool).await)?;
    let mut reached: Vec<i64> = if everyone {
        viewers.clone()
    } else if here {
        let online = state.realtime.online_among(&viewers).await;
        viewers.iter().copied().filter(|u| online.contains(u)).collect()
    } else {
        Vec::new()
    };
    if !roles.is_empty() {
        let holders: std::collections::HashSet<i64> =
            super::store::member_roles(&state.store, shape.server.id).await?.into_iter().filter(|(_, role)| roles.contains(role)).map(|(user, _)| user).collect();
        reached.extend(viewers.iter().copied().filter(|u| holders.contains(u)));
    }
    let mut seen: std::collections::HashSet<i64> = mentions.iter().copied().collect();
    seen.insert(author_id);
    mentions.extend(reached.into_iter().filter(|u| seen.insert(*u)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::has_token;

    #[test]
    fn tokens_stand_alone() {
        assert!(has_token("@everyone look", "everyone"));
        assert!(has_token("hey @Everyone!", "everyone"));
        assert!(has_token("ping @Mod Team, please", "mod team"));
        assert!(!has_token("mail me at x@everyone.org", "everyone"));
        assert!(!has_token("@everyones", "everyone"));
        assert!(!has_token("@here-and-there", "here"));
        assert!(!has_token("no mention here", "here"));
    }
}
