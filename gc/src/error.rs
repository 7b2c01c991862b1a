//! Error types of the crate.

use thiserror::Error;

/// A circuit is malformed or was used with inputs of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CircuitError {
    /// A gate reads a wire that is not defined before it (wires must be in topological order).
    #[error("gate {gate} reads wire {wire}, which is not defined before it")]
    NotTopological {
        /// Index of the offending gate.
        gate: usize,
        /// The wire it reads.
        wire: u32,
    },
    /// An output refers to a wire that does not exist.
    #[error("output {output} refers to wire {wire}, but the circuit has {wires} wires")]
    OutputOutOfRange {
        /// Index of the output.
        output: usize,
        /// The wire it names.
        wire: u32,
        /// Number of wires of the circuit.
        wires: usize,
    },
    /// An AND gate has an input whose active label is public (a constant or a garbler-private
    /// constant): garbler-private constants may only feed XOR/INV gates.
    #[error("AND gate {gate} reads wire {wire}, which is a constant or garbler-private constant")]
    KnownLabelIntoAnd {
        /// Index of the offending gate.
        gate: usize,
        /// The wire it reads.
        wire: u32,
    },
    /// An output depends only on garbler-private constants: decoding it would reveal them.
    #[error("output {output} (wire {wire}) depends only on garbler-private constants")]
    PrivateOutput {
        /// Index of the output.
        output: usize,
        /// The wire it names.
        wire: u32,
    },
    /// Two bit vectors that must have the same width differ.
    #[error("width mismatch: {left} bits vs {right} bits")]
    WidthMismatch {
        /// Width of the first operand.
        left: usize,
        /// Width of the second operand.
        right: usize,
    },
    /// An input vector has the wrong length.
    #[error("{what}: expected {expected} values, got {got}")]
    InputLength {
        /// Which input.
        what: &'static str,
        /// Expected number of entries.
        expected: usize,
        /// Number given.
        got: usize,
    },
    /// The circuit is too large for the tweak layout (2·AND index + 1 must fit in 32 bits).
    #[error("circuit too large: {ands} AND gates (at most 2^31 − 1)")]
    TooLarge {
        /// Number of AND gates.
        ands: usize,
    },
    /// Input groups do not add up to the declared numbers of inputs.
    #[error("input/output groups of {what} sum to {sum}, expected {expected}")]
    Groups {
        /// Which groups.
        what: &'static str,
        /// Their sum.
        sum: usize,
        /// The expected total.
        expected: usize,
    },
    /// A parameter is outside its range.
    #[error("parameter {name} = {value} outside {range}")]
    Parameter {
        /// Parameter name.
        name: &'static str,
        /// Given value.
        value: u64,
        /// Allowed range, in words.
        range: &'static str,
    },
    /// A value does not fit in the declared bit width.
    #[error("value {value:#x} does not fit in {width} bits")]
    ValueTooWide {
        /// The value.
        value: u64,
        /// The width.
        width: u32,
    },
}

/// A Bristol Fashion file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BristolError {
    /// A line is malformed.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file ended before the header or all gates were read.
    #[error("unexpected end of file after line {line}: {reason}")]
    Truncated {
        /// Last line read.
        line: usize,
        /// What was missing.
        reason: String,
    },
    /// The circuit described is not valid.
    #[error("invalid circuit: {0}")]
    Circuit(#[from] CircuitError),
}

/// Garbling, evaluation, encoding or decoding failed on bad input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GarbleError {
    /// A byte buffer or label vector has the wrong size.
    #[error("{what}: expected {expected} {unit}, got {got}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Given size.
        got: usize,
        /// Unit of the sizes.
        unit: &'static str,
    },
    /// Tables garbled for another circuit (their header's fingerprint is not this circuit's).
    #[error("garbled tables for another circuit: fingerprint {got:#018x}, this circuit's is {expected:#018x}")]
    CircuitMismatch {
        /// This circuit's fingerprint.
        expected: u64,
        /// The tables'.
        got: u64,
    },
    /// The instance indices of the batch overflow the 32-bit tweak field.
    #[error("instances {first}..{first}+{count} overflow the 32-bit instance field of the tweak")]
    InstanceRange {
        /// First instance index.
        first: u32,
        /// Number of instances.
        count: usize,
    },
    /// The circuit is unusable.
    #[error(transparent)]
    Circuit(#[from] CircuitError),
}
