//! Notification levels and mutes: what a person asked to hear from a conversation or a
//! server, and how a channel's own choice and its server's default combine.

/// How much of a conversation reaches a person as a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Every message (a push for DMs; groups and channels push mentions and replies only).
    All,
    /// Only @mentions of the person and replies to them.
    Mentions,
    Nothing,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "all" => Some(Level::All),
            "mentions" => Some(Level::Mentions),
            "nothing" => Some(Level::Nothing),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::All => "all",
            Level::Mentions => "mentions",
            Level::Nothing => "nothing",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Level::All => "All messages",
            Level::Mentions => "Only @mentions",
            Level::Nothing => "Nothing",
        }
    }
}

pub const LEVELS: [Level; 3] = [Level::All, Level::Mentions, Level::Nothing];

/// "Mute until I turn it back on": a date no one will reach (9999-12-31).
pub const FOREVER: i64 = 253_402_300_799_000;

/// The "Mute for" choices: form value, label, length in ms (None: until turned back on).
pub const MUTE_FOR: [(&str, &str, Option<i64>); 5] = [
    ("15m", "Mute for 15 minutes", Some(15 * 60_000)),
    ("1h", "Mute for 1 hour", Some(3_600_000)),
    ("8h", "Mute for 8 hours", Some(8 * 3_600_000)),
    ("24h", "Mute for 24 hours", Some(24 * 3_600_000)),
    ("forever", "Mute until I turn it back on", None),
];

/// A stored choice; `level` None means "as the default".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Setting {
    pub level: Option<Level>,
    pub muted_until: Option<i64>,
}

impl Setting {
    pub fn from_row(level: Option<&str>, muted_until: Option<i64>) -> Setting {
        Setting { level: level.and_then(Level::parse), muted_until }
    }

    pub fn muted_at(&self, now: i64) -> bool {
        self.muted_until.is_some_and(|until| until > now)
    }
}

/// What applies to one person in one conversation: the conversation's own level, else
/// its server's (channels), else All; muted when either mute is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    pub level: Level,
    pub muted: bool,
}

pub fn effective(own: Setting, server: Option<Setting>, now: i64) -> Effective {
    let server = server.unwrap_or_default();
    Effective {
        level: own.level.or(server.level).unwrap_or(Level::All),
        muted: own.muted_at(now) || server.muted_at(now),
    }
}

impl Effective {
    /// Whether a message reaches this person as a push: `mentioned` covers @mentions
    /// (and group mentions) of them and replies to their messages; `direct` a DM.
    pub fn wants(&self, direct: bool, mentioned: bool) -> bool {
        if self.muted {
            return false;
        }
        match self.level {
            Level::Nothing => false,
            Level::Mentions => mentioned,
            Level::All => direct || mentioned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    #[test]
    fn a_channel_takes_its_servers_level_unless_it_has_its_own() {
        let server = Setting { level: Some(Level::Nothing), muted_until: None };
        assert_eq!(effective(Setting::default(), Some(server), NOW).level, Level::Nothing);
        let own = Setting { level: Some(Level::All), muted_until: None };
        assert_eq!(effective(own, Some(server), NOW).level, Level::All);
        assert_eq!(effective(Setting::default(), None, NOW).level, Level::All);
    }

    #[test]
    fn a_mute_holds_until_its_time_and_a_server_mute_covers_its_channels() {
        let muted = Setting { level: None, muted_until: Some(NOW + 1) };
        assert!(effective(muted, None, NOW).muted);
        assert!(!effective(Setting { muted_until: Some(NOW), ..muted }, None, NOW).muted);
        assert!(effective(Setting::default(), Some(muted), NOW).muted);
    }

    #[test]
    fn who_wants_a_push() {
        let all = Effective { level: Level::All, muted: false };
        assert!(all.wants(true, false) && all.wants(false, true) && !all.wants(false, false));
        let mentions = Effective { level: Level::Mentions, muted: false };
        assert!(!mentions.wants(true, false) && mentions.wants(true, true));
        assert!(!Effective { level: Level::Nothing, muted: false }.wants(true, true));
        assert!(!Effective { level: Level::All, muted: true }.wants(true, true));
    }
}
