//! How times are shown: UTC, to the minute (the viewer's zone needs JavaScript or a
//! profile setting; both come later).

/// `2026-11-24 19:05 UTC`.
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
    #[test]
    fn formats() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::iso(61_000), "1970-01-01T00:01:01Z");
    }
}
