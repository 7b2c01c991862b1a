//! The extension receiver (the evaluator): sends the matrix (whole or in parts), answers the
//! check, outputs `t_j` (kept, or regenerated when needed).

use super::msgs::{CheckChallenge, CheckResponse, ExtendMatrix};
use super::output::{CotReceiverOutput, CotReceiverSeeds};
use super::sender::challenge_sums;
use super::state::{BaseSetup, Extended, Extending, ReceiverInitialized, ReceiverReady, State};
use super::{fill_words, pack_words, padded_rows, BASE_OTS, MAX_TRANSFERS};
use crate::chou_orlandi;
use crate::transpose::tile_to_rows;
use crate::OtError;
use cryptonas_crypto::{Block, Csprng};
use zeroize::Zeroizing;

/// Words (of 128 rows) regenerated per block at the check and for labels: 128 base OTs × 16,384
/// rows of t (256 KiB of columns, as much again of rows), enough to keep every core busy.
pub(super) const BLOCK_WORDS: usize = 128;

/// The correlated-OT receiver. See the [module docs](super) for the message flow.
#[derive(Debug)]
pub struct Receiver<S: State = ReceiverInitialized> {
    state: S,
}

impl Default for Receiver<ReceiverInitialized> {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver<ReceiverInitialized> {
    /// A fresh receiver.
    pub fn new() -> Self {
        Receiver {
            state: ReceiverInitialized,
        }
    }

    /// Starts the base OTs, in which this side is the base-OT *sender*.
    pub fn setup(self, rng: &mut Csprng) -> (chou_orlandi::SenderSetup, Receiver<BaseSetup>) {
        let (msg, base) = chou_orlandi::Sender::new().setup(rng);
        (
            msg,
            Receiver {
                state: BaseSetup { base },
            },
        )
    }
}

impl Receiver<BaseSetup> {
    /// Finishes the base OTs: exactly 128 points are expected.
    pub fn receive_base_choices(
        self,
        msg: chou_orlandi::ReceiverChoices,
    ) -> Result<Receiver<ReceiverReady>, OtError> {
        if msg.len() != BASE_OTS {
            return Err(OtError::CountMismatch {
                what: "base OTs",
                expected: BASE_OTS,
                got: msg.len(),
            });
        }
        let keys = Zeroizing::new(self.state.base.send_wide(msg));
        let prgs = keys
            .iter()
            .map(|[k0, k1]| [Csprng::from_seed(*k0), Csprng::from_seed(*k1)])
            .collect();
        Ok(Receiver {
            state: ReceiverReady {
                prgs,
                next_index: 0,
            },
        })
    }
}

impl Receiver<ReceiverReady> {
    /// Index of the next transfer.
    pub fn next_index(&self) -> u64 {
        self.state.next_index
    }

    /// Extends `count` transfers with uniformly random choice bits (offline phase; switch to the real
    /// choices later with [`CotReceiverOutput::derandomize`]).
    pub fn extend_random(
        self,
        count: usize,
        rng: &mut Csprng,
    ) -> Result<(ExtendMatrix, Receiver<Extended>), OtError> {
        if count > MAX_TRANSFERS {
            return Err(OtError::TooManyTransfers {
                what: "extend",
                got: count,
                max: MAX_TRANSFERS,
            });
        }
        let choices: Vec<bool> = (0..count).map(|_| rng.bool()).collect();
        self.extend(&choices, rng)
    }

    /// Extends one batch with the given choice bits (padding rows get random bits). The matrix is
    /// built in memory; a transport should prefer [`Receiver::extend_into`], which writes it
    /// straight into the outgoing frame.
    pub fn extend(
        self,
        choices: &[bool],
        rng: &mut Csprng,
    ) -> Result<(ExtendMatrix, Receiver<Extended>), OtError> {
        let mut wire = Vec::new();
        let receiver = self.extend_into(Zeroizing::new(choices.to_vec()), rng, &mut wire)?;
        Ok((ExtendMatrix::from_bytes(&wire)?, receiver))
    }

