//! Rate limits: a keyed GCRA (generic cell rate algorithm), in memory on one instance
//! or in Redis when `REDIS_URL` is set, so N instances enforce one limit, not N.
//!
//! A `Rule` of `limit` per `period` lets `limit` requests through at once and then
//! one every `period / limit`: no fixed-window edge where twice the limit passes.
//! Each key stores one number, its "theoretical arrival time" (TAT); the same
//! arithmetic runs here and in the Lua script, so both stores behave alike.
//!
//! Keys are chosen by the caller (per address, per account *and* address, per user
//! and route class) so an attacker hammering one account from one address is stopped
//! without locking the real owner out from theirs.
//!
//! If Redis errors or is slow, the local limiter answers (a limit per instance is
//! better than a 500), and Redis is left alone for a few seconds before it is tried
//! again, so an outage costs one short wait, not one per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::{CustomCommand, Value};

/// How long a request waits for Redis before the local limiter decides.
const REDIS_WAIT: Duration = Duration::from_millis(300);
/// After a Redis failure, how long the local limiter answers alone.
const REDIS_BACKOFF: Duration = Duration::from_secs(5);

/// `limit` requests per `period`, with bursts of up to `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub limit: u32,
    pub period: Duration,
}

impl Rule {
    pub fn new(limit: u32, period: Duration) -> Rule {
        Rule { limit, period }
    }

    /// Microseconds between requests at the sustained rate (0: unlimited).
    fn interval_us(&self) -> u64 {
        if self.limit == 0 {
            return 0;
        }
        (self.period.as_micros() / u128::from(self.limit)) as u64
    }

    fn period_us(&self) -> u64 {
        self.period.as_micros() as u64
    }
}

/// One GCRA step: the key's new TAT if the request may pass, or how many
/// microseconds until it could.
fn gcra(tat: Option<u64>, now: u64, rule: Rule) -> Result<u64, u64> {
    let new_tat = tat.unwrap_or(now).max(now) + rule.interval_us();
    let ahead = new_tat - now;
    if ahead > rule.period_us() { Err(ahead - rule.period_us()) } else { Ok(new_tat) }
}

/// Whole seconds to wait, at least one (for `Retry-After` and the message).
fn seconds(wait_us: u64) -> u64 {
    wait_us.div_ceil(1_000_000).max(1)
}

/// The limiter state of this instance.
struct Local {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
    /// Size above which finished keys are pruned (doubles with what stays).
    prune_at: AtomicU64,
}

impl Default for Local {
    fn default() -> Self {
        Local { epoch: Instant::now(), tats: Mutex::default(), prune_at: AtomicU64::new(4_096) }
    }
}

impl Local {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn step(&self, key: &str, rule: Rule, commit: bool) -> Result<(), u64> {
        let now = self.now();
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        let result = gcra(tats.get(key).copied(), now, rule);
        match result {
            Ok(new_tat) if commit => {
                tats.insert(key.to_string(), new_tat);
            }
            Ok(_) => {}
            Err(wait) => return Err(seconds(wait)),
        }
        if tats.len() as u64 > self.prune_at.load(Ordering::Relaxed) {
            // A key whose TAT has passed is as good as absent.
            tats.retain(|_, tat| *tat > now);
            self.prune_at.store((tats.len() as u64 * 2).max(4_096), Ordering::Relaxed);
        }
        Ok(())
    }

