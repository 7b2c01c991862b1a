//! BFV parameters for t = 2^k and the noise budget that justifies them.
//!
//! # Parameter choice (128-bit security)
//!
//! Ring dimension N = 4096 for k ≤ 32 and N = 8192 for 32 < k ≤ 64, with a ciphertext modulus Q of at
//! most 109 resp. 218 bits: the 128-bit classical bounds of the homomorphicencryption.org standard
//! (the secret and errors are centred binomial with variance 10). Q is a product of NTT-friendly
//! primes, **bottom first**: the bottom primes (`Q_low`, k + 16 bits in one or two primes) are what the
//! response is switched down to and what the client downloads; the top primes (`Q_hi`, all the
//! remaining bits) exist only to hold the flooding noise during the server's computation.
//!
//! # Encoding
//!
//! A ring element m is encoded per coefficient as `x = M·(−t⁻¹) mod Q` with `M = m·Q mod t`, i.e.
//! `t·x = Q·a − M` with `a ≡ m (mod t)` (the encoding of fhe.rs). Decryption computes
//! `round(t·(c0 + c1·s)/Q) mod t`. Because `t` never has to divide `Q`, a product by an integer weight
//! polynomial w adds only `|j| ≤ ‖w‖₁` (the carry of `M·w` past t) to the noise, not `(Q mod t)·‖w‖₁`.
//!
//! # Noise budget (all bounds per coefficient, worst case unless stated)
//!
//! * **Fresh client noise**: CBD(variance 10), `|e| ≤ B_e = 20`.
//! * **Product**: for an output ciphertext `Σ_b ct_b · w_b`, the noise is `Σ_b (e_b·w_b − j_b)`, so
//!   `B_mul = Σ_b (B_e + 1)·‖w_b‖₁` where ‖w_b‖₁ is the l1 norm of the (centred) weight polynomial.
//!   Computed exactly per stage in `ServerStage::new`.
//! * **Re-randomisation**: a public-key encryption of zero adds `u·e_pk + e1 + e2·s`, bounded by
//!   `B_pk = 2·N·20·20 + 20`.
//! * **Flooding**: the server adds a uniform polynomial with coefficients in `[−2^F, 2^F)` to c0 with
//!   `F = ⌊log2(Q/t)⌋ − 3`, the largest width that still decrypts (below). The product and
//!   re-randomisation noise is hidden up to statistical distance `(B_mul + B_pk)/2^F` per coefficient;
//!   a stage is **refused** (`HeError::NoiseBudget`) unless `B_mul + B_pk ≤ 2^(F − 40)`.
//!   For k = 32: F = 73, so ‖w‖₁ ≲ 2^28 per output ciphertext.
//! * **Modulus switching** to `Q_low` divides all of the above by `Q_hi` (so the flood becomes
//!   `≤ Δ_low/8` with `Δ_low = Q_low/t`) and adds per dropped prime a rounding error
//!   `r0 + r1·s + M/p`, bounded by `B_round = 2 + √(28·‖s‖₂²)`: a Hoeffding bound with failure
//!   probability ≤ 2^−80 per coefficient, using `‖s‖₂² ≤ 20·N`, which key generation enforces by
//!   resampling. Errors of earlier switches shrink by the later primes: total `≤ 2·B_round`.
//! * **Decryption margin**: correct iff the final noise `< Δ_low/2`. `HeParams::new` checks
//!   `Δ_low/8·(1 + 2^−40) + B_pk/Q_hi + 2·B_round < Δ_low/2` (with k + 16 bottom bits,
//!   `Δ_low ≈ 2^16` against `2·B_round ≈ 2^12`).
//!
//! The server subtracts the encoding of its random share s from the output coefficients at the top
//! level, before switching (adding at most 1 to the noise), so the switch is applied to a ciphertext
//! of the client's share and its rounding is a public function of flooded values. After switching
//! it sends c1 (N coefficients mod Q_low) and only the c0 coefficients that carry outputs.

use std::sync::Arc;