    /// Extends one batch with the given choice bits and appends the whole [`ExtendMatrix`]'s wire
    /// form to `out` (exactly the bytes of [`ExtendMatrix::to_bytes`]); `out` may already hold a
    /// frame header. The choices are packed to a bit each and then dropped.
    ///
    /// Memory: besides `out` (16 B per row), nothing that grows with the batch but the packed
    /// choices (a bit per row);
    /// the labels are regenerated at the challenge. A transport that cannot afford `out` either
    /// sends the matrix in parts ([`Receiver::extend_in_parts`]).
    pub fn extend_into(
        self,
        choices: Zeroizing<Vec<bool>>,
        rng: &mut Csprng,
        out: &mut Vec<u8>,
    ) -> Result<Receiver<Extended>, OtError> {
        match self
            .extend_in_parts(choices, rng)?
            .next_part(usize::MAX, out)
        {
            Extension::Done(receiver) => Ok(receiver),
            Extension::More(_) => unreachable!("a part of every row is the whole matrix"),
        }
    }

    /// Starts one batch with the given choice bits (padding rows get random bits) whose matrix
    /// leaves in parts ([`Receiver::next_part`]): neither side then holds the whole matrix.
    pub fn extend_in_parts(
        self,
        choices: Zeroizing<Vec<bool>>,
        rng: &mut Csprng,
    ) -> Result<Receiver<Extending>, OtError> {
        if choices.len() > MAX_TRANSFERS {
            return Err(OtError::TooManyTransfers {
                what: "extend",
                got: choices.len(),
                max: MAX_TRANSFERS,
            });
        }
        let count = choices.len();
        let col_words = padded_rows(count) / 128;
        let mut packed = Zeroizing::new(pack_words(&choices, col_words));
        drop(choices);
        // Random choice bits for the padding rows: they hide x = Σ r_j χ_j.
        for (k, (w, pad)) in packed.iter_mut().zip(rng.blocks(col_words)).enumerate() {
            // Bits of word k at global positions >= count.
            let mask = match (k * 128).cmp(&(count & !127)) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => !((1u128 << (count % 128)) - 1),
                std::cmp::Ordering::Greater => u128::MAX,
            };
            *w |= pad.to_u128() & mask;
        }
        // G0's place in its stream: `t = G0` is regenerated from here when it is needed, never
        // kept (all 128 streams draw the same number of words).
        let g0_start = self.state.prgs[0][0].word_position();
        Ok(Receiver {
            state: Extending {
                ready: self.state,
                g0_start,
                col_words,
                next_word: 0,
                packed_choices: packed,
                count,
            },
        })
    }
}

/// A batch's matrix after one more part: parts left, or the whole matrix sent.
#[derive(Debug)]
pub enum Extension {
    /// More rows to send.
    More(Receiver<Extending>),
    /// Every row sent: wait for the challenge.
    Done(Receiver<Extended>),
}

impl Receiver<Extending> {
    /// Rows of the matrix not sent yet.
    pub fn rows_left(&self) -> usize {
        128 * (self.state.col_words - self.state.next_word)
    }

