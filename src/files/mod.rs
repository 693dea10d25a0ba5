//! Files attached to messages: where their bytes live (`storage`: a local directory or
//! S3), receiving them with a message (`upload`, `picture`), serving them to whoever
//! may see the conversation (`serve`), and removing them with their message (`sweep`).

pub mod model;
pub mod picture;
pub mod serve;
pub mod storage;
pub mod store;
pub mod sweep;
pub mod upload;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub use storage::Storage;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/c/{id}/files/{attachment}", get(serve::file))
        .route("/c/{id}/files/{attachment}/thumb", get(serve::thumbnail))
}
