//! Labels, Δ, and the byte-buffer wire formats of garbled material.
//!
//! Every format is raw: 16-byte blocks back to back (tables, labels) or packed bits (decoding), with
//! no framing; the receiver knows the circuit and the instance count and checks the exact length.
//! Instances are the outer dimension everywhere, so a contiguous range of instances is a contiguous
//! byte range (a Web Worker can take a slice).

use crate::circuit::Circuit;
use crate::error::GarbleError;
use cryptonas_crypto::{Block, Csprng};
use std::fmt;
use zeroize::Zeroize;

/// The free-XOR offset Δ: the one-label of a wire is its zero-label ⊕ Δ.
///
/// Its least significant bit is forced to 1 (point-and-permute: the two labels of a wire have
/// different colour bits). Secret: `Debug` does not print it. Draw a fresh Δ for every garbling;
/// it is `Clone` (the OT extension needs it) but not `Copy`, so reuse is visible in the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Delta(Block);

impl Delta {
    /// A fresh uniformly random Δ (127 random bits, lsb = 1).
    pub fn random(rng: &mut Csprng) -> Self {
        Self::new(rng.block())
    }

    /// Δ from a block (e.g. the correlation of a correlated-OT extension); the lsb is set to 1.
    pub fn new(block: Block) -> Self {
        Delta(Block::from_u128(block.to_u128() | 1))
    }

    /// The block (secret).
    pub fn as_block(&self) -> Block {
        self.0
    }
}

impl Drop for Delta {
    fn drop(&mut self) {
        self.0 .0.zeroize();
    }
}

impl fmt::Debug for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Delta(<secret>)")
    }
}

/// One wire label. Zero-labels live only with the garbler (in [`Encoder`]); the evaluator only ever
/// holds active labels ([`ActiveLabels`], [`OutputLabels`]). `Debug` hides the value.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Label(pub Block);

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Label(<secret>)")
    }
}

/// Where the hash tweaks of a batch come from: `tweak = session_id ‖ instance ‖ (2·AND index + half)`
/// (64 + 32 + 32 bits), `instance = first_instance + i` for the i-th instance of the batch.
///
/// The caller must never use the same (session_id, instance) twice under one Δ (e.g. a session id
/// per inference and layer, or consecutive instance ranges across layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TweakDomain {
    /// Unique per inference (and per layer if instance ranges restart).
    pub session_id: u64,
    /// Global index of the batch's first circuit instance.
    pub first_instance: u32,
}

impl TweakDomain {
    pub(crate) fn check(&self, n: usize) -> Result<(), GarbleError> {
        if (self.first_instance as u64) + (n as u64) > (1u64 << 32) {
            return Err(GarbleError::InstanceRange {
                first: self.first_instance,
                count: n,
            });
        }
        Ok(())
    }
}

fn blocks_from_bytes(
    what: &'static str,
    bytes: &[u8],
    blocks: usize,
) -> Result<Vec<Block>, GarbleError> {
    // Saturating: sizes come from a peer, and `usize` is 32 bits in wasm.
    let expected = blocks.saturating_mul(Block::BYTES);
    if bytes.len() != expected {
        return Err(GarbleError::Length {
            what,
            expected,
            got: bytes.len(),
            unit: "bytes",
        });
    }
    Ok(Block::vec_from_bytes(bytes).expect("length is a multiple of 16"))
}

/// The garbled tables of a batch: a header block, then `T_G ‖ T_E` (32 bytes) per AND gate and
/// instance.
///
/// The header (16 bytes) is the circuit's [`Circuit::fingerprint`] (little-endian `u64`) and the
/// instance count (`u64`): tables evaluated with another circuit, or parsed as another count, are
/// an error rather than garbage. Layout after it: instances are grouped in chunks of
/// [`crate::CHUNK`] (the last one may be shorter); chunks follow each other; within a chunk of `c`
/// instances, AND gate `j` of instance `i` is at block `2·(j·c + i)`. So the tables of instances
/// `s..e` with `s` a multiple of `CHUNK` (and `e` one too, or the end) are one contiguous range
/// laid out exactly like a batch of `e − s` instances ([`GarbledTables::slice`]).
///
/// `Default` is the empty buffer of zero instances, to pass to [`crate::Garbler::garble_into`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct GarbledTables {
    pub(crate) instances: usize,
    /// The header block, then the tables (empty for `Default`).
    pub(crate) blocks: Vec<u128>,
}

/// The header block of `instances` instances of a circuit with fingerprint `fingerprint`.
pub(crate) fn table_header(fingerprint: u64, instances: usize) -> u128 {
    u128::from(fingerprint) | (u128::from(instances as u64) << 64)
}

