//! Constant-time vector-permute AES-128 encryption (the technique of Hamburg, "Accelerating AES
//! with Vector Permute Instructions", CHES 2009): the S-box is computed on nibbles with 16-entry
//! table lookups *in registers* (`i8x16.swizzle`), never in memory; MixColumns and ShiftRows are
//! constant byte permutations. Eight blocks per call, interleaved for instruction-level
//! parallelism.
//!
//! The tables are derived here at compile time (`const fn`) from the field arithmetic, not copied:
//! GF(2⁸) (the AES polynomial) contains GF(2⁴) = {x : x¹⁶ = x}; a byte is rewritten by the
//! GF(2)-linear map `L` as nibbles `(i, k)` with `x = φ(i) + φ(k)·β` (φ: nibbles → the subfield,
//! β = 30 ∉ GF(2⁴)). Then, with `j = i ⊕ k` and GF(2⁴) arithmetic on nibbles,
//! `io = 1/(1/i + a/k) + j`, `jo = 1/(1/j + a/k) + i` (a = φ(2); 1/0 is an index ≥ 0x80, which a
//! lookup maps to 0) determine x⁻¹ as `U[io] ⊕ T[jo]` for two 16-entry tables, solved for below.
//! Folding the S-box's affine map, `L` and ×2 into those tables gives the S-box output and its
//! double in the `L` basis, from which MixColumns is three byte rotations and XORs. ShiftRows is
//! never applied: round `r` keeps its state permuted by `SR⁻ʳ`, so the rotations and the round
//! keys are conjugated by that permutation (period 4), and one permutation at the end undoes it.
//!
//! Written once over [`Bytes16`]: `wasm_simd::Vp128` (one `v128`; with `relaxed-simd` compiled in,
//! `i8x16.relaxed_swizzle`, one `pshufb` on x86, else `i8x16.swizzle`, which V8 lowers to a
//! saturating add and a `pshufb`) and, natively, a portable lane whose lookup shifts the table as
//! one `u128` (no memory lookup; slow: tests only). The lookups' indices are always `< 16` or
//! `≥ 0x80`, where `i8x16.swizzle` and `i8x16.relaxed_swizzle` agree on every engine.

use crate::block::{batch_tweaks, in_batches};
use crate::Block;

/// Sixteen bytes, the operations the vector-permute AES needs.
pub(crate) trait Bytes16: Copy + Default + zeroize::DefaultIsZeroes {
    fn from_bytes(b: [u8; 16]) -> Self;
    fn to_bytes(self) -> [u8; 16];
    fn xor(self, o: Self) -> Self;
    /// The low nibble of every byte.
    fn lo(self) -> Self;
    /// The high nibble of every byte, shifted down.
    fn hi(self) -> Self;
    /// Byte `p` of the result is `self[idx[p]]` where `idx[p] < 16`, and 0 where `idx[p] ≥ 0x80`
    /// (other indices never occur). Register-only: no memory access depends on `idx`.
    fn lookup(self, idx: Self) -> Self;
}

/// The portable lane (natively: tests only).
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    allow(dead_code)
)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Portable([u8; 16]);

impl zeroize::DefaultIsZeroes for Portable {}

impl Bytes16 for Portable {
    fn from_bytes(b: [u8; 16]) -> Self {
        Portable(b)
    }
    fn to_bytes(self) -> [u8; 16] {
        self.0
    }
    fn xor(self, o: Self) -> Self {
        Portable(std::array::from_fn(|p| self.0[p] ^ o.0[p]))
    }
    fn lo(self) -> Self {
        Portable(self.0.map(|b| b & 0x0f))
    }
    fn hi(self) -> Self {
        Portable(self.0.map(|b| b >> 4))
    }
    fn lookup(self, idx: Self) -> Self {
        // The table as one `u128` shifted by the index (a register shift, no secret-dependent
        // address or branch), masked to 0 for indices ≥ 0x80.
        let t = u128::from_le_bytes(self.0);
        Portable(idx.0.map(|i| {
            let keep = (i >> 7).wrapping_sub(1);
            (t >> (8 * u32::from(i & 15))) as u8 & keep
        }))
    }
}

// ---- GF(2⁸) and GF(2⁴) arithmetic, compile time only ----

const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        a = (a << 1) ^ if a & 0x80 != 0 { 0x1b } else { 0 };
        b >>= 1;
    }
    r
}

const fn gpow(a: u8, mut n: u32) -> u8 {
    let (mut r, mut s) = (1, a);
    while n != 0 {
        if n & 1 != 0 {
            r = gmul(r, s);
        }
        s = gmul(s, s);
        n >>= 1;
    }
    r
}

