//! The garbled top-k of the protocol's output stage: on shares `a` (garbler) and `b` (evaluator)
//! of `n` logits `x_i = a_i + b_i mod 2^k`, output to the evaluator the indices of the `top`
//! largest logits, largest first, as two's-complement integers; equal logits rank by the lower
//! index first (the rule `cryptonas_model::fixed::rank_logits` follows, so a private top-k is
//! bit-exact with the plaintext engine). `top = 1` is the arg-max. The indices are the output in
//! the clear (no mask): the evaluator learns them and nothing else, the garbler learns nothing.
//!
//! Construction: each round runs a tournament over `(alive, x_i ⊕ 2^(k−1), i)`, comparing the
//! first two as one unsigned `k + 1`-bit key (flipping the sign bit turns the signed order into
//! the unsigned one; a removed logit has `alive = 0` and loses to every live one). The left
//! operand of every comparison holds the lower indices and wins ties, so a round's winner is the
//! lowest index among the maxima. After a round, the winner's `alive` bit is cleared (an equality
//! test of its index against each constant `i`).
//!
//! Cost in AND gates (`w = ⌈log2 n⌉` index bits): `n(k − 1)` for the additions, then per round at
//! most `(n − 1)(2(k + 1) + w)` for the comparisons and multiplexers, and between rounds at most
//! `n · w` to clear the winner: top-1 over 10 logits at k = 32 costs 870 (see the `and_counts`
//! test), a few ReLUs' worth.

use crate::builder::{CircuitBuilder, Wire};
use crate::circuit::Circuit;
use crate::error::{CircuitError, GarbleError};
use crate::garble::{Garbled, Garbler};
use crate::label::{ActiveLabels, DecodingBits, Delta, Encoder, OutputLabels, TweakDomain};
use crate::relu::{bits_to_words, words_to_bits};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use cryptonas_ring::mask;

/// Most logits a top-k circuit takes (a bound on the circuit's size; far above any class count).
pub const MAX_TOPK_CLASSES: usize = 1 << 16;

/// Most `top · classes` a top-k circuit takes: its comparisons grow with the product, so this
/// bounds what a plan from a server can make a client build (at most about 7.4 M AND gates at
/// k = 32, the size of a large model's ReLU layers): e.g. the top 10 of 6,553 classes, a full
/// ranking of 256, the top 65 of ImageNet's 1,000.
pub const MAX_TOPK_PAIRS: usize = 1 << 16;

/// The top-k circuit for one `(k, n, top)`, with word-level helpers.
#[derive(Clone, Debug)]
pub struct TopKCircuit {
    k: u32,
    classes: usize,
    top: usize,
    circuit: Circuit,
}

/// One candidate in a tournament: its comparison key (`k + 1` bits, little endian: the flipped
/// logit, then `alive` on top) and its index.
struct Candidate {
    key: Vec<Wire>,
    index: Vec<Wire>,
}

