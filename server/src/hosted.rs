//! Models loaded from a directory, served through the protocol crate.

use crate::{AppError, HostedModel, ModelSummary, PlainAnswer, ServedSession};
use cryptonas_crypto::Csprng;
use cryptonas_model::image::ImageLimits;
use cryptonas_model::Model;
use cryptonas_protocol::{
    OfflineMaterial, Output, OutputPolicy, Phase, ProtocolError, ServerModel, ServerSession,
    Session,
};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// A model ready for sessions (weights, HE precomputation and circuits shared read-only), with an
/// optional pool of offline material garbled ahead of clients.
pub struct ProtocolModel {
    model: Arc<ServerModel>,
    pool: Option<Arc<Pool>>,
}

/// Pre-garbled inferences of one model, refilled by a background thread up to `size`.
struct Pool {
    size: usize,
    /// Inferences taken by sessions and not given back.
    spent: std::sync::atomic::AtomicU64,
    ready: Mutex<VecDeque<OfflineMaterial>>,
    taken: Condvar,
}

impl ProtocolModel {
    /// Wraps a prepared model (every session garbles after its OT).
    pub fn new(model: Arc<ServerModel>) -> Self {
        ProtocolModel { model, pool: None }
    }

    /// Wraps a prepared model and keeps `size` inferences' garbling ready ahead of clients (a
    /// background thread garbles whenever the pool runs low; 0 = no pool). A pooled session skips
    /// garbling on its critical path and sends 16 B of label corrections per share bit instead.
    pub fn with_pool(model: Arc<ServerModel>, size: usize) -> Self {
        if size == 0 {
            return Self::new(model);
        }
        let pool = Arc::new(Pool {
            size,
            spent: std::sync::atomic::AtomicU64::new(0),
            ready: Mutex::new(VecDeque::new()),
            taken: Condvar::new(),
        });
        let (weak, m) = (Arc::downgrade(&pool), model.clone());
        std::thread::Builder::new()
            .name(format!("pool-{}", model.plan().model))
            .spawn(move || refill(weak, m))
            .map_err(|e| tracing::error!(error = %e, "no pool thread; sessions garble on demand"))
            .ok();
        ProtocolModel {
            model,
            pool: Some(pool),
        }
    }