/// x⁻¹ in GF(2⁸), 0⁻¹ = 0.
const fn ginv(a: u8) -> u8 {
    gpow(a, 254)
}

/// The linear part of the S-box's affine map.
const fn affine(b: u8) -> u8 {
    b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4)
}

/// φ: nibble `n` ↦ `Σ n_b g^b`, g the smallest subfield element with g⁴ + g + 1 = 0 (a field
/// isomorphism from GF(2)[y]/(y⁴+y+1) onto the subfield of GF(2⁸)).
const PHI: [u8; 16] = {
    let mut g = 2u8;
    while !(gpow(g, 16) == g && gpow(g, 4) ^ g ^ 1 == 0) {
        g += 1;
    }
    let mut phi = [0u8; 16];
    let mut n = 0;
    while n < 16 {
        let mut b = 0;
        while b < 4 {
            if n >> b & 1 != 0 {
                phi[n] ^= gpow(g, b as u32);
            }
            b += 1;
        }
        n += 1;
    }
    phi
};

const fn phi_inv(x: u8) -> u8 {
    let mut n = 0;
    while PHI[n] != x {
        n += 1;
    }
    n as u8
}

/// β: the second basis element of GF(2⁸) over GF(2⁴) (any element outside the subfield for which
/// the tables below exist; 30 is one).
const BETA: u8 = 30;

/// `L⁻¹`: nibbles `(i, k)` (the byte `i << 4 | k`) ↦ `φ(i) + φ(k)·β`.
const fn l_inv(y: u8) -> u8 {
    PHI[(y >> 4) as usize] ^ gmul(PHI[(y & 15) as usize], BETA)
}

/// `L`: a byte in the AES basis ↦ its nibbles `(i, k)`.
const fn l(x: u8) -> u8 {
    let mut y = 0u8;
    while l_inv(y) != x {
        y += 1;
    }
    y
}

/// 1/n in GF(2⁴); 1/0 is 0x80 (a lookup at that index yields 0).
const INV: [u8; 16] = {
    let mut t = [0x80u8; 16];
    let mut n = 1;
    while n < 16 {
        t[n] = phi_inv(ginv(PHI[n]));
        n += 1;
    }
    t
};

/// a/n in GF(2⁴) with a = φ(2); a/0 is 0x80.
const INVA: [u8; 16] = {
    let mut t = [0x80u8; 16];
    let mut n = 1;
    while n < 16 {
        t[n] = phi_inv(gmul(PHI[2], ginv(PHI[n])));
        n += 1;
    }
    t
};

/// A lookup as [`Bytes16::lookup`] does it, at compile time.
const fn sw(t: &[u8; 16], i: u8) -> u8 {
    if i < 16 {
        t[i as usize]
    } else {
        0
    }
}

/// `(io, jo)` of the byte `y = i << 4 | k` (the nibble inversion, as [`invert`] computes it).
const fn nibble_inverse(y: u8) -> (u8, u8) {
    let (i, k) = (y >> 4, y & 15);
    let ak = INVA[k as usize];
    let j = i ^ k;
    let iak = sw(&INV, i) ^ ak;
    let jak = sw(&INV, j) ^ ak;
    (sw(&INV, iak) ^ j, sw(&INV, jak) ^ i)
}

/// The tables `U`, `T` with `(L⁻¹ y)⁻¹ = U[io] ⊕ T[jo]` for every byte `y` (a lookup at an index
/// ≥ 0x80 is 0), solved by propagating the 256 equations from the indices ≥ 0x80 (`io`, `jo`
/// are never 0: `U[0] = T[0] = 0`, unused). Compilation fails if they have no solution.
const UT: ([u8; 16], [u8; 16]) = {
    let (mut u, mut t) = ([0u8; 16], [0u8; 16]);
    let (mut ku, mut kt) = ([false; 16], [false; 16]);
    ku[0] = true;
    kt[0] = true;
    let mut pass = 0;
    while pass < 32 {
        let mut y = 0usize;
        while y < 256 {
            let (io, jo) = nibble_inverse(y as u8);
            let v = ginv(l_inv(y as u8));
            let u_known = io >= 0x80 || ku[io as usize];
            let t_known = jo >= 0x80 || kt[jo as usize];
            let uv = if io >= 0x80 { 0 } else { u[io as usize] };
            let tv = if jo >= 0x80 { 0 } else { t[jo as usize] };
            if u_known && t_known {
                assert!(
                    uv ^ tv == v,
                    "vperm: the nibble inversion has no output tables"
                );
            } else if u_known {
                t[jo as usize] = v ^ uv;
                kt[jo as usize] = true;
            } else if t_known {
                u[io as usize] = v ^ tv;
                ku[io as usize] = true;
            }
            y += 1;
        }
        pass += 1;
    }
    let mut n = 0;
    while n < 16 {
        assert!(ku[n] && kt[n], "vperm: output tables underdetermined");
        n += 1;
    }
    (u, t)
};