impl TopKCircuit {
    /// Builds the circuit for `classes` logits in `Z_2^k` (k ∈ [2, 64], classes ∈ [2,
    /// [`MAX_TOPK_CLASSES`]]) revealing the `top` ∈ [1, classes] largest.
    pub fn new(k: u32, classes: usize, top: usize) -> Result<Self, CircuitError> {
        if !(2..=64).contains(&k) {
            return Err(CircuitError::Parameter {
                name: "k",
                value: k as u64,
                range: "[2, 64]",
            });
        }
        if !(2..=MAX_TOPK_CLASSES).contains(&classes) {
            return Err(CircuitError::Parameter {
                name: "classes",
                value: classes as u64,
                range: "[2, 65536]",
            });
        }
        if !(1..=classes).contains(&top) {
            return Err(CircuitError::Parameter {
                name: "top",
                value: top as u64,
                range: "[1, classes]",
            });
        }
        if top.saturating_mul(classes) > MAX_TOPK_PAIRS {
            return Err(CircuitError::Parameter {
                name: "top × classes",
                value: top.saturating_mul(classes) as u64,
                range: "[2, 65536]",
            });
        }
        let ku = k as usize;
        let w = Self::index_bits_for(classes) as usize;
        let mut b = CircuitBuilder::new();
        let a = b.garbler_input(ku * classes);
        let e = b.evaluator_input(ku * classes);
        // Unsigned keys: x ⊕ 2^(k−1) orders like the signed x.
        let flipped: Vec<Vec<Wire>> = (0..classes)
            .map(|i| {
                let mut x = b.add(&a[i * ku..(i + 1) * ku], &e[i * ku..(i + 1) * ku]);
                x[ku - 1] = b.inv(x[ku - 1]);
                x
            })
            .collect();
        let indices: Vec<Vec<Wire>> = (0..classes).map(|i| b.constant_word(i as u64, w)).collect();
        let mut alive = vec![Wire::TRUE; classes];
        let mut out = Vec::with_capacity(top * w);
        for round in 0..top {
            let mut level: Vec<Candidate> = (0..classes)
                .map(|i| {
                    let mut key = flipped[i].clone();
                    key.push(alive[i]);
                    Candidate {
                        key,
                        index: indices[i].clone(),
                    }
                })
                .collect();
            while level.len() > 1 {
                let mut next = Vec::with_capacity(level.len().div_ceil(2));
                let mut it = level.into_iter();
                while let Some(left) = it.next() {
                    match it.next() {
                        None => next.push(left),
                        Some(right) => {
                            // The right (higher indices) wins only when strictly larger.
                            let right_wins = b.lt_unsigned(&left.key, &right.key);
                            next.push(Candidate {
                                key: b.mux_word(right_wins, &left.key, &right.key),
                                index: b.mux_word(right_wins, &left.index, &right.index),
                            });
                        }
                    }
                }
                level = next;
            }
            let winner = level.pop().map(|c| c.index).unwrap_or_default();
            out.extend_from_slice(&winner);
            if round + 1 < top {
                for (i, live) in alive.iter_mut().enumerate() {
                    let hit = b.eq(&winner, &indices[i]);
                    let not_hit = b.inv(hit);
                    *live = b.and(*live, not_hit);
                }
            }
        }
        b.output(&out);
        Ok(TopKCircuit {
            k,
            classes,
            top,
            circuit: b.finish()?,
        })
    }

    /// Bits of one output index: enough for `classes − 1`.
    pub fn index_bits_for(classes: usize) -> u32 {
        (usize::BITS - classes.saturating_sub(1).leading_zeros()).max(1)
    }

    /// The ring bit width of the logits' shares.
    pub fn k(&self) -> u32 {
        self.k
    }
    /// Number of logits.
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// Indices revealed.
    pub fn top(&self) -> usize {
        self.top
    }
    /// Bits of each output index.
    pub fn index_bits(&self) -> u32 {
        Self::index_bits_for(self.classes)
    }
    /// The Boolean circuit (garbler and evaluator inputs: `classes` words of k bits each; no
    /// private input; output: `top` indices of [`TopKCircuit::index_bits`] bits).
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    /// Plaintext specification: the indices of the `top` largest of `a_i + b_i mod 2^k` as
    /// signed integers, largest first, equal values by lower index first.
    pub fn reference(&self, a: &[u64], b: &[u64]) -> Vec<usize> {
        let k = self.k;
        let signed = |i: usize| {
            let x = a[i].wrapping_add(b[i]) & mask(k);
            ((x << (64 - k)) as i64) >> (64 - k)
        };
        let mut order: Vec<usize> = (0..self.classes).collect();
        // Stable sort by value descending keeps lower indices first among equals.
        order.sort_by_key(|&i| std::cmp::Reverse(signed(i)));
        order.truncate(self.top);
        order
    }

