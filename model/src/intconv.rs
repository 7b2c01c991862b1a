//! The integer convolution of ring-spec.md — the only linear primitive the HE layer implements —
//! with its reference evaluation in Z_2^k ([`conv_ring`]) and in f64 ([`conv_f64`]).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Geometry of one convolution: input `C × H × W` (CHW), weights `O × C × KH × KW` (OIHW),
/// symmetric zero padding P, stride S; output `O × H' × W'` with `H' = (H + 2P − KH) / S + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Zero padding P (each side, both axes).
    pub padding: usize,
}

impl IntConv {
    /// Output height H'.
    pub fn out_height(&self) -> usize {
        (self.in_height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }
    /// Output width W'.
    pub fn out_width(&self) -> usize {
        (self.in_width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }
    /// Number of weights O·C·KH·KW.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel_h * self.kernel_w
    }
    /// Number of input elements C·H·W.
    pub fn input_len(&self) -> usize {
        self.in_channels * self.in_height * self.in_width
    }
    /// Number of output elements O·H'·W'.
    pub fn output_len(&self) -> usize {
        self.out_channels * self.out_height() * self.out_width()
    }
    /// Multiply-accumulates of a dense evaluation (O·H'·W'·C·KH·KW).
    pub fn macs(&self) -> usize {
        self.output_len() * self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Checks that the geometry is meaningful (non-zero sizes, kernel fits the padded input).
    pub fn check(&self) -> Result<()> {
        let ok = self.in_channels > 0
            && self.out_channels > 0
            && self.in_height > 0
            && self.in_width > 0
            && self.kernel_h > 0
            && self.kernel_w > 0
            && self.stride > 0
            && self.in_height + 2 * self.padding >= self.kernel_h
            && self.in_width + 2 * self.padding >= self.kernel_w;
        if ok {
            Ok(())
        } else {
            Err(ModelError::IntConv {
                detail: format!("degenerate geometry {self:?}"),
            })
        }
    }

    fn check_buffers(&self, weights: usize, x: usize) -> Result<()> {
        self.check()?;
        if weights != self.weight_len() || x != self.input_len() {
            return Err(ModelError::IntConv {
                detail: format!(
                    "buffers of {weights} weights / {x} inputs, geometry needs {} / {}",
                    self.weight_len(),
                    self.input_len()
                ),
            });
        }
        Ok(())
    }

    /// For kernel offset `u` along an axis of length `n`: the output index range whose input index
    /// `i·S + u − P` lies inside `[0, n)`.
    fn valid(&self, u: usize, n: usize, out: usize) -> (usize, usize) {
        let p = self.padding;
        let s = self.stride;
        // smallest i with i·s + u >= p
        let lo = if u >= p { 0 } else { (p - u).div_ceil(s) };
        // largest i with i·s + u − p <= n − 1  ⇔  i·s <= n − 1 + p − u
        let hi = if n + p > u {
            ((n - 1 + p - u) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// `x mod 2^k` mask.
pub fn ring_mask(k: u32) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
    }
}

/// The ring convolution of ring-spec.md: `out = Σ W·x (mod 2^k)` with wrapping u64 arithmetic,
/// weights reduced mod 2^k, `x` CHW ring elements (upper bits are ignored), output masked to k bits.
pub fn conv_ring(conv: &IntConv, weights: &[i64], x: &[u64], k: u32) -> Result<Vec<u64>> {
    if !(8..=64).contains(&k) {
        return Err(ModelError::IntConv {
            detail: format!("ring bits k = {k} outside [8, 64]"),
        });
    }
    conv.check_buffers(weights.len(), x.len())?;
    let mut out = vec![0u64; conv.output_len()];
    conv_ring_acc(conv, weights, x, &mut out, k);
    let m = ring_mask(k);
    out.iter_mut().for_each(|v| *v &= m);
    Ok(out)
}

/// Scalar types a convolution can accumulate in: the ring (wrapping u64), exact integers (i128)
/// and the reals (f64).
pub(crate) trait Mac: Copy + PartialEq {
    const ZERO: Self;
    fn mac(self, w: Self, x: Self) -> Self;
}

impl Mac for u64 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self.wrapping_add(w.wrapping_mul(x))
    }
}

impl Mac for u32 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self.wrapping_add(w.wrapping_mul(x))
    }
}

