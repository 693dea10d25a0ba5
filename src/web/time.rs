//! How times are shown: in the viewer's time zone (a profile setting; UTC until one is
//! set), Telegram style. Messages show `14:05` under a day separator ("Today",
//! "Yesterday", "Monday, December 3"); everywhere else a time reads "Today 14:05",
//! "Yesterday 09:12" or "3 Dec 2026 14:05". The tz database is compiled in (jiff's
//! bundled tzdb), so a zone means the same on every machine.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/// The names of UTC in the tz database.
const UTC_NAMES: [&str; 9] = ["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "Etc/GMT"];

/// A viewer's time zone. Cheap to clone (the zone's rules are shared).
#[derive(Clone, Debug)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::utc()
    }
}

impl Zone {
    pub fn utc() -> Zone {
        Zone { name: "UTC".into(), tz: TimeZone::UTC }
    }

    /// An IANA zone name as typed ("Asia/Tokyo"); None when the database knows no such zone.
    pub fn parse(name: &str) -> Option<Zone> {
        let name = name.trim();
        // Only names: jiff would also read POSIX TZ strings, which are no one's setting.
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c)) {
            return None;
        }
        let tz = jiff::tz::db().get(name).ok()?;
        // The database's own spelling ("asia/tokyo" is found, "Asia/Tokyo" is stored).
        let name = tz.iana_name().unwrap_or(name).to_string();
        // UTC by any of its names is "UTC": pages and the shared live frame then agree
        // to the byte (the live copy of a page's message is the same element).
        if UTC_NAMES.contains(&name.as_str()) {
            return Some(Zone::utc());
        }
        Some(Zone { name, tz })
    }

    /// The stored setting: UTC when empty (not chosen yet) or no longer known.
    pub fn stored(name: &str) -> Zone {
        Zone::parse(name).unwrap_or_else(Zone::utc)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for UTC and its aliases ("Etc/UTC"): pages and frames rendered for nobody
    /// in particular are in UTC, so these viewers can share them.
    pub fn is_utc(&self) -> bool {
        self.name == "UTC"
    }

    fn local(&self, ms: i64) -> Option<jiff::Zoned> {
        Some(Timestamp::from_millisecond(ms).ok()?.to_zoned(self.tz.clone()))
    }

    /// The local calendar day of `ms`.
    pub fn day(&self, ms: i64) -> Option<Date> {
        self.local(ms).map(|t| t.date())
    }

    /// `14:05`: a message's time under its day separator.
    pub fn clock(&self, ms: i64) -> String {
        match self.local(ms) {
            Some(t) => format!("{:02}:{:02}", t.hour(), t.minute()),
            None => String::new(),
        }
    }

    /// `Monday, December 7, 2026 14:05 (Asia/Tokyo)`: a message time's title.
    pub fn full(&self, ms: i64) -> String {
        match self.local(ms) {
            Some(t) => format!("{}, {} {:02}:{:02} ({})", weekday(t.date()), long_date(t.date(), true), t.hour(), t.minute(), self.name),
            None => String::new(),
        }
    }

    /// A day separator's text: "Today", "Yesterday", "Monday, December 3" (with the
    /// year when it is not this year's), as seen at `now`.
    pub fn day_label(&self, ms: i64, now: i64) -> String {
        let (Some(day), Some(today)) = (self.day(ms), self.day(now)) else { return String::new() };
        if day == today {
            return "Today".into();
        }
        if today.yesterday().is_ok_and(|y| y == day) {
            return "Yesterday".into();
        }
        format!("{}, {}", weekday(day), long_date(day, day.year() != today.year()))
    }

    /// The first instant of the day after `ms`'s, in this zone.
    pub fn next_midnight(&self, ms: i64) -> Option<i64> {
        let tomorrow = self.day(ms)?.tomorrow().ok()?;
        Some(tomorrow.to_zoned(self.tz.clone()).ok()?.timestamp().as_millisecond())
    }

    /// "Today 14:05", "Yesterday 09:12" or "3 Dec 2026 14:05": a time outside the
    /// message list (search results, audit log, sessions, "timed out until …").
    pub fn stamp(&self, ms: i64, now: i64) -> String {
        let (Some(t), Some(today)) = (self.local(ms), self.day(now)) else { return "unknown".into() };
        let day = t.date();
        let clock = format!("{:02}:{:02}", t.hour(), t.minute());
        if day == today {
            format!("Today {clock}")
        } else if today.yesterday().is_ok_and(|y| y == day) {
            format!("Yesterday {clock}")
        } else {
            let month = MONTHS[(day.month() - 1) as usize];
            format!("{} {} {} {clock}", day.day(), &month[..3], day.year())
        }
    }
}

