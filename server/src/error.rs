//! The one error type of the HTTP API: each variant maps to a status and a JSON body; internals are
//! never leaked.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Errors answered to HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No model of that name is hosted.
    #[error("unknown model '{0}'")]
    UnknownModel(String),
    /// The server runs as many sessions as it allows.
    #[error("too many sessions at once; try again shortly")]
    TooManySessions,
    /// The model's sessions need more memory than this server admits per session.
    #[error("model '{model}' needs {need_mb} MB per session, this server allows {limit_mb} MB")]
    SessionTooLarge {
        /// Model name.
        model: String,
        /// Its per-session estimate.
        need_mb: u64,
        /// The configured limit.
        limit_mb: u64,
    },
    /// The running sessions hold the whole memory budget.
    #[error("server busy: its session memory budget is in use; try again shortly")]
    MemoryBusy,
    /// This client started too many sessions recently.
    #[error("rate limit: too many sessions from this address; try again in a minute")]
    RateLimited,
    /// The request itself is wrong (bad image, bad parameters).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Something failed on our side; details are in the server log only.
    #[error("internal error")]
    Internal,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self {
            AppError::UnknownModel(_) => StatusCode::NOT_FOUND,
            AppError::TooManySessions | AppError::MemoryBusy => StatusCode::SERVICE_UNAVAILABLE,
            AppError::SessionTooLarge { .. } => StatusCode::INSUFFICIENT_STORAGE,
            AppError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
