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
//! the hash of gate `g` is two wide `permute_many` passes over 4·CHUNK (garbler) or 2·CHUNK
//! (evaluator) blocks, so AES-NI pipelines fully. Chunks run on rayon threads natively (feature
//! `parallel`). The tables follow the same layout (see [`GarbledTables`]): every chunk writes and
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
    ActiveLabels, DecodingBits, Delta, Encoder, GarbledTables, OutputLabels, TweakDomain,
};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};

/// Instances per chunk: wide enough for AES pipelining, small enough that a chunk's labels stay in
/// L1/L2 cache. Part of the table wire format (see [`GarbledTables`]).
pub const CHUNK: usize = 64;
const _: () = assert!(CHUNK.is_power_of_two(), "slice alignment checks rely on it");

/// What garbling a batch produces.
#[derive(Debug)]
pub struct Garbled {
    /// The tables, sent to the evaluator (offline).
    pub tables: GarbledTables,
    /// Output decoding bits, sent to the evaluator.
    pub decoding: DecodingBits,
    /// The input-encoding function, kept by the garbler.
    pub encoder: Encoder,
}

/// Garbles instances of one circuit.
#[derive(Debug)]
pub struct Garbler<'c> {
    circuit: &'c Circuit,
    domain: TweakDomain,
}

/// Evaluates garbled instances of one circuit: a pure function of tables and active labels.
#[derive(Debug)]
pub struct Evaluator<'c> {
    circuit: &'c Circuit,
    domain: TweakDomain,
}

/// Labels in the hot loops are `u128` (16-byte aligned, two-register XOR); blocks only at the API.
type L = u128;

#[inline(always)]
fn sel(x: L, bit: L) -> L {
    x & bit.wrapping_neg()
}

#[inline(always)]
fn tweak(base: u128, instance: u32, index: u32) -> L {
    base | ((instance as u128) << 32) | index as u128
}

#[inline(always)]
fn permute(aes: &FixedKeyAes, xs: &mut [L]) {
    aes.permute_many(bytemuck::cast_slice_mut(xs));
}

/// `xs ← TCCR(tweak, xs)` = `π(π(x) ⊕ t) ⊕ π(x)` for `regions.len()` regions of `cn` blocks; block
/// `i` of region `r` gets `tweak(base, inst0 + i, regions[r])`. Two wide `permute_many` passes and a
/// caller-owned scratch buffer (the same function as `FixedKeyAes::tccr`; tested against it).
#[inline]
fn tccr_batch(
    aes: &FixedKeyAes,
    xs: &mut [L],
    tmp: &mut [L],
    cn: usize,
    base: u128,
    inst0: u32,
    regions: &[u32],
) {
    permute(aes, xs);
    for (r, &index) in regions.iter().enumerate() {
        let (src, dst) = (&xs[r * cn..][..cn], &mut tmp[r * cn..][..cn]);
        for i in 0..cn {
            dst[i] = src[i] ^ tweak(base, inst0.wrapping_add(i as u32), index);
        }
    }
    permute(aes, tmp);
    for (x, t) in xs.iter_mut().zip(tmp.iter()) {
        *x ^= *t;
    }
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

/// The hash context of one AND gate across a chunk.
struct Hash<'a> {
    aes: &'a FixedKeyAes,
    base: u128,
    inst0: u32,
    gate: u32,
}

/// Garbles AND gate `hash.gate` for every instance of a chunk (`o.len()` of them): writes the output
/// zero-labels `o` and the tables `tab` (`T_G, T_E` per instance).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn garble_and(
    hash: &Hash<'_>,
    d: L,
    a: &[L],
    b: &[L],
    o: &mut [L],
    tab: &mut [L],
    buf: &mut [L],
    tmp: &mut [L],
) {
    let cn = o.len();
    let (a, b, tab) = (&a[..cn], &b[..cn], &mut tab[..2 * cn]);
    let buf = &mut buf[..4 * cn];
    {
        let (xa, xb) = buf.split_at_mut(2 * cn);
        let (xa0, xa1) = xa.split_at_mut(cn);
        let (xb0, xb1) = xb.split_at_mut(cn);
        for i in 0..cn {
            xa0[i] = a[i];
            xa1[i] = a[i] ^ d;
            xb0[i] = b[i];
            xb1[i] = b[i] ^ d;
        }
    }
    let (g0, g1) = (2 * hash.gate, 2 * hash.gate + 1);
    tccr_batch(
        hash.aes,
        buf,
        &mut tmp[..4 * cn],
        cn,
        hash.base,
        hash.inst0,
        &[g0, g0, g1, g1],
    );
    let (ha, hb) = buf.split_at(2 * cn);
    let (ha0, ha1) = ha.split_at(cn);
    let (hb0, hb1) = hb.split_at(cn);
    let hashes = ha0.iter().zip(ha1).zip(hb0.iter().zip(hb1));
    let labels = a.iter().zip(b);
    for (((t, o), ((&h_a0, &h_a1), (&h_b0, &h_b1))), (&a0, &b0)) in tab
        .chunks_exact_mut(2)
        .zip(o.iter_mut())
        .zip(hashes)
        .zip(labels)
    {
        let (pa, pb) = (a0 & 1, b0 & 1);
        let tg = h_a0 ^ h_a1 ^ sel(d, pb);
        let wg = h_a0 ^ sel(tg, pa);
        let te = h_b0 ^ h_b1 ^ a0;
        let we = h_b0 ^ sel(te ^ a0, pb);
        *o = wg ^ we;
        t[0] = tg;
        t[1] = te;
    }
}

