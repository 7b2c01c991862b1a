//! The `v128` lane of the bitsliced AES ([`crate::fixslice`]): WebAssembly SIMD (`simd128`),
//! eight blocks per call in eight `v128` registers.
//!
//! Every operation here is a safe `core::arch::wasm32` intrinsic (the crate is built with
//! `-C target-feature=+simd128`, see `.cargo/config.toml`): no `unsafe`. Rotations by whole bytes,
//! which are most of the MixColumns rotations, are one constant `i8x16.shuffle`; the others are
//! two shifts and an OR. Loads and stores go through `u64x2` lane construction and extraction
//! from byte arrays (LLVM merges them into `v128.load`/`v128.store`; no pointer casts).

use crate::fixslice::{Lane, BATCH};
use crate::Block;
use core::arch::wasm32::{
    i64x2_shuffle, i8x16_shuffle, u16x8_shr, u64x2, u64x2_extract_lane, u64x2_shl, u64x2_shr,
    u64x2_splat, u8x16_splat, v128, v128_and, v128_not, v128_or, v128_xor,
};
use std::ops::{BitAnd, BitOr, BitXor, BitXorAssign, Not};

/// One `v128` register as two 64-bit lanes.
#[derive(Clone, Copy)]
pub(crate) struct V128(v128);

impl Default for V128 {
    #[inline(always)]
    fn default() -> Self {
        V128(u64x2_splat(0))
    }
}

impl zeroize::DefaultIsZeroes for V128 {}

impl BitAnd for V128 {
    type Output = V128;
    #[inline(always)]
    fn bitand(self, o: V128) -> V128 {
        V128(v128_and(self.0, o.0))
    }
}

impl BitOr for V128 {
    type Output = V128;
    #[inline(always)]
    fn bitor(self, o: V128) -> V128 {
        V128(v128_or(self.0, o.0))
    }
}

impl BitXor for V128 {
    type Output = V128;
    #[inline(always)]
    fn bitxor(self, o: V128) -> V128 {
        V128(v128_xor(self.0, o.0))
    }
}

impl BitXorAssign for V128 {
    #[inline(always)]
    fn bitxor_assign(&mut self, o: V128) {
        self.0 = v128_xor(self.0, o.0);
    }
}

impl Not for V128 {
    type Output = V128;
    #[inline(always)]
    fn not(self) -> V128 {
        V128(v128_not(self.0))
    }
}

/// Rotates each 64-bit lane of `x` right by `K` bytes: result byte `i` of a lane is byte
/// `(i + K) mod 8` of the same lane.
macro_rules! ror_bytes {
    ($x:expr, $k:literal) => {{
        const fn ix(i: usize) -> usize {
            (i / 8) * 8 + (i % 8 + $k) % 8
        }
        i8x16_shuffle::<
            { ix(0) },
            { ix(1) },
            { ix(2) },
            { ix(3) },
            { ix(4) },
            { ix(5) },
            { ix(6) },
            { ix(7) },
            { ix(8) },
            { ix(9) },
            { ix(10) },
            { ix(11) },
            { ix(12) },
            { ix(13) },
            { ix(14) },
            { ix(15) },
        >($x, $x)
    }};
}

#[inline(always)]
fn load_block(b: &Block) -> v128 {
    u64x2(
        u64::from_le_bytes(std::array::from_fn(|i| b.0[i])),
        u64::from_le_bytes(std::array::from_fn(|i| b.0[8 + i])),
    )
}

#[inline(always)]
fn store_block(v: v128, b: &mut Block) {
    let (lo, hi) = b.0.split_at_mut(8);
    lo.copy_from_slice(&u64x2_extract_lane::<0>(v).to_le_bytes());
    hi.copy_from_slice(&u64x2_extract_lane::<1>(v).to_le_bytes());
}

