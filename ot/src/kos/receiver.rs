//! The extension receiver (the evaluator): sends the matrix, answers the check, outputs `t_j`.

use super::msgs::{CheckChallenge, CheckResponse, ExtendMatrix};
use super::output::CotReceiverOutput;
use super::sender::weighted_sum;
use super::state::{BaseSetup, Extended, ReceiverInitialized, ReceiverReady, State};
use super::{fill_words, pack_words, padded_rows, word_bit, BASE_OTS, MAX_TRANSFERS};
use crate::chou_orlandi;
use crate::transpose::columns_to_rows;
use crate::OtError;
use cryptonas_crypto::{Block, Csprng};
use zeroize::Zeroizing;

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

    /// Extends one batch with the given choice bits (padding rows get random bits).
    pub fn extend(
        self,
        choices: &[bool],
        rng: &mut Csprng,
    ) -> Result<(ExtendMatrix, Receiver<Extended>), OtError> {
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
        let mut packed = pack_words(choices, col_words);
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
        let mut t_cols = vec![0u128; BASE_OTS * col_words];
        let mut u_cols = vec![0u128; BASE_OTS * col_words];
        let expand = |([g0, g1], (t, u)): (&mut [Csprng; 2], (&mut [u128], &mut [u128]))| {
            fill_words(g0, t);
            fill_words(g1, u);
            for ((u, t), r) in u.iter_mut().zip(t.iter()).zip(&packed) {
                *u ^= t ^ r;
            }
        };
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
        Ok((
            ExtendMatrix {
                count,
                columns: u_cols,
            },
            Receiver {
                state: Extended {
                    ready,
                    rows: Zeroizing::new(t_rows),
                    packed_choices: Zeroizing::new(packed),
                    choices: Zeroizing::new(choices.to_vec()),
                },
            },
        ))
    }
}

impl Receiver<Extended> {
    /// Answers the check with `x = Σ r_j χ_j`, `t = Σ t_j·χ_j`; returns the batch's labels
    /// `t_j = q_j ⊕ b_j·Δ` and the receiver, ready for the next batch.
    pub fn receive_challenge(
        self,
        msg: CheckChallenge,
    ) -> (CheckResponse, CotReceiverOutput, Receiver<ReceiverReady>) {
        let Extended {
            ready,
            mut rows,
            packed_choices,
            mut choices,
        } = self.state;
        let chis = Csprng::from_seed(msg.seed).blocks(rows.len());
        let x = chis.iter().enumerate().fold(Block::ZERO, |x, (j, chi)| {
            x ^ chi.select(word_bit(&packed_choices, j))
        });
        let t = weighted_sum(&rows, &chis);
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
    use crate::kos::Sender;

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
