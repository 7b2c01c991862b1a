//! BFV (t = 2^k) preprocessing of linear layers with coefficient encoding.
//!
//! The unit of work is a **stage** `Z = Σ_m IntConv_m(src_m)` of the ReLU-separated normal form.
//! Offline, the client encrypts its masks r_m; the server returns `Enc(Σ_m IntConv_m(r_m) − s)` for a
//! fresh random s, re-randomised and noise-flooded so that it reveals nothing about the weights; the
//! client decrypts its share, the server keeps s. Everything is mod t = 2^k, bit-exact with
//! [`conv_ring`].
//!
//! ```text
//! client                                   server
//! ClientKeys::generate ── PublicKeyMsg ──▶ PublicKey::from_msg
//! ClientStage::encrypt_masks ─ MasksMsg ─▶ ServerStage::respond (ServerStage::new precomputed)
//! ClientState::decrypt ◀─ ResponseMsg ──── (keeps s)
//! ```
//!
//! * Packing: [`StagePlan`] (Cheetah-style coefficient encoding, polyphase for strides, 1×1 for FC).
//! * Parameters and the noise budget: [`HeParams`].
//! * Wire format: [`PublicKeyMsg`], [`MasksMsg`], [`ResponseMsg`].
//!
//! The BFV layer is written directly on `fhe-math` (the arithmetic core of fhe.rs: RNS, NTT, modulus
//! switching) so that seeds, the wire format and its validation, the sparse download and k up to 64
//! are under our control.

mod client;
mod conv;
mod error;
mod params;
mod plan;
mod server;
mod wire;

#[cfg(test)]
mod flood_tests;

pub use client::{ClientKeys, ClientStage, ClientState};
pub use conv::{conv_ring, IntConv};
pub use error::HeError;
pub use params::{HeParams, STAT_SECURITY_BITS};
pub use plan::StagePlan;
pub use server::{NoiseReport, PublicKey, ServerStage};
pub use wire::{MasksMsg, PublicKeyMsg, ResponseMsg};
