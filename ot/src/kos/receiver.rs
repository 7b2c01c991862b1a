//! The extension receiver (the evaluator): sends the matrix, answers the check, outputs `t_j`.

use super::msgs::{CheckChallenge, CheckResponse, ExtendMatrix};
use super::output::CotReceiverOutput;
use super::sender::challenge_sums;
use super::state::{BaseSetup, Extended, ReceiverInitialized, ReceiverReady, State};
use super::{fill_words, pack_words, padded_rows, BASE_OTS, MAX_TRANSFERS};
use crate::chou_orlandi;
use crate::transpose::tile_to_rows;
use crate::OtError;
use cryptonas_crypto::{Block, Csprng};
use zeroize::Zeroizing;

/// Rows extended per block: 128 base OTs × 16,384 rows of t (256 KiB) is the largest buffer
/// besides the output, and a block is large enough to keep every core busy.
const BLOCK_ROWS: usize = 16_384;

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

    /// Extends one batch with the given choice bits and appends the [`ExtendMatrix`]'s wire form
    /// to `out` (exactly the bytes of [`ExtendMatrix::to_bytes`]); `out` may already hold a frame
    /// header. The choices are kept for the output (not copied).
    ///
    /// Memory: besides `out` (16 B per row), only per-block buffers; the labels are regenerated
    /// at the challenge, after `out` has gone. That peak is permanent in a browser worker.
    pub fn extend_into(
        self,
        choices: Zeroizing<Vec<bool>>,
        rng: &mut Csprng,
        out: &mut Vec<u8>,
    ) -> Result<Receiver<Extended>, OtError> {
        self.extend_blocks(choices, rng, out, BLOCK_ROWS)
    }

    /// [`Receiver::extend_into`] with `block_rows` rows per block (a multiple of 128; tests vary it).
    ///
    /// Per block, each base OT's two PRGs give their next words (the streams continue from block
    /// to block, so they are the same bits as one column-at-a-time expansion), `u = G0 ⊕ G1 ⊕ r`
    /// goes to its place in the column-major wire form, and `t = G0` is transposed into rows.
    fn extend_blocks(
        self,
        choices: Zeroizing<Vec<bool>>,
        rng: &mut Csprng,
        out: &mut Vec<u8>,
        block_rows: usize,
    ) -> Result<Receiver<Extended>, OtError> {
        debug_assert!(block_rows >= 128 && block_rows.is_multiple_of(128));
        if choices.len() > MAX_TRANSFERS {
            return Err(OtError::TooManyTransfers {
                what: "extend",
                got: choices.len(),
                max: MAX_TRANSFERS,
            });
        }
        let mut ready = self.state;
        let count = choices.len();
        let rows = padded_rows(count);
        let col_words = rows / 128;
        let mut packed = Zeroizing::new(pack_words(&choices, col_words));
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

        // The wire form: the count, then 128 columns of `col_words` little-endian words, filled in
        // place block by block.
        let body_len = 8 + BASE_OTS * col_words * 16;
        out.reserve_exact(body_len);
        out.extend_from_slice(&(count as u64).to_le_bytes());
        let columns_at = out.len();
        out.resize(columns_at + body_len - 8, 0);
        let wire_columns = &mut out[columns_at..];

        // G0's place in its stream: `t = G0` is regenerated from here when the challenge comes,
        // not kept now (all 128 streams have drawn the same number of words).
        let g0_start = ready.prgs[0][0].word_position();
        let block_words = (block_rows / 128).min(col_words);
        // t of one block, column-major: BASE_OTS columns of `block_words` words.
        let mut t_block = Zeroizing::new(vec![0u128; BASE_OTS * block_words]);
        for first in (0..col_words).step_by(block_words) {
            let words = block_words.min(col_words - first);
            let r = &packed[first..first + words];
            let expand = |([g0, g1], (t, wire)): (&mut [Csprng; 2], (&mut [u128], &mut [u8]))| {
                let t = &mut t[..words];
                fill_words(g0, t);
                let wire = &mut wire[16 * first..16 * (first + words)];
                let mut pad = Zeroizing::new([0u128; 64]);
                for ((t, r), wire) in t
                    .chunks(pad.len())
                    .zip(r.chunks(pad.len()))
                    .zip(wire.chunks_mut(16 * pad.len()))
                {
                    let pad = &mut pad[..t.len()];
                    fill_words(g1, pad);
                    for (((p, t), r), dst) in
                        pad.iter().zip(t).zip(r).zip(wire.chunks_exact_mut(16))
                    {
                        dst.copy_from_slice(&(p ^ t ^ r).to_le_bytes());
                    }
                }
            };
            #[cfg(not(target_arch = "wasm32"))]
            {
                use rayon::prelude::*;
                ready
                    .prgs
                    .par_iter_mut()
                    .zip(
                        t_block
                            .par_chunks_mut(block_words)
                            .zip(wire_columns.par_chunks_mut(16 * col_words)),
                    )
                    .for_each(expand);
            }
            #[cfg(target_arch = "wasm32")]
            {
                ready
                    .prgs
                    .iter_mut()
                    .zip(
                        t_block
                            .chunks_mut(block_words)
                            .zip(wire_columns.chunks_mut(16 * col_words)),
                    )
                    .for_each(expand);
            }
        }
        ready.next_index += count as u64;
        Ok(Receiver {
            state: Extended {
                ready,
                g0_start,
                rows,
                block_rows,
                packed_choices: packed,
                choices,
            },
        })
    }
}