    /// Appends the wire form of the matrix's next part, at most `max_rows` rows (rounded down to
    /// a multiple of 128, at least 128), to `out`.
    ///
    /// Each base OT's two PRGs give their next words (the streams run on from part to part, so
    /// the parts together are the whole matrix's bits), and `u = G0 ⊕ G1 ⊕ r` goes straight to its
    /// place in the column-major wire form.
    pub fn next_part(self, max_rows: usize, out: &mut Vec<u8>) -> Extension {
        let mut st = self.state;
        let first = st.next_word;
        let words = (max_rows / 128).clamp(1, st.col_words - first);
        let count = st.count;
        out.reserve_exact(ExtendMatrix::part_byte_len(128 * words));
        out.extend_from_slice(&(count as u64).to_le_bytes());
        out.extend_from_slice(&(first as u64).to_le_bytes());
        let at = out.len();
        out.resize(at + BASE_OTS * words * 16, 0);
        let r = &st.packed_choices[first..first + words];
        let expand = |([g0, g1], wire): (&mut [Csprng; 2], &mut [u8])| {
            let mut t = Zeroizing::new([0u128; 64]);
            let mut pad = Zeroizing::new([0u128; 64]);
            for (r, wire) in r.chunks(t.len()).zip(wire.chunks_mut(16 * t.len())) {
                let (t, pad) = (&mut t[..r.len()], &mut pad[..r.len()]);
                fill_words(g0, t);
                fill_words(g1, pad);
                for (((t, p), r), dst) in t
                    .iter()
                    .zip(pad.iter())
                    .zip(r)
                    .zip(wire.chunks_exact_mut(16))
                {
                    dst.copy_from_slice(&(t ^ p ^ r).to_le_bytes());
                }
            }
        };
        let columns = &mut out[at..];
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            st.ready
                .prgs
                .par_iter_mut()
                .zip(columns.par_chunks_mut(16 * words))
                .for_each(expand);
        }
        #[cfg(target_arch = "wasm32")]
        st.ready
            .prgs
            .iter_mut()
            .zip(columns.chunks_mut(16 * words))
            .for_each(expand);
        st.next_word += words;
        if st.next_word < st.col_words {
            return Extension::More(Receiver { state: st });
        }
        st.ready.next_index += count as u64;
        Extension::Done(Receiver {
            state: Extended {
                ready: st.ready,
                g0_start: st.g0_start,
                col_words: st.col_words,
                packed_choices: st.packed_choices,
                count,
            },
        })
    }
}

/// Writes the batch's rows `128·first_word ..` (`out.len()`, a multiple of 128, of them) from the
/// `G0` streams, which are moved there; [`BLOCK_WORDS`] words of column scratch at a time.
pub(super) fn regenerate_rows(
    g0s: &mut [&mut Csprng],
    g0_start: u128,
    first_word: usize,
    out: &mut [Block],
) {
    debug_assert!(out.len().is_multiple_of(128));
    let stride = BLOCK_WORDS.min(out.len() / 128);
    if stride == 0 {
        return;
    }
    for g0 in g0s.iter_mut() {
        // Four 32-bit stream words per 128-bit word.
        g0.seek_word(g0_start + 4 * first_word as u128);
    }
    let mut columns = Zeroizing::new(vec![0u128; BASE_OTS * stride]);
    for rows in out.chunks_mut(128 * stride) {
        let words = rows.len() / 128;
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            g0s.par_iter_mut()
                .zip(columns.par_chunks_mut(stride))
                .for_each(|(g0, t)| fill_words(g0, &mut t[..words]));
            rows.par_chunks_mut(128)
                .enumerate()
                .for_each(|(k, rows)| tile_to_rows(&columns, stride, k, rows));
        }
        #[cfg(target_arch = "wasm32")]
        {
            g0s.iter_mut()
                .zip(columns.chunks_mut(stride))
                .for_each(|(g0, t)| fill_words(g0, &mut t[..words]));
            rows.chunks_mut(128)
                .enumerate()
                .for_each(|(k, rows)| tile_to_rows(&columns, stride, k, rows));
        }
    }
}

impl Receiver<Extended> {
    /// Answers the check and keeps every `t_j` ([`CotReceiverOutput`]); the receiver can extend
    /// again.
    ///
    /// The check's sums are taken a block of regenerated rows at a time; then the batch's rows
    /// are regenerated once more for the output.
    pub fn receive_challenge(
        self,
        msg: CheckChallenge,
    ) -> (CheckResponse, CotReceiverOutput, Receiver<ReceiverReady>) {
        let (response, mut seeds) = self.receive_challenge_regenerating(msg);
        let count = seeds.len();
        let rows = std::mem::take(&mut *seeds.labels(0..count).expect("the batch is in range"));
        let (choices, ready) = seeds.into_parts();
        let first_index = ready.next_index - count as u64;
        (
            response,
            CotReceiverOutput::new(rows, choices, first_index),
            Receiver { state: ready },
        )
    }

