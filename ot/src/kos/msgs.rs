//! Extension messages, named after their sender; decoding checks every length against its header.

use super::{padded_rows, BASE_OTS, MAX_TRANSFERS};
use crate::OtError;
use cryptonas_crypto::Block;

/// Reads the little-endian u64 header at the start of `bytes`.
fn header(bytes: &[u8], message: &'static str, header_len: usize) -> Result<u64, OtError> {
    if bytes.len() < header_len {
        return Err(OtError::Length {
            message,
            expected: header_len,
            got: bytes.len(),
        });
    }
    Ok(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")))
}

/// A transfer count from the wire, bounded by [`MAX_TRANSFERS`].
fn checked_count(count: u64, message: &'static str) -> Result<usize, OtError> {
    match usize::try_from(count) {
        Ok(c) if c <= MAX_TRANSFERS => Ok(c),
        _ => Err(OtError::TooManyTransfers {
            what: message,
            got: usize::try_from(count).unwrap_or(usize::MAX),
            max: MAX_TRANSFERS,
        }),
    }
}

fn exact_length(bytes: &[u8], message: &'static str, expected: usize) -> Result<(), OtError> {
    if bytes.len() != expected {
        return Err(OtError::Length {
            message,
            expected,
            got: bytes.len(),
        });
    }
    Ok(())
}

/// Receiver → sender: the IKNP matrix `u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ r` for `count` transfers, whole
/// or one part of it: the rows of 128-row words `first_word ..`, so that neither side needs the
/// whole matrix in one buffer.
///
/// Wire: `count` (u64 LE), `first_word` (u64 LE), then 128 columns of `16 · words` bytes (the
/// part's words, column by column). The batch has `m' = count + 256` rows rounded up to a multiple
/// of 128, i.e. `m'/128` words per column (16 bytes per extended row, about 16 B per transfer for
/// large batches); a part's words follow from its length.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtendMatrix {
    pub(super) count: usize,
    pub(super) first_word: usize,
    /// 128 columns of `words` words each (see [`crate::transpose`]'s layout).
    pub(super) columns: Vec<u128>,
}

impl ExtendMatrix {
    const NAME: &'static str = "ExtendMatrix";
    /// Bytes before the columns: `count` and `first_word`.
    pub(super) const HEADER: usize = 16;

    /// Number of transfers in the batch (the sender may compare it with what it expects).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The first extended row this part carries (a multiple of 128).
    pub fn first_row(&self) -> usize {
        128 * self.first_word
    }

    /// Extended rows this part carries (a multiple of 128).
    pub fn rows(&self) -> usize {
        self.columns.len()
    }

    /// Encoded size in bytes.
    pub fn byte_len(&self) -> usize {
        Self::HEADER + 16 * self.columns.len()
    }

    /// Encoded size of a part of `rows` extended rows (a multiple of 128).
    pub fn part_byte_len(rows: usize) -> usize {
        Self::HEADER + 16 * rows
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.extend_from_slice(&(self.count as u64).to_le_bytes());
        out.extend_from_slice(&(self.first_word as u64).to_le_bytes());
        for w in &self.columns {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Parses, checking that the part holds whole words of all 128 columns and lies inside the
    /// batch its count announces.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        let count = checked_count(header(bytes, Self::NAME, Self::HEADER)?, Self::NAME)?;
        let col_words = padded_rows(count) / 128;
        let first = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let body = &bytes[Self::HEADER..];
        let unit = BASE_OTS * 16;
        if body.is_empty() || !body.len().is_multiple_of(unit) {
            return Err(OtError::NotMultiple {
                message: Self::NAME,
                unit,
                got: body.len(),
            });
        }
        let words = body.len() / unit;
        let first_word = usize::try_from(first)
            .ok()
            .filter(|f| f.checked_add(words).is_some_and(|end| end <= col_words))
            .ok_or(OtError::PartOutside {
                first_row: first.saturating_mul(128),
                rows: 128 * words,
                batch_rows: 128 * col_words,
            })?;
        let columns = body
            .chunks_exact(16)
            .map(|w| u128::from_le_bytes(w.try_into().expect("16 bytes")))
            .collect();
        Ok(ExtendMatrix {
            count,
            first_word,
            columns,
        })
    }
}

impl std::fmt::Debug for ExtendMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ExtendMatrix {{ count: {}, rows {}..{}, .. }}",
            self.count,
            self.first_row(),
            self.first_row() + self.rows()
        )
    }
}