    /// Pooled inferences sessions have used up (taken and not given back) since start.
    pub fn pool_spent(&self) -> u64 {
        self.pool
            .as_ref()
            .map_or(0, |p| p.spent.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Pooled inferences ready now.
    pub fn pooled(&self) -> usize {
        self.pool
            .as_ref()
            .and_then(|p| p.ready.lock().ok().map(|r| r.len()))
            .unwrap_or(0)
    }
}

impl Pool {
    fn take(&self) -> Option<OfflineMaterial> {
        let material = self.ready.lock().ok()?.pop_front();
        if material.is_some() {
            self.spent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.taken.notify_one();
        material
    }

    /// Puts back material a session never used (it was not spent, even if the refill thread has
    /// filled its place meanwhile: then it is dropped).
    fn give_back(&self, material: OfflineMaterial) {
        self.spent
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut ready) = self.ready.lock() {
            if ready.len() < self.size {
                ready.push_front(material);
            }
        }
    }
}

/// A session of a [`ProtocolModel`]: pooled material is taken only when the client's first
/// message arrives, and put back if that message is refused, so connections that send nothing
/// or garbage cost the pool nothing.
struct HostedSession {
    model: Arc<ServerModel>,
    pool: Option<Arc<Pool>>,
    rng: Option<Csprng>,
    inner: Option<ServerSession>,
}

impl HostedSession {
    fn session(&mut self) -> Result<&mut ServerSession, ProtocolError> {
        if self.inner.is_none() {
            let rng = self
                .rng
                .take()
                .ok_or(ProtocolError::Internal("a hosted session started twice"))?;
            let model = self.model.clone();
            let session = match self.pool.as_ref().and_then(|p| p.take()) {
                Some(material) => ServerSession::with_material(model, rng, material)?,
                None => ServerSession::new(model, rng),
            };
            self.inner = Some(session);
        }
        self.inner.as_mut().ok_or(ProtocolError::Internal(
            "a hosted session without its session",
        ))
    }
}

impl Session for HostedSession {
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError> {
        let first = self.inner.is_none();
        let result = self.session()?.handle(frame);
        if result.is_err() && first {
            if let (Some(pool), Some(session)) = (&self.pool, self.inner.take()) {
                if let Some(material) = session.into_unused_material() {
                    pool.give_back(material);
                }
            }
        }
        result
    }

    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError> {
        match self.inner.as_mut() {
            Some(s) => s.poll_output(),
            None => Ok(None),
        }
    }
}

impl ServedSession for HostedSession {
    fn max_frame_bytes(&self) -> Option<usize> {
        Some(match &self.inner {
            Some(s) => s.max_frame_bytes(),
            None => self.model.hello_frame_bytes(),
        })
    }

    fn phase(&self) -> Phase {
        self.inner.as_ref().map_or(Phase::Offline, |s| s.phase())
    }
}

/// Keeps the pool full; ends when the model is dropped.
fn refill(pool: Weak<Pool>, model: Arc<ServerModel>) {
    let mut rng = match Csprng::from_entropy() {
        Ok(rng) => rng,
        Err(e) => {
            tracing::error!(error = %e, "no entropy for the pool");
            return;
        }
    };
    loop {
        let Some(p) = pool.upgrade() else { return };
        let missing = match p.ready.lock() {
            Ok(ready) => {
                let ready = p
                    .taken
                    .wait_timeout_while(ready, Duration::from_secs(1), |r| r.len() >= p.size)
                    .map(|(r, _)| r);
                match ready {
                    Ok(r) => p.size.saturating_sub(r.len()),
                    Err(_) => return,
                }
            }
            Err(_) => return,
        };
        if missing == 0 {
            continue;
        }
        // Garble outside the lock, then publish.
        drop(p);
        let started = std::time::Instant::now();
        match model.prepare_offline(&mut rng) {
            Ok(material) => {
                let Some(p) = pool.upgrade() else { return };
                let bytes = material.bytes();
                let pooled = match p.ready.lock() {
                    Ok(mut ready) => {
                        ready.push_back(material);
                        ready.len()
                    }
                    Err(_) => return,
                };
                tracing::debug!(
                    model = %model.plan().model,
                    pooled,
                    mb = bytes >> 20,
                    ms = started.elapsed().as_millis() as u64,
                    "offline material ready"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "pool garbling failed");
                return;
            }
        }
    }
}

impl HostedModel for ProtocolModel {
    fn summary(&self) -> ModelSummary {
        let plan = self.model.plan();
        ModelSummary {
            name: plan.model.clone(),
            relus: plan.relu_count() as u64,
            accuracy: self.model.accuracy(),
            input: [plan.input.channels, plan.input.height, plan.input.width],
            classes: plan.classes.clone(),
            description: self.model.description().to_string(),
            output: plan.output(),
            reveals: plan.output().describe(),
        }
    }

    fn output(&self) -> OutputPolicy {
        self.model.output()
    }

    fn new_session(&self) -> Result<Box<dyn ServedSession>, AppError> {
        let rng = Csprng::from_entropy().map_err(|e| {
            tracing::error!(error = %e, "no entropy");
            AppError::Internal
        })?;
        Ok(Box::new(HostedSession {
            model: self.model.clone(),
            pool: self.pool.clone(),
            rng: Some(rng),
            inner: None,
        }))
    }

    fn session_memory(&self) -> u64 {
        self.model.session_memory_bytes()
    }

    fn max_client_frame(&self) -> Option<usize> {
        Some(self.model.max_client_frame_bytes())
    }

    fn classify_plain(&self, image: &[u8], limits: &ImageLimits) -> Result<PlainAnswer, AppError> {
        let plan = self.model.plan();
        let fixed = self.model.fixed();
        let x = cryptonas_model::image::load_input_with(image, &plan.input, limits)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let q = fixed
            .quantize_input(&x)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let ring = fixed.forward(&q).map_err(|e| {
            tracing::error!(error = %e, "plaintext engine failed");
            AppError::Internal
        })?;
        let logits = fixed.dequantize_logits(&ring);
        // The one ranking rule, as the private top-k and the client rank.
        let ranked = cryptonas_model::rank_logits(&ring, plan.k, ring.len());
        Ok(PlainAnswer {
            output: OutputPolicy::Logits,
            class: ranked.first().copied().unwrap_or(0),
            ranked,
            logits: Some(logits),
        })
    }
}

/// What each hosted model reveals (`--output`): a default and per-model choices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputPolicies {
    /// For models not named in `models`.
    pub default: OutputPolicy,
    /// By model name.
    pub models: BTreeMap<String, OutputPolicy>,
}

impl OutputPolicies {
    /// Parses `--output` entries: `POLICY` (the default; at most one) or `MODEL=POLICY`.
    pub fn parse(entries: &[String]) -> anyhow::Result<OutputPolicies> {
        let mut out = OutputPolicies::default();
        let mut default_set = false;
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let bad = |e: String| anyhow::anyhow!("--output {entry}: {e}");
            match entry.split_once('=') {
                Some((model, policy)) => {
                    let policy = policy.trim().parse().map_err(bad)?;
                    if out
                        .models
                        .insert(model.trim().to_string(), policy)
                        .is_some()
                    {
                        anyhow::bail!("--output names model '{}' twice", model.trim());
                    }
                }
                None => {
                    if std::mem::replace(&mut default_set, true) {
                        anyhow::bail!(
                            "--output gives two defaults (use MODEL=POLICY for one model)"
                        );
                    }
                    out.default = entry.parse().map_err(bad)?;
                }
            }
        }
        Ok(out)
    }

