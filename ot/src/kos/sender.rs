//! The extension sender (the garbler): holds Δ, receives the matrix, checks it, outputs `q_j`.

use super::msgs::{CheckChallenge, CheckResponse, ExtendMatrix};
use super::output::CotSenderOutput;
use super::state::{Checking, Initialized, Ready, State};
use super::{fill_words, padded_rows, word_bit, BASE_OTS};
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

    /// Computes `q^i = G(k_i^{Δ_i}) ⊕ Δ_i·u^i` (in place, over the received columns: the matrix
    /// is the largest message of a session, so it is not copied), transposes, and challenges the
    /// receiver.
    pub fn receive_extend(
        self,
        msg: ExtendMatrix,
        rng: &mut Csprng,
    ) -> (CheckChallenge, Sender<Checking>) {
        let mut ready = self.state;
        let rows = padded_rows(msg.count);
        let col_words = rows / 128;
        let delta = ready.delta.to_u128();
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
            ready
                .prgs
                .par_iter_mut()
                .zip(columns.par_chunks_mut(col_words))
                .enumerate()
                .for_each(expand);
        }
        #[cfg(target_arch = "wasm32")]
        ready
            .prgs
            .iter_mut()
            .zip(columns.chunks_mut(col_words))
            .enumerate()
            .for_each(expand);
        let q_rows = columns_to_rows(&columns, rows);
        let seed = rng.seed();
        let count = msg.count;
        ready.next_index += count as u64;
        (
            CheckChallenge { seed },
            Sender {
                state: Checking {
                    ready,
                    rows: Zeroizing::new(q_rows),
                    count,
                    seed,
                },
            },
        )
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
        let (q, _) = challenge_sums(&rows, seed, None);
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

/// The check's sums over χ, the ChaCha12 stream of `seed` (χ_j its j-th 16-byte block):
/// `Σ rows_j · χ_j` in GF(2^128) and, given the receiver's packed choice bits, `x = Σ_{r_j = 1} χ_j`.
/// χ is generated a chunk at a time (each chunk seeks to its place in the stream, in parallel
/// natively), so no row-sized buffer exists besides `rows`: in a browser worker that peak would
/// stay allocated for good.
pub(super) fn challenge_sums(
    rows: &[Block],
    seed: [u8; 32],
    bits: Option<&[u128]>,
) -> (Block, Block) {
    const CHUNK: usize = 1 << 12;
    let partial = |(c, rows): (usize, &[Block])| {
        let mut prg = Csprng::from_seed(seed);
        prg.seek_block((c * CHUNK) as u64);
        let mut chis = [Block::ZERO; 256];
        let mut acc = Accumulator::default();
        let mut x = Block::ZERO;
        for (k, rows) in rows.chunks(chis.len()).enumerate() {
            let chis = &mut chis[..rows.len()];
            prg.fill_blocks(chis);
            let first = c * CHUNK + k * 256;
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
    /// definition both parties used before), at sizes around the chunk boundaries.
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
                challenge_sums(&rows, seed, Some(&packed)),
                (weighted_sum(&rows, &chis), x),
                "n = {n}"
            );
            assert_eq!(
                challenge_sums(&rows, seed, None).0,
                weighted_sum(&rows, &chis)
            );
        }
    }
}
