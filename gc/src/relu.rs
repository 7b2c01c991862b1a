//! The garbled ReLU of the protocol (docs/ring-spec.md): on shares `a` (garbler) and `b` (evaluator) of
//! `x = a + b mod 2^k` and the garbler's fresh mask `m`, output `o = (relu_k(x) >> t) − m mod 2^k'`
//! to the evaluator, where k' ([`ReluCircuit::k_out`]) is the ring the result is shared in: k
//! itself, or a wider ring (the protocol runs each ReLU in a ring as narrow as its layer allows and
//! shares the result in the linear layers' ring). The garbler's share of the result is `m`. The
//! rounding term `2^(t−1)` is added to `a` by the protocol before encoding (see
//! [`ReluCircuit::round_term`]).
//!
//! The circuit computes the bits of `x >> t` below the sign and `¬sign`; the evaluator reads its
//! share `o` from their labels through a gated arithmetic output ([`ShareOutput`]: three k'-bit
//! words per bit, and one per instance), so neither the zeroing by the sign nor the mask costs an
//! AND gate.
//!
//! Cost: `k − 1` AND gates (the adder; 31 at k = 32, where the zeroing and the subtraction in the
//! circuit made it 93), plus `3·min(k', k − 1 − t) + 1` words of ⌈k'/8⌉ bytes for the output
//! (the top bit of a non-negative value is 0, so k − 1 − t bits carry it).

use crate::builder::CircuitBuilder;
use crate::circuit::Circuit;
use crate::error::{CircuitError, GarbleError};
use crate::garble::Garbled;
use crate::label::{ActiveLabels, Delta, Encoder, OutputLabels, TweakDomain};
use crate::shares::{ShareDecoding, ShareOutput};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};

/// Which activation the circuit computes before truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReluVariant {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), max)` with `max` in the scale of `x` (before truncation), `0 ≤ max < 2^(k−1)`.
    /// ReLU6 at `f` fractional bits is `Clipped { max: 6 << f }`.
    Clipped {
        /// The clipping bound.
        max: u64,
    },
}

/// The ReLU circuit for one (k, t, variant), with word-level helpers.
#[derive(Clone, Debug)]
pub struct ReluCircuit {
    k: u32,
    k_out: u32,
    t: u32,
    variant: ReluVariant,
    circuit: Circuit,
    output: ShareOutput,
}

use cryptonas_ring::mask;

/// Little-endian bits of every value (`width` bits each), checking that each value fits.
pub fn words_to_bits(values: &[u64], width: u32) -> Result<Vec<bool>, CircuitError> {
    let mut out = Vec::with_capacity(values.len() * width as usize);
    for &v in values {
        if width < 64 && v >> width != 0 {
            return Err(CircuitError::ValueTooWide { value: v, width });
        }
        out.extend((0..width).map(|i| (v >> i) & 1 == 1));
    }
    Ok(out)
}

/// The inverse of [`words_to_bits`] (a trailing partial word is ignored).
pub fn bits_to_words(bits: &[bool], width: u32) -> Vec<u64> {
    bits.chunks_exact(width as usize)
        .map(|c| c.iter().enumerate().map(|(i, &b)| (b as u64) << i).sum())
        .collect()
}

impl ReluCircuit {
    /// Builds the circuit for ring `Z_2^k` (k ∈ [2, 64]) and truncation `t` ∈ [0, k − 1).
    pub fn new(k: u32, t: u32, variant: ReluVariant) -> Result<Self, CircuitError> {
        Self::with_output_ring(k, k, t, variant)
    }

