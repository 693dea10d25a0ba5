//! TURN: the ICE servers a browser is given, with credentials that expire, derived from
//! the secret shared with the TURN server (the "TURN REST API" scheme coturn implements
//! as `use-auth-secret`): username `<expiry>:<user id>`, password
//! base64(HMAC-SHA1(secret, username)). The TURN server checks them without asking us.

use base64ct::{Base64, Encoding};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// How long a page's credentials stay good: a voice page left open all day still joins.
pub const VALID_FOR_SECS: i64 = 24 * 3600;

#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    secret: String,
}

/// One entry of `RTCPeerConnection`'s `iceServers`.
#[derive(Serialize, Debug)]
pub struct IceServer<'a> {
    urls: &'a [String],
    username: String,
    credential: String,
}

impl Turn {
    /// None without TURN servers configured.
    pub fn from_config(urls: &[String], secret: Option<&str>) -> Option<Turn> {
        let secret = secret?;
        (!urls.is_empty()).then(|| Turn { urls: urls.to_vec(), secret: secret.to_string() })
    }

    pub fn ice_server(&self, user_id: i64, now_secs: i64) -> IceServer<'_> {
        let username = format!("{}:{user_id}", now_secs + VALID_FOR_SECS);
        let mut mac = Hmac::<Sha1>::new_from_slice(self.secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(username.as_bytes());
        let credential = Base64::encode_string(&mac.finalize().into_bytes());
        IceServer { urls: &self.urls, username, credential }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_the_turn_rest_api_scheme() {
        let turn = Turn::from_config(&["turn:127.0.0.1:3478".into()], Some("north")).expect("configured");
        let server = turn.ice_server(42, 1_000_000);
        assert_eq!(server.username, format!("{}:42", 1_000_000 + VALID_FOR_SECS));
        // `echo -n "1086400:42" | openssl dgst -sha1 -hmac north -binary | base64`
        assert_eq!(server.credential, "AkbgkE2TzHiN4IQLTtS58FxiMT8=");
        assert!(Turn::from_config(&[], Some("north")).is_none());
    }
}
