//! Arithmetic output: the evaluator reads its additive share of a word straight from its output
//! labels, one `k'`-bit ciphertext per output bit, instead of the circuit subtracting the
//! garbler's mask (`k' − 1` AND gates of 32 bytes each, two hashes each for the evaluator).
//!
//! A word is `y = Σ_i ω_i · y_i mod 2^k'` over output wires `y_i` with public weights `ω_i`
//! (`2^i` for an unsigned word, `−2^j` for a sign bit). For output wire `i` of an instance with
//! zero-label `Z` (colour `p = lsb(Z)`) and `h_b = H(Z ⊕ b·Δ, T_i) mod 2^k'`, `T_i` the wire's
//! tweak:
//!
//! ```text
//! the label of colour 0 is Z ⊕ p·Δ (value p):  ρ_i = h_p − p·ω_i                (not sent)
//! the label of colour 1 (value 1 − p):         c_i = ρ_i + (1 − p)·ω_i − h_(1−p)  (sent)
//! per instance, for the garbler's mask m:      κ = Σ_i ρ_i + m                      (sent)
//! evaluator, active label L of colour s:       v_i = H(L, T_i) + s·c_i = ρ_i + y_i·ω_i
//!                                              o = Σ_i v_i − κ = y − m
//! ```
//!
//! The garbler's share is `m`. What the evaluator sees: labels (uniform, colours uniform), the
//! `c_i`, each masked by the hash of the label it does not hold (pseudorandom under the
//! tweakable circular-correlation-robust hash, exactly as the half-gates rows are), and `κ`,
//! masked by the fresh uniform `m`. So its view is independent of `y`. Tweaks
//! `T_i = session ‖ instance ‖ (2·ANDs + i)` follow the circuit's AND-gate tweaks
//! (`2·j + half < 2·ANDs`) and never repeat one.

use crate::circuit::Circuit;
use crate::error::{CircuitError, GarbleError};
use crate::garble::{Garbled, Garbler};
use crate::label::{Delta, GarbledTables, OutputLabels, TweakDomain};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use cryptonas_ring::mask;
use zeroize::Zeroize;

/// Wipes label material (with Δ, zero-labels give every label of the batch).
fn wipe(blocks: &mut [Block]) {
    bytemuck::cast_slice_mut::<Block, u8>(blocks).zeroize();
}

/// How a circuit's output wires make one word in `Z_2^k'`: the public weight of every wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareOutput {
    k_out: u32,
    weights: Vec<u64>,
    /// Tweak index of the first output wire: `2 · ANDs` of the circuit.
    first_tweak: u32,
}

/// The evaluator's decoding of one batch: per instance, the ciphertext `c_i` of every output wire
/// and the correction `κ`, each a little-endian word of `⌈k'/8⌉` bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareDecoding {
    word_bytes: usize,
    per_instance: usize,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for ShareDecoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShareDecoding({} bytes)", self.bytes.len())
    }
}

/// Constant-time `if bit { x } else { 0 }`.
#[inline(always)]
fn sel(x: u64, bit: bool) -> u64 {
    x & (bit as u64).wrapping_neg()
}

impl ShareOutput {
    /// Output wires with `weights` (reduced mod 2^k_out, k_out ∈ [2, 64]) for a circuit of `ands`
    /// AND gates.
    pub(crate) fn new(k_out: u32, weights: Vec<u64>, ands: usize) -> Self {
        debug_assert!((2..=64).contains(&k_out));
        // The ReLU and max-pool circuits are far below the 2^31 AND gates that would overflow it.
        let first_tweak = u32::try_from(2 * ands + weights.len())
            .map(|end| end - weights.len() as u32)
            .expect("tweak indices fit in 32 bits");
        let weights = weights.into_iter().map(|w| w & mask(k_out)).collect();
        ShareOutput {
            k_out,
            weights,
            first_tweak,
        }
    }

    /// Output wires per instance.
    pub fn wires(&self) -> usize {
        self.weights.len()
    }