    /// Answers the check and keeps no `t_j`: the [`CotReceiverSeeds`] regenerate any range of
    /// them from the `G0` streams when it is needed, so nothing of the batch's size but its
    /// choice bits stays in memory.
    pub fn receive_challenge_regenerating(
        self,
        msg: CheckChallenge,
    ) -> (CheckResponse, CotReceiverSeeds) {
        let Extended {
            mut ready,
            g0_start,
            col_words,
            packed_choices,
            count,
        } = self.state;
        let (mut t, mut x) = (Block::ZERO, Block::ZERO);
        {
            let mut g0s: Vec<&mut Csprng> = ready.prgs.iter_mut().map(|[g0, _]| g0).collect();
            let mut rows = Zeroizing::new(vec![Block::ZERO; 128 * BLOCK_WORDS.min(col_words)]);
            for first in (0..col_words).step_by(BLOCK_WORDS) {
                let rows = &mut rows[..128 * BLOCK_WORDS.min(col_words - first)];
                regenerate_rows(&mut g0s, g0_start, first, rows);
                let (tp, xp) = challenge_sums(128 * first, rows, msg.seed, Some(&packed_choices));
                t ^= tp;
                x ^= xp;
            }
        }
        (
            CheckResponse { x, t },
            CotReceiverSeeds::new(ready, g0_start, col_words, count, packed_choices),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kos::{word_bit, Sender};
    use crate::transpose::columns_to_rows;

    /// The whole-matrix extension as it was before blocking (column by column over all rows, then
    /// one transposition): the blocked one must produce the same bytes, rows and choice words.
    fn extend_reference(
        ready: &mut ReceiverReady,
        choices: &[bool],
        rng: &mut Csprng,
    ) -> (ExtendMatrix, Vec<Block>, Vec<u128>) {
        let count = choices.len();
        let rows = padded_rows(count);
        let col_words = rows / 128;
        let mut packed = pack_words(choices, col_words);
        for (k, (w, pad)) in packed.iter_mut().zip(rng.blocks(col_words)).enumerate() {
            let mask = match (k * 128).cmp(&(count & !127)) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => !((1u128 << (count % 128)) - 1),
                std::cmp::Ordering::Greater => u128::MAX,
            };
            *w |= pad.to_u128() & mask;
        }
        let mut t_cols = vec![0u128; BASE_OTS * col_words];
        let mut u_cols = vec![0u128; BASE_OTS * col_words];
        let expand = |([g0, g1], (t, u)): (&mut [Csprng; 2], (&mut [u128], &mut [u128]))| {
            fill_words(g0, t);
            fill_words(g1, u);
            for ((u, t), r) in u.iter_mut().zip(t.iter()).zip(&packed) {
                *u ^= t ^ r;
            }
        };
        // In parallel natively, as it was (the timing comparison below runs both).
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            ready
                .prgs
                .par_iter_mut()
                .zip(
                    t_cols
                        .par_chunks_mut(col_words)
                        .zip(u_cols.par_chunks_mut(col_words)),
                )
                .for_each(expand);
        }
        #[cfg(target_arch = "wasm32")]
        ready
            .prgs
            .iter_mut()
            .zip(
                t_cols
                    .chunks_mut(col_words)
                    .zip(u_cols.chunks_mut(col_words)),
            )
            .for_each(expand);
        let t_rows = columns_to_rows(&t_cols, rows);
        ready.next_index += count as u64;
        (
            ExtendMatrix {
                count,
                first_word: 0,
                columns: u_cols,
            },
            t_rows,
            packed,
        )
    }

    /// A receiver after base OTs; the same seed gives the same PRG streams.
    fn ready_receiver(seed: u8) -> Receiver<ReceiverReady> {
        let mut rng = Csprng::from_seed([seed; 32]);
        let (setup, receiver) = Receiver::new().setup(&mut rng);
        let (choices, _sender) = Sender::new(Block::ONE)
            .unwrap()
            .receive_base_setup(setup, &mut rng);
        receiver.receive_base_choices(choices).unwrap()
    }

