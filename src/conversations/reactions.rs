//! Which reactions exist: a picker of common emoji, and free entry of one emoji.

pub const COMMON: &[&str] = &["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/// One emoji as typed into the free-entry box: at most 8 code points (flags, skin
/// tones and ZWJ families take several), none of them letters, digits, spaces or
/// controls; plain punctuation alone is not an emoji either.
pub fn parse_emoji(input: &str) -> Result<String, &'static str> {
    let emoji = input.trim();
    if emoji.is_empty() {
        return Err("Choose an emoji.");
    }
    let chars: Vec<char> = emoji.chars().collect();
    let keycap = chars.len() >= 2 && chars[0].is_ascii() && matches!(chars[0], '0'..='9' | '#' | '*') && chars.contains(&'\u{20e3}');
    let ok = chars.len() <= 8
        && (keycap || chars.iter().all(|c| !c.is_ascii() && !c.is_whitespace() && !c.is_control() && !c.is_alphanumeric()))
        && chars.iter().any(|c| u32::from(*c) >= 0x2100);
    if !ok {
        return Err("Reactions are a single emoji.");
    }
    Ok(emoji.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_only() {
        for good in ["👍", "❤️", "👍🏽", "🇫🇷", "👨‍👩‍👧", "1️⃣", "🎉"] {
            assert!(parse_emoji(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "ok", "<script>", "👍 hi", "!!", "é", "\u{202e}", "👍👍👍👍👍👍👍👍👍"] {
            assert!(parse_emoji(bad).is_err(), "{bad}");
        }
        for e in COMMON {
            assert!(parse_emoji(e).is_ok(), "{e}");
        }
    }
}
