//! Half-gates garbling (Zahur, Rosulek, Evans, Eurocrypt 2015) with free-XOR and point-and-permute,
//! batched across circuit instances.
//!
//! Per AND gate `j` with input zero-labels `A, B`, colour bits `pa = lsb(A)`, `pb = lsb(B)` and
//! `H(x, i) = TCCR(tweak(instance, i), x)`:
//!
//! ```text
//! garbler half:   T_G = H(A, 2j) ⊕ H(A⊕Δ, 2j) ⊕ pb·Δ          W_G = H(A, 2j) ⊕ pa·T_G
//! evaluator half: T_E = H(B, 2j+1) ⊕ H(B⊕Δ, 2j+1) ⊕ A        W_E = H(B, 2j+1) ⊕ pb·(T_E ⊕ A)
//! output zero-label W = W_G ⊕ W_E; the evaluator, holding active labels a, b with colours sa, sb:
//! W_G = H(a, 2j) ⊕ sa·T_G,  W_E = H(b, 2j+1) ⊕ sb·(T_E ⊕ a).
//! ```
//!
//! **Batched layout.** Instances are processed in chunks of [`CHUNK`]; within a chunk gate `g` runs
//! for all instances before gate `g+1`, labels live in slot-major arrays (`slot · CHUNK + i`), and
//! gate `g` of a whole chunk is one call of the fused kernel `FixedKeyAes::garble_and_chunk` /
//! `eval_and_chunk` of `cryptonas-crypto` (VAES-512, VAES-256 or AES-NI, detected at run time;
//! the `aes` crate elsewhere), so many independent AES blocks are in flight. Chunks run on rayon
//! threads natively (feature `parallel`). The tables follow the same layout (see [`GarbledTables`]): every chunk writes and
//! reads its own contiguous range sequentially.
//!
//! **Garbler-private constants.** A private constant bit `m` gets the zero-label `m·Δ`, so its
//! active label is the all-zero block for either value of `m`: nothing is sent, the evaluator's
//! view does not depend on `m`, and the shape of the circuit does not either. This is secure
//! because (1) the active label of such a wire is public and constant, hence carries no
//! information; (2) such wires only feed XOR/INV gates (enforced by [`crate::Circuit::new`]), so
//! every AND gate input — and hence every hashed label — is an XOR of at least one uniformly random
//! input label with public data, exactly as in the standard half-gates proof; `m` only shifts which
//! of the two labels `W, W⊕Δ` is active on downstream wires, which is independent of the evaluator's
//! view when one of them is random; (3) tweaks stay unique per (session, instance, gate, half), so
//! even `u ∧ (u ⊕ p)` (same active label on both inputs) hashes under distinct tweaks.

use crate::circuit::{Circuit, Op};
use crate::error::GarbleError;
use crate::label::{
    table_header, ActiveLabels, DecodingBits, Delta, Encoder, GarbledTables, OutputLabels,
    TweakDomain,
};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};

/// Instances per chunk: wide enough for AES pipelining, small enough that a chunk's labels stay in
/// L1/L2 cache. Part of the table wire format (see [`GarbledTables`]).
pub const CHUNK: usize = 64;
const _: () = assert!(CHUNK.is_power_of_two(), "slice alignment checks rely on it");

/// What garbling a batch produces: `D` is how the evaluator decodes its output labels, to bits
/// ([`DecodingBits`]) or to additive shares ([`crate::ShareDecoding`]).
#[derive(Debug)]
pub struct Garbled<D = DecodingBits> {
    /// The tables, sent to the evaluator (offline).
    pub tables: GarbledTables,
    /// Output decoding, sent to the evaluator.
    pub decoding: D,
    /// The input-encoding function, kept by the garbler.
    pub encoder: Encoder,
}

/// Garbles instances of one circuit.
#[derive(Debug)]
pub struct Garbler<'c> {
    circuit: &'c Circuit,
    domain: TweakDomain,
    pi: FixedKeyAes,
}

/// Evaluates garbled instances of one circuit: a pure function of tables and active labels.
#[derive(Debug)]
pub struct Evaluator<'c> {
    circuit: &'c Circuit,
    domain: TweakDomain,
    pi: FixedKeyAes,
}

