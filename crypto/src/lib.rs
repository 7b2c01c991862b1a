//! Shared cryptographic primitives of the private-inference protocol.
//!
//! - [`Block`]: a 128-bit value (a garbled-circuit label, an OT message, an AES block).
//! - [`FixedKeyAes`]: the fixed-key AES permutation π and the hashes built from it, in particular the
//!   tweakable circular-correlation-robust hash of Guo, Katz, Wang and Yu (GKWY20, §7.3):
//!   `TCCR(i, x) = π(π(x) ⊕ i) ⊕ π(x)`.
//! - [`Csprng`]: ChaCha12 seeded from the operating system (or `crypto.getRandomValues` in browsers).
//!
//! # Security
//! Semi-honest protocols only. AES runs on AES-NI where the CPU has it and on the constant-time
//! bitsliced software backend of the `aes` crate otherwise (always in WebAssembly).

mod aes_hash;
mod block;
mod rng;

pub use aes_hash::{FixedKeyAes, FIXED_KEY};
pub use block::Block;
pub use rng::{Csprng, RngError};
