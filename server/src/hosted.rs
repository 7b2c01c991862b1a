//! Models loaded from a directory, served through the protocol crate.

use crate::{AppError, HostedModel, ModelSummary, PlainAnswer};
use cryptonas_crypto::Csprng;
use cryptonas_model::Model;
use cryptonas_protocol::{FrameSession, ServerModel, ServerSession};
use std::path::Path;
use std::sync::Arc;

/// A model ready for sessions (weights, HE precomputation and circuits shared read-only).
pub struct ProtocolModel {
    model: Arc<ServerModel>,
}

impl ProtocolModel {
    /// Wraps a prepared model.
    pub fn new(model: Arc<ServerModel>) -> Self {
        ProtocolModel { model }
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
        }
    }

    fn new_session(&self) -> Result<Box<dyn FrameSession>, AppError> {
        let rng = Csprng::from_entropy().map_err(|e| {
            tracing::error!(error = %e, "no entropy");
            AppError::Internal
        })?;
        Ok(Box::new(ServerSession::new(self.model.clone(), rng)))
    }

    fn session_memory(&self) -> u64 {
        self.model.session_memory_bytes()
    }

    fn classify_plain(&self, image: &[u8]) -> Result<PlainAnswer, AppError> {
        let plan = self.model.plan();
        let fixed = self.model.fixed();
        let x = cryptonas_model::image::load_input(image, &plan.input)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let q = fixed
            .quantize_input(&x)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        let ring = fixed.forward(&q).map_err(|e| {
            tracing::error!(error = %e, "plaintext engine failed");
            AppError::Internal
        })?;
        let logits = fixed.dequantize_logits(&ring);
        let class = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap_or(0);
        Ok(PlainAnswer { class, logits })
    }
}

/// Loads every `<name>.json` + `<name>.safetensors` pair of `dir`. A model that fails to load is
/// reported and skipped, so one corrupt file never takes the others down; an unreadable directory
/// is an error.
pub fn load_models(dir: &Path) -> anyhow::Result<Vec<Arc<dyn HostedModel>>> {
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
            .and_then(|m| ServerModel::new(&name, &m).map_err(anyhow::Error::from));
        match loaded {
            Ok(m) => {
                tracing::info!(
                    model = %name,
                    relus = m.plan().relu_count(),
                    k = m.plan().k,
                    session_mb = m.session_memory_bytes() >> 20,
                    ms = started.elapsed().as_millis() as u64,
                    "model ready"
                );
                models.push(Arc::new(ProtocolModel::new(Arc::new(m))));
            }
            Err(e) => tracing::error!(model = %name, error = %e, "model skipped"),
        }
    }
    Ok(models)
}
