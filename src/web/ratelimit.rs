//! Fixed-window attempt counters for login and registration, kept in memory per instance.
//!
//! Keys are chosen by the caller (per address, per account *and* address) so an
//! attacker hammering one account from one address is stopped without locking the
//! real owner out from theirs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    count: u32,
    period: Duration,
}

impl Window {
    fn retry_after(&self, now: Instant) -> u64 {
        (self.started + self.period).saturating_duration_since(now).as_secs().max(1)
    }
}

impl RateLimiter {
    /// Counts one attempt under `key`; `Err(seconds)` once more than `limit` fall in `period`.
    pub fn hit(&self, key: &str, limit: u32, period: Duration) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("rate limiter lock is never poisoned by a panic inside");
        if windows.len() > 100_000 {
            windows.retain(|_, w| now.duration_since(w.started) < w.period);
        }
        let window = windows.entry(key.to_string()).or_insert(Window { started: now, count: 0, period });
        if now.duration_since(window.started) >= window.period {
            *window = Window { started: now, count: 0, period };
        }
        window.count += 1;
        if window.count > limit { Err(window.retry_after(now)) } else { Ok(()) }
    }

    /// Like `hit` but without counting: is `key` already over `limit`?
    pub fn check(&self, key: &str, limit: u32) -> Result<(), u64> {
        let now = Instant::now();
        let windows = self.windows.lock().expect("rate limiter lock is never poisoned by a panic inside");
        match windows.get(key) {
            Some(w) if now.duration_since(w.started) < w.period && w.count >= limit => Err(w.retry_after(now)),
            _ => Ok(()),
        }
    }

    pub fn clear(&self, key: &str) {
        self.windows.lock().expect("rate limiter lock is never poisoned by a panic inside").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_then_clears() {
        let limiter = RateLimiter::default();
        let minute = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.hit("k", 3, minute).is_ok());
        }
        assert!(limiter.check("k", 3).is_err());
        assert!(limiter.hit("k", 3, minute).is_err());
        assert!(limiter.check("other", 3).is_ok());
        limiter.clear("k");
        assert!(limiter.hit("k", 3, minute).is_ok());
    }
}
