//! The server's VAPID identity (RFC 8292): one P-256 key pair made at first start and
//! kept in the database, so every instance signs with the same key and subscriptions
//! made through one instance are served by all. The public half goes to the page as
//! the `applicationServerKey` a browser subscribes with.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use web_push_native::jwt_simple::algorithms::{ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::jwt_simple::claims::Claims;

use crate::store::{Store, now_ms};
use crate::with_db;

/// How long a signed token is valid (RFC 8292 allows at most 24 h); one is reused for
/// an audience for `REUSE_FOR`, well inside that, so a burst of pushes signs once.
const VALID_FOR: Duration = Duration::from_secs(12 * 3600);
const REUSE_FOR: Duration = Duration::from_secs(3600);

pub struct Vapid {
    key: ES256KeyPair,
    /// The uncompressed public point, base64url: `applicationServerKey` and the `k=` part.
    public_key: String,
    contact: String,
    /// Audience (push service origin) → (Authorization header, signed at).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    #[error("cannot read the VAPID key from the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the stored VAPID key is not a P-256 private key")]
    BadKey,
}

impl Vapid {
    /// The stored key pair, or a new one stored now. Two instances starting together
    /// both insert; the first row wins and both read it back.
    pub async fn load_or_create(store: &Store, contact: String) -> Result<Vapid, VapidError> {
        let fresh = ES256KeyPair::generate();
        let private = Base64UrlUnpadded::encode_string(&fresh.to_bytes());
        let public = public_of(&fresh);
        let insert = "INSERT INTO vapid_keys (id, private_key, public_key, created_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING";
        with_db!(store, pool => sqlx::query(insert).bind(&private).bind(&public).bind(now_ms()).execute(pool).await.map(|_| ()))?;
        let select = "SELECT private_key FROM vapid_keys WHERE id = 1";
        let stored: String = with_db!(store, pool => sqlx::query_scalar(select).fetch_one(pool).await)?;
        let bytes = Base64UrlUnpadded::decode_vec(&stored).map_err(|_| VapidError::BadKey)?;
        let key = ES256KeyPair::from_bytes(&bytes).map_err(|_| VapidError::BadKey)?;
        Ok(Vapid { public_key: public_of(&key), key, contact, tokens: Mutex::new(HashMap::new()) })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// `Authorization: vapid t=JWT, k=KEY` for a push service at `audience` (the
    /// endpoint's origin, port included when it is not the default one: web-push-native's
    /// own header leaves the port out, which a service on another port would refuse).
    pub fn authorization(&self, audience: &str) -> Result<String, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((header, signed)) = tokens.get(audience)
            && signed.elapsed() < REUSE_FOR
        {
            return Ok(header.clone());
        }
        let claims = Claims::create(VALID_FOR.into()).with_audience(audience).with_subject(&self.contact);
        let token = self.key.sign(claims).map_err(|e| e.to_string())?;
        let header = format!("vapid t={token}, k={}", self.public_key);
        if tokens.len() > 1_000 {
            tokens.clear();
        }
        tokens.insert(audience.to_string(), (header.clone(), Instant::now()));
        Ok(header)
    }
}

fn public_of(key: &ES256KeyPair) -> String {
    Base64UrlUnpadded::encode_string(&key.public_key().public_key().to_bytes_uncompressed())
}
