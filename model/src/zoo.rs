//! The CryptoNAS macro network (DESIGN.md §2) as a [`ModelSpec`] graph, the released CNet1/2/3,
//! and random weights for tests and for the other crates.
//!
//! Node and tensor names are a contract with the trainer (`search/`): `stem.conv`, `stem.bn`,
//! `layers.{i}.relu|conv|bn|concat|proj|proj_bn`, `reduce{r}.n{j}`, `head.gap|dropout|fc`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::format::{
    write_safetensors, InputSpec, Metadata, ModelSpec, Node, Op, Tensor, FORMAT_VERSION,
};
use crate::rng::SplitMix64;

/// Batch-norm epsilon used by the zoo (PyTorch default).
pub const BN_EPS: f32 = 1e-5;

/// One CryptoNAS layer: `ReLU → k×k conv → BN`, then (with skips) `concat → 1×1 conv → BN`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Kernel size, 3 or 5.
    pub kernel: usize,
    /// Skip sources as indices into `[stem, L0, …, L(i−2)]` (0 = stem), strictly increasing.
    pub skips: Vec<usize>,
}

/// A CryptoNAS network: layers, base width C, classes and input geometry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CryptoNasSpec {
    /// The L layers.
    pub layers: Vec<LayerSpec>,
    /// Base channels C (stage s has C·4^s channels).
    pub channels: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Input (channels, height, width); CIFAR-10 is (3, 32, 32).
    pub input: (usize, usize, usize),
}

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

impl CryptoNasSpec {
    /// A network on CIFAR-10 geometry.
    pub fn cifar10(layers: Vec<LayerSpec>, channels: usize) -> Self {
        CryptoNasSpec {
            layers,
            channels,
            num_classes: 10,
            input: (3, 32, 32),
        }
    }

    /// Indices of the layers after which every earlier node is downsampled.
    pub fn pool_layers(&self) -> Vec<usize> {
        reduction_points(self.layers.len()).map_or_else(Vec::new, |r| r.to_vec())
    }

