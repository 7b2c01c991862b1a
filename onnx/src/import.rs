//! ONNX graph → CryptoNAS model conversion.
//!
//! Values flowing through the ONNX graph are either constants (weights, shapes: folded at
//! import) or activations. An activation is a node of the model being built plus its logical
//! ONNX dimensions: a `Flatten`/`Reshape` to `[N, features]` only changes the logical view (the
//! model's `linear` flattens its input row-major anyway); a consumer that needs channels and
//! pixels gets an explicit `flatten` node or a precise error.

use std::collections::{BTreeMap, HashMap, HashSet};

use cryptonas_model::{InputSpec, Metadata, Model, ModelSpec, Node, Op, Shape, Tensor};
use prost::Message;
use serde::Serialize;

use crate::error::ImportError;
use crate::proto::{AttributeProto, GraphProto, ModelProto, NodeProto};
use crate::tensor::{checked_len, per_channel, Const};

/// Oldest default-domain opset read.
pub const MIN_OPSET: i64 = 9;
/// Newest default-domain opset read (ONNX 1.23, the version the conformance suite runs).
pub const MAX_OPSET: i64 = 28;
/// Largest ONNX file read (bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 31;

/// What the user tells the importer beyond the file.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Model name (`ModelSpec::name`).
    pub name: String,
    /// Overrides the input's C, H, W (needed when they are symbolic).
    pub input_shape: Option<[usize; 3]>,
    /// Per-channel mean of pixels scaled to [0, 1] (one value = every channel). Empty: 0.
    pub mean: Vec<f32>,
    /// Per-channel std (one value = every channel). Empty: 1.
    pub std: Vec<f32>,
    /// Class names (must match the output size). None: `class_0`, `class_1`, ...
    pub classes: Option<Vec<String>>,
    /// Append a `flatten` when the output is not a vector (feature maps, conformance tests).
    pub flatten_output: bool,
}

impl ImportOptions {
    /// Defaults for a model called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ImportOptions {
            name: name.into(),
            input_shape: None,
            mean: vec![],
            std: vec![],
            classes: None,
            flatten_output: false,
        }
    }
}

/// What happened to one ONNX node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Became model node(s).
    Converted,
    /// Computed at import (constants, shapes).
    Folded,
    /// Removed: an inference no-op (Identity, Dropout) or the final Softmax.
    Dropped,
    /// Cannot be imported (see `reason` and `hint`).
    Unsupported,
    /// Not analysed: an input comes from an unsupported node.
    Skipped,
}

/// One ONNX node's line of the compatibility report.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Position in the file.
    pub index: usize,
    /// ONNX node name (may be empty in the file).
    pub name: String,
    /// ONNX operator.
    pub op_type: String,
    /// Outcome.
    pub status: Status,
    /// What it became, or why not.
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Model node ids emitted for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<String>,
}

/// The result of analysing a file: per-node outcomes, and the model if every node converted.
#[derive(Debug)]
pub struct Analysis {
    /// Facts about the file.
    pub source: SourceInfo,
    /// One entry per ONNX node, in file order.
    pub nodes: Vec<NodeReport>,
    /// The converted, validated model (None when some node is unsupported).
    pub model: Option<Model>,
    /// The architecture that was built, even when incomplete: unsupported element-wise nodes
    /// are bridged so that the rest can be counted (None when that is impossible).
    pub partial_spec: Option<ModelSpec>,
    /// Whether a final Softmax was dropped (the logits are pre-softmax).
    pub softmax_dropped: bool,
    /// Notes for the user (assumptions made).
    pub notes: Vec<String>,
}

/// Facts about the ONNX file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceInfo {
    /// IR version.
    pub ir_version: i64,
    /// Default-domain opset.
    pub opset: i64,
    /// Producer (e.g. "pytorch 2.3").
    pub producer: String,
    /// Input name and dims as declared (symbolic dims as their names).
    pub input: String,
    /// Output name.
    pub output: String,
    /// ONNX nodes.
    pub node_count: usize,
    /// Initializer tensors.
    pub initializers: usize,
}

impl Analysis {
    /// The converted model, or the first reason it could not be converted.
    pub fn into_model(self) -> Result<Model, ImportError> {
        if let Some(m) = self.model {
            return Ok(m);
        }
        let bad: Vec<&NodeReport> = self
            .nodes
            .iter()
            .filter(|n| n.status == Status::Unsupported)
            .collect();
        Err(ImportError::Unsupported {
            count: bad.len(),
            first: bad.first().map_or_else(
                || "the graph output is not produced".into(),
                |n| format!("node '{}' ({}): {}", n.name, n.op_type, n.detail),
            ),
        })
    }
}

/// A per-node failure.
#[derive(Debug)]
struct NodeErr {
    reason: String,
    hint: Option<String>,
    skipped: bool,
}

fn bad(reason: impl Into<String>) -> NodeErr {
    NodeErr {
        reason: reason.into(),
        hint: None,
        skipped: false,
    }
}

impl NodeErr {
    fn hint(mut self, h: impl Into<String>) -> NodeErr {
        self.hint = Some(h.into());
        self
    }
}

type NResult<T> = std::result::Result<T, NodeErr>;

#[derive(Clone, Debug)]
struct Act {
    /// Model node id.
    node: String,
    /// The model node's shape.
    phys: Shape,
    /// Logical ONNX dims, batch first.
    dims: Vec<usize>,
    /// Pending zero padding (top, left, bottom, right) from a `Pad` node.
    pad: Option<[usize; 4]>,
}

