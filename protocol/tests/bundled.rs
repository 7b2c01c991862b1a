//! The bundled models (`models/`, narrow ReLU rings chosen by `cryptonas-search check-fixed
//! --narrow`): private inference equals the plaintext fixed-point engine bit for bit, and what
//! their rings cost on the wire against the same scales in k = 32 rings.
//!
//! The default test runs one image per model. The ≥ 200-image run on the CIFAR-10 test set is
//! ignored by default (minutes); run it in release mode:
//! `cargo test --release -p cryptonas-protocol --test bundled -- --ignored --nocapture`
//! (reads `../shared/data/cifar10-jpeg.tar.gz`, or the path in `CIFAR10_JPEG`; `BUNDLED_MODELS`
//! = a comma-separated subset of the models).
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_crypto::Csprng;
use cryptonas_model::{FixedModel, Model, NormalForm};
use cryptonas_protocol::{run_local, ClientInput, ClientSession, ServerModel, ServerSession};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MODELS: [&str; 4] = ["cnet1-c4", "cnet1-c8", "cnet1-c14", "searched-25k"];

/// The models to run: all, or those named in `BUNDLED_MODELS` (comma-separated).
fn models() -> Vec<String> {
    match std::env::var("BUNDLED_MODELS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => MODELS.iter().map(|m| m.to_string()).collect(),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(name: &str) -> (Model, Arc<ServerModel>) {
    let dir = root().join("models");
    let json = dir.join(format!("{name}.json"));
    let model = Model::load(&json, json.with_extension("safetensors")).unwrap();
    let served = ServerModel::new(name, &model).unwrap();
    (model, Arc::new(served))
}

/// The same model with every ReLU in the k = 32 ring (the scales unchanged): the "before".
fn full_width(model: &Model, served: &ServerModel) -> Arc<ServerModel> {
    let mut cfg = served.fixed().config.clone();
    cfg.stages.iter_mut().for_each(|s| s.k = None);
    let nf = NormalForm::compile(model).unwrap();
    let fixed = FixedModel::quantize(&nf, &cfg).unwrap();
    Arc::new(
        ServerModel::from_fixed(
            "full-width",
            &model.spec.input,
            &model.spec.classes,
            fixed,
            None,
            String::new(),
        )
        .unwrap(),
    )
}

/// One private inference, checked bit for bit; returns (offline, online) bytes both ways.
fn infer_exact(model: &Arc<ServerModel>, x: &[f32]) -> (usize, (u64, u64)) {
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(x.to_vec()),
        Csprng::from_entropy().unwrap(),
    );
    run_local(&mut client, &mut server).unwrap();
    let out = client.outcome().unwrap();
    assert_eq!(out.input_ring, model.fixed().quantize_input(x).unwrap());
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    let t = client.traffic();
    (
        out.class,
        (t.offline_up + t.offline_down, t.online_up + t.online_down),
    )
}

fn per_relu(bytes: u64, model: &ServerModel) -> f64 {
    bytes as f64 / model.plan().relu_count() as f64 / 1000.0
}

#[test]
fn bundled_models_use_narrow_rings_bit_exactly() {
    for name in models() {
        let name = name.as_str();
        let (model, served) = load(name);
        let plan = served.plan();
        let widths: Vec<u32> = plan
            .stages
            .iter()
            .filter(|s| s.garbled())
            .map(|s| s.k)
            .collect();
        assert!(widths.iter().all(|&k| k < plan.k), "{name}: {widths:?}");
        let mut rng = cryptonas_model::rng::SplitMix64::new(5);
        let x: Vec<f32> = (0..plan.input_len()).map(|_| rng.normal()).collect();
        let (_, narrow) = infer_exact(&served, &x);
        let (_, wide) = infer_exact(&full_width(&model, &served), &x);
        println!(
            "{name}: k_l = {widths:?}; per ReLU offline {:.3} KB (k = 32: {:.3}), online {:.3} KB (k = 32: {:.3})",
            per_relu(narrow.0, &served),
            per_relu(wide.0, &served),
            per_relu(narrow.1, &served),
            per_relu(wide.1, &served),
        );
        assert!(narrow.0 < wide.0 && narrow.1 < wide.1, "{name}");
    }
}

/// `n` CIFAR-10 test images per class (JPEG → the model's normalised input), with their labels.
fn cifar10_test(per_class: usize, input: &cryptonas_model::InputSpec) -> Vec<(Vec<f32>, usize)> {
    let path = std::env::var_os("CIFAR10_JPEG")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data/cifar10-jpeg.tar.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let p = entry.path().unwrap().to_string_lossy().to_string();
        let parts: Vec<&str> = p.split('/').collect();
        let [_, "test", class, file] = parts[..] else {
            continue;
        };
        let Some(label) = cryptonas_model::zoo::CIFAR10_CLASSES
            .iter()
            .position(|c| *c == class)
        else {
            continue;
        };
        let index: usize = file.trim_end_matches(".jpg").parse().unwrap_or(usize::MAX);
        if index >= per_class {
            continue;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        out.push((
            cryptonas_model::image::load_input(&bytes, input).unwrap(),
            label,
        ));
    }
    assert_eq!(out.len(), 10 * per_class, "{}", path.display());
    out
}

#[test]
#[ignore = "minutes: 200 private inferences per bundled model; run in release mode"]
fn bundled_models_are_bit_exact_on_200_cifar10_test_images() {
    for name in models() {
        let name = name.as_str();
        let (model, served) = load(name);
        let images = cifar10_test(20, &model.spec.input);
        let started = std::time::Instant::now();
        let (mut right, mut offline, mut online) = (0, 0, 0);
        for (x, label) in &images {
            let (class, (off, on)) = infer_exact(&served, x);
            right += usize::from(class == *label);
            offline += off;
            online += on;
        }
        let n = images.len() as u64;
        println!(
            "{name}: {} test images bit-exact ({:.0} s); private accuracy {:.1} %; per ReLU offline {:.3} KB, online {:.3} KB",
            images.len(),
            started.elapsed().as_secs_f64(),
            100.0 * right as f64 / images.len() as f64,
            per_relu(offline / n, &served),
            per_relu(online / n, &served),
        );
    }
}
