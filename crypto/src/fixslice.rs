//! Constant-time bitsliced AES-128 encryption, eight blocks per call: the fully fixsliced
//! representation of Adomnicai and Peyrin ("Fixslicing AES-like Ciphers", TCHES 2021/1,
//! <https://eprint.iacr.org/2020/1123>), ported from the `aes` crate's 64-bit software backend
//! (RustCrypto, MIT OR Apache-2.0) and widened from one `u64` word to a [`Lane`] of two 64-bit
//! lanes, each lane holding its own four blocks.
//!
//! The algorithm is written once over [`Lane`]. Two lane types run it: [`U64x2`] (portable, two
//! `u64`s; natively it is only a test and reference vehicle) and, in WebAssembly with `simd128`,
//! `wasm_simd::V128` (one `v128` register, where the byte-aligned rotations become single
//! shuffles). Tests run the portable instance natively and the `v128` instance in headless
//! Chromium, each against the `aes` crate and the FIPS-197 vector.
//!
//! Constant time: only AND/OR/XOR/NOT, shifts and rotations by public constants, and byte
//! shuffles with constant indices; no table lookups, no secret-dependent branches or addresses
//! (the S-box is the Boyar–Peralta–Calik circuit).

use crate::block::{batch_tweaks, in_batches};
use crate::Block;
use std::ops::{BitAnd, BitOr, BitXor, BitXorAssign, Not};

/// A bitsliced word: two independent 64-bit lanes (lane 0 holds blocks 0–3 of a batch, lane 1
/// blocks 4–7). Every operation acts on each 64-bit lane separately.
pub(crate) trait Lane:
    Copy
    + Default
    + zeroize::DefaultIsZeroes
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
    + BitXor<Output = Self>
    + BitXorAssign
    + Not<Output = Self>
{
    /// `x` in both lanes.
    fn splat(x: u64) -> Self;
    /// Each lane shifted left by `n < 64` bits.
    fn shl(self, n: u32) -> Self;
    /// Each lane shifted right by `n < 64` bits.
    fn shr(self, n: u32) -> Self;
    /// Each lane rotated right by `0 < n < 64` bits (`n` is always a constant after inlining).
    #[inline(always)]
    fn ror(self, n: u32) -> Self {
        self.shr(n) | self.shl(64 - n)
    }
    /// The eight words of eight blocks, before the bit-index swaps of [`bitslice_swaps`]: word
    /// `j` (`j < 4`) holds bytes 0–3 and 8–11 of blocks `j` (lane 0) and `4 + j` (lane 1),
    /// interleaved as `b0 b8 b1 b9 b2 b10 b3 b11`; word `4 + j` the same for bytes 4–7, 12–15.
    fn load(blocks: &[Block; BATCH]) -> [Self; 8];
    /// The inverse of [`Lane::load`].
    fn store(words: &[Self; 8], blocks: &mut [Block; BATCH]);
}

/// Blocks per call.
pub(crate) const BATCH: usize = 8;

// The portable lane and its byte helpers are unused where the `v128` lane runs (wasm with simd128).
/// The interleaved 64-bit word of `Lane::load` for the block bytes `b[0..4]`, `b[8..12]`.
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn read_reordered(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[8], b[1], b[9], b[2], b[10], b[3], b[11]])
}

/// The inverse of [`read_reordered`].
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn write_reordered(w: u64, b: &mut [u8]) {
    let x = w.to_le_bytes();
    [b[0], b[8], b[1], b[9], b[2], b[10], b[3], b[11]] = x;
}

/// The portable lane: two `u64`s.
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct U64x2([u64; 2]);

impl zeroize::DefaultIsZeroes for U64x2 {}

macro_rules! lanewise {
    ($t:ident, $tr:ident, $f:ident, $op:tt) => {
        impl $tr for $t {
            type Output = $t;
            #[inline(always)]
            fn $f(self, o: $t) -> $t {
                $t([self.0[0] $op o.0[0], self.0[1] $op o.0[1]])
            }
        }
    };
}
lanewise!(U64x2, BitAnd, bitand, &);
lanewise!(U64x2, BitOr, bitor, |);
lanewise!(U64x2, BitXor, bitxor, ^);

