//! Fixed-key AES and the correlation-robust hashes built on it.
//!
//! Guo, Katz, Wang, Yu: "Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers"
//! (IEEE S&P 2020). With π = AES under a public fixed key:
//! - `CR(x)    = π(x) ⊕ x`                       (§7.1, correlation robust)
//! - `CCR(x)   = π(σ(x)) ⊕ σ(x)`, σ(a‖b) = (a⊕b)‖a  (§7.2, circular correlation robust)
//! - `TCCR(i,x) = π(π(x) ⊕ i) ⊕ π(x)`           (§7.3, tweakable CCR: the half-gates hash)

use crate::Block;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::Aes128;

/// The public fixed AES key (the first 16 bytes of SHA-256("CryptoNAS fixed-key AES")).
pub const FIXED_KEY: [u8; 16] = [
    0x6c, 0x4d, 0x1e, 0x0a, 0x93, 0x27, 0x5b, 0xf1, 0x08, 0xc4, 0x3e, 0x77, 0xa2, 0x19, 0xd5, 0x60,
];

/// AES-128 with a public key, used as a random permutation π.
#[derive(Clone)]
pub struct FixedKeyAes {
    cipher: Aes128,
}

impl Default for FixedKeyAes {
    fn default() -> Self {
        Self::new(FIXED_KEY)
    }
}

impl FixedKeyAes {
    /// π under `key` (public).
    pub fn new(key: [u8; 16]) -> Self {
        FixedKeyAes {
            cipher: Aes128::new(&Array(key)),
        }
    }

    /// π(x).
    #[inline]
    pub fn permute(&self, x: Block) -> Block {
        let mut a = Array(x.0);
        self.cipher.encrypt_block(&mut a);
        Block(a.0)
    }

    /// π applied in place to every block (wide batches let AES-NI pipeline 8 blocks at once).
    #[inline]
    pub fn permute_many(&self, blocks: &mut [Block]) {
        let raw: &mut [[u8; 16]] = bytemuck::cast_slice_mut(blocks);
        self.cipher
            .encrypt_blocks(Array::cast_slice_from_core_mut(raw));
    }

    /// `CR(x) = π(x) ⊕ x`.
    #[inline]
    pub fn cr(&self, x: Block) -> Block {
        self.permute(x) ^ x
    }

    /// `CCR(x) = π(σ(x)) ⊕ σ(x)` with the orthomorphism σ(a‖b) = (a⊕b)‖a on 64-bit halves.
    #[inline]
    pub fn ccr(&self, x: Block) -> Block {
        let s = sigma(x);
        self.permute(s) ^ s
    }

    /// `TCCR(i, x) = π(π(x) ⊕ i) ⊕ π(x)`: the tweakable circular-correlation-robust hash.
    #[inline]
    pub fn tccr(&self, tweak: Block, x: Block) -> Block {
        let px = self.permute(x);
        self.permute(px ^ tweak) ^ px
    }

    /// `xs[j] ← TCCR(tweaks[j], xs[j])` for every j, in two wide AES passes.
    ///
    /// # Panics
    /// If the slices differ in length (a programming error, not an input error).
    pub fn tccr_many(&self, tweaks: &[Block], xs: &mut [Block]) {
        assert_eq!(tweaks.len(), xs.len(), "tccr_many: one tweak per block");
        self.permute_many(xs);
        let mut second: Vec<Block> = xs.iter().zip(tweaks).map(|(p, t)| *p ^ *t).collect();
        self.permute_many(&mut second);
        for (x, s) in xs.iter_mut().zip(second) {
            *x ^= s;
        }
    }
}

/// σ(a‖b) = (a⊕b)‖a, where a is the high and b the low 64-bit half: a linear orthomorphism.
#[inline]
fn sigma(x: Block) -> Block {
    let v = x.to_u128();
    let hi = v >> 64;
    let lo = v & u128::from(u64::MAX);
    Block::from_u128(((hi ^ lo) << 64) | hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS-197 Appendix C.1 known-answer vector for AES-128.
    #[test]
    fn aes128_fips197_vector() {
        let key = [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f,
        ];
        let pt = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let ct = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        let pi = FixedKeyAes::new(key);
        assert_eq!(pi.permute(Block(pt)), Block(ct));
        let mut many = [Block(pt); 9];
        pi.permute_many(&mut many);
        assert!(many.iter().all(|b| *b == Block(ct)));
    }

    #[test]
    fn tccr_matches_definition_and_batch() {
        let pi = FixedKeyAes::default();
        let x = Block::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let i = Block::from_u128(42);
        let expect = pi.permute(pi.permute(x) ^ i) ^ pi.permute(x);
        assert_eq!(pi.tccr(i, x), expect);
        // Different tweaks give unrelated outputs.
        assert_ne!(pi.tccr(Block::from_u128(43), x), expect);
        let tweaks: Vec<Block> = (0..37u128).map(Block::from_u128).collect();
        let mut xs: Vec<Block> = (0..37u128).map(|j| Block::from_u128(j * 7919)).collect();
        let single: Vec<Block> = xs
            .iter()
            .zip(&tweaks)
            .map(|(x, t)| pi.tccr(*t, *x))
            .collect();
        pi.tccr_many(&tweaks, &mut xs);
        assert_eq!(xs, single);
    }

    #[test]
    fn sigma_is_linear_orthomorphism() {
        let a = Block::from_u128(0xffff_0000_1234_5678_9abc_def0_0f0f_f0f0);
        let b = Block::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);
        assert_eq!(sigma(a ^ b), sigma(a) ^ sigma(b));
        // σ(x) ⊕ x is also a permutation: check it is not the identity on a sample.
        assert_ne!(sigma(a) ^ a, Block::ZERO);
        let pi = FixedKeyAes::default();
        assert_eq!(pi.ccr(a), pi.permute(sigma(a)) ^ sigma(a));
        assert_eq!(pi.cr(a), pi.permute(a) ^ a);
    }
}