    fn clear(&self, key: &str) {
        self.tats.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// GCRA in Redis, atomic per key. Time comes from Redis so instances with skewed
/// clocks still agree. Numbers go back as `%d` strings: Lua would otherwise print
/// microsecond timestamps in 14-digit scientific notation and lose precision.
const SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > period then return ahead - period end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', math.ceil(ahead / 1000) + 1))
end
return 0
"#;

struct Shared {
    pool: Pool,
    prefix: String,
    /// Microseconds (on the local clock) until which Redis is not asked.
    resting_until: AtomicU64,
}

/// The limiter every handler reaches through `AppState`.
#[derive(Default)]
pub struct RateLimiter {
    local: Local,
    shared: Option<Shared>,
}

impl RateLimiter {
    /// Limits kept in Redis under `prefix` (the deployment's namespace), shared by
    /// every instance that uses the same Redis and database.
    pub fn shared(pool: Pool, prefix: String) -> RateLimiter {
        RateLimiter { local: Local::default(), shared: Some(Shared { pool, prefix, resting_until: AtomicU64::new(0) }) }
    }

    /// Counts one request under `key`; `Err(seconds to wait)` when over the rule.
    pub async fn hit(&self, key: &str, rule: Rule) -> Result<(), u64> {
        self.step(key, rule, true).await
    }

    /// Like `hit` without counting: would a request under `key` be refused now?
    pub async fn check(&self, key: &str, rule: Rule) -> Result<(), u64> {
        self.step(key, rule, false).await
    }

    /// Forgets `key` (e.g. a successful login clears its failed attempts).
    pub async fn clear(&self, key: &str) {
        self.local.clear(key);
        if let Some(shared) = self.usable() {
            let command = shared.pool.next().custom::<Value, _>(CustomCommand::new_static("DEL", None, false), vec![shared.key(key)]);
            if !matches!(tokio::time::timeout(REDIS_WAIT, command).await, Ok(Ok(_))) {
                self.rest(shared);
            }
        }
    }

    async fn step(&self, key: &str, rule: Rule, commit: bool) -> Result<(), u64> {
        if rule.interval_us() == 0 {
            return Ok(());
        }
        if let Some(shared) = self.usable() {
            match shared.step(key, rule, commit).await {
                Some(0) => return Ok(()),
                Some(wait) => return Err(seconds(wait)),
                None => {
                    tracing::warn!("rate limits in Redis failed; using this instance's limits for a while");
                    self.rest(shared);
                }
            }
        }
        self.local.step(key, rule, commit)
    }

    fn usable(&self) -> Option<&Shared> {
        self.shared.as_ref().filter(|s| s.resting_until.load(Ordering::Relaxed) <= self.local.now())
    }

    fn rest(&self, shared: &Shared) {
        shared.resting_until.store(self.local.now() + REDIS_BACKOFF.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Shared {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Microseconds to wait (0: allowed), or None when Redis did not answer.
    async fn step(&self, key: &str, rule: Rule, commit: bool) -> Option<u64> {
        let args: Vec<Value> = vec![
            SCRIPT.into(),
            1.into(),
            self.key(key).into(),
            (rule.interval_us() as i64).into(),
            (rule.period_us() as i64).into(),
            if commit { "1" } else { "0" }.into(),
        ];
        let command = self.pool.next().custom::<i64, _>(CustomCommand::new_static("EVAL", None, false), args);
        match tokio::time::timeout(REDIS_WAIT, command).await {
            Ok(Ok(wait)) => Some(wait.max(0) as u64),
            Ok(Err(error)) => {
                tracing::debug!(%error, "rate limit script failed");
                None
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn limits_then_clears() {
        let limiter = RateLimiter::default();
        let rule = Rule::new(3, MINUTE);
        for _ in 0..3 {
            assert!(limiter.hit("k", rule).await.is_ok());
        }
        assert!(limiter.check("k", rule).await.is_err());
        assert_eq!(limiter.hit("k", rule).await, Err(20), "one more is allowed every 20 s");
        assert!(limiter.check("other", rule).await.is_ok());
        limiter.clear("k").await;
        assert!(limiter.hit("k", rule).await.is_ok());
    }

    #[test]
    fn gcra_allows_a_burst_then_the_steady_rate() {
        let rule = Rule::new(2, Duration::from_secs(10));
        let first = gcra(None, 0, rule).expect("first");
        let second = gcra(Some(first), 0, rule).expect("second");
        assert_eq!(gcra(Some(second), 0, rule), Err(5_000_000));
        // Five seconds later one request's worth has drained.
        assert!(gcra(Some(second), 5_000_000, rule).is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_local_limits() {
        // Port 1 refuses connections; the pool is built without waiting for it.
        let config = fred::prelude::Config::from_url("redis://127.0.0.1:1").expect("url");
        let pool = fred::prelude::Builder::from_config(config).build_pool(1).expect("pool");
        let limiter = RateLimiter::shared(pool, "test:".into());
        let rule = Rule::new(1, MINUTE);
        assert!(limiter.hit("k", rule).await.is_ok());
        assert!(limiter.hit("k", rule).await.is_err());
    }
}
