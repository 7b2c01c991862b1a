//! The integer convolution of the fixed-point contract (docs/ring-spec.md), as the HE layer sees it:
//! the shared definition of `cryptonas-conv` plus what only packing needs (centred weights, a
//! reference that also checks its inputs are ring elements).

use crate::error::HeError;
pub use cryptonas_conv::IntConv;
pub(crate) use cryptonas_conv::{ring_mask, ConvError};

impl From<ConvError> for HeError {
    fn from(e: ConvError) -> Self {
        match e {
            ConvError::Geometry { reason } => HeError::Geometry { reason },
            ConvError::Length {
                what,
                expected,
                got,
            } => HeError::Length {
                what,
                expected,
                got,
            },
            ConvError::RingBits { k } => HeError::UnsupportedRing { k },
        }
    }
}

/// Centred representative of `w mod 2^k` in `[−2^(k−1), 2^(k−1))`: the smallest-norm weight that
/// acts identically on Z_2^k (what the HE product wants: noise grows with ‖w‖₁).
pub(crate) fn centre_weight(w: i64, k: u32) -> i64 {
    if k >= 64 {
        return w;
    }
    let shift = 64 - k;
    ((w as u64) << shift) as i64 >> shift
}

/// Plaintext reference of [`IntConv`] over Z_2^k (bit-exact definition of docs/ring-spec.md), refusing
/// inputs that are not ring elements (the HE layer encodes them as plaintext coefficients).
pub fn conv_ring(
    conv: &IntConv,
    weights: &[i64],
    input: &[u64],
    k: u32,
) -> Result<Vec<u64>, HeError> {
    // Geometry, ring size and lengths are checked (in that order) by the shared reference first.
    let out = cryptonas_conv::conv_ring(conv, weights, input, k)?;
    let mask = ring_mask(k);
    if let Some(index) = input.iter().position(|&v| v & !mask != 0) {
        return Err(HeError::RingValue {
            what: "input",
            index,
            k,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_weight_matches_ring() {
        for k in [8u32, 13, 32, 63, 64] {
            for w in [
                -300i64,
                -1,
                0,
                1,
                127,
                128,
                255,
                1 << 40,
                i64::MIN,
                i64::MAX,
            ] {
                let c = centre_weight(w, k);
                assert_eq!((c as u64) & ring_mask(k), (w as u64) & ring_mask(k));
                if k < 64 {
                    assert!(c >= -(1i64 << (k - 1)) && c < (1i64 << (k - 1)));
                }
            }
        }
    }

    #[test]
    fn conv_ring_checks_ring_values() {
        let conv = IntConv {
            in_channels: 1,
            out_channels: 1,
            in_height: 2,
            in_width: 2,
            kernel_h: 2,
            kernel_w: 2,
            stride: 1,
            padding: 0,
        };
        assert_eq!(
            conv_ring(&conv, &[1, 1, 1, 1], &[1, 2, 3, 4], 8),
            Ok(vec![10])
        );
        assert!(matches!(
            conv_ring(&conv, &[1, 1, 1, 1], &[1, 256, 3, 4], 8),
            Err(HeError::RingValue { index: 1, .. })
        ));
        assert!(matches!(
            conv_ring(&conv, &[1, 1, 1], &[1, 2, 3, 4], 8),
            Err(HeError::Length {
                what: "weights",
                ..
            })
        ));
    }

    #[test]
    fn conv_ring_small_example() {
        // 1 channel 3x3 input, 2x2 kernel of ones, stride 1, no padding: sums of 2x2 windows.
        let conv = IntConv {
            in_channels: 1,
            out_channels: 1,
            in_height: 3,
            in_width: 3,
            kernel_h: 2,
            kernel_w: 2,
            stride: 1,
            padding: 0,
        };
        let x: Vec<u64> = (1..=9).collect();
        let out = conv_ring(&conv, &[1, 1, 1, 1], &x, 8).unwrap();
        assert_eq!(out, vec![12, 16, 24, 28]);
        // Negative weights wrap mod 2^8.
        let out = conv_ring(&conv, &[-1, 0, 0, 0], &x, 8).unwrap();
        assert_eq!(out, vec![255, 254, 252, 251]);
    }

    #[test]
    fn geometry_errors() {
        let mut conv = IntConv {
            in_channels: 1,
            out_channels: 1,
            in_height: 3,
            in_width: 3,
            kernel_h: 5,
            kernel_w: 5,
            stride: 1,
            padding: 0,
        };
        assert!(matches!(
            conv.check().map_err(HeError::from),
            Err(HeError::Geometry { .. })
        ));
        conv.padding = 1;
        assert!(conv.check().is_ok());
        conv.stride = 0;
        assert!(matches!(
            conv.check().map_err(HeError::from),
            Err(HeError::Geometry { .. })
        ));
    }
}
