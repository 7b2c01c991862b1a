//! The extension sender (the garbler): holds Δ, receives the matrix, checks it, outputs `q_j`.

use super::msgs::{CheckChallenge, CheckResponse, ExtendMatrix};
use super::output::CotSenderOutput;
use super::state::{Checking, Initialized, Ready, State};
use super::{fill_words, padded_rows, BASE_OTS};
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
        let chis = Csprng::from_seed(seed).blocks(rows.len());
        let q = weighted_sum(&rows, &chis);
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

/// `Σ rows_j · chis_j` in GF(2^128) (parallel natively; reduction once at the end).
pub(super) fn weighted_sum(rows: &[Block], chis: &[Block]) -> Block {
    const CHUNK: usize = 1 << 12;
    let partial = |(r, c): (&[Block], &[Block])| {
        let mut acc = Accumulator::default();
        for (row, chi) in r.iter().zip(c) {
            acc.add_product(*row, *chi);
        }
        acc
    };
    #[cfg(not(target_arch = "wasm32"))]
    let acc = {
        use rayon::prelude::*;
        rows.par_chunks(CHUNK)
            .zip(chis.par_chunks(CHUNK))
            .map(partial)
            .reduce(Accumulator::default, Accumulator::merge)
    };
    #[cfg(target_arch = "wasm32")]
    let acc = rows
        .chunks(CHUNK)
        .zip(chis.chunks(CHUNK))
        .map(partial)
        .fold(Accumulator::default(), Accumulator::merge);
    acc.finish()
}
