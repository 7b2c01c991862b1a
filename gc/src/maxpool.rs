//! The garbled max pool of the protocol (docs/ring-spec.md §5): one instance per output element.
//! On the shares `a_i` (garbler) and `b_i` (evaluator) of the `W` cells of a window,
//! `x_i = a_i + b_i mod 2^k`, and the garbler's fresh mask `m`, output
//! `o = (act(max_i x_i) >> t) − m mod 2^k'` to the evaluator, the maximum taken over the signed
//! (two's complement) values. `act` is the ReLU when one is fused (`relu ∘ max = max ∘ relu`), or
//! the identity: then the shift is arithmetic and the result sign-extended into Z_2^k'.
//!
//! Padding cells are not special to the circuit: the protocol gives them the shares
//! `(2^(k−1), 0)`, the most negative value, which never wins a window that holds a real cell
//! (ONNX pads a max pool with −∞). The rounding term of the truncation is added by the garbler to
//! every real cell (`max(x_i + r) = max(x_i) + r`).
//!
//! The evaluator reads its share from the labels of the result's bits through an arithmetic output
//! ([`ShareOutput`]); without the ReLU the sign bit weighs `−2^(k−1−t)` there (the sign extension is
//! free).
//!
//! Cost in AND gates: `W·(k − 1)` (adders) + `(W − 1)·k` (signed comparisons) + `(W − 2)·k + u`
//! (multiplexers; the last one only on the `u` bits the result reads: `u = min(k', k − 1 − t) + 1`
//! with the ReLU, `min(k', k − t)` without); no multiplexer at W = 1; the fused ReLU's zeroing by
//! the sign is the arithmetic output's gate. 316 at W = 4 (2 × 2), k = k' = 32, t = 0 with the
//! ReLU, against 4 · 31 for the ReLUs of the four cells. Plus the arithmetic output's words.

use crate::builder::{CircuitBuilder, Wire};
use crate::circuit::Circuit;
use crate::error::{CircuitError, GarbleError};
use crate::garble::Garbled;
use crate::label::{ActiveLabels, Delta, Encoder, OutputLabels, TweakDomain};
use crate::relu::words_to_bits;
use crate::shares::{ShareDecoding, ShareOutput};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use cryptonas_ring::mask;

/// Most cells a window may have (a 16 × 16 kernel): bounds the circuit's size.
pub const MAX_WINDOW: usize = 256;

/// The max-pool circuit for one (k, k', t, window, relu).
#[derive(Clone, Debug)]
pub struct MaxPoolCircuit {
    k: u32,
    k_out: u32,
    t: u32,
    window: usize,
    relu: bool,
    circuit: Circuit,
    output: ShareOutput,
}

