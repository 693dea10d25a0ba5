//! Server names, channel names, topics and the other values people type, checked the
//! same way everywhere.

pub const MAX_SERVER_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_TOPIC_CHARS: usize = 1024;
pub const MAX_CHANNEL_NAME_CHARS: usize = 100;
pub const MAX_ROLE_NAME_CHARS: usize = 100;

/// The slowmode choices (seconds), as Discord offers them.
pub const SLOWMODE_CHOICES: &[(i64, &str)] = &[
    (0, "Off"),
    (5, "5 seconds"),
    (10, "10 seconds"),
    (15, "15 seconds"),
    (30, "30 seconds"),
    (60, "1 minute"),
    (120, "2 minutes"),
    (300, "5 minutes"),
    (600, "10 minutes"),
    (900, "15 minutes"),
    (1800, "30 minutes"),
    (3600, "1 hour"),
    (7200, "2 hours"),
    (21600, "6 hours"),
];

fn has_control(text: &str) -> bool {
    text.chars().any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c))
}

fn single_line(input: &str, what: &str, max: usize) -> Result<String, String> {
    let name = input.trim();
    if name.is_empty() {
        return Err(format!("Give the {what} a name."));
    }
    if name.chars().count() > max {
        return Err(format!("A {what} name can have at most {max} characters."));
    }
    if has_control(name) || name.contains('\n') {
        return Err(format!("A {what} name cannot contain control characters."));
    }
    Ok(name.to_string())
}

pub fn parse_server_name(input: &str) -> Result<String, String> {
    single_line(input, "server", MAX_SERVER_NAME_CHARS)
}

pub fn parse_category_name(input: &str) -> Result<String, String> {
    single_line(input, "category", MAX_CHANNEL_NAME_CHARS)
}

/// Text channel names are lowercase with hyphens for spaces ("Off topic" → "off-topic"),
/// as people know them from Discord; voice channel names are kept as typed.
pub fn parse_channel_name(input: &str, kind: &str) -> Result<String, String> {
    let name = single_line(input, "channel", MAX_CHANNEL_NAME_CHARS)?;
    if kind == "voice" {
        return Ok(name);
    }
    let mut out = String::new();
    for c in name.trim_start_matches('#').chars() {
        if c.is_whitespace() || c == '-' {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { Err("Give the channel a name.".into()) } else { Ok(out) }
}

pub fn parse_role_name(input: &str) -> Result<String, String> {
    single_line(input, "role", MAX_ROLE_NAME_CHARS)
}

/// A role colour: empty (none) or `#rrggbb`, stored lowercase. Only this shape reaches
/// the per-page style block that paints member names, so nothing else can be injected
/// there.
pub fn parse_color(input: &str) -> Result<String, String> {
    let text = input.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(String::new());
    }
    let hex = text.strip_prefix('#').unwrap_or(text);
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("#{}", hex.to_ascii_lowercase()))
    } else {
        Err("Give the colour as #rrggbb (for example #3a7bd5), or leave it empty for none.".into())
    }
}

pub fn parse_description(input: &str) -> Result<String, String> {
    let text = input.trim().replace("\r\n", "\n");
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("A description can have at most {MAX_DESCRIPTION_CHARS} characters."));
    }
    if has_control(&text) {
        return Err("The description cannot contain control characters.".into());
    }
    Ok(text)
}

pub fn parse_topic(input: &str) -> Result<String, String> {
    let text = input.trim().replace("\r\n", "\n");
    if text.chars().count() > MAX_TOPIC_CHARS {
        return Err(format!("A topic can have at most {MAX_TOPIC_CHARS} characters."));
    }
    if has_control(&text) {
        return Err("The topic cannot contain control characters.".into());
    }
    Ok(text)
}

pub fn parse_slowmode(input: &str) -> Result<i64, String> {
    let seconds: i64 = input.trim().parse().map_err(|_| "Choose a slowmode from the list.".to_string())?;
    if SLOWMODE_CHOICES.iter().any(|(s, _)| *s == seconds) { Ok(seconds) } else { Err("Choose a slowmode from the list.".into()) }
}

/// "2 minutes", "45 seconds": what the composer says about a wait.
pub fn wait_label(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s if s >= 60 => format!("{} and {}", plural(s / 60, "minute"), plural(s % 60, "second")),
        s => plural(s, "second"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_read_like_discord() {
        assert_eq!(parse_channel_name("  Off   Topic ", "text").unwrap(), "off-topic");
        assert_eq!(parse_channel_name("#General", "text").unwrap(), "general");
        assert_eq!(parse_channel_name("Lounge Room", "voice").unwrap(), "Lounge Room");
        assert!(parse_channel_name(" - ", "text").is_err());
        assert!(parse_channel_name("", "voice").is_err());
        assert!(parse_channel_name(&"x".repeat(101), "text").is_err());
        assert!(parse_server_name("a\u{202e}b").is_err());
    }

    #[test]
    fn role_colours_are_hex_or_none() {
        assert_eq!(parse_color(" #3A7BD5 ").unwrap(), "#3a7bd5");
        assert_eq!(parse_color("3a7bd5").unwrap(), "#3a7bd5");
        assert_eq!(parse_color("").unwrap(), "");
        assert_eq!(parse_color("none").unwrap(), "");
        for bad in ["#fff", "red", "#12345g", "#123456;}", "#1234567"] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slowmode_and_waits() {
        assert_eq!(parse_slowmode("30").unwrap(), 30);
        assert!(parse_slowmode("31").is_err());
        assert!(parse_slowmode("x").is_err());
        assert_eq!(wait_label(1), "1 second");
        assert_eq!(wait_label(90), "1 minute and 30 seconds");
        assert_eq!(wait_label(7200), "2 hours");
    }
}
