//! Bristol Fashion import and export (the format of the public MPC circuit collections).
//!
//! ```text
//! nGates nWires
//! nInputValues w_1 … w_n
//! nOutputValues w_1 … w_m
//!
//! 2 1 a b c XOR|AND      1 1 a c INV|EQW      1 1 v c EQ (v ∈ {0,1})      2m m a… b… c… MAND
//! ```
//! Input values occupy the first wires in order, output values the last wires; within a value
//! bit 0 (the least significant) is the first wire. Input values are assigned to the parties by
//! [`BristolParties`]: by position (garbler values first, then evaluator values, then
//! garbler-private constants: the order [`to_bristol`] writes them in) or one owner per value.

use crate::builder::{CircuitBuilder, Wire};
use crate::circuit::{Circuit, Gate};
use crate::error::BristolError;
use std::fmt::Write;

/// Whose one input value of a Bristol file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueOwner {
    /// The garbler's input (its labels are sent online).
    Garbler,
    /// The evaluator's input (its labels come by oblivious transfer).
    Evaluator,
    /// A garbler-private constant, fixed when garbling ([`CircuitBuilder::private_input`]).
    GarblerPrivate,
}

/// How the input values of a Bristol file map to the parties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BristolParties {
    /// By position: the first `garbler_values` values are the garbler's, the last
    /// `private_values` garbler-private constants, the rest the evaluator's (the order
    /// [`to_bristol`] writes them in).
    Positional {
        /// Leading garbler values.
        garbler_values: usize,
        /// Trailing garbler-private values.
        private_values: usize,
    },
    /// One owner per input value, in the file's order (e.g. a garbler-private value first).
    PerValue(Vec<ValueOwner>),
}

impl Default for BristolParties {
    /// Two-party convention of the collections: value 1 is the garbler's, the rest the evaluator's.
    fn default() -> Self {
        BristolParties::Positional {
            garbler_values: 1,
            private_values: 0,
        }
    }
}

impl BristolParties {
    /// The parties of a circuit written by [`to_bristol`].
    pub fn of(c: &Circuit) -> Self {
        BristolParties::Positional {
            garbler_values: c.garbler_groups().len(),
            private_values: c.private_groups().len(),
        }
    }

    /// The owner of each of `values` input values, or why this assignment does not fit the file.
    fn owners(&self, values: usize) -> Result<Vec<ValueOwner>, String> {
        match self {
            BristolParties::Positional {
                garbler_values,
                private_values,
            } => {
                let (g, p) = (*garbler_values, *private_values);
                if g.saturating_add(p) > values {
                    return Err(format!(
                        "{g} garbler + {p} private values requested, the file has {values} input \
                         values"
                    ));
                }
                Ok((0..values)
                    .map(|v| match v {
                        v if v < g => ValueOwner::Garbler,
                        v if v >= values - p => ValueOwner::GarblerPrivate,
                        _ => ValueOwner::Evaluator,
                    })
                    .collect())
            }
            BristolParties::PerValue(owners) if owners.len() == values => Ok(owners.clone()),
            BristolParties::PerValue(owners) => Err(format!(
                "{} owners given, the file has {values} input values",
                owners.len()
            )),
        }
    }
}

/// Writes `c` in Bristol Fashion. If the outputs are not already the last wires in order, `EQW`
/// copies are appended (free gates).
pub fn to_bristol(c: &Circuit) -> String {
    let n_in = c.inputs();
    let mut n_wires = c.wires();
    let trailing = c
        .outputs()
        .iter()
        .enumerate()
        .all(|(i, &o)| o as usize == n_wires - c.outputs().len() + i);
    let copies = if trailing { 0 } else { c.outputs().len() };
    let mut s = String::new();
    let values: Vec<usize> = c
        .garbler_groups()
        .iter()
        .chain(c.evaluator_groups())
        .chain(c.private_groups())
        .copied()
        .collect();
    let _ = writeln!(s, "{} {}", c.gates().len() + copies, n_wires + copies);
    let list = |v: &[usize]| v.iter().map(|w| format!(" {w}")).collect::<String>();
    let _ = writeln!(s, "{}{}", values.len(), list(&values));
    let _ = writeln!(s, "{}{}", c.output_groups().len(), list(c.output_groups()));
    s.push('\n');
    for (i, g) in c.gates().iter().enumerate() {
        let out = n_in + i;
        let _ = match *g {
            Gate::Xor(a, b) => writeln!(s, "2 1 {a} {b} {out} XOR"),
            Gate::And(a, b) => writeln!(s, "2 1 {a} {b} {out} AND"),
            Gate::Inv(a) => writeln!(s, "1 1 {a} {out} INV"),
            Gate::Const(v) => writeln!(s, "1 1 {} {out} EQ", v as u8),
        };
    }
    if copies > 0 {
        for &o in c.outputs() {
            let _ = writeln!(s, "1 1 {o} {n_wires} EQW");
            n_wires += 1;
        }
    }
    s
}