impl GarbledTables {
    /// Number of circuit instances.
    pub fn instances(&self) -> usize {
        self.instances
    }
    /// The raw bytes, header included (layout above).
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.blocks) // little-endian targets only (lib.rs)
    }
    /// The tables without the header.
    pub(crate) fn body(&self) -> &[u128] {
        self.blocks.get(1..).unwrap_or(&[])
    }
    /// The header's circuit fingerprint and instance count (`None` for `Default`).
    fn header(&self) -> Option<(u64, u64)> {
        self.blocks.first().map(|&h| (h as u64, (h >> 64) as u64))
    }
    /// Checks that the tables were garbled for `circuit` (their header's fingerprint).
    pub(crate) fn check_circuit(&self, circuit: &Circuit) -> Result<(), GarbleError> {
        match self.header() {
            Some((got, _)) if got != circuit.fingerprint() => Err(GarbleError::CircuitMismatch {
                expected: circuit.fingerprint(),
                got,
            }),
            _ => Ok(()),
        }
    }
    /// Checks that `len` bytes are the tables of `instances` instances of `circuit`, as
    /// [`GarbledTables::from_bytes`] requires, without parsing them (for code that only forwards
    /// tables, e.g. to a worker that parses them once).
    pub fn check_len(circuit: &Circuit, instances: usize, len: usize) -> Result<(), GarbleError> {
        // Saturating: sizes come from a peer, and `usize` is 32 bits in wasm.
        let expected = instances
            .saturating_mul(2 * Block::BYTES)
            .saturating_mul(circuit.and_count())
            .saturating_add(Block::BYTES);
        if len != expected {
            return Err(GarbleError::Length {
                what: "garbled tables",
                expected,
                got: len,
                unit: "bytes",
            });
        }
        Ok(())
    }
    /// Parses tables for `instances` instances of `circuit`: the length must be exact and the
    /// header name this circuit and this count.
    pub fn from_bytes(
        circuit: &Circuit,
        instances: usize,
        bytes: &[u8],
    ) -> Result<Self, GarbleError> {
        Self::check_len(circuit, instances, bytes.len())?;
        let blocks: Vec<u128> = bytes
            .chunks_exact(16)
            .map(|c| u128::from_le_bytes(c.try_into().expect("16-byte chunk")))
            .collect();
        let tables = GarbledTables { instances, blocks };
        tables.check_circuit(circuit)?;
        let declared = tables.header().map_or(0, |(_, n)| n);
        if declared != instances as u64 {
            return Err(GarbleError::Length {
                what: "garbled tables (instances in the header)",
                expected: instances,
                got: usize::try_from(declared).unwrap_or(usize::MAX),
                unit: "instances",
            });
        }
        Ok(tables)
    }
    /// The tables of instances `range` (for splitting work across workers); evaluate them with
    /// a [`TweakDomain`] whose `first_instance` is advanced by `range.start`. Both ends must be
    /// multiples of [`crate::CHUNK`] (the end may also be the last instance).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<GarbledTables, GarbleError> {
        let aligned = |x: usize| x & (crate::CHUNK - 1) == 0; // CHUNK is a power of two
        if range.start > range.end
            || range.end > self.instances
            || !aligned(range.start)
            || !(aligned(range.end) || range.end == self.instances)
        {
            return Err(GarbleError::Length {
                what: "table slice (chunk-aligned, within the batch)",
                expected: self.instances,
                got: range.end,
                unit: "instances",
            });
        }
        let body = self.body();
        let per = body.len().checked_div(self.instances).unwrap_or(0);
        let fingerprint = self.header().map_or(0, |(f, _)| f);
        let mut blocks = Vec::with_capacity(1 + range.len() * per);
        blocks.push(table_header(fingerprint, range.len()));
        blocks.extend_from_slice(&body[range.start * per..range.end * per]);
        Ok(GarbledTables {
            instances: range.len(),
            blocks,
        })
    }
    /// Mutable access to the raw table blocks, without the header (tests of tamper detection use
    /// it).
    pub fn blocks_mut(&mut self) -> &mut [Block] {
        let body = self.blocks.get_mut(1..).unwrap_or(&mut []);
        bytemuck::cast_slice_mut(body)
    }
}

impl fmt::Debug for GarbledTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GarbledTables({} instances, {} blocks)",
            self.instances,
            self.blocks.len()
        )
    }
}

/// Active labels handed to the evaluator, instance-major (per instance, one label per input bit).
#[derive(Clone, PartialEq, Eq)]
pub struct ActiveLabels {
    pub(crate) per_instance: usize,
    pub(crate) blocks: Vec<Block>,
}

