//! The extension sender (the garbler): holds Δ, receives the matrix, checks it, outputs `q_j`.

use super::msgs::{CheckChallenge, CheckResponse, ExtendMatrix};
use super::output::CotSenderOutput;
use super::state::{Checking, Initialized, Ready, Receiving, State};
use super::{fill_words, padded_rows, word_bit, BASE_OTS, MAX_TRANSFERS};
use crate::chou_orlandi;
use crate::gf128::{self, Accumulator};
use crate::transpose::columns_to_rows;
use crate::OtError;
use cryptonas_crypto::{Block, Csprng};
use zeroize::Zeroizing;

/// The correlated-OT sender. See the [module docs](super) for the message flow.
#[derive(Debug)]
pub struct Sender<S: State = Initialized> {
    state: S,
}

impl Sender<Initialized> {
    /// A sender whose correlation is `delta` (for garbling: the free-XOR Δ, lsb already set to 1 by
    /// the caller — that is fine, see the module docs). Δ = 0 is refused.
    pub fn new(delta: Block) -> Result<Self, OtError> {
        if delta == Block::ZERO {
            return Err(OtError::ZeroDelta);
        }
        Ok(Sender {
            state: Initialized {
                delta: Zeroizing::new(delta),
            },
        })
    }

    /// A sender with a fresh uniformly random Δ (lsb forced to 1), for uses of random or chosen OT
    /// where Δ is not shared with a garbling.
    pub fn with_random_delta(rng: &mut Csprng) -> Self {
        Sender {
            state: Initialized {
                delta: Zeroizing::new(Block::from_u128(rng.block().to_u128() | 1)),
            },
        }
    }

    /// Runs the base-OT *receiver* with the bits of Δ as choices, answering the extension
    /// receiver's base-OT setup.
    pub fn receive_base_setup(
        self,
        msg: chou_orlandi::SenderSetup,
        rng: &mut Csprng,
    ) -> (chou_orlandi::ReceiverChoices, Sender<Ready>) {
        let delta = Zeroizing::new(*self.state.delta);
        let bits: Zeroizing<Vec<bool>> = Zeroizing::new(
            (0..BASE_OTS)
                .map(|i| delta.to_u128() >> i & 1 == 1)
                .collect(),
        );
        let (reply, keys) = chou_orlandi::Receiver::new()
            .receive_setup(msg)
            .choose_wide(&bits, rng);
        let keys = Zeroizing::new(keys);
        let prgs = keys.iter().map(|k| Csprng::from_seed(*k)).collect();
        (
            reply,
            Sender {
                state: Ready {
                    delta,
                    prgs,
                    next_index: 0,
                },
            },
        )
    }
}

impl Sender<Ready> {
    /// The global correlation.
    pub fn delta(&self) -> Block {
        *self.state.delta
    }

    /// Index of the next transfer (transfers are numbered across batches; the number is the hash
    /// tweak of random and chosen OT).
    pub fn next_index(&self) -> u64 {
        self.state.next_index
    }

    /// Receives a whole batch's matrix in one message and challenges the receiver (the parts
    /// API in one call: [`Sender::expect_extension`], [`Sender::receive_part`],
    /// [`Sender::challenge`]).
    pub fn receive_extend(
        self,
        msg: ExtendMatrix,
        rng: &mut Csprng,
    ) -> Result<(CheckChallenge, Sender<Checking>), OtError> {
        let mut receiving = self.expect_extension(msg.count)?;
        receiving.receive_part(msg)?;
        receiving.challenge(rng)
    }

    /// Starts a batch of `count` transfers whose matrix arrives in parts, in order.
    pub fn expect_extension(self, count: usize) -> Result<Sender<Receiving>, OtError> {
        if count > MAX_TRANSFERS {
            return Err(OtError::TooManyTransfers {
                what: "extend",
                got: count,
                max: MAX_TRANSFERS,
            });
        }
        let rows = padded_rows(count);
        Ok(Sender {
            state: Receiving {
                ready: self.state,
                rows: Zeroizing::new(Vec::with_capacity(rows)),
                count,
                col_words: rows / 128,
            },
        })
    }
}

