#![doc = include_str!("../README.md")]

use zeroize::Zeroize;

/// Why a ring value or vector was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// k outside [1, 64].
    #[error("ring width {0} outside [1, 64]")]
    Width(u32),
    /// A value with bits at or above k.
    #[error("value {value:#x} does not fit {k} bits")]
    TooWide {
        /// The value.
        value: u64,
        /// The ring width.
        k: u32,
    },
    /// Operands or encodings of different sizes.
    #[error("expected {expected} {what}, got {got}")]
    Length {
        /// Elements or bytes.
        what: &'static str,
        /// What was required.
        expected: usize,
        /// What came.
        got: usize,
    },
    /// Operands of different widths.
    #[error("operands of widths {0} and {1}")]
    WidthMismatch(u32, u32),
}

/// The width k of the ring Z_2^k, k ∈ [1, 64].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingWidth(u32);

impl RingWidth {
    /// Checks 1 ≤ k ≤ 64.
    pub fn new(k: u32) -> Result<RingWidth, RingError> {
        if (1..=64).contains(&k) {
            Ok(RingWidth(k))
        } else {
            Err(RingError::Width(k))
        }
    }

    /// k.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// `2^k − 1`: the mask that reduces mod 2^k.
    pub fn mask(self) -> u64 {
        mask(self.0)
    }

    /// Bytes per element on the wire: ⌈k/8⌉.
    pub fn wire_bytes(self) -> usize {
        self.0.div_ceil(8) as usize
    }

    /// The two's-complement reading of `v mod 2^k`, in [−2^(k−1), 2^(k−1)).
    pub fn to_signed(self, v: u64) -> i64 {
        let k = self.0;
        let v = v & self.mask();
        if k < 64 && v >> (k - 1) == 1 {
            (v as i64)
                .wrapping_sub(1i64 << (k - 1))
                .wrapping_sub(1i64 << (k - 1))
        } else {
            v as i64
        }
    }

    /// `v mod 2^k`.
    pub fn from_signed(self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }

    /// Checks that `v < 2^k`.
    pub fn check(self, v: u64) -> Result<u64, RingError> {
        if v & !self.mask() == 0 {
            Ok(v)
        } else {
            Err(RingError::TooWide {
                value: v,
                k: self.0,
            })
        }
    }
}

impl std::fmt::Display for RingWidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Z_2^{}", self.0)
    }
}

/// `2^k − 1` for k ∈ [1, 64]; k ≥ 64 gives all ones, k = 0 gives 0 (for callers that have not
/// validated k; prefer [`RingWidth::mask`]).
pub fn mask(k: u32) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
    }
}

/// A vector over Z_2^k that knows its k, wiped on drop.
///
/// # Invariant
/// Every element is below 2^k.
#[derive(Clone, PartialEq, Eq)]
pub struct RingVec {
    width: RingWidth,
    values: Vec<u64>,
}

impl Drop for RingVec {
    fn drop(&mut self) {
        self.values.zeroize();
    }
}

impl std::fmt::Debug for RingVec {
    /// Width and length only: ring vectors are usually masks or shares.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RingVec({} × {})", self.values.len(), self.width)
    }
}

impl RingVec {
    /// `n` zeros.
    pub fn zeros(width: RingWidth, n: usize) -> RingVec {
        RingVec {
            width,
            values: vec![0; n],
        }
    }

    /// Checks that every value fits k bits.
    pub fn from_values(width: RingWidth, values: Vec<u64>) -> Result<RingVec, RingError> {
        let v = RingVec { width, values };
        for &x in &v.values {
            width.check(x)?;
        }
        Ok(v)
    }

    /// Values reduced mod 2^k (for results of wrapping arithmetic done elsewhere).
    pub fn reduce(width: RingWidth, mut values: Vec<u64>) -> RingVec {
        let m = width.mask();
        values.iter_mut().for_each(|v| *v &= m);
        RingVec { width, values }
    }

    /// Signed integers mod 2^k.
    pub fn from_signed(width: RingWidth, values: &[i64]) -> RingVec {
        RingVec {
            width,
            values: values.iter().map(|&v| width.from_signed(v)).collect(),
        }
    }

    /// `n` uniform elements from `next_u64` (a CSPRNG's output: masks and re-masks must be
    /// uniform, and they are, since every k low bits of a uniform u64 are).
    pub fn random(width: RingWidth, n: usize, mut next_u64: impl FnMut() -> u64) -> RingVec {
        let m = width.mask();
        RingVec {
            width,
            values: (0..n).map(|_| next_u64() & m).collect(),
        }
    }

