//! KOS15 OT extension (Keller–Orsini–Scholl, CRYPTO 2015): IKNP with a GF(2^128) consistency check,
//! producing **correlated OT with a global Δ chosen by the sender**.
//!
//! The sender (our garbler) picks Δ; its 128 base-OT choice bits are the bits of Δ. For each transfer
//! `j` the receiver (our evaluator) with choice bit `b_j` ends with `t_j = q_j ⊕ b_j·Δ`, where the
//! sender holds `q_j`. Read as garbled-circuit labels, `q_j` is the zero-label of the evaluator's
//! input wire `j` and `t_j` its active label: one correlated OT per evaluator input bit, no hashing.
//!
//! ```text
//! Receiver (choices b)                                Sender (Δ)
//!     ── chou_orlandi::SenderSetup ─────────────────▶        (base OTs, roles reversed:
//!     ◀──────────────── chou_orlandi::ReceiverChoices ──      the sender chooses the bits of Δ)
//! per batch of m transfers (m' = m + 256 rows, rounded up to a multiple of 128):
//!     u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ r          ── ExtendMatrix(u^1..u^128) ──▶  q^i = G(k_i^{Δ_i}) ⊕ Δ_i·u^i
//!     (whole, or in parts of whole 128-row words, in order; the challenge follows the last)
//!     ◀──────────────────────────────────────────── CheckChallenge(seed of χ_1..χ_m') ──
//!     x = Σ r_j χ_j, t = Σ t_j·χ_j          ── CheckResponse(x, t) ──▶  Σ q_j·χ_j ?= t ⊕ x·Δ
//! ```
//!
//! # Parameters and security
//! - κ = 128 base OTs; the check works in GF(2^128) ([`crate::gf128`]). KOS15 pads every batch with
//!   κ + s random rows so that `x` reveals nothing about the real choices; we take s = 128, i.e.
//!   256 padding rows (their χ span GF(2^128) except with probability about 2^-128). A deviation
//!   that is not explained by guessing bits of Δ survives a random challenge only through a
//!   GF(2^128) collision, about 2^-128 per batch — well beyond a 40-bit statistical parameter.
//! - The challenge seed is chosen by the sender **after** it received the matrix (an interactive coin
//!   toss rather than Fiat–Shamir, so the receiver cannot grind).
//! - A receiver that cheats on `c` columns passes only by guessing `c` bits of Δ, each with
//!   probability 1/2; that is the "leaky Δ-OT" of KOS15 Thm. 1. A failed check consumes the sender:
//!   the session must be dropped, never retried with the same Δ.
//! - **Δ with lsb 1.** The garbler forces `lsb(Δ) = 1` for point-and-permute. This makes base-OT
//!   choice bit 0 public, leaving 127 unknown bits of Δ: the receiver learns nothing it did not
//!   already know (`lsb(Δ) = 1` is public in half-gates), and guessing the rest is still 2^-127.
//! - Correlated outputs are returned unhashed (that is the point of COT). Random OT and chosen 1-of-2
//!   OT hash them with the tweakable circular-correlation-robust hash TCCR (GKWY20 §7.3) under a
//!   per-transfer tweak that also carries a domain tag, so these pads never collide with the garbling
//!   hash's tweaks.
//! - PRG: ChaCha12 seeded with the 256-bit base-OT keys; the streams continue across batches, so one
//!   set of base OTs serves any number of batches.
//!
//! Out-of-order calls do not compile (each step consumes the previous state):
//!
//! ```compile_fail,E0599
//! use cryptonas_crypto::Csprng;
//! use cryptonas_ot::kos::Receiver;
//! let mut rng = Csprng::from_seed([0; 32]);
//! // The receiver cannot extend before the base OTs are done.
//! let receiver = Receiver::new();
//! let _ = receiver.extend(&[true, false], &mut rng);
//! ```
//!
//! ```compile_fail,E0599
//! use cryptonas_crypto::{Block, Csprng};
//! use cryptonas_ot::kos::{Receiver, Sender};
//! let mut rng = Csprng::from_seed([0; 32]);
//! let (setup, receiver) = Receiver::new().setup(&mut rng);
//! let (choices, sender) = Sender::new(Block::ONE).unwrap().receive_base_setup(setup, &mut rng);
//! let receiver = receiver.receive_base_choices(choices).unwrap();
//! let (matrix, receiver) = receiver.extend(&[true], &mut rng).unwrap();
//! // The sender must challenge the matrix before it can accept a check response.
//! let (response, _, _) = receiver.receive_challenge(todo!());
//! let _ = sender.receive_check(response);
//! ```
//!
//! ```compile_fail,E0382
//! use cryptonas_crypto::{Block, Csprng};
//! use cryptonas_ot::kos::{Receiver, Sender};
//! let mut rng = Csprng::from_seed([0; 32]);
//! let (setup, receiver) = Receiver::new().setup(&mut rng);
//! let (choices, sender) = Sender::new(Block::ONE).unwrap().receive_base_setup(setup, &mut rng);
//! let receiver = receiver.receive_base_choices(choices).unwrap();
//! // A state cannot be reused: the PRG streams (and the check) would be replayed.
//! let _first = receiver.extend(&[true], &mut rng);
//! let _second = receiver.extend(&[false], &mut rng);
//! ```

