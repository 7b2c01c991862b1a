//! The CryptoNAS family ([`cryptonas_arch`]) drawn as [`ModelSpec`] graphs, the dataset
//! constants the drawn graphs default to, and random weights for tests and for the other crates.
//!
//! The family itself (layers, `arc` strings, CNet1/2/3, the reduction rule, closed-form counts)
//! is defined in `cryptonas-arch`; this module is the one place that knows how a [`Net`] looks in
//! the model format. Node and tensor names are a contract with the trainer (`search/`):
//! `stem.conv`, `stem.bn`, `layers.{i}.relu|conv|bn|concat|proj|proj_bn`, `reduce{r}.n{j}`,
//! `head.gap|dropout|fc`.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::format::{
    write_safetensors, InputSpec, Metadata, ModelSpec, Node, Op, Tensor, FORMAT_VERSION,
};
use crate::rng::SplitMix64;
use cryptonas_arch::{nodes_used_from, Net};

/// Batch-norm epsilon used by the zoo (PyTorch default), and the fixed epsilon of the format's
/// factorized reduction.
pub const BN_EPS: f32 = 1e-5;

/// CIFAR-10 channel means / stds (pixels in [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 channel standard deviations.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
/// CIFAR-10 class names.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The graph of `net`, named `name`: stem, one block per layer, the factorized reductions at the
/// family's reduction points (only of the nodes a later layer reads, so no node is dead), and
/// the head; CIFAR-10 normalisation and class names for a 3-channel 10-class input, neutral ones
/// otherwise; `metadata.relu_count` and `metadata.macs` counted on the graph. Errors when the
/// network is invalid ([`Net::validate`]: dense ops only, skips in order, sizes ≥ 1).
pub fn model_spec(net: &Net, name: &str) -> Result<ModelSpec> {
    net.validate()?;
    let arch = &net.arch;
    let ic = net.input.channels;
    let mut nodes = Vec::new();
    let mut push = |id: String, op: Op, inputs: Vec<String>| {
        nodes.push(Node {
            id: id.clone(),
            op,
            inputs,
        });
        id
    };
    let input = push("input".into(), Op::Input, vec![]);
    let mut c = net.width;
    let conv = |out: usize, k: usize| Op::Conv2d {
        out_channels: out,
        kernel: k,
        stride: 1,
        padding: k / 2,
        groups: 1,
        bias: false,
    };
    let bn = || Op::BatchNorm { eps: BN_EPS };
    let stem = push("stem.conv".into(), conv(c, 3), vec![input]);
    let stem = push("stem.bn".into(), bn(), vec![stem]);
    // cur[j]: current value of node n{j} ([stem, L0, L1, ...]) at the current resolution.
    let mut cur = vec![stem];
    let pools = arch.reduction_after();
    let mut reduce = 0;
    for (i, l) in arch.layers.iter().enumerate() {
        let relu = push(format!("layers.{i}.relu"), Op::Relu, vec![cur[i].clone()]);
        let cv = push(
            format!("layers.{i}.conv"),
            conv(c, l.op.final_kernel()),
            vec![relu],
        );
        let mut out = push(format!("layers.{i}.bn"), bn(), vec![cv]);
        if !l.skips.is_empty() {
            let mut ins: Vec<String> = l.skips.iter().map(|&s| cur[s].clone()).collect();
            ins.push(out);
            let cat = push(format!("layers.{i}.concat"), Op::Concat, ins);
            let proj = push(format!("layers.{i}.proj"), conv(c, 1), vec![cat]);
            out = push(format!("layers.{i}.proj_bn"), bn(), vec![proj]);
        }
        cur.push(out);
        if pools.is_some_and(|p| p.contains(&i)) {
            c *= 4;
            // Only what a later layer reads is reduced: a reduction nobody reads would be dead.
            let used = nodes_used_from(arch, i + 1);
            for (j, node) in cur.iter_mut().enumerate() {
                if used[j] {
                    *node = push(
                        format!("reduce{reduce}.n{j}"),
                        Op::FactorizedReduction { out_channels: c },
                        vec![node.clone()],
                    );
                }
            }
            reduce += 1;
        }
    }
    // `validate` refuses an empty architecture, so `cur` holds the stem and every layer.
    let last = cur[arch.depth()].clone();
    let gap = push("head.gap".into(), Op::GlobalAvgPool, vec![last]);
    let drop = push("head.dropout".into(), Op::Dropout { p: 0.5 }, vec![gap]);
    let fc = push(
        "head.fc".into(),
        Op::Linear {
            out_features: net.classes,
        },
        vec![drop],
    );
    let (mean, std, classes) = if ic == 3 && net.classes == 10 {
        (
            CIFAR10_MEAN.to_vec(),
            CIFAR10_STD.to_vec(),
            CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        )
    } else {
        (
            vec![0.5; ic],
            vec![0.25; ic],
            (0..net.classes).map(|i| format!("class{i}")).collect(),
        )
    };
    // `metadata.cryptonas` records the network (informational; the graph is what runs). Its
    // layout predates `cryptonas-arch` and is kept so that files stay byte-identical.
    let layers: Vec<serde_json::Value> = arch
        .layers
        .iter()
        .map(|l| serde_json::json!({ "kernel": l.op.final_kernel(), "skips": l.skips }))
        .collect();
    let record = serde_json::json!({
        "layers": layers,
        "channels": net.width,
        "num_classes": net.classes,
        "input": [ic, net.input.height, net.input.width],
    });
    let mut extra = BTreeMap::new();
    extra.insert("cryptonas".to_string(), record);
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        name: name.to_string(),
        input: InputSpec {
            channels: ic,
            height: net.input.height,
            width: net.input.width,
            mean,
            std,
        },
        classes,
        nodes,
        output: fc,
        metadata: Metadata {
            extra,
            ..Metadata::default()
        },
    };
    let graph = spec.validate()?;
    let mut spec = spec;
    spec.metadata.relu_count = Some(crate::count::relu_count_graph(&spec, &graph));
    spec.metadata.macs = Some(crate::count::macs_graph(&spec, &graph));
    Ok(spec)
}

