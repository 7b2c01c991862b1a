//! Carry-less multiplication and GF(2^128) arithmetic on [`Block`]s, portable and constant time.
//!
//! The KOS consistency check needs one field multiplication per extended row. We do not use
//! PCLMULQDQ (it needs `unsafe` intrinsics and does not exist in WebAssembly); instead a 64×64-bit
//! carry-less product is computed with ordinary integer multiplications on operands split into five
//! interleaved bit classes ("multiplication with holes", after BearSSL's `ghash_ctmul`): each class
//! keeps a 4-bit gap between its bits, so integer carries never reach the next bit of the same class
//! and no secret-dependent branch or table index is involved. 128-bit products use one Karatsuba
//! step (3 such products).
//!
//! Bit `i` of a block (little endian, [`Block::to_u128`]) is the coefficient of `x^i`; the field is
//! GF(2)\[x\] / (x^128 + x^7 + x^2 + x + 1) without GCM's bit reflection.

use cryptonas_crypto::Block;

/// Bit `p` of `CLASS64[c]` is set iff `p mod 5 == c`.
const CLASS64: [u64; 5] = class_masks64();
/// Bit `p` of `CLASS128[c]` is set iff `p mod 5 == c`.
const CLASS128: [u128; 5] = class_masks128();

const fn class_masks64() -> [u64; 5] {
    let mut m = [0u64; 5];
    let mut p = 0;
    while p < 64 {
        m[p % 5] |= 1 << p;
        p += 1;
    }
    m
}

const fn class_masks128() -> [u128; 5] {
    let mut m = [0u128; 5];
    let mut p = 0;
    while p < 128 {
        m[p % 5] |= 1 << p;
        p += 1;
    }
    m
}

/// The 128-bit carry-less product of two 64-bit polynomials, in constant time.
///
/// On 64-bit targets one integer multiply gives 128 bits, so [`clmul64_wide`] (25 of them) wins;
/// WebAssembly only has 64-bit multiplies, where [`clmul64_narrow`] (48 of them) avoids the
/// emulated 128-bit product.
#[inline]
pub fn clmul64(a: u64, b: u64) -> u128 {
    #[cfg(target_pointer_width = "64")]
    {
        clmul64_wide(a, b)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        clmul64_narrow(a, b)
    }
}

/// 64×64 carry-less product from 25 integer 64×64→128 multiplications.
///
/// Split `a = Σ a_i`, `b = Σ b_j` where `a_i` keeps the bits at positions ≡ i (mod 5). The integer
/// product `a_i · b_j` has its "true" bits at positions ≡ i + j (mod 5); the coefficient there is a
/// count of at most 13 terms (a class holds ≤ 13 of 64 positions), which fits in 4 bits, so the carry
/// never reaches the next position of that class, 5 bits up. Its lowest bit is the parity we want.
#[inline]
pub fn clmul64_wide(a: u64, b: u64) -> u128 {
    let ai = CLASS64.map(|m| u128::from(a & m));
    let bj = CLASS64.map(|m| u128::from(b & m));
    let mut z = 0u128;
    for (c, mask) in CLASS128.iter().enumerate() {
        let mut acc = 0u128;
        for (i, a) in ai.iter().enumerate() {
            acc ^= a.wrapping_mul(bj[(c + 5 - i) % 5]);
        }
        z |= acc & mask;
    }
    z
}

/// 64×64 carry-less product from 48 integer 64-bit multiplications (Karatsuba over `clmul32`).
#[inline]
pub fn clmul64_narrow(a: u64, b: u64) -> u128 {
    let (a0, a1) = (a as u32, (a >> 32) as u32);
    let (b0, b1) = (b as u32, (b >> 32) as u32);
    let lo = clmul32(a0, b0);
    let hi = clmul32(a1, b1);
    let mid = clmul32(a0 ^ a1, b0 ^ b1) ^ lo ^ hi;
    u128::from(lo) ^ (u128::from(mid) << 32) ^ (u128::from(hi) << 64)
}

/// 32×32 carry-less product from 16 integer multiplications: four bit classes mod 4, each with at
/// most 8 of the 32 positions, so a coefficient (≤ 8) fits in the 4-bit gap between class members.
#[inline]
fn clmul32(a: u32, b: u32) -> u64 {
    const M32: [u32; 4] = [0x1111_1111, 0x2222_2222, 0x4444_4444, 0x8888_8888];
    const M64: [u64; 4] = [
        0x1111_1111_1111_1111,
        0x2222_2222_2222_2222,
        0x4444_4444_4444_4444,
        0x8888_8888_8888_8888,
    ];
    let ai = M32.map(|m| u64::from(a & m));
    let bj = M32.map(|m| u64::from(b & m));
    let mut z = 0u64;
    for (c, mask) in M64.iter().enumerate() {
        let mut acc = 0u64;
        for (i, a) in ai.iter().enumerate() {
            acc ^= a.wrapping_mul(bj[(c + 4 - i) % 4]);
        }
        z |= acc & mask;
    }
    z
}

/// The 256-bit carry-less product `a · b` as `(high, low)` halves.
#[inline]
pub fn clmul(a: Block, b: Block) -> (Block, Block) {
    let (hi, lo) = clmul_u128(a.to_u128(), b.to_u128());
    (Block::from_u128(hi), Block::from_u128(lo))
}