/// Sender → receiver: the seed of the check coefficients χ_j, drawn after the matrix arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckChallenge {
    pub(super) seed: [u8; 32],
}

impl CheckChallenge {
    const NAME: &'static str = "CheckChallenge";

    /// The wire form: 32 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.seed.to_vec()
    }

    /// Parses (exactly 32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        exact_length(bytes, Self::NAME, 32)?;
        Ok(CheckChallenge {
            seed: bytes.try_into().expect("32 bytes"),
        })
    }
}

/// Receiver → sender: `x = Σ r_j χ_j` and `t = Σ t_j·χ_j` in GF(2^128) (32 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResponse {
    pub(super) x: Block,
    pub(super) t: Block,
}

impl CheckResponse {
    const NAME: &'static str = "CheckResponse";

    /// The wire form: `x ‖ t`.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.x.0, self.t.0].concat()
    }

    /// Parses (exactly 32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        exact_length(bytes, Self::NAME, 32)?;
        Ok(CheckResponse {
            x: Block(bytes[..16].try_into().expect("16 bytes")),
            t: Block(bytes[16..].try_into().expect("16 bytes")),
        })
    }
}

/// Receiver → sender: `d_j = b_j ⊕ r_j`, turning random choices `r` into the real choices `b`
/// (Beaver's derandomisation); the sender shifts its zero-labels by `d_j·Δ`.
///
/// Wire: `first_index` (u64 LE), `count` (u64 LE), then the bits packed LSB-first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverDerandomize {
    pub(super) first_index: u64,
    pub(super) flips: Vec<bool>,
}

impl ReceiverDerandomize {
    const NAME: &'static str = "ReceiverDerandomize";

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.flips.len().div_ceil(8));
        out.extend_from_slice(&self.first_index.to_le_bytes());
        out.extend_from_slice(&(self.flips.len() as u64).to_le_bytes());
        out.extend_from_slice(&super::pack_bits(&self.flips, self.flips.len().div_ceil(8)));
        out
    }

    /// Parses; unused bits of the last byte must be zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        let first_index = header(bytes, Self::NAME, 16)?;
        let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let count = checked_count(count, Self::NAME)?;
        exact_length(bytes, Self::NAME, 16 + count.div_ceil(8))?;
        let packed = &bytes[16..];
        if count % 8 != 0 && packed[count / 8] >> (count % 8) != 0 {
            return Err(OtError::NonZeroPadding {
                message: Self::NAME,
            });
        }
        let flips = (0..count).map(|j| super::bit(packed, j)).collect();
        Ok(ReceiverDerandomize { first_index, flips })
    }
}

/// Sender → receiver: chosen 1-of-2 OT payload `y_j^b = m_j^b ⊕ TCCR(tweak_j, q_j ⊕ b·Δ)`.
///
/// Wire: `first_index` (u64 LE), `count` (u64 LE), then `y_j^0 ‖ y_j^1` (32 bytes per transfer).
#[derive(Clone, PartialEq, Eq)]
pub struct SenderMessages {
    pub(super) first_index: u64,
    pub(super) ciphertexts: Vec<[Block; 2]>,
}

impl SenderMessages {
    const NAME: &'static str = "SenderMessages";

    /// Number of transfers.
    pub fn len(&self) -> usize {
        self.ciphertexts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ciphertexts.is_empty()
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 32 * self.ciphertexts.len());
        out.extend_from_slice(&self.first_index.to_le_bytes());
        out.extend_from_slice(&(self.ciphertexts.len() as u64).to_le_bytes());
        for [a, b] in &self.ciphertexts {
            out.extend_from_slice(&a.0);
            out.extend_from_slice(&b.0);
        }
        out
    }

    /// Parses, checking the length against the announced count.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        let first_index = header(bytes, Self::NAME, 16)?;
        let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let count = checked_count(count, Self::NAME)?;
        exact_length(bytes, Self::NAME, 16 + 32 * count)?;
        let ciphertexts = bytes[16..]
            .chunks_exact(32)
            .map(|c| {
                [
                    Block(c[..16].try_into().expect("16 bytes")),
                    Block(c[16..].try_into().expect("16 bytes")),
                ]
            })
            .collect();
        Ok(SenderMessages {
            first_index,
            ciphertexts,
        })
    }
}

impl std::fmt::Debug for SenderMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SenderMessages {{ first_index: {}, len: {} }}",
            self.first_index,
            self.ciphertexts.len()
        )
    }
}
