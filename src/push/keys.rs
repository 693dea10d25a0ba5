//! A subscription's keys as the browser gives them (`PushSubscription.toJSON().keys`):
//! `p256dh`, the browser's P-256 public key, and `auth`, a 16-byte secret, both
//! base64url. Checked when stored, so a bad one is refused with a message, not found
//! out at send time.

use base64ct::{Base64UrlUnpadded, Encoding};
use web_push_native::{Auth, p256};

/// The public key and auth secret, or why they cannot be used.
pub fn parse(p256dh: &str, auth: &str) -> Result<(p256::PublicKey, Auth), String> {
    // Browsers send unpadded base64url; some libraries pad it.
    let point = Base64UrlUnpadded::decode_vec(p256dh.trim_end_matches('=')).map_err(|_| "The p256dh key is not base64url.".to_string())?;
    let public = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| "The p256dh key is not a P-256 public key.".to_string())?;
    let secret = Base64UrlUnpadded::decode_vec(auth.trim_end_matches('=')).map_err(|_| "The auth secret is not base64url.".to_string())?;
    if secret.len() != 16 {
        return Err("The auth secret must be 16 bytes.".into());
    }
    Ok((public, Auth::clone_from_slice(&secret)))
}
