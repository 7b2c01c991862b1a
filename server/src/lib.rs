//! The CryptoNAS server: hosts models, runs the server half of private inference over WebSocket binary
//! frames, and serves the demo page.
//!
//! `app(state)` builds the router shared by `main` and the tests. The protocol itself lives in
//! `cryptonas-protocol` (sans-IO); this crate only moves frames, enforces limits and logs.

mod error;
mod hosted;
mod limits;
mod ws;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, Path, State, WebSocketUpgrade};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use cryptonas_protocol::Session;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::AppError;
pub use hosted::{load_models, ProtocolModel};
pub use limits::{Limits, RateLimiter};
pub use ws::pump;

/// Command-line and environment configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "Serve CryptoNAS models for private inference")]
pub struct Config {
    /// Address to listen on (tests and the demo use loopback only).
    #[arg(long, env = "CRYPTONAS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Directory of models (`<name>.json` + `<name>.safetensors`).
    #[arg(long, env = "CRYPTONAS_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// Directory of the demo page.
    #[arg(long, env = "CRYPTONAS_WWW", default_value = "www")]
    pub www: PathBuf,
    /// Sessions running at once; more are refused with 503.
    #[arg(long, env = "CRYPTONAS_MAX_SESSIONS", default_value_t = 64)]
    pub max_sessions: usize,
    /// Largest protocol frame accepted from a client, in bytes.
    #[arg(long, env = "CRYPTONAS_MAX_FRAME", default_value_t = 64 << 20)]
    pub max_frame_bytes: usize,
    /// A session whose client sends nothing for this long is closed.
    #[arg(long, env = "CRYPTONAS_IDLE_TIMEOUT_SECS", default_value_t = 120)]
    pub idle_timeout_secs: u64,
    /// Sessions one client address may start per minute.
    #[arg(long, env = "CRYPTONAS_RATE_PER_MINUTE", default_value_t = 60)]
    pub sessions_per_minute: u32,
    /// Largest memory one session may need, in MiB (a model whose estimate is larger is refused).
    #[arg(long, env = "CRYPTONAS_MAX_SESSION_MEMORY_MB", default_value_t = 2048)]
    pub max_session_memory_mb: u64,
    /// Memory all sessions together may hold, in MiB (more sessions wait for 503 retries).
    #[arg(long, env = "CRYPTONAS_MEMORY_BUDGET_MB", default_value_t = 8192)]
    pub memory_budget_mb: u64,
    /// Inferences per model garbled ahead of clients (≈ 4 KB per ReLU each; 0 = garble on
    /// demand). Pooled sessions skip garbling but send 16 B per share bit of label corrections.
    #[arg(long, env = "CRYPTONAS_POOL", default_value_t = 0)]
    pub pool: usize,
}

impl Config {
    /// The limits part of the configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            max_sessions: self.max_sessions,
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            sessions_per_minute: self.sessions_per_minute,
            max_session_memory: self.max_session_memory_mb << 20,
            memory_budget: self.memory_budget_mb << 20,
        }
    }
}

/// What `GET /api/models` says about a model: public facts only.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelSummary {
    /// Name used in URLs.
    pub name: String,
    /// ReLUs one inference evaluates (the latency budget).
    pub relus: u64,
    /// Test accuracy measured at export, if known (fraction in [0, 1]).
    pub accuracy: Option<f64>,
    /// Input shape (channels, height, width).
    pub input: [usize; 3],
    /// Class names in output order.
    pub classes: Vec<String>,
    /// Free-form description (dataset, training).
    pub description: String,
}

/// The plaintext answer for the page's "reveal for comparison" box.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlainAnswer {
    /// Predicted class index.
    pub class: usize,
    /// Fixed-point logits (as f64, already divided by their scale).
    pub logits: Vec<f64>,
}

/// A model the server can run sessions for.
pub trait HostedModel: Send + Sync {
    /// Public description.
    fn summary(&self) -> ModelSummary;
    /// A fresh server session (fresh randomness, nothing shared with other sessions).
    fn new_session(&self) -> Result<Box<dyn Session>, AppError>;
    /// Upper estimate of the memory one session holds at its peak, in bytes.
    fn session_memory(&self) -> u64;
    /// Plaintext classification of an uploaded image (only when the user asks for it).
    fn classify_plain(&self, image: &[u8]) -> Result<PlainAnswer, AppError>;
}