    /// Builds the circuit for inputs in `Z_2^k` (k ∈ [2, 64]) and truncation `t` ∈ [0, k − 1)
    /// whose result, and the mask subtracted from it, are in `Z_2^k_out` (k_out ∈ [2, 64]).
    pub fn with_output_ring(
        k: u32,
        k_out: u32,
        t: u32,
        variant: ReluVariant,
    ) -> Result<Self, CircuitError> {
        if !(2..=64).contains(&k_out) {
            return Err(CircuitError::Parameter {
                name: "k_out",
                value: k_out as u64,
                range: "[2, 64]",
            });
        }
        if !(2..=64).contains(&k) {
            return Err(CircuitError::Parameter {
                name: "k",
                value: k as u64,
                range: "[2, 64]",
            });
        }
        if t >= k - 1 {
            // relu_k(x) < 2^(k−1), so t ≥ k − 1 maps every input to 0: nothing to garble.
            return Err(CircuitError::Parameter {
                name: "t",
                value: t as u64,
                range: "[0, k − 1) (larger t truncate every output to 0)",
            });
        }
        if let ReluVariant::Clipped { max } = variant {
            if max >> (k - 1) != 0 {
                return Err(CircuitError::Parameter {
                    name: "max",
                    value: max,
                    range: "[0, 2^(k-1))",
                });
            }
        }
        let ku = k as usize;
        let mut b = CircuitBuilder::new();
        let a = b.garbler_input(ku);
        let bb = b.evaluator_input(ku);
        let x = b.add(&a, &bb);
        let not_sign = b.inv(x[ku - 1]);
        let v = match variant {
            ReluVariant::Relu => x,
            ReluVariant::Clipped { max } => {
                let c = b.constant_word(max, ku);
                // Unsigned x > max: true for negative x too, which the sign then zeroes.
                let gt = b.lt_unsigned(&c, &x);
                b.mux_word(gt, &x, &c)
            }
        };
        // y = (relu(v)) >> t in k_out bits; bits k − 1 − t and up of a non-negative value are 0.
        // The zeroing by the sign is the arithmetic output's gate: no AND gate.
        let bits = (k_out as usize).min(ku - 1 - t as usize);
        let mut y: Vec<_> = (0..bits).map(|j| v[j + t as usize]).collect();
        y.push(not_sign);
        b.output(&y);
        let circuit = b.finish()?;
        let output = ShareOutput::gated(
            k_out,
            (0..bits).map(|j| 1u64 << j).collect(),
            circuit.and_count(),
        );
        Ok(ReluCircuit {
            k,
            k_out,
            t,
            variant,
            circuit,
            output,
        })
    }