/// π under the fixed public key on the detected backend, built once per process.
fn default_pi() -> FixedKeyAes {
    static PI: std::sync::OnceLock<FixedKeyAes> = std::sync::OnceLock::new();
    PI.get_or_init(FixedKeyAes::default).clone()
}

/// Labels in the hot loops are `u128` (16-byte aligned, two-register XOR); blocks only at the API.
type L = u128;

#[inline(always)]
fn sel(x: L, bit: L) -> L {
    x & bit.wrapping_neg()
}

/// Distinct slots `a`, `b` (read) and `out` (written) of a slot-major label array.
#[inline(always)]
fn operands(labels: &mut [L], a: u32, b: u32, out: u32) -> (&[L], &[L], &mut [L]) {
    let (a, b, out) = (a as usize * CHUNK, b as usize * CHUNK, out as usize * CHUNK);
    let (lo, rest) = labels.split_at_mut(out);
    let (o, hi) = rest.split_at_mut(CHUNK);
    let (lo, hi): (&[L], &[L]) = (lo, hi);
    let get = |s: usize| -> &[L] {
        if s < out {
            &lo[s..s + CHUNK]
        } else {
            &hi[s - out - CHUNK..s - out]
        }
    };
    (get(a), get(b), o)
}

/// Chunks with fewer instances than this run level by level, one instance at a time (so the
/// independent AND gates of one AND depth share one kernel call), instead of gate by gate across
/// the chunk's instances.
const LEVEL_BELOW: usize = 8;

/// Per-thread buffers, reused across chunks.
#[derive(Default)]
struct Scratch {
    /// Slot-major labels of a chunk (`slot · CHUNK + i`).
    labels: Vec<L>,
    /// The tweaks of one kernel call.
    tweaks: Vec<L>,
    /// Level path: one label per wire of one instance, and gather buffers for one step.
    wires: Vec<L>,
    a: Vec<L>,
    b: Vec<L>,
    o: Vec<L>,
    t: Vec<L>,
}

impl Scratch {
    /// Sizes the chunk-path buffers for a program of `slots` slots.
    fn for_chunks(&mut self, slots: usize) {
        let len = slots.max(1) * CHUNK;
        if self.labels.len() < len {
            self.labels.resize(len, 0);
        }
        if self.tweaks.len() < CHUNK {
            self.tweaks.resize(CHUNK, 0);
        }
    }

    /// Sizes the level-path buffers for `c` (once per thread and circuit).
    fn for_levels(&mut self, c: &Circuit) {
        let k = c.levels().max_ands;
        // Every wire, then the constant wires ZERO and DELTA of `Step::free`.
        if self.wires.len() != c.wires() + 2 {
            self.wires = vec![0; c.wires() + 2];
        }
        for v in [&mut self.a, &mut self.b, &mut self.o, &mut self.tweaks] {
            if v.len() < k {
                v.resize(k, 0);
            }
        }
        self.t.resize(self.t.len().max(2 * k), 0);
    }
}

/// `session_id (64) ‖ instance (32) ‖ 0 (32)`: OR in `2·AND index + half` for the tweak.
#[inline(always)]
fn instance_tweak(session_id: u64, instance: u32) -> L {
    (L::from(session_id) << 64) | (L::from(instance) << 32)
}

/// The tweaks of AND gate `j` for a chunk whose first instance is `inst0`.
#[inline(always)]
fn chunk_tweaks(tweaks: &mut [L], session_id: u64, inst0: u32, j: u32) {
    for (i, t) in tweaks.iter_mut().enumerate() {
        *t = instance_tweak(session_id, inst0.wrapping_add(i as u32)) | L::from(2 * j);
    }
}

/// `o[i] = a[i] ^ b[i]`, as `u64` halves: a loop the compiler vectorizes (on `u128` it does
/// not, in WebAssembly).
fn xor_labels(o: &mut [L], a: &[L], b: &[L]) {
    let o: &mut [u64] = bytemuck::cast_slice_mut(o);
    let (a, b): (&[u64], &[u64]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
    for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
        *o = a ^ b;
    }
}

/// The free gates of one step (see `Step::free`: all XORs). Labels are handled as two `u64`
/// halves: a 16-byte load of a label just written by two 8-byte stores would miss store-to-load
/// forwarding, and chains of free gates read what the previous gate wrote.
fn free_gates(w: &mut [L], free: &[[u32; 3]]) {
    let w: &mut [[u64; 2]] = bytemuck::cast_slice_mut(w);
    for &[o, a, b] in free {
        let (x, y) = (w[a as usize], w[b as usize]);
        w[o as usize] = [x[0] ^ y[0], x[1] ^ y[1]];
    }
}

