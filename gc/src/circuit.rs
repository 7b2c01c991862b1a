//! The circuit representation: wires in topological (SSA) order, gates XOR, AND, INV and public
//! constants, and three kinds of inputs.
//!
//! Wire numbering: garbler inputs `0..G`, evaluator inputs `G..G+E`, garbler-private constants
//! `G+E..G+E+P`, then gate `i` defines wire `G+E+P+i`. Every gate reads only smaller wires, so the
//! numbering is also a valid Bristol Fashion numbering.
//!
//! A circuit is written once (usually with [`crate::CircuitBuilder`]) and interpreted several ways:
//! [`Circuit::eval`] and [`Circuit::eval_lanes`] (plaintext, the test oracle), [`Circuit::and_count`]
//! (cost), [`crate::Garbler`] and [`crate::Evaluator`].

use crate::error::CircuitError;

/// Index of a wire.
pub type WireId = u32;

/// One gate; its output is the next wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gate {
    /// `a ⊕ b` (free with free-XOR).
    Xor(WireId, WireId),
    /// `a ∧ b` (two ciphertexts with half-gates).
    And(WireId, WireId),
    /// `¬a` (free).
    Inv(WireId),
    /// A public constant (its active label is the all-zero block, like a garbler-private constant).
    Const(bool),
}

/// Whose value a wire carries, as far as its active label is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taint {
    /// The active label is uniformly random to the evaluator.
    Random,
    /// A public constant: active label is the zero block.
    Const,
    /// Depends only on garbler-private constants (and public constants): active label is zero.
    Private,
}

impl Taint {
    fn xor(self, other: Taint) -> Taint {
        match (self, other) {
            (Taint::Random, _) | (_, Taint::Random) => Taint::Random,
            (Taint::Const, Taint::Const) => Taint::Const,
            _ => Taint::Private,
        }
    }
}

/// One step of the slot-allocated program the garbler and evaluator run (see [`Program`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Xor { a: u32, b: u32, out: u32 },
    And { a: u32, b: u32, out: u32 },
    Inv { a: u32, out: u32 },
    Const { value: bool, out: u32 },
}

/// The gates grouped by AND depth, so that one instance's independent AND gates are hashed
/// together: step `L` holds the AND gates of depth `L` (depth = ANDs on the longest path from an
/// input, counting the gate) and then the free gates (XOR, INV, constants) of depth `L`, in circuit
/// order. Running the steps in order respects every dependency: a gate of depth `L` reads only
/// wires of depth ≤ `L`, and among those only free gates of depth `L` come later in its step, in
/// circuit (topological) order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Levels {
    pub(crate) steps: Vec<Step>,
    /// The widest step's AND count.
    pub(crate) max_ands: usize,
}

/// One step of [`Levels`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Step {
    /// `[AND index, output wire, input a, input b]` of the step's AND gates.
    pub(crate) ands: Vec<[u32; 4]>,
    /// `[output wire, a, b]` of the step's free gates, in circuit order, all as XORs: `INV a` is
    /// `a ⊕ w[DELTA]`, a constant `c` is `w[ZERO] ⊕ w[ZERO or DELTA]`, where the extra wires
    /// `ZERO = wires` and `DELTA = wires + 1` hold 0 and the label offset (Δ for the garbler, 0 for
    /// the evaluator): no branch per gate.
    pub(crate) free: Vec<[u32; 3]>,
}

impl Levels {
    fn new(n_in: usize, gates: &[Gate]) -> Self {
        let wires = n_in + gates.len();
        let (zero, delta) = (wires as u32, wires as u32 + 1);
        let mut depth = vec![0u32; wires];
        let mut steps: Vec<Step> = vec![Step::default()];
        let mut j = 0u32;
        for (g, gate) in gates.iter().enumerate() {
            let d = match *gate {
                Gate::Xor(a, b) => depth[a as usize].max(depth[b as usize]),
                Gate::And(a, b) => depth[a as usize].max(depth[b as usize]) + 1,
                Gate::Inv(a) => depth[a as usize],
                Gate::Const(_) => 0,
            };
            depth[n_in + g] = d;
            if steps.len() <= d as usize {
                steps.resize(d as usize + 1, Step::default());
            }
            let step = &mut steps[d as usize];
            let out = (n_in + g) as u32;
            match *gate {
                Gate::And(a, b) => {
                    step.ands.push([j, out, a, b]);
                    j += 1;
                }
                Gate::Xor(a, b) => step.free.push([out, a, b]),
                Gate::Inv(a) => step.free.push([out, a, delta]),
                Gate::Const(c) => step.free.push([out, zero, if c { delta } else { zero }]),
            }
        }
        let max_ands = steps.iter().map(|s| s.ands.len()).max().unwrap_or(0);
        Levels { steps, max_ands }
    }
}

