#![doc = include_str!("../README.md")]

pub mod cli;
mod error;
mod hosted;
mod limits;
mod metrics;
mod serve;
mod ws;

use axum::extract::rejection::BytesRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, Path, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use cryptonas_model::image::ImageLimits;
use cryptonas_protocol::OutputPolicy;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

pub use error::AppError;
pub use hosted::{load_models, OutputPolicies, ProtocolModel};
pub use limits::{AddressSlots, Limits, RateLimiter};
pub use metrics::Metrics;
pub use serve::{serve, ServeOptions};
pub use ws::{pump, sanitize_for_log, PumpError, ServedSession, SessionStats};

/// The page's Content-Security-Policy: scripts, workers and connections from this origin only
/// (WebAssembly compilation allowed), no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' \
     'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; img-src 'self' data: blob:; \
     style-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

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
    /// Sessions one client address may hold at once; more are refused with 429.
    #[arg(long, env = "CRYPTONAS_MAX_SESSIONS_PER_ADDRESS", default_value_t = 4)]
    pub max_sessions_per_address: usize,
    /// TCP connections held at once (more wait in the kernel's backlog).
    #[arg(long, env = "CRYPTONAS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// A connection must deliver a request's headers within this long, also while idle between
    /// requests; a request body within this long again.
    #[arg(long, env = "CRYPTONAS_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// A session whose client does not read a frame within this long is closed.
    #[arg(long, env = "CRYPTONAS_SEND_TIMEOUT_SECS", default_value_t = 60)]
    pub send_timeout_secs: u64,
    /// The whole offline phase of a session must end within this long.
    #[arg(long, env = "CRYPTONAS_OFFLINE_DEADLINE_SECS", default_value_t = 900)]
    pub offline_deadline_secs: u64,
    /// The whole online phase of a session must end within this long after its image came.
    #[arg(long, env = "CRYPTONAS_ONLINE_DEADLINE_SECS", default_value_t = 300)]
    pub online_deadline_secs: u64,
    /// A prepared session (offline phase done, waiting for the user's image) is kept this long,
    /// its memory counted in the budget; then it is closed and the client prepares a new one.
    #[arg(long, env = "CRYPTONAS_PREPARED_TTL_SECS", default_value_t = 600)]
    pub prepared_ttl_secs: u64,
    /// On SIGTERM, running sessions get this long to finish before they are closed.
    #[arg(long, env = "CRYPTONAS_DRAIN_SECS", default_value_t = 60)]
    pub drain_secs: u64,
    /// Origins whose pages may open sessions, comma-separated (e.g. `https://demo.example`); the
    /// server's own origin (the request's Host) is always allowed, and clients that send no
    /// Origin (not browsers) are not affected.
    #[arg(long, env = "CRYPTONAS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (e.g. nginx on 127.0.0.1) whose `X-Real-IP` header names the client: rate
    /// limits and per-address caps then apply to the client, not the proxy. Comma-separated.
    #[arg(long, env = "CRYPTONAS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Serve `POST /api/plain/{model}` (the image is revealed to the server): off by default.
    #[arg(long, env = "CRYPTONAS_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
    /// What clients learn from each model, private sessions and `/api/plain` alike:
    /// `logits` (the default: full-precision logits, the richest extraction oracle), `class`
    /// (the arg-max only) or `top-N` (the N most likely classes, ranked), computed inside the
    /// garbled circuit. `POLICY` sets the default for every model, `MODEL=POLICY` one model;
    /// repeat the flag or separate with commas (`--output class,cnet1-c4=top-3`).
    #[arg(
        long,
        env = "CRYPTONAS_OUTPUT",
        value_delimiter = ',',
        value_name = "[MODEL=]POLICY"
    )]
    pub output: Vec<String>,
    /// Plaintext classifications running at once (more are refused with 503).
    #[arg(long, env = "CRYPTONAS_PLAINTEXT_CONCURRENCY", default_value_t = 2)]
    pub plaintext_concurrency: usize,
    /// Largest image (width × height) a plaintext classification decodes.
    #[arg(long, env = "CRYPTONAS_PLAINTEXT_MAX_PIXELS", default_value_t = 4 << 20)]
    pub plaintext_max_pixels: usize,
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
            max_sessions_per_address: self.max_sessions_per_address,
            max_frame_bytes: self.max_frame_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            send_timeout: Duration::from_secs(self.send_timeout_secs),
            offline_deadline: Duration::from_secs(self.offline_deadline_secs),
            online_deadline: Duration::from_secs(self.online_deadline_secs),
            prepared_ttl: Duration::from_secs(self.prepared_ttl_secs),
            sessions_per_minute: self.sessions_per_minute,
            max_session_memory: self.max_session_memory_mb << 20,
            memory_budget: self.memory_budget_mb << 20,
            ..Limits::default()
        }
    }

    /// The plaintext endpoint's policy.
    pub fn plain(&self) -> PlainPolicy {
        PlainPolicy {
            enabled: self.allow_plaintext,
            concurrency: self.plaintext_concurrency,
            image: ImageLimits {
                max_bytes: PLAIN_BODY_LIMIT,
                max_pixels: self.plaintext_max_pixels,
                ..ImageLimits::DEFAULT
            },
        }
    }

    /// The connection-level options.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            drain: Duration::from_secs(self.drain_secs),
        }
    }
}

