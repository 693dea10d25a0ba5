//! Message bodies as pages show them, rendered at read time from the stored markdown
//! source (never from HTML stored at write time), so a renderer or sanitizer fix
//! reaches every message, old ones included.
//!
//! Rendering is the costly part of a page, so results are kept in memory per process:
//! by message id, checked against the renderer version, the message's edit version and
//! a hash of exactly what the output depends on (source and mentioned names). A stale
//! entry can therefore never be served; it is only re-rendered.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

use super::markdown;

/// Bump when the renderer or sanitizer changes output: every cached body is redone.
/// (The cache lives in memory, so a new build starts empty anyway; the constant keeps
/// that true if the cache ever outlives a process.)
pub const RENDERER_VERSION: u32 = 1;

/// Entries kept per cache before it starts over: a page shows 50 bodies and the
/// sidebar 200 previews, so this holds the working set of many active conversations.
const CAPACITY: usize = 50_000;

struct Entry {
    renderer: u32,
    version: i64,
    fingerprint: u64,
    text: Arc<str>,
}

/// One cache of strings derived from message sources, keyed by message id and a
/// variant (excerpt length).
struct Cache(LazyLock<Mutex<HashMap<(i64, usize), Entry>>>);

impl Cache {
    const fn new() -> Cache {
        Cache(LazyLock::new(|| Mutex::new(HashMap::new())))
    }

    fn get_or(&self, key: (i64, usize), version: i64, fingerprint: u64, make: impl FnOnce() -> String) -> Arc<str> {
        if let Some(entry) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if entry.renderer == RENDERER_VERSION && entry.version == version && entry.fingerprint == fingerprint {
                return entry.text.clone();
            }
        }
        // Rendered outside the lock: two requests may both render a new message once.
        let text: Arc<str> = make().into();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            // Simple and bounded; the next pages re-render what they need.
            map.clear();
        }
        map.insert(key, Entry { renderer: RENDERER_VERSION, version, fingerprint, text: text.clone() });
        text
    }
}

static BODIES: Cache = Cache::new();
static EXCERPTS: Cache = Cache::new();

fn fingerprint(source: &str, extra: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    extra.hash(&mut hasher);
    hasher.finish()
}

/// The sanitized HTML of message `id` at edit `version` (its edit time, else creation
/// time). `mentioned` are the usernames stored as mentioned by it: the same set the
/// writer found, so `@name` renders as a mention exactly when it did at write time.
pub fn body_html(id: i64, version: i64, source: &str, mentioned: &[&str]) -> Arc<str> {
    BODIES.get_or((id, 0), version, fingerprint(source, mentioned), || {
        markdown::render(source, &|name| mentioned.contains(&name)).html
    })
}

/// Plain text of message `id` cut to about `max_chars` (sidebar previews, reply quotes).
pub fn excerpt(id: i64, source: &str, max_chars: usize) -> Arc<str> {
    EXCERPTS.get_or((id, max_chars), 0, fingerprint(source, &[]), || markdown::excerpt(source, max_chars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_source_or_version_is_rendered_again() {
        let first = body_html(-1, 1, "**one**", &[]);
        assert_eq!(&*first, "<p><strong>one</strong></p>");
        assert_eq!(&*body_html(-1, 1, "**two**", &[]), "<p><strong>two</strong></p>");
        assert_eq!(&*body_html(-1, 2, "*two*", &[]), "<p><em>two</em></p>");
    }

    #[test]
    fn mentions_follow_the_stored_set() {
        assert!(!body_html(-2, 1, "hi @alice", &[]).contains("mention"));
        assert!(body_html(-2, 1, "hi @alice", &["alice"]).contains("class=\"mention\""));
    }
}