/// Evaluates AND gate `hash.gate` for every instance of a chunk.
#[inline(always)]
fn eval_and(
    hash: &Hash<'_>,
    a: &[L],
    b: &[L],
    o: &mut [L],
    tab: &[L],
    buf: &mut [L],
    tmp: &mut [L],
) {
    let cn = o.len();
    let (a, b, tab) = (&a[..cn], &b[..cn], &tab[..2 * cn]);
    let buf = &mut buf[..2 * cn];
    buf[..cn].copy_from_slice(a);
    buf[cn..].copy_from_slice(b);
    let (g0, g1) = (2 * hash.gate, 2 * hash.gate + 1);
    tccr_batch(
        hash.aes,
        buf,
        &mut tmp[..2 * cn],
        cn,
        hash.base,
        hash.inst0,
        &[g0, g1],
    );
    let (ha, hb) = buf.split_at(cn);
    let labels = a.iter().zip(b);
    for (((t, o), (&h_a, &h_b)), (&la, &lb)) in tab
        .chunks_exact(2)
        .zip(o.iter_mut())
        .zip(ha.iter().zip(hb))
        .zip(labels)
    {
        let wg = h_a ^ sel(t[0], la & 1);
        let we = h_b ^ sel(t[1] ^ la, lb & 1);
        *o = wg ^ we;
    }
}

struct Scratch {
    labels: Vec<L>,
    buf: Vec<L>,
    tmp: Vec<L>,
}

