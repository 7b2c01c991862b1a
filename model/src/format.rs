//! The model format: a versioned JSON graph ([`ModelSpec`]) plus f32 weights in safetensors.
//!
//! Loading ([`Model::from_bytes`], [`Model::load`]) validates everything before any engine runs:
//! unknown ops/fields, duplicate ids, dangling edges, cycles, shapes (by shape inference), and every
//! tensor (missing, extra, mis-shaped, wrong dtype, NaN/inf). Each failure is a typed
//! [`ModelError`] naming the node and the tensor.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Largest accepted tensor (elements per image) — a guard against absurd files.
pub const MAX_ELEMENTS: usize = 1 << 28;
/// Largest accepted op parameter (channels, kernel, stride, padding, groups, features).
pub const MAX_PARAM: usize = 1 << 16;

/// The only `format_version` this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Node identifier (unique within a graph).
pub type NodeId = String;

/// A whole network: architecture, input preprocessing, class names and metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Must equal [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Human-readable name ("cnet1-c8").
    pub name: String,
    /// Input geometry and normalisation.
    pub input: InputSpec,
    /// Class names, one per logit.
    pub classes: Vec<String>,
    /// Graph nodes, in any order (validation sorts them topologically).
    pub nodes: Vec<Node>,
    /// Id of the node whose value is the logits.
    pub output: NodeId,
    /// Provenance and measured figures.
    #[serde(default)]
    pub metadata: Metadata,
}

/// Input geometry (CHW) and the per-channel normalisation `(x/255 − mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Channels (3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Per-channel mean of pixels scaled to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (> 0).
    pub std: Vec<f32>,
}

/// One graph node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique id; also the prefix of the node's tensor names (`<id>.weight`).
    pub id: NodeId,
    /// The operation.
    pub op: Op,
    /// Ids of the input nodes, in order (concat order matters).
    #[serde(default)]
    pub inputs: Vec<NodeId>,
}

/// Operations. JSON form: `{"type": "conv2d", "out_channels": 8, ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "OpRepr", into = "OpRepr")]
pub enum Op {
    /// The image (exactly one per graph, no inputs).
    Input,
    /// 2-D convolution, square kernel, symmetric zero padding. Tensors `<id>.weight`
    /// (O × C/groups × k × k) and, if `bias`, `<id>.bias` (O).
    Conv2d {
        /// Output channels O.
        out_channels: usize,
        /// Kernel size k.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
        /// Channel groups (divides C and O).
        groups: usize,
        /// Whether `<id>.bias` exists.
        bias: bool,
    },
    /// Inference-mode batch norm. Tensors `<id>.weight/.bias/.running_mean/.running_var` (C).
    BatchNorm {
        /// Variance epsilon (> 0).
        eps: f32,
    },
    /// max(x, 0).
    Relu,
    /// Concatenation along channels.
    Concat,
    /// Element-wise sum of inputs of equal shape.
    Add,
    /// ENAS factorized reduction: path1 = 1×1 stride-2 conv of x, path2 = 1×1 stride-2 conv of x
    /// shifted by (1, 1) (`x[:, 1:, 1:]` zero-padded bottom/right), concat, batch norm. Tensors
    /// `<id>.path1.weight`, `<id>.path2.weight` (O/2 × C × 1 × 1), `<id>.bn.*` (O); the batch
    /// norm uses eps = [`BN_EPS`](crate::zoo::BN_EPS) (PyTorch's default).
    FactorizedReduction {
        /// Output channels O (even).
        out_channels: usize,
    },
    /// Mean over H × W; output C × 1 × 1.
    GlobalAvgPool,
    /// Fully connected on the flattened C·H·W input; tensors `<id>.weight` (out × C·H·W),
    /// `<id>.bias` (out). Output out × 1 × 1.
    Linear {
        /// Output features.
        out_features: usize,
    },
    /// Identity at inference.
    Dropout {
        /// Training drop probability, in [0, 1).
        p: f32,
    },
    /// Max over each k × k window (stride s; `padding` cells before the first row and column and
    /// `padding_end` after the last, both < k; padding cells never win). Output
    /// `⌊(H + p + p_end − k)/s⌋ + 1` per side. Not linear: the f32 engine and the counting
    /// support it, the private protocol does not yet.
    MaxPool {
        /// Window size k.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding at the top and left (ignored cells).
        padding: usize,
        /// Padding at the bottom and right (JSON: optional, default `padding`).
        padding_end: usize,
    },
    /// Mean over each k × k window (geometry as `max_pool`, padding cells are zeros). With
    /// `count_include_pad` the divisor is always k²; without it, the number of real
    /// (non-padding) cells in the window.
    AvgPool {
        /// Window size k.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding at the top and left.
        padding: usize,
        /// Padding at the bottom and right (JSON: optional, default `padding`).
        padding_end: usize,
        /// Whether padding cells count in the divisor.
        count_include_pad: bool,
    },
    /// Per-channel `x · scale[c] + shift[c]`; tensors `<id>.scale`, `<id>.shift` (C). Folded
    /// element-wise arithmetic with constants (ONNX Mul/Add/Sub/Div).
    ChannelAffine,
    /// `min(max(x, min), max)` element-wise (ONNX Clip, ReLU6). Not linear: the private protocol
    /// does not support it yet.
    Clip {
        /// Lower bound (finite or −∞).
        min: f32,
        /// Upper bound (finite or +∞, ≥ min).
        max: f32,
    },
    /// C × H × W viewed as (C·H·W) × 1 × 1, row-major (index `(c·H + y)·W + x`).
    Flatten,
}

