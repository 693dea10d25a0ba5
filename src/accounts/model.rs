//! Account input types that can only hold valid values: `Username::parse`,
//! `Email::parse`, `DisplayName::parse`, and the password policy.

/// 2–32 characters of `a-z 0-9 _ .`; typed capitals are folded to lower case, so
/// names are unique regardless of case (as on Telegram).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Username, &'static str> {
        let name = input.trim().to_lowercase();
        if name.is_empty() {
            return Err("Choose a username.");
        }
        let length = name.chars().count();
        if length < 2 {
            return Err("Usernames need at least 2 characters.");
        }
        if length > 32 {
            return Err("Usernames can have at most 32 characters.");
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.') {
            return Err("Usernames may use only letters a–z, digits, underscore and dot.");
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, trimmed and lower-cased (one account per mailbox, whatever the case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, &'static str> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err("Enter your email address.");
        }
        if email.len() > 254 {
            return Err("That email address is too long.");
        }
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
            }
            None => false,
        };
        if !valid {
            return Err("Enter an email address like name@example.org.");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What others see instead of the username; optional, at most 64 characters, no
/// control or bidirectional-override characters (they can disguise a name).
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(input: &str) -> Result<DisplayName, &'static str> {
        let name = input.trim();
        if name.chars().count() > 64 {
            return Err("Display names can have at most 64 characters.");
        }
        if name.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)) {
            return Err("Display names cannot contain control characters.");
        }
        Ok(DisplayName(name.to_string()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// The name to show for a person: their display name when they chose one, else their
/// username. The one rule, in Rust here and in SQL as `shown_name_sql!`.
pub fn shown_name<'a>(display_name: &'a str, username: &'a str) -> &'a str {
    if display_name.is_empty() { username } else { display_name }
}

/// `shown_name` in SQL for the users table under `alias`, as a literal for `concat!`.
#[macro_export]
macro_rules! shown_name_sql {
    ($alias:literal) => {
        concat!("COALESCE(NULLIF(", $alias, ".display_name, ''), ", $alias, ".username)")
    };
}

/// At least 8 characters, at most 1,024 bytes, and not among the passwords attackers
/// try first. zxcvbn's dictionaries hold the common-password lists; a score of 0 or 1
/// means "guessable in under a million tries", which is what we refuse. Names the user
/// typed in the same form count as guessable too.
pub fn check_password(password: &str, related: &[&str]) -> Result<(), &'static str> {
    if password.is_empty() {
        return Err("Choose a password.");
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err("Passwords need at least 8 characters.");
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err("Passwords can have at most 1,024 bytes.");
    }
    // zxcvbn's matching grows quickly with length; the first 100 characters decide
    // whether a password is common, and longer ones are long enough anyway.
    let head: String = password.chars().take(100).collect();
    let score = zxcvbn::zxcvbn(&head, related).score();
    if (score as u8) < 2 {
        return Err("That password is too common or easy to guess. Try a longer phrase of unrelated words.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("a").is_err());
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert!(Username::parse("bob smith").is_err());
        assert!(Username::parse("bob<script>").is_err());
        assert!(Username::parse("zoë").is_err());
        assert!(Username::parse("j.doe_2").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Bob@Example.ORG ").unwrap().as_str(), "bob@example.org");
        for bad in ["", "bob", "bob@", "@example.org", "bob@example", "bob@@example.org", "b ob@example.org"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("short", &[]).is_err());
        assert!(check_password("password", &[]).is_err());
        assert!(check_password("12345678", &[]).is_err());
        assert!(check_password("qwertyuiop", &[]).is_err());
        assert!(check_password("alice2024", &["alice"]).is_err());
        assert!(check_password("correct horse battery staple", &[]).is_ok());
        assert!(check_password(&"Long passphrase, ".repeat(6), &[]).is_ok());
        assert!(check_password(&"x".repeat(1025), &[]).is_err());
    }

    #[test]
    fn display_names() {
        assert!(DisplayName::parse("Alice Liddell").is_ok());
        assert!(DisplayName::parse("evil\u{202e}gnp.exe").is_err());
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
    }
}