/// How times are shown to one viewer: their zone, and the moment "Today" is judged from.
#[derive(Clone, Debug)]
pub struct Clock {
    pub zone: Zone,
    pub now: i64,
}

impl Clock {
    /// `zone` as of now.
    pub fn at_now(zone: &Zone) -> Clock {
        Clock { zone: zone.clone(), now: crate::store::now_ms() }
    }

    pub fn utc() -> Clock {
        Clock::at_now(&Zone::utc())
    }

    /// "Today 14:05" and the like.
    pub fn stamp(&self, ms: i64) -> String {
        self.zone.stamp(ms, self.now)
    }
}

fn weekday(day: Date) -> &'static str {
    use jiff::civil::Weekday::*;
    match day.weekday() {
        Monday => "Monday",
        Tuesday => "Tuesday",
        Wednesday => "Wednesday",
        Thursday => "Thursday",
        Friday => "Friday",
        Saturday => "Saturday",
        Sunday => "Sunday",
    }
}

/// "December 3" or "December 3, 2025".
fn long_date(day: Date, with_year: bool) -> String {
    let month = MONTHS[(day.month() - 1) as usize];
    if with_year { format!("{month} {}, {}", day.day(), day.year()) } else { format!("{month} {}", day.day()) }
}

/// `2026-11-24 19:05 UTC`: where one text is shared by every viewer whatever their
/// zone (presence "last seen" and status expiries, sent live to many people at once).
pub fn format_time(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms / 1000) {
        Ok(t) => format!("{}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
        Err(_) => "unknown".to_string(),
    }
}

/// `2026-11-24T19:05:00Z`, for `<time datetime>`.
pub fn iso(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms / 1000) {
        Ok(t) => format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 01:30 UTC.
    const AT: i64 = 1_796_607_000_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn formats() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(iso(61_000), "1970-01-01T00:01:01Z");
    }

    #[test]
    fn zones_are_names_from_the_database() {
        assert_eq!(Zone::parse("asia/tokyo").map(|z| z.name().to_string()), Some("Asia/Tokyo".into()));
        assert!(Zone::parse("Mars/Olympus").is_none());
        assert!(Zone::parse("").is_none());
        assert!(Zone::parse("EST5EDT,M3.2.0,M11.1.0").is_none());
        assert_eq!(Zone::stored("nonsense").name(), "UTC");
        assert!(Zone::stored("Etc/UTC").is_utc());
        assert_eq!(Zone::stored("Etc/UTC").name(), "UTC");
        assert!(!Zone::stored("Europe/London").is_utc());
    }

    #[test]
    fn the_same_instant_in_two_zones() {
        let tokyo = Zone::stored("Asia/Tokyo");
        let utc = Zone::utc();
        assert_eq!(utc.clock(AT), "01:30");
        assert_eq!(tokyo.clock(AT), "10:30");
        assert_eq!(tokyo.full(AT), "Monday, December 7, 2026 10:30 (Asia/Tokyo)");
        // Six hours earlier it is still Sunday in UTC but already Monday in Tokyo.
        let before = AT - 6 * HOUR;
        assert_eq!(utc.day_label(before, AT), "Yesterday");
        assert_eq!(tokyo.day_label(before, AT), "Today");
        assert_eq!(utc.stamp(before, AT), "Yesterday 19:30");
        assert_eq!(tokyo.stamp(before, AT), "Today 04:30");
        assert_eq!(utc.day_label(AT - 72 * HOUR, AT), "Friday, December 4");
        assert_eq!(utc.day_label(AT - 400 * 24 * HOUR, AT), "Sunday, November 2, 2025");
        assert_eq!(utc.stamp(AT - 72 * HOUR, AT), "4 Dec 2026 01:30");
    }

    #[test]
    fn today_ends_at_the_zones_midnight() {
        // 10:30 in Tokyo: midnight there is 13.5 hours away; in UTC 22.5.
        assert_eq!(Zone::stored("Asia/Tokyo").next_midnight(AT), Some(AT + 27 * HOUR / 2));
        assert_eq!(Zone::utc().next_midnight(AT), Some(AT + 45 * HOUR / 2));
    }
}