/// Random weights for any valid spec, as safetensors bytes: Kaiming-normal convs, BN with
/// non-trivial γ/β/mean/var, small linear weights. Deterministic in `seed`.
pub fn random_init(spec: &ModelSpec, seed: u64) -> Result<Vec<u8>> {
    let graph = spec.validate()?;
    let mut rng = SplitMix64::new(seed);
    let mut tensors = BTreeMap::new();
    for (i, name, shape) in spec.expected_tensors(&graph) {
        let n: usize = shape.iter().product();
        let id = &spec.nodes[i].id;
        let is_bn = match spec.nodes[i].op {
            Op::BatchNorm { .. } => true,
            Op::FactorizedReduction { .. } => name.starts_with(&format!("{id}.bn.")),
            _ => false,
        };
        let data: Vec<f32> = if is_bn && name.ends_with("running_var") {
            (0..n).map(|_| rng.range(0.5, 2.0)).collect()
        } else if is_bn && name.ends_with("running_mean") {
            (0..n).map(|_| 0.2 * rng.normal()).collect()
        } else if is_bn && name.ends_with("weight") {
            (0..n).map(|_| rng.range(0.5, 1.5)).collect()
        } else if name.ends_with("bias") {
            (0..n).map(|_| 0.1 * rng.normal()).collect()
        } else {
            // conv / linear weight: fan_in = product of all dims but the first.
            let fan_in: usize = shape[1..].iter().product();
            let std = (2.0 / fan_in.max(1) as f32).sqrt();
            (0..n).map(|_| std * rng.normal()).collect()
        };
        tensors.insert(name, Tensor { shape, data });
    }
    write_safetensors(&tensors)
}