/// The rows `t_j` of a batch of `rows` rows whose `G0` streams started at word `g0_start`:
/// the same `G0` words again, block by block, transposed into rows. Each stream ends where the
/// extension left it.
fn regenerate_rows(
    prgs: &mut [[Csprng; 2]],
    g0_start: u128,
    rows: usize,
    block_rows: usize,
) -> Zeroizing<Vec<Block>> {
    let col_words = rows / 128;
    let block_words = (block_rows / 128).min(col_words);
    for [g0, _] in prgs.iter_mut() {
        g0.seek_word(g0_start);
    }
    let mut t_rows = Zeroizing::new(vec![Block::ZERO; rows]);
    let mut t_block = Zeroizing::new(vec![0u128; BASE_OTS * block_words]);
    for first in (0..col_words).step_by(block_words) {
        let words = block_words.min(col_words - first);
        let t_rows = &mut t_rows[128 * first..128 * (first + words)];
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            prgs.par_iter_mut()
                .zip(t_block.par_chunks_mut(block_words))
                .for_each(|([g0, _], t)| fill_words(g0, &mut t[..words]));
            t_rows
                .par_chunks_mut(128)
                .enumerate()
                .for_each(|(k, rows)| tile_to_rows(&t_block, block_words, k, rows));
        }
        #[cfg(target_arch = "wasm32")]
        {
            prgs.iter_mut()
                .zip(t_block.chunks_mut(block_words))
                .for_each(|([g0, _], t)| fill_words(g0, &mut t[..words]));
            t_rows
                .chunks_mut(128)
                .enumerate()
                .for_each(|(k, rows)| tile_to_rows(&t_block, block_words, k, rows));
        }
    }
    t_rows
}