impl Act {
    fn canonical(&self) -> bool {
        let p = self.phys;
        match self.dims.len() {
            4 => self.dims[1..] == [p.c, p.h, p.w],
            3 => self.dims[1..] == [p.c, p.h] && p.w == 1,
            2 => self.dims[1] == p.c && p.h == 1 && p.w == 1,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
enum Value {
    Const(Const),
    Act(Act),
    /// Produced by an unsupported node.
    Unknown(String),
}

/// Ops whose output has the input's shape: when unsupported, the rest of the graph can still be
/// analysed by bridging them.
const ELEMENTWISE: &[&str] = &[
    "LRN",
    "Sigmoid",
    "Tanh",
    "Gelu",
    "HardSwish",
    "HardSigmoid",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "Softplus",
    "Softsign",
    "Mish",
    "Erf",
    "ThresholdedRelu",
    "Clip",
    "Abs",
    "Exp",
    "Log",
    "InstanceNormalization",
    "LayerNormalization",
];

fn hint_for(op: &str) -> String {
    match op {
        "Sigmoid" | "Tanh" | "Gelu" | "HardSwish" | "HardSigmoid" | "LeakyRelu" | "PRelu"
        | "Elu" | "Selu" | "Celu" | "Softplus" | "Softsign" | "Mish" | "Erf"
        | "ThresholdedRelu" => format!(
            "{op}: replace it with ReLU and fine-tune (private inference has garbled circuits for \
             ReLU only)"
        ),
        "LRN" => "local response normalisation: remove it (or use BatchNormalization) and \
                  fine-tune"
            .into(),
        "Transpose" => "transposing activations (e.g. ShuffleNet's channel shuffle) is not \
                        supported: fold the permutation into the next convolution's weights"
            .into(),
        "Resize" | "Upsample" => {
            "upsampling is not supported (classification networks only)".into()
        }
        "ReduceMean" => "use GlobalAveragePool for a mean over H and W".into(),
        "LayerNormalization" | "InstanceNormalization" | "GroupNormalization" => {
            "normalising by activation statistics needs division: use BatchNormalization \
             (folded at import) and fine-tune"
                .into()
        }
        "Loop" | "If" | "Scan" => "control flow is not supported: export a static graph".into(),
        _ => format!(
            "operator {op} is not supported; see the op list in onnx/README.md (Conv, \
             BatchNormalization, Relu, Add/Sum, Concat, pools, Gemm/MatMul, Flatten/Reshape, \
             Pad, Softmax at the end, constants)"
        ),
    }
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Refuse attributes the conversion does not understand (never ignore one silently).
fn known_attrs(n: &NodeProto, known: &[&str]) -> NResult<()> {
    for a in &n.attribute {
        if !known.contains(&a.name.as_str()) {
            return Err(bad(format!(
                "attribute '{}' is not understood by the importer",
                a.name
            )));
        }
        if !a.ref_attr_name.is_empty() {
            return Err(bad(format!(
                "attribute '{}' refers to a function attribute",
                a.name
            )));
        }
    }
    Ok(())
}

/// A tensor dimension (bounded by the constant-size limit).
fn to_dim(v: i64) -> NResult<usize> {
    match usize::try_from(v) {
        Ok(u) if u <= crate::tensor::MAX_TENSOR_ELEMENTS => Ok(u),
        _ => Err(bad(format!(
            "dimension {v} is negative or exceeds {}",
            crate::tensor::MAX_TENSOR_ELEMENTS
        ))),
    }
}

/// A non-negative attribute value, bounded like the model format's parameters.
fn to_usize(v: i64, what: &str) -> NResult<usize> {
    let max = cryptonas_model::format::MAX_PARAM;
    match usize::try_from(v) {
        Ok(u) if u <= max => Ok(u),
        Ok(_) => Err(bad(format!("{what} {v} exceeds the limit {max}"))),
        Err(_) => Err(bad(format!("{what} {v} is negative"))),
    }
}

fn shape_str(s: Shape) -> String {
    format!("{}x{}x{}", s.c, s.h, s.w)
}

struct Builder {
    nodes: Vec<Node>,
    weights: BTreeMap<String, Tensor>,
    ids: HashSet<String>,
    batch: usize,
    opset: i64,
    values: HashMap<String, Value>,
    /// Names consumed by some node or the graph output.
    used: HashSet<String>,
    graph_output: String,
    softmax_dropped: bool,
}

impl Builder {
    fn fresh_id(&mut self, base: &str) -> String {
        let mut id = base.to_string();
        let mut k = 1;
        while self.ids.contains(&id) {
            k += 1;
            id = format!("{base}~{k}");
        }
        self.ids.insert(id.clone());
        id
    }

    fn emit(&mut self, base: &str, op: Op, inputs: Vec<String>) -> String {
        let id = self.fresh_id(base);
        self.nodes.push(Node {
            id: id.clone(),
            op,
            inputs,
        });
        id
    }

    fn weight(&mut self, name: String, shape: Vec<usize>, data: impl Iterator<Item = f64>) {
        self.weights.insert(
            name,
            Tensor {
                shape,
                data: data.map(|v| v as f32).collect(),
            },
        );
    }

    fn value(&self, name: &str) -> NResult<&Value> {
        self.values
            .get(name)
            .ok_or_else(|| bad(format!("input '{name}' is not defined")))
    }

    fn input(&self, n: &NodeProto, i: usize) -> NResult<Option<&Value>> {
        match n.input.get(i) {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => self.value(s).map(Some),
        }
    }

    fn need(&self, n: &NodeProto, i: usize) -> NResult<&Value> {
        self.input(n, i)?
            .ok_or_else(|| bad(format!("input {i} is missing")))
    }

    fn act(&self, n: &NodeProto, i: usize) -> NResult<Act> {
        match self.need(n, i)? {
            Value::Act(a) => Ok(a.clone()),
            Value::Const(_) => Err(bad(format!(
                "input {i} ('{}') is a constant where the importer expects data",
                n.input[i]
            ))),
            Value::Unknown(from) => Err(NodeErr {
                reason: format!("input '{}' comes from unsupported node {from}", n.input[i]),
                hint: None,
                skipped: true,
            }),
        }
    }

    fn konst(&self, n: &NodeProto, i: usize) -> NResult<Option<Const>> {
        match self.input(n, i)? {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c.clone())),
            Some(Value::Act(_)) => Err(bad(format!(
                "input {i} ('{}') must be a constant (weights computed from the image are not \
                 supported)",
                n.input[i]
            ))),
            Some(Value::Unknown(from)) => Err(NodeErr {
                reason: format!("input '{}' comes from unsupported node {from}", n.input[i]),
                hint: None,
                skipped: true,
            }),
        }
    }

    fn need_const(&self, n: &NodeProto, i: usize) -> NResult<Const> {
        self.konst(n, i)?
            .ok_or_else(|| bad(format!("input {i} is missing")))
    }

    /// An activation whose logical dims match its model node (materialising a flatten view).
    fn canonical(&mut self, a: Act, consumer: &str) -> NResult<Act> {
        if let Some(p) = a.pad {
            return Err(bad(format!(
                "zero padding {p:?} from a Pad node is only supported directly before a Conv or \
                 an AveragePool (it is folded into their padding)"
            )));
        }
        if a.canonical() {
            return Ok(a);
        }
        if a.dims.len() == 2 && a.dims[1] == a.phys.len() {
            let id = self.emit(&format!("{}.flatten", a.node), Op::Flatten, vec![a.node]);
            return Ok(Act {
                node: id,
                phys: Shape {
                    c: a.dims[1],
                    h: 1,
                    w: 1,
                },
                dims: a.dims,
                pad: None,
            });
        }
        Err(bad(format!(
            "{consumer} reads a tensor reshaped to {:?} from {}: only reshapes to [N, features] \
             are supported",
            a.dims,
            shape_str(a.phys)
        )))
    }

    fn norm_axis(axis: i64, rank: usize) -> NResult<usize> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if (0..r).contains(&a) {
            Ok(a as usize)
        } else {
            Err(bad(format!("axis {axis} out of range for rank {rank}")))
        }
    }

    /// Logical dims after a reshape of an activation (batch kept).
    fn reshape_act(&self, a: &Act, target: Vec<usize>) -> NResult<Value> {
        if a.pad.is_some() {
            return Err(bad("reshape of a zero-padded tensor"));
        }
        let total: usize = a.dims.iter().product();
        if target.iter().product::<usize>() != total {
            return Err(bad(format!(
                "reshape of {:?} to {target:?} changes the element count",
                a.dims
            )));
        }
        if target.first() != Some(&self.batch) {
            return Err(bad(format!(
                "reshape to {target:?} changes the batch dimension {}",
                self.batch
            ))
            .hint("keep the batch axis first and reshape only the features, e.g. [N, -1]"));
        }
        Ok(Value::Act(Act {
            dims: target,
            ..a.clone()
        }))
    }

    fn channel_affine(&mut self, base: &str, a: Act, scale: Vec<f64>, shift: Vec<f64>) -> Act {
        if scale.iter().all(|&s| s == 1.0) && shift.iter().all(|&s| s == 0.0) {
            return a;
        }
        let id = self.emit(base, Op::ChannelAffine, vec![a.node.clone()]);
        let c = scale.len();
        self.weight(format!("{id}.scale"), vec![c], scale.into_iter());
        self.weight(format!("{id}.shift"), vec![c], shift.into_iter());
        Act { node: id, ..a }
    }

    /// `a ∘ k` element-wise with a constant that is uniform or per channel.
    fn affine_with_const(
        &mut self,
        base: &str,
        a: Act,
        k: &Const,
        op: &str,
        const_first: bool,
    ) -> NResult<Act> {
        if k.dims.len() > a.dims.len() {
            return Err(bad(format!(
                "constant of shape {:?} broadcasts the data {:?} to a higher rank",
                k.dims, a.dims
            )));
        }
        let a = if k.len() == 1 && a.pad.is_none() {
            a
        } else {
            self.canonical(a, op)?
        };
        let c = a.phys.c;
        let v = per_channel(k, a.dims.len(), c).ok_or_else(|| {
            bad(format!(
                "{op} by a constant of shape {:?} that varies along a non-channel axis of {:?}: \
                 only scalars and per-channel constants fold into the model",
                k.dims, a.dims
            ))
        })?;
        let (scale, shift): (Vec<f64>, Vec<f64>) = match (op, const_first) {
            ("Add", _) => (vec![1.0; c], v),
            ("Sub", false) => (vec![1.0; c], v.iter().map(|x| -x).collect()),
            ("Sub", true) => (vec![-1.0; c], v),
            ("Mul", _) => (v, vec![0.0; c]),
            ("Div", false) => {
                if v.contains(&0.0) {
                    return Err(bad("division by a constant zero"));
                }
                (v.iter().map(|x| 1.0 / x).collect(), vec![0.0; c])
            }
            _ => return Err(bad(format!("{op} with the data as divisor is not linear"))),
        };
        Ok(self.channel_affine(base, a, scale, shift))
    }

    /// Symmetric spatial padding from ONNX `pads`/`auto_pad`; errors on asymmetric padding.
    fn spatial_pads(
        n: &NodeProto,
        input_hw: (usize, usize),
        k: usize,
        s: usize,
        extra: Option<[usize; 4]>,
    ) -> NResult<[usize; 4]> {
        let auto = attr_s(n, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        let mut p = match auto.as_str() {
            "NOTSET" | "" => {
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if pads.len() != 4 {
                    return Err(bad(format!("pads {pads:?} must have 4 entries (2-D)")));
                }
                let mut p = [0; 4];
                for (d, &v) in p.iter_mut().zip(&pads) {
                    *d = to_usize(v, "pad")?;
                }
                p
            }
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let one = |len: usize| {
                    let out = len.div_ceil(s);
                    ((out - 1) * s + k).saturating_sub(len)
                };
                let (th, tw) = (one(input_hw.0), one(input_hw.1));
                if auto == "SAME_UPPER" {
                    [th / 2, tw / 2, th - th / 2, tw - tw / 2]
                } else {
                    [th - th / 2, tw - tw / 2, th / 2, tw / 2]
                }
            }
            other => return Err(bad(format!("auto_pad '{other}' is not an ONNX value"))),
        };
        if let Some(e) = extra {
            for (d, v) in p.iter_mut().zip(e) {
                *d += v;
            }
        }
        Ok(p)
    }

    fn symmetric(p: [usize; 4]) -> NResult<usize> {
        if p.iter().all(|&v| v == p[0]) {
            Ok(p[0])
        } else {
            Err(bad(format!(
                "asymmetric padding [top, left, bottom, right] = {p:?}: the model format pads \
                 every side equally"
            ))
            .hint("use symmetric padding (e.g. an odd kernel with padding k/2, or auto_pad SAME with stride 1)"))
        }
    }

    fn square(n: &NodeProto, kernel: &[usize]) -> NResult<(usize, usize)> {
        if kernel.len() != 2 {
            return Err(bad(format!(
                "{}-D kernel {kernel:?}: only 2-D (N×C×H×W) is supported",
                kernel.len()
            )));
        }
        if kernel[0] != kernel[1] {
            return Err(bad(format!(
                "rectangular kernel {kernel:?}: the model format has square kernels"
            )));
        }
        let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
        if strides.len() != 2
            || strides[0] != strides[1]
            || strides[0] < 1
            || strides[0] > cryptonas_model::format::MAX_PARAM as i64
        {
            return Err(bad(format!(
                "strides {strides:?}: only equal strides >= 1 on H and W are supported"
            )));
        }
        if let Some(d) = attr_ints(n, "dilations") {
            if d.iter().any(|&v| v != 1) {
                return Err(
                    bad(format!("dilations {d:?}: only dilation 1 is supported")).hint(
                        "replace the dilated convolution with an undilated one and fine-tune",
                    ),
                );
            }
        }
        Ok((kernel[0], strides[0] as usize))
    }

    fn convert(
        &mut self,
        idx: usize,
        n: &NodeProto,
    ) -> NResult<(Vec<Value>, Status, String, Vec<String>)> {
        let base = if n.name.is_empty() {
            format!("{}_{idx}", n.op_type)
        } else {
            n.name.clone()
        };
        let op = n.op_type.as_str();
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(
                bad(format!("operator {op} of custom domain '{}'", n.domain))
                    .hint("export with standard ONNX operators only"),
            );
        }
        let before = self.nodes.len();
        if n.input.iter().all(|s| s.is_empty()) && !matches!(op, "Constant") {
            return Err(bad(format!("{op} without inputs")));
        }
        let out = |v: Value| vec![v];
        // All-constant inputs: fold where the op is pure arithmetic on tensors.
        let all_const = !n.input.is_empty()
            && n.input
                .iter()
                .filter(|s| !s.is_empty())
                .all(|s| matches!(self.values.get(s), Some(Value::Const(_))));
        let (vals, status, detail): (Vec<Value>, Status, String) = match op {
            "Constant" => {
                known_attrs(
                    n,
                    &[
                        "value",
                        "value_float",
                        "value_floats",
                        "value_int",
                        "value_ints",
                    ],
                )?;
                let c = if let Some(a) = attr(n, "value") {
                    let t =
                        a.t.as_ref()
                            .ok_or_else(|| bad("attribute 'value' has no tensor"))?;
                    Const::from_proto(t).map_err(|e| bad(format!("constant value: {e}")))?
                } else if let Some(a) = attr(n, "value_float") {
                    Const::scalar(f64::from(a.f))
                } else if let Some(a) = attr(n, "value_floats") {
                    Const {
                        dims: vec![a.floats.len()],
                        data: a.floats.iter().map(|&v| f64::from(v)).collect(),
                        integer: false,
                    }
                } else if let Some(a) = attr(n, "value_int") {
                    Const {
                        dims: vec![],
                        data: vec![a.i as f64],
                        integer: true,
                    }
                } else if let Some(a) = attr(n, "value_ints") {
                    Const {
                        dims: vec![a.ints.len()],
                        data: a.ints.iter().map(|&v| v as f64).collect(),
                        integer: true,
                    }
                } else {
                    return Err(bad("Constant without a supported value attribute (sparse and string constants are not supported)"));
                };
                (out(Value::Const(c)), Status::Folded, "constant".into())
            }
            "ConstantOfShape" => {
                known_attrs(n, &["value"])?;
                let shape = self.need_const(n, 0)?.ints().map_err(bad)?;
                let dims = shape
                    .iter()
                    .map(|&d| to_dim(d))
                    .collect::<NResult<Vec<_>>>()?;
                let len = checked_len(&dims).map_err(bad)?;
                let (v, integer) = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => {
                        let c = Const::from_proto(t).map_err(|e| bad(format!("value: {e}")))?;
                        if c.len() != 1 {
                            return Err(bad("value must have exactly one element"));
                        }
                        (c.data[0], c.integer)
                    }
                    None => (0.0, false),
                };
                let c = Const {
                    dims: dims.clone(),
                    data: vec![v; len],
                    integer,
                };
                (
                    out(Value::Const(c)),
                    Status::Folded,
                    format!("constant {dims:?} filled with {v}"),
                )
            }
            "Identity" => {
                known_attrs(n, &[])?;
                let v = self.need(n, 0)?.clone();
                (out(v), Status::Dropped, "identity".into())
            }
            "Dropout" => {
                known_attrs(n, &["ratio", "seed", "is_test"])?;
                if attr(n, "is_test").is_some_and(|a| a.i == 0) {
                    return Err(bad("Dropout in training mode (is_test = 0)"));
                }
                if let Some(t) = self.konst(n, 2)? {
                    if t.data.iter().any(|&v| v != 0.0) {
                        return Err(bad("Dropout with training_mode = true"));
                    }
                }
                if n.output
                    .get(1)
                    .is_some_and(|m| !m.is_empty() && self.used.contains(m))
                {
                    return Err(bad("the dropout mask output is used"));
                }
                let v = self.need(n, 0)?.clone();
                (
                    out(v),
                    Status::Dropped,
                    "dropout (identity at inference)".into(),
                )
            }
            "Cast" if all_const => {
                known_attrs(n, &["to", "saturate", "round_mode"])?;
                let mut c = self.need_const(n, 0)?;
                let to = attr_i(n, "to", 1);
                match to {
                    1 | 11 => c.integer = false,
                    6 | 7 | 12 | 13 => {
                        c.data.iter_mut().for_each(|v| *v = v.trunc());
                        c.integer = true;
                    }
                    _ => return Err(bad(format!("Cast to data type {to}"))),
                }
                (
                    out(Value::Const(c)),
                    Status::Folded,
                    "cast of a constant".into(),
                )
            }
            "Cast" => {
                known_attrs(n, &["to", "saturate", "round_mode"])?;
                if attr_i(n, "to", 0) != 1 {
                    return Err(bad("Cast of data to a type other than float32"));
                }
                let v = self.need(n, 0)?.clone();
                (out(v), Status::Dropped, "cast to float32 (no-op)".into())
            }
            "Shape" => {
                known_attrs(n, &["start", "end"])?;
                let dims: Vec<usize> = match self.need(n, 0)? {
                    Value::Act(a) => a.dims.clone(),
                    Value::Const(c) => c.dims.clone(),
                    Value::Unknown(f) => {
                        return Err(NodeErr {
                            reason: format!("input comes from unsupported node {f}"),
                            hint: None,
                            skipped: true,
                        })
                    }
                };
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let s = clamp(attr_i(n, "start", 0));
                let e = clamp(attr_i(n, "end", r));
                let d: Vec<f64> = dims[s..e.max(s)].iter().map(|&v| v as f64).collect();
                (
                    out(Value::Const(Const {
                        dims: vec![d.len()],
                        data: d,
                        integer: true,
                    })),
                    Status::Folded,
                    "static shape".into(),
                )
            }
            "Unsqueeze" | "Squeeze" => {
                known_attrs(n, &["axes"])?;
                let axes = match attr_ints(n, "axes") {
                    Some(a) => Some(a),
                    None => self
                        .konst(n, 1)?
                        .map(|c| c.ints())
                        .transpose()
                        .map_err(bad)?,
                };
                let (dims, v) = match self.need(n, 0)? {
                    Value::Const(c) => (c.dims.clone(), None),
                    Value::Act(a) => (a.dims.clone(), Some(a.clone())),
                    Value::Unknown(f) => {
                        return Err(NodeErr {
                            reason: format!("input comes from unsupported node {f}"),
                            hint: None,
                            skipped: true,
                        })
                    }
                };
                let new = if op == "Unsqueeze" {
                    let axes = axes.ok_or_else(|| bad("Unsqueeze without axes"))?;
                    let r = dims.len() + axes.len();
                    let mut ax: Vec<usize> = axes
                        .iter()
                        .map(|&a| Self::norm_axis(a, r))
                        .collect::<NResult<_>>()?;
                    ax.sort_unstable();
                    let mut new = dims.clone();
                    for a in ax {
                        if a > new.len() {
                            return Err(bad("Unsqueeze axes out of range"));
                        }
                        new.insert(a, 1);
                    }
                    new
                } else {
                    let ax: Vec<usize> = match axes {
                        Some(a) => a
                            .iter()
                            .map(|&a| Self::norm_axis(a, dims.len()))
                            .collect::<NResult<_>>()?,
                        None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
                    };
                    if ax.iter().any(|&a| dims[a] != 1) {
                        return Err(bad("Squeeze of an axis whose size is not 1"));
                    }
                    dims.iter()
                        .enumerate()
                        .filter(|(i, _)| !ax.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                };
                match v {
                    None => {
                        let mut c = self.need_const(n, 0)?;
                        c.dims = new;
                        (
                            out(Value::Const(c)),
                            Status::Folded,
                            "reshape of a constant".into(),
                        )
                    }
                    Some(a) => (
                        out(self.reshape_act(&a, new)?),
                        Status::Dropped,
                        "view (no data movement)".into(),
                    ),
                }
            }
            "Reshape" | "Flatten" => {
                let (src_dims, v) = match self.need(n, 0)? {
                    Value::Const(c) => (c.dims.clone(), None),
                    Value::Act(a) => (a.dims.clone(), Some(a.clone())),
                    Value::Unknown(f) => {
                        return Err(NodeErr {
                            reason: format!("input comes from unsupported node {f}"),
                            hint: None,
                            skipped: true,
                        })
                    }
                };
                let total: usize = src_dims.iter().product();
                let new: Vec<usize> = if op == "Flatten" {
                    known_attrs(n, &["axis"])?;
                    let r = src_dims.len();
                    let a = attr_i(n, "axis", 1);
                    let a = if a < 0 { a + r as i64 } else { a };
                    if !(0..=r as i64).contains(&a) {
                        return Err(bad(format!("axis {a} out of range for rank {r}")));
                    }
                    let outer: usize = src_dims[..a as usize].iter().product();
                    vec![outer, total / outer.max(1)]
                } else {
                    known_attrs(n, &["allowzero"])?;
                    let t = self.need_const(n, 1)?.ints().map_err(bad)?;
                    let allowzero = attr_i(n, "allowzero", 0) == 1;
                    let mut new = Vec::with_capacity(t.len());
                    let mut infer = None;
                    for (i, &d) in t.iter().enumerate() {
                        match d {
                            0 if !allowzero => new.push(
                                *src_dims
                                    .get(i)
                                    .ok_or_else(|| bad("shape 0 copies a missing dimension"))?,
                            ),
                            -1 if infer.is_none() => {
                                infer = Some(i);
                                new.push(1);
                            }
                            d => new.push(to_dim(d)?),
                        }
                    }
                    if let Some(i) = infer {
                        let rest: usize = new.iter().product();
                        if rest == 0 || !total.is_multiple_of(rest) {
                            return Err(bad(format!(
                                "cannot infer -1 in shape {t:?} for {total} elements"
                            )));
                        }
                        new[i] = total / rest;
                    }
                    new
                };
                match v {
                    None => {
                        let mut c = self.need_const(n, 0)?;
                        if new.iter().product::<usize>() != c.len() {
                            return Err(bad(format!("reshape of {:?} to {new:?}", c.dims)));
                        }
                        c.dims = new;
                        (
                            out(Value::Const(c)),
                            Status::Folded,
                            "reshape of a constant".into(),
                        )
                    }
                    Some(a) => (
                        out(self.reshape_act(&a, new.clone())?),
                        Status::Dropped,
                        format!("view as {new:?} (no data movement)"),
                    ),
                }
            }
            "Add" | "Sub" | "Mul" | "Div" | "Sum" if all_const => {
                known_attrs(n, &[])?;
                let mut acc = self.need_const(n, 0)?;
                for i in 1..n.input.len() {
                    let b = self.need_const(n, i)?;
                    acc = match op {
                        "Add" | "Sum" => acc.zip(&b, |x, y| x + y),
                        "Sub" => acc.zip(&b, |x, y| x - y),
                        "Mul" => acc.zip(&b, |x, y| x * y),
                        _ => acc.zip(&b, |x, y| {
                            if acc_is_int(x, y) {
                                (x / y).trunc()
                            } else {
                                x / y
                            }
                        }),
                    }
                    .map_err(bad)?;
                }
                if acc.data.iter().any(|v| !v.is_finite()) {
                    return Err(bad("constant folding produced a non-finite value"));
                }
                (
                    out(Value::Const(acc)),
                    Status::Folded,
                    "constant arithmetic".into(),
                )
            }
            "Sqrt" | "Reciprocal" | "Neg" if all_const => {
                known_attrs(n, &[])?;
                let mut c = self.need_const(n, 0)?;
                for v in &mut c.data {
                    *v = match op {
                        "Sqrt" => v.sqrt(),
                        "Reciprocal" => 1.0 / *v,
                        _ => -*v,
                    };
                }
                if c.data.iter().any(|v| !v.is_finite()) {
                    return Err(bad("constant folding produced a non-finite value"));
                }
                (
                    out(Value::Const(c)),
                    Status::Folded,
                    "constant arithmetic".into(),
                )
            }
            "Neg" => {
                known_attrs(n, &[])?;
                let a = self.act(n, 0)?;
                let a = self.affine_with_const(&base, a, &Const::scalar(-1.0), "Mul", false)?;
                (
                    out(Value::Act(a)),
                    Status::Converted,
                    "channel_affine (scale -1)".into(),
                )
            }
            "Add" | "Sub" | "Mul" | "Div" | "Sum" => {
                known_attrs(n, &[])?;
                let ins: Vec<Value> = (0..n.input.len())
                    .map(|i| self.need(n, i).cloned())
                    .collect::<NResult<_>>()?;
                if let Some(Value::Unknown(f)) = ins.iter().find(|v| matches!(v, Value::Unknown(_)))
                {
                    return Err(NodeErr {
                        reason: format!("an input comes from unsupported node {f}"),
                        hint: None,
                        skipped: true,
                    });
                }
                let acts: Vec<&Act> = ins
                    .iter()
                    .filter_map(|v| if let Value::Act(a) = v { Some(a) } else { None })
                    .collect();
                if ins.len() == 1 {
                    (
                        out(ins[0].clone()),
                        Status::Dropped,
                        "sum of one input".into(),
                    )
                } else if ins.len() == 2 && acts.len() == 1 {
                    let (a, k, const_first) = match (&ins[0], &ins[1]) {
                        (Value::Act(a), Value::Const(k)) => (a.clone(), k, false),
                        (Value::Const(k), Value::Act(a)) => (a.clone(), k, true),
                        _ => unreachable!("one act, one const"),
                    };
                    let o = if op == "Sum" { "Add" } else { op };
                    let r = self.affine_with_const(&base, a, k, o, const_first)?;
                    let d = if r.node == base || self.nodes.len() > before {
                        "channel_affine"
                    } else {
                        "no-op (identity constant)"
                    };
                    (out(Value::Act(r)), Status::Converted, d.into())
                } else if acts.len() == ins.len() && matches!(op, "Add" | "Sum" | "Sub") {
                    let first = acts[0];
                    for a in &acts[1..] {
                        if a.dims != first.dims || a.phys != first.phys {
                            return Err(bad(format!(
                                "{op} of tensors {:?} and {:?}: only equal shapes are supported (no broadcasting between activations)",
                                first.dims, a.dims
                            )));
                        }
                    }
                    if acts.iter().any(|a| a.pad.is_some()) {
                        return Err(bad("Add of a zero-padded tensor"));
                    }
                    let mut inputs: Vec<String> = acts.iter().map(|a| a.node.clone()).collect();
                    if op == "Sub" {
                        let neg = self.channel_affine(
                            &format!("{base}.neg"),
                            acts[1].clone(),
                            vec![-1.0; first.phys.c],
                            vec![0.0; first.phys.c],
                        );
                        inputs[1] = neg.node;
                    }
                    let id = self.emit(&base, Op::Add, inputs);
                    (
                        out(Value::Act(Act {
                            node: id,
                            ..first.clone()
                        })),
                        Status::Converted,
                        "add".into(),
                    )
                } else if acts.len() >= 2 {
                    return Err(bad(format!("{op} of two activations is not linear (private inference computes products of data only in garbled circuits)"))
                        .hint("only constants may scale activations"));
                } else {
                    return Err(bad(format!(
                        "{op} mixing several activations and constants"
                    )));
                }
            }
            "Relu" => {
                known_attrs(n, &[])?;
                let a = self.act(n, 0)?;
                if a.pad.is_some() {
                    return Err(bad("Relu of a zero-padded tensor"));
                }
                let id = self.emit(&base, Op::Relu, vec![a.node.clone()]);
                (
                    out(Value::Act(Act { node: id, ..a })),
                    Status::Converted,
                    "relu".into(),
                )
            }
            "Clip" => {
                known_attrs(n, &["min", "max"])?;
                let (lo, hi) = if self.opset < 11 {
                    (
                        attr_f(n, "min", f32::NEG_INFINITY),
                        attr_f(n, "max", f32::INFINITY),
                    )
                } else {
                    let one = |c: Option<Const>, d: f32| -> NResult<f32> {
                        match c {
                            None => Ok(d),
                            Some(c) if c.len() == 1 => Ok(c.data[0] as f32),
                            Some(c) => Err(bad(format!(
                                "Clip bound of shape {:?} (must be a scalar)",
                                c.dims
                            ))),
                        }
                    };
                    (
                        one(self.konst(n, 1)?, f32::NEG_INFINITY)?,
                        one(self.konst(n, 2)?, f32::INFINITY)?,
                    )
                };
                let a = self.act(n, 0)?;
                if a.pad.is_some() {
                    return Err(bad("Clip of a zero-padded tensor"));
                }
                if lo.is_nan() || hi.is_nan() {
                    return Err(bad("Clip bound is NaN"));
                }
                if lo == 0.0 && hi == f32::INFINITY {
                    let id = self.emit(&base, Op::Relu, vec![a.node.clone()]);
                    (
                        out(Value::Act(Act { node: id, ..a })),
                        Status::Converted,
                        "relu (Clip with min 0, no max)".into(),
                    )
                } else if lo > hi {
                    // ONNX: every element becomes max.
                    return Err(bad(format!("Clip with min {lo} > max {hi}")));
                } else {
                    let id = self.emit(&base, Op::Clip { min: lo, max: hi }, vec![a.node.clone()]);
                    let private = if lo == 0.0 && hi.is_finite() && hi > 0.0 {
                        "private inference: a garbled clipped ReLU"
                    } else {
                        "f32 engine only: private inference takes Clip(0, c) with c > 0; replace it with ReLU and fine-tune"
                    };
                    (
                        out(Value::Act(Act { node: id, ..a })),
                        Status::Converted,
                        format!("clip [{lo}, {hi}] ({private})"),
                    )
                }
            }
            "BatchNormalization" => {
                known_attrs(
                    n,
                    &[
                        "epsilon",
                        "momentum",
                        "spatial",
                        "training_mode",
                        "is_test",
                        "consumed_inputs",
                    ],
                )?;
                if attr_i(n, "training_mode", 0) != 0 {
                    return Err(
                        bad("BatchNormalization in training mode (batch statistics)")
                            .hint("export the model in eval mode (model.eval())"),
                    );
                }
                if attr_i(n, "spatial", 1) != 1 {
                    return Err(bad("BatchNormalization with spatial = 0"));
                }
                if n.output
                    .iter()
                    .skip(1)
                    .any(|o| !o.is_empty() && self.used.contains(o))
                {
                    return Err(
                        bad("the running statistics outputs are used (training mode)")
                            .hint("export the model in eval mode"),
                    );
                }
                let eps = attr_f(n, "epsilon", 1e-5);
                let a = self.act(n, 0)?;
                let a = self.canonical(a, "BatchNormalization")?;
                let c = a.phys.c;
                let mut ts = Vec::new();
                for i in 1..5 {
                    let t = self.need_const(n, i)?;
                    if t.len() != c {
                        return Err(bad(format!(
                            "parameter {i} has {} values for {c} channels",
                            t.len()
                        )));
                    }
                    ts.push(t.data);
                }
                if ts[3].iter().any(|&v| v + f64::from(eps) <= 0.0) {
                    return Err(bad("variance + epsilon must be > 0"));
                }
                let id = if eps > 0.0 && eps.is_finite() {
                    let id = self.emit(&base, Op::BatchNorm { eps }, vec![a.node.clone()]);
                    for (name, t) in ["weight", "bias", "running_mean", "running_var"]
                        .iter()
                        .zip(ts)
                    {
                        self.weight(format!("{id}.{name}"), vec![c], t.into_iter());
                    }
                    id
                } else {
                    let scale: Vec<f64> = (0..c)
                        .map(|i| ts[0][i] / (ts[3][i] + f64::from(eps)).sqrt())
                        .collect();
                    let shift: Vec<f64> = (0..c).map(|i| ts[1][i] - ts[2][i] * scale[i]).collect();
                    let r = self.channel_affine(&base, a.clone(), scale, shift);
                    r.node
                };
                (
                    out(Value::Act(Act { node: id, ..a })),
                    Status::Converted,
                    format!("batch_norm (eps {eps})"),
                )
            }
            "Conv" => {
                known_attrs(
                    n,
                    &[
                        "auto_pad",
                        "dilations",
                        "group",
                        "kernel_shape",
                        "pads",
                        "strides",
                    ],
                )?;
                let a = self.act(n, 0)?;
                let pending = a.pad;
                let a = self.canonical(Act { pad: None, ..a }, "Conv")?;
                if a.dims.len() != 4 {
                    return Err(bad(format!(
                        "{}-D convolution: only 2-D (N×C×H×W) is supported",
                        a.dims.len().saturating_sub(2)
                    )));
                }
                let w = self.need_const(n, 1)?;
                if w.dims.len() != 4 {
                    return Err(bad(format!(
                        "weight of shape {:?} (expected O×C/g×kH×kW)",
                        w.dims
                    )));
                }
                let kernel = w.dims[2..].to_vec();
                if let Some(ks) = attr_ints(n, "kernel_shape") {
                    if ks.iter().map(|&v| v as usize).ne(kernel.iter().copied()) {
                        return Err(bad(format!(
                            "kernel_shape {ks:?} disagrees with the weight {:?}",
                            w.dims
                        )));
                    }
                }
                let (k, s) = Self::square(n, &kernel)?;
                let p =
                    Self::symmetric(Self::spatial_pads(n, (a.phys.h, a.phys.w), k, s, pending)?)?;
                let g = to_usize(attr_i(n, "group", 1), "group")?;
                let (o, cg) = (w.dims[0], w.dims[1]);
                if g == 0 || a.phys.c % g != 0 || o % g != 0 || cg * g != a.phys.c {
                    return Err(bad(format!(
                        "group {g} with weight {:?} does not match {} input channels",
                        w.dims, a.phys.c
                    )));
                }
                if a.phys.h + 2 * p < k || a.phys.w + 2 * p < k {
                    return Err(bad(format!(
                        "kernel {k} does not fit input {} with padding {p}",
                        shape_str(a.phys)
                    )));
                }
                let bias = self.konst(n, 2)?;
                if let Some(b) = &bias {
                    if b.len() != o {
                        return Err(bad(format!(
                            "bias has {} values for {o} output channels",
                            b.len()
                        )));
                    }
                }
                let id = self.emit(
                    &base,
                    Op::Conv2d {
                        out_channels: o,
                        kernel: k,
                        stride: s,
                        padding: p,
                        groups: g,
                        bias: bias.is_some(),
                    },
                    vec![a.node.clone()],
                );
                self.weight(format!("{id}.weight"), w.dims.clone(), w.data.into_iter());
                if let Some(b) = bias {
                    self.weight(format!("{id}.bias"), vec![o], b.data.into_iter());
                }
                let oh = (a.phys.h + 2 * p - k) / s + 1;
                let ow = (a.phys.w + 2 * p - k) / s + 1;
                let phys = Shape { c: o, h: oh, w: ow };
                (
                    out(Value::Act(Act {
                        node: id,
                        phys,
                        dims: vec![self.batch, o, oh, ow],
                        pad: None,
                    })),
                    Status::Converted,
                    format!(
                        "conv2d {k}x{k} stride {s} padding {p} groups {g} -> {}",
                        shape_str(phys)
                    ),
                )
            }
            "MaxPool" | "AveragePool" => {
                known_attrs(
                    n,
                    &[
                        "auto_pad",
                        "ceil_mode",
                        "dilations",
                        "kernel_shape",
                        "pads",
                        "strides",
                        "storage_order",
                        "count_include_pad",
                    ],
                )?;
                if n.output
                    .get(1)
                    .is_some_and(|m| !m.is_empty() && self.used.contains(m))
                {
                    return Err(bad("the MaxPool indices output is used"));
                }
                let a = self.act(n, 0)?;
                let pending = a.pad;
                if pending.is_some() && op == "MaxPool" {
                    return Err(bad("MaxPool after a zero Pad (zeros can win the maximum; MaxPool's own padding never does)").hint("use MaxPool's pads attribute instead of a Pad node"));
                }
                let mut cip = attr_i(n, "count_include_pad", 0) == 1;
                if pending.is_some() {
                    // Zeros of a Pad node are real cells for the average.
                    let own = attr_ints(n, "pads").is_some_and(|p| p.iter().any(|&v| v != 0));
                    if own && !cip {
                        return Err(bad(
                            "AveragePool with its own pads (not counted) after a zero Pad",
                        ));
                    }
                    cip = true;
                }
                let a = self.canonical(Act { pad: None, ..a }, op)?;
                if a.dims.len() != 4 {
                    return Err(bad(format!(
                        "{}-D pooling: only 2-D (N×C×H×W) is supported",
                        a.dims.len().saturating_sub(2)
                    )));
                }
                let kernel: Vec<usize> = attr_ints(n, "kernel_shape")
                    .ok_or_else(|| bad("kernel_shape missing"))?
                    .iter()
                    .map(|&v| to_usize(v, "kernel"))
                    .collect::<NResult<_>>()?;
                let (k, s) = Self::square(n, &kernel)?;
                let pads = Self::spatial_pads(n, (a.phys.h, a.phys.w), k, s, pending)?;
                // Pools may pad more at the end than at the start (SAME_UPPER, Caffe's ceil
                // mode), but alike on H and W.
                if pads[0] != pads[1] || pads[2] != pads[3] {
                    return Err(bad(format!(
                        "padding [top, left, bottom, right] = {pads:?} differs between H and W"
                    )));
                }
                let (p, pe) = (pads[0], pads[2]);
                if k == 0 || p >= k || pe >= k {
                    return Err(bad(format!(
                        "padding {pads:?} must be smaller than the kernel {k}"
                    )));
                }
                if a.phys.h + p + pe < k || a.phys.w + p + pe < k {
                    return Err(bad(format!(
                        "window {k} does not fit input {} with padding {pads:?}",
                        shape_str(a.phys)
                    )));
                }
                let oh = (a.phys.h + p + pe - k) / s + 1;
                let ow = (a.phys.w + p + pe - k) / s + 1;
                if attr_i(n, "ceil_mode", 0) == 1 {
                    let ch = (a.phys.h + p + pe - k).div_ceil(s) + 1;
                    let cw = (a.phys.w + p + pe - k).div_ceil(s) + 1;
                    if (ch, cw) != (oh, ow) {
                        return Err(bad(format!("ceil_mode = 1 gives {ch}x{cw} where the model format's floor rule gives {oh}x{ow}"))
                            .hint("export with ceil_mode = False (or pad the end so that the windows fit exactly)"));
                    }
                }
                let pd = if p == pe {
                    format!("padding {p}")
                } else {
                    format!("padding {p} before, {pe} after")
                };
                let (mop, d) = if op == "MaxPool" {
                    (
                        Op::MaxPool { kernel: k, stride: s, padding: p, padding_end: pe },
                        format!("max_pool {k}x{k} stride {s} {pd} (private inference: a garbled max per window, ReLU fused when adjacent)"),
                    )
                } else {
                    let counted = match (p + pe > 0, cip) {
                        (false, _) => "",
                        (true, true) => " (padding counted)",
                        (true, false) => " (padding not counted)",
                    };
                    (
                        Op::AvgPool {
                            kernel: k,
                            stride: s,
                            padding: p,
                            padding_end: pe,
                            count_include_pad: cip,
                        },
                        format!("avg_pool {k}x{k} stride {s} {pd}{counted}"),
                    )
                };
                let id = self.emit(&base, mop, vec![a.node.clone()]);
                let phys = Shape {
                    c: a.phys.c,
                    h: oh,
                    w: ow,
                };
                (
                    out(Value::Act(Act {
                        node: id,
                        phys,
                        dims: vec![self.batch, phys.c, oh, ow],
                        pad: None,
                    })),
                    Status::Converted,
                    d,
                )
            }
            "GlobalAveragePool" | "GlobalMaxPool" => {
                known_attrs(n, &[])?;
                let a = self.act(n, 0)?;
                let a = self.canonical(a, op)?;
                if a.dims.len() != 4 {
                    return Err(bad(format!(
                        "rank-{} input: only N×C×H×W is supported",
                        a.dims.len()
                    )));
                }
                let s = a.phys;
                let (mop, d) = if op == "GlobalAveragePool" {
                    (Op::GlobalAvgPool, "global_avg_pool".to_string())
                } else if s.h == s.w {
                    (
                        Op::MaxPool {
                            kernel: s.h,
                            stride: 1,
                            padding: 0,
                            padding_end: 0,
                        },
                        format!("max_pool {0}x{0} (global; private inference: a garbled max per window of at most {1} cells)", s.h, cryptonas_model::MAX_POOL_WINDOW),
                    )
                } else {
                    return Err(bad(format!(
                        "GlobalMaxPool over a non-square {}x{} map",
                        s.h, s.w
                    )));
                };
                let id = self.emit(&base, mop, vec![a.node.clone()]);
                let phys = Shape { c: s.c, h: 1, w: 1 };
                (
                    out(Value::Act(Act {
                        node: id,
                        phys,
                        dims: vec![self.batch, s.c, 1, 1],
                        pad: None,
                    })),
                    Status::Converted,
                    d,
                )
            }
            "Concat" if all_const => {
                return Err(bad("Concat of constants is not supported"));
            }
            "Concat" => {
                known_attrs(n, &["axis"])?;
                let mut acts = Vec::new();
                for i in 0..n.input.len() {
                    let a = self.act(n, i)?;
                    acts.push(self.canonical(a, "Concat")?);
                }
                let r = acts[0].dims.len();
                let axis = Self::norm_axis(attr_i(n, "axis", 1), r)?;
                if axis != 1 {
                    return Err(bad(format!(
                        "Concat on axis {axis}: only the channel axis (1) is supported"
                    )));
                }
                let f = acts[0].phys;
                for a in &acts {
                    if a.dims.len() != r || a.phys.h != f.h || a.phys.w != f.w {
                        return Err(bad(format!(
                            "Concat of {:?} and {:?}",
                            acts[0].dims, a.dims
                        )));
                    }
                }
                let c: usize = acts.iter().map(|a| a.phys.c).sum();
                let id = self.emit(
                    &base,
                    Op::Concat,
                    acts.iter().map(|a| a.node.clone()).collect(),
                );
                let mut dims = acts[0].dims.clone();
                dims[1] = c;
                (
                    out(Value::Act(Act {
                        node: id,
                        phys: Shape { c, ..f },
                        dims,
                        pad: None,
                    })),
                    Status::Converted,
                    format!("concat of {} inputs -> {c} channels", acts.len()),
                )
            }
            "Gemm" | "MatMul" => {
                if op == "Gemm" {
                    known_attrs(n, &["alpha", "beta", "transA", "transB", "broadcast"])?;
                    if attr_i(n, "transA", 0) != 0 {
                        return Err(bad("Gemm with transA = 1 (the data would be transposed)"));
                    }
                } else {
                    known_attrs(n, &[])?;
                }
                let a = self.act(n, 0)?;
                if a.pad.is_some() {
                    return Err(bad("linear layer over a zero-padded tensor"));
                }
                if a.dims.len() != 2 {
                    return Err(bad(format!(
                        "{op} over a rank-{} tensor {:?}: only [N, features] inputs are supported",
                        a.dims.len(),
                        a.dims
                    ))
                    .hint("flatten to [N, features] first"));
                }
                let kin = a.dims[1];
                let b = self.need_const(n, 1)?;
                if b.dims.len() != 2 {
                    return Err(bad(format!(
                        "weight of shape {:?} (expected rank 2)",
                        b.dims
                    )));
                }
                let trans_b = op == "Gemm" && attr_i(n, "transB", 0) == 1;
                let (kb, m) = if trans_b {
                    (b.dims[1], b.dims[0])
                } else {
                    (b.dims[0], b.dims[1])
                };
                if kb != kin {
                    return Err(bad(format!(
                        "weight {:?} does not match {kin} input features",
                        b.dims
                    )));
                }
                let alpha = f64::from(if op == "Gemm" {
                    attr_f(n, "alpha", 1.0)
                } else {
                    1.0
                });
                let beta = f64::from(if op == "Gemm" {
                    attr_f(n, "beta", 1.0)
                } else {
                    1.0
                });
                let mut w = vec![0.0; m * kin];
                for o in 0..m {
                    for i in 0..kin {
                        w[o * kin + i] = alpha
                            * if trans_b {
                                b.data[o * kin + i]
                            } else {
                                b.data[i * m + o]
                            };
                    }
                }
                let bias = match if op == "Gemm" {
                    self.konst(n, 2)?
                } else {
                    None
                } {
                    None => vec![0.0; m],
                    Some(c) => {
                        let v = per_channel(&c, 2, m).ok_or_else(|| {
                            bad(format!(
                                "bias of shape {:?} does not broadcast per output feature ({m})",
                                c.dims
                            ))
                        })?;
                        v.iter().map(|x| beta * x).collect()
                    }
                };
                let id = self.emit(&base, Op::Linear { out_features: m }, vec![a.node.clone()]);
                self.weight(format!("{id}.weight"), vec![m, a.phys.len()], w.into_iter());
                self.weight(format!("{id}.bias"), vec![m], bias.into_iter());
                let phys = Shape { c: m, h: 1, w: 1 };
                (
                    out(Value::Act(Act {
                        node: id,
                        phys,
                        dims: vec![self.batch, m],
                        pad: None,
                    })),
                    Status::Converted,
                    format!("linear {kin} -> {m}"),
                )
            }
            "Pad" => {
                known_attrs(n, &["mode", "pads", "value"])?;
                let mode = attr_s(n, "mode").unwrap_or_else(|| "constant".into());
                if mode != "constant" {
                    return Err(bad(format!(
                        "Pad mode '{mode}': only zero (constant) padding is supported"
                    )));
                }
                let (pads, value) = if self.opset < 11 {
                    (
                        attr_ints(n, "pads").ok_or_else(|| bad("pads missing"))?,
                        f64::from(attr_f(n, "value", 0.0)),
                    )
                } else {
                    let p = self.need_const(n, 1)?.ints().map_err(bad)?;
                    let v = self
                        .konst(n, 2)?
                        .map_or(0.0, |c| c.data.first().copied().unwrap_or(0.0));
                    (p, v)
                };
                if value != 0.0 {
                    return Err(bad(format!(
                        "Pad with value {value}: only zeros are supported"
                    )));
                }
                let a = self.act(n, 0)?;
                let r = a.dims.len();
                let axes: Vec<usize> = match self.konst(n, 3)? {
                    None => (0..r).collect(),
                    Some(c) => c
                        .ints()
                        .map_err(bad)?
                        .iter()
                        .map(|&x| Self::norm_axis(x, r))
                        .collect::<NResult<_>>()?,
                };
                if pads.len() != 2 * axes.len() {
                    return Err(bad(format!("pads {pads:?} for {} axes", axes.len())));
                }
                let mut begin = vec![0i64; r];
                let mut end = vec![0i64; r];
                for (j, &ax) in axes.iter().enumerate() {
                    begin[ax] = pads[j];
                    end[ax] = pads[j + axes.len()];
                }
                if begin.iter().chain(&end).any(|&v| v < 0) {
                    return Err(bad("negative pads (cropping) are not supported"));
                }
                if begin
                    .iter()
                    .chain(&end)
                    .any(|&v| v > cryptonas_model::format::MAX_PARAM as i64)
                {
                    return Err(bad(format!("pads {pads:?} exceed the limit")));
                }
                if r != 4 || begin[..2].iter().chain(&end[..2]).any(|&v| v != 0) {
                    return Err(bad(format!("Pad {pads:?} of a rank-{r} tensor: only spatial padding of N×C×H×W is supported")));
                }
                let a = self.canonical(a, "Pad")?;
                let add = [
                    begin[2] as usize,
                    begin[3] as usize,
                    end[2] as usize,
                    end[3] as usize,
                ];
                let prev = a.pad.unwrap_or([0; 4]);
                let p = [
                    prev[0] + add[0],
                    prev[1] + add[1],
                    prev[2] + add[2],
                    prev[3] + add[3],
                ];
                let pad = if p == [0; 4] { None } else { Some(p) };
                (
                    out(Value::Act(Act { pad, ..a })),
                    Status::Folded,
                    format!("zero padding {p:?} folded into the next layer"),
                )
            }
            "Transpose" => {
                known_attrs(n, &["perm"])?;
                let a = self.act(n, 0)?;
                if a.pad.is_some() {
                    return Err(bad("Transpose of a zero-padded tensor"));
                }
                let r = a.dims.len();
                let perm: Vec<usize> = match attr_ints(n, "perm") {
                    Some(p) => p
                        .iter()
                        .map(|&x| Self::norm_axis(x, r))
                        .collect::<NResult<_>>()?,
                    None => (0..r).rev().collect(),
                };
                let mut seen = vec![false; r];
                if perm.len() != r || perm.iter().any(|&x| std::mem::replace(&mut seen[x], true)) {
                    return Err(bad(format!(
                        "perm {perm:?} is not a permutation of {r} axes"
                    )));
                }
                if perm.iter().enumerate().all(|(i, &x)| i == x) {
                    (
                        out(Value::Act(a)),
                        Status::Dropped,
                        "identity permutation".into(),
                    )
                } else {
                    // Only channel factors may move (ShuffleNet's channel shuffle): the batch and
                    // the two spatial axes stay, and the channel axes multiply to C.
                    let p = a.phys;
                    let f = &a.dims[1..r.saturating_sub(2).max(1)];
                    if r < 4
                        || perm[0] != 0
                        || perm[r - 2] != r - 2
                        || perm[r - 1] != r - 1
                        || a.dims[r - 2] != p.h
                        || a.dims[r - 1] != p.w
                        || f.iter().product::<usize>() != p.c
                    {
                        return Err(bad(format!(
                            "Transpose {perm:?} of {:?} moves the batch or spatial axes: only permutations of channel groups are supported",
                            a.dims
                        ))
                        .hint(hint_for("Transpose")));
                    }
                    let c = p.c;
                    if c.checked_mul(c)
                        .is_none_or(|v| v > crate::tensor::MAX_TENSOR_ELEMENTS)
                    {
                        return Err(bad(format!(
                            "channel permutation of {c} channels is too large"
                        )));
                    }
                    let nf: Vec<usize> = perm[1..r - 2].iter().map(|&x| f[x - 1]).collect();
                    // New channel q (row-major over nf) reads old channel src(q).
                    let mut w = vec![0.0f64; c * c];
                    let mut digits = vec![0usize; nf.len()];
                    for q in 0..c {
                        let mut rest = q;
                        for i in (0..nf.len()).rev() {
                            digits[i] = rest % nf[i];
                            rest /= nf[i];
                        }
                        let mut old = vec![0usize; f.len()];
                        for (i, &d) in digits.iter().enumerate() {
                            old[perm[1 + i] - 1] = d;
                        }
                        let src = old.iter().zip(f).fold(0, |acc, (&d, &n)| acc * n + d);
                        w[q * c + src] = 1.0;
                    }
                    let id = self.emit(
                        &base,
                        Op::Conv2d {
                            out_channels: c,
                            kernel: 1,
                            stride: 1,
                            padding: 0,
                            groups: 1,
                            bias: false,
                        },
                        vec![a.node.clone()],
                    );
                    self.weight(format!("{id}.weight"), vec![c, c, 1, 1], w.into_iter());
                    let mut dims = vec![a.dims[0]];
                    dims.extend(&nf);
                    dims.extend([p.h, p.w]);
                    (
                        out(Value::Act(Act { node: id, phys: p, dims, pad: None })),
                        Status::Converted,
                        format!("channel permutation {perm:?} as a 1x1 conv2d with one-hot weights ({c}x{c}, exact)"),
                    )
                }
            }
            "Softmax" => {
                known_attrs(n, &["axis"])?;
                let a = self.act(n, 0)?;
                let is_output = n.output.first().is_some_and(|o| *o == self.graph_output);
                if !is_output {
                    return Err(bad("Softmax inside the network: only a final Softmax is dropped (the client applies it to the logits)"));
                }
                let r = a.dims.len();
                let default = if self.opset < 13 { 1 } else { -1 };
                let axis = Self::norm_axis(attr_i(n, "axis", default), r)?;
                let whole = if self.opset < 13 {
                    axis >= 1 && a.dims[1..axis].iter().all(|&d| d == 1)
                } else {
                    axis >= 1
                        && a.dims[1..]
                            .iter()
                            .enumerate()
                            .all(|(i, &d)| i + 1 == axis || d == 1)
                };
                if !whole {
                    return Err(bad(format!(
                        "Softmax over axis {axis} of {:?} does not cover the class vector",
                        a.dims
                    )));
                }
                self.softmax_dropped = true;
                (
                    out(Value::Act(a)),
                    Status::Dropped,
                    "final softmax dropped (the client computes it from the logits)".into(),
                )
            }
            _ => return Err(bad(format!("operator {op} is not supported")).hint(hint_for(op))),
        };
        let emitted = self.nodes[before..].iter().map(|n| n.id.clone()).collect();
        Ok((vals, status, detail, emitted))
    }
}

