//! What a batch of correlated OTs leaves each side with, and the OTs built on top of it.

use super::msgs::{ReceiverDerandomize, SenderMessages};
use super::receiver::regenerate_rows;
use super::state::ReceiverReady;
use super::{tweak, word_bit};
use crate::OtError;
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use zeroize::{Zeroize, Zeroizing};

/// `TCCR(tweak_{first+j}, x_j)` for every j, in wide AES batches.
fn hash_all(first_index: u64, xs: &[Block]) -> Vec<Block> {
    let aes = FixedKeyAes::default();
    let tweaks: Vec<Block> = (0..xs.len() as u64)
        .map(|j| tweak(first_index + j))
        .collect();
    let mut out = xs.to_vec();
    aes.tccr_many(&tweaks, &mut out);
    out
}

/// The sender's side of a batch: Δ and one zero-label `q_j` per transfer (`q_j ⊕ Δ` is the
/// one-label). `Debug` hides the secrets.
#[derive(Clone)]
pub struct CotSenderOutput {
    delta: Block,
    zero_labels: Vec<Block>,
    first_index: u64,
}

impl CotSenderOutput {
    pub(super) fn new(delta: Block, zero_labels: Vec<Block>, first_index: u64) -> Self {
        CotSenderOutput {
            delta,
            zero_labels,
            first_index,
        }
    }

    /// The global correlation Δ.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// `q_j` for each transfer of the batch.
    pub fn zero_labels(&self) -> &[Block] {
        &self.zero_labels
    }

    /// Takes the zero-labels (e.g. as garbled-circuit input labels).
    pub fn into_zero_labels(mut self) -> Vec<Block> {
        std::mem::take(&mut self.zero_labels)
    }

    /// Global index of the batch's first transfer.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Number of transfers.
    pub fn len(&self) -> usize {
        self.zero_labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.zero_labels.is_empty()
    }

    /// Applies the receiver's derandomisation: `q_j ← q_j ⊕ d_j·Δ`, so that the relation
    /// `t_j = q_j ⊕ b_j·Δ` now holds for the receiver's new choices `b`.
    pub fn derandomize(&mut self, msg: &ReceiverDerandomize) -> Result<(), OtError> {
        self.check_batch("ReceiverDerandomize", msg.first_index, msg.flips.len())?;
        for (q, &d) in self.zero_labels.iter_mut().zip(&msg.flips) {
            *q ^= self.delta.select(d);
        }
        Ok(())
    }

    /// Random OT: the pair `(TCCR(i, q_j), TCCR(i, q_j ⊕ Δ))` per transfer, no longer correlated.
    pub fn into_random_ot(self) -> Vec<[Block; 2]> {
        let ones: Vec<Block> = self.zero_labels.iter().map(|q| *q ^ self.delta).collect();
        let h0 = hash_all(self.first_index, &self.zero_labels);
        let h1 = hash_all(self.first_index, &ones);
        h0.into_iter().zip(h1).map(|(a, b)| [a, b]).collect()
    }

    /// Chosen-message 1-of-2 OT: encrypts `messages[j] = [m_j^0, m_j^1]` under the random-OT pads.
    /// Consumes the batch: pads must never be used twice.
    pub fn send_chosen(self, messages: &[[Block; 2]]) -> Result<SenderMessages, OtError> {
        if messages.len() != self.len() {
            return Err(OtError::CountMismatch {
                what: "chosen-OT messages",
                expected: self.len(),
                got: messages.len(),
            });
        }
        let first_index = self.first_index;
        let ciphertexts = self
            .into_random_ot()
            .into_iter()
            .zip(messages)
            .map(|([p0, p1], [m0, m1])| [*m0 ^ p0, *m1 ^ p1])
            .collect();
        Ok(SenderMessages {
            first_index,
            ciphertexts,
        })
    }

    fn check_batch(&self, what: &'static str, first: u64, count: usize) -> Result<(), OtError> {
        if first != self.first_index {
            return Err(OtError::IndexMismatch {
                what,
                expected: self.first_index,
                got: first,
            });
        }
        if count != self.len() {
            return Err(OtError::CountMismatch {
                what,
                expected: self.len(),
                got: count,
            });
        }
        Ok(())
    }
}

/// Δ and the zero-labels are the garbler's secrets: wiped when the batch goes away.
impl Drop for CotSenderOutput {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.zero_labels.zeroize();
    }
}

/// The labels and choice bits are the evaluator's secrets: wiped when the batch goes away.
impl Drop for CotReceiverOutput {
    fn drop(&mut self) {
        self.labels.zeroize();
        self.choices.zeroize();
    }
}

impl std::fmt::Debug for CotSenderOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CotSenderOutput {{ first_index: {}, len: {}, .. }}",
            self.first_index,
            self.len()
        )
    }
}

/// The receiver's side of a batch: its choice bits and `t_j = q_j ⊕ b_j·Δ`. `Debug` hides them.
#[derive(Clone)]
pub struct CotReceiverOutput {
    labels: Vec<Block>,
    choices: Vec<bool>,
    first_index: u64,
}

impl CotReceiverOutput {
    pub(super) fn new(labels: Vec<Block>, choices: Vec<bool>, first_index: u64) -> Self {
        CotReceiverOutput {
            labels,
            choices,
            first_index,
        }
    }