impl MaxPoolCircuit {
    /// Builds the circuit over `window` cells in `Z_2^k` (k ∈ [2, 64]), truncation `t` ∈
    /// [0, k − 1), result and mask in `Z_2^k_out` (k_out ∈ [2, 64]), with the ReLU fused or not.
    pub fn new(
        k: u32,
        k_out: u32,
        t: u32,
        window: usize,
        relu: bool,
    ) -> Result<Self, CircuitError> {
        for (name, v) in [("k", k), ("k_out", k_out)] {
            if !(2..=64).contains(&v) {
                return Err(CircuitError::Parameter {
                    name,
                    value: u64::from(v),
                    range: "[2, 64]",
                });
            }
        }
        if t >= k - 1 {
            return Err(CircuitError::Parameter {
                name: "t",
                value: u64::from(t),
                range: "[0, k − 1)",
            });
        }
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(CircuitError::Parameter {
                name: "window",
                value: window as u64,
                range: "[1, 256]",
            });
        }
        let ku = k as usize;
        let mut b = CircuitBuilder::new();
        let a = b.garbler_input(window * ku);
        let e = b.evaluator_input(window * ku);
        let mut cur: Vec<Wire> = Vec::new();
        for i in 0..window {
            let x = b.add(&a[i * ku..(i + 1) * ku], &e[i * ku..(i + 1) * ku]);
            cur = if i == 0 {
                x
            } else {
                let greater = b.lt_signed(&cur, &x);
                b.mux_word(greater, &cur, &x)
            };
        }
        let sign = cur[ku - 1];
        // The bits of v >> t below k' (and below the sign: the rest is the sign extension).
        let bits = (k_out as usize).min(ku - 1 - t as usize);
        let mut weights: Vec<u64> = (0..bits).map(|j| 1u64 << j).collect();
        let mut y: Vec<Wire> = (0..bits).map(|j| cur[j + t as usize]).collect();
        if relu {
            // relu(v) >> t: non-negative, so its sign and extension are 0; the zeroing by the
            // sign is the arithmetic output's gate (no AND gate).
            y.push(b.inv(sign));
        } else {
            // Arithmetic shift: the sign bit weighs −2^(k−1−t) (two's complement), when that is
            // not 0 mod 2^k'.
            if bits < k_out as usize {
                y.push(sign);
                weights.push((1u64 << bits).wrapping_neg());
            }
        }
        b.output(&y);
        let circuit = b.finish()?;
        let output = if relu {
            ShareOutput::gated(k_out, weights, circuit.and_count())
        } else {
            ShareOutput::new(k_out, weights, circuit.and_count())
        };
        Ok(MaxPoolCircuit {
            k,
            k_out,
            t,
            window,
            relu,
            circuit,
            output,
        })
    }

    /// The ring bit width of the cells.
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
    /// Cells per window.
    pub fn window(&self) -> usize {
        self.window
    }
    /// Whether the ReLU is fused.
    pub fn relu(&self) -> bool {
        self.relu
    }
    /// The Boolean circuit (garbler and evaluator inputs: `window · k` bits each, cell after
    /// cell; outputs: the wires of [`MaxPoolCircuit::output`]).
    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }
    /// How the output bits make the evaluator's share.
    pub fn output(&self) -> &ShareOutput {
        &self.output
    }
    /// The plain circuit's result for one instance: its output word minus `m` (tests).
    pub fn plain(&self, a: &[u64], b: &[u64], m: u64) -> Result<u64, CircuitError> {
        let out = self
            .circuit
            .eval(&words_to_bits(a, self.k)?, &words_to_bits(b, self.k)?, &[])?;
        Ok(self.output.share(&out, m))
    }
    /// The rounding term `2^(t−1)` (0 for t = 0) the protocol adds to the garbler's share of
    /// every real cell.
    pub fn round_term(&self) -> u64 {
        if self.t == 0 {
            0
        } else {
            1u64 << (self.t - 1)
        }
    }

    /// The value a padding cell takes (its garbler share; the evaluator's is 0): the most
    /// negative element of Z_2^k.
    pub fn padding(&self) -> u64 {
        1u64 << (self.k - 1)
    }

    /// Plaintext specification of one instance: `(act(max_i (a_i + b_i)) >> t) − m mod 2^k_out`,
    /// the maximum over signed values. `a` and `b` hold `window` cells each.
    pub fn reference(&self, a: &[u64], b: &[u64], m: u64) -> u64 {
        let mk = mask(self.k);
        let signed = |v: u64| -> i128 {
            let v = v & mk;
            if (v >> (self.k - 1)) & 1 == 1 {
                i128::from(v) - (1i128 << self.k)
            } else {
                i128::from(v)
            }
        };
        let max = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| signed(x.wrapping_add(y)))
            .max()
            .unwrap_or(0);
        let v = if self.relu { max.max(0) } else { max };
        ((v >> self.t) as u64).wrapping_sub(m) & mask(self.k_out)
    }

    /// Garbles `masks.len()` instances whose evaluator shares are masked with `masks` (see
    /// [`crate::ReluCircuit::garble_with_pi`]).
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

    /// The garbler's online message: active labels of its cells, `window` per instance
    /// (rounding term included, padding cells [`MaxPoolCircuit::padding`]).
    pub fn encode_garbler(
        &self,
        encoder: &Encoder,
        a: &[u64],
    ) -> Result<ActiveLabels, GarbleError> {
        encoder.encode_garbler(&words_to_bits(a, self.k)?)
    }

    /// The evaluator's active labels (ideal OT; tests and benchmarks), `window` cells per
    /// instance.
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
    use crate::Evaluator;

    /// The cost formula of the module docs, checked against the built circuit.
    fn expected_ands(k: u32, k_out: u32, t: u32, w: usize, relu: bool) -> usize {
        let (k, k_out, t) = (k as usize, k_out as usize, t as usize);
        // Bits of the last multiplexer's result read (the zeroing by the sign costs nothing: it
        // is the arithmetic output's gate).
        let read = if relu {
            k_out.min(k - 1 - t) + 1
        } else {
            k_out.min(k - t)
        };
        let muxes = if w > 1 { (w - 2) * k + read } else { 0 };
        w * (k - 1) + (w - 1) * k + muxes
    }

    #[test]
    fn and_counts_match_the_formula() {
        let c = MaxPoolCircuit::new(32, 32, 0, 4, true).unwrap();
        assert_eq!(c.circuit().and_count(), 316);
        for (k, k_out, t) in [(32u32, 32u32, 0u32), (20, 32, 9), (16, 16, 3), (8, 64, 2)] {
            for w in [1usize, 2, 4, 9] {
                for relu in [true, false] {
                    let c = MaxPoolCircuit::new(k, k_out, t, w, relu).unwrap();
                    assert_eq!(
                        c.circuit().and_count(),
                        expected_ands(k, k_out, t, w, relu),
                        "k={k} k'={k_out} t={t} w={w} relu={relu}"
                    );
                }
            }
        }
    }

    #[test]
    fn parameters_are_checked() {
        assert!(MaxPoolCircuit::new(1, 8, 0, 4, true).is_err());
        assert!(MaxPoolCircuit::new(8, 65, 0, 4, true).is_err());
        assert!(MaxPoolCircuit::new(8, 8, 7, 4, true).is_err());
        assert!(MaxPoolCircuit::new(8, 8, 0, 0, true).is_err());
        assert!(MaxPoolCircuit::new(8, 8, 0, MAX_WINDOW + 1, false).is_err());
    }

    #[test]
    fn plain_circuit_matches_reference_exhaustively_at_k4_window2() {
        for relu in [true, false] {
            for (k_out, t) in [(4u32, 0u32), (4, 2), (7, 1), (3, 0)] {
                let c = MaxPoolCircuit::new(4, k_out, t, 2, relu).unwrap();
                for v in 0..1u64 << 16 {
                    let a = [v & 15, (v >> 4) & 15];
                    let b = [(v >> 8) & 15, (v >> 12) & 15];
                    let m = (v * 7 + 3) & mask(k_out);
                    assert_eq!(
                        c.plain(&a, &b, m).unwrap(),
                        c.reference(&a, &b, m),
                        "relu={relu} k'={k_out} t={t} a={a:?} b={b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn reference_is_the_max_pool_of_the_signed_values() {
        let c = MaxPoolCircuit::new(8, 12, 1, 3, false).unwrap();
        // -5, 7, -128 (a padding cell): max 7, 7 >> 1 = 3.
        let a = [0xfb, 3, c.padding()];
        let b = [0, 4, 0];
        assert_eq!(c.reference(&a, &b, 0), 3);
        // All negative: -5 >> 1 = -3, sign-extended into 12 bits.
        let a = [0xfb, 0xf0, c.padding()];
        assert_eq!(c.reference(&a, &[0, 0, 0], 0), 0xffd);
        let r = MaxPoolCircuit::new(8, 12, 1, 3, true).unwrap();
        assert_eq!(r.reference(&a, &[0, 0, 0], 0), 0);
    }

    /// Garbled evaluation against the reference on random shares, over several rings,
    /// truncations, windows, with and without the ReLU, and with padding cells.
    #[test]
    fn garbled_matches_reference_on_random_shares() {
        let mut rng = Csprng::from_seed([7; 32]);
        let pi = FixedKeyAes::new([3; 16]);
        for (k, k_out, t) in [(32u32, 32u32, 0u32), (20, 32, 9), (13, 13, 4), (64, 64, 10)] {
            for w in [1usize, 4, 9] {
                for relu in [true, false] {
                    let c = MaxPoolCircuit::new(k, k_out, t, w, relu).unwrap();
                    let n = 70; // more than one garbling chunk of 64
                    let mut word = |bits: u32| rng.u64() & mask(bits);
                    let mut a: Vec<u64> = (0..n * w).map(|_| word(k)).collect();
                    let mut b: Vec<u64> = (0..n * w).map(|_| word(k)).collect();
                    let masks: Vec<u64> = (0..n).map(|_| word(k_out)).collect();
                    // Some windows hold padding cells (never all of a window).
                    for i in (0..n).step_by(3) {
                        for cell in 1..w {
                            if cell % 2 == 1 {
                                a[i * w + cell] = c.padding();
                                b[i * w + cell] = 0;
                            }
                        }
                    }
                    let domain = TweakDomain {
                        session_id: 9,
                        first_instance: 5,
                    };
                    let g = c
                        .garble_with_pi(
                            &pi,
                            Delta::random(&mut rng),
                            domain,
                            &masks,
                            None,
                            &mut rng,
                        )
                        .unwrap();
                    let ga = c.encode_garbler(&g.encoder, &a).unwrap();
                    let eb = c.encode_evaluator(&g.encoder, &b).unwrap();
                    let out = Evaluator::new(c.circuit(), domain)
                        .with_pi(pi.clone())
                        .evaluate(&g.tables, &ga, &eb)
                        .unwrap();
                    let o = c.decode(&pi, domain, &out, &g.decoding).unwrap();
                    for i in 0..n {
                        let want =
                            c.reference(&a[i * w..(i + 1) * w], &b[i * w..(i + 1) * w], masks[i]);
                        assert_eq!(o[i], want, "k={k} t={t} w={w} relu={relu} instance {i}");
                    }
                }
            }
        }
    }
}