    /// The matrix sent in parts = the whole-matrix reference, bit for bit, over two batches in a
    /// row (the PRG streams continue across batches), for counts around tile, padding and part
    /// boundaries and a few random ones, with several part sizes; the rows regenerated for the
    /// check and for any range of labels are the reference's; `extend` and `extend_into` agree,
    /// and `extend_into` appends behind what `out` already holds.
    #[test]
    fn parts_equal_the_whole_matrix() {
        let mut counts = vec![0usize, 1, 127, 128, 129, 255, 256, 383, 384, 1000];
        for part in [128usize, 256, 1024, 128 * BLOCK_WORDS] {
            counts.extend([part - 1, part, part + 1]);
            counts.extend(
                [part.saturating_sub(384), part.saturating_sub(256)]
                    .into_iter()
                    .filter(|&c| c > 0),
            );
            counts.extend([(2 * part).saturating_sub(256), 3 * part + 17]);
        }
        let mut pick = Csprng::from_seed([61; 32]);
        counts.extend((0..4).map(|_| pick.u64() as usize % 40_000));
        counts.sort_unstable();
        counts.dedup();
        for part in [128usize, 256, 1024, 128 * BLOCK_WORDS] {
            for &count in &counts {
                let choices: Vec<bool> = (0..count).map(|_| pick.bool()).collect();
                let mut reference = ready_receiver(62).state;
                let mut parted = ready_receiver(62);
                for batch in 0..2 {
                    let what = format!("count {count}, part {part}, batch {batch}");
                    let mut rng_ref = Csprng::from_seed([63 + batch; 32]);
                    let mut rng = Csprng::from_seed([63 + batch; 32]);
                    let (matrix, rows, packed) =
                        extend_reference(&mut reference, &choices, &mut rng_ref);
                    let col_words = matrix.columns.len() / BASE_OTS;
                    let mut columns = vec![Vec::new(); BASE_OTS];
                    let mut next = parted
                        .extend_in_parts(Zeroizing::new(choices.clone()), &mut rng)
                        .unwrap();
                    let extended = loop {
                        let mut out = vec![0xa5];
                        let left = next.rows_left();
                        let step = next.next_part(part, &mut out);
                        assert_eq!(out[0], 0xa5, "{what}: header kept");
                        let m = ExtendMatrix::from_bytes(&out[1..]).unwrap();
                        assert_eq!(m.rows(), part.min(left), "{what}: part size");
                        for (i, c) in m.columns.chunks(m.rows() / 128).enumerate() {
                            columns[i].extend_from_slice(c);
                        }
                        match step {
                            Extension::More(r) => next = r,
                            Extension::Done(r) => break r,
                        }
                    };
                    assert_eq!(columns.concat(), matrix.columns, "{what}: matrix");
                    assert_eq!(*extended.state.packed_choices, packed, "{what}: choices");
                    assert_eq!(rng.u64(), rng_ref.u64(), "{what}: caller's rng use");
                    let Extended {
                        mut ready,
                        g0_start,
                        count: kept,
                        packed_choices,
                        ..
                    } = extended.state;
                    assert_eq!(kept, count, "{what}: count");
                    assert_eq!(ready.next_index, reference.next_index);
                    // Every row (padding too) regenerates as the reference's.
                    let mut g0s: Vec<&mut Csprng> = ready.prgs.iter_mut().map(|[g, _]| g).collect();
                    let mut regenerated = vec![Block::ZERO; 128 * col_words];
                    regenerate_rows(&mut g0s, g0_start, 0, &mut regenerated);
                    assert_eq!(regenerated, rows, "{what}: rows");
                    // Label ranges, as the seeds hand them out.
                    let mut seeds =
                        CotReceiverSeeds::new(ready, g0_start, col_words, kept, packed_choices);
                    for (a, b) in [(0, count), (count / 3, count / 2), (count, count)] {
                        assert_eq!(*seeds.labels(a..b).unwrap(), rows[a..b], "{what}: {a}..{b}");
                    }
                    assert!(seeds.labels(0..count + 1).is_err());
                    // The choices unpack as given; the streams go back to the batch's end: the
                    // next batch continues them.
                    let (unpacked, ready) = seeds.into_parts();
                    assert_eq!(unpacked, choices, "{what}: choice bits");
                    parted = Receiver { state: ready };
                }
            }
        }
        // `extend` (the in-memory matrix) is the same extension.
        let choices: Vec<bool> = (0..128 * BLOCK_WORDS + 5).map(|_| pick.bool()).collect();
        let (matrix, extended) = ready_receiver(64)
            .extend(&choices, &mut Csprng::from_seed([65; 32]))
            .unwrap();
        let mut out = Vec::new();
        let extended_into = ready_receiver(64)
            .extend_into(
                Zeroizing::new(choices),
                &mut Csprng::from_seed([65; 32]),
                &mut out,
            )
            .unwrap();
        assert_eq!(out, matrix.to_bytes());
        assert_eq!(extended.state.g0_start, extended_into.state.g0_start);
        assert_eq!(extended.state.col_words, extended_into.state.col_words);
    }