use fhe_math::rq::Context;
use fhe_math::zq::{primes::generate_prime, Modulus};

use crate::conv::ring_mask;
use crate::error::HeError;

/// Fresh-noise variance of the centred binomial distribution (as in fhe.rs).
pub(crate) const CBD_VARIANCE: u64 = 10;
/// Bound on one CBD(10) sample.
pub(crate) const B_E: f64 = 2.0 * CBD_VARIANCE as f64;
/// Statistical security of noise flooding, in bits.
pub const STAT_SECURITY_BITS: u32 = 40;
/// Bits of the bottom modulus above k (sets Δ_low ≈ 2^16).
const LOW_EXTRA_BITS: u32 = 16;

/// Per-context constants to encode ring elements (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    /// Q mod 2^k.
    q_mod_t: u64,
    /// −t⁻¹ mod q_i for each prime.
    neg_tinv: Vec<u64>,
    /// The primes, with Barrett constants (no u128 division: slow in WebAssembly).
    pub(crate) qs: Vec<Modulus>,
}

impl Encoder {
    fn new(moduli: &[u64], k: u32) -> Self {
        let mask = ring_mask(k);
        let q_mod_t = moduli.iter().fold(1u64, |acc, &q| acc.wrapping_mul(q)) & mask;
        let neg_tinv = moduli
            .iter()
            .map(|&q| {
                let t_mod_q = pow_mod(2, k as u64, q);
                let inv = pow_mod(t_mod_q, q - 2, q);
                (q - inv) % q
            })
            .collect();
        Encoder {
            q_mod_t,
            neg_tinv,
            qs: moduli
                .iter()
                .map(|&q| Modulus::new(q).expect("NTT primes are valid moduli"))
                .collect(),
        }
    }

    /// Residue of the encoding of ring element `m` modulo prime number `i`.
    #[inline]
    pub(crate) fn encode(&self, m: u64, i: usize, mask: u64) -> u64 {
        let big_m = m.wrapping_mul(self.q_mod_t) & mask;
        let q = &self.qs[i];
        q.mul(q.reduce(big_m), self.neg_tinv[i])
    }
}

/// `a·b mod q`.
#[inline]
pub(crate) fn mul_mod(a: u64, b: u64, q: u64) -> u64 {
    ((a as u128 * b as u128) % q as u128) as u64
}

fn pow_mod(mut b: u64, mut e: u64, q: u64) -> u64 {
    let mut r = 1u64 % q;
    b %= q;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, b, q);
        }
        b = mul_mod(b, b, q);
        e >>= 1;
    }
    r
}

/// BFV parameters for plaintext modulus t = 2^k, shared by client and server (both derive them from
/// k alone, deterministically).
#[derive(Debug, Clone)]
pub struct HeParams {
    k: u32,
    n: usize,
    moduli: Vec<u64>,
    n_low: usize,
    pub(crate) ctx_top: Arc<Context>,
    pub(crate) ctx_low: Arc<Context>,
    pub(crate) enc_top: Encoder,
    pub(crate) enc_low: Encoder,
    flood_bits: u32,
    log2_q_hi: f64,
    log2_delta_low: f64,
    b_pk: f64,
    /// q0⁻¹ mod q1 when the bottom level has two primes.
    inv_q0_mod_q1: u64,
}