/// Largest request body of `POST /api/plain/{model}`.
pub const PLAIN_BODY_LIMIT: usize = 4 << 20;

/// What `POST /api/plain/{model}` does. What its answers reveal is the model's output policy
/// ([`HostedModel::output`]), the same as its private sessions.
#[derive(Debug, Clone)]
pub struct PlainPolicy {
    /// Whether the endpoint exists at all (off by default: it reveals the image to the server and
    /// is an oracle for model extraction).
    pub enabled: bool,
    /// Classifications at once.
    pub concurrency: usize,
    /// Bounds on the uploaded image.
    pub image: ImageLimits,
}

impl Default for PlainPolicy {
    fn default() -> Self {
        PlainPolicy {
            enabled: false,
            concurrency: 2,
            image: ImageLimits {
                max_bytes: PLAIN_BODY_LIMIT,
                max_pixels: 4 << 20,
                ..ImageLimits::DEFAULT
            },
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
    /// What a client learns from an inference (`"logits"`, `"class"`, `"top-3"`).
    pub output: OutputPolicy,
    /// The same in words, for pages: "logits", "class only", "top-3 classes".
    pub reveals: String,
}

/// The plaintext answer for the page's "reveal for comparison" box: what the model's output
/// policy reveals, as a private session would.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlainAnswer {
    /// The policy the answer follows.
    pub output: OutputPolicy,
    /// Predicted class index (the fixed-point engine's, ties to the lower index).
    pub class: usize,
    /// Revealed class indices, most likely first: the class alone under `class`, the top k under
    /// `top-k`, every class under `logits`.
    pub ranked: Vec<usize>,
    /// Fixed-point logits (as f64, already divided by their scale); under `logits` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<f64>>,
}

impl PlainAnswer {
    /// The answer cut down to what `policy` reveals (a full answer has every class ranked and
    /// the logits).
    pub fn revealing(self, policy: OutputPolicy) -> PlainAnswer {
        let top = policy.revealed_classes(self.ranked.len());
        let mut ranked = self.ranked;
        ranked.truncate(top);
        PlainAnswer {
            output: policy,
            class: self.class,
            ranked,
            logits: self.logits.filter(|_| policy == OutputPolicy::Logits),
        }
    }
}

/// A model the server can run sessions for.
pub trait HostedModel: Send + Sync {
    /// Public description.
    fn summary(&self) -> ModelSummary;
    /// What clients learn from an inference, private or plaintext.
    fn output(&self) -> OutputPolicy;
    /// A fresh server session (fresh randomness, nothing shared with other sessions).
    fn new_session(&self) -> Result<Box<dyn ServedSession>, AppError>;
    /// Upper estimate of the memory one session holds at its peak, in bytes (without the
    /// transport's buffers, which the server adds).
    fn session_memory(&self) -> u64;
    /// The largest frame a client can need to send in any state (`None`: no bound beyond the
    /// server's global frame limit).
    fn max_client_frame(&self) -> Option<usize> {
        None
    }
    /// Plaintext classification of an uploaded image under `limits` (only when the server allows
    /// it and the user asks for it): every class ranked and the logits; the server cuts the
    /// answer down to [`HostedModel::output`] ([`PlainAnswer::revealing`]).
    fn classify_plain(&self, image: &[u8], limits: &ImageLimits) -> Result<PlainAnswer, AppError>;
}

/// Shared state: the models, the limits and the counters. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    models: Arc<BTreeMap<String, Arc<dyn HostedModel>>>,
    limits: Limits,
    plain: PlainPolicy,
    origins: Arc<Vec<String>>,
    trusted_proxies: Arc<Vec<IpAddr>>,
    sessions: Arc<tokio::sync::Semaphore>,
    /// Admission by memory: one permit per MiB of session estimate.
    memory: Arc<tokio::sync::Semaphore>,
    plain_slots: Arc<tokio::sync::Semaphore>,
    rate: Arc<RateLimiter>,
    addresses: Arc<AddressSlots>,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
    /// Closes the running sessions (the drain deadline passed).
    close_all: tokio::sync::watch::Sender<bool>,
    next_id: Arc<AtomicU64>,
    www: PathBuf,
}