/// Garbles instance `i` of a chunk of `cn` level by level (see `Levels`): `s.wires` holds its
/// input zero-labels and receives every wire's zero-label; its tables go to their places in the
/// chunk's table slice `tab` (AND `j` at `2·(j·cn + i)`), exactly as the chunk-wide path writes them.
#[allow(clippy::too_many_arguments)]
fn garble_levels(
    pi: &FixedKeyAes,
    c: &Circuit,
    d: L,
    base: L,
    s: &mut Scratch,
    tab: &mut [L],
    cn: usize,
    i: usize,
) {
    let w = &mut s.wires;
    let n = c.wires();
    (w[n], w[n + 1]) = (0, d);
    for step in &c.levels().steps {
        let k = step.ands.len();
        if k > 0 {
            for (q, &[j, _, a, b]) in step.ands.iter().enumerate() {
                s.a[q] = w[a as usize];
                s.b[q] = w[b as usize];
                s.tweaks[q] = base | L::from(2 * j);
            }
            let (tw, a, b) = (&s.tweaks[..k], &s.a[..k], &s.b[..k]);
            pi.garble_and_batch(d, tw, a, b, &mut s.o[..k], &mut s.t[..2 * k]);
            for (q, &[j, out, _, _]) in step.ands.iter().enumerate() {
                w[out as usize] = s.o[q];
                let at = 2 * (j as usize * cn + i);
                tab[at] = s.t[2 * q];
                tab[at + 1] = s.t[2 * q + 1];
            }
        }
        free_gates(w, &step.free);
    }
    // The thread-local scratch outlives the garbling: do not leave Δ in it.
    w[n + 1] = 0;
}

/// Evaluates instance `i` of a chunk of `cn` level by level (the mirror of [`garble_levels`]).
fn eval_levels(
    pi: &FixedKeyAes,
    c: &Circuit,
    base: L,
    s: &mut Scratch,
    tab: &[L],
    cn: usize,
    i: usize,
) {
    let w = &mut s.wires;
    let n = c.wires();
    (w[n], w[n + 1]) = (0, 0);
    for step in &c.levels().steps {
        let k = step.ands.len();
        if k > 0 {
            for (q, &[j, _, a, b]) in step.ands.iter().enumerate() {
                s.a[q] = w[a as usize];
                s.b[q] = w[b as usize];
                s.tweaks[q] = base | L::from(2 * j);
                let at = 2 * (j as usize * cn + i);
                s.t[2 * q] = tab[at];
                s.t[2 * q + 1] = tab[at + 1];
            }
            let (tw, a, b) = (&s.tweaks[..k], &s.a[..k], &s.b[..k]);
            pi.eval_and_batch(tw, a, b, &mut s.o[..k], &s.t[..2 * k]);
            for (q, &[_, out, _, _]) in step.ands.iter().enumerate() {
                w[out as usize] = s.o[q];
            }
        }
        free_gates(w, &step.free);
    }
}

/// One chunk of work: first instance (batch-relative), instance count, its tables, its outputs.
type Task<'a> = (usize, usize, &'a mut [L], &'a mut [Block]);

fn split_tasks<'a>(
    n: usize,
    tables: &'a mut [L],
    outs: &'a mut [Block],
    t_per: usize,
    o_per: usize,
) -> Vec<Task<'a>> {
    let mut tasks = Vec::with_capacity(n.div_ceil(CHUNK));
    let (mut tables, mut outs) = (tables, outs);
    let mut first = 0;
    while first < n {
        let c = CHUNK.min(n - first);
        let (t, t_rest) = tables.split_at_mut(c * t_per);
        let (o, o_rest) = outs.split_at_mut(c * o_per);
        tasks.push((first, c, t, o));
        tables = t_rest;
        outs = o_rest;
        first += c;
    }
    tasks
}

