//! Oblivious transfer for the garbled-circuit ReLUs: Chou–Orlandi base OT and KOS15 OT extension,
//! as sans-IO state machines (message structs in, message structs out; no sockets).
//!
//! - [`chou_orlandi`]: 128-bit base OTs on Ristretto (`curve25519-dalek`).
//! - [`kos`]: IKNP extension with the KOS15 consistency check, producing correlated OT with a
//!   sender-chosen global Δ (`t_j = q_j ⊕ b_j·Δ`) — the garbler's free-XOR Δ — plus random OT and
//!   chosen-message 1-of-2 OT on top.
//! - [`gf128`]: portable constant-time carry-less multiplication for the KOS check.
//!
//! # Security
//! Chou–Orlandi as used here is secure against a semi-honest sender and a malicious receiver of the
//! extension (the garbler is the OT sender and the party the check protects). All randomness comes
//! from [`cryptonas_crypto::Csprng`].

pub mod chou_orlandi;
mod error;
pub mod gf128;
pub mod kos;
mod transpose;

pub use error::OtError;
pub use transpose::transpose128;