impl AppState {
    /// State over the given models, with the plaintext endpoint off.
    pub fn new(models: Vec<Arc<dyn HostedModel>>, limits: Limits, www: PathBuf) -> Self {
        Self::with_policy(models, limits, PlainPolicy::default(), Vec::new(), www)
    }

    /// State over the given models with a plaintext policy and allowed page origins.
    pub fn with_policy(
        models: Vec<Arc<dyn HostedModel>>,
        limits: Limits,
        plain: PlainPolicy,
        origins: Vec<String>,
        www: PathBuf,
    ) -> Self {
        let models = models
            .into_iter()
            .map(|m| (m.summary().name, m))
            .collect::<BTreeMap<_, _>>();
        error::RETRY_AFTER_SECS.store(limits.retry_after.as_secs().max(1), Ordering::Relaxed);
        AppState {
            sessions: Arc::new(tokio::sync::Semaphore::new(limits.max_sessions)),
            memory: Arc::new(tokio::sync::Semaphore::new(
                mib(limits.memory_budget).min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize,
            )),
            plain_slots: Arc::new(tokio::sync::Semaphore::new(plain.concurrency)),
            rate: Arc::new(RateLimiter::new(limits.sessions_per_minute)),
            addresses: Arc::new(AddressSlots::default()),
            metrics: Arc::new(Metrics::default()),
            draining: Arc::new(AtomicBool::new(false)),
            close_all: tokio::sync::watch::channel(false).0,
            next_id: Arc::new(AtomicU64::new(1)),
            models: Arc::new(models),
            origins: Arc::new(origins),
            trusted_proxies: Arc::new(Vec::new()),
            limits,
            plain,
            www,
        }
    }