struct Lines<'a> {
    inner: std::iter::Enumerate<std::str::Lines<'a>>,
    last: usize,
}

impl<'a> Lines<'a> {
    /// The next non-empty line, split into tokens, with its 1-based number.
    fn next_tokens(&mut self) -> Option<(usize, Vec<&'a str>)> {
        for (i, l) in self.inner.by_ref() {
            self.last = i + 1;
            let t: Vec<&str> = l.split_whitespace().collect();
            if !t.is_empty() {
                return Some((i + 1, t));
            }
        }
        None
    }
}

fn syntax(line: usize, reason: impl Into<String>) -> BristolError {
    BristolError::Syntax {
        line,
        reason: reason.into(),
    }
}

fn num(line: usize, tok: &str, what: &str) -> Result<usize, BristolError> {
    tok.parse::<usize>()
        .map_err(|_| syntax(line, format!("{what}: expected a number, found {tok:?}")))
}

/// Reads a `count w_1 … w_count` line.
fn value_list(lines: &mut Lines<'_>, what: &str) -> Result<Vec<usize>, BristolError> {
    let (ln, t) = lines.next_tokens().ok_or_else(|| BristolError::Truncated {
        line: lines.last,
        reason: format!("missing the {what} line"),
    })?;
    let n = num(ln, t[0], what)?;
    // The old (pre-Fashion) format's second line is `nInputs1 nInputs2 nOutputs` (bit counts,
    // no value count): say so rather than miscount it.
    if what == "input values" && t.len() == 3 && n != 2 && lines.last == 2 {
        return Err(syntax(
            ln,
            "this looks like the old Bristol format (`n1 n2 nOut` bit counts on line 2); \
             convert it to Bristol Fashion (`nValues w_1 … w_n`, then `nOutputValues w_1 …`)",
        ));
    }
    if t.len() != n + 1 {
        return Err(syntax(
            ln,
            format!("{what}: {n} values announced, {} given", t.len() - 1),
        ));
    }
    t[1..].iter().map(|x| num(ln, x, what)).collect()
}

/// The bits of an input value given as bytes, in the order [`from_bristol`] assigns them to wires:
/// the bytes are a big-endian integer and its least significant bit goes on the value's first
/// wire. `width` bits are returned (the integer must fit: higher bits set is an error).
pub fn value_bits(bytes: &[u8], width: usize) -> Result<Vec<bool>, BristolError> {
    let bit = |i: usize| {
        bytes
            .len()
            .checked_sub(1 + i / 8)
            .is_some_and(|b| (bytes[b] >> (i % 8)) & 1 == 1)
    };
    if (width..bytes.len() * 8).any(bit) {
        return Err(syntax(
            0,
            format!("a {}-byte value does not fit {width} bits", bytes.len()),
        ));
    }
    Ok((0..width).map(bit).collect())
}

/// The inverse of [`value_bits`]: an output value's bits (first wire = least significant bit) as a
/// big-endian integer of ⌈bits / 8⌉ bytes.
pub fn value_bytes(bits: &[bool]) -> Vec<u8> {
    let n = bits.len().div_ceil(8);
    let mut out = vec![0u8; n];
    for (i, &b) in bits.iter().enumerate() {
        out[n - 1 - i / 8] |= u8::from(b) << (i % 8);
    }
    out
}

/// Largest circuit [`from_bristol`] reads (2^24 wires: far beyond any ReLU or AES circuit).
pub const MAX_WIRES: usize = 1 << 24;

