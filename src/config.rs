//! Command-line flags and `REALE_*` environment variables: everything an operator can set.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Reale: a self-hosted realtime messenger in one binary.
///
/// With no options it serves on http://127.0.0.1:8080 and keeps everything in an
/// SQLite database under ./data. Point DATABASE_URL at PostgreSQL and set REDIS_URL
/// to run several instances behind a load balancer.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "reale", version, about, long_about)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "REALE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Directory for the SQLite database and uploaded files; created if missing.
    #[arg(long, env = "REALE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database to use: `sqlite://PATH` or `postgres://USER@HOST/DB`.
    /// Default: the SQLite file `reale.db` inside the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis to use for sessions (and, later, cross-instance fan-out and presence),
    /// e.g. `redis://127.0.0.1:6379`. Without it sessions live in the database.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// The origin users type into their browser, e.g. `https://chat.example.org`.
    /// An https origin turns on Secure `__Host-` cookies and HSTS. Cross-site form
    /// posts are checked against it. Default: http://ADDR.
    #[arg(long, env = "REALE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Take the client address from the last `X-Forwarded-For` hop (only behind a
    /// reverse proxy you control; used for rate limits and the sessions list).
    #[arg(long, env = "REALE_TRUST_PROXY", default_value_t = false)]
    pub trust_proxy: bool,

    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "REALE_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Login attempts allowed per account and client address in 15 minutes.
    #[arg(long, env = "REALE_LOGIN_LIMIT", default_value_t = 10)]
    pub login_limit: u32,

    /// Login attempts allowed per client address (any account) in 15 minutes.
    #[arg(long, env = "REALE_LOGIN_IP_LIMIT", default_value_t = 100)]
    pub login_ip_limit: u32,

    /// Messages one user may send in 10 seconds (beyond that: "slow down", draft kept).
    #[arg(long, env = "REALE_SEND_LIMIT", default_value_t = 30)]
    pub send_limit: u32,

    /// Registrations allowed per client address in an hour.
    #[arg(long, env = "REALE_REGISTER_LIMIT", default_value_t = 20)]
    pub register_limit: u32,

    /// Other writes one user may make in 10 seconds: edits, deletions, reactions,
    /// pins, read marks, renames, roles, removals, leaving, settings and sessions.
    #[arg(long, env = "REALE_WRITE_LIMIT", default_value_t = 60)]
    pub write_limit: u32,

    /// Groups created, direct messages opened and members added per user per minute.
    #[arg(long, env = "REALE_CREATE_LIMIT", default_value_t = 30)]
    pub create_limit: u32,

    /// Searches and people lookups one user may make in 10 seconds.
    #[arg(long, env = "REALE_SEARCH_LIMIT", default_value_t = 30)]
    pub search_limit: u32,

    /// Live-update streams (open tabs) one user may hold at once on an instance.
    #[arg(long, env = "REALE_STREAM_LIMIT", default_value_t = 20)]
    pub stream_limit: u32,

    /// Largest attached file (not an image), in bytes; larger ones get 413.
    #[arg(long, env = "REALE_MAX_FILE_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_file_bytes: u64,

    /// Largest attached image (JPEG, PNG, WebP, GIF), in bytes: images are decoded in memory.
    #[arg(long, env = "REALE_MAX_IMAGE_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_image_bytes: u64,

    /// Largest message with attachments (all files and the text together), in bytes.
    /// A larger `Content-Length` is refused with 413 before the body is read.
    #[arg(long, env = "REALE_MAX_UPLOAD_BYTES", default_value_t = 200 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Keep files in this S3 bucket instead of DATA_DIR/files; created at start when
    /// missing (if the credentials allow it).
    #[arg(long, env = "REALE_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3-compatible endpoint, e.g. `http://127.0.0.1:8333` (default: AWS for the region).
    #[arg(long, env = "REALE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region.
    #[arg(long, env = "REALE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// S3 access key id.
    #[arg(long, env = "REALE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key.
    #[arg(long, env = "REALE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Also accept Web Push endpoints at `http://127.0.0.1:PORT/…` (for tests and
    /// benchmarks only: every other endpoint must be `https://` on a public address).
    #[arg(long, env = "REALE_PUSH_ALLOW_LOOPBACK", default_value_t = false)]
    pub push_allow_loopback: bool,

    /// Who push services may contact about this server's pushes (VAPID `sub`), e.g.
    /// `mailto:admin@example.org`. Default: the public URL when it is https.
    #[arg(long, env = "REALE_PUSH_CONTACT")]
    pub push_contact: Option<String>,
    /// The one UDP port all voice and video media goes through (0: any free port).
    /// Opened when the first person joins a voice channel.
    #[arg(long, env = "REALE_RTC_PORT", default_value_t = 8443)]
    pub rtc_port: u16,

    /// Addresses announced to browsers for media, comma-separated (default: 127.0.0.1
    /// and this host's IPv4 addresses). Behind NAT, give the public address.
    #[arg(long, env = "REALE_RTC_PUBLIC_IP", value_delimiter = ',')]
    pub rtc_public_ip: Vec<std::net::IpAddr>,

    /// TURN servers for browsers that cannot reach the media port directly (UDP
    /// blocked, strict NAT), comma-separated, e.g.
    /// `turn:turn.example.org:3478,turns:turn.example.org:443?transport=tcp`.
    /// Needs `--turn-secret`.
    #[arg(long, env = "REALE_TURN_URL", value_delimiter = ',', requires = "turn_secret")]
    pub turn_url: Vec<String>,

    /// The TURN server's shared secret (coturn: `use-auth-secret` and
    /// `static-auth-secret`): each person gets credentials from it that expire.
    #[arg(long, env = "REALE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// How long a call in a DM or group rings for those who have not answered, in
    /// seconds. A DM call nobody answered by then ends as missed.
    #[arg(long, env = "REALE_CALL_RING_SECONDS", default_value_t = 45, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub call_ring_seconds: u64,
}

impl Config {
    /// `--call-ring-seconds` in milliseconds.
    pub fn call_ring_ms(&self) -> i64 {
        self.call_ring_seconds as i64 * 1000
    }

    pub fn public_origin(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn is_https(&self) -> bool {
        self.public_origin().starts_with("https://")
    }

    /// The VAPID subject: a mailto: or https: URL push services can reach us at.
    pub fn push_contact(&self) -> String {
        match &self.push_contact {
            Some(contact) => contact.clone(),
            None if self.is_https() => self.public_origin(),
            None => "mailto:postmaster@localhost".into(),
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("reale.db").display()),
        }
    }
}