impl Sender<Receiving> {
    /// Rows of the matrix still to come.
    pub fn rows_left(&self) -> usize {
        128 * self.state.col_words - self.state.rows.len()
    }

    /// Takes the next part: `q^i = G(k_i^{Δ_i}) ⊕ Δ_i·u^i` over its columns (in place: the
    /// matrix is the largest message of a session, so it is not copied), transposed into rows.
    /// A part of another batch size or out of order is refused.
    pub fn receive_part(&mut self, msg: ExtendMatrix) -> Result<(), OtError> {
        let st = &mut self.state;
        if msg.count != st.count {
            return Err(OtError::CountMismatch {
                what: "ExtendMatrix part",
                expected: st.count,
                got: msg.count,
            });
        }
        if msg.first_row() != st.rows.len() {
            return Err(OtError::PartOrder {
                expected: st.rows.len(),
                got: msg.first_row(),
            });
        }
        let words = msg.rows() / 128;
        let delta = st.ready.delta.to_u128();
        let mut columns = Zeroizing::new(msg.columns);
        let expand = |(i, (prg, q)): (usize, (&mut Csprng, &mut [u128]))| {
            // Δ_i·u^i without a branch on the secret bit.
            let mask = (delta >> i & 1).wrapping_neg();
            let mut pad = Zeroizing::new([0u128; 64]);
            for chunk in q.chunks_mut(pad.len()) {
                let pad = &mut pad[..chunk.len()];
                fill_words(prg, pad);
                for (q, p) in chunk.iter_mut().zip(pad.iter()) {
                    *q = (*q & mask) ^ p;
                }
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            st.ready
                .prgs
                .par_iter_mut()
                .zip(columns.par_chunks_mut(words))
                .enumerate()
                .for_each(expand);
        }
        #[cfg(target_arch = "wasm32")]
        st.ready
            .prgs
            .iter_mut()
            .zip(columns.chunks_mut(words))
            .enumerate()
            .for_each(expand);
        let q_rows = Zeroizing::new(columns_to_rows(&columns, 128 * words));
        st.rows.extend_from_slice(&q_rows);
        Ok(())
    }

    /// After the last part: draws the check's seed (only now, so the receiver cannot choose its
    /// matrix knowing it) and challenges the receiver.
    pub fn challenge(
        self,
        rng: &mut Csprng,
    ) -> Result<(CheckChallenge, Sender<Checking>), OtError> {
        let Receiving {
            mut ready,
            rows,
            count,
            col_words,
        } = self.state;
        if rows.len() != 128 * col_words {
            return Err(OtError::Incomplete {
                got: rows.len(),
                rows: 128 * col_words,
            });
        }
        let seed = rng.seed();
        ready.next_index += count as u64;
        Ok((
            CheckChallenge { seed },
            Sender {
                state: Checking {
                    ready,
                    rows,
                    count,
                    seed,
                },
            },
        ))
    }
}

impl Sender<Checking> {
    /// Verifies `Σ q_j·χ_j = t ⊕ x·Δ`; on success returns the batch's zero-labels `q_j` and the
    /// sender, ready for the next batch. On failure the sender is gone: abort the session.
    pub fn receive_check(
        self,
        msg: CheckResponse,
    ) -> Result<(CotSenderOutput, Sender<Ready>), OtError> {
        let Checking {
            ready,
            mut rows,
            count,
            seed,
        } = self.state;
        let (q, _) = challenge_sums(0, &rows, seed, None);
        let expected = msg.t ^ gf128::mul(msg.x, *ready.delta);
        // Constant time: q and the expected value are functions of Δ.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&q, &expected)) {
            return Err(OtError::ConsistencyCheckFailed { count });
        }
        rows.truncate(count);
        let first_index = ready.next_index - count as u64;
        Ok((
            CotSenderOutput::new(*ready.delta, std::mem::take(&mut *rows), first_index),
            Sender { state: ready },
        ))
    }
}