impl ActiveLabels {
    /// Wraps labels, `per_instance` of them for each instance (e.g. received from an OT).
    pub fn new(per_instance: usize, blocks: Vec<Block>) -> Result<Self, GarbleError> {
        if (per_instance == 0 && !blocks.is_empty())
            || blocks
                .len()
                .checked_rem(per_instance)
                .is_some_and(|r| r != 0)
        {
            return Err(GarbleError::Length {
                what: "active labels",
                expected: per_instance,
                got: blocks.len(),
                unit: "blocks (a multiple)",
            });
        }
        Ok(ActiveLabels {
            per_instance,
            blocks,
        })
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        Block::slice_as_bytes(&self.blocks)
    }
    /// Parses exactly `instances · per_instance` labels.
    pub fn from_bytes(
        per_instance: usize,
        instances: usize,
        bytes: &[u8],
    ) -> Result<Self, GarbleError> {
        let blocks = blocks_from_bytes(
            "active labels",
            bytes,
            per_instance.saturating_mul(instances),
        )?;
        Ok(ActiveLabels {
            per_instance,
            blocks,
        })
    }
    /// The labels.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
}

impl fmt::Debug for ActiveLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActiveLabels({} blocks)", self.blocks.len())
    }
}

/// Decoding information: the colour bit (lsb) of every output zero-label, instance-major,
/// packed 8 per byte (bit j of byte i is entry 8i + j).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DecodingBits {
    pub(crate) count: usize,
    pub(crate) packed: Vec<u8>,
}

impl DecodingBits {
    pub(crate) fn from_bits(bits: impl ExactSizeIterator<Item = bool>) -> Self {
        let count = bits.len();
        let mut packed = vec![0u8; count.div_ceil(8)];
        for (i, b) in bits.enumerate() {
            packed[i / 8] |= (b as u8) << (i % 8);
        }
        DecodingBits { count, packed }
    }
    pub(crate) fn get(&self, i: usize) -> bool {
        (self.packed[i / 8] >> (i % 8)) & 1 == 1
    }
    /// The decoding bits of instances `range` of a batch of `circuit` (to decode the outputs of a
    /// slice evaluated separately, see [`GarbledTables::slice`]).
    pub fn slice(
        &self,
        circuit: &Circuit,
        range: std::ops::Range<usize>,
    ) -> Result<DecodingBits, GarbleError> {
        let per = circuit.outputs().len();
        if range.start > range.end || range.end * per > self.count {
            return Err(GarbleError::Length {
                what: "decoding slice",
                expected: self.count,
                got: range.end * per,
                unit: "bits",
            });
        }
        Ok(DecodingBits::from_bits(
            (range.start * per..range.end * per).map(|i| self.get(i)),
        ))
    }
    /// Number of output bits covered.
    pub fn len(&self) -> usize {
        self.count
    }
    /// Whether it covers no output bit.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The packed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.packed
    }
    /// Bytes of the decoding bits of `instances` instances of `circuit` (saturating: sizes come
    /// from a peer).
    pub fn byte_len(circuit: &Circuit, instances: usize) -> usize {
        circuit
            .outputs()
            .len()
            .saturating_mul(instances)
            .div_ceil(8)
    }
    /// Checks that `len` bytes are the decoding bits of `instances` instances of `circuit` (for a
    /// party that checks a declared size before the bytes themselves arrive).
    pub fn check_len(circuit: &Circuit, instances: usize, len: usize) -> Result<(), GarbleError> {
        let expected = Self::byte_len(circuit, instances);
        if len != expected {
            return Err(GarbleError::Length {
                what: "decoding bits",
                expected,
                got: len,
                unit: "bytes",
            });
        }
        Ok(())
    }

    /// Parses decoding bits for `instances` instances of `circuit`; the length must be exact and
    /// the padding bits zero.
    pub fn from_bytes(
        circuit: &Circuit,
        instances: usize,
        bytes: &[u8],
    ) -> Result<Self, GarbleError> {
        Self::check_len(circuit, instances, bytes.len())?;
        let count = circuit.outputs().len().saturating_mul(instances);
        if count & 7 != 0 && bytes[count / 8] >> (count & 7) != 0 {
            return Err(GarbleError::Length {
                what: "decoding bits (non-zero padding)",
                expected: count,
                got: count.div_ceil(8) * 8,
                unit: "bits",
            });
        }
        Ok(DecodingBits {
            count,
            packed: bytes.to_vec(),
        })
    }
}

