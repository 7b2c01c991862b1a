//! The models a run measures: generated CNet1 networks (random weights, calibrated like the
//! protocol's tests) for the budget sweep, the tiny test model, and trained models from a directory.

use anyhow::Context;
use cryptonas_arch::cnet1;
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{Calibration, CalibrationParams, FixedModel, Metadata, Model, NormalForm};
use cryptonas_protocol::ServerModel;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Where a model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Generated CNet1 with random weights (budget sweep).
    Sweep,
    /// The small test model (`tiny_model`).
    Tiny,
    /// Trained model loaded from files.
    Trained,
}

/// What the results say about a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Name the server hosts it under.
    pub name: String,
    /// Origin.
    pub kind: ModelKind,
    /// CNet1 width C for generated models.
    pub channels: Option<usize>,
    /// Input (channels, height, width).
    pub input: [usize; 3],
    /// ReLUs per inference.
    pub relus: usize,
    /// Ring width.
    pub k: u32,
    /// Protocol stages (linear map + optional ReLU layer).
    pub stages: usize,
    /// Stages that end in a ReLU layer.
    pub relu_layers: usize,
    /// Accuracy the server announces: fixed point when measured on the whole test set, else float.
    pub accuracy: Option<f64>,
    /// Fixed-point test accuracy on the whole test set from the metadata (`check-fixed`), if measured.
    pub fixed_accuracy: Option<f64>,
    /// Float test accuracy from the metadata.
    pub float_accuracy: Option<f64>,
    /// Multiply-accumulates per image from the metadata.
    pub macs: Option<u64>,
    /// Dataset / training description.
    pub description: String,
    /// Seconds to prepare it for serving (quantize, HE weight precomputation, circuits).
    pub prepare_s: f64,
}

/// A model ready to serve, with the normalised images its inferences classify.
pub struct Prepared {
    /// Its description.
    pub info: ModelInfo,
    /// The served model (also the plaintext reference).
    pub model: Arc<ServerModel>,
    /// Normalised CHW inputs.
    pub images: Vec<Vec<f32>>,
}

fn random_images(len: usize, count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64::new(seed ^ 0x1b3e_55a7);
    (0..count)
        .map(|_| (0..len).map(|_| rng.normal()).collect())
        .collect()
}

fn info(
    model: &ServerModel,
    kind: ModelKind,
    channels: Option<usize>,
    meta: Option<&Metadata>,
    prepare_s: f64,
) -> ModelInfo {
    let plan = model.plan();
    ModelInfo {
        name: plan.model.clone(),
        kind,
        channels,
        input: [plan.input.channels, plan.input.height, plan.input.width],
        relus: plan.relu_count(),
        k: plan.k,
        stages: plan.stages.len(),
        relu_layers: plan.stages.iter().filter(|s| s.garbled()).count(),
        accuracy: model.accuracy(),
        fixed_accuracy: meta.and_then(|m| m.test_accuracy),
        float_accuracy: meta.and_then(|m| m.float_accuracy),
        macs: meta.and_then(|m| m.macs),
        description: model.description().to_string(),
        prepare_s,
    }
}

/// CNet1 at width `channels` on 32×32 inputs, random weights from `seed`, calibrated at k = 32 on
/// random normal images (the recipe of `cryptonas_protocol::testing::tiny_model`); hosted as
/// `sweep-c<channels>` (distinct from trained models such as `cnet1-c14`).
pub fn sweep_model(channels: usize, seed: u64, images: usize) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    let name = format!("sweep-c{channels}");
    let spec = model_spec(&cnet1(channels), &name)
        .with_context(|| format!("CNet1 spec at C = {channels}"))?;
    let weights = random_init(&spec, seed)?;
    let m = Model::from_bytes(spec.to_json().as_bytes(), &weights)?;
    let nf = NormalForm::compile(&m)?;
    let len = 3 * 32 * 32;
    let calibration_images = random_images(len, 16, seed.wrapping_add(1));
    let cal = Calibration::run(&nf, calibration_images.iter().map(|v| v.as_slice()))?;
    let cfg = cal
        .config(&nf, 32, &CalibrationParams::default())
        .with_context(|| format!("{name} does not fit k = 32"))?;
    let fixed = FixedModel::quantize(&nf, &cfg)?;
    let model = ServerModel::from_fixed(
        &name,
        &m.spec.input,
        &m.spec.classes,
        fixed,
        None,
        "CNet1, random weights (budget sweep)".into(),
    )
    .with_context(|| format!("preparing {name}"))?;
    let prepare_s = started.elapsed().as_secs_f64();
    let expected = 6144 * channels;
    anyhow::ensure!(
        model.plan().relu_count() == expected,
        "{name}: {} ReLUs, CNet1 has 6144·C = {expected}",
        model.plan().relu_count()
    );
    Ok(Prepared {
        info: info(&model, ModelKind::Sweep, Some(channels), None, prepare_s),
        model: Arc::new(model),
        images: random_images(len, images, seed),
    })
}

/// The protocol crate's tiny CNet1-shaped model (width 1, 8×8 inputs, seed 1): the CI smoke test.
pub fn tiny(images: usize) -> Prepared {
    let started = Instant::now();
    let (_, _, model, pool) = cryptonas_protocol::testing::tiny_model(1, 8, 1);
    let prepare_s = started.elapsed().as_secs_f64();
    Prepared {
        info: info(&model, ModelKind::Tiny, Some(1), None, prepare_s),
        model,
        images: pool.into_iter().take(images).collect(),
    }
}

/// A model file that could not be served.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    /// File stem.
    pub name: String,
    /// Why.
    pub error: String,
}

/// Every `<name>.json` + `<name>.safetensors` pair of `dir`, prepared for serving, and the models
/// that failed to load (one bad file does not end the run).
pub fn trained(dir: &Path, images: usize) -> anyhow::Result<(Vec<Prepared>, Vec<Skipped>)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read models directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.with_extension("safetensors").exists())
        .collect();
    entries.sort();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (i, json) in entries.iter().enumerate() {
        let name = json
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let started = Instant::now();
        let loaded = Model::load(json, json.with_extension("safetensors"))
            .map_err(anyhow::Error::from)
            .and_then(|m| {
                let sm = ServerModel::new(&name, &m)?;
                Ok((m, sm))
            });
        match loaded {
            Ok((m, sm)) => {
                let prepare_s = started.elapsed().as_secs_f64();
                let meta = &m.spec.metadata;
                let plan = sm.plan();
                let len = plan.input.channels * plan.input.height * plan.input.width;
                ok.push(Prepared {
                    info: info(&sm, ModelKind::Trained, None, Some(meta), prepare_s),
                    model: Arc::new(sm),
                    images: random_images(len, images, 1000 + i as u64),
                });
            }
            Err(e) => failed.push(Skipped {
                name,
                error: format!("{e:#}"),
            }),
        }
    }
    Ok((ok, failed))
}
