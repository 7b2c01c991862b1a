//! Arithmetic output: the evaluator reads its additive share of a word straight from its output
//! labels, instead of the circuit subtracting the garbler's mask (`k' − 1` AND gates of 32 bytes
//! each, two hashes each for the evaluator).
//!
//! A word is `y = Σ_i ω_i · y_i mod 2^k'` over output wires `y_i` with public weights `ω_i`
//! (`2^i` for an unsigned word, `−2^j` for a sign bit), or, **gated**, `y = g · Σ_i ω_i · y_i`
//! with one more output wire `g` (a ReLU's "not negative": the zeroing by the sign costs no AND
//! gate then). `H(L, T) mod 2^k'` is the hash of a label `L` under tweak `T`; `L^c` is the label
//! of colour `c` (its lsb) of a wire whose zero-label has colour `p`, so `L^c` has value `p ⊕ c`.
//!
//! **Plain term** (one wire, tweak `T_i`; one word sent):
//!
//! ```text
//! ρ_i = H(L^0, T_i) − p·ω_i                     (the colour-0 row is implicit)
//! c_i = ρ_i + (1 − p)·ω_i − H(L^1, T_i)          (sent)
//! evaluator, active label L of colour s:  v_i = H(L, T_i) + s·c_i = ρ_i + ω_i·y_i
//! ```
//!
//! **Gated term** (wire `x`, gate `g`; three words sent): the row of colours `(a, b)` has the key
//! `K(a, b) = H(X^a, T_i,b) + H(G^b, T'_i,a)`, each label hashed under a tweak that names the
//! other label's colour, so that every row the evaluator cannot open holds a hash of its own
//! (`H(G^b', T'_i,a)`, `H(X^a', T_i,b)`, `H(X^a', T_i,b') + H(G^b', T'_i,a')`: with
//! `K = H(X) + H(G)` alone the four keys would sum to zero and leak `x ⊕ g`):
//!
//! ```text
//! ρ_i = K(0, 0) − ω_i·px·pg                      (implicit)
//! c_i(a, b) = ρ_i + ω_i·(px ⊕ a)·(pg ⊕ b) − K(a, b)    for (a, b) = (0,1), (1,0), (1,1) (sent)
//! evaluator, active colours (a, b):       v_i = K(a, b) + c_i(a, b) = ρ_i + ω_i·x_i·g
//! ```
//!
//! Then, per instance, for the garbler's mask `m`: `κ = Σ_i ρ_i + m` (sent), and the evaluator's
//! share is `o = Σ_i v_i − κ = y − m`; the garbler's is `m`.
//!
//! What the evaluator sees: labels (uniform, colours uniform), the ciphertexts, each masked by
//! the hash of a label it does not hold under a tweak used nowhere else (pseudorandom under the
//! tweakable circular-correlation-robust hash, as the half-gates rows are), and `κ`, masked by the
//! fresh uniform `m`. So its view is independent of `y`. Tweaks are
//! `session ‖ instance ‖ (2·ANDs + j)`, after the circuit's AND-gate tweaks (`2·gate + half <
//! 2·ANDs`): `j = i` for a plain term, `j = 4i + b` (`X`) and `4i + 2 + a` (`G`) for a gated one.

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

/// How a circuit's output wires make one word in `Z_2^k'`: the public weight of every term, and
/// whether a last output wire gates them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareOutput {
    k_out: u32,
    weights: Vec<u64>,
    gated: bool,
    /// Tweak index of the first term: `2 · ANDs` of the circuit.
    first_tweak: u32,
}

/// The evaluator's decoding of one batch: per instance, the ciphertexts of every term (one word
/// each, three for a gated term) and the correction `κ`, each a little-endian word of `⌈k'/8⌉`
/// bytes.
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

/// Instances hashed per batch: enough blocks in flight for the AES kernels, scratch of a few
/// hundred KB at most.
const HASH_BLOCK: usize = 256;