    /// Loads every model of `config.models`.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let outputs = OutputPolicies::parse(&config.output)?;
        let limits = config.limits();
        // A model whose one session cannot fit is refused here (its sessions would all be
        // refused with 507 anyway); the transport's buffers are added per session on admission.
        let session_limit = limits.max_session_memory.min(limits.memory_budget);
        let models = load_models(&config.models, config.pool, &outputs, session_limit)?;
        Ok(Self::with_policy(
            models,
            config.limits(),
            config.plain(),
            config.allowed_origins.clone(),
            config.www.clone(),
        )
        .with_trusted_proxies(config.trusted_proxies.clone()))
    }

    /// Trusts `X-Real-IP` from these peer addresses (reverse proxies).
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// Number of hosted models.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops admitting sessions (`/readyz` answers 503) while running ones go on.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Closes every running session (code 1001).
    pub fn close_sessions(&self) {
        self.close_all.send_replace(true);
    }

    fn model(&self, name: &str) -> Result<Arc<dyn HostedModel>, AppError> {
        self.models
            .get(name)
            .cloned()
            .ok_or_else(|| AppError::UnknownModel(name.to_string()))
    }

    /// Counts a refusal and passes it on.
    fn refuse(&self, e: AppError) -> AppError {
        self.metrics.refused(e.reason());
        e
    }

    /// Memory one session of `model` is admitted with: its estimate, the largest frame it can
    /// receive (the WebSocket layer buffers it whole) and an allowance for the frame being sent
    /// (the WebSocket layer copies it; the transport sends one frame at a time).
    fn admitted_memory(&self, model: &dyn HostedModel) -> u64 {
        let frame = model
            .max_client_frame()
            .unwrap_or(self.limits.max_frame_bytes)
            .min(self.limits.max_frame_bytes);
        model.session_memory() + frame as u64 + self.limits.write_buffer_bytes as u64
    }
}

/// The router: API, sessions, probes, metrics and the static page; every response carries
/// COOP/COEP (Web Workers with shared memory and `performance.measureUserAgentSpecificMemory`
/// need cross-origin isolation), a Content-Security-Policy and `nosniff`.
pub fn app(state: AppState) -> Router {
    let www = ServeDir::new(&state.www).append_index_html_on_directories(true);
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/api/models", get(list_models))
        .route("/api/session/{model}", get(open_session))
        .route(
            "/api/plain/{model}",
            post(classify_plain).layer(DefaultBodyLimit::max(PLAIN_BODY_LIMIT)),
        )
        .fallback_service(www)
        .layer(header("cross-origin-opener-policy", "same-origin"))
        .layer(header("cross-origin-embedder-policy", "require-corp"))
        .layer(header("content-security-policy", CONTENT_SECURITY_POLICY))
        .layer(header("x-content-type-options", "nosniff"))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Result<&'static str, AppError> {
    if state.draining.load(Ordering::SeqCst) {
        return Err(AppError::Draining);
    }
    if state.models.is_empty() {
        return Err(AppError::Internal);
    }
    Ok("ready")
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
}

async fn list_models(State(state): State<AppState>) -> Json<Vec<ModelSummary>> {
    Json(state.models.values().map(|m| m.summary()).collect())
}

/// The client's address: the connection's peer, or the `X-Real-IP` a trusted proxy set.
fn peer_of(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !state.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(Some(peer))
}

async fn classify_plain(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<PlainAnswer>, AppError> {
    if !state.plain.enabled {
        return Err(state.refuse(AppError::PlainDisabled));
    }
    let body = body.map_err(|e| {
        state.refuse(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge {
                limit: PLAIN_BODY_LIMIT,
            }
        } else {
            AppError::BadRequest(e.body_text())
        })
    })?;
    let model = state.model(&name).map_err(|e| state.refuse(e))?;
    let policy = model.output();
    let peer = peer_of(&state, &headers, &extensions);
    // A plaintext answer is a query like a session: the same per-address budget.
    if let Some(ip) = peer {
        state.rate.check(ip).map_err(|e| state.refuse(e))?;
    }
    let Ok(slot) = state.plain_slots.clone().try_acquire_owned() else {
        if let Some(ip) = peer {
            state.rate.refund(ip);
        }
        return Err(state.refuse(AppError::TooManySessions));
    };
    let limits = state.plain.image;
    let answer = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        model.classify_plain(&body, &limits)
    })
    .await
    .map_err(|_| AppError::Internal)??;
    state.metrics.plain_answered();
    Ok(Json(answer.revealing(policy)))
}

