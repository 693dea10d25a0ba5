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

/// A role's colour as the page paints names with it: per theme, moved toward black
/// (light theme) or white (dark theme) just enough to be read against the page — a
/// server's chosen colour must not make a name unreadable (WCAG AA, 4.5:1).
pub struct RoleColor {
    pub id: i64,
    pub light: String,
    pub dark: String,
}

/// The page backgrounds names sit on (`--bg` in `assets/app.css`): the light theme's
/// and the dark theme's; against each, the worst case of the panels around it.
const LIGHT_BACKGROUND: [f64; 3] = [246.0, 247.0, 249.0];
const DARK_BACKGROUND: [f64; 3] = [30.0, 33.0, 39.0];
const READABLE: f64 = 4.6;

impl RoleColor {
    /// None for no colour or anything but `#rrggbb` (nothing else reaches CSS).
    pub fn of(id: i64, color: &str) -> Option<RoleColor> {
        let hex = color.strip_prefix('#').filter(|h| h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()))?;
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map(f64::from).ok();
        let rgb = [channel(0)?, channel(2)?, channel(4)?];
        Some(RoleColor { id, light: readable(rgb, LIGHT_BACKGROUND, 0.0), dark: readable(rgb, DARK_BACKGROUND, 255.0) })
    }
}

fn luminance(rgb: [f64; 3]) -> f64 {
    let linear = |c: f64| {
        let c = c / 255.0;
        if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
}

pub fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// `rgb` mixed toward `toward` (0 black, 255 white) in small steps until it reads
/// against `background`; at worst it ends at black or white, which always does.
fn readable(mut rgb: [f64; 3], background: [f64; 3], toward: f64) -> String {
    for _ in 0..40 {
        if contrast(rgb, background) >= READABLE {
            break;
        }
        rgb = rgb.map(|c| c + (toward - c) * 0.1);
    }
    if contrast(rgb, background) < READABLE {
        rgb = [toward; 3];
    }
    format!("#{:02x}{:02x}{:02x}", rgb[0].round() as u8, rgb[1].round() as u8, rgb[2].round() as u8)
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
    fn role_colours_are_made_readable_in_both_themes() {
        let parse = |hex: &str| [0, 2, 4].map(|i| f64::from(u8::from_str_radix(&hex[1 + i..3 + i], 16).unwrap()));
        for color in ["#3a7bd5", "#ffff00", "#000000", "#ffffff", "#808080", "#1e2127"] {
            let c = RoleColor::of(1, color).unwrap();
            assert!(contrast(parse(&c.light), LIGHT_BACKGROUND) >= 4.5, "{color} in light: {}", c.light);
            assert!(contrast(parse(&c.dark), DARK_BACKGROUND) >= 4.5, "{color} in dark: {}", c.dark);
        }
        assert_eq!(RoleColor::of(1, "#000000").unwrap().light, "#000000", "a readable colour stays as chosen");
        assert!(RoleColor::of(1, "").is_none() && RoleColor::of(1, "red").is_none() && RoleColor::of(1, "#12345g").is_none());
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