    /// Build the graph. Errors on bad kernels/skips or zero sizes.
    pub fn to_model_spec(&self, name: &str) -> Result<ModelSpec> {
        let zoo = |detail: String| ModelError::Zoo { detail };
        let (ic, ih, iw) = self.input;
        if self.layers.is_empty() || self.channels == 0 || self.num_classes == 0 || ic == 0 {
            return Err(zoo("need >= 1 layer, channels >= 1, classes >= 1".into()));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.kernel != 3 && l.kernel != 5 {
                return Err(zoo(format!("layer {i}: kernel {} is not 3 or 5", l.kernel)));
            }
            if l.skips.windows(2).any(|w| w[0] >= w[1]) || l.skips.iter().any(|&s| s >= i) {
                return Err(zoo(format!(
                    "layer {i}: skips {:?} must be strictly increasing indices < {i}",
                    l.skips
                )));
            }
        }
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
        let mut c = self.channels;
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
        // cur[j]: current value of [stem, L0, L1, ...] at the current resolution.
        let mut cur = vec![stem];
        let pools = self.pool_layers();
        let mut reduce = 0;
        for (i, l) in self.layers.iter().enumerate() {
            let relu = push(format!("layers.{i}.relu"), Op::Relu, vec![cur[i].clone()]);
            let cv = push(format!("layers.{i}.conv"), conv(c, l.kernel), vec![relu]);
            let mut out = push(format!("layers.{i}.bn"), bn(), vec![cv]);
            if !l.skips.is_empty() {
                let mut ins: Vec<String> = l.skips.iter().map(|&s| cur[s].clone()).collect();
                ins.push(out);
                let cat = push(format!("layers.{i}.concat"), Op::Concat, ins);
                let proj = push(format!("layers.{i}.proj"), conv(c, 1), vec![cat]);
                out = push(format!("layers.{i}.proj_bn"), bn(), vec![proj]);
            }
            cur.push(out);
            if pools.contains(&i) {
                c *= 4;
                // Only what a later layer reads (its main input or a skip) is reduced: a reduction
                // nobody reads would be a dead node.
                let later = &self.layers[i + 1..];
                let last = cur.len() - 1;
                let read = |j: usize| {
                    j == last
                        || later
                            .iter()
                            .enumerate()
                            .any(|(d, l)| j == i + 1 + d || l.skips.contains(&j))
                };
                for (j, node) in cur.iter_mut().enumerate() {
                    if read(j) {
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
        let last = cur.last().cloned().expect("at least one layer");
        let gap = push("head.gap".into(), Op::GlobalAvgPool, vec![last]);
        let drop = push("head.dropout".into(), Op::Dropout { p: 0.5 }, vec![gap]);
        let fc = push(
            "head.fc".into(),
            Op::Linear {
                out_features: self.num_classes,
            },
            vec![drop],
        );
        let (mean, std, classes) = if ic == 3 && self.num_classes == 10 {
            (
                CIFAR10_MEAN.to_vec(),
                CIFAR10_STD.to_vec(),
                CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            )
        } else {
            (
                vec![0.5; ic],
                vec![0.25; ic],
                (0..self.num_classes).map(|i| format!("class{i}")).collect(),
            )
        };
        let mut extra = BTreeMap::new();
        extra.insert(
            "cryptonas".to_string(),
            serde_json::to_value(self).expect("spec serialises"),
        );
        let spec = ModelSpec {
            format_version: FORMAT_VERSION,
            name: name.to_string(),
            input: InputSpec {
                channels: ic,
                height: ih,
                width: iw,
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
}

fn layers(kernels: &[usize], skips: impl Fn(usize) -> Vec<usize>) -> Vec<LayerSpec> {
    kernels
        .iter()
        .enumerate()
        .map(|(i, &kernel)| LayerSpec {
            kernel,
            skips: skips(i),
        })
        .collect()
}

/// The layers after which the family reduces resolution (×½ per side, ×4 channels): after layer
/// `L/3 − 1` and after layer `2·(L/3) − 1` of an `L`-layer net, the CryptoNAS placement. The one
/// formula of the family (the search's counting and supernet use it too); `None` below 3 layers,
/// which have no reduction.
pub fn reduction_points(depth: usize) -> Option<[usize; 2]> {
    let third = depth / 3;
    (third >= 1).then(|| [third - 1, 2 * third - 1])
}

/// CNet1 (L = 6, kernels 3,3,3,5,3,3, skips L2←{0,1}, L3←{1}, L4←{0,2}, L5←{2,3}): 6144·C ReLUs.
pub fn cnet1(channels: usize) -> CryptoNasSpec {
    let skips = |i: usize| match i {
        2 => vec![0, 1],
        3 => vec![1],
        4 => vec![0, 2],
        5 => vec![2, 3],
        _ => vec![],
    };
    CryptoNasSpec::cifar10(layers(&[3, 3, 3, 5, 3, 3], skips), channels)
}

/// Fixed skip pattern for CNet2/3 (the ReLU count does not depend on it): layer i ≥ 2 skips the
/// node two back, and even layers ≥ 4 also the one three back.
fn chain_skips(i: usize) -> Vec<usize> {
    match i {
        0 | 1 => vec![],
        2 | 3 => vec![i - 1],
        _ if i.is_multiple_of(2) => vec![i - 2, i - 1],
        _ => vec![i - 1],
    }
}

/// CNet2 (L = 12, kernels 5,5,5,5,5,3,3,3,3,3,5,3): 12288·C ReLUs (344,064 at C = 28).
pub fn cnet2(channels: usize) -> CryptoNasSpec {
    CryptoNasSpec::cifar10(
        layers(&[5, 5, 5, 5, 5, 3, 3, 3, 3, 3, 5, 3], chain_skips),
        channels,
    )
}

/// CNet3 (L = 24; CNet2's kernels twice): 24576·C ReLUs (1,376,256 at C = 56).
pub fn cnet3(channels: usize) -> CryptoNasSpec {
    let k = [5, 5, 5, 5, 5, 3, 3, 3, 3, 3, 5, 3];
    let kernels: Vec<usize> = k.iter().chain(k.iter()).copied().collect();
    CryptoNasSpec::cifar10(layers(&kernels, chain_skips), channels)
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