/// The circuit with wires mapped to a small set of reusable label slots (a wire's slot is freed
/// after its last reader), so the label working set of a batch stays in cache.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub(crate) ops: Vec<Op>,
    pub(crate) slots: usize,
    /// Slot of every input wire, in wire order.
    pub(crate) input_slots: Vec<u32>,
    /// Slot of every output.
    pub(crate) output_slots: Vec<u32>,
}

/// A Boolean circuit over XOR/AND/INV with garbler inputs, evaluator inputs and garbler-private
/// constants.
#[derive(Clone, Debug)]
pub struct Circuit {
    garbler_groups: Vec<usize>,
    evaluator_groups: Vec<usize>,
    private_groups: Vec<usize>,
    gates: Vec<Gate>,
    outputs: Vec<WireId>,
    output_groups: Vec<usize>,
    ands: usize,
    /// See [`Circuit::fingerprint`].
    fingerprint: u64,
    program: Program,
    /// The AND-depth schedule, built on first use by a small batch (see [`Levels`]).
    levels: std::sync::OnceLock<Levels>,
}

/// FNV-1a (64 bits) over everything that defines a circuit (see [`Circuit::fingerprint`]).
fn fingerprint_of(groups: [&[usize]; 4], gates: &[Gate], outputs: &[WireId]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for group in groups {
        eat(group.len() as u64);
        group.iter().for_each(|&x| eat(x as u64));
    }
    eat(gates.len() as u64);
    for gate in gates {
        match *gate {
            Gate::Xor(a, b) => [0, u64::from(a), u64::from(b)]
                .into_iter()
                .for_each(&mut eat),
            Gate::And(a, b) => [1, u64::from(a), u64::from(b)]
                .into_iter()
                .for_each(&mut eat),
            Gate::Inv(a) => [2, u64::from(a)].into_iter().for_each(&mut eat),
            Gate::Const(v) => [3, u64::from(v)].into_iter().for_each(&mut eat),
        }
    }
    eat(outputs.len() as u64);
    outputs.iter().for_each(|&w| eat(u64::from(w)));
    h
}

impl PartialEq for Circuit {
    fn eq(&self, other: &Self) -> bool {
        self.garbler_groups == other.garbler_groups
            && self.evaluator_groups == other.evaluator_groups
            && self.private_groups == other.private_groups
            && self.gates == other.gates
            && self.outputs == other.outputs
            && self.output_groups == other.output_groups
    }
}

impl Eq for Circuit {}

/// Gate counts of a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GateCounts {
    /// AND gates (each costs 2 ciphertexts = 32 bytes).
    pub and: usize,
    /// XOR gates (free).
    pub xor: usize,
    /// INV gates (free).
    pub inv: usize,
    /// Public constants.
    pub constant: usize,
}