fn acc_is_int(x: f64, y: f64) -> bool {
    x.fract() == 0.0 && y.fract() == 0.0
}

fn dim_str(d: &crate::proto::Dimension) -> String {
    match (&d.dim_value, &d.dim_param) {
        (Some(v), _) => v.to_string(),
        (None, Some(p)) if !p.is_empty() => p.clone(),
        _ => "?".into(),
    }
}

/// Topological order of the nodes; errors name the node with a dangling input or on a cycle.
fn topo_order(g: &GraphProto, available: &HashSet<String>) -> Result<Vec<usize>, ImportError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if available.contains(o) || producer.insert(o, i).is_some() {
                return Err(ImportError::Model(format!(
                    "node '{}' ({}) redefines value '{o}'",
                    n.name, n.op_type
                )));
            }
        }
    }
    let n = g.node.len();
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in g.node.iter().enumerate() {
        for inp in node.input.iter().filter(|s| !s.is_empty()) {
            match producer.get(inp.as_str()) {
                Some(&j) => {
                    indeg[i] += 1;
                    users[j].push(i);
                }
                None if available.contains(inp) => {}
                None => {
                    return Err(ImportError::Model(format!(
                        "node '{}' ({}) reads '{inp}', which no node, input or initializer \
                         defines (dangling input)",
                        node.name, node.op_type
                    )))
                }
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
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
        let i = (0..n).find(|&i| indeg[i] > 0).unwrap_or(0);
        return Err(ImportError::Model(format!(
            "the graph has a cycle through node '{}' ({})",
            g.node[i].name, g.node[i].op_type
        )));
    }
    Ok(order)
}

/// Analyse an ONNX file's bytes: per-node outcomes and, when everything converts, the model.
/// Errors are reserved for files that cannot be analysed at all (malformed, no graph, bad
/// opset, bad input declaration, bad initializer, cycles, dangling inputs).
pub fn analyze(bytes: &[u8], opts: &ImportOptions) -> Result<Analysis, ImportError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge {
            what: "the ONNX file".into(),
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    let m = ModelProto::decode(bytes).map_err(|e| ImportError::Malformed {
        detail: e.to_string(),
    })?;
    let g = m
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Model("the file has no graph (is it an ONNX model?)".into()))?;
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| {
            ImportError::Model("the model imports no default-domain (ai.onnx) opset".into())
        })?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(ImportError::Model(format!(
            "opset {opset} is outside the supported range {MIN_OPSET}..={MAX_OPSET}; convert \
             it with onnx.version_converter.convert_version(model, 17)"
        )));
    }
    if !m.functions.is_empty() {
        return Err(ImportError::Model("model-local functions are not supported; inline them (onnx.inliner.inline_local_functions)".into()));
    }
    if !g.sparse_initializer.is_empty() {
        return Err(ImportError::Model(
            "sparse initializers are not supported; store the weights densely".into(),
        ));
    }
    let mut values: HashMap<String, Value> = HashMap::new();
    for t in &g.initializer {
        let c = Const::from_proto(t)
            .map_err(|e| ImportError::Model(format!("initializer '{}': {e}", t.name)))?;
        values.insert(t.name.clone(), Value::Const(c));
    }
    let inputs: Vec<&crate::proto::ValueInfoProto> = g
        .input
        .iter()
        .filter(|i| !values.contains_key(&i.name))
        .collect();
    if inputs.len() != 1 {
        return Err(ImportError::Model(format!(
            "the graph has {} data inputs ({}); exactly one image input is supported",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let inp = inputs[0];
    let tt = inp
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| ImportError::Model(format!("input '{}' is not a tensor", inp.name)))?;
    if tt.elem_type != 1 {
        return Err(ImportError::Model(format!(
            "input '{}' has element type {} (only float32 images are supported)",
            inp.name, tt.elem_type
        )));
    }
    let dims = &tt
        .shape
        .as_ref()
        .ok_or_else(|| {
            ImportError::Model(format!(
                "input '{}' declares no shape; give --input-shape C,H,W",
                inp.name
            ))
        })?
        .dim;
    let declared = format!(
        "{} [{}]",
        inp.name,
        dims.iter().map(dim_str).collect::<Vec<_>>().join(", ")
    );
    let mut notes = Vec::new();
    if !(2..=4).contains(&dims.len()) {
        return Err(ImportError::Model(format!(
            "input {declared} has rank {}: expected N×C×H×W (or N×C×L, N×F)",
            dims.len()
        )));
    }
    let batch = match dims[0].dim_value {
        Some(v) if v >= 1 => v as usize,
        Some(v) => {
            return Err(ImportError::Model(format!(
                "input {declared}: batch dimension {v}"
            )))
        }
        None => {
            notes.push(format!(
                "the batch dimension of {declared} is symbolic: the model is evaluated per image (batch 1)"
            ));
            1
        }
    };
    let mut chw = Vec::new();
    for (i, d) in dims.iter().enumerate().skip(1) {
        match d.dim_value {
            Some(v) if v >= 1 && v <= cryptonas_model::format::MAX_PARAM as i64 => chw.push(v as usize),
            _ if opts.input_shape.is_some() => chw.push(0),
            _ => {
                return Err(ImportError::Model(format!(
                    "input {declared}: dimension {i} is '{}' (dynamic or out of range); fix the input shape with --input-shape C,H,W",
                    dim_str(d)
                )))
            }
        }
    }
    let phys = match opts.input_shape {
        Some([c, h, w]) => {
            let ok = match chw.len() {
                3 => true,
                2 => w == 1,
                _ => h == 1 && w == 1,
            };
            if !ok || c == 0 || h == 0 || w == 0 {
                return Err(ImportError::Model(format!(
                    "--input-shape {c},{h},{w} does not fit input {declared}"
                )));
            }
            Shape { c, h, w }
        }
        None => match chw.len() {
            3 => Shape {
                c: chw[0],
                h: chw[1],
                w: chw[2],
            },
            2 => Shape {
                c: chw[0],
                h: chw[1],
                w: 1,
            },
            _ => Shape {
                c: chw[0],
                h: 1,
                w: 1,
            },
        },
    };
    let logical: Vec<usize> = std::iter::once(batch)
        .chain([phys.c, phys.h, phys.w].into_iter().take(dims.len() - 1))
        .collect();
    // Files written by `export_onnx` carry the class names and normalisation.
    let meta = |k: &str| {
        m.metadata_props
            .iter()
            .find(|p| p.key == k)
            .map(|p| p.value.as_str())
    };
    let meta_f32 = |k: &str| meta(k).and_then(|v| serde_json::from_str::<Vec<f32>>(v).ok());
    let (mean, std) = match (meta_f32("cryptonas.mean"), meta_f32("cryptonas.std")) {
        (Some(m), Some(s)) if opts.mean.is_empty() && opts.std.is_empty() => {
            notes.push(
                "input normalisation read from the file's cryptonas.mean/std metadata".into(),
            );
            (m, s)
        }
        _ => (opts.mean.clone(), opts.std.clone()),
    };
    let meta_classes =
        meta("cryptonas.classes").and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
    let expand = |v: &[f32], what: &str| -> Result<Vec<f32>, ImportError> {
        match v.len() {
            0 => Ok(vec![if what == "mean" { 0.0 } else { 1.0 }; phys.c]),
            1 => Ok(vec![v[0]; phys.c]),
            n if n == phys.c => Ok(v.to_vec()),
            n => Err(ImportError::Model(format!(
                "--input-norm gives {n} {what} values for {} channels",
                phys.c
            ))),
        }
    };
    let input_spec = InputSpec {
        channels: phys.c,
        height: phys.h,
        width: phys.w,
        mean: expand(&mean, "mean")?,
        std: expand(&std, "std")?,
    };
    if mean.is_empty() && std.is_empty() {
        notes.push(
            "no --input-norm: the model is fed pixels/255 (mean 0, std 1); give the \
             normalisation it was trained with"
                .into(),
        );
    }
    if g.output.len() != 1 {
        return Err(ImportError::Model(format!(
            "the graph has {} outputs; exactly one (the class scores) is supported",
            g.output.len()
        )));
    }
    let graph_output = g.output[0].name.clone();
    let mut available: HashSet<String> = values.keys().cloned().collect();
    available.insert(inp.name.clone());
    let order = topo_order(g, &available)?;
    let mut used: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    used.insert(graph_output.clone());
    used.remove("");
    values.insert(
        inp.name.clone(),
        Value::Act(Act {
            node: "input".into(),
            phys,
            dims: logical,
            pad: None,
        }),
    );
    let mut b = Builder {
        nodes: vec![Node {
            id: "input".into(),
            op: Op::Input,
            inputs: vec![],
        }],
        weights: BTreeMap::new(),
        ids: HashSet::from(["input".to_string()]),
        batch,
        opset,
        values,
        used,
        graph_output: graph_output.clone(),
        softmax_dropped: false,
    };
    let mut reports: Vec<Option<NodeReport>> = vec![None; g.node.len()];
    let mut failed = false;
    for &i in &order {
        let n = &g.node[i];
        let mk = |status, detail: String, hint, emitted| NodeReport {
            index: i,
            name: n.name.clone(),
            op_type: n.op_type.clone(),
            status,
            detail,
            hint,
            emitted,
        };
        match b.convert(i, n) {
            Ok((vals, status, detail, emitted)) => {
                for (o, v) in n.output.iter().zip(vals) {
                    if !o.is_empty() {
                        b.values.insert(o.clone(), v);
                    }
                }
                reports[i] = Some(mk(status, detail, None, emitted));
            }
            Err(e) => {
                failed = true;
                let label = format!("'{}' ({})", n.name, n.op_type);
                // Bridge shape-preserving ops so that the rest can still be counted.
                let bridge = if ELEMENTWISE.contains(&n.op_type.as_str()) {
                    match n.input.first().and_then(|s| b.values.get(s)) {
                        Some(Value::Act(a)) => Some(Value::Act(a.clone())),
                        _ => None,
                    }
                } else {
                    None
                };
                for o in n.output.iter().filter(|o| !o.is_empty()) {
                    let v = bridge
                        .clone()
                        .unwrap_or_else(|| Value::Unknown(label.clone()));
                    b.values.insert(o.clone(), v);
                }
                let status = if e.skipped {
                    Status::Skipped
                } else {
                    Status::Unsupported
                };
                let hint = e.hint.or_else(|| {
                    (status == Status::Unsupported)
                        .then(|| hint_for(&n.op_type))
                        .filter(|_| {
                            !matches!(
                                n.op_type.as_str(),
                                "Conv"
                                    | "MaxPool"
                                    | "AveragePool"
                                    | "Add"
                                    | "Sub"
                                    | "Mul"
                                    | "Div"
                                    | "Sum"
                                    | "Concat"
                                    | "Gemm"
                                    | "MatMul"
                                    | "Reshape"
                                    | "Flatten"
                                    | "Pad"
                                    | "BatchNormalization"
                                    | "Softmax"
                                    | "Clip"
                                    | "Dropout"
                                    | "Constant"
                                    | "ConstantOfShape"
                                    | "GlobalAveragePool"
                                    | "GlobalMaxPool"
                                    | "Relu"
                                    | "Identity"
                                    | "Squeeze"
                                    | "Unsqueeze"
                                    | "Shape"
                                    | "Cast"
                            )
                        })
                });
                reports[i] = Some(mk(status, e.reason, hint, vec![]));
            }
        }
    }
    let nodes: Vec<NodeReport> = reports.into_iter().flatten().collect();
    let source = SourceInfo {
        ir_version: m.ir_version,
        opset,
        producer: format!("{} {}", m.producer_name, m.producer_version)
            .trim()
            .to_string(),
        input: declared,
        output: graph_output.clone(),
        node_count: g.node.len(),
        initializers: g.initializer.len(),
    };
    // The output.
    let out_act = match b.values.get(&graph_output) {
        Some(Value::Act(a)) => Some(a.clone()),
        Some(Value::Const(_)) => {
            return Err(ImportError::Model(format!(
                "the graph output '{graph_output}' is a constant (it does not depend on the input)"
            )))
        }
        _ => None,
    };
    let mut out_err: Option<String> = None;
    let mut spec = None;
    if let Some(a) = out_act {
        let mut a = a;
        if !a.canonical() || a.pad.is_some() {
            match b.canonical(a.clone(), "the graph output") {
                Ok(c) => a = c,
                Err(e) if opts.flatten_output && a.pad.is_none() => {
                    let _ = e;
                }
                Err(e) => out_err = Some(e.reason),
            }
        }
        if out_err.is_none() && (a.phys.h != 1 || a.phys.w != 1) {
            if opts.flatten_output {
                let id = b.emit(
                    &format!("{}.flatten", a.node),
                    Op::Flatten,
                    vec![a.node.clone()],
                );
                a = Act {
                    node: id,
                    phys: Shape {
                        c: a.phys.len(),
                        h: 1,
                        w: 1,
                    },
                    dims: vec![batch, a.phys.len()],
                    pad: None,
                };
            } else {
                out_err = Some(format!(
                    "the output '{graph_output}' is {:?}, not a vector of class scores; end the network with global pooling or a linear layer",
                    a.dims
                ));
            }
        }
        if out_err.is_none() {
            let k = a.phys.c;
            let classes = match opts
                .classes
                .as_ref()
                .or(meta_classes.as_ref().filter(|c| c.len() == k))
            {
                Some(c) if c.len() == k => c.clone(),
                Some(c) => {
                    return Err(ImportError::Model(format!(
                        "--classes lists {} names but the model has {k} outputs",
                        c.len()
                    )))
                }
                None => (0..k).map(|i| format!("class_{i}")).collect(),
            };
            spec = Some(ModelSpec {
                format_version: cryptonas_model::format::FORMAT_VERSION,
                name: opts.name.clone(),
                input: input_spec,
                classes,
                nodes: b.nodes.clone(),
                output: a.node.clone(),
                metadata: Metadata::default(),
            });
        }
    } else if !failed {
        out_err = Some(format!("the graph output '{graph_output}' is not produced"));
    }
    if let Some(e) = out_err {
        return Err(ImportError::Model(e));
    }
    let partial_spec = spec.clone().filter(|s| s.validate().is_ok());
    let model = match (failed, spec) {
        (false, Some(mut spec)) => {
            let mut extra = BTreeMap::new();
            extra.insert(
                "source".to_string(),
                serde_json::json!({
                    "format": "onnx", "opset": opset, "ir_version": m.ir_version,
                    "producer": source.producer, "input": source.input,
                    "softmax_dropped": b.softmax_dropped,
                }),
            );
            spec.metadata.extra = extra;
            let weights: HashMap<String, Tensor> = b.weights.into_iter().collect();
            let model = Model::new(spec, weights)?;
            Some(model)
        }
        _ => None,
    };
    let model = model.map(|mut m| {
        m.spec.metadata.relu_count = cryptonas_model::relu_count(&m.spec).ok();
        m.spec.metadata.macs = cryptonas_model::macs(&m.spec).ok();
        m
    });
    Ok(Analysis {
        source,
        nodes,
        model,
        partial_spec,
        softmax_dropped: b.softmax_dropped,
        notes,
    })
}
