#![doc = include_str!("../README.md")]

mod aes_hash;
mod block;
mod fixslice;
mod rng;
mod vperm;
// The crate's only unsafe code: the run-time-dispatched AES kernels (see the README).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;
// The `v128` lanes of the bitsliced and vector-permute AES (safe intrinsics only).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_simd;

pub use aes_hash::{AesBackend, FixedKeyAes, FIXED_KEY};
pub use block::Block;
pub use rng::{Csprng, RngError};