mod msgs;
mod output;
mod receiver;
mod sender;

pub use msgs::{CheckChallenge, CheckResponse, ExtendMatrix, ReceiverDerandomize, SenderMessages};
pub use output::{CotReceiverOutput, CotReceiverSeeds, CotSenderOutput};
pub use receiver::{Extension, Receiver};
pub use sender::Sender;

use cryptonas_crypto::Block;

/// Number of base OTs (the computational security parameter κ).
pub const BASE_OTS: usize = 128;
/// Random rows appended to every batch: κ + 128 statistical (KOS15 pads with κ + s rows).
pub const PADDING_ROWS: usize = 256;
/// Largest batch accepted by one extension (bounds the memory a peer can make us allocate: 256 MiB
/// of matrix at this size).
pub const MAX_TRANSFERS: usize = 1 << 24;

/// High 64 bits of every OT hash tweak ("KOS15-OT"): separates OT pads from garbling tweaks.
const TWEAK_DOMAIN: u128 = 0x4b4f_5331_352d_4f54;

/// The TCCR tweak of transfer `index`.
fn tweak(index: u64) -> Block {
    Block::from_u128((TWEAK_DOMAIN << 64) | u128::from(index))
}

/// Rows actually extended for `count` transfers: padding added, rounded up to whole 128×128 tiles.
fn padded_rows(count: usize) -> usize {
    (count + PADDING_ROWS).div_ceil(128) * 128
}

/// Rows of the matrix a batch of `count` transfers extends (its padding included): what its
/// [`ExtendMatrix`] parts carry together.
pub fn extended_rows(count: usize) -> usize {
    padded_rows(count)
}

/// Packs bits LSB-first into `len` bytes (`len * 8 >= bits.len()`).
fn pack_bits(bits: &[bool], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (j, &b) in bits.iter().enumerate() {
        out[j / 8] |= u8::from(b) << (j % 8);
    }
    out
}

/// Bit `j` of an LSB-first packed vector.
#[inline]
fn bit(bytes: &[u8], j: usize) -> bool {
    bytes[j / 8] >> (j % 8) & 1 == 1
}

/// Packs bits into 128-bit words (bit `j` at bit `j % 128` of word `j / 128`).
fn pack_words(bits: &[bool], words: usize) -> Vec<u128> {
    let mut out = vec![0u128; words];
    for (j, &b) in bits.iter().enumerate() {
        out[j / 128] |= u128::from(b) << (j % 128);
    }
    out
}

/// Bit `j` of a word-packed vector.
#[inline]
fn word_bit(words: &[u128], j: usize) -> bool {
    words[j / 128] >> (j % 128) & 1 == 1
}

/// Fills `words` from the PRG: the byte stream read as little-endian words on every platform, so
/// both parties agree on which PRG bit lands in which row whatever their endianness.
fn fill_words(prg: &mut cryptonas_crypto::Csprng, words: &mut [u128]) {
    rand_core::RngCore::fill_bytes(prg, bytemuck::cast_slice_mut(words));
    for w in words.iter_mut() {
        *w = u128::from_le(*w);
    }
}

/// Typestates of the extension sender and receiver.
pub mod state {
    use crate::chou_orlandi;
    use cryptonas_crypto::{Block, Csprng};
    use zeroize::Zeroizing;

    mod sealed {
        pub trait Sealed {}
    }

    /// A protocol state (sealed).
    pub trait State: sealed::Sealed {}

    /// Sender with Δ, before the base OTs.
    pub struct Initialized {
        pub(super) delta: Zeroizing<Block>,
    }

    /// Base OTs done: ready to extend (repeatedly). The PRGs wipe themselves on drop.
    pub struct Ready {
        pub(super) delta: Zeroizing<Block>,
        pub(super) prgs: Vec<Csprng>,
        pub(super) next_index: u64,
    }

    /// Sender receiving a batch's matrix part by part (rows so far in `rows`).
    pub struct Receiving {
        pub(super) ready: Ready,
        pub(super) rows: Zeroizing<Vec<Block>>,
        pub(super) count: usize,
        pub(super) col_words: usize,
    }

    /// Sender holding an unchecked batch, waiting for the receiver's check response.
    pub struct Checking {
        pub(super) ready: Ready,
        pub(super) rows: Zeroizing<Vec<Block>>,
        pub(super) count: usize,
        pub(super) seed: [u8; 32],
    }

    /// Receiver before the base OTs.
    #[derive(Default)]
    pub struct ReceiverInitialized;

