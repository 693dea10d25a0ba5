//! Reale: a self-hosted realtime messenger. `run` starts the server; `app` builds the
//! router so tests can drive it in-process.

pub mod accounts;
pub mod calls;
pub mod config;
pub mod conversations;
pub mod error;
pub mod files;
pub mod home;
pub mod notifications;
pub mod push;
pub mod realtime;
pub mod servers;
pub mod state;
pub mod store;
pub mod voice;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use config::Config;
pub use state::AppState;

use error::AppError;

/// Everything that can stop the server from starting, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Files(#[from] files::storage::StorageError),
    #[error("{0}")]
    Vapid(#[from] push::vapid::VapidError),
    #[error("cannot start the push sender: {0}")]
    Push(#[from] reqwest::Error),
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Opens the database (creating the data directory and applying migrations), the
/// session store and Redis, and returns the state the router needs.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
    let store = store::Store::connect(&config.database_url()).await?;
    store.migrate().await?;
    let redis = match &config.redis_url {
        Some(url) => Some(accounts::session::connect_redis(url).await?),
        None => None,
    };
    let sessions = accounts::session::SessionBackend::open(&store, redis.as_ref()).await?;
    let realtime = realtime::Realtime::start(&store, config.redis_url.as_deref()).await?;
    let limiter = match &redis {
        Some(pool) => {
            let namespace = realtime::bus::namespace(&store).await?;
            web::ratelimit::RateLimiter::shared(pool.clone(), format!("reale:{namespace}:limit:"))
        }
        None => web::ratelimit::RateLimiter::default(),
    };
    let devices = Arc::new(accounts::device_cache::DeviceCache::new(redis.is_none()));
    let files = files::Storage::open(&config).await?;
    let vapid = push::vapid::Vapid::load_or_create(&store, config.push_contact()).await?;
    let push = push::Pusher::start(store.clone(), vapid, config.push_allow_loopback)?;
    let voice = voice::Voice::new(&config, store.clone(), realtime.clone());
    let state = AppState::new(state::Shared {
        voice,
        files,
        push,
        devices,
        realtime,
        writer: conversations::writer::MessageWriter::spawn(store.clone()),
        store,
        config,
        limiter,
        sessions,
        redis,
    });
    files::sweep::spawn(state.clone());
    Ok(state)
}

/// The whole application as a router.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/", get(home::show))
        .merge(accounts::routes(&state))
        .merge(conversations::routes(&state))
        .merge(servers::routes(&state))
        .merge(realtime::routes::routes(&state))
        .merge(files::routes())
        .merge(notifications::routes(&state))
        .merge(push::routes(&state))
        .merge(voice::routes(&state))
        .merge(calls::routes(&state))
        .route("/healthz", get(web::ops::healthz))
        .route("/readyz", get(web::ops::readyz))
        .route("/assets/{hash}/{name}", get(web::assets::serve))
        .merge(web::pwa::routes())
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(accounts::session::layer(&state))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::csrf::guard))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(web::trace::catch_panic))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::shell::layer))
        .layer(axum::middleware::from_fn(web::trace::log))
        .with_state(state)
}

/// How long a stopping server waits for requests in flight.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, finishing requests in flight.
///
/// HTTP/1.1 through hyper's own connection builder rather than `axum::serve` (hyper-util's
/// auto builder, which also sniffs for HTTP/2): every open event stream is a connection,
/// and this one holds about 8 KB less per connection (design notes §9). Browsers never
/// speak cleartext HTTP/2, so nothing is lost. Each request carries `ConnectInfo`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::ServiceExt;
    let app = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = app.clone().map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            request
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), hyper_util::service::TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    // In-flight requests finish (for a while); idle keep-alive connections close.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {} s; stopping anyway", SHUTDOWN_GRACE.as_secs());
    }
    Ok(())
}

/// Starts Reale as configured and runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), StartError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "reale=info,warn".into()),
        )
        .init();
    tune_process();
    let addr = config.addr;
    let state = build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| StartError::Listen(addr, e))?;
    let local = listener.local_addr().map_err(|e| StartError::Listen(addr, e))?;
    println!("Reale listening on http://{local} ({} database)", state.store.backend_name());
    let realtime = state.realtime.clone();
    let shutdown = async move {
        shutdown_signal().await;
        realtime.hub.close_all();
    };
    serve(listener, state, shutdown).await.map_err(StartError::Serve)
}

/// Process settings a long-running server wants.
fn tune_process() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt and get/setrlimit are called before any other thread allocates
    // or opens files, with valid arguments; failures leave the defaults in place.
    unsafe {
        // glibc raises its mmap threshold after freeing a large block, so the 19 MiB
        // argon2 buffers then come from the heap and stay: 300 registrations left 1.6 GB
        // of RSS. A fixed threshold returns them to the system (27 MB after the same).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        // Every live stream is a socket: take all the file descriptors we may.
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
