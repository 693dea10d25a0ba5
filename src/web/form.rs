//! `Form<T>`: axum's form extractor with its rejections mapped to friendly errors
//! (413 for oversize bodies, 415 for other encodings, 422 for unreadable forms).
//!
//! Form structs give every field `#[serde(default)]`, so a missing field arrives
//! empty and the handler can answer with a message beside the field and the rest of
//! the input kept.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::error::AppError;

pub struct Form<T>(pub T);

impl<T, S> FromRequest<S> for Form<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType,
                _ => AppError::Unprocessable("This form could not be read. Please go back and try again.".into()),
            }),
        }
    }
}