/// Wire form of [`Op`]: unit variants are written as empty structs so that
/// `deny_unknown_fields` also rejects stray fields on `relu`, `concat`, ... (serde ignores them on
/// unit variants of internally tagged enums).
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum OpRepr {
    Input {},
    Conv2d {
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        bias: bool,
    },
    BatchNorm {
        eps: f32,
    },
    Relu {},
    Concat {},
    Add {},
    FactorizedReduction {
        out_channels: usize,
    },
    GlobalAvgPool {},
    Linear {
        out_features: usize,
    },
    Dropout {
        p: f32,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
        padding: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        padding_end: Option<usize>,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
        padding: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        padding_end: Option<usize>,
        count_include_pad: bool,
    },
    ChannelAffine {},
    Clip {
        #[serde(with = "bound")]
        min: f32,
        #[serde(with = "bound")]
        max: f32,
    },
    Flatten {},
}

/// JSON has no infinities: a clip bound is a number or the string "-inf" / "inf".
mod bound {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f32),
        Str(String),
    }

    pub(super) fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_infinite() {
            Repr::Str(if *v > 0.0 { "inf" } else { "-inf" }.into()).serialize(s)
        } else {
            Repr::Num(*v).serialize(s)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Str(t) if t == "inf" => Ok(f32::INFINITY),
            Repr::Str(t) if t == "-inf" => Ok(f32::NEG_INFINITY),
            Repr::Str(t) => Err(serde::de::Error::custom(format!(
                "clip bound {t:?}: expected a number, \"inf\" or \"-inf\""
            ))),
        }
    }
}

impl From<OpRepr> for Op {
    fn from(r: OpRepr) -> Self {
        match r {
            OpRepr::Input {} => Op::Input,
            OpRepr::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                bias,
            } => Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                bias,
            },
            OpRepr::BatchNorm { eps } => Op::BatchNorm { eps },
            OpRepr::Relu {} => Op::Relu,
            OpRepr::Concat {} => Op::Concat,
            OpRepr::Add {} => Op::Add,
            OpRepr::FactorizedReduction { out_channels } => {
                Op::FactorizedReduction { out_channels }
            }
            OpRepr::GlobalAvgPool {} => Op::GlobalAvgPool,
            OpRepr::Linear { out_features } => Op::Linear { out_features },
            OpRepr::Dropout { p } => Op::Dropout { p },
            OpRepr::MaxPool {
                kernel,
                stride,
                padding,
                padding_end,
            } => Op::MaxPool {
                kernel,
                stride,
                padding,
                padding_end: padding_end.unwrap_or(padding),
            },
            OpRepr::AvgPool {
                kernel,
                stride,
                padding,
                padding_end,
                count_include_pad,
            } => Op::AvgPool {
                kernel,
                stride,
                padding,
                padding_end: padding_end.unwrap_or(padding),
                count_include_pad,
            },
            OpRepr::ChannelAffine {} => Op::ChannelAffine,
            OpRepr::Clip { min, max } => Op::Clip { min, max },
            OpRepr::Flatten {} => Op::Flatten,
        }
    }
}