impl Circuit {
    /// Builds and validates a circuit.
    ///
    /// Groups are the Bristol "values" (e.g. one 64-bit integer): the garbler's inputs are the
    /// concatenation of `garbler_groups`, and so on. Validation: topological order, outputs in range,
    /// AND gates never read a wire whose active label is public (constants and wires computed only
    /// from garbler-private constants), no output computed only from garbler-private constants.
    pub fn new(
        garbler_groups: Vec<usize>,
        evaluator_groups: Vec<usize>,
        private_groups: Vec<usize>,
        gates: Vec<Gate>,
        outputs: Vec<WireId>,
        output_groups: Vec<usize>,
    ) -> Result<Self, CircuitError> {
        let g: usize = garbler_groups.iter().sum();
        let e: usize = evaluator_groups.iter().sum();
        let p: usize = private_groups.iter().sum();
        let n_in = g + e + p;
        let sum_out: usize = output_groups.iter().sum();
        if sum_out != outputs.len() {
            return Err(CircuitError::Groups {
                what: "outputs",
                sum: sum_out,
                expected: outputs.len(),
            });
        }
        let n_wires = n_in + gates.len();
        if n_wires > u32::MAX as usize {
            return Err(CircuitError::TooLarge { ands: gates.len() });
        }
        let mut taint = Vec::with_capacity(n_wires);
        taint.extend(std::iter::repeat_n(Taint::Random, g + e));
        taint.extend(std::iter::repeat_n(Taint::Private, p));
        let mut ands = 0usize;
        for (i, gate) in gates.iter().enumerate() {
            let me = n_in + i;
            let check = |w: WireId| {
                if (w as usize) < me {
                    Ok(taint[w as usize])
                } else {
                    Err(CircuitError::NotTopological { gate: i, wire: w })
                }
            };
            let t = match *gate {
                Gate::Xor(a, b) => check(a)?.xor(check(b)?),
                Gate::Inv(a) => check(a)?,
                Gate::Const(_) => Taint::Const,
                Gate::And(a, b) => {
                    for w in [a, b] {
                        if check(w)? != Taint::Random {
                            return Err(CircuitError::KnownLabelIntoAnd { gate: i, wire: w });
                        }
                    }
                    ands += 1;
                    Taint::Random
                }
            };
            taint.push(t);
        }
        if ands >= (1 << 31) {
            return Err(CircuitError::TooLarge { ands });
        }
        for (o, &w) in outputs.iter().enumerate() {
            match taint.get(w as usize) {
                None => {
                    return Err(CircuitError::OutputOutOfRange {
                        output: o,
                        wire: w,
                        wires: n_wires,
                    })
                }
                Some(Taint::Private) => {
                    return Err(CircuitError::PrivateOutput { output: o, wire: w })
                }
                Some(_) => {}
            }
        }
        let fingerprint = fingerprint_of(
            [
                &garbler_groups,
                &evaluator_groups,
                &private_groups,
                &output_groups,
            ],
            &gates,
            &outputs,
        );
        let program = compile(n_in, &gates, &outputs);
        Ok(Circuit {
            garbler_groups,
            evaluator_groups,
            private_groups,
            gates,
            outputs,
            output_groups,
            ands,
            fingerprint,
            program,
            levels: std::sync::OnceLock::new(),
        })
    }

    /// A 64-bit fingerprint of the circuit (FNV-1a over its input and output groups, gates and
    /// outputs). Garbled tables carry it in their header, so that evaluating them with another
    /// circuit, even one of the same AND count, is an error instead of garbage. It catches
    /// mistakes; it is not a cryptographic commitment (a semi-honest garbler is trusted to garble
    /// the agreed circuit).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Number of garbler input bits.
    pub fn garbler_inputs(&self) -> usize {
        self.garbler_groups.iter().sum()
    }
    /// Number of evaluator input bits.
    pub fn evaluator_inputs(&self) -> usize {
        self.evaluator_groups.iter().sum()
    }
    /// Number of garbler-private constant bits.
    pub fn private_inputs(&self) -> usize {
        self.private_groups.iter().sum()
    }
    /// Number of input bits of all three kinds.
    pub fn inputs(&self) -> usize {
        self.garbler_inputs() + self.evaluator_inputs() + self.private_inputs()
    }
    /// Bit widths of the garbler's input values.
    pub fn garbler_groups(&self) -> &[usize] {
        &self.garbler_groups
    }
    /// Bit widths of the evaluator's input values.
    pub fn evaluator_groups(&self) -> &[usize] {
        &self.evaluator_groups
    }
    /// Bit widths of the garbler-private constant values.
    pub fn private_groups(&self) -> &[usize] {
        &self.private_groups
    }
    /// Bit widths of the output values.
    pub fn output_groups(&self) -> &[usize] {
        &self.output_groups
    }
    /// The gates; gate `i` defines wire `inputs() + i`.
    pub fn gates(&self) -> &[Gate] {
        &self.gates
    }
    /// The output wires.
    pub fn outputs(&self) -> &[WireId] {
        &self.outputs
    }
    /// Total number of wires.
    pub fn wires(&self) -> usize {
        self.inputs() + self.gates.len()
    }
    /// Number of AND gates (the garbling cost: 32 bytes of tables each).
    pub fn and_count(&self) -> usize {
        self.ands
    }
    /// Gate counts by kind.
    pub fn gate_counts(&self) -> GateCounts {
        let mut c = GateCounts::default();
        for g in &self.gates {
            match g {
                Gate::Xor(..) => c.xor += 1,
                Gate::And(..) => c.and += 1,
                Gate::Inv(_) => c.inv += 1,
                Gate::Const(_) => c.constant += 1,
            }
        }
        c
    }
    /// Bytes of garbled tables per instance (2 blocks of 16 bytes per AND gate).
    pub fn table_bytes(&self) -> usize {
        self.ands * 32
    }
    pub(crate) fn program(&self) -> &Program {
        &self.program
    }