impl Scratch {
    fn new(slots: usize) -> Self {
        Scratch {
            labels: vec![0; slots.max(1) * CHUNK],
            buf: vec![0; 4 * CHUNK],
            tmp: vec![0; 4 * CHUNK],
        }
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

#[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
fn run_tasks<'a>(
    tasks: Vec<Task<'a>>,
    slots: usize,
    f: impl Fn(&mut Scratch, Task<'a>) + Sync + Send,
) {
    use rayon::prelude::*;
    tasks
        .into_par_iter()
        .for_each_init(|| Scratch::new(slots), |s, t| f(s, t));
}

#[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
fn run_tasks<'a>(tasks: Vec<Task<'a>>, slots: usize, f: impl Fn(&mut Scratch, Task<'a>)) {
    let mut s = Scratch::new(slots);
    for t in tasks {
        f(&mut s, t);
    }
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

/// Copies the chunk's output labels (slot-major) to the instance-major output buffer.
fn store_outputs(labels: &[L], output_slots: &[u32], cn: usize, out: &mut [Block]) {
    let o = output_slots.len();
    for (k, &slot) in output_slots.iter().enumerate() {
        let src = &labels[slot as usize * CHUNK..][..cn];
        for i in 0..cn {
            out[i * o + k] = Block::from_u128(src[i]);
        }
    }
}

impl<'c> Garbler<'c> {
    /// A garbler for `circuit` whose hash tweaks come from `domain`.
    pub fn new(circuit: &'c Circuit, domain: TweakDomain) -> Self {
        Garbler { circuit, domain }
    }

    /// Garbles `n` instances under `delta`.
    ///
    /// - `private_bits`: the garbler-private constants, `n · P` bits, instance-major.
    /// - `evaluator_zero`: the zero-labels of the evaluator's input wires (`n · E`, instance-major),
    ///   e.g. the sender's outputs of a correlated OT with correlation Δ; `None` draws them here.
    ///
    /// Garbler input zero-labels are drawn from `rng`. Use a fresh Δ for every garbling.
    pub fn garble(
        &self,
        delta: Delta,
        n: usize,
        private_bits: &[bool],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled, GarbleError> {
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
        // Integers, not blocks: `vec![0u128; _]` is a lazily zeroed allocation (no fill pass).
        let mut tables = vec![0u128; n * 2 * ands];
        let mut out_zero = vec![Block::ZERO; n * o];
        let tasks = split_tasks(n, &mut tables, &mut out_zero, 2 * ands, o);
        let prog = c.program();
        let d = delta.as_block().to_u128();
        let aes = FixedKeyAes::default();
        let base = (self.domain.session_id as u128) << 64;
        let first_instance = self.domain.first_instance;
        let (gz, ez) = (&garbler_zero, &evaluator_zero);
        run_tasks(tasks, prog.slots, |s, (first, cn, tab, out)| {
            let labels = &mut s.labels;
            // Input zero-labels.
            for (w, &slot) in prog.input_slots.iter().enumerate() {
                let dst = &mut labels[slot as usize * CHUNK..][..cn];
                for (i, l) in dst.iter_mut().enumerate() {
                    let inst = first + i;
                    *l = if w < g {
                        gz[inst * g + w].to_u128()
                    } else if w < g + e {
                        ez[inst * e + (w - g)].to_u128()
                    } else {
                        sel(d, private_bits[inst * p + (w - g - e)] as L)
                    };
                }
            }
            let mut j = 0u32;
            for op in &prog.ops {
                match *op {
                    Op::Xor { a, b, out } => {
                        let (a, b, o) = operands(labels, a, b, out);
                        for i in 0..cn {
                            o[i] = a[i] ^ b[i];
                        }
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
                        let hash = Hash {
                            aes: &aes,
                            base,
                            inst0: first_instance + first as u32,
                            gate: j,
                        };
                        garble_and(
                            &hash,
                            d,
                            &a[..cn],
                            &b[..cn],
                            &mut o[..cn],
                            tab,
                            &mut s.buf,
                            &mut s.tmp,
                        );
                        j += 1;
                    }
                }
            }
            store_outputs(labels, &prog.output_slots, cn, out);
        });
        let decoding = DecodingBits::from_bits(out_zero.iter().map(|l| l.lsb()));
        Ok(Garbled {
            tables: GarbledTables {
                instances: n,
                blocks: tables,
            },
            decoding,
            encoder: Encoder {
                delta,
                instances: n,
                garbler_inputs: g,
                evaluator_inputs: e,
                garbler_zero,
                evaluator_zero,
            },
        })
    }
}

impl<'c> Evaluator<'c> {
    /// An evaluator for `circuit`; `domain` must equal the garbler's.
    pub fn new(circuit: &'c Circuit, domain: TweakDomain) -> Self {
        Evaluator { circuit, domain }
    }

    /// Evaluates every instance of `tables` on the active input labels; returns the active output
    /// labels (decode them with [`OutputLabels::decode`]).
    pub fn evaluate(
        &self,
        tables: &GarbledTables,
        garbler: &ActiveLabels,
        evaluator: &ActiveLabels,
    ) -> Result<OutputLabels, GarbleError> {
        let c = self.circuit;
        let n = tables.instances;
        let (g, e, o, ands) = (
            c.garbler_inputs(),
            c.evaluator_inputs(),
            c.outputs().len(),
            c.and_count(),
        );
        self.domain.check(n)?;
        check_len(
            "garbled tables",
            tables.blocks.len(),
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
        let mut out_labels = vec![Block::ZERO; n * o];
        // The evaluator only reads tables; split the output buffer and index tables by instance.
        let mut none: Vec<L> = Vec::new();
        let tasks = split_tasks(n, &mut none, &mut out_labels, 0, o);
        let prog = c.program();
        let aes = FixedKeyAes::default();
        let base = (self.domain.session_id as u128) << 64;
        let first_instance = self.domain.first_instance;
        let (gl, el, tb) = (&garbler.blocks, &evaluator.blocks, &tables.blocks);
        run_tasks(tasks, prog.slots, |s, (first, cn, _, out)| {
            let labels = &mut s.labels;
            for (w, &slot) in prog.input_slots.iter().enumerate() {
                let dst = &mut labels[slot as usize * CHUNK..][..cn];
                for (i, l) in dst.iter_mut().enumerate() {
                    let inst = first + i;
                    *l = if w < g {
                        gl[inst * g + w].to_u128()
                    } else if w < g + e {
                        el[inst * e + (w - g)].to_u128()
                    } else {
                        0
                    };
                }
            }
            let tab = &tb[first * 2 * ands..(first + cn) * 2 * ands];
            let mut j = 0u32;
            for op in &prog.ops {
                match *op {
                    Op::Xor { a, b, out } => {
                        let (a, b, o) = operands(labels, a, b, out);
                        for i in 0..cn {
                            o[i] = a[i] ^ b[i];
                        }
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
                        let hash = Hash {
                            aes: &aes,
                            base,
                            inst0: first_instance + first as u32,
                            gate: j,
                        };
                        eval_and(
                            &hash,
                            &a[..cn],
                            &b[..cn],
                            &mut o[..cn],
                            tab,
                            &mut s.buf,
                            &mut s.tmp,
                        );
                        j += 1;
                    }
                }
            }
            store_outputs(labels, &prog.output_slots, cn, out);
        });
        Ok(OutputLabels { blocks: out_labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tccr_batch_matches_crypto_tccr() {
        let aes = FixedKeyAes::default();
        let mut rng = Csprng::from_seed([3; 32]);
        let xs0: Vec<L> = rng.blocks(3 * 13).iter().map(|b| b.to_u128()).collect();
        let mut xs = xs0.clone();
        let mut tmp = vec![0; 3 * 13];
        tccr_batch(&aes, &mut xs, &mut tmp, 13, 9 << 64, 5, &[4, 4, 7]);
        for (q, x) in xs0.iter().enumerate() {
            let index = [4, 4, 7][q / 13];
            let t = tweak(9 << 64, 5 + (q % 13) as u32, index);
            assert_eq!(
                t,
                (9 << 64) | ((5 + (q % 13) as u128) << 32) | index as u128
            );
            let expect = aes.tccr(Block::from_u128(t), Block::from_u128(*x));
            assert_eq!(Block::from_u128(xs[q]), expect);
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
