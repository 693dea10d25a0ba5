//! Each request's log line and its span, and a handler's panic turned into the error
//! page. Both wrap the handler's future only, never the response body: tower-http's
//! `TraceLayer` and `CatchPanicLayer` each box the body again, and the first reads the
//! clock twice per chunk, which every frame of every live stream paid (the clock alone
//! was 3 % of the CPU of a big fan-out).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::error::AppError;

/// Logs method, path (never the query: it may hold search terms), status and time to
/// the response's head, inside a `request` span that the handler's own logs carry.
pub async fn log(request: Request, next: Next) -> Response {
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let _entered = span.enter();
    tracing::info!(status = response.status().as_u16(), latency_us = started.elapsed().as_micros() as u64, "finished processing request");
    response
}

/// A panic in a handler becomes a 500 page like any other internal error, instead of
/// a dropped connection.
pub async fn catch_panic(request: Request, next: Next) -> Response {
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => AppError::Internal("panic in handler".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        let app = Router::new()
            .route("/boom", get(boom))
            .layer(axum::middleware::from_fn(super::catch_panic));
        let response = app.oneshot(Request::get("/boom").body(Body::empty()).expect("request")).await.expect("a response");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