/// Constant-time `if bit { x } else { 0 }`.
#[inline(always)]
fn sel(x: u64, bit: bool) -> u64 {
    x & (bit as u64).wrapping_neg()
}

/// The low 64 bits of a hash (reduced mod 2^k' by the caller).
#[inline(always)]
fn low(b: Block) -> u64 {
    b.to_u128() as u64
}

impl ShareOutput {
    /// Terms with `weights` (reduced mod 2^k_out, k_out ∈ [2, 64]), one output wire each, for a
    /// circuit of `ands` AND gates.
    pub(crate) fn new(k_out: u32, weights: Vec<u64>, ands: usize) -> Self {
        Self::build(k_out, weights, false, ands)
    }

    /// [`ShareOutput::new`] with every term multiplied by the circuit's last output wire.
    pub(crate) fn gated(k_out: u32, weights: Vec<u64>, ands: usize) -> Self {
        Self::build(k_out, weights, true, ands)
    }

    fn build(k_out: u32, weights: Vec<u64>, gated: bool, ands: usize) -> Self {
        debug_assert!((2..=64).contains(&k_out));
        // The ReLU and max-pool circuits refuse the shifts that would leave no result bit.
        assert!(
            !weights.is_empty(),
            "an arithmetic output has at least one term"
        );
        let span = if gated { 4 } else { 1 } * weights.len();
        // The ReLU and max-pool circuits are far below the 2^31 AND gates that would overflow it.
        let first_tweak = u32::try_from(2 * ands + span)
            .map(|end| end - span as u32)
            .expect("tweak indices fit in 32 bits");
        let weights = weights.into_iter().map(|w| w & mask(k_out)).collect();
        ShareOutput {
            k_out,
            weights,
            gated,
            first_tweak,
        }
    }

    /// Output wires per instance: one per term, and the gate.
    pub fn wires(&self) -> usize {
        self.weights.len() + self.gated as usize
    }

    /// Terms of the word.
    pub fn terms(&self) -> usize {
        self.weights.len()
    }

    /// Whether the last output wire gates every term.
    pub fn is_gated(&self) -> bool {
        self.gated
    }

    /// Words sent per term.
    fn words_per_term(&self) -> usize {
        if self.gated {
            3
        } else {
            1
        }
    }

    /// Words per instance on the wire.
    fn words(&self) -> usize {
        self.terms() * self.words_per_term() + 1
    }

    /// Bytes of one word on the wire.
    fn word_bytes(&self) -> usize {
        self.k_out.div_ceil(8) as usize
    }

    /// Bytes of the decoding of `instances` instances (saturating: sizes come from a peer).
    pub fn decoding_len(&self, instances: usize) -> usize {
        instances
            .saturating_mul(self.words())
            .saturating_mul(self.word_bytes())
    }

    /// The evaluator's share `word(bits) − m mod 2^k'` the plain circuit's output `bits` give
    /// (the reference that the garbled output must match).
    pub fn share(&self, bits: &[bool], m: u64) -> u64 {
        self.word(bits).wrapping_sub(m) & mask(self.k_out)
    }

    /// The plain value of one instance's output bits: `Σ ω_i · y_i mod 2^k'`, times the gate.
    pub fn word(&self, bits: &[bool]) -> u64 {
        let sum = self
            .weights
            .iter()
            .zip(bits)
            .fold(0u64, |acc, (&w, &b)| acc.wrapping_add(sel(w, b)));
        let on = !self.gated || bits.get(self.terms()).copied().unwrap_or(false);
        sel(sum, on) & mask(self.k_out)
    }

