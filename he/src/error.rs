//! Errors of the HE preprocessing layer.

use thiserror::Error;

/// Everything that can go wrong while planning, running or parsing an HE stage.
///
/// Bad input (malformed messages, mis-sized tensors, impossible geometry, weights too large for the
/// noise budget) always ends up here; the crate never panics on it.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum HeError {
    /// The ring size is outside what the parameter sets support.
    #[error("ring bit width k = {k} is not supported (must be in 8..=64)")]
    UnsupportedRing {
        /// Requested k.
        k: u32,
    },
    /// Building the BFV contexts failed (should not happen for supported k).
    #[error("BFV parameter construction failed: {reason}")]
    Params {
        /// What failed.
        reason: String,
    },
    /// A convolution geometry is invalid.
    #[error("invalid convolution geometry: {reason}")]
    Geometry {
        /// Why.
        reason: String,
    },
    /// The terms of one stage do not produce the same output tensor shape.
    #[error("stage term {term} produces {got:?} (O,H,W) but term 0 produces {expected:?}")]
    TermShape {
        /// Offending term index.
        term: usize,
        /// Its output shape.
        got: (usize, usize, usize),
        /// Shape of term 0.
        expected: (usize, usize, usize),
    },
    /// A stage must contain at least one term.
    #[error("a stage needs at least one term")]
    EmptyStage,
    /// A slice has the wrong length.
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        /// Which input.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A ring element does not fit in k bits.
    #[error("{what}: value at index {index} does not fit in {k} bits")]
    RingValue {
        /// Which input.
        what: &'static str,
        /// Index of the first bad value.
        index: usize,
        /// Ring bit width.
        k: u32,
    },
    /// The weights are too large: the flooding noise could not hide the product noise.
    #[error(
        "stage weights need {needed_bits:.1} bits of noise headroom but only {available_bits} are \
         available (flooding {flood_bits} bits, statistical security {stat_bits} bits)"
    )]
    NoiseBudget {
        /// log2 of the worst-case noise of the product (before flooding).
        needed_bits: f64,
        /// Largest allowed log2 noise: flood_bits − stat_bits.
        available_bits: u32,
        /// Flooding width F.
        flood_bits: u32,
        /// Required statistical distance exponent.
        stat_bits: u32,
    },
    /// No packing of the stage fits the polynomial degree.
    #[error("no packing fits N = {n}: {reason}")]
    Packing {
        /// Polynomial degree.
        n: usize,
        /// Why.
        reason: String,
    },
    /// A serialized message is malformed.
    #[error("malformed {what} message: {reason}")]
    Malformed {
        /// Message kind.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A well-formed message does not match the stage (wrong number of ciphertexts or values).
    #[error("{what}: expected {expected} ciphertexts/values, got {got}")]
    MessageShape {
        /// Which message part.
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Actual count.
        got: usize,
    },
    /// A message was made for other parameters (k or N).
    #[error("message parameters (k = {got_k}, log2 N = {got_log_n}) differ from ours (k = {k}, log2 N = {log_n})")]
    ParamMismatch {
        /// Our k.
        k: u32,
        /// Our log2 N.
        log_n: u32,
        /// k in the message.
        got_k: u32,
        /// log2 N in the message.
        got_log_n: u32,
    },
    /// The randomness source failed.
    #[error("randomness source failed: {reason}")]
    Rng {
        /// Why.
        reason: String,
    },
    /// An arithmetic call into fhe-math failed.
    #[error("fhe-math: {reason}")]
    Math {
        /// Error text from fhe-math.
        reason: String,
    },
}

impl From<fhe_math::Error> for HeError {
    fn from(e: fhe_math::Error) -> Self {
        HeError::Math {
            reason: e.to_string(),
        }
    }
}
