//! Boolean circuits, Bristol Fashion, and half-gates garbling with free-XOR — the engine of the
//! private ReLUs.
//!
//! # Security
//! Semi-honest garbling (Yao with half-gates, ZRE15) with 128-bit labels and the tweakable
//! circular-correlation-robust hash of Guo–Katz–Wang–Yu 2020 over fixed-key AES. Draw a fresh
//! [`Delta`] for every garbling and never reuse a [`TweakDomain`] (session id, instance) pair.
//! Garbled circuits give no authenticity against a malicious garbler here.
//!
//! # Example
//! ```
//! use cryptonas_crypto::Csprng;
//! use cryptonas_gc::{Delta, Evaluator, ReluCircuit, ReluVariant, TweakDomain};
//!
//! let relu = ReluCircuit::new(16, 0, ReluVariant::Relu).unwrap();
//! let mut rng = Csprng::from_entropy().unwrap();
//! let domain = TweakDomain { session_id: 1, first_instance: 0 };
//! let (a, b, m) = (vec![5u64, 0xfff0], vec![3u64, 0x0005], vec![100u64, 7]);
//! let garbled = relu.garble(Delta::random(&mut rng), domain, &m, None, &mut rng).unwrap();
//! let ga = relu.encode_garbler(&garbled.encoder, &a).unwrap();
//! let eb = relu.encode_evaluator(&garbled.encoder, &b).unwrap();
//! let out = Evaluator::new(relu.circuit(), domain).evaluate(&garbled.tables, &ga, &eb).unwrap();
//! let o = relu.decode(&out, &garbled.decoding).unwrap();
//! assert_eq!(o, vec![relu.reference(5, 3, 100), relu.reference(0xfff0, 5, 7)]);
//! ```

// Wire formats are little endian and table buffers are cast to bytes directly.
#[cfg(target_endian = "big")]
compile_error!("cryptonas-gc supports little-endian targets only");

mod bristol;
mod builder;
mod circuit;
mod error;
mod garble;
mod label;
mod relu;

pub use bristol::{from_bristol, to_bristol, value_bits, value_bytes, BristolParties, MAX_WIRES};
pub use builder::{CircuitBuilder, Wire};
pub use circuit::{Circuit, Gate, GateCounts, WireId};
pub use error::{BristolError, CircuitError, GarbleError};
pub use garble::{Evaluator, Garbled, Garbler, CHUNK};
pub use label::{
    ActiveLabels, DecodingBits, Delta, Encoder, GarbledTables, Label, OutputLabels, TweakDomain,
};
pub use relu::{bits_to_words, words_to_bits, ReluCircuit, ReluVariant};