thread_local! {
    /// Each thread's scratch buffers, kept across garblings so that the hot path does not
    /// allocate (or zero-fill) them again: they grow to the largest circuit the thread has run.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Runs `f` on this thread's scratch (a fresh one if it is in use further up the stack).
fn with_scratch(f: impl FnOnce(&mut Scratch)) {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

#[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
fn run_tasks<'a>(tasks: Vec<Task<'a>>, f: impl Fn(&mut Scratch, Task<'a>) + Sync + Send) {
    use rayon::prelude::*;
    tasks
        .into_par_iter()
        .for_each(|t| with_scratch(|s| f(s, t)));
}

#[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
fn run_tasks<'a>(tasks: Vec<Task<'a>>, f: impl Fn(&mut Scratch, Task<'a>)) {
    with_scratch(|s| {
        for t in tasks {
            f(s, t);
        }
    })
}

fn check_len(
    what: &'static str,
    got: usize,
    expected: usize,
    unit: &'static str,
) -> Result<(), GarbleError> {
    if got != expected {
        return Err(GarbleError::Length {
            what,
            expected,
            got,
            unit,
        });
    }
    Ok(())
}

/// `n` fresh uniformly random labels. Natively: AES-128 in counter mode under a fresh key drawn
/// from the CSPRNG (a PRF on distinct counters; with AES-NI it is several times faster than
/// ChaCha12, which was 10% of garbling time). In browsers AES is software, so the ChaCha12
/// CSPRNG is used directly.
fn random_labels(rng: &mut Csprng, n: usize) -> Vec<Block> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let prf = FixedKeyAes::new(rng.block().0);
        let mut v: Vec<Block> = (0..n as u128).map(Block::from_u128).collect();
        prf.permute_many(&mut v);
        v
    }
    #[cfg(target_arch = "wasm32")]
    {
        rng.blocks(n)
    }
}

/// Copies the chunk's labels of one party's inputs, instance-major in `src` (`slots.len()` per
/// instance), to their slots (slot-major).
fn gather_inputs(labels: &mut [L], slots: &[u32], src: &[Block], first: usize, cn: usize) {
    let per = slots.len();
    if per == 0 {
        return;
    }
    let rows = &src[first * per..(first + cn) * per];
    for (w, &slot) in slots.iter().enumerate() {
        let dst = &mut labels[slot as usize * CHUNK..][..cn];
        for (l, row) in dst.iter_mut().zip(rows.chunks_exact(per)) {
            *l = row[w].to_u128();
        }
    }
}

/// Copies the chunk's output labels (slot-major) to the instance-major output buffer.
fn store_outputs(labels: &[L], output_slots: &[u32], cn: usize, out: &mut [Block]) {
    let o = output_slots.len();
    for (k, &slot) in output_slots.iter().enumerate() {
        let src = &labels[slot as usize * CHUNK..][..cn];
        for (dst, l) in out[k..].iter_mut().step_by(o).zip(src) {
            *dst = Block::from_u128(*l);
        }
    }
}

impl<'c> Garbler<'c> {
    /// A garbler for `circuit` whose hash tweaks come from `domain`.
    pub fn new(circuit: &'c Circuit, domain: TweakDomain) -> Self {
        Garbler {
            circuit,
            domain,
            pi: default_pi(),
        }
    }

    /// Hashes with `pi` instead of π under the fixed key: a per-session key
    /// (`FixedKeyAes::new(session_key)`, the evaluator must use the same) or a forced backend
    /// (`FixedKeyAes::with_backend`, for tests and benchmarks).
    pub fn with_pi(mut self, pi: FixedKeyAes) -> Self {
        self.pi = pi;
        self
    }

