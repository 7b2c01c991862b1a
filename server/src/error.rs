//! The one error type of the HTTP API: each variant maps to a status and a JSON body
//! (`{"error": "..."}`); busy and rate answers carry `Retry-After`; internals are never leaked.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Errors answered to HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No model of that name is hosted.
    #[error("unknown model '{0}'")]
    UnknownModel(String),
    /// The server runs as many sessions as it allows.
    #[error("server busy: too many sessions at once; try again shortly")]
    TooManySessions,
    /// The model's sessions need more memory than this server admits per session or in all.
    #[error("model '{model}' needs {need_mb} MB per session, this server allows {limit_mb} MB")]
    SessionTooLarge {
        /// Model name.
        model: String,
        /// Its per-session estimate (with the transport's buffers).
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
    /// This client address already holds as many sessions as it may.
    #[error("this address already runs {max} sessions; finish one first")]
    AddressBusy {
        /// The per-address cap.
        max: usize,
    },
    /// Plaintext classification is switched off (the default).
    #[error("plaintext classification is disabled on this server")]
    PlainDisabled,
    /// A WebSocket from a page of another origin.
    #[error("origin not allowed")]
    OriginRefused,
    /// The server is shutting down.
    #[error("server shutting down; try another replica")]
    Draining,
    /// The request body is larger than this endpoint accepts.
    #[error("request body too large: at most {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request itself is wrong (bad image, bad parameters).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Something failed on our side; details are in the server log only.
    #[error("internal error")]
    Internal,
}

impl AppError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::UnknownModel(_) | AppError::PlainDisabled => StatusCode::NOT_FOUND,
            AppError::TooManySessions | AppError::MemoryBusy | AppError::Draining => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::SessionTooLarge { .. } => StatusCode::INSUFFICIENT_STORAGE,
            AppError::RateLimited | AppError::AddressBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::OriginRefused => StatusCode::FORBIDDEN,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short label for metrics (`refused{reason="..."}`).
    pub fn reason(&self) -> &'static str {
        match self {
            AppError::UnknownModel(_) => "unknown_model",
            AppError::TooManySessions => "sessions_busy",
            AppError::SessionTooLarge { .. } => "never_fits",
            AppError::MemoryBusy => "memory_busy",
            AppError::RateLimited => "rate",
            AppError::AddressBusy { .. } => "address_busy",
            AppError::PlainDisabled => "plain_disabled",
            AppError::OriginRefused => "origin",
            AppError::Draining => "draining",
            AppError::PayloadTooLarge { .. } => "too_large",
            AppError::BadRequest(_) => "bad_request",
            AppError::Internal => "internal",
        }
    }
}

/// Seconds put in `Retry-After` (set once at start-up from the configuration).
pub(crate) static RETRY_AFTER_SECS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(5);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        let retry = match self {
            AppError::TooManySessions
            | AppError::MemoryBusy
            | AppError::Draining
            | AppError::AddressBusy { .. } => {
                Some(RETRY_AFTER_SECS.load(std::sync::atomic::Ordering::Relaxed))
            }
            AppError::RateLimited => Some(60),
            _ => None,
        };
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
