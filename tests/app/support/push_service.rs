//! A push service on loopback, for the Web Push tests: it plays the browser vendor's
//! server and the browser at once. It has its own P-256 key pair and 16-byte auth
//! secret (what a browser puts in its PushSubscription), records every request Reale
//! sends, answers with a status the test chooses, and decrypts the aes128gcm body
//! itself (RFC 8291 key derivation, RFC 8188 record) with p256, hkdf and aes-gcm, not
//! with the library Reale encrypts with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{Aes128Gcm, Nonce};
use base64ct::{Base64UrlUnpadded, Encoding};
use hkdf::Hkdf;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use p256::ecdsa::signature::Verifier;
use sha2::Sha256;
use tokio::sync::{Mutex, mpsc};

/// One request as the push service received it.
#[derive(Debug)]
pub struct Received {
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

pub struct PushService {
    pub addr: SocketAddr,
    secret: p256::SecretKey,
    auth: [u8; 16],
    status: Arc<AtomicU16>,
    received: Mutex<mpsc::UnboundedReceiver<Received>>,
}

/// A decrypted push and the request around it.
#[derive(Debug)]
pub struct Push {
    pub path: String,
    pub title: String,
    pub body: String,
    pub url: String,
    pub authorization: String,
}

impl PushService {
    pub async fn start() -> PushService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the push service");
        let addr = listener.local_addr().expect("address");
        let (sink, received) = mpsc::unbounded_channel();
        let status = Arc::new(AtomicU16::new(201));
        let answer = status.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (sink, answer) = (sink.clone(), answer.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (sink, answer) = (sink.clone(), answer.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let _ = sink.send(Received { path: parts.uri.path().to_string(), headers: parts.headers, body });
                            let status = hyper::StatusCode::from_u16(answer.load(Ordering::SeqCst)).expect("status");
                            Ok::<_, Infallible>(hyper::Response::builder().status(status).body(Full::new(Bytes::new())).expect("response"))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await;
                });
            }
        });
        let mut auth = [0u8; 16];
        rand::fill(&mut auth);
        PushService { addr, secret: p256::SecretKey::random(&mut OsRng), auth, status, received: Mutex::new(received) }
    }

    /// From now on, answer every push with `status` (e.g. 410 Gone).
    pub fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `PushSubscription.toJSON()` for an endpoint at `path`.
    pub fn subscription_json(&self, path: &str) -> String {
        let p256dh = Base64UrlUnpadded::encode_string(&self.public_key());
        let auth = Base64UrlUnpadded::encode_string(&self.auth);
        serde_json::json!({ "endpoint": self.endpoint(path), "expirationTime": null, "keys": { "p256dh": p256dh, "auth": auth } }).to_string()
    }

    fn public_key(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        self.secret.public_key().to_encoded_point(false).as_bytes().to_vec()
    }

    /// The next request, if one comes within `wait`.
    pub async fn next_request(&self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.received.lock().await.recv()).await.ok().flatten()
    }

    /// The next push, decrypted; panics when none comes within `wait`.
    pub async fn expect_push(&self, wait: Duration) -> Push {
        let request = self.next_request(wait).await.unwrap_or_else(|| panic!("no push within {wait:?}"));
        assert_eq!(request.headers.get("content-encoding").and_then(|v| v.to_str().ok()), Some("aes128gcm"));
        assert!(request.headers.get("ttl").is_some(), "a push carries a TTL");
        let plain = self.decrypt(&request.body);
        let json: serde_json::Value = serde_json::from_slice(&plain).expect("the payload is JSON");
        let text = |key: &str| json[key].as_str().unwrap_or_else(|| panic!("payload has {key}: {json}")).to_string();
        let authorization = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Push { path: request.path, title: text("title"), body: text("body"), url: text("url"), authorization }
    }

    /// RFC 8291 §3.4 key derivation, then the single RFC 8188 record.
    fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        assert!(body.len() > 86, "an aes128gcm body has a header");
        let salt = &body[..16];
        let key_id_len = body[20] as usize;
        assert_eq!(key_id_len, 65, "the key id is the sender's uncompressed P-256 point");
        let sender_public = &body[21..21 + key_id_len];
        let ciphertext = &body[21 + key_id_len..];
        let sender = p256::PublicKey::from_sec1_bytes(sender_public).expect("a P-256 point");
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let mut key_info = b"WebPush: info\0".to_vec();
        key_info.extend_from_slice(&self.public_key());
        key_info.extend_from_slice(sender_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes()).expand(&key_info, &mut ikm).expect("hkdf");
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).expect("hkdf");
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce).expect("hkdf");
        let cipher = Aes128Gcm::new_from_slice(&cek).expect("key");
        let mut record = cipher.decrypt(Nonce::from_slice(&nonce), ciphertext).expect("the push decrypts");
        // The last record ends with the delimiter 2, then zero padding.
        while record.last() == Some(&0) {
            record.pop();
        }
        assert_eq!(record.pop(), Some(2), "last-record delimiter");
        record
    }
}

/// Checks `Authorization: vapid t=JWT, k=KEY` (RFC 8292): k is the key the page
/// serves, the JWT's ES256 signature verifies with it, its audience is `audience`,
/// and it has not expired.
pub fn assert_vapid(authorization: &str, served_key: &str, audience: &str) {
    let rest = authorization.strip_prefix("vapid ").unwrap_or_else(|| panic!("a vapid header: {authorization}"));
    let mut token = "";
    let mut key = "";
    for part in rest.split(',').map(str::trim) {
        if let Some(t) = part.strip_prefix("t=") {
            token = t;
        } else if let Some(k) = part.strip_prefix("k=") {
            key = k;
        }
    }
    assert_eq!(key, served_key, "k= is the public key the page serves");
    let (signed, signature) = token.rsplit_once('.').expect("a JWT");
    let claims = signed.split_once('.').expect("header.claims").1;
    let public = Base64UrlUnpadded::decode_vec(served_key).expect("base64url key");
    let verifier = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).expect("a P-256 key");
    let signature = p256::ecdsa::Signature::from_slice(&Base64UrlUnpadded::decode_vec(signature).expect("base64url")).expect("r||s");
    verifier.verify(signed.as_bytes(), &signature).expect("the JWT verifies with the served key");
    let claims: serde_json::Value = serde_json::from_slice(&Base64UrlUnpadded::decode_vec(claims).expect("base64url")).expect("JSON claims");
    assert_eq!(claims["aud"], audience, "aud is the push service's origin");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    assert!(claims["exp"].as_u64().is_some_and(|exp| exp > now && exp <= now + 24 * 3600), "exp within 24 h: {claims}");
    assert!(claims["sub"].as_str().is_some_and(|s| s.starts_with("mailto:") || s.starts_with("https://")), "sub: {claims}");
}