    /// The ring.
    pub fn width(&self) -> RingWidth {
        self.width
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The elements, each below 2^k.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// Elements `range` as a new vector.
    pub fn slice(&self, range: std::ops::Range<usize>) -> RingVec {
        RingVec {
            width: self.width,
            values: self.values[range].to_vec(),
        }
    }

    /// Two's-complement readings.
    pub fn to_signed(&self) -> Vec<i64> {
        self.values
            .iter()
            .map(|&v| self.width.to_signed(v))
            .collect()
    }

    fn same_shape(&self, other: &RingVec) -> Result<(), RingError> {
        if self.width != other.width {
            return Err(RingError::WidthMismatch(self.width.0, other.width.0));
        }
        if self.len() != other.len() {
            return Err(RingError::Length {
                what: "elements",
                expected: self.len(),
                got: other.len(),
            });
        }
        Ok(())
    }

    /// `self + other mod 2^k`.
    pub fn add(&self, other: &RingVec) -> Result<RingVec, RingError> {
        let mut out = self.clone();
        out.add_assign(other)?;
        Ok(out)
    }

    /// `self ← self + other mod 2^k`.
    pub fn add_assign(&mut self, other: &RingVec) -> Result<(), RingError> {
        self.same_shape(other)?;
        let m = self.width.mask();
        self.values
            .iter_mut()
            .zip(&other.values)
            .for_each(|(x, y)| *x = x.wrapping_add(*y) & m);
        Ok(())
    }

    /// `self − other mod 2^k`.
    pub fn sub(&self, other: &RingVec) -> Result<RingVec, RingError> {
        self.same_shape(other)?;
        let m = self.width.mask();
        Ok(RingVec {
            width: self.width,
            values: self
                .values
                .iter()
                .zip(&other.values)
                .map(|(x, y)| x.wrapping_sub(*y) & m)
                .collect(),
        })
    }

    /// `self ← self + c mod 2^k` for every element.
    pub fn add_scalar(&mut self, c: u64) {
        let m = self.width.mask();
        self.values
            .iter_mut()
            .for_each(|v| *v = v.wrapping_add(c) & m);
    }

    /// Appends `other`'s elements.
    pub fn extend(&mut self, other: &RingVec) -> Result<(), RingError> {
        if self.width != other.width {
            return Err(RingError::WidthMismatch(self.width.0, other.width.0));
        }
        self.values.extend_from_slice(&other.values);
        Ok(())
    }

    /// Little-endian bits of every element, k per element (the order of the garbled circuits'
    /// input wires), wiped on drop.
    pub fn bits(&self) -> zeroize::Zeroizing<Vec<bool>> {
        self.reduced_bits(self.width)
    }

    /// Little-endian bits of every element reduced mod 2^k' (k' ≤ k: a share of x mod 2^k is a
    /// share of x mod 2^k', since 2^k' divides 2^k), k' per element, wiped on drop. A k' > k
    /// is taken as k.
    pub fn reduced_bits(&self, narrow: RingWidth) -> zeroize::Zeroizing<Vec<bool>> {
        let k = narrow.0.min(self.width.0);
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(self.len() * k as usize));
        for &v in &self.values {
            out.extend((0..k).map(|i| (v >> i) & 1 == 1));
        }
        out
    }