impl From<Op> for OpRepr {
    fn from(o: Op) -> Self {
        match o {
            Op::Input => OpRepr::Input {},
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                bias,
            } => OpRepr::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                bias,
            },
            Op::BatchNorm { eps } => OpRepr::BatchNorm { eps },
            Op::Relu => OpRepr::Relu {},
            Op::Concat => OpRepr::Concat {},
            Op::Add => OpRepr::Add {},
            Op::FactorizedReduction { out_channels } => {
                OpRepr::FactorizedReduction { out_channels }
            }
            Op::GlobalAvgPool => OpRepr::GlobalAvgPool {},
            Op::Linear { out_features } => OpRepr::Linear { out_features },
            Op::Dropout { p } => OpRepr::Dropout { p },
            Op::MaxPool {
                kernel,
                stride,
                padding,
                padding_end,
            } => OpRepr::MaxPool {
                kernel,
                stride,
                padding,
                padding_end: (padding_end != padding).then_some(padding_end),
            },
            Op::AvgPool {
                kernel,
                stride,
                padding,
                padding_end,
                count_include_pad,
            } => OpRepr::AvgPool {
                kernel,
                stride,
                padding,
                padding_end: (padding_end != padding).then_some(padding_end),
                count_include_pad,
            },
            Op::ChannelAffine => OpRepr::ChannelAffine {},
            Op::Clip { min, max } => OpRepr::Clip { min, max },
            Op::Flatten => OpRepr::Flatten {},
        }
    }
}

impl Op {
    /// Short op name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d { .. } => "conv2d",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Concat => "concat",
            Op::Add => "add",
            Op::FactorizedReduction { .. } => "factorized_reduction",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Dropout { .. } => "dropout",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::ChannelAffine => "channel_affine",
            Op::Clip { .. } => "clip",
            Op::Flatten => "flatten",
        }
    }
}

/// Provenance and measured figures; every field optional, unknown keys kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Fixed-point test accuracy (fraction in [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Float test accuracy (fraction in [0, 1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_accuracy: Option<f64>,
    /// ReLU count (as [`relu_count`](crate::relu_count) computes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relu_count: Option<u64>,
    /// Multiply-accumulates per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<u64>,
    /// Dataset name ("cifar10").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Training recipe, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_recipe: Option<String>,
    /// Epochs trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// Calibrated fixed-point configuration, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_point: Option<crate::fixed::FixedConfig>,
    /// Anything else (search seed, architecture string, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Per-sample tensor shape (channels, height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// Number of elements C·H·W.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// True when any dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense f32 tensor as read from safetensors (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// A validated graph: topological order, resolved edges and inferred shapes.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Node indices (into `spec.nodes`) in topological order.
    pub order: Vec<usize>,
    /// Resolved inputs of each node (indices into `spec.nodes`).
    pub inputs: Vec<Vec<usize>>,
    /// Output shape of each node.
    pub shapes: Vec<Shape>,
    /// Index of the input node.
    pub input: usize,
    /// Index of the output node.
    pub output: usize,
}

fn conv_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    let padded = n + 2 * p;
    if k == 0 || s == 0 || padded < k {
        None
    } else {
        Some((padded - k) / s + 1)
    }
}

