//! 128-bit blocks.

use std::fmt;
use std::ops::{BitAnd, BitXor, BitXorAssign};

/// A 128-bit block: a label, an OT message, an AES input or output.
///
/// Stored as 16 little-endian bytes; XOR is the group operation. `Debug` prints only a fingerprint-free
/// placeholder because blocks are usually secret.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Block(pub [u8; 16]);

/// The all-zero block is the zeroized value (`Zeroizing<Vec<Block>>` wipes label buffers).
impl zeroize::DefaultIsZeroes for Block {}

/// Constant-time equality, for comparisons that involve secrets (e.g. the KOS consistency check).
impl subtle::ConstantTimeEq for Block {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl Block {
    /// The all-zero block.
    pub const ZERO: Block = Block([0; 16]);
    /// The block with only the least significant bit set.
    pub const ONE: Block = Block([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    /// The all-ones block.
    pub const ONES: Block = Block([0xff; 16]);
    /// Size of a block on the wire.
    pub const BYTES: usize = 16;

    /// The block holding `x` (little endian).
    #[inline(always)]
    pub const fn from_u128(x: u128) -> Self {
        Block(x.to_le_bytes())
    }

    /// The block as an integer (little endian).
    #[inline(always)]
    pub const fn to_u128(self) -> u128 {
        u128::from_le_bytes(self.0)
    }

    /// The least significant bit (the point-and-permute bit of a label).
    #[inline(always)]
    pub const fn lsb(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// `self` if `bit`, else zero — computed without a branch.
    #[inline(always)]
    pub fn select(self, bit: bool) -> Self {
        let mask = (bit as u128).wrapping_neg();
        Block::from_u128(self.to_u128() & mask)
    }

    /// Reads blocks from a byte buffer whose length is a multiple of 16.
    pub fn vec_from_bytes(bytes: &[u8]) -> Option<Vec<Block>> {
        if !bytes.len().is_multiple_of(16) {
            return None;
        }
        Some(
            bytes
                .chunks_exact(16)
                .map(|c| Block(c.try_into().expect("16-byte chunk")))
                .collect(),
        )
    }

    /// The blocks as raw bytes (no framing: 16 bytes per block).
    pub fn slice_as_bytes(blocks: &[Block]) -> &[u8] {
        bytemuck::cast_slice(blocks)
    }
}

impl BitXor for Block {
    type Output = Block;
    #[inline(always)]
    fn bitxor(self, rhs: Block) -> Block {
        Block::from_u128(self.to_u128() ^ rhs.to_u128())
    }
}

impl BitXorAssign for Block {
    #[inline(always)]
    fn bitxor_assign(&mut self, rhs: Block) {
        *self = *self ^ rhs;
    }
}

impl BitAnd for Block {
    type Output = Block;
    #[inline(always)]
    fn bitand(self, rhs: Block) -> Block {
        Block::from_u128(self.to_u128() & rhs.to_u128())
    }
}

impl From<u128> for Block {
    fn from(x: u128) -> Self {
        Block::from_u128(x)
    }
}

impl fmt::Debug for Block {
    /// Hex, for tests and known-answer vectors. Wrap secret blocks in types whose `Debug` hides them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({:032x})", self.to_u128())
    }
}

/// Runs `f` over `blocks` in batches of `N`, as the software AES backends take them: each batch's
/// index of its first block, its number of real blocks (`N` but in a ragged tail) and the batch,
/// the tail padded with zero blocks (and the real ones copied back).
pub(crate) fn in_batches<const N: usize>(
    blocks: &mut [Block],
    mut f: impl FnMut(usize, usize, &mut [Block; N]),
) {
    let mut chunks = blocks.chunks_exact_mut(N);
    let mut first = 0;
    for c in &mut chunks {
        f(
            first,
            N,
            c.try_into().expect("chunks_exact yields N blocks"),
        );
        first += N;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut pad = [Block::ZERO; N];
        pad[..tail.len()].copy_from_slice(tail);
        f(first, tail.len(), &mut pad);
        tail.copy_from_slice(&pad[..tail.len()]);
    }
}

/// The tweaks of an [`in_batches`] batch: `tweak(first + j)` for its `n` real blocks, zero for
/// the padding (whose outputs are dropped; `tweak` is never asked past the end).
pub(crate) fn batch_tweaks<const N: usize>(
    first: usize,
    n: usize,
    tweak: &impl Fn(usize) -> Block,
) -> [Block; N] {
    std::array::from_fn(|j| if j < n { tweak(first + j) } else { Block::ZERO })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_and_select() {
        let a = Block::from_u128(0xdead_beef);
        let b = Block::from_u128(0x1234);
        assert_eq!((a ^ b) ^ b, a);
        assert_eq!(a.select(true), a);
        assert_eq!(a.select(false), Block::ZERO);
        assert!(Block::ONE.lsb());
        assert!(!Block::ZERO.lsb());
    }

    #[test]
    fn bytes_round_trip() {
        let v = vec![Block::from_u128(1), Block::from_u128(u128::MAX)];
        let bytes = Block::slice_as_bytes(&v).to_vec();
        assert_eq!(bytes.len(), 32);
        assert_eq!(Block::vec_from_bytes(&bytes).unwrap(), v);
        assert!(Block::vec_from_bytes(&bytes[..31]).is_none());
    }

    /// Every block is visited once, in order, with its batch's first index and real length;
    /// the padding is zero and what `f` writes to the real blocks is kept.
    #[test]
    fn batches_cover_every_block_once() {
        for len in [0usize, 1, 7, 8, 9, 16, 21] {
            let mut v: Vec<Block> = (0..len as u128).map(|i| Block::from_u128(i + 1)).collect();
            let mut seen = Vec::new();
            in_batches::<8>(&mut v, |first, n, batch| {
                assert!(batch[n..].iter().all(|b| *b == Block::ZERO));
                let t = batch_tweaks::<8>(first, n, &|j| Block::from_u128(j as u128 + 1));
                assert_eq!(t[..n], batch[..n]);
                assert!(t[n..].iter().all(|b| *b == Block::ZERO));
                seen.push((first, n));
                batch.iter_mut().for_each(|b| *b ^= Block::ONE);
            });
            let want: Vec<(usize, usize)> =
                (0..len).step_by(8).map(|f| (f, 8.min(len - f))).collect();
            assert_eq!(seen, want, "len {len}");
            assert!(v
                .iter()
                .enumerate()
                .all(|(i, b)| b.to_u128() == (i as u128 + 1) ^ 1));
        }
    }
}