    /// The wire format: ⌈k/8⌉ little-endian bytes per element.
    pub fn pack(&self) -> Vec<u8> {
        let w = self.width.wire_bytes();
        let mut out = Vec::with_capacity(self.len() * w);
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes()[..w]);
        }
        out
    }

    /// Reads exactly `n` elements of [`RingVec::pack`]'s format; refuses a wrong length or an
    /// element of k bits or more.
    pub fn unpack(width: RingWidth, bytes: &[u8], n: usize) -> Result<RingVec, RingError> {
        let w = width.wire_bytes();
        let expected = n.saturating_mul(w);
        if bytes.len() != expected {
            return Err(RingError::Length {
                what: "bytes",
                expected,
                got: bytes.len(),
            });
        }
        let values = bytes
            .chunks_exact(w)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                width.check(u64::from_le_bytes(b))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        Ok(RingVec { width, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitmix(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Shares of x mod 2^32 reduced mod 2^k' are shares of x mod 2^k', bit for bit.
    #[test]
    fn reduced_shares_still_sum_to_the_value_mod_the_narrow_ring() {
        let mut seed = 3;
        let k = RingWidth::new(32).unwrap();
        let x: Vec<u64> = (0..200).map(|_| splitmix(&mut seed) & k.mask()).collect();
        let a = RingVec::random(k, x.len(), || splitmix(&mut seed));
        let b = RingVec::from_values(k, x.clone()).unwrap().sub(&a).unwrap();
        for narrow in [1u32, 8, 17, 23, 31, 32] {
            let w = RingWidth::new(narrow).unwrap();
            let n = narrow as usize;
            let (ab, bb) = (a.reduced_bits(w), b.reduced_bits(w));
            assert_eq!(ab.len(), x.len() * n);
            let word = |bits: &[bool]| -> u64 {
                bits.iter()
                    .enumerate()
                    .map(|(i, &b)| u64::from(b) << i)
                    .sum()
            };
            for (i, &v) in x.iter().enumerate() {
                let (sa, sb) = (word(&ab[i * n..][..n]), word(&bb[i * n..][..n]));
                assert_eq!(
                    sa.wrapping_add(sb) & w.mask(),
                    v & w.mask(),
                    "k' = {narrow}"
                );
            }
        }
        assert_eq!(a.reduced_bits(RingWidth::new(40).unwrap()), a.bits());
    }

    #[test]
    fn widths_are_validated() {
        assert!(RingWidth::new(0).is_err());
        assert!(RingWidth::new(65).is_err());
        assert_eq!(RingWidth::new(64).unwrap().mask(), u64::MAX);
        assert_eq!(RingWidth::new(13).unwrap().wire_bytes(), 2);
    }

    #[test]
    fn ring_axioms_and_signed_reading_for_every_width() {
        let mut seed = 7;
        for k in 1..=64 {
            let w = RingWidth::new(k).unwrap();
            let a = RingVec::random(w, 50, || splitmix(&mut seed));
            let b = RingVec::random(w, 50, || splitmix(&mut seed));
            let c = RingVec::random(w, 50, || splitmix(&mut seed));
            // (a + b) − b = a; (a + b) + c = a + (b + c); a + b = b + a.
            assert_eq!(a.add(&b).unwrap().sub(&b).unwrap(), a);
            assert_eq!(
                a.add(&b).unwrap().add(&c).unwrap(),
                a.add(&b.add(&c).unwrap()).unwrap()
            );
            assert_eq!(a.add(&b).unwrap(), b.add(&a).unwrap());
            // The signed reading round-trips and lies in [−2^(k−1), 2^(k−1)).
            for &v in a.values() {
                let s = w.to_signed(v);
                assert_eq!(w.from_signed(s), v);
                if k < 64 {
                    assert!(
                        s >= -(1i64 << (k - 1)) && s < (1i64 << (k - 1)),
                        "k {k}: {s}"
                    );
                }
            }
            // Wire format.
            let bytes = a.pack();
            assert_eq!(bytes.len(), 50 * w.wire_bytes());
            assert_eq!(RingVec::unpack(w, &bytes, 50).unwrap(), a);
            assert!(RingVec::unpack(w, &bytes[1..], 50).is_err());
            // Bits, little-endian per element.
            let bits = a.bits();
            assert_eq!(bits.len(), 50 * k as usize);
            let back: u64 = (0..k).map(|i| (bits[i as usize] as u64) << i).sum();
            assert_eq!(back, a.values()[0]);
        }
    }

    #[test]
    fn mismatches_and_overflows_are_errors() {
        let w8 = RingWidth::new(8).unwrap();
        let w13 = RingWidth::new(13).unwrap();
        assert!(RingVec::from_values(w8, vec![256]).is_err());
        assert!(
            RingVec::unpack(w13, &[0xff, 0xff], 1).is_err(),
            "top 3 bits set"
        );
        let a = RingVec::zeros(w8, 2);
        assert!(a.add(&RingVec::zeros(w13, 2)).is_err());
        assert!(a.sub(&RingVec::zeros(w8, 3)).is_err());
        assert_eq!(
            RingVec::from_signed(w8, &[5, 0])
                .sub(&RingVec::from_signed(w8, &[7, 1]))
                .unwrap()
                .values(),
            &[254, 255]
        );
    }
}