impl BitXorAssign for U64x2 {
    #[inline(always)]
    fn bitxor_assign(&mut self, o: U64x2) {
        *self = *self ^ o;
    }
}

impl Not for U64x2 {
    type Output = U64x2;
    #[inline(always)]
    fn not(self) -> U64x2 {
        U64x2([!self.0[0], !self.0[1]])
    }
}

impl Lane for U64x2 {
    #[inline(always)]
    fn splat(x: u64) -> Self {
        U64x2([x, x])
    }
    #[inline(always)]
    fn shl(self, n: u32) -> Self {
        U64x2([self.0[0] << n, self.0[1] << n])
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        U64x2([self.0[0] >> n, self.0[1] >> n])
    }
    #[inline(always)]
    fn ror(self, n: u32) -> Self {
        U64x2([self.0[0].rotate_right(n), self.0[1].rotate_right(n)])
    }
    fn load(blocks: &[Block; BATCH]) -> [Self; 8] {
        let mut t = [U64x2::default(); 8];
        for (j, b) in blocks.iter().enumerate() {
            let (word, lane) = (j % 4, j / 4);
            t[word].0[lane] = read_reordered(&b.0[0..12]);
            t[4 + word].0[lane] = read_reordered(&b.0[4..16]);
        }
        t
    }
    fn store(words: &[Self; 8], blocks: &mut [Block; BATCH]) {
        for (j, b) in blocks.iter_mut().enumerate() {
            let (word, lane) = (j % 4, j / 4);
            write_reordered(words[word].0[lane], &mut b.0[0..12]);
            write_reordered(words[4 + word].0[lane], &mut b.0[4..16]);
        }
    }
}

// The 64-bit fixsliced geometry: four rows of 16 bits per word, a column is 4 bits.
const ROW_BITS: u32 = 16;
const HALF_ROW: u32 = 8;
const QUARTER_ROW: u32 = 4;

const fn ror_distance(rows: u32, cols: u32) -> u32 {
    rows * ROW_BITS + cols * QUARTER_ROW
}

/// Input bit `i` of a 16-bit pattern becomes output bits `4i..4i+4`.
const fn quad_bits(b: u16) -> u64 {
    let x = b as u64;
    let x = (x | (x << 24)) & 0x0000_00FF_0000_00FF;
    let x = (x | (x << 12)) & 0x000F_000F_000F_000F;
    let x = (x | (x << 6)) & 0x0303_0303_0303_0303;
    let x = (x | (x << 3)) & 0x1111_1111_1111_1111;
    x | (x << 1) | (x << 2) | (x << 3)
}

/// The same nibble pattern in all four rows.
const fn uniform_row(b: u8) -> u64 {
    quad_bits(b as u16).wrapping_mul(0x0001_0001_0001_0001)
}

/// One nibble pattern per row (row 0 = least significant).
const fn pack_rows(r0: u8, r1: u8, r2: u8, r3: u8) -> u64 {
    quad_bits(r0 as u16)
        | (quad_bits(r1 as u16) << 16)
        | (quad_bits(r2 as u16) << 32)
        | (quad_bits(r3 as u16) << 48)
}

const fn byte_repeat(b: u8) -> u64 {
    (b as u64).wrapping_mul(0x0101_0101_0101_0101)
}

#[inline(always)]
fn delta_swap_1<L: Lane>(a: &mut L, shift: u32, mask: u64) {
    let t = (*a ^ a.shr(shift)) & L::splat(mask);
    *a ^= t ^ t.shl(shift);
}

#[inline(always)]
fn delta_swap_2<L: Lane>(a: &mut L, b: &mut L, shift: u32, mask: u64) {
    let t = (*a ^ b.shr(shift)) & L::splat(mask);
    *a ^= t;
    *b ^= t.shl(shift);
}