    /// Receiver that sent its base-OT setup point.
    pub struct BaseSetup {
        pub(super) base: chou_orlandi::Sender<chou_orlandi::state::Setup>,
    }

    /// Receiver with base OTs done: ready to extend (repeatedly).
    pub struct ReceiverReady {
        pub(super) prgs: Vec<[Csprng; 2]>,
        pub(super) next_index: u64,
    }

    /// Receiver sending a batch's matrix, part by part (words `next_word ..` still to go).
    pub struct Extending {
        pub(super) ready: ReceiverReady,
        pub(super) g0_start: u128,
        pub(super) col_words: usize,
        pub(super) next_word: usize,
        pub(super) packed_choices: Zeroizing<Vec<u128>>,
        pub(super) count: usize,
    }

    /// Receiver that sent a matrix and waits for the challenge.
    ///
    /// It keeps no rows: `t_j` are regenerated from the `G0` streams (from word `g0_start`) when
    /// the challenge comes, once the matrix has left. Holding both doubled this step's peak
    /// memory, which stays allocated for good in a browser worker.
    pub struct Extended {
        pub(super) ready: ReceiverReady,
        pub(super) g0_start: u128,
        pub(super) col_words: usize,
        pub(super) packed_choices: Zeroizing<Vec<u128>>,
        pub(super) count: usize,
    }

    macro_rules! opaque_states {
        ($($t:ident),*) => {$(
            impl sealed::Sealed for $t {}
            impl State for $t {}
            impl std::fmt::Debug for $t {
                /// Secret state: only the name is printed.
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(concat!(stringify!($t), " { .. }"))
                }
            }
        )*};
    }
    opaque_states!(
        Initialized,
        Ready,
        Receiving,
        Checking,
        ReceiverInitialized,
        BaseSetup,
        ReceiverReady,
        Extending,
        Extended
    );
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod profile {
    use super::*;
    use crate::transpose::columns_to_rows;
    use cryptonas_crypto::Csprng;
    use std::time::Instant;

    /// Where the time of one 2^20 batch goes (release: `cargo test --release -p cryptonas-ot --lib
    /// -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing printout, not a check"]
    fn profile_batch() {
        let n = 1 << 20;
        let rows = padded_rows(n);
        let mut rng = Csprng::from_seed([1; 32]);
        let mut cols = vec![0u128; rows];
        let t = Instant::now();
        fill_words(&mut rng, &mut cols);
        eprintln!("PRG 16 MiB: {:?}", t.elapsed());
        let t = Instant::now();
        let r = columns_to_rows(&cols, rows);
        eprintln!("columns_to_rows: {:?}", t.elapsed());
        let packed = pack_words(&vec![true; n], rows / 128);
        let t = Instant::now();
        let s = sender::challenge_sums(0, &r, rng.seed(), Some(&packed));
        eprintln!(
            "challenge sums (χ drawn chunk by chunk): {:?} {:?}",
            t.elapsed(),
            s
        );
    }

    /// `ROUNDS` full 2^20 batches, both sides, for CPU-time accounting on a loaded machine:
    /// `RAYON_NUM_THREADS=1 /usr/bin/time -f "%U s user" <test binary> --ignored cpu_time_batches`.
    #[test]
    #[ignore = "timing workload, not a check"]
    fn cpu_time_batches() {
        const ROUNDS: usize = 8;
        let mut rng = Csprng::from_seed([2; 32]);
        let (setup, receiver) = Receiver::new().setup(&mut rng);
        let (choices, mut sender) = Sender::new(Block::ONE)
            .unwrap()
            .receive_base_setup(setup, &mut rng);
        let mut receiver = receiver.receive_base_choices(choices).unwrap();
        let bits = vec![true; 1 << 20];
        let t = Instant::now();
        for _ in 0..ROUNDS {
            let (m, r) = receiver.extend(&bits, &mut rng).unwrap();
            let (c, s) = sender.receive_extend(m, &mut rng).unwrap();
            let (resp, _, r) = r.receive_challenge(c);
            let (_, s) = s.receive_check(resp).unwrap();
            (sender, receiver) = (s, r);
        }
        eprintln!("{ROUNDS} x 2^20 COT, both sides: {:?} wall", t.elapsed());
    }

    /// 8192 Chou–Orlandi OTs, both sides, for CPU-time accounting (as above).
    #[test]
    #[ignore = "timing workload, not a check"]
    fn cpu_time_base_ots() {
        let mut rng = Csprng::from_seed([3; 32]);
        let bits = vec![true; 8192];
        let t = Instant::now();
        let (setup, sender) = crate::chou_orlandi::Sender::new().setup(&mut rng);
        let (msg, _) = crate::chou_orlandi::Receiver::new()
            .receive_setup(setup)
            .choose(&bits, &mut rng);
        let keys = sender.send(msg);
        eprintln!(
            "8192 base OTs, both sides: {:?} wall {}",
            t.elapsed(),
            keys.len()
        );
    }
}