    /// The plain value of one instance's output bits: `Σ ω_i · y_i mod 2^k'`.
    pub fn word(&self, bits: &[bool]) -> u64 {
        self.weights
            .iter()
            .zip(bits)
            .fold(0u64, |acc, (&w, &b)| acc.wrapping_add(sel(w, b)))
            & mask(self.k_out)
    }

    /// Garbles `masks.len()` instances of `circuit` (no garbler-private inputs; its outputs are
    /// this word's wires) and their arithmetic output masked with `masks`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn garble_circuit(
        &self,
        circuit: &Circuit,
        pi: &FixedKeyAes,
        delta: Delta,
        domain: TweakDomain,
        masks: &[u64],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled<ShareDecoding>, GarbleError> {
        if let Some(&value) = masks.iter().find(|&&m| m & !mask(self.k_out) != 0) {
            return Err(CircuitError::ValueTooWide {
                value,
                width: self.k_out,
            }
            .into());
        }
        let mut tables = GarbledTables::default();
        let (mut zero, encoder) = Garbler::new(circuit, domain)
            .with_pi(pi.clone())
            .garble_labels_into(delta, masks.len(), &[], evaluator_zero, rng, &mut tables)?;
        let decoding = self.garble(pi, &encoder.delta, domain, &zero, masks);
        wipe(&mut zero);
        Ok(Garbled {
            tables,
            decoding: decoding?,
            encoder,
        })
    }

    /// Bytes of one word on the wire.
    fn word_bytes(&self) -> usize {
        self.k_out.div_ceil(8) as usize
    }

    /// Bytes of the decoding of `instances` instances (saturating: sizes come from a peer).
    pub fn decoding_len(&self, instances: usize) -> usize {
        instances
            .saturating_mul(self.wires() + 1)
            .saturating_mul(self.word_bytes())
    }

    fn tweak(&self, domain: TweakDomain, instance: usize, wire: usize) -> Block {
        let inst = domain.first_instance.wrapping_add(instance as u32);
        Block::from_u128(
            (u128::from(domain.session_id) << 64)
                | (u128::from(inst) << 32)
                | u128::from(self.first_tweak + wire as u32),
        )
    }

    /// The garbler's half: the decoding for output zero-labels `zero` (instance-major, `wires()`
    /// per instance) and the garbler's shares `masks` (one per instance).
    pub(crate) fn garble(
        &self,
        pi: &FixedKeyAes,
        delta: &Delta,
        domain: TweakDomain,
        zero: &[Block],
        masks: &[u64],
    ) -> Result<ShareDecoding, GarbleError> {
        let w = self.wires();
        let n = masks.len();
        if zero.len() != n * w {
            return Err(GarbleError::Length {
                what: "output zero-labels",
                expected: n * w,
                got: zero.len(),
                unit: "blocks",
            });
        }
        domain.check(n)?;
        let mk = mask(self.k_out);
        let d = delta.as_block();
        // h_0 and h_1 of every wire, in one batch: [Z, Z ⊕ Δ] per wire.
        let mut tweaks = Vec::with_capacity(2 * n * w);
        let mut hashed = Vec::with_capacity(2 * n * w);
        for (j, z) in zero.iter().enumerate() {
            let t = self.tweak(domain, j / w, j % w);
            tweaks.extend([t, t]);
            hashed.extend([*z, *z ^ d]);
        }
        pi.tccr_many(&tweaks, &mut hashed);
        let wb = self.word_bytes();
        let mut bytes = Vec::with_capacity(self.decoding_len(n));
        for (i, &m) in masks.iter().enumerate() {
            let mut kappa = m;
            for (wire, &omega) in self.weights.iter().enumerate() {
                let j = i * w + wire;
                let p = zero[j].lsb();
                let (h0, h1) = (low(hashed[2 * j]), low(hashed[2 * j + 1]));
                // The hashes of the colour-0 and colour-1 labels, selected without branching on p.
                let flip = sel(h0 ^ h1, p);
                let (hc0, hc1) = (h0 ^ flip, h1 ^ flip);
                let rho = hc0.wrapping_sub(sel(omega, p));
                let c = rho.wrapping_add(sel(omega, !p)).wrapping_sub(hc1) & mk;
                bytes.extend_from_slice(&c.to_le_bytes()[..wb]);
                kappa = kappa.wrapping_add(rho);
            }
            bytes.extend_from_slice(&(kappa & mk).to_le_bytes()[..wb]);
        }
        wipe(&mut hashed);
        Ok(ShareDecoding {
            word_bytes: wb,
            per_instance: w + 1,
            bytes,
        })
    }