impl ModelSpec {
    /// Parse JSON (no validation beyond syntax and known ops/fields; see [`ModelSpec::validate`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // Check the version first so that a future format gives the clearer error.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(found) = v.get("format_version").and_then(|x| x.as_u64()) {
                if found != u64::from(FORMAT_VERSION) {
                    return Err(ModelError::FormatVersion {
                        found: u32::try_from(found).unwrap_or(u32::MAX),
                        supported: FORMAT_VERSION,
                    });
                }
            }
        }
        let spec: ModelSpec = serde_json::from_slice(bytes).map_err(|source| {
            // Name the offending node when the problem is inside one.
            serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|v| {
                    v.get("nodes")?
                        .as_array()?
                        .iter()
                        .enumerate()
                        .find_map(|(i, n)| {
                            serde_json::from_value::<Node>(n.clone())
                                .err()
                                .map(|source| {
                                    let node = n
                                        .get("id")
                                        .and_then(|id| id.as_str())
                                        .map_or_else(|| format!("#{i}"), str::to_string);
                                    ModelError::NodeJson { node, source }
                                })
                        })
                })
                .unwrap_or(ModelError::Json { source })
        })?;
        if spec.format_version != FORMAT_VERSION {
            return Err(ModelError::FormatVersion {
                found: spec.format_version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(spec)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("ModelSpec serialises")
    }

    /// Index of a node by id.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Removes the nodes the output does not depend on and returns their ids (in file order).
    /// Meant for a spec that [`ModelSpec::validate`] accepts (unique ids, known inputs).
    pub fn prune_dead_nodes(&mut self) -> Vec<String> {
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = index
            .get(self.output.as_str())
            .copied()
            .into_iter()
            .collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut live[i], true) {
                continue;
            }
            stack.extend(
                self.nodes[i]
                    .inputs
                    .iter()
                    .filter_map(|id| index.get(id.as_str()).copied()),
            );
        }
        // Without a known output nothing is dead: validation reports the output instead.
        if !live.iter().any(|&l| l) {
            return Vec::new();
        }
        let dead: Vec<String> = self
            .nodes
            .iter()
            .zip(&live)
            .filter(|(n, &l)| !l && !matches!(n.op, Op::Input))
            .map(|(n, _)| n.id.clone())
            .collect();
        let mut keep = live.into_iter();
        self.nodes
            .retain(|n| keep.next().unwrap_or(true) || matches!(n.op, Op::Input));
        dead
    }

    /// Validate the structure and infer every node's shape.
    pub fn validate(&self) -> Result<Graph> {
        if self.format_version != FORMAT_VERSION {
            return Err(ModelError::FormatVersion {
                found: self.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let inp = &self.input;
        if inp.channels == 0
            || inp.height == 0
            || inp.width == 0
            || inp.channels > MAX_PARAM
            || inp.height > MAX_PARAM
            || inp.width > MAX_PARAM
        {
            return Err(ModelError::InputSpec {
                detail: format!(
                    "dimensions {}x{}x{} must be in 1..={MAX_PARAM}",
                    inp.channels, inp.height, inp.width
                ),
            });
        }
        if inp.mean.len() != inp.channels || inp.std.len() != inp.channels {
            return Err(ModelError::InputSpec {
                detail: format!(
                    "mean/std have {}/{} entries for {} channels",
                    inp.mean.len(),
                    inp.std.len(),
                    inp.channels
                ),
            });
        }
        if inp.mean.iter().any(|m| !m.is_finite())
            || inp.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(ModelError::InputSpec {
                detail: "mean must be finite and std finite and > 0".into(),
            });
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if index.insert(n.id.as_str(), i).is_some() {
                return Err(ModelError::DuplicateId { node: n.id.clone() });
            }
        }
        let mut inputs = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let mut v = Vec::with_capacity(n.inputs.len());
            for i in &n.inputs {
                match index.get(i.as_str()) {
                    Some(&j) => v.push(j),
                    None => {
                        return Err(ModelError::DanglingInput {
                            node: n.id.clone(),
                            input: i.clone(),
                        })
                    }
                }
            }
            inputs.push(v);
        }
        let output = *index
            .get(self.output.as_str())
            .ok_or_else(|| ModelError::UnknownOutput {
                output: self.output.clone(),
            })?;
        // Kahn's algorithm, stable in file order.
        let n = self.nodes.len();
        let mut indeg = vec![0usize; n];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ins) in inputs.iter().enumerate() {
            for &j in ins {
                indeg[i] += 1;
                users[j].push(i);
            }
        }
        let mut order = Vec::with_capacity(n);
        let mut ready: std::collections::VecDeque<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &u in &users[i] {
                indeg[u] -= 1;
                if indeg[u] == 0 {
                    ready.push_back(u);
                }
            }
        }
        if order.len() != n {
            let bad = (0..n).find(|&i| indeg[i] > 0).unwrap_or(0);
            return Err(ModelError::Cycle {
                node: self.nodes[bad].id.clone(),
            });
        }
        let input_nodes: Vec<usize> = (0..n).filter(|&i| self.nodes[i].op == Op::Input).collect();
        if input_nodes.len() != 1 {
            return Err(ModelError::InputSpec {
                detail: format!(
                    "graph must have exactly one input node, has {}",
                    input_nodes.len()
                ),
            });
        }
        let mut shapes = vec![Shape { c: 0, h: 0, w: 0 }; n];
        for &i in &order {
            self.check_params(i)?;
            let s = self.infer_node(i, &inputs[i], &shapes)?;
            if s.c
                .checked_mul(s.h)
                .and_then(|v| v.checked_mul(s.w))
                .is_none_or(|n| n > MAX_ELEMENTS)
            {
                return Err(ModelError::ShapeMismatch {
                    node: self.nodes[i].id.clone(),
                    detail: format!("{}x{}x{} exceeds {MAX_ELEMENTS} elements", s.c, s.h, s.w),
                });
            }
            shapes[i] = s;
        }
        let out = shapes[output];
        if self.classes.is_empty()
            || out
                != (Shape {
                    c: self.classes.len(),
                    h: 1,
                    w: 1,
                })
        {
            return Err(ModelError::ShapeMismatch {
                node: self.output.clone(),
                detail: format!(
                    "output shape {}x{}x{} does not match {} classes (expected {}x1x1)",
                    out.c,
                    out.h,
                    out.w,
                    self.classes.len(),
                    self.classes.len()
                ),
            });
        }
        Ok(Graph {
            order,
            inputs,
            shapes,
            input: input_nodes[0],
            output,
        })
    }

    /// Bounds every integer parameter so that shape arithmetic cannot overflow.
    fn check_params(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i];
        let vals: Vec<usize> = match &node.op {
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                ..
            } => vec![*out_channels, *kernel, *stride, *padding, *groups],
            Op::FactorizedReduction { out_channels } => vec![*out_channels],
            Op::Linear { out_features } => vec![*out_features],
            Op::MaxPool {
                kernel,
                stride,
                padding,
                padding_end,
            }
            | Op::AvgPool {
                kernel,
                stride,
                padding,
                padding_end,
                ..
            } => vec![*kernel, *stride, *padding, *padding_end],
            _ => vec![],
        };
        if vals.iter().any(|&v| v > MAX_PARAM) {
            return Err(ModelError::InvalidParam {
                node: node.id.clone(),
                detail: format!("parameters {vals:?} exceed {MAX_PARAM}"),
            });
        }
        Ok(())
    }

    fn infer_node(&self, i: usize, ins: &[usize], shapes: &[Shape]) -> Result<Shape> {
        let node = &self.nodes[i];
        let id = || node.id.clone();
        let arity = |expected: &'static str, ok: bool| -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(ModelError::Arity {
                    node: node.id.clone(),
                    op: node.op.name(),
                    expected,
                    found: ins.len(),
                })
            }
        };
        let param = |detail: String| ModelError::InvalidParam { node: id(), detail };
        let mismatch = |detail: String| ModelError::ShapeMismatch { node: id(), detail };
        match &node.op {
            Op::Input => {
                arity("0", ins.is_empty())?;
                Ok(Shape {
                    c: self.input.channels,
                    h: self.input.height,
                    w: self.input.width,
                })
            }
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                ..
            } => {
                arity("1", ins.len() == 1)?;
                let x = shapes[ins[0]];
                if *out_channels == 0 || *kernel == 0 || *stride == 0 || *groups == 0 {
                    return Err(param(
                        "out_channels, kernel, stride and groups must be >= 1".into(),
                    ));
                }
                if !x.c.is_multiple_of(*groups) || out_channels % groups != 0 {
                    return Err(mismatch(format!(
                        "groups {groups} must divide in_channels {} and out_channels {out_channels}",
                        x.c
                    )));
                }
                let h = conv_out(x.h, *kernel, *stride, *padding);
                let w = conv_out(x.w, *kernel, *stride, *padding);
                match (h, w) {
                    (Some(h), Some(w)) => Ok(Shape {
                        c: *out_channels,
                        h,
                        w,
                    }),
                    _ => Err(mismatch(format!(
                        "kernel {kernel} with padding {padding} does not fit input {}x{}",
                        x.h, x.w
                    ))),
                }
            }
            Op::BatchNorm { eps } => {
                arity("1", ins.len() == 1)?;
                if !(eps.is_finite() && *eps > 0.0) {
                    return Err(param(format!("eps {eps} must be finite and > 0")));
                }
                Ok(shapes[ins[0]])
            }
            Op::Relu => {
                arity("1", ins.len() == 1)?;
                Ok(shapes[ins[0]])
            }
            Op::Dropout { p } => {
                arity("1", ins.len() == 1)?;
                if !(0.0..1.0).contains(p) {
                    return Err(param(format!("dropout p {p} must be in [0, 1)")));
                }
                Ok(shapes[ins[0]])
            }
            Op::Concat => {
                arity("at least 1", !ins.is_empty())?;
                let first = shapes[ins[0]];
                let mut c = 0;
                for &j in ins {
                    let s = shapes[j];
                    if s.h != first.h || s.w != first.w {
                        return Err(mismatch(format!(
                            "concat of {}x{} ({}) with {}x{} ({})",
                            first.h, first.w, self.nodes[ins[0]].id, s.h, s.w, self.nodes[j].id
                        )));
                    }
                    c += s.c;
                }
                Ok(Shape { c, ..first })
            }
            Op::Add => {
                arity("at least 1", !ins.is_empty())?;
                let first = shapes[ins[0]];
                for &j in ins {
                    if shapes[j] != first {
                        let s = shapes[j];
                        return Err(mismatch(format!(
                            "add of {}x{}x{} ({}) with {}x{}x{} ({})",
                            first.c,
                            first.h,
                            first.w,
                            self.nodes[ins[0]].id,
                            s.c,
                            s.h,
                            s.w,
                            self.nodes[j].id
                        )));
                    }
                }
                Ok(first)
            }
            Op::FactorizedReduction { out_channels } => {
                arity("1", ins.len() == 1)?;
                if *out_channels == 0 || out_channels % 2 != 0 {
                    return Err(param(format!(
                        "out_channels {out_channels} must be even and > 0"
                    )));
                }
                let x = shapes[ins[0]];
                Ok(Shape {
                    c: *out_channels,
                    h: x.h.div_ceil(2),
                    w: x.w.div_ceil(2),
                })
            }
            Op::GlobalAvgPool => {
                arity("1", ins.len() == 1)?;
                Ok(Shape {
                    c: shapes[ins[0]].c,
                    h: 1,
                    w: 1,
                })
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
                padding_end,
            }
            | Op::AvgPool {
                kernel,
                stride,
                padding,
                padding_end,
                ..
            } => {
                arity("1", ins.len() == 1)?;
                if *kernel == 0 || *stride == 0 || padding >= kernel || padding_end >= kernel {
                    return Err(param(format!(
                        "kernel {kernel} and stride {stride} must be >= 1 and padding {padding} / \
                         {padding_end} < kernel"
                    )));
                }
                let x = shapes[ins[0]];
                let out = |n: usize| {
                    (n + padding + padding_end)
                        .checked_sub(*kernel)
                        .map(|d| d / stride + 1)
                };
                match (out(x.h), out(x.w)) {
                    (Some(h), Some(w)) => Ok(Shape { c: x.c, h, w }),
                    _ => Err(mismatch(format!(
                        "window {kernel} with padding {padding}/{padding_end} does not fit input \
                         {}x{}",
                        x.h, x.w
                    ))),
                }
            }
            Op::ChannelAffine => {
                arity("1", ins.len() == 1)?;
                Ok(shapes[ins[0]])
            }
            Op::Clip { min, max } => {
                arity("1", ins.len() == 1)?;
                if min.is_nan()
                    || max.is_nan()
                    || min > max
                    || *min == f32::INFINITY
                    || *max == f32::NEG_INFINITY
                {
                    return Err(param(format!(
                        "clip bounds [{min}, {max}] must satisfy min <= max"
                    )));
                }
                Ok(shapes[ins[0]])
            }
            Op::Flatten => {
                arity("1", ins.len() == 1)?;
                Ok(Shape {
                    c: shapes[ins[0]].len(),
                    h: 1,
                    w: 1,
                })
            }
            Op::Linear { out_features } => {
                arity("1", ins.len() == 1)?;
                if *out_features == 0 {
                    return Err(param("out_features must be >= 1".into()));
                }
                Ok(Shape {
                    c: *out_features,
                    h: 1,
                    w: 1,
                })
            }
        }
    }

    /// Every tensor the graph needs, `(node index, tensor name, shape)`, in topological order.
    pub fn expected_tensors(&self, graph: &Graph) -> Vec<(usize, String, Vec<usize>)> {
        let mut out = Vec::new();
        for &i in &graph.order {
            let node = &self.nodes[i];
            let id = &node.id;
            let x = graph.inputs[i].first().map(|&j| graph.shapes[j]);
            match (&node.op, x) {
                (
                    Op::Conv2d {
                        out_channels,
                        kernel,
                        groups,
                        bias,
                        ..
                    },
                    Some(x),
                ) => {
                    out.push((
                        i,
                        format!("{id}.weight"),
                        vec![*out_channels, x.c / groups, *kernel, *kernel],
                    ));
                    if *bias {
                        out.push((i, format!("{id}.bias"), vec![*out_channels]));
                    }
                }
                (Op::BatchNorm { .. }, Some(x)) => {
                    for t in BN_TENSORS {
                        out.push((i, format!("{id}.{t}"), vec![x.c]));
                    }
                }
                (Op::FactorizedReduction { out_channels }, Some(x)) => {
                    for p in ["path1", "path2"] {
                        out.push((
                            i,
                            format!("{id}.{p}.weight"),
                            vec![out_channels / 2, x.c, 1, 1],
                        ));
                    }
                    for t in BN_TENSORS {
                        out.push((i, format!("{id}.bn.{t}"), vec![*out_channels]));
                    }
                }
                (Op::Linear { out_features }, Some(x)) => {
                    out.push((i, format!("{id}.weight"), vec![*out_features, x.len()]));
                    out.push((i, format!("{id}.bias"), vec![*out_features]));
                }
                (Op::ChannelAffine, Some(x)) => {
                    out.push((i, format!("{id}.scale"), vec![x.c]));
                    out.push((i, format!("{id}.shift"), vec![x.c]));
                }
                _ => {}
            }
        }
        out
    }
}