    /// Garbles `n` instances (no private input: the indices are revealed unmasked).
    pub fn garble_with_pi(
        &self,
        pi: &FixedKeyAes,
        delta: Delta,
        domain: TweakDomain,
        n: usize,
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled, GarbleError> {
        Garbler::new(&self.circuit, domain)
            .with_pi(pi.clone())
            .garble(delta, n, &[], evaluator_zero, rng)
    }

    /// The garbler's online message: active labels of its shares (`classes` words per instance).
    pub fn encode_garbler(
        &self,
        encoder: &Encoder,
        a: &[u64],
    ) -> Result<ActiveLabels, GarbleError> {
        encoder.encode_garbler(&words_to_bits(a, self.k)?)
    }

    /// The evaluator's active labels (ideal OT; tests and benchmarks).
    pub fn encode_evaluator(
        &self,
        encoder: &Encoder,
        b: &[u64],
    ) -> Result<ActiveLabels, GarbleError> {
        encoder.encode_evaluator(&words_to_bits(b, self.k)?)
    }

    /// The revealed indices (`top` per instance) from the evaluator's output labels.
    pub fn decode(
        &self,
        labels: &OutputLabels,
        decoding: &DecodingBits,
    ) -> Result<Vec<u64>, GarbleError> {
        Ok(bits_to_words(&labels.decode(decoding)?, self.index_bits()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_plain(c: &TopKCircuit, a: &[u64], b: &[u64]) -> Vec<usize> {
        let out = c
            .circuit()
            .eval(
                &words_to_bits(a, c.k()).unwrap(),
                &words_to_bits(b, c.k()).unwrap(),
                &[],
            )
            .unwrap();
        bits_to_words(&out, c.index_bits())
            .into_iter()
            .map(|v| v as usize)
            .collect()
    }

    #[test]
    fn and_counts() {
        let c = TopKCircuit::new(32, 10, 1).unwrap();
        println!("top-1 of 10 at k=32: {:?}", c.circuit().gate_counts());
        assert_eq!(c.circuit().and_count(), 870);
        for (k, n, top) in [
            (8u32, 2usize, 1usize),
            (16, 10, 3),
            (32, 10, 5),
            (24, 100, 1),
            (12, 7, 7),
        ] {
            let c = TopKCircuit::new(k, n, top).unwrap();
            let (ku, w) = (k as usize, TopKCircuit::index_bits_for(n) as usize);
            let bound = n * (ku - 1) + top * (n - 1) * (2 * (ku + 1) + w) + (top - 1) * n * w;
            let got = c.circuit().and_count();
            println!("top-{top} of {n} at k={k}: {got} AND gates (bound {bound})");
            assert!(got <= bound, "k={k} n={n} top={top}: {got} > {bound}");
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert!(TopKCircuit::new(1, 10, 1).is_err());
        assert!(TopKCircuit::new(65, 10, 1).is_err());
        assert!(TopKCircuit::new(16, 1, 1).is_err());
        assert!(TopKCircuit::new(16, 10, 0).is_err());
        assert!(TopKCircuit::new(16, 10, 11).is_err());
        assert!(TopKCircuit::new(16, 10, 10).is_ok());
        // A circuit's size is bounded before anything is built (a plan comes from the server).
        assert!(TopKCircuit::new(32, MAX_TOPK_CLASSES, MAX_TOPK_CLASSES).is_err());
        assert!(TopKCircuit::new(32, 1000, 66).is_err());
        assert!(TopKCircuit::new(32, MAX_TOPK_CLASSES + 1, 1).is_err());
        assert_eq!(TopKCircuit::index_bits_for(2), 1);
        assert_eq!(TopKCircuit::index_bits_for(10), 4);
        assert_eq!(TopKCircuit::index_bits_for(16), 4);
        assert_eq!(TopKCircuit::index_bits_for(17), 5);
    }

    #[test]
    fn reference_ranks_signed_values_and_breaks_ties_by_lower_index() {
        let c = TopKCircuit::new(8, 5, 5).unwrap();
        // x = [−1, 5, 5, −128, 127] as 8-bit two's complement, b = 0.
        let a = [255u64, 5, 5, 128, 127];
        assert_eq!(c.reference(&a, &[0; 5]), vec![4, 1, 2, 0, 3]);
        // The same values split into shares that wrap around.
        let b = [7u64, 200, 13, 1, 255];
        let a2: Vec<u64> = a
            .iter()
            .zip(&b)
            .map(|(x, s)| x.wrapping_sub(*s) & 255)
            .collect();
        assert_eq!(c.reference(&a2, &b), vec![4, 1, 2, 0, 3]);
    }

    #[test]
    fn plain_circuit_matches_reference_exhaustively_small() {
        // Every triple of 3-bit logits, split into shares, for each top.
        for top in 1..=3 {
            let c = TopKCircuit::new(3, 3, top).unwrap();
            for x in 0..512u64 {
                let xs = [x & 7, (x >> 3) & 7, (x >> 6) & 7];
                let b = [(x * 5) & 7, (x * 3 + 1) & 7, (x / 7) & 7];
                let a: Vec<u64> = xs
                    .iter()
                    .zip(&b)
                    .map(|(v, s)| v.wrapping_sub(*s) & 7)
                    .collect();
                assert_eq!(
                    eval_plain(&c, &a, &b),
                    c.reference(&a, &b),
                    "top={top} x={xs:?}"
                );
            }
        }
    }
}
