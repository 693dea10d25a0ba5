//! A person's profile: bio, pronouns and a custom status (one emoji and a short text
//! with an expiry). The status is stored with its expiry time and judged when a page
//! or event is rendered, so an expired status simply stops showing: no timer clears it.

use askama::Template;

use crate::store::{Store, now_ms};
use crate::with_db;

pub const BIO_MAX_CHARS: usize = 500;
pub const PRONOUNS_MAX_CHARS: usize = 40;
pub const STATUS_MAX_CHARS: usize = 100;

/// How long a status lasts: the choices the settings form offers.
pub const EXPIRIES: [(&str, &str); 5] =
    [("30m", "30 minutes"), ("1h", "1 hour"), ("4h", "4 hours"), ("today", "Today"), ("never", "Don't clear")];

/// When a status chosen at `now` with `expiry` ends; `None` is never. "Today" ends at
/// the next midnight in the person's `zone`.
pub fn expires_at(expiry: &str, now: i64, zone: &crate::web::time::Zone) -> Result<Option<i64>, &'static str> {
    const MINUTE: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MINUTE;
    Ok(match expiry.trim() {
        "30m" => Some(now + 30 * MINUTE),
        "1h" => Some(now + 60 * MINUTE),
        "4h" => Some(now + 240 * MINUTE),
        "today" => Some(zone.next_midnight(now).unwrap_or((now.div_euclid(DAY) + 1) * DAY)),
        "never" => None,
        _ => return Err("Choose when the status clears."),
    })
}

/// Text without control or bidirectional-override characters (they can disguise what
/// others read), trimmed, at most `max` characters.
fn clean(input: &str, max: usize, what: &'static str, keep_newlines: bool) -> Result<String, String> {
    let text = input.trim().replace("\r\n", "\n");
    if text.chars().count() > max {
        return Err(format!("{what} can have at most {max} characters."));
    }
    let bad = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if text.chars().any(bad) {
        return Err(format!("{what} cannot contain control characters."));
    }
    Ok(text)
}

/// What the profile form saves, checked.
#[derive(Debug, PartialEq)]
pub struct ProfileValues {
    pub display_name: String,
    pub pronouns: String,
    pub bio: String,
}

impl ProfileValues {
    /// Every problem at once, by field, so the form shows them all beside the input.
    pub fn parse(display_name: &str, pronouns: &str, bio: &str) -> Result<ProfileValues, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let display_name = super::model::DisplayName::parse(display_name)
            .map(|n| n.into_string())
            .map_err(|e| errors.push(("display_name", e.to_string())))
            .unwrap_or_default();
        let pronouns = clean(pronouns, PRONOUNS_MAX_CHARS, "Pronouns", false).map_err(|e| errors.push(("pronouns", e))).unwrap_or_default();
        let bio = clean(bio, BIO_MAX_CHARS, "The bio", true).map_err(|e| errors.push(("bio", e))).unwrap_or_default();
        if errors.is_empty() { Ok(ProfileValues { display_name, pronouns, bio }) } else { Err(errors) }
    }
}

/// A custom status to save: empty emoji and text clear it.
#[derive(Debug, PartialEq)]
pub struct StatusValues {
    pub emoji: String,
    pub text: String,
    pub expires_at: Option<i64>,
}

impl StatusValues {
    pub fn parse(emoji: &str, text: &str, expiry: &str, now: i64, zone: &crate::web::time::Zone) -> Result<StatusValues, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let emoji = match emoji.trim() {
            "" => String::new(),
            typed => crate::conversations::reactions::parse_emoji(typed)
                .map_err(|_| errors.push(("status_emoji", "The status emoji is one emoji (or none).".to_string())))
                .unwrap_or_default(),
        };
        let text = clean(text, STATUS_MAX_CHARS, "The status", false).map_err(|e| errors.push(("status_text", e))).unwrap_or_default();
        let expires_at = expires_at(expiry, now, zone).map_err(|e| errors.push(("status_expiry", e.to_string()))).unwrap_or(None);
        if errors.is_empty() { Ok(StatusValues { emoji, text, expires_at }) } else { Err(errors) }
    }
}

/// A status as others see it now: empty when none is set, it expired, or the viewer
/// may not see it (`hidden`).
#[derive(Clone, Debug, Default)]
pub struct StatusView {
    pub user_id: i64,
    pub emoji: String,
    pub text: String,
    /// "until 2026-12-07 18:00 UTC", for the title; empty for "never".
    pub until: String,
}

impl StatusView {
    pub fn current(user_id: i64, emoji: &str, text: &str, expires_at: Option<i64>) -> StatusView {
        let live = expires_at.is_none_or(|at| at > now_ms());
        if !live || (emoji.is_empty() && text.is_empty()) {
            return StatusView::hidden(user_id);
        }
        StatusView {
            user_id,
            emoji: emoji.to_string(),
            text: text.to_string(),
            until: expires_at.map(|at| format!("until {}", crate::web::time::format_time(at))).unwrap_or_default(),
        }
    }

    pub fn hidden(user_id: i64) -> StatusView {
        StatusView { user_id, ..StatusView::default() }
    }

    pub fn is_set(&self) -> bool {
        !self.emoji.is_empty() || !self.text.is_empty()
    }
}

/// The status slot, the same partial in the sidebar, message headers, member lists and
/// the profile card: live updates replace every `.status-ID` with it.
#[derive(Template)]
#[template(path = "accounts/_status.html")]
pub struct StatusFragment<'a> {
    pub s: &'a StatusView,
}