/// Whether a browser page of `origin` may open a session: the server's own origin (same Host)
/// and the configured ones.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true; // not a browser
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

async fn open_session(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<impl IntoResponse, AppError> {
    let refuse = |e: AppError| state.refuse(e);
    let model = state.model(&name).map_err(refuse)?;
    let upgrade = upgrade.map_err(|e| refuse(AppError::BadRequest(e.body_text())))?;
    if !origin_allowed(&headers, &state.origins) {
        return Err(refuse(AppError::OriginRefused));
    }
    if state.draining.load(Ordering::SeqCst) {
        return Err(refuse(AppError::Draining));
    }
    let need = state.admitted_memory(model.as_ref());
    let never = state
        .limits
        .max_session_memory
        .min(state.limits.memory_budget);
    if need > never {
        return Err(refuse(AppError::SessionTooLarge {
            model: name,
            need_mb: mib(need),
            limit_mb: mib(never),
        }));
    }
    let peer = peer_of(&state, &headers, &extensions);
    let address_slot = match peer {
        Some(ip) => Some(
            state
                .addresses
                .acquire(ip, state.limits.max_sessions_per_address)
                .map_err(refuse)?,
        ),
        None => None,
    };
    if let Some(ip) = peer {
        state.rate.check(ip).map_err(refuse)?;
    }
    // From here on a refusal gives the rate token back: the attempt did not run.
    let refund = |e: AppError| {
        if let Some(ip) = peer {
            state.rate.refund(ip);
        }
        refuse(e)
    };
    let permit = state
        .sessions
        .clone()
        .try_acquire_owned()
        .map_err(|_| refund(AppError::TooManySessions))?;
    let memory = u32::try_from(mib(need))
        .ok()
        .and_then(|n| state.memory.clone().try_acquire_many_owned(n).ok())
        .ok_or_else(|| refund(AppError::MemoryBusy))?;
    let session = model.new_session().map_err(refund)?;
    let limits = state.limits.clone();
    let frame_limit = model
        .max_client_frame()
        .unwrap_or(limits.max_frame_bytes)
        .min(limits.max_frame_bytes);
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "session",
        id,
        peer = %peer.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
        model = %name,
    );
    let metrics = state.metrics.clone();
    let mut close_all = state.close_all.subscribe();
    Ok(upgrade
        .max_message_size(frame_limit)
        .max_frame_size(frame_limit)
        .on_upgrade(move |socket| {
            async move {
                metrics.session_started(need);
                tracing::info!("session started");
                let shutdown = async move {
                    let _ = close_all.wait_for(|closing| *closing).await;
                };
                let (outcome, stats) = pump(socket, session, &limits, shutdown).await;
                if let Some(t) = stats.offline {
                    metrics.phase(false, t);
                }
                if let Some(t) = stats.online {
                    metrics.phase(true, t);
                }
                let end = match &outcome {
                    Ok(()) => "ok",
                    Err(e) => e.kind(),
                };
                metrics.session_ended(need, end, (stats.bytes_in, stats.bytes_out));
                match &outcome {
                    Ok(()) => tracing::info!(
                        frames_in = stats.frames_in,
                        bytes_in = stats.bytes_in,
                        frames_out = stats.frames_out,
                        bytes_out = stats.bytes_out,
                        offline_ms = stats.offline.map_or(0, |d| d.as_millis() as u64),
                        online_ms = stats.online.map_or(0, |d| d.as_millis() as u64),
                        "session finished"
                    ),
                    Err(e) => tracing::warn!(
                        kind = e.kind(),
                        error = %sanitize_for_log(&e.to_string(), 256),
                        bytes_in = stats.bytes_in,
                        bytes_out = stats.bytes_out,
                        "session ended with an error"
                    ),
                }
                drop((permit, memory, address_slot));
            }
            .instrument(span)
        }))
}

/// Bytes to whole MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}
