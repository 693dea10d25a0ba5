//! Operational endpoints: `/healthz` (the process answers) and `/readyz` (its
//! database, and Redis when configured, answer too).

use std::time::Duration;

use axum::extract::State;
use axum::Extension;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::web::shell;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.is_ready().await;
    let redis = match &state.redis {
        None => None,
        Some(pool) => {
            let ping = fred::interfaces::ClientLike::ping::<String>(pool, None);
            Some(matches!(tokio::time::timeout(Duration::from_secs(2), ping).await, Ok(Ok(_))))
        }
    };
    let ready = database && redis.unwrap_or(true);
    let mut body = format!("database: {}\n", if database { "ok" } else { "unavailable" });
    if let Some(redis) = redis {
        body.push_str(&format!("redis: {}\n", if redis { "ok" } else { "unavailable" }));
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Extension(shell::Verbatim), body)
}
