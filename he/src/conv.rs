//! The integer convolution of the fixed-point contract (ring-spec.md) and its plaintext reference.

use crate::error::HeError;

/// Largest single dimension accepted (keeps every index product far from overflow).
const MAX_DIM: usize = 1 << 16;
/// Largest tensor (input, weight or output) accepted, in elements.
const MAX_ELEMS: usize = 1 << 28;

/// Geometry of one integer convolution, identical to the model crate's `IntConv`.
///
/// `out[o][i][j] = Σ_{c,u,v} W[o][c][u][v] · x[c][i·S + u − P][j·S + v − P] (mod 2^k)`, with `x = 0`
/// outside the input; weights OIHW, input CHW, output O × H' × W' where
/// `H' = (H + 2P − KH) / S + 1`. A fully connected layer is the case `KH = H, KW = W, P = 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntConv {
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Input height H.
    pub in_height: usize,
    /// Input width W.
    pub in_width: usize,
    /// Kernel height KH.
    pub kernel_h: usize,
    /// Kernel width KW.
    pub kernel_w: usize,
    /// Stride S (both axes).
    pub stride: usize,
    /// Zero padding P (all four sides).
    pub padding: usize,
}

impl IntConv {
    /// Checks that the geometry is meaningful and of a sane size.
    pub fn validate(&self) -> Result<(), HeError> {
        let dims = [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("in_height", self.in_height),
            ("in_width", self.in_width),
            ("kernel_h", self.kernel_h),
            ("kernel_w", self.kernel_w),
            ("stride", self.stride),
        ];
        for (name, d) in dims {
            if d == 0 || d > MAX_DIM {
                return Err(HeError::Geometry {
                    reason: format!("{name} = {d} must be in 1..={MAX_DIM}"),
                });
            }
        }
        if self.padding > MAX_DIM {
            return Err(HeError::Geometry {
                reason: format!("padding = {} exceeds {MAX_DIM}", self.padding),
            });
        }
        if self.kernel_h > self.in_height + 2 * self.padding
            || self.kernel_w > self.in_width + 2 * self.padding
        {
            return Err(HeError::Geometry {
                reason: format!(
                    "kernel {}x{} larger than padded input {}x{}",
                    self.kernel_h,
                    self.kernel_w,
                    self.in_height + 2 * self.padding,
                    self.in_width + 2 * self.padding
                ),
            });
        }
        let sizes = [
            self.in_channels
                .saturating_mul(self.in_height)
                .saturating_mul(self.in_width),
            self.out_channels
                .saturating_mul(self.in_channels)
                .saturating_mul(self.kernel_h)
                .saturating_mul(self.kernel_w),
            self.out_channels
                .saturating_mul(self.out_height())
                .saturating_mul(self.out_width()),
        ];
        if sizes.iter().any(|&s| s > MAX_ELEMS) {
            return Err(HeError::Geometry {
                reason: format!("tensor larger than {MAX_ELEMS} elements"),
            });
        }
        Ok(())
    }

    /// Output height H'.
    pub fn out_height(&self) -> usize {
        (self.in_height + 2 * self.padding).saturating_sub(self.kernel_h) / self.stride.max(1) + 1
    }

    /// Output width W'.
    pub fn out_width(&self) -> usize {
        (self.in_width + 2 * self.padding).saturating_sub(self.kernel_w) / self.stride.max(1) + 1
    }

    /// Number of input elements C·H·W.
    pub fn input_len(&self) -> usize {
        self.in_channels * self.in_height * self.in_width
    }

    /// Number of weights O·C·KH·KW.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Number of output elements O·H'·W'.
    pub fn output_len(&self) -> usize {
        self.out_channels * self.out_height() * self.out_width()
    }

    /// Output shape (O, H', W').
    pub fn output_shape(&self) -> (usize, usize, usize) {
        (self.out_channels, self.out_height(), self.out_width())
    }
}

/// Mask with the low `k` bits set (`k` in 1..=64).
pub(crate) fn ring_mask(k: u32) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
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

/// Plaintext reference of [`IntConv`] over Z_2^k (bit-exact definition of ring-spec.md).
///
/// Weights are reduced mod 2^k (wrapping u64 arithmetic); inputs must already be ring elements.
pub fn conv_ring(
    conv: &IntConv,
    weights: &[i64],
    input: &[u64],
    k: u32,
) -> Result<Vec<u64>, HeError> {
    conv.validate()?;
    if !(1..=64).contains(&k) {
        return Err(HeError::UnsupportedRing { k });
    }
    if weights.len() != conv.weight_len() {
        return Err(HeError::Length {
            what: "weights",
            expected: conv.weight_len(),
            got: weights.len(),
        });
    }
    if input.len() != conv.input_len() {
        return Err(HeError::Length {
            what: "input",
            expected: conv.input_len(),
            got: input.len(),
        });
    }
    let mask = ring_mask(k);
    if let Some(index) = input.iter().position(|&v| v & !mask != 0) {
        return Err(HeError::RingValue {
            what: "input",
            index,
            k,
        });
    }
    let (o_n, oh, ow) = conv.output_shape();
    let (c_n, h, w) = (conv.in_channels, conv.in_height, conv.in_width);
    let (kh, kw, s, p) = (conv.kernel_h, conv.kernel_w, conv.stride, conv.padding);
    let mut out = vec![0u64; o_n * oh * ow];
    for o in 0..o_n {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = 0u64;
                for c in 0..c_n {
                    for u in 0..kh {
                        let y = (i * s + u).wrapping_sub(p);
                        if y >= h {
                            continue;
                        }
                        for v in 0..kw {
                            let x = (j * s + v).wrapping_sub(p);
                            if x >= w {
                                continue;
                            }
                            let wt = weights[((o * c_n + c) * kh + u) * kw + v] as u64;
                            acc = acc.wrapping_add(wt.wrapping_mul(input[(c * h + y) * w + x]));
                        }
                    }
                }
                out[(o * oh + i) * ow + j] = acc & mask;
            }
        }
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
        assert!(matches!(conv.validate(), Err(HeError::Geometry { .. })));
        conv.padding = 1;
        assert!(conv.validate().is_ok());
        conv.stride = 0;
        assert!(matches!(conv.validate(), Err(HeError::Geometry { .. })));
    }
}