    pub(crate) fn levels(&self) -> &Levels {
        self.levels
            .get_or_init(|| Levels::new(self.inputs(), &self.gates))
    }

    /// Plaintext evaluation of one instance (the test oracle).
    pub fn eval(
        &self,
        garbler: &[bool],
        evaluator: &[bool],
        private: &[bool],
    ) -> Result<Vec<bool>, CircuitError> {
        let lanes = |v: &[bool]| v.iter().map(|&b| b as u64).collect::<Vec<u64>>();
        let out = self.eval_lanes(&lanes(garbler), &lanes(evaluator), &lanes(private))?;
        Ok(out.iter().map(|&w| w & 1 == 1).collect())
    }

    /// Plaintext evaluation of 64 instances at once: bit `j` of every word belongs to instance `j`.
    pub fn eval_lanes(
        &self,
        garbler: &[u64],
        evaluator: &[u64],
        private: &[u64],
    ) -> Result<Vec<u64>, CircuitError> {
        for (what, got, expected) in [
            ("garbler inputs", garbler.len(), self.garbler_inputs()),
            ("evaluator inputs", evaluator.len(), self.evaluator_inputs()),
            ("private inputs", private.len(), self.private_inputs()),
        ] {
            if got != expected {
                return Err(CircuitError::InputLength {
                    what,
                    expected,
                    got,
                });
            }
        }
        let mut w = Vec::with_capacity(self.wires());
        w.extend_from_slice(garbler);
        w.extend_from_slice(evaluator);
        w.extend_from_slice(private);
        for g in &self.gates {
            let v = match *g {
                Gate::Xor(a, b) => w[a as usize] ^ w[b as usize],
                Gate::And(a, b) => w[a as usize] & w[b as usize],
                Gate::Inv(a) => !w[a as usize],
                Gate::Const(c) => (c as u64).wrapping_neg(),
            };
            w.push(v);
        }
        Ok(self.outputs.iter().map(|&o| w[o as usize]).collect())
    }
}