/// Batch-norm tensor suffixes, in the order PyTorch names them.
pub const BN_TENSORS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// Parse a safetensors buffer into f32 tensors (any structural problem is a typed error).
pub fn read_safetensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| ModelError::Safetensors {
        detail: format!("{e:?}"),
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(ModelError::TensorDtype {
                tensor: name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Serialise named f32 tensors to safetensors bytes (sorted by name).
pub fn write_safetensors(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, b, s) in &bytes {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
            .map_err(|e| ModelError::Safetensors {
                detail: format!("{n}: {e:?}"),
            })?;
        views.push((n.clone(), v));
    }
    safetensors::serialize(views, &None).map_err(|e| ModelError::Safetensors {
        detail: format!("{e:?}"),
    })
}

/// A validated model: spec, graph, and weights (checked against the graph).
///
/// # Invariant
/// `graph` and `weights` agree with `spec.nodes`. The fields are public so that metadata can be
/// edited in place; after changing nodes or weights, rebuild with [`Model::new`] (the engines
/// rely on the validation).
#[derive(Clone, Debug)]
pub struct Model {
    /// The architecture.
    pub spec: ModelSpec,
    /// Topological order, edges and shapes.
    pub graph: Graph,
    /// Every tensor, by name.
    pub weights: HashMap<String, Tensor>,
}

impl Model {
    /// Validate a parsed spec against its weights.
    pub fn new(spec: ModelSpec, weights: HashMap<String, Tensor>) -> Result<Self> {
        let graph = spec.validate()?;
        let expected = spec.expected_tensors(&graph);
        for (i, name, shape) in &expected {
            let node = &spec.nodes[*i].id;
            let t = weights.get(name).ok_or_else(|| ModelError::MissingTensor {
                node: node.clone(),
                tensor: name.clone(),
            })?;
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if &t.shape != shape || n != Some(t.data.len()) {
                return Err(ModelError::TensorShape {
                    node: node.clone(),
                    tensor: name.clone(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
            if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::NonFinite {
                    node: node.clone(),
                    tensor: name.clone(),
                    index,
                });
            }
        }
        if weights.len() != expected.len() {
            let known: std::collections::HashSet<&str> =
                expected.iter().map(|(_, n, _)| n.as_str()).collect();
            let mut extra: Vec<&String> = weights
                .keys()
                .filter(|k| !known.contains(k.as_str()))
                .collect();
            extra.sort();
            if let Some(t) = extra.first() {
                return Err(ModelError::ExtraTensor {
                    tensor: (*t).clone(),
                });
            }
        }
        Ok(Model {
            spec,
            graph,
            weights,
        })
    }

    /// Parse and validate a model from the JSON and safetensors bytes.
    ///
    /// Nodes the output does not depend on (dead nodes: every export before December 2026 holds
    /// `reduce1.n1`) are pruned with their tensors: they compute nothing and must not be counted
    /// in the model's MACs.
    pub fn from_bytes(json: &[u8], safetensors: &[u8]) -> Result<Self> {
        let mut spec = ModelSpec::from_json(json)?;
        let mut weights = read_safetensors(safetensors)?;
        spec.validate()?;
        for id in spec.prune_dead_nodes() {
            let prefix = format!("{id}.");
            weights.retain(|name, _| !name.starts_with(&prefix));
        }
        Model::new(spec, weights)
    }

    /// Load and validate from files.
    pub fn load(
        json_path: impl AsRef<std::path::Path>,
        safetensors_path: impl AsRef<std::path::Path>,
    ) -> Result<Self> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| ModelError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let json = read(json_path.as_ref())?;
        let st = read(safetensors_path.as_ref())?;
        Model::from_bytes(&json, &st)
    }

    /// Tensor by name (validation guarantees every name the graph uses).
    pub(crate) fn tensor(&self, name: &str) -> &Tensor {
        &self.weights[name]
    }

    /// Tensor by name, if present.
    pub fn get_tensor(&self, name: &str) -> Option<&Tensor> {
        self.weights.get(name)
    }

    /// Weights serialised back to safetensors.
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        let sorted: BTreeMap<String, Tensor> = self
            .weights
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        write_safetensors(&sorted)
    }
}
