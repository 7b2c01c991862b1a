#![doc = include_str!("../README.md")]

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

pub use count::{solve_budget, BudgetPair};
pub use cryptonas_arch::{macs, relu_count, Arch, ArchError, InputShape, Layer, Macs, Op};

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
    /// An architecture, `arc` string or network the family refuses.
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// Depth below 3: the trainer and the supernet build the two reductions of the search
    /// space, which need three stages (the family itself allows shallower nets, with none).
    #[error("depth {depth} is too shallow: the search space needs at least 3 layers")]
    TooShallow {
        /// The depth given.
        depth: usize,
    },
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
