//! [`CircuitBuilder`]: write a circuit once, with constant folding, k-bit arithmetic and the
//! garbler-private-constant rule enforced.

use crate::circuit::{Circuit, Gate, Taint, WireId};
use crate::error::CircuitError;

/// A wire under construction: a public constant or a node of the builder.
///
/// Words (`&[Wire]`) are little endian: index 0 is the least significant bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Wire(Repr);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Repr {
    Const(bool),
    Node(u32),
}

impl Wire {
    /// The constant 0.
    pub const FALSE: Wire = Wire(Repr::Const(false));
    /// The constant 1.
    pub const TRUE: Wire = Wire(Repr::Const(true));

    /// A public constant.
    pub const fn constant(b: bool) -> Wire {
        Wire(Repr::Const(b))
    }

    /// The value, if the wire is a public constant.
    pub fn as_const(self) -> Option<bool> {
        match self.0 {
            Repr::Const(b) => Some(b),
            Repr::Node(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Garbler,
    Evaluator,
    Private,
}

#[derive(Clone, Copy, Debug)]
enum Node {
    Input(Class),
    Xor(u32, u32),
    And(u32, u32),
    Inv(u32),
}

/// Builds a [`Circuit`].
///
/// Public constants are folded away (an AND with a constant costs nothing). Garbler-private
/// constants ([`CircuitBuilder::private_input`]) may only reach AND gates through an XOR with a
/// non-private wire: `and(u, p)` with `p` private is emitted as `(u ∧ (u ⊕ p)) ⊕ u`, so every AND
/// gate input has a random active label; an AND of two private wires (which the garbler could
/// compute alone) is an error. Errors are sticky and reported by [`CircuitBuilder::finish`], so
/// arithmetic code stays free of `?`.
#[derive(Debug, Default)]
pub struct CircuitBuilder {
    nodes: Vec<Node>,
    taint: Vec<Taint>,
    groups: [Vec<usize>; 3],
    outputs: Vec<Wire>,
    output_groups: Vec<usize>,
    error: Option<CircuitError>,
}

impl CircuitBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first error recorded so far (a caller that builds from a file can name the line that
    /// caused it; [`CircuitBuilder::finish`] returns it too).
    pub fn error(&self) -> Option<&CircuitError> {
        self.error.as_ref()
    }

    fn fail(&mut self, e: CircuitError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn push(&mut self, node: Node, taint: Taint) -> Wire {
        let id = self.nodes.len() as u32;
        self.nodes.push(node);
        self.taint.push(taint);
        Wire(Repr::Node(id))
    }

    fn input(&mut self, class: Class, bits: usize) -> Vec<Wire> {
        let taint = if class == Class::Private {
            Taint::Private
        } else {
            Taint::Random
        };
        self.groups[class as usize].push(bits);
        (0..bits)
            .map(|_| self.push(Node::Input(class), taint))
            .collect()
    }

    /// A garbler input value of `bits` bits (its labels are sent online).
    pub fn garbler_input(&mut self, bits: usize) -> Vec<Wire> {
        self.input(Class::Garbler, bits)
    }

    /// An evaluator input value of `bits` bits (its labels come by oblivious transfer).
    pub fn evaluator_input(&mut self, bits: usize) -> Vec<Wire> {
        self.input(Class::Evaluator, bits)
    }

    /// A garbler-private constant of `bits` bits: fixed by the garbler when garbling, nothing is
    /// sent for it (see [`crate::Garbler`] for the security argument).
    pub fn private_input(&mut self, bits: usize) -> Vec<Wire> {
        self.input(Class::Private, bits)
    }

    fn taint_of(&self, w: Wire) -> Taint {
        match w.0 {
            Repr::Const(_) => Taint::Const,
            Repr::Node(i) => self.taint[i as usize],
        }
    }

    /// `a ⊕ b`.
    pub fn xor(&mut self, a: Wire, b: Wire) -> Wire {
        match (a.0, b.0) {
            (Repr::Const(x), Repr::Const(y)) => Wire::constant(x ^ y),
            (Repr::Const(false), _) => b,
            (_, Repr::Const(false)) => a,
            (Repr::Const(true), _) => self.inv(b),
            (_, Repr::Const(true)) => self.inv(a),
            (Repr::Node(x), Repr::Node(y)) => {
                if x == y {
                    return Wire::FALSE;
                }
                let t = match (self.taint_of(a), self.taint_of(b)) {
                    (Taint::Private, Taint::Private) => Taint::Private,
                    _ => Taint::Random,
                };
                self.push(Node::Xor(x, y), t)
            }
        }
    }

    /// `¬a`.
    pub fn inv(&mut self, a: Wire) -> Wire {
        match a.0 {
            Repr::Const(x) => Wire::constant(!x),
            Repr::Node(x) => {
                if let Node::Inv(y) = self.nodes[x as usize] {
                    return Wire(Repr::Node(y));
                }
                let t = self.taint[x as usize];
                self.push(Node::Inv(x), t)
            }
        }
    }

    /// `a ∧ b` (one AND gate unless folded).
    pub fn and(&mut self, a: Wire, b: Wire) -> Wire {
        match (a.0, b.0) {
            (Repr::Const(false), _) | (_, Repr::Const(false)) => Wire::FALSE,
            (Repr::Const(true), _) => b,
            (_, Repr::Const(true)) => a,
            (Repr::Node(x), Repr::Node(y)) => {
                if x == y {
                    return a;
                }
                match (self.taint_of(a), self.taint_of(b)) {
                    (Taint::Random, Taint::Random) => self.push(Node::And(x, y), Taint::Random),
                    (Taint::Random, _) => self.and_private(a, b),
                    (_, Taint::Random) => self.and_private(b, a),
                    _ => {
                        self.fail(CircuitError::KnownLabelIntoAnd {
                            gate: self.nodes.len(),
                            wire: x,
                        });
                        Wire::FALSE
                    }
                }
            }
        }
    }

    /// `u ∧ p` for a private `p`, as `(u ∧ (u ⊕ p)) ⊕ u`: both AND inputs have random active labels.
    fn and_private(&mut self, u: Wire, p: Wire) -> Wire {
        let up = self.xor(u, p);
        let (Repr::Node(x), Repr::Node(y)) = (u.0, up.0) else {
            unreachable!("u is a random node and u ⊕ p is a fresh XOR node")
        };
        let g = self.push(Node::And(x, y), Taint::Random);
        self.xor(g, u)
    }

    /// `a ∨ b`.
    pub fn or(&mut self, a: Wire, b: Wire) -> Wire {
        let x = self.xor(a, b);
        let y = self.and(a, b);
        self.xor(x, y)
    }

    /// `if s { y } else { x }` (one AND).
    pub fn mux(&mut self, s: Wire, x: Wire, y: Wire) -> Wire {
        let d = self.xor(x, y);
        let m = self.and(s, d);
        self.xor(x, m)
    }

    /// The constant word holding the low `bits` bits of `value`.
    pub fn constant_word(&mut self, value: u64, bits: usize) -> Vec<Wire> {
        (0..bits)
            .map(|i| Wire::constant(i < 64 && (value >> i) & 1 == 1))
            .collect()
    }

    fn same_width(&mut self, a: &[Wire], b: &[Wire]) -> bool {
        if a.len() != b.len() {
            self.fail(CircuitError::WidthMismatch {
                left: a.len(),
                right: b.len(),
            });
            return false;
        }
        true
    }

    /// Ripple-carry addition with carry-in; returns the sum and the carry out.
    /// One AND per bit (`c' = c ⊕ ((a ⊕ c) ∧ (b ⊕ c))`); `want_carry = false` skips the last one.
    fn add_carry(
        &mut self,
        a: &[Wire],
        b: &[Wire],
        carry_in: Wire,
        want_carry: bool,
    ) -> (Vec<Wire>, Wire) {
        if !self.same_width(a, b) {
            return (vec![Wire::FALSE; a.len()], Wire::FALSE);
        }
        let k = a.len();
        let mut c = carry_in;
        let mut sum = Vec::with_capacity(k);
        for i in 0..k {
            // sum = (a ⊕ c) ⊕ b shares a ⊕ c with the carry: 4 XOR + 1 AND per bit.
            let ac = self.xor(a[i], c);
            sum.push(self.xor(ac, b[i]));
            if i + 1 < k || want_carry {
                let bc = self.xor(b[i], c);
                let t = self.and(ac, bc);
                c = self.xor(c, t);
            }
        }
        (sum, c)
    }

    /// `a + b mod 2^k` (k − 1 AND gates).
    pub fn add(&mut self, a: &[Wire], b: &[Wire]) -> Vec<Wire> {
        self.add_carry(a, b, Wire::FALSE, false).0
    }

    /// `a − b mod 2^k` = `a + ¬b + 1` (k − 1 AND gates).
    pub fn sub(&mut self, a: &[Wire], b: &[Wire]) -> Vec<Wire> {
        let nb: Vec<Wire> = b.iter().map(|&w| self.inv(w)).collect();
        self.add_carry(a, &nb, Wire::TRUE, false).0
    }

    /// `−a mod 2^k`.
    pub fn neg(&mut self, a: &[Wire]) -> Vec<Wire> {
        let zero = vec![Wire::FALSE; a.len()];
        self.sub(&zero, a)
    }

    /// `a < b` as unsigned integers (k AND gates): the borrow of `a − b`.
    pub fn lt_unsigned(&mut self, a: &[Wire], b: &[Wire]) -> Wire {
        let nb: Vec<Wire> = b.iter().map(|&w| self.inv(w)).collect();
        let (_, carry) = self.add_carry(a, &nb, Wire::TRUE, true);
        self.inv(carry)
    }

    /// `a < b` as two's-complement integers.
    pub fn lt_signed(&mut self, a: &[Wire], b: &[Wire]) -> Wire {
        if !self.same_width(a, b) || a.is_empty() {
            return Wire::FALSE;
        }
        let k = a.len();
        let mut a2 = a.to_vec();
        let mut b2 = b.to_vec();
        a2[k - 1] = self.inv(a[k - 1]);
        b2[k - 1] = self.inv(b[k - 1]);
        self.lt_unsigned(&a2, &b2)
    }

    /// `a == b` (k − 1 AND gates).
    pub fn eq(&mut self, a: &[Wire], b: &[Wire]) -> Wire {
        if !self.same_width(a, b) {
            return Wire::FALSE;
        }
        let mut acc = Wire::TRUE;
        for i in 0..a.len() {
            let d = self.xor(a[i], b[i]);
            let same = self.inv(d);
            acc = self.and(acc, same);
        }
        acc
    }

    /// Word-wise `if s { y } else { x }`.
    pub fn mux_word(&mut self, s: Wire, x: &[Wire], y: &[Wire]) -> Vec<Wire> {
        if !self.same_width(x, y) {
            return vec![Wire::FALSE; x.len()];
        }
        x.iter().zip(y).map(|(&a, &b)| self.mux(s, a, b)).collect()
    }

    /// `a · b mod 2^k` (schoolbook, ≈ k² AND gates).
    pub fn mul(&mut self, a: &[Wire], b: &[Wire]) -> Vec<Wire> {
        if !self.same_width(a, b) {
            return vec![Wire::FALSE; a.len()];
        }
        let k = a.len();
        let mut acc = vec![Wire::FALSE; k];
        for (i, &bi) in b.iter().enumerate() {
            // Partial product (a << i) ∧ b_i, only the bits that stay below 2^k.
            let mut pp = vec![Wire::FALSE; k];
            for j in 0..k - i {
                pp[i + j] = self.and(a[j], bi);
            }
            // Low i bits of pp are zero: add only the upper part.
            let hi = self.add(&acc[i..], &pp[i..]);
            acc.splice(i.., hi);
        }
        acc
    }

    /// Declares an output value (a group of output bits).
    pub fn output(&mut self, wires: &[Wire]) {
        self.outputs.extend_from_slice(wires);
        self.output_groups.push(wires.len());
    }

    /// Finishes the circuit: numbers the wires (inputs first, by kind), drops gates that no output
    /// depends on, materialises constant outputs, and validates.
    pub fn finish(self) -> Result<Circuit, CircuitError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // Liveness from the outputs backwards.
        let mut live = vec![false; self.nodes.len()];
        for w in &self.outputs {
            if let Repr::Node(i) = w.0 {
                live[i as usize] = true;
            }
        }
        for i in (0..self.nodes.len()).rev() {
            if !live[i] {
                continue;
            }
            match self.nodes[i] {
                Node::Xor(a, b) | Node::And(a, b) => {
                    live[a as usize] = true;
                    live[b as usize] = true;
                }
                Node::Inv(a) => live[a as usize] = true,
                Node::Input(_) => {}
            }
        }
        // Number inputs by class (in creation order), then live gates.
        let mut id = vec![u32::MAX; self.nodes.len()];
        let mut next = 0u32;
        for class in [Class::Garbler, Class::Evaluator, Class::Private] {
            for (i, n) in self.nodes.iter().enumerate() {
                if matches!(n, Node::Input(c) if *c == class) {
                    id[i] = next;
                    next += 1;
                }
            }
        }
        let mut gates = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let g = match *n {
                Node::Input(_) => continue,
                Node::Xor(a, b) => Gate::Xor(id[a as usize], id[b as usize]),
                Node::And(a, b) => Gate::And(id[a as usize], id[b as usize]),
                Node::Inv(a) => Gate::Inv(id[a as usize]),
            };
            id[i] = next;
            next += 1;
            gates.push(g);
        }
        let mut consts: [Option<WireId>; 2] = [None, None];
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for w in &self.outputs {
            let o = match w.0 {
                Repr::Node(i) => id[i as usize],
                Repr::Const(b) => *consts[b as usize].get_or_insert_with(|| {
                    gates.push(Gate::Const(b));
                    next += 1;
                    next - 1
                }),
            };
            outputs.push(o);
        }
        let [g, e, p] = self.groups;
        Circuit::new(g, e, p, gates, outputs, self.output_groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: u64, k: usize) -> Vec<bool> {
        (0..k).map(|i| (v >> i) & 1 == 1).collect()
    }
    fn word(b: &[bool]) -> u64 {
        b.iter().enumerate().map(|(i, &x)| (x as u64) << i).sum()
    }

    #[test]
    fn arithmetic_matches_integers() {
        let k = 8;
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input(k);
        let y = b.evaluator_input(k);
        let s = b.add(&x, &y);
        b.output(&s);
        let d = b.sub(&x, &y);
        b.output(&d);
        let lt = b.lt_unsigned(&x, &y);
        b.output(&[lt]);
        let lts = b.lt_signed(&x, &y);
        b.output(&[lts]);
        let eq = b.eq(&x, &y);
        b.output(&[eq]);
        let m = b.mul(&x, &y);
        b.output(&m);
        let n = b.neg(&x);
        b.output(&n);
        let c = b.finish().unwrap();
        let mask = 0xff;
        for (xv, yv) in [
            (0u64, 0u64),
            (255, 1),
            (128, 127),
            (3, 200),
            (77, 77),
            (100, 5),
        ] {
            let out = c.eval(&bits(xv, k), &bits(yv, k), &[]).unwrap();
            assert_eq!(word(&out[0..8]), (xv + yv) & mask);
            assert_eq!(word(&out[8..16]), xv.wrapping_sub(yv) & mask);
            assert_eq!(out[16], xv < yv);
            assert_eq!(out[17], (xv as u8 as i8) < (yv as u8 as i8));
            assert_eq!(out[18], xv == yv);
            assert_eq!(word(&out[19..27]), (xv * yv) & mask);
            assert_eq!(word(&out[27..35]), xv.wrapping_neg() & mask);
        }
    }

    #[test]
    fn adder_costs_k_minus_1_ands_and_constants_fold() {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input(32);
        let y = b.evaluator_input(32);
        let s = b.add(&x, &y);
        b.output(&s);
        assert_eq!(b.finish().unwrap().and_count(), 31);

        let mut b = CircuitBuilder::new();
        let x = b.garbler_input(4);
        let zero = b.constant_word(0, 4);
        let s = b.add(&x, &zero);
        let f = b.and(x[0], Wire::FALSE);
        b.output(&s);
        b.output(&[f, Wire::TRUE]);
        let c = b.finish().unwrap();
        assert_eq!(c.and_count(), 0);
        let out = c.eval(&[true, false, true, true], &[], &[]).unwrap();
        assert_eq!(out, vec![true, false, true, true, false, true]);
    }

    #[test]
    fn private_constants_are_rewritten_or_rejected() {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input(1);
        let p = b.private_input(1);
        let y = b.and(x[0], p[0]);
        b.output(&[y]);
        let c = b.finish().unwrap();
        assert_eq!(c.and_count(), 1);
        for v in 0..4u8 {
            let (xv, pv) = (v & 1 == 1, v & 2 == 2);
            assert_eq!(c.eval(&[xv], &[], &[pv]).unwrap(), vec![xv & pv]);
        }
        let mut b = CircuitBuilder::new();
        let p = b.private_input(2);
        let y = b.and(p[0], p[1]);
        b.output(&[y]);
        assert!(matches!(
            b.finish(),
            Err(CircuitError::KnownLabelIntoAnd { .. })
        ));
        let mut b = CircuitBuilder::new();
        let p = b.private_input(1);
        b.output(&p);
        assert!(matches!(
            b.finish(),
            Err(CircuitError::PrivateOutput { .. })
        ));
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input(3);
        let y = b.garbler_input(2);
        b.add(&x, &y);
        assert_eq!(
            b.finish().unwrap_err(),
            CircuitError::WidthMismatch { left: 3, right: 2 }
        );
    }
}
