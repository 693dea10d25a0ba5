//! Who each signed-in device belongs to, remembered for a moment so a request does not
//! read `devices` + `users` every time (one of the ~ten statements of a page).
//!
//! Only a single instance caches: every way a device is signed out on this instance
//! (log out, revoke, revoke others, password change) calls `forget` before it answers,
//! so the next request of that device is refused at once. With `REDIS_URL` (several
//! instances) a device may be signed out elsewhere, so nothing is cached there and the
//! database decides on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::CurrentUser;

/// How long an entry is trusted; bounds what a change made outside the routes above
/// (an operator editing the database) takes to show.
const FRESH_FOR: Duration = Duration::from_secs(10);
/// Entries kept before the cache starts over.
const CAPACITY: usize = 100_000;

struct Entry {
    user: CurrentUser,
    last_active: i64,
    at: Instant,
}

pub struct DeviceCache {
    enabled: bool,
    entries: Mutex<HashMap<i64, Entry>>,
}

impl DeviceCache {
    /// `enabled` is false when other instances may sign devices out.
    pub fn new(enabled: bool) -> DeviceCache {
        DeviceCache { enabled, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The device's user and when it was last marked active, if known and fresh.
    pub fn get(&self, device_id: i64) -> Option<(CurrentUser, i64)> {
        if !self.enabled {
            return None;
        }
        let entries = self.entries();
        let entry = entries.get(&device_id).filter(|e| e.at.elapsed() < FRESH_FOR)?;
        Some((entry.user.clone(), entry.last_active))
    }

    pub fn put(&self, device_id: i64, user: &CurrentUser, last_active: i64) {
        if !self.enabled {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(device_id, Entry { user: user.clone(), last_active, at: Instant::now() });
    }

    /// Devices just signed out: their next request reads the database (and is refused).
    pub fn forget(&self, device_ids: &[i64]) {
        let mut entries = self.entries();
        for id in device_ids {
            entries.remove(id);
        }
    }

    /// A user changed what their pages depend on (their time zone): every device of
    /// theirs reads it afresh at its next request.
    pub fn forget_user(&self, user_id: i64) {
        self.entries().retain(|_, entry| entry.user.id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> CurrentUser {
        CurrentUser { id: 1, username: "alice".into(), display_name: String::new(), is_admin: false, device_id: 7, zone: Default::default(), zone_chosen: false }
    }

    #[test]
    fn forgotten_devices_and_disabled_caches_answer_nothing() {
        let cache = DeviceCache::new(true);
        cache.put(7, &alice(), 5);
        assert_eq!(cache.get(7).map(|(u, at)| (u.username, at)), Some(("alice".into(), 5)));
        cache.forget(&[7]);
        assert!(cache.get(7).is_none());
        let off = DeviceCache::new(false);
        off.put(7, &alice(), 5);
        assert!(off.get(7).is_none());
    }
}
