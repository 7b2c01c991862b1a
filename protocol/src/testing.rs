//! Small CryptoNAS-shaped models with random weights, for tests, benchmarks and demos without
//! trained weights (feature `test-utils`).

use crate::ServerModel;
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{random_init, CryptoNasSpec, LayerSpec};
use cryptonas_model::{Calibration, CalibrationParams, FixedModel, Model, NormalForm};
use std::sync::Arc;

/// CNet1's layers (kernels 3,3,3,5,3,3; skips L2←{0,1}, L3←{1}, L4←{0,2}, L5←{2,3}) at width
/// `channels` on `side`×`side` RGB inputs, random weights from `seed`, calibrated at k = 32 on
/// random normal images. Returns the model files (JSON, safetensors with `metadata.fixed_point`
/// set), the prepared model and 256 random normalised images.
pub fn tiny_model(
    channels: usize,
    side: usize,
    seed: u64,
) -> (Vec<u8>, Vec<u8>, Arc<ServerModel>, Vec<Vec<f32>>) {
    let layers = [
        (3, vec![]),
        (3, vec![]),
        (3, vec![0, 1]),
        (5, vec![1]),
        (3, vec![0, 2]),
        (3, vec![2, 3]),
    ]
    .into_iter()
    .map(|(kernel, skips)| LayerSpec { kernel, skips })
    .collect();
    let mut spec = CryptoNasSpec::cifar10(layers, channels);
    spec.input = (3, side, side);
    let mut spec = spec.to_model_spec("tiny").expect("valid spec");
    let weights = random_init(&spec, seed).expect("random weights");
    let m = Model::from_bytes(spec.to_json().as_bytes(), &weights).expect("valid model");
    let nf = NormalForm::compile(&m).expect("normal form");
    let mut rng = SplitMix64::new(seed);
    let images: Vec<Vec<f32>> = (0..256)
        .map(|_| (0..3 * side * side).map(|_| rng.normal()).collect())
        .collect();
    let cal =
        Calibration::run(&nf, images[..16].iter().map(|v| v.as_slice())).expect("calibration");
    let cfg = cal
        .config(&nf, 32, &CalibrationParams::default())
        .expect("fits k = 32");
    spec.metadata.fixed_point = Some(cfg.clone());
    spec.metadata.dataset = Some("random weights (test model)".into());
    let fixed = FixedModel::quantize(&nf, &cfg).expect("quantize");
    let sm = ServerModel::from_fixed(
        "tiny",
        &m.spec.input,
        &m.spec.classes,
        fixed,
        None,
        String::new(),
    )
    .expect("servable");
    (spec.to_json().into_bytes(), weights, Arc::new(sm), images)
}