impl Mac for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self + w * x
    }
}

/// Exact integers for the checked mode; saturating, so that even absurd weights report an
/// overflow instead of wrapping or panicking.
impl Mac for i128 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self.saturating_add(w.saturating_mul(x))
    }
}

impl Mac for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self + w * x
    }
}

/// Accumulates `W·x` into `out` mod 2^k (geometry already checked). For k ≤ 32 it computes in
/// u32 (exact mod 2^32, and SIMD multiplies 32-bit lanes natively), otherwise in u64.
pub(crate) fn conv_ring_acc(conv: &IntConv, weights: &[i64], x: &[u64], out: &mut [u64], k: u32) {
    if k <= 32 {
        let w: Vec<u32> = weights.iter().map(|&v| v as u32).collect();
        let xs: Vec<u32> = x.iter().map(|&v| v as u32).collect();
        let mut acc = vec![0u32; out.len()];
        conv_acc(conv, &w, &xs, &mut acc);
        for (o, a) in out.iter_mut().zip(acc) {
            *o = o.wrapping_add(u64::from(a));
        }
    } else {
        let w: Vec<u64> = weights.iter().map(|&v| v as u64).collect();
        conv_acc(conv, &w, x, out);
    }
}

/// The convolution loop shared by every scalar type: im2col (one row of `H'·W'` samples per
/// (channel, kernel offset), zeros where the kernel reads padding), then a row-times-weight
/// accumulation whose inner loop is contiguous.
pub(crate) fn conv_acc<T: Mac>(conv: &IntConv, weights: &[T], x: &[T], out: &mut [T]) {
    let (c_in, h, w) = (conv.in_channels, conv.in_height, conv.in_width);
    let (kh, kw, s, p) = (conv.kernel_h, conv.kernel_w, conv.stride, conv.padding);
    let (oh, ow) = (conv.out_height(), conv.out_width());
    let n = oh * ow;
    let ckk = c_in * kh * kw;
    let mut patches = vec![T::ZERO; ckk * n];
    for c in 0..c_in {
        let xin = &x[c * h * w..][..h * w];
        for u in 0..kh {
            let (ilo, ihi) = conv.valid(u, h, oh);
            for v in 0..kw {
                let (jlo, jhi) = conv.valid(v, w, ow);
                if jlo >= jhi {
                    continue;
                }
                let row = &mut patches[((c * kh + u) * kw + v) * n..][..n];
                for i in ilo..ihi {
                    let src = &xin[(i * s + u - p) * w..][..w];
                    let dst = &mut row[i * ow + jlo..i * ow + jhi];
                    if s == 1 {
                        dst.copy_from_slice(&src[jlo + v - p..jhi + v - p]);
                    } else {
                        for (d, j) in dst.iter_mut().zip(jlo..jhi) {
                            *d = src[j * s + v - p];
                        }
                    }
                }
            }
        }
    }
    for (o, orow) in out.chunks_exact_mut(n).take(conv.out_channels).enumerate() {
        let wrow = &weights[o * ckk..][..ckk];
        for (&wv, prow) in wrow.iter().zip(patches.chunks_exact(n)) {
            if wv == T::ZERO {
                continue;
            }
            for (a, &b) in orow.iter_mut().zip(prow) {
                *a = a.mac(wv, b);
            }
        }
    }
}

/// The same convolution over the reals (f64), used by the float normal form and calibration.
pub fn conv_f64(conv: &IntConv, weights: &[f64], x: &[f64]) -> Result<Vec<f64>> {
    conv.check_buffers(weights.len(), x.len())?;
    let mut out = vec![0f64; conv.output_len()];
    conv_f64_acc(conv, weights, x, &mut out);
    Ok(out)
}

/// Accumulates the real convolution into `out` (geometry already checked).
pub(crate) fn conv_f64_acc(conv: &IntConv, weights: &[f64], x: &[f64], out: &mut [f64]) {
    conv_acc(conv, weights, x, out);
}
