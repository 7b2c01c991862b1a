//! Bit-matrix transposition: IKNP's column-wise PRG outputs become per-transfer rows.

use cryptonas_crypto::Block;

/// `SWAP_MASKS[k]` selects the bit positions whose bit `k` is clear, for block size `1 << k`.
const SWAP_MASKS: [u128; 7] = [
    0x5555_5555_5555_5555_5555_5555_5555_5555,
    0x3333_3333_3333_3333_3333_3333_3333_3333,
    0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f,
    0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff,
    0x0000_ffff_0000_ffff_0000_ffff_0000_ffff,
    0x0000_0000_ffff_ffff_0000_0000_ffff_ffff,
    0x0000_0000_0000_0000_ffff_ffff_ffff_ffff,
];

/// Transposes a 128×128 bit matrix in place: afterwards bit `c` of `m[r]` is the former bit `r` of
/// `m[c]`.
///
/// Recursive block swaps (Eklundh): at block size `j` the top-right `j×j` block (rows with bit `j`
/// clear, columns with bit `j` set) is exchanged with the bottom-left one; 7 levels of 64 masked
/// word swaps, no data-dependent control flow.
pub fn transpose128(m: &mut [u128; 128]) {
    for level in (0..7).rev() {
        let j = 1usize << level;
        let mask = SWAP_MASKS[level];
        for k in 0..128 {
            if k & j == 0 {
                let t = ((m[k] >> j) ^ m[k + j]) & mask;
                m[k + j] ^= t;
                m[k] ^= t << j;
            }
        }
    }
}

/// Transposes tile `tile` (rows `128·tile ..`) of 128 column-major columns into `out` (128 rows):
/// column `i`'s word is `columns[i * stride + tile]`.
pub(crate) fn tile_to_rows(columns: &[u128], stride: usize, tile: usize, out: &mut [Block]) {
    let mut m = [0u128; 128];
    for (i, w) in m.iter_mut().enumerate() {
        *w = columns[i * stride + tile];
    }
    transpose128(&mut m);
    for (dst, w) in out.iter_mut().zip(m) {
        *dst = Block::from_u128(w);
    }
}

/// Turns 128 columns of `rows` bits each (column-major, `rows / 128` words per column, bit `r` of a
/// column at bit `r % 128` of word `r / 128`) into `rows` blocks whose bit `i` comes from column `i`.
///
/// `rows` must be a multiple of 128 and `columns.len() == rows` (internal invariant).
pub(crate) fn columns_to_rows(columns: &[u128], rows: usize) -> Vec<Block> {
    debug_assert_eq!(rows % 128, 0);
    debug_assert_eq!(columns.len(), rows);
    let col_words = rows / 128;
    let mut out = vec![Block::ZERO; rows];
    let fill = |(b, chunk): (usize, &mut [Block])| tile_to_rows(columns, col_words, b, chunk);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(128).enumerate().for_each(fill);
    }
    #[cfg(target_arch = "wasm32")]
    out.chunks_mut(128).enumerate().for_each(fill);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptonas_crypto::Csprng;

    #[test]
    fn transpose128_matches_definition_and_is_an_involution() {
        let mut rng = Csprng::from_seed([9; 32]);
        let mut m = [0u128; 128];
        for w in m.iter_mut() {
            *w = rng.block().to_u128();
        }
        let orig = m;
        transpose128(&mut m);
        for (r, row) in m.iter().enumerate() {
            for (c, col) in orig.iter().enumerate() {
                assert_eq!(row >> c & 1, col >> r & 1, "({r},{c})");
            }
        }
        transpose128(&mut m);
        assert_eq!(m, orig);
    }

    #[test]
    fn columns_to_rows_matches_definition() {
        let rows = 384;
        let mut rng = Csprng::from_seed([10; 32]);
        let cols: Vec<u128> = rng.blocks(rows).iter().map(|b| b.to_u128()).collect();
        let out = columns_to_rows(&cols, rows);
        for (r, row) in out.iter().enumerate() {
            for c in 0..128 {
                let bit = cols[c * rows / 128 + r / 128] >> (r % 128) & 1;
                assert_eq!(row.to_u128() >> c & 1, bit);
            }
        }
    }
}