/// The evaluator's output labels, instance-major (`Default`: an empty buffer for
/// [`crate::Evaluator::evaluate_into`]).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct OutputLabels {
    pub(crate) blocks: Vec<Block>,
}

impl OutputLabels {
    /// The output bits: colour bit of each active label ⊕ its decoding bit.
    pub fn decode(&self, decoding: &DecodingBits) -> Result<Vec<bool>, GarbleError> {
        if decoding.count != self.blocks.len() {
            return Err(GarbleError::Length {
                what: "decoding bits",
                expected: self.blocks.len(),
                got: decoding.count,
                unit: "bits",
            });
        }
        Ok(self
            .blocks
            .iter()
            .enumerate()
            .map(|(i, l)| l.lsb() ^ decoding.get(i))
            .collect())
    }
    /// The labels (e.g. to check them against a garbler's commitment).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
}

impl fmt::Debug for OutputLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutputLabels({} blocks)", self.blocks.len())
    }
}

/// The garbler's input-encoding function: Δ and the zero-labels of every garbler and evaluator
/// input wire of a batch (instance-major). Garbler-private constants need no encoding.
pub struct Encoder {
    pub(crate) delta: Delta,
    pub(crate) instances: usize,
    pub(crate) garbler_inputs: usize,
    pub(crate) evaluator_inputs: usize,
    pub(crate) garbler_zero: Vec<Block>,
    pub(crate) evaluator_zero: Vec<Block>,
}

impl Drop for Encoder {
    /// Zero-labels with Δ give every label of the batch: wipe them.
    fn drop(&mut self) {
        bytemuck::cast_slice_mut::<Block, u8>(&mut self.garbler_zero).zeroize();
        bytemuck::cast_slice_mut::<Block, u8>(&mut self.evaluator_zero).zeroize();
    }
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Encoder({} garbler + {} evaluator zero-labels, Δ hidden)",
            self.garbler_zero.len(),
            self.evaluator_zero.len()
        )
    }
}

fn encode(
    what: &'static str,
    zero: &[Block],
    per: usize,
    delta: &Delta,
    bits: &[bool],
) -> Result<ActiveLabels, GarbleError> {
    if bits.len() != zero.len() {
        return Err(GarbleError::Length {
            what,
            expected: zero.len(),
            got: bits.len(),
            unit: "bits",
        });
    }
    let d = delta.as_block();
    let blocks = zero
        .iter()
        .zip(bits)
        .map(|(z, &b)| *z ^ d.select(b))
        .collect();
    Ok(ActiveLabels {
        per_instance: per,
        blocks,
    })
}

impl Encoder {
    /// Δ of this garbling.
    pub fn delta(&self) -> &Delta {
        &self.delta
    }
    /// Circuit instances this encoder covers.
    pub fn instances(&self) -> usize {
        self.instances
    }
    /// Active labels of the garbler's inputs (`bits` instance-major): what it sends online.
    pub fn encode_garbler(&self, bits: &[bool]) -> Result<ActiveLabels, GarbleError> {
        encode(
            "garbler input bits",
            &self.garbler_zero,
            self.garbler_inputs,
            &self.delta,
            bits,
        )
    }
    /// Active labels of the evaluator's inputs. In the protocol the evaluator gets these by OT;
    /// this is the ideal functionality, for tests and benchmarks.
    pub fn encode_evaluator(&self, bits: &[bool]) -> Result<ActiveLabels, GarbleError> {
        encode(
            "evaluator input bits",
            &self.evaluator_zero,
            self.evaluator_inputs,
            &self.delta,
            bits,
        )
    }
    /// Wipes and frees the evaluator's zero-labels: once the tables are sent the garbler only
    /// encodes its own inputs, so a server streaming many layers keeps half the label memory.
    /// [`Encoder::encode_evaluator`] fails afterwards.
    pub fn forget_evaluator_labels(&mut self) {
        bytemuck::cast_slice_mut::<Block, u8>(&mut self.evaluator_zero).zeroize();
        self.evaluator_zero = Vec::new();
    }
    /// Zero-labels of the evaluator's input wires (the OT sender's messages are z and z ⊕ Δ).
    pub fn evaluator_zero_labels(&self) -> &[Block] {
        &self.evaluator_zero
    }
    /// Zero-label of garbler input `bit` of instance `i`.
    pub fn garbler_zero_label(&self, i: usize, bit: usize) -> Option<Label> {
        if bit >= self.garbler_inputs {
            return None;
        }
        self.garbler_zero
            .get(i * self.garbler_inputs + bit)
            .copied()
            .map(Label)
    }
}