/// The bit-index swaps that turn [`Lane::load`]'s words into the bitsliced state (and back: the
/// sequence is an involution).
#[inline(always)]
fn bitslice_swaps<L: Lane>(t: &mut [L; 8]) {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = t;
    let m0 = byte_repeat(0x55);
    delta_swap_2(t1, t0, 1, m0);
    delta_swap_2(t3, t2, 1, m0);
    delta_swap_2(t5, t4, 1, m0);
    delta_swap_2(t7, t6, 1, m0);
    let m1 = byte_repeat(0x33);
    delta_swap_2(t2, t0, 2, m1);
    delta_swap_2(t3, t1, 2, m1);
    delta_swap_2(t6, t4, 2, m1);
    delta_swap_2(t7, t5, 2, m1);
    let m2 = byte_repeat(0x0f);
    delta_swap_2(t4, t0, 4, m2);
    delta_swap_2(t5, t1, 4, m2);
    delta_swap_2(t6, t2, 4, m2);
    delta_swap_2(t7, t3, 4, m2);
}

/// ShiftRows once, on a state or a round key.
fn shift_rows_1<L: Lane>(state: &mut [L]) {
    for x in state.iter_mut() {
        delta_swap_1(x, HALF_ROW, pack_rows(0x0, 0x1, 0x3, 0x2));
        delta_swap_1(x, QUARTER_ROW, pack_rows(0x0, 0x5, 0x0, 0x5));
    }
}

/// ShiftRows twice.
#[inline(always)]
fn shift_rows_2<L: Lane>(state: &mut [L]) {
    for x in state.iter_mut() {
        delta_swap_1(x, HALF_ROW, pack_rows(0x0, 0x3, 0x0, 0x3));
    }
}

/// ShiftRows three times.
fn shift_rows_3<L: Lane>(state: &mut [L]) {
    for x in state.iter_mut() {
        delta_swap_1(x, HALF_ROW, pack_rows(0x0, 0x2, 0x3, 0x1));
        delta_swap_1(x, QUARTER_ROW, pack_rows(0x0, 0x5, 0x0, 0x5));
    }
}

/// The four NOTs the S-box circuit leaves out (folded into the round keys).
fn sub_bytes_nots<L: Lane>(state: &mut [L]) {
    state[0] = !state[0];
    state[1] = !state[1];
    state[5] = !state[5];
    state[6] = !state[6];
}

// Indexed, not zipped: in the wasm build the zip's constructor was left out of line.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn add_round_key<L: Lane>(state: &mut [L; 8], rkey: &[L; 8]) {
    for i in 0..8 {
        state[i] ^= rkey[i];
    }
}

/// The AES-128 round keys in the fixsliced representation (11 × 8 words).
pub(crate) type RoundKeys<L> = [[L; 8]; 11];

/// The fully bitsliced AES-128 key schedule, in the fixsliced representation, with the S-box
/// NOTs folded in.
pub(crate) fn key_schedule<L: Lane>(key: &[u8; 16]) -> RoundKeys<L> {
    let mut rkeys = [L::default(); 88];
    let mut first = L::load(&[Block(*key); BATCH]);
    bitslice_swaps(&mut first);
    rkeys[..8].copy_from_slice(&first);

    let mut rk_off = 0;
    for rcon in 0..10 {
        rkeys.copy_within(rk_off..rk_off + 8, rk_off + 8);
        rk_off += 8;
        let rk = &mut rkeys[rk_off..rk_off + 8];
        sub_bytes(rk);
        sub_bytes_nots(rk);
        let rc = L::splat(pack_rows(0x0, 0x8, 0x0, 0x0));
        if rcon < 8 {
            rk[rcon] ^= rc;
        } else {
            rk[rcon - 8] ^= rc;
            rk[rcon - 7] ^= rc;
            rk[rcon - 5] ^= rc;
            rk[rcon - 4] ^= rc;
        }
        // XOR the columns of the previous round key in.
        for i in 0..8 {
            let off_i = rk_off + i;
            let rk = rkeys[off_i - 8]
                ^ (L::splat(uniform_row(0x1)) & rkeys[off_i].ror(ror_distance(1, 3)));
            rkeys[off_i] = rk
                ^ (L::splat(uniform_row(0xe)) & rk.shl(QUARTER_ROW))
                ^ (L::splat(uniform_row(0xc)) & rk.shl(HALF_ROW))
                ^ (L::splat(uniform_row(0x8)) & rk.shl(3 * QUARTER_ROW));
        }
    }

    // Match the fixsliced format: ShiftRows⁻¹ applied i mod 4 times to round key i.
    for i in (8..72).step_by(32) {
        shift_rows_3(&mut rkeys[i..i + 8]);
        shift_rows_2(&mut rkeys[i + 8..i + 16]);
        shift_rows_1(&mut rkeys[i + 16..i + 24]);
    }
    shift_rows_3(&mut rkeys[72..80]);

    for i in 1..11 {
        sub_bytes_nots(&mut rkeys[i * 8..i * 8 + 8]);
    }
    let out = std::array::from_fn(|r| std::array::from_fn(|i| rkeys[8 * r + i]));
    // The key may be secret (a PRF key): wipe the working copy.
    zeroize::Zeroize::zeroize(&mut rkeys);
    zeroize::Zeroize::zeroize(&mut first);
    out
}