    /// Garbles `n` instances under `delta`.
    ///
    /// - `private_bits`: the garbler-private constants, `n · P` bits, instance-major.
    /// - `evaluator_zero`: the zero-labels of the evaluator's input wires (`n · E`, instance-major),
    ///   e.g. the sender's outputs of a correlated OT with correlation Δ; `None` draws them here.
    ///
    /// Garbler input zero-labels are drawn from `rng`. Use a fresh Δ for every garbling.
    ///
    /// Allocates the tables; [`Garbler::garble_into`] reuses a caller's buffer instead.
    pub fn garble(
        &self,
        delta: Delta,
        n: usize,
        private_bits: &[bool],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled, GarbleError> {
        let mut tables = GarbledTables {
            instances: 0,
            blocks: Vec::new(),
        };
        let (decoding, encoder) =
            self.garble_into(delta, n, private_bits, evaluator_zero, rng, &mut tables)?;
        Ok(Garbled {
            tables,
            decoding,
            encoder,
        })
    }

    /// [`Garbler::garble`] into a caller-owned table buffer: `tables` is overwritten with the
    /// `n` instances' tables, reusing its allocation (when garbling in chunks, pass the same buffer
    /// each time: no allocation and no page-faulting a fresh buffer per chunk). Returns the
    /// decoding bits and the encoder.
    pub fn garble_into(
        &self,
        delta: Delta,
        n: usize,
        private_bits: &[bool],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
        tables: &mut GarbledTables,
    ) -> Result<(DecodingBits, Encoder), GarbleError> {
        let (out_zero, encoder) =
            self.garble_labels_into(delta, n, private_bits, evaluator_zero, rng, tables)?;
        let decoding = DecodingBits::from_bits(out_zero.iter().map(|l| l.lsb()));
        Ok((decoding, encoder))
    }

    /// [`Garbler::garble_into`] returning the output zero-labels (instance-major) instead of their
    /// decoding bits, for an output decoding of another kind ([`crate::ShareOutput`]).
    pub(crate) fn garble_labels_into(
        &self,
        delta: Delta,
        n: usize,
        private_bits: &[bool],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
        tables: &mut GarbledTables,
    ) -> Result<(Vec<Block>, Encoder), GarbleError> {
        let c = self.circuit;
        let (g, e, p, o, ands) = (
            c.garbler_inputs(),
            c.evaluator_inputs(),
            c.private_inputs(),
            c.outputs().len(),
            c.and_count(),
        );
        self.domain.check(n)?;
        check_len("private bits", private_bits.len(), n * p, "bits")?;
        let evaluator_zero = match evaluator_zero {
            Some(z) => {
                check_len("evaluator zero-labels", z.len(), n * e, "blocks")?;
                z.to_vec()
            }
            None => random_labels(rng, n * e),
        };
        let garbler_zero = random_labels(rng, n * g);
        // Every entry is overwritten below: keep the old contents, only fix the length (a fresh
        // `Vec<u128>` grows by a lazily zeroed allocation, a reused one not at all).
        tables.instances = 0;
        tables.blocks.resize(1 + n * 2 * ands, 0);
        tables.blocks[0] = table_header(c.fingerprint(), n);
        let mut out_zero = vec![Block::ZERO; n * o];
        let tasks = split_tasks(n, &mut tables.blocks[1..], &mut out_zero, 2 * ands, o);
        let prog = c.program();
        let d = delta.as_block().to_u128();
        let pi = &self.pi;
        let session_id = self.domain.session_id;
        let first_instance = self.domain.first_instance;
        let (gz, ez) = (&garbler_zero, &evaluator_zero);
        let input = |w: usize, inst: usize| -> L {
            if w < g {
                gz[inst * g + w].to_u128()
            } else if w < g + e {
                ez[inst * e + (w - g)].to_u128()
            } else {
                sel(d, private_bits[inst * p + (w - g - e)] as L)
            }
        };
        run_tasks(tasks, |s, (first, cn, tab, out)| {
            let inst0 = first_instance.wrapping_add(first as u32);
            if cn < LEVEL_BELOW {
                s.for_levels(c);
                for i in 0..cn {
                    for (w, l) in s.wires[..c.inputs()].iter_mut().enumerate() {
                        *l = input(w, first + i);
                    }
                    let base = instance_tweak(session_id, inst0.wrapping_add(i as u32));
                    garble_levels(pi, c, d, base, s, tab, cn, i);
                    for (k, &w) in c.outputs().iter().enumerate() {
                        out[i * o + k] = Block::from_u128(s.wires[w as usize]);
                    }
                }
                return;
            }
            s.for_chunks(prog.slots);
            let labels = &mut s.labels;
            // Input zero-labels.
            let (garbler_slots, rest) = prog.input_slots.split_at(g);
            let (evaluator_slots, private_slots) = rest.split_at(e);
            gather_inputs(labels, garbler_slots, gz, first, cn);
            gather_inputs(labels, evaluator_slots, ez, first, cn);
            for (w, &slot) in private_slots.iter().enumerate() {
                let dst = &mut labels[slot as usize * CHUNK..][..cn];
                for (i, l) in dst.iter_mut().enumerate() {
                    *l = sel(d, private_bits[(first + i) * p + w] as L);
                }
            }
            let mut j = 0u32;
            for op in &prog.ops {
                match *op {
                    Op::Xor { a, b, out } => {
                        let (a, b, o) = operands(labels, a, b, out);
                        xor_labels(&mut o[..cn], &a[..cn], &b[..cn]);
                    }
                    Op::Inv { a, out } => {
                        let (a, _, o) = operands(labels, a, a, out);
                        for i in 0..cn {
                            o[i] = a[i] ^ d;
                        }
                    }
                    Op::Const { value, out } => {
                        labels[out as usize * CHUNK..][..cn].fill(sel(d, value as L));
                    }
                    Op::And { a, b, out } => {
                        let (a, b, o) = operands(labels, a, b, out);
                        let tab = &mut tab[2 * j as usize * cn..][..2 * cn];
                        let tw = &mut s.tweaks[..cn];
                        chunk_tweaks(tw, session_id, inst0, j);
                        pi.garble_and_batch(d, tw, &a[..cn], &b[..cn], &mut o[..cn], tab);
                        j += 1;
                    }
                }
            }
            store_outputs(labels, &prog.output_slots, cn, out);
        });
        tables.instances = n;
        Ok((
            out_zero,
            Encoder {
                delta,
                instances: n,
                garbler_inputs: g,
                evaluator_inputs: e,
                garbler_zero,
                evaluator_zero,
            },
        ))
    }
}

impl<'c> Evaluator<'c> {
    /// An evaluator for `circuit`; `domain` must equal the garbler's.
    pub fn new(circuit: &'c Circuit, domain: TweakDomain) -> Self {
        Evaluator {
            circuit,
            domain,
            pi: default_pi(),
        }
    }

