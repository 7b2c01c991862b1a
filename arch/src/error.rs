//! Why an architecture, an `arc` string or a network description is refused.

/// Errors of the architecture crate: each names the layer or token at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    /// No layers at all.
    #[error("an architecture needs at least 1 layer")]
    Empty,
    /// Width 0.
    #[error("width (channels C) must be at least 1")]
    ZeroWidth,
    /// A network with no classes or an empty input.
    #[error("{what}")]
    BadNet {
        /// What is wrong.
        what: String,
    },
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
    /// A kernel size other than 3 or 5.
    #[error("layer {layer}: kernel {kernel} is not 3 or 5")]
    BadKernel {
        /// Layer index.
        layer: usize,
        /// The kernel given.
        kernel: usize,
    },
    /// An op that a final (deployed) network cannot hold: only dense convolutions are deployed.
    #[error("layer {layer}: op {op} is not a dense convolution; deploy `Arch::densified()`")]
    NotDense {
        /// Layer index.
        layer: usize,
        /// The op's name.
        op: &'static str,
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
}