    /// The policy of model `name`.
    pub fn of(&self, name: &str) -> OutputPolicy {
        self.models.get(name).copied().unwrap_or(self.default)
    }
}

/// Loads every `<name>.json` + `<name>.safetensors` pair of `dir`, each with a pool of `pool`
/// pre-garbled inferences and its output policy. A model that fails to load is reported and
/// skipped, so one corrupt file never takes the others down, and so is a model whose one session
/// needs more than `session_limit` bytes under its policy (its estimate from the plan, checked
/// before the HE precomputation, logged with the limit); an unreadable directory, an `--output`
/// naming a model that is not there, or a policy a model cannot take (top-11 of 10 classes) is an
/// error: the operator asked for something the server would not do.
pub fn load_models(
    dir: &Path,
    pool: usize,
    outputs: &OutputPolicies,
    session_limit: u64,
) -> anyhow::Result<Vec<Arc<dyn HostedModel>>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read models directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut models: Vec<Arc<dyn HostedModel>> = Vec::new();
    for json in entries {
        let name = json
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let weights = json.with_extension("safetensors");
        let started = std::time::Instant::now();
        let loaded = Model::load(&json, &weights)
            .map_err(anyhow::Error::from)
            .and_then(|m| {
                ServerModel::new_within(&name, &m, session_limit).map_err(anyhow::Error::from)
            });
        match loaded {
            Ok(mut m) => {
                let policy = outputs.of(&name);
                m.set_output(policy).map_err(|e| {
                    anyhow::anyhow!("model '{name}' cannot use --output {policy}: {e}")
                })?;
                if let Err(e) = m.check_within(session_limit) {
                    tracing::error!(model = %name, error = %e, "model skipped");
                    continue;
                }
                tracing::info!(
                    model = %name,
                    output = %policy,
                    relus = m.plan().relu_count(),
                    k = m.plan().k,
                    // Rounded up, as the refusal and `cryptonas import` state it.
                    session_mb = m.session_memory_bytes().div_ceil(1 << 20),
                    ms = started.elapsed().as_millis() as u64,
                    "model ready"
                );
                models.push(Arc::new(ProtocolModel::with_pool(Arc::new(m), pool)));
            }
            Err(e) => tracing::error!(model = %name, error = %e, "model skipped"),
        }
    }
    let loaded: Vec<String> = models.iter().map(|m| m.summary().name).collect();
    if let Some(missing) = outputs.models.keys().find(|n| !loaded.contains(n)) {
        anyhow::bail!(
            "--output names model '{missing}', which is not served from {} (models: {})",
            dir.display(),
            loaded.join(", ")
        );
    }
    Ok(models)
}