/// `[f(src[0]), …, f(src[15])]` at compile time.
macro_rules! map16 {
    ($src:expr, $f:ident) => {{
        let mut t = [0u8; 16];
        let mut n = 0;
        while n < 16 {
            t[n] = $f($src[n]);
            n += 1;
        }
        t
    }};
}

const fn sb1(x: u8) -> u8 {
    l(affine(x))
}
const fn sb2(x: u8) -> u8 {
    l(gmul(2, affine(x)))
}

/// The input transform `L` by nibbles: `L(x) = IPT_LO[x & 15] ⊕ IPT_HI[x >> 4]`.
const IPT_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut n = 0;
    while n < 16 {
        t[n] = l(n as u8);
        n += 1;
    }
    t
};
const IPT_HI: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut n = 0;
    while n < 16 {
        t[n] = l((n as u8) << 4);
        n += 1;
    }
    t
};
/// S-box output without its constant, in the `L` basis (`U` and `T` halves).
const SB1U: [u8; 16] = map16!(UT.0, sb1);
const SB1T: [u8; 16] = map16!(UT.1, sb1);
/// Twice that (for MixColumns), in the `L` basis.
const SB2U: [u8; 16] = map16!(UT.0, sb2);
const SB2T: [u8; 16] = map16!(UT.1, sb2);
/// S-box output without its constant, in the AES basis (last round, key schedule).
const SBOU: [u8; 16] = map16!(UT.0, affine);
const SBOT: [u8; 16] = map16!(UT.1, affine);

// ---- byte permutations (gather indices: result[p] = x[g[p]]) ----

type Perm = [u8; 16];

/// The permutation `p ↦ expr` at compile time.
macro_rules! perm {
    (|$p:ident| $e:expr) => {{
        let mut g = [0u8; 16];
        let mut $p = 0usize;
        while $p < 16 {
            g[$p] = ($e) as u8;
            $p += 1;
        }
        g
    }};
}

/// `then(a, b)`: gathering by `a`, then by `b`, is gathering by `then(a, b)`.
const fn then(a: &Perm, b: &Perm) -> Perm {
    let mut g = [0u8; 16];
    let mut p = 0;
    while p < 16 {
        g[p] = a[b[p] as usize];
        p += 1;
    }
    g
}

const fn inverse(a: &Perm) -> Perm {
    let mut g = [0u8; 16];
    let mut p = 0;
    while p < 16 {
        g[a[p] as usize] = p as u8;
        p += 1;
    }
    g
}

/// ShiftRows (byte `4c + r` is row r of column c).
const SR: Perm = perm!(|p| 4 * ((p / 4 + p % 4) % 4) + p % 4);
const SR_INV: Perm = inverse(&SR);
/// Row rotations inside each column: byte r ← byte r + 1 (resp. r + 3).
const ROT1: Perm = perm!(|p| 4 * (p / 4) + (p % 4 + 1) % 4);
const ROT3: Perm = perm!(|p| 4 * (p / 4) + (p % 4 + 3) % 4);

/// `G[r mod 4]`: the state after round r is stored gathered by `SR⁻ʳ`.
const G: [Perm; 4] = {
    let mut g = [[0u8; 16]; 4];
    g[0] = perm!(|p| p);
    let mut r = 1;
    while r < 4 {
        g[r] = then(&SR_INV, &g[r - 1]);
        r += 1;
    }
    g
};

/// The MixColumns rotations of round `r + 1` on a state stored by `G[r]`: the rotation
/// conjugated by the ShiftRows the storage skipped.
const fn conjugated(rot: &Perm, r: usize) -> Perm {
    then(
        &then(&then(&then(&inverse(&G[r]), &SR), rot), &SR_INV),
        &G[r],
    )
}
const R1: [Perm; 4] = [
    conjugated(&ROT1, 0),
    conjugated(&ROT1, 1),
    conjugated(&ROT1, 2),
    conjugated(&ROT1, 3),
];
const R3: [Perm; 4] = [
    conjugated(&ROT3, 0),
    conjugated(&ROT3, 1),
    conjugated(&ROT3, 2),
    conjugated(&ROT3, 3),
];
/// Undoes the storage permutation after round 10.
const FINAL: Perm = inverse(&G[10 % 4]);