    /// The evaluator's shares `o = y − m`, one per instance, from its output labels.
    pub fn decode(
        &self,
        pi: &FixedKeyAes,
        domain: TweakDomain,
        labels: &OutputLabels,
        decoding: &ShareDecoding,
    ) -> Result<Vec<u64>, GarbleError> {
        let w = self.wires();
        let blocks = labels.blocks();
        let n = blocks.len() / w.max(1);
        if blocks.len() != n * w || decoding.bytes.len() != self.decoding_len(n) {
            return Err(GarbleError::Length {
                what: "share decoding",
                expected: self.decoding_len(n),
                got: decoding.bytes.len(),
                unit: "bytes",
            });
        }
        domain.check(n)?;
        let tweaks: Vec<Block> = (0..n * w)
            .map(|j| self.tweak(domain, j / w, j % w))
            .collect();
        let mut hashed = blocks.to_vec();
        pi.tccr_many(&tweaks, &mut hashed);
        let mk = mask(self.k_out);
        Ok((0..n)
            .map(|i| {
                let words = decoding.instance(i);
                let sum = (0..w).fold(0u64, |acc, wire| {
                    let j = i * w + wire;
                    let v = low(hashed[j]).wrapping_add(sel(words.word(wire), blocks[j].lsb()));
                    acc.wrapping_add(v)
                });
                sum.wrapping_sub(words.word(w)) & mk
            })
            .collect())
    }
}

/// The low 64 bits of a hash (reduced mod 2^k' by the caller).
#[inline(always)]
fn low(b: Block) -> u64 {
    b.to_u128() as u64
}

/// One instance's words within a [`ShareDecoding`].
struct Words<'a> {
    bytes: &'a [u8],
    word_bytes: usize,
}

impl Words<'_> {
    fn word(&self, i: usize) -> u64 {
        let mut le = [0u8; 8];
        le[..self.word_bytes]
            .copy_from_slice(&self.bytes[i * self.word_bytes..][..self.word_bytes]);
        u64::from_le_bytes(le)
    }
}