/// The check's sums over χ, the ChaCha12 stream of `seed` (χ_j its j-th 16-byte block), for the
/// batch's rows `first_row ..` (`rows`): `Σ rows_j · χ_j` in GF(2^128) and, given the receiver's
/// packed choice bits (of the whole batch), `x = Σ_{r_j = 1} χ_j`. Both are sums, so the sums of
/// a batch's pieces add up to the whole batch's.
/// χ is generated a chunk at a time (each chunk seeks to its place in the stream, in parallel
/// natively), so no row-sized buffer exists besides `rows`: in a browser worker that peak would
/// stay allocated for good.
pub(super) fn challenge_sums(
    first_row: usize,
    rows: &[Block],
    seed: [u8; 32],
    bits: Option<&[u128]>,
) -> (Block, Block) {
    const CHUNK: usize = 1 << 12;
    let partial = |(c, rows): (usize, &[Block])| {
        let mut prg = Csprng::from_seed(seed);
        prg.seek_block((first_row + c * CHUNK) as u64);
        let mut chis = [Block::ZERO; 256];
        let mut acc = Accumulator::default();
        let mut x = Block::ZERO;
        for (k, rows) in rows.chunks(chis.len()).enumerate() {
            let chis = &mut chis[..rows.len()];
            prg.fill_blocks(chis);
            let first = first_row + c * CHUNK + k * 256;
            for (i, (row, chi)) in rows.iter().zip(chis.iter()).enumerate() {
                acc.add_product(*row, *chi);
                if let Some(bits) = bits {
                    x ^= chi.select(word_bit(bits, first + i));
                }
            }
        }
        (acc, x)
    };
    let merge = |(a, x): (Accumulator, Block), (b, y): (Accumulator, Block)| (a.merge(b), x ^ y);
    #[cfg(not(target_arch = "wasm32"))]
    let (acc, x) = {
        use rayon::prelude::*;
        rows.par_chunks(CHUNK)
            .enumerate()
            .map(partial)
            .reduce(|| (Accumulator::default(), Block::ZERO), merge)
    };
    #[cfg(target_arch = "wasm32")]
    let (acc, x) = rows
        .chunks(CHUNK)
        .enumerate()
        .map(partial)
        .fold((Accumulator::default(), Block::ZERO), merge);
    (acc.finish(), x)
}

/// `Σ rows_j · chis_j` in GF(2^128), χ given: the reference for [`challenge_sums`].
#[cfg(test)]
pub(super) fn weighted_sum(rows: &[Block], chis: &[Block]) -> Block {
    rows.iter()
        .zip(chis)
        .fold(Accumulator::default(), |mut acc, (row, chi)| {
            acc.add_product(*row, *chi);
            acc
        })
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kos::pack_words;

    /// The chunked, seeking sums equal the sums over the whole χ stream drawn at once (the
    /// definition both parties used before), at sizes around the chunk boundaries, whole or in
    /// two pieces.
    #[test]
    fn challenge_sums_match_the_whole_stream() {
        let mut rng = Csprng::from_seed([7; 32]);
        for n in [1, 255, 256, 4095, 4096, 4097, 3 * 4096 + 130] {
            let rows = rng.blocks(n);
            let choices: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
            let packed = pack_words(&choices, n.div_ceil(128));
            let seed = rng.seed();
            let chis = Csprng::from_seed(seed).blocks(n);
            let x = chis
                .iter()
                .zip(&choices)
                .fold(Block::ZERO, |x, (chi, &c)| x ^ chi.select(c));
            assert_eq!(
                challenge_sums(0, &rows, seed, Some(&packed)),
                (weighted_sum(&rows, &chis), x),
                "n = {n}"
            );
            assert_eq!(
                challenge_sums(0, &rows, seed, None).0,
                weighted_sum(&rows, &chis)
            );
            // Pieces (as the receiver sums regenerated blocks) add up to the whole.
            for split in [1, 128, n / 2, n.saturating_sub(1)] {
                let split = split.min(n);
                let (a, b) = rows.split_at(split);
                let (ta, xa) = challenge_sums(0, a, seed, Some(&packed));
                let (tb, xb) = challenge_sums(split, b, seed, Some(&packed));
                assert_eq!(
                    (ta ^ tb, xa ^ xb),
                    (weighted_sum(&rows, &chis), x),
                    "n = {n}, split {split}"
                );
            }
        }
    }
}
