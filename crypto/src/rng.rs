//! Cryptographically secure randomness: ChaCha12 seeded by the OS (or the browser's
//! `crypto.getRandomValues` through getrandom's `wasm_js` backend).

use crate::Block;
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

/// The OS refused to give entropy.
#[derive(Debug)]
pub struct RngError(pub getrandom::Error);

impl std::fmt::Display for RngError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no entropy from the operating system: {}", self.0)
    }
}

impl std::error::Error for RngError {}

/// The only randomness source of the protocol crates.
///
/// `Debug` does not print the state.
pub struct Csprng(ChaCha12Rng);

impl Csprng {
    /// A generator seeded with 32 fresh bytes from the OS.
    pub fn from_entropy() -> Result<Self, RngError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(RngError)?;
        Ok(Csprng(ChaCha12Rng::from_seed(seed)))
    }

    /// A generator from an explicit seed: for tests and for PRGs expanded from shared seeds (OT).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Csprng(ChaCha12Rng::from_seed(seed))
    }

    /// A uniformly random block.
    pub fn block(&mut self) -> Block {
        let mut b = [0u8; 16];
        self.0.fill_bytes(&mut b);
        Block(b)
    }

    /// `n` uniformly random blocks.
    pub fn blocks(&mut self, n: usize) -> Vec<Block> {
        let mut v = vec![Block::ZERO; n];
        self.fill_blocks(&mut v);
        v
    }

    /// Fills `dst` with the stream's next blocks (the same bytes as [`Csprng::blocks`]).
    pub fn fill_blocks(&mut self, dst: &mut [Block]) {
        self.0.fill_bytes(bytemuck::cast_slice_mut(dst));
    }

    /// Moves to the `index`-th 16-byte block of the stream (from its start), so that pieces of one
    /// long stream can be generated apart, e.g. a chunk at a time or on several threads.
    pub fn seek_block(&mut self, index: u64) {
        self.seek_word(u128::from(index) * 4);
    }

    /// The stream position, in 32-bit words from its start (what [`Csprng::seek_word`] takes).
    pub fn word_position(&self) -> u128 {
        self.0.get_word_pos()
    }

    /// Moves to 32-bit word `position` of the stream: output drawn again from a position is the
    /// same bytes (a PRG's output can be regenerated instead of stored).
    pub fn seek_word(&mut self, position: u128) {
        self.0.set_word_pos(position);
    }

    /// A uniformly random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniformly random bool.
    pub fn bool(&mut self) -> bool {
        self.0.next_u32() & 1 == 1
    }

    /// A fresh 32-byte seed (for child generators, e.g. one per thread).
    pub fn seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.0.fill_bytes(&mut s);
        s
    }
}

/// `rand_chacha` offers no `Zeroize`, so the key and buffered output are overwritten with a
/// zero-seeded generator when a generator goes away (the OT extension's PRGs are seeded with base-OT
/// keys); `black_box` keeps the store from being optimised out as dead.
impl Drop for Csprng {
    fn drop(&mut self) {
        self.0 = ChaCha12Rng::from_seed([0; 32]);
        std::hint::black_box(&mut self.0);
    }
}

impl std::fmt::Debug for Csprng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csprng(..)")
    }
}

impl RngCore for Csprng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl rand_core::CryptoRng for Csprng {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeking gives the stream's bytes at that place, from any position (unaligned included).
    #[test]
    fn seeking_regenerates_the_stream() {
        let mut a = Csprng::from_seed([3; 32]);
        let whole = a.blocks(300);
        let mut b = Csprng::from_seed([3; 32]);
        b.seek_block(123);
        assert_eq!(b.blocks(100), whole[123..223]);
        assert_eq!(b.word_position(), 223 * 4);
        let _ = b.u64(); // two words: not on a block boundary
        let at = b.word_position();
        let next = b.block();
        b.seek_word(at);
        assert_eq!(b.block(), next);
        b.seek_block(0);
        assert_eq!(b.blocks(300), whole);
    }

    #[test]
    fn entropy_and_seeds() {
        let mut a = Csprng::from_entropy().unwrap();
        let mut b = Csprng::from_entropy().unwrap();
        assert_ne!(a.block(), b.block());
        let mut c = Csprng::from_seed([7; 32]);
        let mut d = Csprng::from_seed([7; 32]);
        assert_eq!(c.blocks(5), d.blocks(5));
    }
}
