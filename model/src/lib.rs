#![doc = include_str!("../README.md")]

pub mod count;
pub mod engine;
pub mod error;
pub mod fixed;
pub mod format;
pub mod image;
pub mod intconv;
pub mod normal;
pub mod plain;
pub mod rng;
pub mod zoo;

pub use count::{macs, max_pool_comparisons, relu_count, summary};
pub use error::{ModelError, Result};
pub use fixed::{
    rank_logits, Calibration, CalibrationParams, FixedConfig, FixedModel, QuantStage, QuantTerm,
    StageScales,
};
pub use format::{Graph, InputSpec, Metadata, Model, ModelSpec, Node, NodeId, Op, Shape, Tensor};
pub use intconv::{conv_ring, IntConv};
pub use normal::{
    InputEncoding, NormalForm, Pool, Source, Stage, StageKind, Term, MAX_POOL_WINDOW,
};