impl HeParams {
    /// Parameters for Z_2^k, k in 8..=64 (see the module documentation for the choice).
    pub fn new(k: u32) -> Result<Self, HeError> {
        if !(8..=64).contains(&k) {
            return Err(HeError::UnsupportedRing { k });
        }
        let (n, cap) = if k <= 32 {
            (4096usize, 109u32)
        } else {
            (8192, 218)
        };
        let low_bits = k + LOW_EXTRA_BITS;
        let low_sizes: Vec<u32> = if low_bits <= 62 {
            vec![low_bits]
        } else {
            vec![low_bits.div_ceil(2), low_bits / 2]
        };
        let hi_total = cap - low_bits;
        let n_hi = hi_total.div_ceil(62);
        let hi_sizes: Vec<u32> = (0..n_hi)
            .map(|i| hi_total / n_hi + u32::from(i < hi_total % n_hi))
            .collect();
        let mut moduli: Vec<u64> = Vec::new();
        for &bits in low_sizes.iter().chain(hi_sizes.iter()) {
            let mut upper = if bits == 64 { u64::MAX } else { 1u64 << bits };
            loop {
                let p = generate_prime(bits as usize, 2 * n as u64, upper).ok_or_else(|| {
                    HeError::Params {
                        reason: format!("no {bits}-bit NTT prime for N = {n}"),
                    }
                })?;
                if !moduli.contains(&p) {
                    moduli.push(p);
                    break;
                }
                upper = p;
            }
        }
        let n_low = low_sizes.len();
        let ctx_top = Context::new_arc(&moduli, n)?;
        let ctx_low = ctx_top.context_at_level(moduli.len() - n_low)?;
        let log2 = |ms: &[u64]| ms.iter().map(|&q| (q as f64).log2()).sum::<f64>();
        let log2_q = log2(&moduli);
        let log2_q_low = log2(&moduli[..n_low]);
        let log2_q_hi = log2_q - log2_q_low;
        let flood_bits = (log2_q - k as f64).floor() as u32 - 3;
        let log2_delta_low = log2_q_low - k as f64;
        let b_pk = 2.0 * n as f64 * B_E * B_E + B_E;
        let b_round = 2.0 + (28.0 * 2.0 * CBD_VARIANCE as f64 * n as f64).sqrt();
        // Decryption margin at the bottom level (module docs).
        let delta_low = 2f64.powf(log2_delta_low);
        let noise_low = 2f64.powf(flood_bits as f64 - log2_q_hi) * (1.0 + 2f64.powi(-40))
            + b_pk / 2f64.powf(log2_q_hi)
            + 2.0 * b_round;
        if noise_low >= delta_low / 2.0 {
            return Err(HeError::Params {
                reason: format!(
                    "decryption margin violated: noise {noise_low:.0} vs Δ_low/2 = {:.0}",
                    delta_low / 2.0
                ),
            });
        }
        let inv_q0_mod_q1 = if n_low == 2 {
            pow_mod(moduli[0] % moduli[1], moduli[1] - 2, moduli[1])
        } else {
            0
        };
        Ok(HeParams {
            k,
            n,
            enc_top: Encoder::new(&moduli, k),
            enc_low: Encoder::new(&moduli[..n_low], k),
            moduli,
            n_low,
            ctx_top,
            ctx_low,
            flood_bits,
            log2_q_hi,
            log2_delta_low,
            b_pk,
            inv_q0_mod_q1,
        })
    }

    /// Ring bit width k (t = 2^k).
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Polynomial degree N.
    pub fn degree(&self) -> usize {
        self.n
    }

    /// log2 N.
    pub fn log_degree(&self) -> u32 {
        self.n.trailing_zeros()
    }

    /// All ciphertext primes, bottom (kept) first.
    pub fn moduli(&self) -> &[u64] {
        &self.moduli
    }

    /// The primes the response is switched down to.
    pub fn low_moduli(&self) -> &[u64] {
        &self.moduli[..self.n_low]
    }

    /// Flooding width F (noise uniform in [−2^F, 2^F)).
    pub fn flood_bits(&self) -> u32 {
        self.flood_bits
    }

    /// Largest product noise (log2) a stage may have: F − 40.
    pub fn max_product_noise_bits(&self) -> u32 {
        self.flood_bits - STAT_SECURITY_BITS
    }

    /// Bound on the re-randomisation noise `u·e_pk + e1 + e2·s`.
    pub(crate) fn b_pk(&self) -> f64 {
        self.b_pk
    }

    /// log2 of Q_hi (the primes dropped before download).
    pub fn log2_q_hi(&self) -> f64 {
        self.log2_q_hi
    }