impl Lane for V128 {
    #[inline(always)]
    fn splat(x: u64) -> Self {
        V128(u64x2_splat(x))
    }
    // Shifts by one byte are byte shuffles: as shifts, LLVM folds ShiftRows² (`t ^ t << 8` on
    // disjoint bits) into an `i64x2.mul` by 257, which V8 emulates on x86 in many instructions.
    #[inline(always)]
    fn shl(self, n: u32) -> Self {
        V128(if n == 8 {
            let z = u64x2_splat(0);
            i8x16_shuffle::<16, 0, 1, 2, 3, 4, 5, 6, 16, 8, 9, 10, 11, 12, 13, 14>(self.0, z)
        } else {
            u64x2_shl(self.0, n)
        })
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        V128(if n == 8 {
            let z = u64x2_splat(0);
            i8x16_shuffle::<1, 2, 3, 4, 5, 6, 7, 16, 9, 10, 11, 12, 13, 14, 15, 16>(self.0, z)
        } else {
            u64x2_shr(self.0, n)
        })
    }
    #[inline(always)]
    fn ror(self, n: u32) -> Self {
        let x = self.0;
        V128(match n {
            8 => ror_bytes!(x, 1),
            16 => ror_bytes!(x, 2),
            24 => ror_bytes!(x, 3),
            32 => ror_bytes!(x, 4),
            40 => ror_bytes!(x, 5),
            48 => ror_bytes!(x, 6),
            56 => ror_bytes!(x, 7),
            _ => v128_or(u64x2_shr(x, n), u64x2_shl(x, 64 - n)),
        })
    }
    #[inline(always)]
    fn load(blocks: &[Block; BATCH]) -> [Self; 8] {
        // Interleave each block's bytes as `read_reordered` does, for both halves at once:
        // lane 0 = bytes 0-3 with 8-11, lane 1 = bytes 4-7 with 12-15.
        let s: [v128; BATCH] = std::array::from_fn(|j| {
            let b = load_block(&blocks[j]);
            i8x16_shuffle::<0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15>(b, b)
        });
        std::array::from_fn(|w| {
            let j = w % 4;
            V128(if w < 4 {
                i64x2_shuffle::<0, 2>(s[j], s[4 + j])
            } else {
                i64x2_shuffle::<1, 3>(s[j], s[4 + j])
            })
        })
    }
    #[inline(always)]
    fn store(words: &[Self; 8], blocks: &mut [Block; BATCH]) {
        for (j, b) in blocks.iter_mut().enumerate() {
            let (w, lane_hi) = (j % 4, j >= 4);
            let s = if lane_hi {
                i64x2_shuffle::<1, 3>(words[w].0, words[4 + w].0)
            } else {
                i64x2_shuffle::<0, 2>(words[w].0, words[4 + w].0)
            };
            let v = i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15>(s, s);
            store_block(v, b);
        }
    }
}

/// The lane of the vector-permute AES ([`crate::vperm`]): one `v128` of sixteen bytes. Its
/// lookup is `i8x16.relaxed_swizzle` where the build enables `relaxed-simd` (one `pshufb` in V8 on
/// x86), else `i8x16.swizzle` (a saturating add and a `pshufb`); the two agree on the indices the
/// AES uses (`< 16` or `≥ 0x80`).
#[derive(Clone, Copy)]
pub(crate) struct Vp128(v128);

impl Default for Vp128 {
    #[inline(always)]
    fn default() -> Self {
        Vp128(u64x2_splat(0))
    }
}

impl zeroize::DefaultIsZeroes for Vp128 {}

impl crate::vperm::Bytes16 for Vp128 {
    #[inline(always)]
    fn from_bytes(b: [u8; 16]) -> Self {
        Vp128(load_block(&Block(b)))
    }
    #[inline(always)]
    fn to_bytes(self) -> [u8; 16] {
        let mut b = Block::ZERO;
        store_block(self.0, &mut b);
        b.0
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        Vp128(v128_xor(self.0, o.0))
    }
    #[inline(always)]
    fn lo(self) -> Self {
        Vp128(v128_and(self.0, u8x16_splat(0x0f)))
    }
    #[inline(always)]
    fn hi(self) -> Self {
        Vp128(v128_and(u16x8_shr(self.0, 4), u8x16_splat(0x0f)))
    }
    #[inline(always)]
    fn lookup(self, idx: Self) -> Self {
        #[cfg(target_feature = "relaxed-simd")]
        let r = core::arch::wasm32::i8x16_relaxed_swizzle(self.0, idx.0);
        #[cfg(not(target_feature = "relaxed-simd"))]
        let r = core::arch::wasm32::u8x16_swizzle(self.0, idx.0);
        Vp128(r)
    }
}
