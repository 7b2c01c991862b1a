#![doc = include_str!("../README.md")]

pub mod arch;
pub mod cli;
pub mod clock;
pub mod count;
pub mod data;
pub mod export;
pub mod pareto;
#[cfg(feature = "tch")]
pub mod search;
pub mod study;
#[cfg(feature = "tch")]
pub mod supernet;
#[cfg(feature = "tch")]
pub mod train;

pub use arch::{Arch, Layer, Op};
pub use count::{macs, relu_count, solve_budget, BudgetPair, InputShape, Macs};

/// How candidates are scored.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum SearchMethod {
    /// Train one weight-sharing supernet, then score each candidate with its shared weights.
    #[default]
    Supernet,
    /// Train each candidate briefly on a class-balanced subset.
    Proxy,
}

/// Errors of the search crate.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Depth below 3: the two reductions need three stages.
    #[error("depth {depth} is too shallow: CryptoNAS nets need at least 3 layers")]
    TooShallow {
        /// The depth given.
        depth: usize,
    },
    /// Width 0.
    #[error("width (channels C) must be at least 1")]
    ZeroWidth,
    /// A skip that is not strictly increasing or not before the layer.
    #[error(
        "layer {layer}: skip {skip} must point at an earlier node (< {layer}) in increasing order"
    )]
    BadSkip {
        /// Layer index.
        layer: usize,
        /// Offending skip.
        skip: usize,
    },
    /// A token of an `arc` string is not an integer.
    #[error("arc string: {token:?} is not a small non-negative integer")]
    ArcToken {
        /// The token.
        token: String,
    },
    /// Unknown op id in an `arc` string.
    #[error("arc string: layer {layer} has op id {id}; valid ids are 0..=5")]
    ArcOp {
        /// Layer index.
        layer: usize,
        /// The id read.
        id: u8,
    },
    /// A skip bit that is neither 0 nor 1.
    #[error("arc string: layer {layer} has skip bit {bit}; bits are 0 or 1")]
    ArcBit {
        /// Layer index.
        layer: usize,
        /// The value read.
        bit: u8,
    },
    /// An `arc` string that ends inside a layer.
    #[error("arc string of {len} numbers ends inside a layer (layer i needs 1 + i numbers)")]
    ArcLength {
        /// Number of integers read.
        len: usize,
    },
    /// An unknown built-in name.
    #[error("unknown architecture {name:?}: use cnet1, cnet2, cnet3, an arc string or arch JSON")]
    UnknownArch {
        /// The name given.
        name: String,
    },
    /// Malformed arch JSON.
    #[error("arch JSON: {msg}")]
    ArchJson {
        /// Parser message.
        msg: String,
    },
    /// Random generation without ops.
    #[error("no ops to choose from")]
    NoOps,
    /// A budget below the smallest network.
    #[error(
        "budget {budget} ReLUs is below the smallest network ({min} ReLUs at depth 3, width 1)"
    )]
    BudgetTooSmall {
        /// The budget.
        budget: u64,
        /// Smallest possible count.
        min: u64,
    },
    /// A dataset file that cannot be read.
    #[error("dataset {path}: {msg}")]
    Dataset {
        /// Path of the file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// An I/O failure on an output or checkpoint file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A weights or metadata file that does not fit the architecture.
    #[error("model file {path}: {msg}")]
    Model {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A bad option value.
    #[error("{what}")]
    Invalid {
        /// Description.
        what: String,
    },
}

impl SearchError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> SearchError {
        SearchError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