    /// `t_j` for each transfer (the active garbled-circuit label of input bit `b_j`).
    pub fn labels(&self) -> &[Block] {
        &self.labels
    }

    /// Takes the labels.
    pub fn into_labels(mut self) -> Vec<Block> {
        std::mem::take(&mut self.labels)
    }

    /// The choice bits `b_j` the labels correspond to.
    pub fn choices(&self) -> &[bool] {
        &self.choices
    }

    /// Global index of the batch's first transfer.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Number of transfers.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Switches to new choice bits (e.g. random choices extended offline, real input online):
    /// returns `d = old ⊕ new` for the sender, which must apply it with
    /// [`CotSenderOutput::derandomize`].
    pub fn derandomize(&mut self, choices: &[bool]) -> Result<ReceiverDerandomize, OtError> {
        if choices.len() != self.len() {
            return Err(OtError::CountMismatch {
                what: "derandomized choices",
                expected: self.len(),
                got: choices.len(),
            });
        }
        let flips = self
            .choices
            .iter()
            .zip(choices)
            .map(|(a, b)| a ^ b)
            .collect();
        self.choices = choices.to_vec();
        Ok(ReceiverDerandomize {
            first_index: self.first_index,
            flips,
        })
    }

    /// Random OT: `TCCR(i, t_j)`, equal to the sender's pad number `b_j`.
    pub fn into_random_ot(self) -> Vec<Block> {
        hash_all(self.first_index, &self.labels)
    }

    /// Decrypts the chosen-OT payload: `m_j^{b_j}` per transfer.
    pub fn receive_chosen(self, msg: &SenderMessages) -> Result<Vec<Block>, OtError> {
        if msg.first_index != self.first_index {
            return Err(OtError::IndexMismatch {
                what: "SenderMessages",
                expected: self.first_index,
                got: msg.first_index,
            });
        }
        if msg.len() != self.len() {
            return Err(OtError::CountMismatch {
                what: "SenderMessages",
                expected: self.len(),
                got: msg.len(),
            });
        }
        let choices = self.choices.clone();
        let pads = self.into_random_ot();
        Ok(pads
            .into_iter()
            .zip(&msg.ciphertexts)
            .zip(choices)
            .map(|((pad, [y0, y1]), b)| {
                // y_b without a branch on the secret choice.
                pad ^ *y0 ^ (*y0 ^ *y1).select(b)
            })
            .collect())
    }
}

impl std::fmt::Debug for CotReceiverOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CotReceiverOutput {{ first_index: {}, len: {}, .. }}",
            self.first_index,
            self.len()
        )
    }
}

/// The receiver's side of a batch without its labels: the `G0` PRG streams regenerate any range
/// of `t_j` on demand ([`CotReceiverSeeds::labels`]), so the batch's 16 B per transfer need not
/// stay in memory between the check and the use of the labels. `Debug` hides the state.
pub struct CotReceiverSeeds {
    ready: ReceiverReady,
    g0_start: u128,
    col_words: usize,
    count: usize,
    /// The choice bits, a bit per row (padding rows included).
    packed_choices: Zeroizing<Vec<u128>>,
}

impl CotReceiverSeeds {
    pub(super) fn new(
        ready: ReceiverReady,
        g0_start: u128,
        col_words: usize,
        count: usize,
        packed_choices: Zeroizing<Vec<u128>>,
    ) -> Self {
        CotReceiverSeeds {
            ready,
            g0_start,
            col_words,
            count,
            packed_choices,
        }
    }

    /// Number of transfers.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `t_j` for the transfers in `range` (the same labels as [`CotReceiverOutput::labels`]),
    /// regenerated from the whole 128-row words that cover the range.
    pub fn labels(
        &mut self,
        range: std::ops::Range<usize>,
    ) -> Result<Zeroizing<Vec<Block>>, OtError> {
        if range.start > range.end || range.end > self.len() {
            return Err(OtError::OutOfRange {
                what: "COT labels",
                start: range.start,
                end: range.end,
                len: self.len(),
            });
        }
        let first_word = range.start / 128;
        let words = range.end.div_ceil(128) - first_word;
        let mut rows = Zeroizing::new(vec![Block::ZERO; 128 * words]);
        let mut g0s: Vec<&mut Csprng> = self.ready.prgs.iter_mut().map(|[g0, _]| g0).collect();
        regenerate_rows(&mut g0s, self.g0_start, first_word, &mut rows);
        // In place: no second buffer of the range's size.
        let skip = range.start - 128 * first_word;
        rows.copy_within(skip..skip + range.len(), 0);
        rows.truncate(range.len());
        Ok(rows)
    }

    /// The choice bits and the receiver's state, its `G0` streams back at the batch's end.
    pub(super) fn into_parts(mut self) -> (Vec<bool>, ReceiverReady) {
        let end = self.g0_start + 4 * self.col_words as u128;
        for [g0, _] in self.ready.prgs.iter_mut() {
            g0.seek_word(end);
        }
        let choices = (0..self.count)
            .map(|j| word_bit(&self.packed_choices, j))
            .collect();
        (choices, self.ready)
    }
}

impl std::fmt::Debug for CotReceiverSeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CotReceiverSeeds {{ {} transfers, .. }}", self.len())
    }
}