// Key expansion: RotWord of word 3 into every word, and whole-word shifts (index 0x80 = zero).
const ROT_WORD: Perm = perm!(|p| 12 + (p + 1) % 4);
const SHL4: Perm = perm!(|p| if p < 4 { 0x80 } else { p - 4 });
const SHL8: Perm = perm!(|p| if p < 8 { 0x80 } else { p - 8 });
const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];

#[inline(always)]
fn c<B: Bytes16>(b: [u8; 16]) -> B {
    B::from_bytes(b)
}

/// `(io, jo)` of every byte (in the `L` basis).
#[inline(always)]
fn invert<B: Bytes16>(x: B) -> (B, B) {
    let (inv, inva) = (c::<B>(INV), c::<B>(INVA));
    let (i, k) = (x.hi(), x.lo());
    let ak = inva.lookup(k);
    let j = k.xor(i);
    let iak = inv.lookup(i).xor(ak);
    let jak = inv.lookup(j).xor(ak);
    (inv.lookup(iak).xor(j), inv.lookup(jak).xor(i))
}

#[inline(always)]
fn to_l<B: Bytes16>(x: B) -> B {
    c::<B>(IPT_LO)
        .lookup(x.lo())
        .xor(c::<B>(IPT_HI).lookup(x.hi()))
}

/// The AES S-box on every byte (AES basis in and out).
fn sub_bytes<B: Bytes16>(x: B) -> B {
    let (io, jo) = invert(to_l(x));
    c::<B>(SBOU)
        .lookup(io)
        .xor(c::<B>(SBOT).lookup(jo))
        .xor(c([0x63; 16]))
}

/// The round keys in the form the rounds add them: round 0 in the `L` basis, rounds 1–9 with the
/// S-box constant and in the `L` basis, round 10 with the constant; each gathered by `G[r mod 4]`.
pub(crate) type RoundKeys<B> = [B; 11];

/// AES-128 key expansion (the S-box by the same register lookups: constant time in the key).
pub(crate) fn key_schedule<B: Bytes16>(key: &[u8; 16]) -> RoundKeys<B> {
    let s63 = c::<B>([0x63; 16]);
    let mut rk = B::from_bytes(*key);
    let mut out = [B::default(); 11];
    out[0] = to_l(rk);
    for (r, &rc) in RCON.iter().enumerate() {
        let mut rcon = [0u8; 16];
        for w in 0..4 {
            rcon[4 * w] = rc;
        }
        let t = sub_bytes(rk).lookup(c(ROT_WORD)).xor(c(rcon));
        let mut p = rk.xor(rk.lookup(c(SHL4)));
        p = p.xor(p.lookup(c(SHL8)));
        rk = p.xor(t);
        let round = r + 1;
        let g = c::<B>(G[round % 4]);
        out[round] = if round < 10 {
            to_l(rk.xor(s63)).lookup(g)
        } else {
            rk.xor(s63).lookup(g)
        };
    }
    zeroize::Zeroize::zeroize(&mut rk);
    out
}

/// Blocks per call.
const N: usize = 8;

/// AES-128 on eight blocks (AES byte order in, AES byte order out).
#[inline(always)]
fn encrypt8<B: Bytes16>(k: &RoundKeys<B>, s: &mut [B; N]) {
    for x in s.iter_mut() {
        *x = to_l(*x).xor(k[0]);
    }
    let (u1, t1, u2, t2) = (c::<B>(SB1U), c::<B>(SB1T), c::<B>(SB2U), c::<B>(SB2T));
    for r in 1..10 {
        // Public, round-dependent permutations (loaded, not secret-indexed).
        let (r1, r3) = (c::<B>(R1[(r - 1) % 4]), c::<B>(R3[(r - 1) % 4]));
        for x in s.iter_mut() {
            let (io, jo) = invert(*x);
            let a = u1.lookup(io).xor(t1.lookup(jo));
            let a2 = u2.lookup(io).xor(t2.lookup(jo));
            // MixColumns: 2a ⊕ 3·rot1(a) ⊕ rot2(a) ⊕ rot3(a), as t = 2a ⊕ rot1(a),
            // t ⊕ rot3(a) ⊕ rot1(t).
            let t = a2.xor(a.lookup(r1));
            *x = t.xor(a.lookup(r3)).xor(t.lookup(r1)).xor(k[r]);
        }
    }
    let (uo, to, fin) = (c::<B>(SBOU), c::<B>(SBOT), c::<B>(FINAL));
    for x in s.iter_mut() {
        let (io, jo) = invert(*x);
        *x = uo.lookup(io).xor(to.lookup(jo)).xor(k[10]).lookup(fin);
    }
}