impl Receiver<Extended> {
    /// Answers the check with `x = Σ r_j χ_j`, `t = Σ t_j·χ_j`; returns the batch's labels
    /// `t_j = q_j ⊕ b_j·Δ` (regenerated here from the `G0` streams) and the receiver, ready for
    /// the next batch.
    pub fn receive_challenge(
        self,
        msg: CheckChallenge,
    ) -> (CheckResponse, CotReceiverOutput, Receiver<ReceiverReady>) {
        let Extended {
            mut ready,
            g0_start,
            rows,
            block_rows,
            packed_choices,
            mut choices,
        } = self.state;
        let mut rows = regenerate_rows(&mut ready.prgs, g0_start, rows, block_rows);
        let (t, x) = challenge_sums(&rows, msg.seed, Some(&packed_choices));
        let count = choices.len();
        rows.truncate(count);
        let first_index = ready.next_index - count as u64;
        (
            CheckResponse { x, t },
            CotReceiverOutput::new(
                std::mem::take(&mut *rows),
                std::mem::take(&mut *choices),
                first_index,
            ),
            Receiver { state: ready },
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

    /// Blocked extension = whole-matrix extension, bit for bit, over two batches in a row (the PRG
    /// streams continue across batches), for counts around tile, padding and block boundaries and
    /// a few random ones, with several block sizes; `extend` and `extend_into` agree too, and
    /// `extend_into` appends behind what `out` already holds.
    #[test]
    fn blocked_extension_equals_the_whole_matrix_one() {
        let mut counts = vec![0usize, 1, 127, 128, 129, 255, 256, 383, 384, 1000];
        for block in [128usize, 256, 1024, BLOCK_ROWS] {
            // Transfer counts around the block size, and row counts around it (rows = count +
            // 256 rounded up to 128).
            counts.extend([block - 1, block, block + 1]);
            counts.extend(
                [
                    block.saturating_sub(384),
                    block.saturating_sub(256),
                    block.saturating_sub(255),
                ]
                .into_iter()
                .filter(|&c| c > 0),
            );
            counts.extend([(2 * block).saturating_sub(256), 3 * block + 17]);
        }
        let mut pick = Csprng::from_seed([61; 32]);
        counts.extend((0..4).map(|_| pick.u64() as usize % 40_000));
        counts.sort_unstable();
        counts.dedup();
        for block in [128usize, 256, 1024, BLOCK_ROWS] {
            for &count in &counts {
                let choices: Vec<bool> = (0..count).map(|_| pick.bool()).collect();
                let mut reference = ready_receiver(62).state;
                let mut blocked = ready_receiver(62);
                for batch in 0..2 {
                    let mut rng_ref = Csprng::from_seed([63 + batch; 32]);
                    let mut rng = Csprng::from_seed([63 + batch; 32]);
                    let (matrix, rows, packed) =
                        extend_reference(&mut reference, &choices, &mut rng_ref);
                    let mut out = vec![0xa5, 0x5a];
                    let mut extended = blocked
                        .extend_blocks(Zeroizing::new(choices.clone()), &mut rng, &mut out, block)
                        .unwrap();
                    let what = format!("count {count}, block {block}, batch {batch}");
                    assert_eq!(out[..2], [0xa5, 0x5a], "{what}: header kept");
                    assert_eq!(out[2..], matrix.to_bytes(), "{what}: wire bytes");
                    assert_eq!(out.len(), 2 + matrix.byte_len(), "{what}: length");
                    // The rows regenerated at the challenge are the reference's, and the G0
                    // streams end where the extension left them (the next batch checks it).
                    let st = &mut extended.state;
                    let regenerated =
                        regenerate_rows(&mut st.ready.prgs, st.g0_start, st.rows, st.block_rows);
                    assert_eq!(*regenerated, rows, "{what}: rows");
                    assert_eq!(*extended.state.packed_choices, packed, "{what}: choices");
                    assert_eq!(*extended.state.choices, choices, "{what}: choice bits");
                    assert_eq!(extended.state.ready.next_index, reference.next_index);
                    assert_eq!(rng.u64(), rng_ref.u64(), "{what}: caller's rng use");
                    blocked = Receiver {
                        state: extended.state.ready,
                    };
                }
            }
        }
        // `extend` (the in-memory matrix) is the same extension.
        let choices: Vec<bool> = (0..BLOCK_ROWS + 5).map(|_| pick.bool()).collect();
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
        assert_eq!(extended.state.rows, extended_into.state.rows);
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
