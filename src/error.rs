//! `AppError`: every way a request can fail, mapped once to a status code and a
//! friendly message. The page or htmx fragment around it is rendered by
//! `web::shell`, which knows the request (nonce, htmx or not).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Not signed in: the shell turns this into a redirect to the login page.
    #[error("sign-in required")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the shell needs to render an error page; carried as a response extension.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub title: &'static str,
    pub message: String,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Unauthorized => StatusCode::SEE_OTHER,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The sentence a person sees for this error.
    pub fn to_message(&self) -> String {
        self.info().message
    }

    fn info(&self) -> ErrorInfo {
        let (title, message) = match self {
            AppError::NotFound => ("Not found", "There is nothing here, or you do not have access to it.".into()),
            AppError::MethodNotAllowed => ("Not allowed", "That action is not available at this address.".into()),
            AppError::Unauthorized => ("Sign in", "Please sign in to continue.".into()),
            AppError::Forbidden(why) => ("Forbidden", (*why).to_string()),
            AppError::PayloadTooLarge => ("Too large", "What you sent is larger than this server accepts.".into()),
            AppError::UnsupportedMediaType => ("Unsupported", "This form was sent in a format the server does not understand.".into()),
            AppError::Unprocessable(message) => ("Please check your input", message.clone()),
            AppError::TooManyRequests { retry_after_secs } => (
                "Slow down",
                format!("Too many attempts. Please wait {} and try again.", human_wait(*retry_after_secs)),
            ),
            AppError::Unavailable => ("Unavailable", "The service is temporarily unavailable. Please try again shortly.".into()),
            AppError::Internal(_) => ("Something went wrong", "Something went wrong on our side. Please try again.".into()),
        };
        ErrorInfo { title, message }
    }
}

fn human_wait(secs: u64) -> String {
    match secs {
        0..=1 => "a second".into(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        if matches!(self, AppError::Unauthorized) {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/login"));
            return response;
        }
        let mut response = self.status().into_response();
        if let AppError::TooManyRequests { retry_after_secs } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        response.extensions_mut().insert(self.info());
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => AppError::Unavailable,
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        AppError::Internal(format!("template: {error}"))
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(error: tower_sessions::session::Error) -> Self {
        AppError::Internal(format!("session: {error}"))
    }
}

pub type AppResult<T> = Result<T, AppError>;
