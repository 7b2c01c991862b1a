//! The shipped models (`models/*.json` + `.safetensors`): their logits are pinned, and their
//! graphs and tensors are exactly what the zoo draws and export writes for their recorded `arc`
//! and width (no dead node, no unused tensor).
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::path::PathBuf;

use cryptonas_arch::{Arch, InputShape, Net};
use cryptonas_model::format::{read_safetensors, Op};
use cryptonas_model::image::load_input;
use cryptonas_model::zoo::model_spec;
use cryptonas_model::{plain, Model, ModelSpec};

const MODELS: [&str; 4] = ["cnet1-c4", "cnet1-c8", "cnet1-c14", "searched-25k"];
const IMAGES: [&str; 2] = ["cifar10-test-cat-0000.jpg", "cifar10-test-ship-0000.jpg"];
/// Pinned logits: `{model: [{f32_bits: [u32], fixed_ring: [u64]} per image]}`.
const GOLDEN: &str = "tests/fixtures/shipped-logits.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = repo().join("models");
    let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
    (read("json"), read("safetensors"))
}

/// f32 logits (as bits) and fixed-point ring logits (at the stored k = 32 configuration) of
/// every shipped model on two CIFAR-10 test images.
fn logits() -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for name in MODELS {
        let (json, st) = files(name);
        let model = Model::from_bytes(&json, &st).unwrap();
        let per_image: Vec<serde_json::Value> = IMAGES
            .iter()
            .map(|img| {
                let bytes = std::fs::read(
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/fixtures")
                        .join(img),
                )
                .unwrap();
                let x = load_input(&bytes, &model.spec.input).unwrap();
                let r = plain::classify(&model, &x, 32).unwrap();
                assert!(
                    !r.calibrated_on_input,
                    "{name} stores its k = 32 configuration"
                );
                let bits: Vec<u32> = r.f32_logits.iter().map(|&v| (v as f32).to_bits()).collect();
                serde_json::json!({ "f32_bits": bits, "fixed_ring": r.fixed_ring })
            })
            .collect();
        out.insert(name.to_string(), per_image.into());
    }
    out.into()
}

/// Run with `CRYPTONAS_BLESS=1` to rewrite the fixture (only when a change of the logits is
/// intended and explained).
#[test]
fn shipped_logits_are_pinned() {
    let got = logits();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("CRYPTONAS_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(got, want);
}

/// The network a shipped file records (`metadata.arc`, `metadata.width`, its input and classes).
fn recorded_net(spec: &ModelSpec) -> Net {
    let extra = &spec.metadata.extra;
    Net {
        arch: Arch::from_arc(extra["arc"].as_str().unwrap()).unwrap(),
        width: extra["width"].as_u64().unwrap() as usize,
        classes: spec.classes.len(),
        input: InputShape {
            channels: spec.input.channels,
            height: spec.input.height,
            width: spec.input.width,
        },
    }
}

#[test]
fn shipped_graphs_are_what_the_zoo_draws() {
    for name in MODELS {
        let (json, st) = files(name);
        let spec = ModelSpec::from_json(&json).unwrap();
        let net = recorded_net(&spec);
        let mut drawn = model_spec(&net, name).unwrap();
        // The zoo draws dropout 0.5; a shipped graph records its recipe's (no effect at inference).
        let recorded: Vec<f32> = spec
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Dropout { p } => Some(p),
                _ => None,
            })
            .collect();
        let [p] = recorded[..] else {
            panic!("{name}: one dropout node expected, found {recorded:?}")
        };
        let recipe = spec.metadata.training_recipe.as_deref().unwrap_or_default();
        assert!(
            recipe.contains(&format!("dropout {p},")),
            "{name}: p = {p}, recipe: {recipe}"
        );
        for node in &mut drawn.nodes {
            if let Op::Dropout { p: drawn_p } = &mut node.op {
                *drawn_p = p;
            }
        }
        assert_eq!(spec.nodes, drawn.nodes, "{name}");
        assert_eq!(spec.output, drawn.output);
        assert_eq!(spec.metadata.relu_count, drawn.metadata.relu_count);
        assert_eq!(spec.metadata.macs, drawn.metadata.macs, "{name}");
        assert_eq!(
            spec.metadata.extra["cryptonas"],
            drawn.metadata.extra["cryptonas"]
        );
        assert_eq!(spec.metadata.relu_count, Some(net.relu_count().unwrap()));
        assert_eq!(spec.metadata.macs, Some(net.macs().unwrap().total()));
        assert_eq!(spec.clone().prune_dead_nodes(), Vec::<String>::new());
        // Exactly the tensors the graph uses, none left over.
        let graph = spec.validate().unwrap();
        let mut want: Vec<String> = spec
            .expected_tensors(&graph)
            .into_iter()
            .map(|(_, n, _)| n)
            .collect();
        want.sort();
        let have: BTreeMap<_, _> = read_safetensors(&st).unwrap().into_iter().collect();
        assert_eq!(have.keys().cloned().collect::<Vec<_>>(), want, "{name}");
    }
}