    /// The tweak of index 0 of instance `instance`: add `j` for index `first_tweak + j`.
    fn tweak_base(&self, domain: TweakDomain, instance: usize) -> u128 {
        let inst = domain.first_instance.wrapping_add(instance as u32);
        (u128::from(domain.session_id) << 64)
            | (u128::from(inst) << 32)
            | u128::from(self.first_tweak)
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
        let (w, n) = (self.wires(), masks.len());
        if zero.len() != n * w {
            return Err(GarbleError::Length {
                what: "output zero-labels",
                expected: n * w,
                got: zero.len(),
                unit: "blocks",
            });
        }
        domain.check(n)?;
        let d = delta.as_block();
        // The hashes the garbler needs, a block of instances per batch (bounded scratch),
        // label-colour-major per term: plain `[L^0, L^1]`, gated `[X^a under T_b, G^b under
        // T'_a]` for a, b ∈ {0, 1}. A gated term hashes each of its labels under two tweaks and
        // `G` under two per term: π of every label once (`permuted`, per instance `[W^0, W^1]`
        // for each wire), then the second half of each hash.
        let (t, per_term) = (self.terms(), if self.gated { 8 } else { 2 });
        let per_inst = per_term * t;
        let mut tweaks = Vec::with_capacity(per_inst * HASH_BLOCK.min(n));
        let mut hashed = Vec::with_capacity(tweaks.capacity());
        let mut permuted = Vec::with_capacity(2 * w * HASH_BLOCK.min(n));
        let of_colour = |z: Block, c: bool| z ^ d.select(z.lsb() ^ c);
        let mk = mask(self.k_out);
        let wb = self.word_bytes();
        // Every word is stored as 8 bytes and the next one overwrites the excess (one fixed-size
        // store per word); the last word's excess is cut off at the end.
        let len = self.decoding_len(n);
        let mut bytes = vec![0u8; len + 8];
        let mut at = 0;
        let mut put = |v: u64| {
            bytes[at..at + 8].copy_from_slice(&(v & mk).to_le_bytes());
            at += wb;
        };
        for first in (0..n).step_by(HASH_BLOCK) {
            let block = first..n.min(first + HASH_BLOCK);
            permuted.clear();
            for &z in &zero[block.start * w..block.end * w] {
                permuted.extend([of_colour(z, false), of_colour(z, true)]);
            }
            pi.permute_many(&mut permuted);
            tweaks.resize(block.len() * per_inst, Block::ZERO);
            hashed.resize(block.len() * per_inst, Block::ZERO);
            let inputs = tweaks
                .chunks_exact_mut(per_inst)
                .zip(hashed.chunks_exact_mut(per_inst));
            for ((k, inst), (tw, hs)) in block.clone().enumerate().zip(inputs) {
                // π(W^0), π(W^1) of each wire of this instance.
                let pw = &permuted[2 * k * w..2 * (k + 1) * w];
                let base = self.tweak_base(domain, inst);
                let tweak = |j: usize| Block::from_u128(base + j as u128);
                let terms = tw
                    .chunks_exact_mut(per_term)
                    .zip(hs.chunks_exact_mut(per_term));
                for (i, (tw, hs)) in terms.enumerate() {
                    let (x0, x1) = (pw[2 * i], pw[2 * i + 1]);
                    if self.gated {
                        // X^a under T_b and G^b under T'_a, for (a, b) = (0,0), (0,1), (1,0),
                        // (1,1); T_b = tweak(4i + b), T'_a = tweak(4i + 2 + a).
                        let (g0, g1) = (pw[2 * t], pw[2 * t + 1]);
                        let [t0, t1, t2, t3] = [0, 1, 2, 3].map(|j| tweak(4 * i + j));
                        hs.copy_from_slice(&[x0, g0, x0, g1, x1, g0, x1, g1]);
                        tw.copy_from_slice(&[t0, t2, t1, t2, t0, t3, t1, t3]);
                    } else {
                        hs.copy_from_slice(&[x0, x1]);
                        tw.copy_from_slice(&[tweak(i), tweak(i)]);
                    }
                }
            }
            pi.tccr_many_permuted(&tweaks, &mut hashed);
            for (inst, h) in block.zip(hashed.chunks_exact(per_inst)) {
                let labels = &zero[inst * w..(inst + 1) * w];
                let mut kappa = masks[inst];
                let terms = self.weights.iter().zip(h.chunks_exact(per_term));
                for (i, (&omega, h)) in terms.enumerate() {
                    let px = labels[i].lsb();
                    if self.gated {
                        let pg = labels[t].lsb();
                        // K(a, b) for (a, b) = (0,0), (0,1), (1,0), (1,1).
                        let key: [u64; 4] =
                            std::array::from_fn(|j| low(h[2 * j]).wrapping_add(low(h[2 * j + 1])));
                        let value = |a: bool, b: bool| sel(omega, (px ^ a) & (pg ^ b));
                        let rho = key[0].wrapping_sub(value(false, false));
                        for (j, (a, b)) in [(false, true), (true, false), (true, true)]
                            .into_iter()
                            .enumerate()
                        {
                            put(rho.wrapping_add(value(a, b)).wrapping_sub(key[j + 1]));
                        }
                        kappa = kappa.wrapping_add(rho);
                    } else {
                        let (h0, h1) = (low(h[0]), low(h[1]));
                        let rho = h0.wrapping_sub(sel(omega, px));
                        put(rho.wrapping_add(sel(omega, !px)).wrapping_sub(h1));
                        kappa = kappa.wrapping_add(rho);
                    }
                }
                put(kappa);
            }
            wipe(&mut hashed);
            wipe(&mut permuted);
        }
        bytes.truncate(len);
        Ok(ShareDecoding {
            word_bytes: wb,
            per_instance: self.words(),
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
        // One hash per term, two per gated term, each under the tweak the colours name; a block
        // of instances per batch, the block's words read once. π of each label once (`G` is
        // hashed once per term), then the second half of each hash.
        let (t, per) = (self.terms(), self.words());
        let hashes = t * (1 + self.gated as usize);
        let mut tweaks = Vec::with_capacity(hashes * HASH_BLOCK.min(n));
        let mut hashed = Vec::with_capacity(tweaks.capacity());
        let mut permuted = Vec::with_capacity(w * HASH_BLOCK.min(n));
        let mut words = Vec::with_capacity(per * HASH_BLOCK.min(n));
        let mk = mask(self.k_out);
        let mut shares = Vec::with_capacity(n);
        for first in (0..n).step_by(HASH_BLOCK) {
            let block = first..n.min(first + HASH_BLOCK);
            decoding.read_words(block.clone(), &mut words);
            permuted.clear();
            permuted.extend_from_slice(&blocks[block.start * w..block.end * w]);
            pi.permute_many(&mut permuted);
            tweaks.resize(block.len() * hashes, Block::ZERO);
            hashed.resize(block.len() * hashes, Block::ZERO);
            let inputs = tweaks
                .chunks_exact_mut(hashes)
                .zip(hashed.chunks_exact_mut(hashes));
            for ((k, inst), (tw, hs)) in block.clone().enumerate().zip(inputs) {
                let labels = &blocks[inst * w..(inst + 1) * w];
                let pw = &permuted[k * w..(k + 1) * w];
                let base = self.tweak_base(domain, inst);
                if self.gated {
                    let sg = labels[t].lsb() as u128;
                    let terms = tw.chunks_exact_mut(2).zip(hs.chunks_exact_mut(2));
                    for (i, (tw, hs)) in terms.enumerate() {
                        let j = base + 4 * i as u128;
                        let sx = labels[i].lsb() as u128;
                        tw.copy_from_slice(&[j + sg, j + 2 + sx].map(Block::from_u128));
                        hs.copy_from_slice(&[pw[i], pw[t]]);
                    }
                } else {
                    for (i, (tw, hs)) in tw.iter_mut().zip(hs.iter_mut()).enumerate() {
                        *tw = Block::from_u128(base + i as u128);
                        *hs = pw[i];
                    }
                }
            }
            pi.tccr_many_permuted(&tweaks, &mut hashed);
            for (k, inst) in block.enumerate() {
                let labels = &blocks[inst * w..(inst + 1) * w];
                let words = &words[k * per..(k + 1) * per];
                let hashed = &hashed[k * hashes..(k + 1) * hashes];
                let mut sum = 0u64;
                if self.gated {
                    let sg = labels[t].lsb();
                    for (i, x) in labels[..t].iter().enumerate() {
                        let sx = x.lsb();
                        let key = low(hashed[2 * i]).wrapping_add(low(hashed[2 * i + 1]));
                        // The ciphertext of the active row, selected without branching.
                        let c = sel(words[3 * i], !sx & sg)
                            .wrapping_add(sel(words[3 * i + 1], sx & !sg))
                            .wrapping_add(sel(words[3 * i + 2], sx & sg));
                        sum = sum.wrapping_add(key).wrapping_add(c);
                    }
                } else {
                    for (i, x) in labels[..t].iter().enumerate() {
                        let v = low(hashed[i]).wrapping_add(sel(words[i], x.lsb()));
                        sum = sum.wrapping_add(v);
                    }
                }
                shares.push(sum.wrapping_sub(words[per - 1]) & mk);
            }
            // π(L) gives L: wiped as the output labels are.
            wipe(&mut permuted);
            wipe(&mut hashed);
        }
        Ok(shares)
    }
}

impl ShareDecoding {
    /// The words of instances `range`, as `u64`, into `out` (cleared first).
    fn read_words(&self, range: std::ops::Range<usize>, out: &mut Vec<u64>) {
        let per = self.per_instance * self.word_bytes;
        let bytes = &self.bytes[range.start * per..range.end * per];
        out.clear();
        match self.word_bytes {
            4 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            ),
            wb => out.extend(bytes.chunks_exact(wb).map(|b| {
                let mut le = [0u8; 8];
                le[..wb].copy_from_slice(b);
                u64::from_le_bytes(le)
            })),
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
        // Bits at and above k' within each word's last byte must be zero.
        let high = !(mask(output.k_out) >> (8 * (wb - 1))) as u8;
        if bytes.chunks_exact(wb).any(|w| w[wb - 1] & high != 0) {
            return Err(GarbleError::Length {
                what: "share decoding (a word wider than the ring)",
                expected: output.k_out as usize,
                got: 64,
                unit: "bits",
            });
        }
        Ok(ShareDecoding {
            word_bytes: wb,
            per_instance: output.words(),
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

    /// The rows of a gated term must not have keys that sum to zero: with
    /// `K(a, b) = H(X^a) + H(G^b)` the alternating sum of the three ciphertexts (the fourth row is
    /// implicit) is `±ω`, which tells the evaluator `x ⊕ g`. With the colour-named tweaks it is
    /// pseudorandom.
    #[test]
    fn a_gated_terms_ciphertexts_do_not_reveal_x_xor_g() {
        let mut rng = Csprng::from_seed([32; 32]);
        let relu = ReluCircuit::with_output_ring(8, 32, 0, ReluVariant::Relu).unwrap();
        let n = 64;
        let m: Vec<u64> = (0..n).map(|_| rng.u64() & mask(32)).collect();
        let domain = TweakDomain {
            session_id: 1,
            first_instance: 0,
        };
        let g = relu
            .garble(crate::Delta::random(&mut rng), domain, &m, None, &mut rng)
            .unwrap();
        let terms = relu.output().terms();
        let word = |i: usize| {
            let b = &g.decoding.as_bytes()[4 * i..4 * i + 4];
            u32::from_le_bytes(b.try_into().unwrap())
        };
        for inst in 0..n {
            for t in 0..terms {
                let at = inst * (3 * terms + 1) + 3 * t;
                let sum = word(at + 2)
                    .wrapping_sub(word(at))
                    .wrapping_sub(word(at + 1));
                let omega = 1u32 << t;
                assert!(
                    sum != omega && sum != omega.wrapping_neg(),
                    "instance {inst} term {t}"
                );
            }
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
