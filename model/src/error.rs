//! Typed errors of the model crate: every variant names the node and/or tensor at fault.

use thiserror::Error;

/// Everything that can go wrong while loading, validating, compiling or evaluating a model.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path that failed.
        path: String,
        /// Underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// The architecture JSON does not parse (syntax, unknown op, unknown or missing field).
    #[error("invalid model JSON: {source}")]
    Json {
        /// serde_json's description (line, column, offending field).
        #[source]
        source: serde_json::Error,
    },
    /// A node's JSON is invalid (unknown op, unknown or missing field, wrong type).
    #[error("node {node:?}: invalid JSON: {source}")]
    NodeJson {
        /// Node id (or `#index` when the id itself is unreadable).
        node: String,
        /// serde_json's description.
        #[source]
        source: serde_json::Error,
    },
    /// `format_version` is not one this build understands.
    #[error("unsupported format_version {found} (this build reads {supported})")]
    FormatVersion {
        /// Version found in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The `input` block is inconsistent.
    #[error("invalid input spec: {detail}")]
    InputSpec {
        /// What is wrong.
        detail: String,
    },
    /// Two nodes share an id.
    #[error("duplicate node id {node:?}")]
    DuplicateId {
        /// The repeated id.
        node: String,
    },
    /// A node lists an input id that does not exist.
    #[error("node {node:?} reads unknown input {input:?}")]
    DanglingInput {
        /// Node with the bad edge.
        node: String,
        /// Missing id.
        input: String,
    },
    /// The `output` field names no node.
    #[error("output {output:?} is not a node")]
    UnknownOutput {
        /// The id given as output.
        output: String,
    },
    /// The graph has a cycle through this node.
    #[error("cycle in graph through node {node:?}")]
    Cycle {
        /// A node on the cycle.
        node: String,
    },
    /// A node has the wrong number of inputs.
    #[error("node {node:?} ({op}) takes {expected} input(s), got {found}")]
    Arity {
        /// Node id.
        node: String,
        /// Op name.
        op: &'static str,
        /// Expected count, in words ("1", "at least 1").
        expected: &'static str,
        /// Found count.
        found: usize,
    },
    /// An op parameter is out of range.
    #[error("node {node:?}: invalid parameter: {detail}")]
    InvalidParam {
        /// Node id.
        node: String,
        /// What is wrong.
        detail: String,
    },
    /// Shapes do not fit together (found by shape inference).
    #[error("node {node:?}: shape mismatch: {detail}")]
    ShapeMismatch {
        /// Node id.
        node: String,
        /// What does not fit.
        detail: String,
    },
    /// The safetensors container is malformed.
    #[error("invalid safetensors data: {detail}")]
    Safetensors {
        /// Parser message.
        detail: String,
    },
    /// A tensor the graph needs is absent.
    #[error("node {node:?}: missing tensor {tensor:?}")]
    MissingTensor {
        /// Node that needs it.
        node: String,
        /// Tensor name.
        tensor: String,
    },
    /// The weights file holds a tensor no node uses.
    #[error("unexpected tensor {tensor:?} (no node uses it)")]
    ExtraTensor {
        /// Tensor name.
        tensor: String,
    },
    /// A tensor has the wrong shape.
    #[error("node {node:?}: tensor {tensor:?} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// Node that uses it.
        node: String,
        /// Tensor name.
        tensor: String,
        /// Shape the graph requires.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is not stored as f32.
    #[error("tensor {tensor:?} has dtype {dtype}, expected F32")]
    TensorDtype {
        /// Tensor name.
        tensor: String,
        /// Dtype found.
        dtype: String,
    },
    /// A tensor holds NaN or infinity.
    #[error("node {node:?}: tensor {tensor:?} has a non-finite value at flat index {index}")]
    NonFinite {
        /// Node that uses it.
        node: String,
        /// Tensor name.
        tensor: String,
        /// First offending index.
        index: usize,
    },
    /// An input tensor given to an engine has the wrong shape.
    #[error("input has shape {found:?}, model expects {expected:?}")]
    InputShape {
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape given.
        found: Vec<usize>,
    },
    /// The graph uses a construct the ReLU-separated normal form cannot express.
    #[error("node {node:?}: unsupported in the normal form: {detail}")]
    Unsupported {
        /// Node id.
        node: String,
        /// Why.
        detail: String,
    },
    /// A fixed-point configuration does not fit the normal form or the ring.
    #[error("invalid fixed-point config: {detail}")]
    FixedConfig {
        /// What is wrong.
        detail: String,
    },
    /// A convolution was called with inconsistent geometry or buffers.
    #[error("invalid IntConv: {0}")]
    IntConv(#[from] cryptonas_conv::ConvError),
    /// A fixed-point value left the signed k-bit range (checked evaluation / input encoding).
    #[error(
        "overflow at stage {stage}, element {element}: value {value} outside signed {k}-bit range"
    )]
    Overflow {
        /// Stage index and node.
        stage: String,
        /// Flat element index within the stage.
        element: usize,
        /// The exact value (at the stage's scale).
        value: f64,
        /// Ring bits.
        k: u32,
    },
    /// An input element the client cannot encode: not finite, or outside the signed k-bit range
    /// at the input scale. The value is left out: it is the client's secret image, and error
    /// texts end up in logs and on screens.
    #[error(
        "input element {element} cannot be encoded: not finite or outside the signed {k}-bit \
         range at the input scale (check the image's normalisation)"
    )]
    InputRange {
        /// Flat CHW index of the element.
        element: usize,
        /// Ring bits.
        k: u32,
    },
    /// A network of the family ([`cryptonas_arch::Net`]) that the zoo cannot draw.
    #[error("invalid CryptoNAS network: {0}")]
    Zoo(#[from] cryptonas_arch::ArchError),
}

/// Result alias of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