/// The ten AES-128 rounds on a bitsliced state (fully fixsliced: ShiftRows is folded into the
/// round keys and the MixColumns rotations, except one ShiftRows² before the last round).
/// Not inlined: the TCCR kernel calls it twice per batch, and a call costs little next to it.
#[inline(never)]
fn rounds<L: Lane>(rkeys: &RoundKeys<L>, state: &mut [L; 8]) {
    add_round_key(state, &rkeys[0]);
    // Rounds 1-8 in two passes of four (the MixColumns variant is the round number mod 4), then
    // round 9.
    for r in [1, 5] {
        sub_bytes(state);
        mix_columns_1(state);
        add_round_key(state, &rkeys[r]);
        sub_bytes(state);
        mix_columns_2(state);
        add_round_key(state, &rkeys[r + 1]);
        sub_bytes(state);
        mix_columns_3(state);
        add_round_key(state, &rkeys[r + 2]);
        sub_bytes(state);
        mix_columns_0(state);
        add_round_key(state, &rkeys[r + 3]);
    }
    sub_bytes(state);
    mix_columns_1(state);
    add_round_key(state, &rkeys[9]);
    shift_rows_2(state);
    sub_bytes(state);
    add_round_key(state, &rkeys[10]);
}

/// Eight blocks into the bitsliced state.
#[inline(always)]
fn bitslice<L: Lane>(blocks: &[Block; BATCH]) -> [L; 8] {
    let mut state = L::load(blocks);
    bitslice_swaps(&mut state);
    state
}

/// The bitsliced state back into eight blocks.
#[inline(always)]
fn unbitslice<L: Lane>(mut state: [L; 8], blocks: &mut [Block; BATCH]) {
    bitslice_swaps(&mut state);
    L::store(&state, blocks);
}

/// Encrypts eight blocks in place under `rkeys`.
pub(crate) fn encrypt<L: Lane>(rkeys: &RoundKeys<L>, blocks: &mut [Block; BATCH]) {
    let mut state = bitslice(blocks);
    rounds(rkeys, &mut state);
    unbitslice(state, blocks);
}

/// `xs[j] ← TCCR(tweak(j), xs[j]) = π(π(x) ⊕ t) ⊕ π(x)` for every `j`, eight blocks at a time
/// (a ragged tail is padded). π(x) stays bitsliced between the two encryptions (bitslicing is
/// linear, so the tweak is bitsliced and XORed in): three transposes per batch instead of four.
pub(crate) fn tccr_many<L: Lane>(
    rkeys: &RoundKeys<L>,
    xs: &mut [Block],
    tweak: impl Fn(usize) -> Block,
) {
    in_batches::<BATCH>(xs, |first, n, x| {
        tccr8(rkeys, x, &batch_tweaks::<BATCH>(first, n, &tweak))
    });
}

/// `x[j] ← TCCR(t[j], x[j])` on one batch, π(x) kept bitsliced between the two encryptions.
#[inline]
pub(crate) fn tccr8<L: Lane>(rkeys: &RoundKeys<L>, x: &mut [Block; BATCH], t: &[Block; BATCH]) {
    let mut state = bitslice(x);
    rounds(rkeys, &mut state);
    let px = state;
    let ts: [L; 8] = bitslice(t);
    for i in 0..8 {
        state[i] ^= ts[i];
    }
    rounds(rkeys, &mut state);
    for i in 0..8 {
        state[i] ^= px[i];
    }
    unbitslice(state, x);
}