/// Karatsuba: `(a1 x^64 + a0)(b1 x^64 + b0)` from three 64×64 products.
#[inline]
fn clmul_u128(a: u128, b: u128) -> (u128, u128) {
    let (a0, a1) = (a as u64, (a >> 64) as u64);
    let (b0, b1) = (b as u64, (b >> 64) as u64);
    let lo = clmul64(a0, b0);
    let hi = clmul64(a1, b1);
    let mid = clmul64(a0 ^ a1, b0 ^ b1) ^ lo ^ hi;
    (hi ^ (mid >> 64), lo ^ (mid << 64))
}

/// Reduces `high · x^128 + low` modulo x^128 + x^7 + x^2 + x + 1.
#[inline]
pub fn reduce(high: Block, low: Block) -> Block {
    Block::from_u128(reduce_u128(high.to_u128(), low.to_u128()))
}

#[inline]
fn reduce_u128(h: u128, l: u128) -> u128 {
    // x^128 ≡ x^7 + x^2 + x + 1; the shifted-out top bits (< x^7) are folded in once more.
    let over = (h >> 127) ^ (h >> 126) ^ (h >> 121);
    let h = h ^ over;
    l ^ h ^ (h << 1) ^ (h << 2) ^ (h << 7)
}

/// The product `a · b` in GF(2^128).
#[inline]
pub fn mul(a: Block, b: Block) -> Block {
    let (h, l) = clmul_u128(a.to_u128(), b.to_u128());
    Block::from_u128(reduce_u128(h, l))
}

/// Accumulates `Σ a_j · b_j` without reducing each term (reduction is linear, so one reduction at
/// the end suffices).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Accumulator {
    high: u128,
    low: u128,
}

impl Accumulator {
    /// Adds `a · b`.
    #[inline]
    pub(crate) fn add_product(&mut self, a: Block, b: Block) {
        let (h, l) = clmul_u128(a.to_u128(), b.to_u128());
        self.high ^= h;
        self.low ^= l;
    }

    /// Adds another partial sum.
    #[inline]
    pub(crate) fn merge(self, other: Self) -> Self {
        Accumulator {
            high: self.high ^ other.high,
            low: self.low ^ other.low,
        }
    }

    /// The reduced sum.
    #[inline]
    pub(crate) fn finish(self) -> Block {
        Block::from_u128(reduce_u128(self.high, self.low))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptonas_crypto::Csprng;

    /// Schoolbook shift-and-xor: the definition.
    fn clmul64_naive(a: u64, b: u64) -> u128 {
        (0..64)
            .filter(|i| b >> i & 1 == 1)
            .fold(0u128, |acc, i| acc ^ (u128::from(a) << i))
    }

    /// Bitwise multiply-and-reduce, one bit of `b` at a time.
    fn mul_naive(a: u128, b: u128) -> u128 {
        let mut r = 0u128;
        let mut a = a;
        for i in 0..128 {
            if b >> i & 1 == 1 {
                r ^= a;
            }
            let carry = a >> 127;
            a <<= 1;
            if carry == 1 {
                a ^= 0x87;
            }
        }
        r
    }

    #[test]
    fn clmul64_matches_schoolbook_on_edge_and_random_inputs() {
        let edge = [
            0u64,
            1,
            2,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            0x5555_5555_5555_5555,
        ];
        for &a in &edge {
            for &b in &edge {
                assert_eq!(clmul64_wide(a, b), clmul64_naive(a, b), "{a:x} * {b:x}");
                assert_eq!(clmul64_narrow(a, b), clmul64_naive(a, b), "{a:x} * {b:x}");
            }
        }
        let mut rng = Csprng::from_seed([1; 32]);
        for _ in 0..2000 {
            let (a, b) = (rng.u64(), rng.u64());
            assert_eq!(clmul64_wide(a, b), clmul64_naive(a, b));
            assert_eq!(clmul64_narrow(a, b), clmul64_naive(a, b));
            assert_eq!(clmul64(a, b), clmul64_naive(a, b));
        }
    }

    #[test]
    fn field_multiplication_matches_bitwise_reference() {
        let mut rng = Csprng::from_seed([2; 32]);
        for _ in 0..500 {
            let (a, b) = (rng.block(), rng.block());
            assert_eq!(mul(a, b).to_u128(), mul_naive(a.to_u128(), b.to_u128()));
        }
        let all = Block::ONES;
        assert_eq!(mul(all, all).to_u128(), mul_naive(u128::MAX, u128::MAX));
        // x^127 · x = x^128 = x^7 + x^2 + x + 1.
        assert_eq!(
            mul(Block::from_u128(1 << 127), Block::from_u128(2)),
            Block::from_u128(0x87)
        );
        assert_eq!(
            mul(Block::ONE, Block::from_u128(12345)),
            Block::from_u128(12345)
        );
    }

    #[test]
    fn field_axioms_and_lazy_reduction() {
        let mut rng = Csprng::from_seed([3; 32]);
        let mut acc = Accumulator::default();
        let mut eager = Block::ZERO;
        for _ in 0..200 {
            let (a, b, c) = (rng.block(), rng.block(), rng.block());
            assert_eq!(mul(a, b), mul(b, a));
            assert_eq!(mul(mul(a, b), c), mul(a, mul(b, c)));
            assert_eq!(mul(a, b ^ c), mul(a, b) ^ mul(a, c));
            acc.add_product(a, b);
            eager ^= mul(a, b);
        }
        assert_eq!(acc.finish(), eager);
        let (h, l) = clmul(Block::from_u128(3), Block::from_u128(3));
        assert_eq!((h, l), (Block::ZERO, Block::from_u128(5)));
        assert_eq!(reduce(h, l), Block::from_u128(5));
    }
}