/// Parses a Bristol Fashion circuit; `parties` says whose each input value is.
///
/// Public constants (`EQ`) are folded and `EQW` copies become aliases, so the result can have fewer
/// gates than the file. Every error names the offending line.
pub fn from_bristol(text: &str, parties: BristolParties) -> Result<Circuit, BristolError> {
    let mut lines = Lines {
        inner: text.lines().enumerate(),
        last: 0,
    };
    let (ln, t) = lines.next_tokens().ok_or(BristolError::Truncated {
        line: 0,
        reason: "empty file".into(),
    })?;
    if t.len() != 2 {
        return Err(syntax(ln, "header: expected `nGates nWires`"));
    }
    let n_gates = num(ln, t[0], "nGates")?;
    let n_wires = num(ln, t[1], "nWires")?;
    let ins = value_list(&mut lines, "input values")?;
    let in_line = lines.last;
    let outs = value_list(&mut lines, "output values")?;
    let out_line = lines.last;
    let total = |v: &[usize]| v.iter().try_fold(0usize, |a, &w| a.checked_add(w));
    let (Some(n_in), Some(n_out)) = (total(&ins), total(&outs)) else {
        return Err(syntax(out_line, "input/output widths overflow"));
    };
    // Input wires need no gate line, so the text size alone does not bound them: cap the circuit.
    if n_wires > MAX_WIRES {
        return Err(syntax(
            1,
            format!("{n_wires} wires: more than the {MAX_WIRES} this reader accepts"),
        ));
    }
    if n_in > n_wires || n_out > n_wires {
        return Err(syntax(
            out_line,
            format!("{n_in} inputs / {n_out} outputs but only {n_wires} wires"),
        ));
    }
    // Every non-input wire is written by a gate on some line: bounds the allocation by the text size.
    if n_wires - n_in > text.len() {
        return Err(syntax(
            1,
            format!(
                "{n_wires} wires cannot be defined by a {}-byte file",
                text.len()
            ),
        ));
    }
    let owners = parties
        .owners(ins.len())
        .map_err(|reason| syntax(in_line, reason))?;
    let mut b = CircuitBuilder::new();
    let mut wires: Vec<Option<Wire>> = vec![None; n_wires];
    let mut next = 0;
    for (&w, owner) in ins.iter().zip(owners) {
        let ws = match owner {
            ValueOwner::Garbler => b.garbler_input(w),
            ValueOwner::Evaluator => b.evaluator_input(w),
            ValueOwner::GarblerPrivate => b.private_input(w),
        };
        for x in ws {
            wires[next] = Some(x);
            next += 1;
        }
    }
    for _ in 0..n_gates {
        let (ln, t) = lines.next_tokens().ok_or_else(|| BristolError::Truncated {
            line: lines.last,
            reason: format!("{n_gates} gates announced"),
        })?;
        if t.len() < 3 {
            return Err(syntax(ln, "gate: expected `nIn nOut wires… OP`"));
        }
        let op = t[t.len() - 1];
        let ni = num(ln, t[0], "gate input count")?;
        let no = num(ln, t[1], "gate output count")?;
        if t.len() != ni + no + 3 {
            return Err(syntax(
                ln,
                format!(
                    "gate announces {ni} inputs and {no} outputs, has {} wires",
                    t.len() - 3
                ),
            ));
        }
        let ids = t[2..2 + ni + no]
            .iter()
            .map(|x| num(ln, x, "wire"))
            .collect::<Result<Vec<_>, _>>()?;
        let (ins_w, outs_w) = ids.split_at(ni);
        let read = |w: usize| -> Result<Wire, BristolError> {
            match wires.get(w) {
                None => Err(syntax(
                    ln,
                    format!("wire {w} out of range (nWires = {n_wires})"),
                )),
                Some(None) => Err(syntax(ln, format!("wire {w} read before it is assigned"))),
                Some(Some(x)) => Ok(*x),
            }
        };
        let arity = |i: usize, o: usize| -> Result<(), BristolError> {
            if ni != i || no != o {
                return Err(syntax(
                    ln,
                    format!("{op} takes {i} inputs and {o} outputs, got {ni} and {no}"),
                ));
            }
            Ok(())
        };
        let results: Vec<Wire> = match op {
            "XOR" | "AND" => {
                arity(2, 1)?;
                let (x, y) = (read(ins_w[0])?, read(ins_w[1])?);
                vec![if op == "XOR" {
                    b.xor(x, y)
                } else {
                    b.and(x, y)
                }]
            }
            "INV" | "NOT" => {
                arity(1, 1)?;
                let x = read(ins_w[0])?;
                vec![b.inv(x)]
            }
            "EQW" => {
                arity(1, 1)?;
                vec![read(ins_w[0])?]
            }
            "EQ" => {
                arity(1, 1)?;
                match ins_w[0] {
                    0 => vec![Wire::FALSE],
                    1 => vec![Wire::TRUE],
                    v => return Err(syntax(ln, format!("EQ constant must be 0 or 1, got {v}"))),
                }
            }
            "MAND" => {
                if ni != 2 * no || no == 0 {
                    return Err(syntax(
                        ln,
                        format!("MAND takes 2m inputs and m outputs, got {ni} and {no}"),
                    ));
                }
                let mut r = Vec::with_capacity(no);
                for i in 0..no {
                    let (x, y) = (read(ins_w[i])?, read(ins_w[no + i])?);
                    r.push(b.and(x, y));
                }
                r
            }
            other => return Err(syntax(ln, format!("unknown gate {other:?}"))),
        };
        // The builder records a misuse (an AND on a public or garbler-private value) when the gate
        // is added: name this line and the file's wires, not the builder's internal gate index.
        if let Some(e) = b.error() {
            let reason = match e {
                crate::error::CircuitError::KnownLabelIntoAnd { .. } => format!(
                    "{op} on wires {ins_w:?} reads a constant or a garbler-private value \
                     (both inputs of an AND must carry labels the evaluator does not know)"
                ),
                other => format!("{op} on wires {ins_w:?}: {other}"),
            };
            return Err(syntax(ln, reason));
        }
        for (&w, r) in outs_w.iter().zip(results) {
            match wires.get_mut(w) {
                None => {
                    return Err(syntax(
                        ln,
                        format!("wire {w} out of range (nWires = {n_wires})"),
                    ))
                }
                Some(Some(_)) => return Err(syntax(ln, format!("wire {w} assigned twice"))),
                Some(slot) => *slot = Some(r),
            }
        }
    }
    if let Some((ln, _)) = lines.next_tokens() {
        return Err(syntax(
            ln,
            format!("trailing content after the {n_gates} announced gates"),
        ));
    }
    let mut first = n_wires - n_out;
    for &w in &outs {
        let group: Option<Vec<Wire>> = wires[first..first + w].iter().copied().collect();
        let group = group.ok_or_else(|| {
            syntax(
                lines.last,
                format!("output wires {first}..{} not all assigned", first + w),
            )
        })?;
        b.output(&group);
        first += w;
    }
    Ok(b.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "3 7\n2 2 1\n1 2\n\n2 1 0 1 3 AND\n1 1 2 4 INV\n4 2 3 4 1 2 5 6 MAND\n";

    #[test]
    fn parses_tiny_circuit() {
        let c = from_bristol(TINY, BristolParties::default()).unwrap();
        assert_eq!((c.garbler_inputs(), c.evaluator_inputs()), (2, 1));
        assert_eq!(c.and_count(), 3);
        for v in 0..8u8 {
            let (x0, x1, y) = (v & 1 == 1, v & 2 == 2, v & 4 == 4);
            let out = c.eval(&[x0, x1], &[y], &[]).unwrap();
            assert_eq!(out, vec![x0 & x1 & x1, !y & y]);
        }
    }

    #[test]
    fn byte_values_round_trip_in_wire_order() {
        // 0x0102 as a big-endian integer: bit 1 and bit 8 set, least significant first.
        let bits = value_bits(&[0x01, 0x02], 16).unwrap();
        assert!(bits[1] && bits[8]);
        assert_eq!(bits.iter().filter(|b| **b).count(), 2);
        assert_eq!(value_bytes(&bits), vec![0x01, 0x02]);
        assert_eq!(
            value_bits(&[0x00, 0x05], 3).unwrap(),
            vec![true, false, true]
        );
        assert!(value_bits(&[0x01, 0x00], 8).is_err());
    }

    #[test]
    fn owners_per_value_put_a_private_value_first() {
        // Values: v0 (1 bit), v1 (1 bit), v2 (1 bit); output (v0 ⊕ v2) ∧ v1.
        let text = "2 5\n3 1 1 1\n1 1\n\n2 1 0 2 3 XOR\n2 1 3 1 4 AND\n";
        use ValueOwner::*;
        let parties = BristolParties::PerValue(vec![GarblerPrivate, Garbler, Evaluator]);
        let c = from_bristol(text, parties).unwrap();
        assert_eq!((c.garbler_inputs(), c.evaluator_inputs()), (1, 1));
        for v in 0..8u8 {
            let (v0, v1, v2) = (v & 1 == 1, v & 2 == 2, v & 4 == 4);
            assert_eq!(c.eval(&[v1], &[v2], &[v0]).unwrap(), vec![(v0 ^ v2) & v1]);
        }
        // One owner short: a clear error on the input-values line.
        match from_bristol(text, BristolParties::PerValue(vec![Garbler, Evaluator])) {
            Err(BristolError::Syntax { line, reason }) => {
                assert_eq!(line, 2);
                assert!(
                    reason.contains("2 owners given, the file has 3"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_format_and_and_misuse_name_the_line_and_the_file() {
        let old = "1 3\n32 32 33\n2 1 0 1 2 AND\n";
        let Err(BristolError::Syntax { line, reason }) =
            from_bristol(old, BristolParties::default())
        else {
            panic!("accepted")
        };
        assert_eq!(line, 2);
        assert!(reason.contains("old Bristol format"), "{reason}");
        // Line 5: an AND of two garbler-private values — the error names line 5 and the file's
        // wires, not an internal gate index.
        let misuse = "2 5\n3 1 1 1\n1 1\n\n2 1 1 2 3 AND\n2 1 0 3 4 XOR\n";
        let parties = BristolParties::Positional {
            garbler_values: 1,
            private_values: 2,
        };
        match from_bristol(misuse, parties) {
            Err(BristolError::Syntax { line, reason }) => {
                assert_eq!(line, 5, "{reason}");
                assert!(reason.contains("AND on wires [1, 2]"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_files_name_the_line() {
        let p = BristolParties::default();
        let line_of = |text: &str| match from_bristol(text, p.clone()) {
            Err(BristolError::Syntax { line, .. }) => line,
            other => panic!("expected a syntax error, got {other:?}"),
        };
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n2 1 0 1 2 NAND\n"), 5);
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n2 1 0 5 2 AND\n"), 5);
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n2 1 0 2 2 AND\n"), 5);
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n2 1 0 x 2 AND\n"), 5);
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n2 1 0 1 AND\n"), 5);
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n1 1 0 2 EQ\n2 1 0 1 2 AND\n"), 6);
        assert_eq!(line_of("1 3\n3 1 1\n1 1\n\n2 1 0 1 2 AND\n"), 2);
        assert_eq!(line_of("1 3 4\n2 1 1\n1 1\n"), 1);
        assert_eq!(line_of("1 3\n2 1 1\n1 1\n\n1 1 0 2 EQ 7\n"), 5);
        assert_eq!(line_of("1 999999999\n2 1 1\n1 1\n\n2 1 0 1 2 AND\n"), 1);
        assert!(matches!(
            from_bristol("2 4\n2 1 1\n1 1\n\n2 1 0 1 2 AND\n", p.clone()),
            Err(BristolError::Truncated { line: 5, .. })
        ));
        assert!(matches!(
            from_bristol("", p.clone()),
            Err(BristolError::Truncated { .. })
        ));
    }

    /// Found by the `gc_wire` fuzz target: input wires need no gate line, so a header announcing
    /// astronomically wide inputs used to pass the size check and abort on allocation.
    #[test]
    fn huge_input_widths_are_refused_before_allocating() {
        let p = BristolParties::default();
        let huge = "1 100000000000000\n2 50000000000000 50000000000000\n1 1\n\n2 1 0 1 2 AND\n";
        assert!(matches!(
            from_bristol(huge, p.clone()),
            Err(BristolError::Syntax { .. })
        ));
        let overflow = format!(
            "1 5\n2 {} {}\n1 1\n\n2 1 0 1 2 AND\n",
            usize::MAX,
            usize::MAX
        );
        assert!(from_bristol(&overflow, p.clone()).is_err());
    }
}
