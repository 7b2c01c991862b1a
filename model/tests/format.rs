//! Every malformed model file is rejected with a typed error naming the node/tensor; no panics.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

use cryptonas_arch::cnet1;
use cryptonas_model::format::{read_safetensors, write_safetensors};
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{Model, ModelError, ModelSpec, Tensor};

fn tiny() -> (ModelSpec, Vec<u8>) {
    let spec = model_spec(&cnet1(2), "tiny").unwrap();
    let w = random_init(&spec, 1).unwrap();
    (spec, w)
}

fn json_edit(f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (spec, _) = tiny();
    let mut v: serde_json::Value = serde_json::from_str(&spec.to_json()).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn load_json(json: &[u8]) -> Result<Model, ModelError> {
    let (_, w) = tiny();
    Model::from_bytes(json, &w)
}

fn node_mut<'a>(v: &'a mut serde_json::Value, id: &str) -> &'a mut serde_json::Value {
    v["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == id)
        .unwrap()
}

fn weights_edit(f: impl FnOnce(&mut BTreeMap<String, Tensor>)) -> Result<Model, ModelError> {
    let (spec, w) = tiny();
    let mut t: BTreeMap<String, Tensor> = read_safetensors(&w).unwrap().into_iter().collect();
    f(&mut t);
    Model::from_bytes(spec.to_json().as_bytes(), &write_safetensors(&t).unwrap())
}

#[test]
fn valid_model_loads_and_json_round_trips() {
    let (spec, w) = tiny();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    assert_eq!(m.spec, spec);
    assert_eq!(
        ModelSpec::from_json(spec.to_json().as_bytes()).unwrap(),
        spec
    );
}

#[test]
fn unknown_op_and_unknown_field_are_rejected() {
    let j = json_edit(|v| node_mut(v, "layers.0.relu")["op"]["type"] = "gelu".into());
    let e = load_json(&j).unwrap_err();
    assert!(
        matches!(&e, ModelError::NodeJson { node, .. } if node == "layers.0.relu"),
        "{e}"
    );
    assert!(e.to_string().contains("gelu"), "{e}");

    let j = json_edit(|v| node_mut(v, "stem.conv")["op"]["dilation"] = 2.into());
    let e = load_json(&j).unwrap_err();
    assert!(
        matches!(&e, ModelError::NodeJson { node, .. } if node == "stem.conv"),
        "{e}"
    );
    assert!(e.to_string().contains("dilation"), "{e}");

    let j = json_edit(|v| node_mut(v, "layers.0.relu")["op"]["alpha"] = 2.into());
    assert!(load_json(&j).is_err());

    let j = json_edit(|v| v["colour"] = "blue".into());
    assert!(load_json(&j).unwrap_err().to_string().contains("colour"));
}

#[test]
fn bad_format_version() {
    let j = json_edit(|v| v["format_version"] = 2.into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::FormatVersion {
            found: 2,
            supported: 1
        }
    ));
}

#[test]
fn dangling_input_duplicate_id_and_cycle() {
    let j = json_edit(|v| node_mut(v, "layers.0.conv")["inputs"] = serde_json::json!(["nope"]));
    match load_json(&j).unwrap_err() {
        ModelError::DanglingInput { node, input } => {
            assert_eq!((node.as_str(), input.as_str()), ("layers.0.conv", "nope"))
        }
        e => panic!("{e}"),
    }
    let j = json_edit(|v| node_mut(v, "layers.0.conv")["id"] = "stem.conv".into());
    assert!(
        matches!(load_json(&j).unwrap_err(), ModelError::DuplicateId { node } if node == "stem.conv")
    );
    let j =
        json_edit(|v| node_mut(v, "layers.0.relu")["inputs"] = serde_json::json!(["layers.0.bn"]));
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::Cycle { .. }
    ));
    let j = json_edit(|v| v["output"] = "ghost".into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::UnknownOutput { .. }
    ));
}