    /// Native speed of the blocked extension against the whole-matrix one, alternating in one
    /// process (`cargo test --release -p cryptonas-ot --lib -- --ignored --nocapture
    /// extension_speed`).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    #[ignore = "timing printout, not a check"]
    fn extension_speed_blocked_vs_whole_matrix() {
        use std::time::{Duration, Instant};
        for n in [1usize << 20, 2_064_384] {
            let choices: Vec<bool> = vec![true; n];
            let (mut core, mut old, mut new) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..7 {
                let mut ready = ready_receiver(70).state;
                let t = Instant::now();
                let (m, rows, _) =
                    extend_reference(&mut ready, &choices, &mut Csprng::from_seed([71; 32]));
                core.push(t.elapsed());
                let frame = m.to_bytes();
                old.push(t.elapsed());
                drop((m, rows, frame));
                let receiver = ready_receiver(70);
                let t = Instant::now();
                let mut frame = Vec::new();
                let extended = receiver
                    .extend_into(
                        Zeroizing::new(choices.clone()),
                        &mut Csprng::from_seed([71; 32]),
                        &mut frame,
                    )
                    .unwrap();
                new.push(t.elapsed());
                drop((extended, frame));
            }
            let median = |v: &mut Vec<Duration>| {
                v.sort();
                v[v.len() / 2]
            };
            eprintln!(
                "{n} choices, median of 7: whole matrix {:?} (+ to_bytes {:?}), blocked in place {:?}",
                median(&mut core),
                median(&mut old),
                median(&mut new)
            );
        }
    }

    #[test]
    fn too_many_transfers_leave_the_frame_alone() {
        let mut out = vec![7u8];
        let err = ready_receiver(66)
            .extend_into(
                Zeroizing::new(vec![false; MAX_TRANSFERS + 1]),
                &mut Csprng::from_seed([67; 32]),
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(err, OtError::TooManyTransfers { .. }), "{err}");
        assert_eq!(out, [7]);
    }

    /// Padding rows carry random choice bits (they mask `x`); real rows carry exactly the choices.
    #[test]
    fn padding_rows_get_random_choice_bits() {
        let mut rng = Csprng::from_seed([60; 32]);
        for count in [0usize, 5, 128, 200] {
            let (setup, receiver) = Receiver::new().setup(&mut rng);
            let (choices, _sender) = Sender::new(Block::ONE)
                .unwrap()
                .receive_base_setup(setup, &mut rng);
            let receiver = receiver.receive_base_choices(choices).unwrap();
            let (_, extended) = receiver.extend(&vec![false; count], &mut rng).unwrap();
            let packed = &extended.state.packed_choices;
            let rows = padded_rows(count);
            assert_eq!(packed.len() * 128, rows);
            assert!(
                (0..count).all(|j| !word_bit(packed, j)),
                "real rows keep their choices"
            );
            let ones = (count..rows).filter(|&j| word_bit(packed, j)).count();
            let pad = rows - count;
            assert!(
                ones > pad / 4 && ones < 3 * pad / 4,
                "{ones} of {pad} padding bits set"
            );
        }
    }
}
