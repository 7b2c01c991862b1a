#![doc = include_str!("../README.md")]

// Wire formats are little endian and table buffers are cast to bytes directly.
#[cfg(target_endian = "big")]
compile_error!("cryptonas-gc supports little-endian targets only");

mod bristol;
mod builder;
mod circuit;
mod error;
mod garble;
mod label;
mod maxpool;
mod relu;
mod shares;
mod topk;

pub use bristol::{
    from_bristol, to_bristol, value_bits, value_bytes, BristolParties, ValueOwner, MAX_WIRES,
};
pub use builder::{CircuitBuilder, Wire};
pub use circuit::{Circuit, Gate, GateCounts, WireId};
pub use error::{BristolError, CircuitError, GarbleError};
pub use garble::{Evaluator, Garbled, Garbler, CHUNK};
pub use label::{
    ActiveLabels, DecodingBits, Delta, Encoder, GarbledTables, Label, OutputLabels, TweakDomain,
};
pub use maxpool::{MaxPoolCircuit, MAX_WINDOW};
pub use relu::{bits_to_words, words_to_bits, ReluCircuit, ReluVariant};
pub use shares::{ShareDecoding, ShareOutput};
pub use topk::{TopKCircuit, MAX_TOPK_CLASSES, MAX_TOPK_PAIRS};
