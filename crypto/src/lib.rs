#![doc = include_str!("../README.md")]

mod aes_hash;
mod block;
mod rng;
// The crate's only unsafe code: the run-time-dispatched AES kernels (see the README).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

pub use aes_hash::{AesBackend, FixedKeyAes, FIXED_KEY};
pub use block::Block;
pub use rng::{Csprng, RngError};
