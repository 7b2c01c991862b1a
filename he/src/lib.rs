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
//! are under our control (fhe's own `Ciphertext::from_bytes` does not check degrees or coefficient
//! ranges, its secret-key encryption draws seeds outside our RNG, and its plaintext modulus stops
//! below 2^62).
//!
//! # Security
//!
//! Semi-honest client and server. 128-bit RLWE parameters ([`HeParams`]). Circuit privacy: every
//! returned ciphertext is re-randomised with a fresh public-key encryption of zero and flooded with
//! uniform noise of F bits (statistical distance ≤ 2^−40 per coefficient, checked per stage), minus
//! the encoding of the server's share s at the top level, then switched down: the switched
//! ciphertext already encrypts the client's share, so the switch's rounding is covered by the full
//! flood. Only output coefficients of c0 are sent and s covers exactly those. The bound is per
//! coefficient: per inference it adds up over the output coefficients (≈ 86K for CNet1 at C = 14,
//! ≈ 2^−24.6) and it grows with the number of queries. It assumes the client's ciphertexts carry
//! fresh noise: a malicious client that chooses large noise can read weight bits through it (not
//! covered by this semi-honest design). Per-query server arithmetic on secrets is constant-time (fhe-math's default); only the
//! offline weight precompute uses variable-time NTTs. Ciphertexts travel in NTT form (c0 up, c1 down):
//! both sides must use the same fhe-math NTT (same version and features).
//!
//! # Cost (`cargo bench -p cryptonas-he --bench stage`, k = 32, N = 4096, 2 shared cores)
//!
//! CNet1 at C = 14 (86,016 ReLUs), whole network: ≈ 2 s offline HE (client encrypt 0.4 s, server
//! 1.4–1.8 s, client decrypt 0.1 s), 13.1 MB up + 4.6 MB down + 56 KB public key ≈ 206 B per ReLU;
//! weight precompute ≈ 6 s and 546 MB of NTT weights per model. In headless Chromium (release
//! build) the client encrypts ≈ 5.4 ms and decrypts ≈ 1.5 ms per ciphertext.

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