#[test]
fn shape_mismatches_are_found_by_inference() {
    // Concat of 16x16 with 32x32 (skip from the unreduced stem).
    let j = json_edit(|v| {
        node_mut(v, "layers.2.concat")["inputs"] =
            serde_json::json!(["stem.bn", "reduce0.n1", "layers.2.bn"])
    });
    match load_json(&j).unwrap_err() {
        ModelError::ShapeMismatch { node, .. } => assert_eq!(node, "layers.2.concat"),
        e => panic!("{e}"),
    }
    // Wrong number of classes.
    let j = json_edit(|v| v["classes"] = serde_json::json!(["a", "b"]));
    assert!(
        matches!(load_json(&j).unwrap_err(), ModelError::ShapeMismatch { node, .. } if node == "head.fc")
    );
    // Kernel larger than the padded input.
    let j = json_edit(|v| {
        node_mut(v, "head.fc")["op"] = serde_json::json!({"type": "conv2d", "out_channels": 10,
            "kernel": 9, "stride": 1, "padding": 0, "groups": 1, "bias": false})
    });
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::ShapeMismatch { .. }
    ));
    // Bad arity and parameters.
    let j = json_edit(|v| {
        node_mut(v, "layers.0.relu")["inputs"] = serde_json::json!(["stem.bn", "stem.bn"])
    });
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::Arity { .. }
    ));
    let j = json_edit(|v| node_mut(v, "stem.bn")["op"]["eps"] = (-1.0).into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::InvalidParam { .. }
    ));
    let j = json_edit(|v| v["input"]["std"] = serde_json::json!([0.2, 0.0, 0.2]));
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::InputSpec { .. }
    ));
}

#[test]
fn absurd_sizes_are_rejected_without_overflow() {
    let j = json_edit(|v| {
        node_mut(v, "stem.conv")["op"]["out_channels"] = 1_000_000_000_000_000u64.into()
    });
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::InvalidParam { .. }
    ));
    let j = json_edit(|v| node_mut(v, "head.fc")["op"]["out_features"] = u64::MAX.into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::InvalidParam { .. }
    ));
    let j = json_edit(|v| node_mut(v, "layers.0.conv")["op"]["padding"] = 60_000.into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::ShapeMismatch { .. }
    ));
    let j = json_edit(|v| v["input"]["height"] = (1u64 << 40).into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::InputSpec { .. }
    ));
    let j = json_edit(|v| node_mut(v, "stem.conv")["op"]["stride"] = (-1).into());
    assert!(matches!(
        load_json(&j).unwrap_err(),
        ModelError::NodeJson { node, .. } if node == "stem.conv"
    ));
}

#[test]
fn tensor_problems_name_node_and_tensor() {
    match weights_edit(|t| {
        t.remove("layers.1.conv.weight");
    })
    .unwrap_err()
    {
        ModelError::MissingTensor { node, tensor } => {
            assert_eq!(node, "layers.1.conv");
            assert_eq!(tensor, "layers.1.conv.weight");
        }
        e => panic!("{e}"),
    }
    let e = weights_edit(|t| {
        t.insert(
            "bogus.weight".into(),
            Tensor {
                shape: vec![1],
                data: vec![0.0],
            },
        );
    })
    .unwrap_err();
    assert!(matches!(e, ModelError::ExtraTensor { tensor } if tensor == "bogus.weight"));
    let e = weights_edit(|t| {
        t.insert(
            "stem.bn.running_var".into(),
            Tensor {
                shape: vec![3],
                data: vec![1.0; 3],
            },
        );
    })
    .unwrap_err();
    assert!(
        matches!(e, ModelError::TensorShape { ref tensor, ref expected, .. }
        if tensor == "stem.bn.running_var" && expected == &vec![2]),
        "{e}"
    );
    let e = weights_edit(|t| {
        t.get_mut("head.fc.weight").unwrap().data[5] = f32::NAN;
    })
    .unwrap_err();
    assert!(
        matches!(e, ModelError::NonFinite { ref node, index: 5, .. } if node == "head.fc"),
        "{e}"
    );
    let e = weights_edit(|t| {
        t.get_mut("reduce1.n3.path2.weight").unwrap().data[0] = f32::INFINITY;
    })
    .unwrap_err();
    assert!(
        matches!(e, ModelError::NonFinite { ref tensor, .. } if tensor == "reduce1.n3.path2.weight")
    );
}

