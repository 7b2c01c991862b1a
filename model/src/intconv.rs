//! The integer convolution of docs/ring-spec.md — the only linear primitive the HE layer implements —
//! defined once in `cryptonas-conv` (shared with the HE crate) and re-exported here: geometry,
//! checks, and the reference evaluations in Z_2^k ([`conv_ring`]) and in f64 ([`conv_f64`]).

pub use cryptonas_conv::{
    conv_acc, conv_f64, conv_f64_acc, conv_ring, conv_ring_acc, ring_mask, ConvError, IntConv, Mac,
};
