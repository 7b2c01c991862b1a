//! CryptoNAS model format, f32 and bit-exact fixed-point engines, ReLU counting, image input.
//!
//! * [`format`]: the versioned JSON graph + safetensors weights, validated on load ([`Model`]).
//! * [`zoo`]: the CryptoNAS macro network builder, CNet1/2/3, random weights.
//! * [`count`]: ReLU budget and MACs by shape inference.

pub mod count;
pub mod engine;
pub mod error;
pub mod fixed;
pub mod format;
pub mod image;
pub mod intconv;
pub mod normal;
pub mod rng;
pub mod zoo;

pub use count::{macs, relu_count};
pub use error::{ModelError, Result};
pub use fixed::{
    Calibration, CalibrationParams, FixedConfig, FixedModel, QuantStage, QuantTerm, StageScales,
};
pub use format::{Graph, InputSpec, Metadata, Model, ModelSpec, Node, NodeId, Op, Shape, Tensor};
pub use intconv::{conv_ring, IntConv};
pub use normal::{NormalForm, Source, Stage, StageKind, Term};