impl ShareDecoding {
    fn instance(&self, i: usize) -> Words<'_> {
        let per = self.per_instance * self.word_bytes;
        Words {
            bytes: &self.bytes[i * per..][..per],
            word_bytes: self.word_bytes,
        }
    }

    /// The bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Instances covered.
    pub fn instances(&self) -> usize {
        self.bytes.len() / (self.per_instance * self.word_bytes)
    }

    /// Checks that `len` bytes are the decoding of `instances` instances of `output` (for a party
    /// that checks a declared size before the bytes arrive).
    pub fn check_len(
        output: &ShareOutput,
        instances: usize,
        len: usize,
    ) -> Result<(), GarbleError> {
        let expected = output.decoding_len(instances);
        if len != expected {
            return Err(GarbleError::Length {
                what: "share decoding",
                expected,
                got: len,
                unit: "bytes",
            });
        }
        Ok(())
    }

    /// Parses the decoding of `instances` instances of `output`: the length must be exact and every
    /// word below 2^k'.
    pub fn from_bytes(
        output: &ShareOutput,
        instances: usize,
        bytes: &[u8],
    ) -> Result<Self, GarbleError> {
        Self::check_len(output, instances, bytes.len())?;
        let wb = output.word_bytes();
        let high = !mask(output.k_out);
        let words = Words {
            bytes,
            word_bytes: wb,
        };
        if (0..bytes.len() / wb).any(|i| words.word(i) & high != 0) {
            return Err(GarbleError::Length {
                what: "share decoding (a word wider than the ring)",
                expected: output.k_out as usize,
                got: 64,
                unit: "bits",
            });
        }
        Ok(ShareDecoding {
            word_bytes: wb,
            per_instance: output.wires() + 1,
            bytes: bytes.to_vec(),
        })
    }

    /// The decoding of instances `range` (to decode a slice evaluated separately, see
    /// [`crate::GarbledTables::slice`]).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<ShareDecoding, GarbleError> {
        if range.start > range.end || range.end > self.instances() {
            return Err(GarbleError::Length {
                what: "share decoding slice",
                expected: self.instances(),
                got: range.end,
                unit: "instances",
            });
        }
        let per = self.per_instance * self.word_bytes;
        Ok(ShareDecoding {
            word_bytes: self.word_bytes,
            per_instance: self.per_instance,
            bytes: self.bytes[range.start * per..range.end * per].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Evaluator, MaxPoolCircuit, ReluCircuit, ReluVariant, ShareDecoding, TweakDomain};
    use cryptonas_crypto::{Csprng, FixedKeyAes};
    use cryptonas_ring::mask;

    /// Every (a, b) of a 6-bit ring, garbled, against the reference, for output rings whose words
    /// are not whole bytes too; and the decoding refuses words wider than the ring.
    #[test]
    fn garbled_relu_shares_match_the_reference_exhaustively() {
        let mut rng = Csprng::from_seed([31; 32]);
        let pi = FixedKeyAes::new([5; 16]);
        for (k_out, t) in [(6u32, 0u32), (9, 2), (13, 0), (4, 3)] {
            let relu = ReluCircuit::with_output_ring(6, k_out, t, ReluVariant::Relu).unwrap();
            let a: Vec<u64> = (0..4096).map(|v| v & 63).collect();
            let b: Vec<u64> = (0..4096).map(|v| v >> 6).collect();
            let m: Vec<u64> = (0..4096).map(|_| rng.u64() & mask(k_out)).collect();
            let domain = TweakDomain {
                session_id: 77,
                first_instance: 3,
            };
            let g = relu
                .garble_with_pi(
                    &pi,
                    crate::Delta::random(&mut rng),
                    domain,
                    &m,
                    None,
                    &mut rng,
                )
                .unwrap();
            let ga = relu.encode_garbler(&g.encoder, &a).unwrap();
            let eb = relu.encode_evaluator(&g.encoder, &b).unwrap();
            let out = Evaluator::new(relu.circuit(), domain)
                .with_pi(pi.clone())
                .evaluate(&g.tables, &ga, &eb)
                .unwrap();
            let bytes = g.decoding.as_bytes();
            let decoding = ShareDecoding::from_bytes(relu.output(), 4096, bytes).unwrap();
            let o = relu.decode(&pi, domain, &out, &decoding).unwrap();
            for i in 0..4096 {
                assert_eq!(
                    o[i],
                    relu.reference(a[i], b[i], m[i]),
                    "k'={k_out} t={t} {i}"
                );
            }
            if k_out % 8 != 0 {
                let mut wide = bytes.to_vec();
                wide[k_out.div_ceil(8) as usize - 1] |= 0x80;
                assert!(ShareDecoding::from_bytes(relu.output(), 4096, &wide).is_err());
            }
            assert!(relu
                .decode(&pi, domain, &out, &decoding.slice(0..4095).unwrap())
                .is_err());
        }
    }

    /// Without the ReLU a max pool's sign bit weighs −2^(k−1−t): the sign extension costs nothing.
    #[test]
    fn a_signed_result_is_sign_extended_through_the_weights() {
        let c = MaxPoolCircuit::new(8, 16, 2, 1, false).unwrap();
        assert_eq!(c.output().wires(), 6);
        assert_eq!(c.circuit().and_count(), 7);
        // −20 >> 2 = −5 in 16 bits.
        assert_eq!(c.plain(&[0xec], &[0], 0).unwrap(), 0xfffb);
        assert_eq!(c.reference(&[0xec], &[0], 0), 0xfffb);
    }
}