    /// The ring bit width of the inputs.
    pub fn k(&self) -> u32 {
        self.k
    }
    /// The ring bit width of the result and the mask.
    pub fn k_out(&self) -> u32 {
        self.k_out
    }
    /// The truncation.
    pub fn t(&self) -> u32 {
        self.t
    }
    /// The variant.
    pub fn variant(&self) -> ReluVariant {
        self.variant
    }
    /// The Boolean circuit (garbler input a, evaluator input b: k bits each; outputs: the bits of
    /// `v >> t` below the sign and below k', least significant first, `v` being `x` or its
    /// clipped value, then `¬sign`, the gate of the arithmetic output).
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }
    /// How the output bits make the evaluator's share.
    pub fn output(&self) -> &ShareOutput {
        &self.output
    }
    /// The plain circuit's result for one instance: its output word minus `m` (tests).
    pub fn plain(&self, a: u64, b: u64, m: u64) -> Result<u64, CircuitError> {
        let out = self.circuit.eval(
            &words_to_bits(&[a], self.k)?,
            &words_to_bits(&[b], self.k)?,
            &[],
        )?;
        Ok(self.output.share(&out, m))
    }
    /// The rounding term `2^(t−1)` (0 for t = 0) the protocol adds to the garbler's share.
    pub fn round_term(&self) -> u64 {
        if self.t == 0 {
            0
        } else {
            1u64 << (self.t - 1)
        }
    }

    /// Plaintext specification: `(act(a + b mod 2^k) >> t) − m mod 2^k_out`.
    pub fn reference(&self, a: u64, b: u64, m: u64) -> u64 {
        let mk = mask(self.k);
        let x = a.wrapping_add(b) & mk;
        let negative = (x >> (self.k - 1)) & 1 == 1;
        let mut v = if negative { 0 } else { x };
        if let ReluVariant::Clipped { max } = self.variant {
            v = v.min(max);
        }
        (v >> self.t).wrapping_sub(m) & mask(self.k_out)
    }

    /// Garbles `masks.len()` ReLUs whose evaluator shares are masked with `masks` (the garbler's
    /// shares).
    /// `evaluator_zero`: zero-labels of the evaluator's share wires from the correlated OT
    /// (`n · k` blocks), or `None` to draw them here.
    pub fn garble(
        &self,
        delta: Delta,
        domain: TweakDomain,
        masks: &[u64],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled<ShareDecoding>, GarbleError> {
        self.garble_with_pi(
            &FixedKeyAes::default(),
            delta,
            domain,
            masks,
            evaluator_zero,
            rng,
        )
    }

    /// [`ReluCircuit::garble`] hashing with `pi` (a per-session key: the evaluator must use the
    /// same, see the crate README's security section).
    pub fn garble_with_pi(
        &self,
        pi: &FixedKeyAes,
        delta: Delta,
        domain: TweakDomain,
        masks: &[u64],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled<ShareDecoding>, GarbleError> {
        self.output
            .garble_circuit(&self.circuit, pi, delta, domain, masks, evaluator_zero, rng)
    }

    /// The garbler's online message: active labels of its shares `a` (rounding term included).
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

    /// The evaluator's shares `o` from its output labels (`pi` and `domain` as evaluated).
    pub fn decode(
        &self,
        pi: &FixedKeyAes,
        domain: TweakDomain,
        labels: &OutputLabels,
        decoding: &ShareDecoding,
    ) -> Result<Vec<u64>, GarbleError> {
        self.output.decode(pi, domain, labels, decoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_counts() {
        let c = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
        let counts = c.circuit().gate_counts();
        println!(
            "ReLU k=32 t=0: {counts:?}, {} table bytes",
            c.circuit().table_bytes()
        );
        assert_eq!(c.circuit().and_count(), 31);
        assert_eq!(counts.and, 31);
        let c6 = ReluCircuit::new(32, 0, ReluVariant::Clipped { max: 6 << 8 }).unwrap();
        println!("ReLU6 k=32 t=0: {:?}", c6.circuit().gate_counts());
        assert!(c6.circuit().and_count() < 5 * 32);
        for k in [2u32, 8, 16, 32, 40, 64] {
            for t in [0, k / 2 - 1, k - 2] {
                let c = ReluCircuit::new(k, t, ReluVariant::Relu).unwrap();
                let expect = k as usize - 1;
                assert_eq!(c.circuit().and_count(), expect, "k={k} t={t}");
            }
        }
    }

    #[test]
    fn a_wider_output_ring_costs_no_and_gate() {
        for (k, k_out, t) in [(20u32, 32u32, 9u32), (23, 32, 16), (12, 12, 3), (16, 64, 0)] {
            let c = ReluCircuit::with_output_ring(k, k_out, t, ReluVariant::Relu).unwrap();
            let bits = (k_out as usize).min((k - 1 - t) as usize);
            assert_eq!(
                c.circuit().and_count(),
                k as usize - 1,
                "k={k} k'={k_out} t={t}"
            );
            assert_eq!(c.output().terms(), bits);
            assert_eq!(
                c.output().decoding_len(10),
                10 * (3 * bits + 1) * k_out.div_ceil(8) as usize
            );
        }
        assert!(ReluCircuit::with_output_ring(16, 1, 0, ReluVariant::Relu).is_err());
        assert!(ReluCircuit::with_output_ring(16, 65, 0, ReluVariant::Relu).is_err());
    }

    #[test]
    fn plain_circuit_with_a_wider_output_ring_matches_reference_exhaustively() {
        for variant in [ReluVariant::Relu, ReluVariant::Clipped { max: 13 }] {
            for (k_out, t) in [(9u32, 0u32), (9, 2), (6, 4), (4, 1)] {
                let c = ReluCircuit::with_output_ring(6, k_out, t, variant).unwrap();
                for a in 0..64u64 {
                    for b in 0..64u64 {
                        let m = (a * 37 + b * 11) & mask(k_out);
                        let want = c.reference(a, b, m);
                        assert_eq!(c.plain(a, b, m).unwrap(), want, "{variant:?} t={t}");
                        // The result is the ReLU of the signed 6-bit value, in the wider ring.
                        let x = (a + b) & 63;
                        let relu = if x >> 5 == 1 { 0 } else { x };
                        let relu = match variant {
                            ReluVariant::Relu => relu,
                            ReluVariant::Clipped { max } => relu.min(max),
                        };
                        assert_eq!((want + m) & mask(k_out), (relu >> t) & mask(k_out));
                    }
                }
            }
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert!(ReluCircuit::new(1, 0, ReluVariant::Relu).is_err());
        assert!(ReluCircuit::new(65, 0, ReluVariant::Relu).is_err());
        assert!(ReluCircuit::new(16, 15, ReluVariant::Relu).is_err());
        assert!(ReluCircuit::new(16, 0, ReluVariant::Clipped { max: 1 << 15 }).is_err());
        assert!(words_to_bits(&[256], 8).is_err());
    }

    #[test]
    fn plain_circuit_matches_reference_exhaustively_at_k6() {
        for variant in [ReluVariant::Relu, ReluVariant::Clipped { max: 13 }] {
            for t in 0..5 {
                let c = ReluCircuit::new(6, t, variant).unwrap();
                for a in 0..64u64 {
                    for b in 0..64u64 {
                        let m = (a * 7 + b * 3) & 63;
                        assert_eq!(
                            c.plain(a, b, m).unwrap(),
                            c.reference(a, b, m),
                            "{variant:?} t={t} a={a} b={b}"
                        );
                    }
                }
            }
        }
    }
}