#[test]
fn wrong_dtype_is_rejected() {
    let data = [0u8; 8];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1], &data).unwrap();
    let bytes = safetensors::serialize([("x", view)], &None).unwrap();
    assert!(matches!(
        read_safetensors(&bytes).unwrap_err(),
        ModelError::TensorDtype { .. }
    ));
}

#[test]
fn truncated_and_garbled_bytes_never_panic() {
    let (spec, w) = tiny();
    let json = spec.to_json().into_bytes();
    // Truncations of both files.
    for cut in (0..json.len()).step_by(97) {
        assert!(Model::from_bytes(&json[..cut], &w).is_err());
    }
    for cut in (0..w.len()).step_by(61).chain([w.len() - 1]) {
        assert!(Model::from_bytes(&json, &w[..cut]).is_err());
    }
    // Byte flips: each must either load or fail with an error, never panic.
    let mut state = 0x1234_5678_u64;
    for _ in 0..300 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut j = json.clone();
        let mut b = w.clone();
        let pos = (state >> 33) as usize;
        let (jl, bl) = (j.len(), 300.min(b.len()));
        j[pos % jl] ^= (state >> 8) as u8 | 1;
        b[pos % bl] ^= (state >> 16) as u8 | 1;
        let _ = Model::from_bytes(&j, &w);
        let _ = Model::from_bytes(&json, &b);
    }
    assert!(Model::from_bytes(b"", b"").is_err());
    assert!(Model::from_bytes(b"null", &w).is_err());
    assert!(Model::load("/nonexistent.json", "/nonexistent.st").is_err());
}

/// The zoo builds no node the output does not depend on, and a file that has one (as every export
/// before the fix did: `reduce1.n1`) loads with the node and its tensors pruned, computing the same.
#[test]
fn dead_nodes_are_not_built_and_are_pruned_at_load() {
    let (spec, w) = tiny();
    let mut pruned = spec.clone();
    assert_eq!(
        pruned.prune_dead_nodes(),
        Vec::<String>::new(),
        "the zoo builds none"
    );
    // Add a dead reduction reading layer 0's output, with its tensors.
    let model = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&spec.to_json()).unwrap();
    let reduce = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["op"]["type"] == "factorized_reduction")
        .unwrap()
        .clone();
    let src = reduce["id"].as_str().unwrap().to_string();
    let mut dead = reduce.clone();
    dead["id"] = "dead.red".into();
    v["nodes"].as_array_mut().unwrap().push(dead);
    let mut t: BTreeMap<String, Tensor> = read_safetensors(&w).unwrap().into_iter().collect();
    let copies: Vec<(String, Tensor)> = t
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{src}.")))
        .map(|(k, v)| (k.replacen(&src, "dead.red", 1), v.clone()))
        .collect();
    assert!(!copies.is_empty());
    t.extend(copies);
    let json = serde_json::to_vec(&v).unwrap();
    let loaded = Model::from_bytes(&json, &write_safetensors(&t).unwrap()).unwrap();
    assert!(loaded.spec.node_index("dead.red").is_none());
    assert!(loaded
        .get_tensor(&format!("dead.red.{}", "bn.weight"))
        .is_none());
    let x = ndarray::Array4::from_shape_fn((1, 3, 32, 32), |(_, c, h, w)| {
        ((c * 7 + h * 3 + w) % 11) as f32 * 0.1
    });
    assert_eq!(
        loaded.forward(x.view()).unwrap(),
        model.forward(x.view()).unwrap()
    );
}