/// Encrypts every block of `blocks` in place, eight at a time (a ragged tail is padded).
pub(crate) fn encrypt_many<L: Lane>(rkeys: &RoundKeys<L>, blocks: &mut [Block]) {
    in_batches::<BATCH>(blocks, |_, _, batch| encrypt(rkeys, batch));
}

/// MixColumns in the fixsliced representation, with the rotations of round number mod 4
/// (Käsper–Schwabe).
macro_rules! define_mix_columns {
    ($name:ident, $first_rotate:ident, $second_rotate:ident) => {
#[rustfmt::skip]
        #[inline(always)]
        fn $name<L: Lane>(state: &mut [L; 8]) {
            let [a0, a1, a2, a3, a4, a5, a6, a7] = *state;
            let (b0, b1, b2, b3, b4, b5, b6, b7) = (
                $first_rotate(a0), $first_rotate(a1), $first_rotate(a2), $first_rotate(a3),
                $first_rotate(a4), $first_rotate(a5), $first_rotate(a6), $first_rotate(a7),
            );
            let (c0, c1, c2, c3, c4, c5, c6, c7) = (
                a0 ^ b0, a1 ^ b1, a2 ^ b2, a3 ^ b3, a4 ^ b4, a5 ^ b5, a6 ^ b6, a7 ^ b7,
            );
            state[0] = b0      ^ c7 ^ $second_rotate(c0);
            state[1] = b1 ^ c0 ^ c7 ^ $second_rotate(c1);
            state[2] = b2 ^ c1      ^ $second_rotate(c2);
            state[3] = b3 ^ c2 ^ c7 ^ $second_rotate(c3);
            state[4] = b4 ^ c3 ^ c7 ^ $second_rotate(c4);
            state[5] = b5 ^ c4      ^ $second_rotate(c5);
            state[6] = b6 ^ c5      ^ $second_rotate(c6);
            state[7] = b7 ^ c6      ^ $second_rotate(c7);
        }
    };
}

define_mix_columns!(mix_columns_0, rotate_rows_1, rotate_rows_2);
define_mix_columns!(
    mix_columns_1,
    rotate_rows_and_columns_1_1,
    rotate_rows_and_columns_2_2
);
define_mix_columns!(mix_columns_2, rotate_rows_and_columns_1_2, rotate_rows_2);
define_mix_columns!(
    mix_columns_3,
    rotate_rows_and_columns_1_3,
    rotate_rows_and_columns_2_2
);

#[inline(always)]
fn rotate_rows_1<L: Lane>(x: L) -> L {
    x.ror(ror_distance(1, 0))
}

#[inline(always)]
fn rotate_rows_2<L: Lane>(x: L) -> L {
    x.ror(ror_distance(2, 0))
}

// The rotations by a number of columns that is not a whole byte are done once and the row
// rotation (16 bits: a byte shuffle on `v128`) applied to the result.
#[inline(always)]
fn rotate_rows_and_columns_1_1<L: Lane>(x: L) -> L {
    let y = x.ror(ror_distance(0, 1));
    (y.ror(ror_distance(1, 0)) & L::splat(uniform_row(0x7))) | (y & L::splat(uniform_row(0x8)))
}

#[inline(always)]
fn rotate_rows_and_columns_1_2<L: Lane>(x: L) -> L {
    (x.ror(ror_distance(1, 2)) & L::splat(uniform_row(0x3)))
        | (x.ror(ror_distance(0, 2)) & L::splat(uniform_row(0xc)))
}

#[inline(always)]
fn rotate_rows_and_columns_1_3<L: Lane>(x: L) -> L {
    let y = x.ror(ror_distance(0, 3));
    (y.ror(ror_distance(1, 0)) & L::splat(uniform_row(0x1))) | (y & L::splat(uniform_row(0xe)))
}

#[inline(always)]
fn rotate_rows_and_columns_2_2<L: Lane>(x: L) -> L {
    (x.ror(ror_distance(2, 2)) & L::splat(uniform_row(0x3)))
        | (x.ror(ror_distance(1, 2)) & L::splat(uniform_row(0xc)))
}