/// Slot allocation: a wire's slot is released after its last reader; outputs are never released.
fn compile(n_in: usize, gates: &[Gate], outputs: &[WireId]) -> Program {
    const NEVER: usize = usize::MAX;
    let n_wires = n_in + gates.len();
    // last_use[w] = index of the last gate reading w (NEVER for outputs).
    let mut last_use = vec![None::<usize>; n_wires];
    for (i, g) in gates.iter().enumerate() {
        match *g {
            Gate::Xor(a, b) | Gate::And(a, b) => {
                last_use[a as usize] = Some(i);
                last_use[b as usize] = Some(i);
            }
            Gate::Inv(a) => last_use[a as usize] = Some(i),
            Gate::Const(_) => {}
        }
    }
    for &o in outputs {
        last_use[o as usize] = Some(NEVER);
    }
    let mut slot_of = vec![u32::MAX; n_wires];
    let mut free: Vec<u32> = Vec::new();
    let mut slots = 0u32;
    let mut alloc = |free: &mut Vec<u32>| {
        free.pop().unwrap_or_else(|| {
            slots += 1;
            slots - 1
        })
    };
    // Inputs get their own slots first (they are written before the first gate runs).
    for s in slot_of.iter_mut().take(n_in) {
        *s = alloc(&mut free);
    }
    let input_slots = slot_of[..n_in].to_vec();
    // Unused inputs are free from the start.
    for w in 0..n_in {
        if last_use[w].is_none() {
            free.push(slot_of[w]);
        }
    }
    let mut ops = Vec::with_capacity(gates.len());
    for (i, g) in gates.iter().enumerate() {
        let w = n_in + i;
        let out = alloc(&mut free);
        slot_of[w] = out;
        let op = match *g {
            Gate::Xor(a, b) => Op::Xor {
                a: slot_of[a as usize],
                b: slot_of[b as usize],
                out,
            },
            Gate::And(a, b) => Op::And {
                a: slot_of[a as usize],
                b: slot_of[b as usize],
                out,
            },
            Gate::Inv(a) => Op::Inv {
                a: slot_of[a as usize],
                out,
            },
            Gate::Const(value) => Op::Const { value, out },
        };
        ops.push(op);
        // Release inputs whose last reader is this gate (after allocating `out`, so out ≠ a, b).
        let mut release = |x: WireId| {
            if last_use[x as usize] == Some(i) {
                last_use[x as usize] = None;
                free.push(slot_of[x as usize]);
            }
        };
        match *g {
            Gate::Xor(a, b) | Gate::And(a, b) => {
                release(a);
                release(b);
            }
            Gate::Inv(a) => release(a),
            Gate::Const(_) => {}
        }
        if last_use[w].is_none() {
            // Dead gate: its slot can be reused right away.
            free.push(out);
        }
    }
    let output_slots = outputs.iter().map(|&o| slot_of[o as usize]).collect();
    Program {
        ops,
        slots: slots as usize,
        input_slots,
        output_slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_circuits() {
        // Wire 2 read by gate 0, which defines wire 2.
        let e = Circuit::new(
            vec![1],
            vec![1],
            vec![],
            vec![Gate::Xor(0, 2)],
            vec![2],
            vec![1],
        );
        assert_eq!(e, Err(CircuitError::NotTopological { gate: 0, wire: 2 }));
        // Private constant into an AND gate.
        let e = Circuit::new(
            vec![1],
            vec![],
            vec![1],
            vec![Gate::And(0, 1)],
            vec![2],
            vec![1],
        );
        assert_eq!(e, Err(CircuitError::KnownLabelIntoAnd { gate: 0, wire: 1 }));
        // Public constant into an AND gate.
        let e = Circuit::new(
            vec![1],
            vec![],
            vec![],
            vec![Gate::Const(true), Gate::And(0, 1)],
            vec![2],
            vec![1],
        );
        assert_eq!(e, Err(CircuitError::KnownLabelIntoAnd { gate: 1, wire: 1 }));
        // Output that reveals a private constant (also through INV and XOR with a constant).
        let e = Circuit::new(
            vec![1],
            vec![],
            vec![1],
            vec![Gate::Const(true), Gate::Xor(1, 2), Gate::Inv(3)],
            vec![4],
            vec![1],
        );
        assert_eq!(e, Err(CircuitError::PrivateOutput { output: 0, wire: 4 }));
        let e = Circuit::new(vec![1], vec![], vec![], vec![], vec![5], vec![1]);
        assert!(matches!(e, Err(CircuitError::OutputOutOfRange { .. })));
        let e = Circuit::new(vec![1], vec![], vec![], vec![], vec![0], vec![2]);
        assert!(matches!(e, Err(CircuitError::Groups { .. })));
    }

    #[test]
    fn eval_and_lanes_agree() {
        // out0 = (g ⊕ p) ∧ e, out1 = ¬g, out2 = 1
        let c = Circuit::new(
            vec![1],
            vec![1],
            vec![1],
            vec![
                Gate::Xor(0, 2),
                Gate::And(3, 1),
                Gate::Inv(0),
                Gate::Const(true),
            ],
            vec![4, 5, 6],
            vec![3],
        )
        .unwrap();
        assert_eq!(c.and_count(), 1);
        for bits in 0..8u8 {
            let (g, e, p) = (bits & 1 == 1, bits & 2 == 2, bits & 4 == 4);
            assert_eq!(
                c.eval(&[g], &[e], &[p]).unwrap(),
                vec![(g ^ p) & e, !g, true]
            );
        }
        let out = c.eval_lanes(&[0b1010], &[0b1100], &[0b0110]).unwrap();
        assert_eq!(out[0] & 0xf, (0b1010 ^ 0b0110) & 0b1100);
        assert!(c.eval(&[true], &[], &[true]).is_err());
    }

    #[test]
    fn slots_are_reused() {
        // A chain of 100 XORs needs only a handful of slots.
        let mut gates = vec![Gate::Xor(0, 1)];
        for i in 0..99u32 {
            gates.push(Gate::Xor(2 + i, 0));
        }
        let last = 2 + 99;
        let c = Circuit::new(vec![1], vec![1], vec![], gates, vec![last], vec![1]).unwrap();
        assert!(c.program().slots <= 4, "{} slots", c.program().slots);
    }
}