/// A face beside a name: the avatar when one is set, else the name's initials in a
/// circle coloured by the user id. Decorative (`alt=""`, `aria-hidden`): the name is
/// always written beside it, so it adds nothing for a screen reader.
#[derive(Clone, Debug, Default)]
pub struct AvatarView {
    pub user_id: i64,
    pub initials: String,
    /// One of eight colours, so a fallback is told apart at a glance.
    pub hue: i64,
    pub url: Option<String>,
}

impl AvatarView {
    pub fn new(user_id: i64, name: &str, avatar_key: Option<&str>) -> AvatarView {
        AvatarView {
            user_id,
            initials: crate::servers::nav::initials(name),
            hue: user_id.rem_euclid(8),
            url: avatar_key.map(super::avatar::url),
        }
    }
}

/// The avatar slot, the same partial wherever a person's face is shown: live updates
/// replace every `.avatar-ID` with it.
#[derive(Template)]
#[template(path = "accounts/_avatar.html")]
pub struct AvatarFragment<'a> {
    pub a: &'a AvatarView,
}

/// The columns a status is read from, for `users` under `alias`, as a `concat!` literal.
#[macro_export]
macro_rules! status_sql {
    ($alias:literal) => {
        concat!($alias, ".status_emoji, ", $alias, ".status_text, ", $alias, ".status_expires_at")
    };
}

/// Everything the profile card and settings show of a person.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProfileRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub bio: String,
    pub pronouns: String,
    pub status_emoji: String,
    pub status_text: String,
    pub status_expires_at: Option<i64>,
    pub presence: String,
    pub last_seen_at: Option<i64>,
    pub last_seen_audience: String,
    pub avatar_key: Option<String>,
}

impl ProfileRow {
    pub fn name(&self) -> &str {
        super::model::shown_name(&self.display_name, &self.username)
    }

    pub fn avatar(&self) -> AvatarView {
        AvatarView::new(self.id, self.name(), self.avatar_key.as_deref())
    }

    pub fn status(&self) -> StatusView {
        StatusView::current(self.id, &self.status_emoji, &self.status_text, self.status_expires_at)
    }
}

const PROFILE: &str = concat!("SELECT id, username, display_name, bio, pronouns, ", status_sql!("users"), ",
    presence, last_seen_at, last_seen_audience, avatar_key FROM users");

pub async fn by_username(store: &Store, username: &str) -> Result<Option<ProfileRow>, sqlx::Error> {
    let sql = format!("{PROFILE} WHERE username = $1");
    let name = username.trim().trim_start_matches('@').to_lowercase();
    with_db!(store, pool => sqlx::query_as(&sql).bind(name).fetch_optional(pool).await)
}

pub async fn by_id(store: &Store, user_id: i64) -> Result<Option<ProfileRow>, sqlx::Error> {
    let sql = format!("{PROFILE} WHERE id = $1");
    with_db!(store, pool => sqlx::query_as(&sql).bind(user_id).fetch_optional(pool).await)
}

pub async fn save_profile(store: &Store, user_id: i64, values: &ProfileValues) -> Result<(), sqlx::Error> {
    let sql = "UPDATE users SET display_name = $1, pronouns = $2, bio = $3 WHERE id = $4";
    with_db!(store, pool => sqlx::query(sql).bind(&values.display_name).bind(&values.pronouns).bind(&values.bio).bind(user_id)
        .execute(pool).await.map(|_| ()))
}

pub async fn save_status(store: &Store, user_id: i64, values: &StatusValues) -> Result<(), sqlx::Error> {
    let sql = "UPDATE users SET status_emoji = $1, status_text = $2, status_expires_at = $3 WHERE id = $4";
    with_db!(store, pool => sqlx::query(sql).bind(&values.emoji).bind(&values.text).bind(values.expires_at).bind(user_id)
        .execute(pool).await.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_ends_at_midnight_in_the_persons_zone() {
        // Noon UTC on day 3 is 21:00 in Tokyo: its "today" ends three hours later.
        let noon = 86_400_000 * 3 + 12 * 3_600_000;
        let tokyo = crate::web::time::Zone::stored("Asia/Tokyo");
        assert_eq!(expires_at("today", noon, &tokyo), Ok(Some(noon + 3 * 3_600_000)));
    }

    #[test]
    fn today_ends_at_midnight_utc() {
        let noon = 86_400_000 * 3 + 12 * 3_600_000;
        assert_eq!(expires_at("today", noon, &Default::default()), Ok(Some(86_400_000 * 4)));
        assert_eq!(expires_at("30m", 0, &Default::default()), Ok(Some(1_800_000)));
        assert_eq!(expires_at("never", 5, &Default::default()), Ok(None));
        assert!(expires_at("tomorrow", 0, &Default::default()).is_err());
    }

    #[test]
    fn an_expired_status_is_not_shown() {
        assert!(!StatusView::current(1, "🌴", "Away", Some(now_ms() - 1)).is_set());
        assert!(StatusView::current(1, "🌴", "Away", Some(now_ms() + 60_000)).is_set());
        assert!(StatusView::current(1, "", "Away", None).is_set());
        assert!(!StatusView::current(1, "", "", None).is_set());
    }

    #[test]
    fn status_and_profile_input_is_checked() {
        assert!(StatusValues::parse("🌴", "On holiday", "1h", 0, &Default::default()).is_ok());
        let errors = StatusValues::parse("ok", &"x".repeat(101), "soon", 0, &Default::default()).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), ["status_emoji", "status_text", "status_expiry"]);
        assert!(ProfileValues::parse("Al", "she/her", "line one\nline two").is_ok());
        assert!(ProfileValues::parse("Al", "\u{202e}", "").is_err());
        assert!(ProfileValues::parse("Al", "", &"b".repeat(501)).is_err());
    }
}