#[inline(always)]
fn load<B: Bytes16>(blocks: &[Block; N]) -> [B; N] {
    std::array::from_fn(|j| B::from_bytes(blocks[j].0))
}

#[inline(always)]
fn store<B: Bytes16>(s: &[B; N], blocks: &mut [Block; N]) {
    for (b, x) in blocks.iter_mut().zip(s) {
        b.0 = x.to_bytes();
    }
}

#[inline(never)]
fn encrypt_chunk<B: Bytes16>(k: &RoundKeys<B>, blocks: &mut [Block; N]) {
    let mut s = load(blocks);
    encrypt8(k, &mut s);
    store(&s, blocks);
}

/// π on every block, eight at a time (a ragged tail is padded).
pub(crate) fn encrypt_many<B: Bytes16>(k: &RoundKeys<B>, blocks: &mut [Block]) {
    in_batches::<N>(blocks, |_, _, batch| encrypt_chunk(k, batch));
}

/// `xs[j] ← TCCR(tweak(j), xs[j]) = π(π(x) ⊕ t) ⊕ π(x)`, eight blocks at a time.
pub(crate) fn tccr_many<B: Bytes16>(
    k: &RoundKeys<B>,
    xs: &mut [Block],
    tweak: impl Fn(usize) -> Block,
) {
    in_batches::<N>(xs, |first, n, x| {
        tccr8(k, x, &batch_tweaks::<N>(first, n, &tweak))
    });
}

/// `x[j] ← TCCR(t[j], x[j])` on eight blocks, π(x) kept in registers between the two
/// encryptions.
#[inline]
pub(crate) fn tccr8<B: Bytes16>(k: &RoundKeys<B>, x: &mut [Block; N], t: &[Block; N]) {
    let mut s = load::<B>(x);
    encrypt8(k, &mut s);
    let px = s;
    for (y, tw) in s.iter_mut().zip(t) {
        *y = y.xor(B::from_bytes(tw.0));
    }
    encrypt8(k, &mut s);
    for (y, p) in s.iter_mut().zip(&px) {
        *y = y.xor(*p);
    }
    store(&s, x);
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn sbox(x: u8) -> u8 {
        affine(ginv(x)) ^ 0x63
    }

    /// The derived tables compute the S-box (and its double in the `L` basis) on all 256 bytes.
    #[test]
    fn tables_compute_the_sbox() {
        assert_eq!(sbox(0), 0x63);
        assert_eq!(sbox(1), 0x7c);
        assert_eq!(sbox(0x53), 0xed);
        for x in 0..=255u8 {
            let (io, jo) = nibble_inverse(l(x));
            assert_eq!(sw(&UT.0, io) ^ sw(&UT.1, jo), ginv(x), "x={x}");
            assert_eq!(sw(&SBOU, io) ^ sw(&SBOT, jo) ^ 0x63, sbox(x));
            assert_eq!(sw(&SB1U, io) ^ sw(&SB1T, jo), l(sbox(x) ^ 0x63));
            assert_eq!(sw(&SB2U, io) ^ sw(&SB2T, jo), l(gmul(2, sbox(x) ^ 0x63)));
            assert_eq!(l_inv(l(x)), x);
            assert_eq!(
                IPT_LO[usize::from(x & 15)] ^ IPT_HI[usize::from(x >> 4)],
                l(x)
            );
            // Every lookup index is < 16 or ≥ 0x80 (where swizzle and relaxed swizzle agree).
            assert!(!(16..0x80).contains(&io));
            assert!(!(16..0x80).contains(&jo));
        }
    }

    /// The portable lookup against its definition, every index class.
    #[test]
    fn portable_lookup() {
        let t = Portable(std::array::from_fn(|p| p as u8 * 7 + 1));
        let idx = Portable([
            0, 15, 3, 0x80, 0x8f, 0xff, 7, 1, 2, 0x90, 14, 13, 12, 11, 10, 9,
        ]);
        for (&got, &i) in t.lookup(idx).0.iter().zip(&idx.0) {
            assert_eq!(got, if i < 16 { t.0[usize::from(i)] } else { 0 });
        }
    }

    /// FIPS-197 Appendix C.1 and the key expansion's last round key (Appendix A.1's key).
    #[test]
    fn fips197() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let k = key_schedule::<Portable>(&key);
        let mut b = [Block(std::array::from_fn(|i| (i as u8) * 0x11)); N];
        encrypt_chunk(&k, &mut b);
        let ct = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        assert!(b.iter().all(|x| x.0 == ct));
    }
}