    /// Hashes with `pi` instead of π under the fixed key; it must be the garbler's key (the
    /// backend may differ: every backend computes the same function).
    pub fn with_pi(mut self, pi: FixedKeyAes) -> Self {
        self.pi = pi;
        self
    }

    /// Evaluates every instance of `tables` on the active input labels; returns the active output
    /// labels (decode them with [`OutputLabels::decode`]).
    pub fn evaluate(
        &self,
        tables: &GarbledTables,
        garbler: &ActiveLabels,
        evaluator: &ActiveLabels,
    ) -> Result<OutputLabels, GarbleError> {
        let mut out = OutputLabels { blocks: Vec::new() };
        self.evaluate_into(tables, garbler, evaluator, &mut out)?;
        Ok(out)
    }

    /// [`Evaluator::evaluate`] into a caller-owned output buffer (its allocation is reused).
    pub fn evaluate_into(
        &self,
        tables: &GarbledTables,
        garbler: &ActiveLabels,
        evaluator: &ActiveLabels,
        out: &mut OutputLabels,
    ) -> Result<(), GarbleError> {
        let c = self.circuit;
        let n = tables.instances;
        let (g, e, o, ands) = (
            c.garbler_inputs(),
            c.evaluator_inputs(),
            c.outputs().len(),
            c.and_count(),
        );
        self.domain.check(n)?;
        tables.check_circuit(c)?;
        check_len(
            "garbled tables",
            tables.body().len(),
            n * 2 * ands,
            "blocks",
        )?;
        check_len(
            "garbler active labels",
            garbler.blocks.len(),
            n * g,
            "blocks",
        )?;
        check_len(
            "evaluator active labels",
            evaluator.blocks.len(),
            n * e,
            "blocks",
        )?;
        out.blocks.resize(n * o, Block::ZERO);
        let out_labels = &mut out.blocks;
        // The evaluator only reads tables; split the output buffer and index tables by instance.
        let mut none: Vec<L> = Vec::new();
        let tasks = split_tasks(n, &mut none, out_labels, 0, o);
        let prog = c.program();
        let pi = &self.pi;
        let session_id = self.domain.session_id;
        let first_instance = self.domain.first_instance;
        let (gl, el, tb) = (&garbler.blocks, &evaluator.blocks, tables.body());
        let input = |w: usize, inst: usize| -> L {
            if w < g {
                gl[inst * g + w].to_u128()
            } else if w < g + e {
                el[inst * e + (w - g)].to_u128()
            } else {
                0
            }
        };
        run_tasks(tasks, |s, (first, cn, _, out)| {
            let inst0 = first_instance.wrapping_add(first as u32);
            let tab = &tb[first * 2 * ands..(first + cn) * 2 * ands];
            if cn < LEVEL_BELOW {
                s.for_levels(c);
                for i in 0..cn {
                    for (w, l) in s.wires[..c.inputs()].iter_mut().enumerate() {
                        *l = input(w, first + i);
                    }
                    let base = instance_tweak(session_id, inst0.wrapping_add(i as u32));
                    eval_levels(pi, c, base, s, tab, cn, i);
                    for (k, &w) in c.outputs().iter().enumerate() {
                        out[i * o + k] = Block::from_u128(s.wires[w as usize]);
                    }
                }
                return;
            }
            s.for_chunks(prog.slots);
            let labels = &mut s.labels;
            let (garbler_slots, rest) = prog.input_slots.split_at(g);
            let (evaluator_slots, private_slots) = rest.split_at(e);
            gather_inputs(labels, garbler_slots, gl, first, cn);
            gather_inputs(labels, evaluator_slots, el, first, cn);
            for &slot in private_slots {
                labels[slot as usize * CHUNK..][..cn].fill(0);
            }
            let mut j = 0u32;
            for op in &prog.ops {
                match *op {
                    Op::Xor { a, b, out } => {
                        let (a, b, o) = operands(labels, a, b, out);
                        xor_labels(&mut o[..cn], &a[..cn], &b[..cn]);
                    }
                    Op::Inv { a, out } => {
                        let (a, _, o) = operands(labels, a, a, out);
                        o[..cn].copy_from_slice(&a[..cn]);
                    }
                    Op::Const { out, .. } => {
                        labels[out as usize * CHUNK..][..cn].fill(0);
                    }
                    Op::And { a, b, out } => {
                        let (a, b, o) = operands(labels, a, b, out);
                        let tab = &tab[2 * j as usize * cn..][..2 * cn];
                        let tw = &mut s.tweaks[..cn];
                        chunk_tweaks(tw, session_id, inst0, j);
                        pi.eval_and_batch(tw, &a[..cn], &b[..cn], &mut o[..cn], tab);
                        j += 1;
                    }
                }
            }
            store_outputs(labels, &prog.output_slots, cn, out);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_tweaks_are_the_documented_layout() {
        // session (64) ‖ instance (32) ‖ 2·gate + half (32), the instance wrapping mod 2^32.
        let layout = |s: u64, inst: u32, idx: u32| {
            (u128::from(s) << 64) | (u128::from(inst) << 32) | u128::from(idx)
        };
        for (s, inst0, gate) in [(9u64, 5u32, 4u32), (u64::MAX, u32::MAX - 1, 7)] {
            let mut t = [0; 5];
            chunk_tweaks(&mut t, s, inst0, gate);
            for (i, t) in t.iter().enumerate() {
                assert_eq!(*t, layout(s, inst0.wrapping_add(i as u32), 2 * gate));
                assert_eq!(
                    *t ^ 1,
                    layout(s, inst0.wrapping_add(i as u32), 2 * gate + 1)
                );
            }
        }
    }

    #[test]
    fn random_labels_are_fresh() {
        let mut rng = Csprng::from_seed([5; 32]);
        let a = random_labels(&mut rng, 1000);
        let b = random_labels(&mut rng, 1000);
        let mut all: Vec<u128> = a.iter().chain(&b).map(|x| x.to_u128()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2000);
        // Roughly half of the colour bits are set.
        let ones = a.iter().filter(|x| x.lsb()).count();
        assert!((400..600).contains(&ones), "{ones}");
    }

    #[test]
    fn operands_returns_the_right_slots() {
        for (a, b, out) in [(0u32, 3u32, 1u32), (3, 2, 0), (1, 1, 3)] {
            let mut labels: Vec<L> = (0..4 * CHUNK as u128).collect();
            let (x, y, o) = operands(&mut labels, a, b, out);
            assert_eq!(x[0], a as u128 * CHUNK as u128);
            assert_eq!(y[5], b as u128 * CHUNK as u128 + 5);
            o[0] = u128::MAX;
            assert_eq!(labels[out as usize * CHUNK], u128::MAX);
        }
    }
}