    /// log2 of Δ_low = Q_low / t, the decryption scale at the bottom level.
    pub fn log2_delta_low(&self) -> f64 {
        self.log2_delta_low
    }

    /// Mask of the k low bits.
    pub fn mask(&self) -> u64 {
        ring_mask(self.k)
    }

    /// `round(x·2^k / q0) mod 2^k` for a single bottom prime (k ≤ 46, so x·2^k < 2^108): an f64
    /// estimate corrected exactly with u128 products (no u128 division).
    fn decode_single(&self, x: u64) -> u64 {
        let q = self.moduli[0] as u128;
        let num = (x as u128) << self.k;
        let est = (x as f64 / self.moduli[0] as f64) * 2f64.powi(self.k as i32);
        let mut a = est as u128;
        while a * q > num {
            a -= 1;
        }
        while (a + 1) * q <= num {
            a += 1;
        }
        if 2 * (num - a * q) >= q {
            a += 1;
        }
        (a as u64) & self.mask()
    }

    /// Decodes one coefficient of the bottom-level phase `c0 + c1·s` (residues mod the bottom primes):
    /// `round(t·x / Q_low) mod t`.
    pub(crate) fn decode_low(&self, residues: &[u64]) -> u64 {
        if self.n_low == 1 {
            return self.decode_single(residues[0]);
        }
        let (x, q): (u128, u128) = if self.n_low == 1 {
            (residues[0] as u128, self.moduli[0] as u128)
        } else {
            let (q0, q1) = (self.moduli[0], self.moduli[1]);
            let diff = (residues[1] + q1 - residues[0] % q1) % q1;
            let h = mul_mod(diff, self.inv_q0_mod_q1, q1);
            (
                residues[0] as u128 + q0 as u128 * h as u128,
                q0 as u128 * q1 as u128,
            )
        };
        // floor(x·2^k / q) by 32-bit steps (x < q < 2^84, so r << 32 fits in u128), then round.
        let mut rem = x;
        let mut quo: u128 = 0;
        let mut left = self.k;
        while left > 0 {
            let step = left.min(32);
            let v = rem << step;
            quo = (quo << step) | (v / q);
            rem = v % q;
            left -= step;
        }
        if 2 * rem >= q {
            quo += 1;
        }
        (quo as u64) & self.mask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_respect_security_caps() {
        for k in [8u32, 16, 20, 31, 32, 33, 40, 46, 47, 52, 61, 64] {
            let p = HeParams::new(k).unwrap();
            let bits: u32 = p.moduli().iter().map(|&q| 64 - q.leading_zeros()).sum();
            let cap = if p.degree() == 4096 { 109 } else { 218 };
            assert!(bits <= cap, "k={k}: {bits} bits > {cap}");
            assert!(p.degree() == 4096 || k > 32);
            let low: f64 = p.low_moduli().iter().map(|&q| (q as f64).log2()).sum();
            assert!(low > k as f64 + 15.0, "k={k}");
            assert!(p.flood_bits() >= 60, "k={k}: F={}", p.flood_bits());
        }
        assert_eq!(HeParams::new(32).unwrap().flood_bits(), 73);
        assert!(HeParams::new(7).is_err());
        assert!(HeParams::new(65).is_err());
    }

    #[test]
    fn encode_then_decode_exact() {
        // A noiseless bottom-level "ciphertext" with s = 0: c0 = encoding of m.
        for k in [8u32, 32, 50, 64] {
            let p = HeParams::new(k).unwrap();
            let mask = p.mask();
            for m in [
                0u64,
                1,
                2,
                mask / 2,
                mask / 2 + 1,
                mask - 1,
                mask,
                0x1234_5678_9abc_def0 & mask,
            ] {
                let res: Vec<u64> = (0..p.low_moduli().len())
                    .map(|i| p.enc_low.encode(m, i, mask))
                    .collect();
                assert_eq!(p.decode_low(&res), m, "k={k} m={m}");
            }
        }
    }
}