/// Shared state: the models and the limits. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    models: Arc<BTreeMap<String, Arc<dyn HostedModel>>>,
    limits: Limits,
    sessions: Arc<tokio::sync::Semaphore>,
    /// Admission by memory: one permit per MiB of session estimate.
    memory: Arc<tokio::sync::Semaphore>,
    rate: Arc<RateLimiter>,
    www: PathBuf,
}

impl AppState {
    /// State over the given models.
    pub fn new(models: Vec<Arc<dyn HostedModel>>, limits: Limits, www: PathBuf) -> Self {
        let models = models
            .into_iter()
            .map(|m| (m.summary().name, m))
            .collect::<BTreeMap<_, _>>();
        AppState {
            sessions: Arc::new(tokio::sync::Semaphore::new(limits.max_sessions)),
            memory: Arc::new(tokio::sync::Semaphore::new(
                mib(limits.memory_budget).min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize,
            )),
            rate: Arc::new(RateLimiter::new(limits.sessions_per_minute)),
            models: Arc::new(models),
            limits,
            www,
        }
    }

    /// Loads every model of `config.models`.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let models = load_models(&config.models, config.pool)?;
        Ok(Self::new(models, config.limits(), config.www.clone()))
    }

    /// Number of hosted models.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    fn model(&self, name: &str) -> Result<Arc<dyn HostedModel>, AppError> {
        self.models
            .get(name)
            .cloned()
            .ok_or_else(|| AppError::UnknownModel(name.to_string()))
    }
}

/// The router: API, sessions and the static page, all responses with COOP/COEP (Web Workers with
/// shared memory and `performance.measureUserAgentSpecificMemory` need cross-origin isolation).
pub fn app(state: AppState) -> Router {
    let www = ServeDir::new(&state.www).append_index_html_on_directories(true);
    Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/models", get(list_models))
        .route("/api/session/{model}", get(open_session))
        .route(
            "/api/plain/{model}",
            post(classify_plain).layer(DefaultBodyLimit::max(4 << 20)),
        )
        .fallback_service(www)
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("cross-origin-embedder-policy"),
            HeaderValue::from_static("require-corp"),
        ))
        .with_state(state)
}

async fn list_models(State(state): State<AppState>) -> Json<Vec<ModelSummary>> {
    Json(state.models.values().map(|m| m.summary()).collect())
}

async fn classify_plain(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<PlainAnswer>, AppError> {
    let model = state.model(&name)?;
    let answer = tokio::task::spawn_blocking(move || model.classify_plain(&body))
        .await
        .map_err(|_| AppError::Internal)??;
    Ok(Json(answer))
}

async fn open_session(
    State(state): State<AppState>,
    Path(name): Path<String>,
    extensions: axum::http::Extensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, AppError> {
    let model = state.model(&name)?;
    let upgrade = upgrade.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let peer = extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer {
        state.rate.check(ip)?;
    }
    let need = model.session_memory();
    if need > state.limits.max_session_memory {
        return Err(AppError::SessionTooLarge {
            model: name,
            need_mb: mib(need),
            limit_mb: mib(state.limits.max_session_memory),
        });
    }
    let permit = state
        .sessions
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::TooManySessions)?;
    let memory = u32::try_from(mib(need))
        .ok()
        .and_then(|n| state.memory.clone().try_acquire_many_owned(n).ok())
        .ok_or(AppError::MemoryBusy)?;
    let session = model.new_session()?;
    let limits = state.limits.clone();
    Ok(upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            let span = tracing::info_span!("session", model = %name);
            let _enter = span.enter();
            let outcome = pump(socket, session, &limits).await;
            match &outcome {
                Ok(stats) => tracing::info!(
                    frames_in = stats.frames_in,
                    bytes_in = stats.bytes_in,
                    frames_out = stats.frames_out,
                    bytes_out = stats.bytes_out,
                    "session finished"
                ),
                Err(e) => tracing::warn!(error = %e, "session ended with an error"),
            }
            drop((permit, memory));
        }))
}

/// Bytes to whole MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}