/// The AES S-box on all 64 bytes of the state: the Boyar–Peralta–Calik circuit
/// (<http://www.cs.yale.edu/homes/peralta/CircuitStuff/SLP_AES_113.txt>) without its four NOTs
/// (see [`sub_bytes_nots`]), as scheduled in the `aes` crate.
#[inline(always)]
fn sub_bytes<L: Lane>(state: &mut [L]) {
    let u7 = state[0];
    let u6 = state[1];
    let u5 = state[2];
    let u4 = state[3];
    let u3 = state[4];
    let u2 = state[5];
    let u1 = state[6];
    let u0 = state[7];

    let y14 = u3 ^ u5;
    let y13 = u0 ^ u6;
    let y12 = y13 ^ y14;
    let t1 = u4 ^ y12;
    let y15 = t1 ^ u5;
    let t2 = y12 & y15;
    let y6 = y15 ^ u7;
    let y20 = t1 ^ u1;
    let y9 = u0 ^ u3;
    let y11 = y20 ^ y9;
    let t12 = y9 & y11;
    let y7 = u7 ^ y11;
    let y8 = u0 ^ u5;
    let t0 = u1 ^ u2;
    let y10 = y15 ^ t0;
    let y17 = y10 ^ y11;
    let t13 = y14 & y17;
    let t14 = t13 ^ t12;
    let y19 = y10 ^ y8;
    let t15 = y8 & y10;
    let t16 = t15 ^ t12;
    let y16 = t0 ^ y11;
    let y21 = y13 ^ y16;
    let t7 = y13 & y16;
    let y18 = u0 ^ y16;
    let y1 = t0 ^ u7;
    let y4 = y1 ^ u3;
    let t5 = y4 & u7;
    let t6 = t5 ^ t2;
    let t18 = t6 ^ t16;
    let t22 = t18 ^ y19;
    let y2 = y1 ^ u0;
    let t10 = y2 & y7;
    let t11 = t10 ^ t7;
    let t20 = t11 ^ t16;
    let t24 = t20 ^ y18;
    let y5 = y1 ^ u6;
    let t8 = y5 & y1;
    let t9 = t8 ^ t7;
    let t19 = t9 ^ t14;
    let t23 = t19 ^ y21;
    let y3 = y5 ^ y8;
    let t3 = y3 & y6;
    let t4 = t3 ^ t2;
    let t17 = t4 ^ y20;
    let t21 = t17 ^ t14;
    let t26 = t21 & t23;
    let t27 = t24 ^ t26;
    let t31 = t22 ^ t26;
    let t25 = t21 ^ t22;
    let t28 = t25 & t27;
    let t29 = t28 ^ t22;
    let z14 = t29 & y2;
    let z5 = t29 & y7;
    let t30 = t23 ^ t24;
    let t32 = t31 & t30;
    let t33 = t32 ^ t24;
    let t35 = t27 ^ t33;
    let t36 = t24 & t35;
    let t38 = t27 ^ t36;
    let t39 = t29 & t38;
    let t40 = t25 ^ t39;
    let t43 = t29 ^ t40;
    let z3 = t43 & y16;
    let tc12 = z3 ^ z5;
    let z12 = t43 & y13;
    let z13 = t40 & y5;
    let z4 = t40 & y1;
    let tc6 = z3 ^ z4;
    let t34 = t23 ^ t33;
    let t37 = t36 ^ t34;
    let t41 = t40 ^ t37;
    let z8 = t41 & y10;
    let z17 = t41 & y8;
    let t44 = t33 ^ t37;
    let z0 = t44 & y15;
    let z9 = t44 & y12;
    let z10 = t37 & y3;
    let z1 = t37 & y6;
    let tc5 = z1 ^ z0;
    let tc11 = tc6 ^ tc5;
    let z11 = t33 & y4;
    let t42 = t29 ^ t33;
    let t45 = t42 ^ t41;
    let z7 = t45 & y17;
    let tc8 = z7 ^ tc6;
    let z16 = t45 & y14;
    let z6 = t42 & y11;
    let tc16 = z6 ^ tc8;
    let z15 = t42 & y9;
    let tc20 = z15 ^ tc16;
    let tc1 = z15 ^ z16;
    let tc2 = z10 ^ tc1;
    let tc21 = tc2 ^ z11;
    let tc3 = z9 ^ tc2;
    let s0 = tc3 ^ tc16;
    let s3 = tc3 ^ tc11;
    let s1 = s3 ^ tc16;
    let tc13 = z13 ^ tc1;
    let z2 = t33 & u7;
    let tc4 = z0 ^ z2;
    let tc7 = z12 ^ tc4;
    let tc9 = z8 ^ tc7;
    let tc10 = tc8 ^ tc9;
    let tc17 = z14 ^ tc10;
    let s5 = tc21 ^ tc17;
    let tc26 = tc17 ^ tc20;
    let s2 = tc26 ^ z17;
    let tc14 = tc4 ^ tc12;
    let tc18 = tc13 ^ tc14;
    let s6 = tc10 ^ tc18;
    let s7 = z12 ^ tc18;
    let s4 = tc14 ^ s3;

    state[0] = s7;
    state[1] = s6;
    state[2] = s5;
    state[3] = s4;
    state[4] = s3;
    state[5] = s2;
    state[6] = s1;
    state[7] = s0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};

    fn reference(key: [u8; 16], blocks: &[Block]) -> Vec<Block> {
        let aes = aes::Aes128::new(&Array(key));
        blocks
            .iter()
            .map(|b| {
                let mut a = Array(b.0);
                aes.encrypt_block(&mut a);
                Block(a.0)
            })
            .collect()
    }

    #[test]
    fn load_store_round_trip_and_swaps_are_an_involution() {
        let mut rng = crate::Csprng::from_seed([3; 32]);
        let blocks: [Block; BATCH] = rng.blocks(BATCH).try_into().unwrap();
        let mut w = U64x2::load(&blocks);
        let orig = w;
        bitslice_swaps(&mut w);
        assert_ne!(w, orig);
        bitslice_swaps(&mut w);
        assert_eq!(w, orig);
        let mut back = [Block::ZERO; BATCH];
        U64x2::store(&w, &mut back);
        assert_eq!(back, blocks);
    }

    /// FIPS-197 Appendix C.1, in every slot of a batch and for every ragged tail.
    #[test]
    fn portable_lane_fips197() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let pt = Block(std::array::from_fn(|i| (i as u8) * 0x11));
        let ct = Block([
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ]);
        let rk = key_schedule::<U64x2>(&key);
        for n in 0..=17 {
            let mut v = vec![pt; n];
            encrypt_many(&rk, &mut v);
            assert!(v.iter().all(|b| *b == ct), "n={n}");
        }
    }

    /// The TCCR kernel against its definition over the `aes` crate, every tail.
    #[test]
    fn portable_lane_tccr_matches_definition() {
        let mut rng = crate::Csprng::from_seed([6; 32]);
        let key = rng.block().0;
        let rk = key_schedule::<U64x2>(&key);
        for n in 0..=19 {
            let xs = rng.blocks(n);
            let ts = rng.blocks(n);
            let px = reference(key, &xs);
            let inner: Vec<Block> = px.iter().zip(&ts).map(|(p, t)| *p ^ *t).collect();
            let expect: Vec<Block> = reference(key, &inner)
                .iter()
                .zip(&px)
                .map(|(a, b)| *a ^ *b)
                .collect();
            let mut got = xs.clone();
            tccr_many(&rk, &mut got, |j| ts[j]);
            assert_eq!(got, expect, "n={n}");
        }
    }

    /// Random keys, blocks and lengths (every tail) against the `aes` crate.
    #[test]
    fn portable_lane_matches_aes_crate() {
        let mut rng = crate::Csprng::from_seed([5; 32]);
        for _ in 0..6 {
            let key = rng.block().0;
            let rk = key_schedule::<U64x2>(&key);
            for n in (0..=33).chain([64, 100, 257]) {
                let xs = rng.blocks(n);
                let mut got = xs.clone();
                encrypt_many(&rk, &mut got);
                assert_eq!(got, reference(key, &xs), "n={n}");
            }
        }
    }
}
