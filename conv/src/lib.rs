#![doc = include_str!("../README.md")]

use serde::{Deserialize, Serialize};

/// Largest single dimension accepted (keeps every index product far from overflow).
pub const MAX_DIM: usize = 1 << 16;
/// Largest tensor (input, weight or output) accepted, in elements.
pub const MAX_ELEMS: usize = 1 << 28;

/// Why a convolution was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    /// The geometry is degenerate or too large.
    #[error("invalid convolution geometry: {reason}")]
    Geometry {
        /// What is wrong.
        reason: String,
    },
    /// A buffer does not have the length the geometry needs.
    #[error("{what}: expected {expected} elements, got {got}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Length the geometry needs.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The ring Z_2^k is outside 1 ≤ k ≤ 64.
    #[error("ring bits k = {k} outside [1, 64]")]
    RingBits {
        /// The k given.
        k: u32,
    },
}

/// Geometry of one convolution: input `C × H × W` (CHW), weights `O × C × KH × KW` (OIHW),
/// symmetric zero padding P, stride S; output `O × H' × W'` with `H' = (H + 2P − KH) / S + 1`.
///
/// `out[o][i][j] = Σ_{c,u,v} W[o][c][u][v] · x[c][i·S + u − P][j·S + v − P]`, with `x = 0`
/// outside the input. A fully connected layer is the case `KH = H, KW = W, P = 0`.
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
    /// Output height H' (0-safe on unchecked geometry).
    pub fn out_height(&self) -> usize {
        (self.in_height + 2 * self.padding).saturating_sub(self.kernel_h) / self.stride.max(1) + 1
    }
    /// Output width W' (0-safe on unchecked geometry).
    pub fn out_width(&self) -> usize {
        (self.in_width + 2 * self.padding).saturating_sub(self.kernel_w) / self.stride.max(1) + 1
    }
    /// Output shape (O, H', W').
    pub fn output_shape(&self) -> (usize, usize, usize) {
        (self.out_channels, self.out_height(), self.out_width())
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

    /// Checks that the geometry is meaningful (non-zero sizes, kernel fits the padded input) and
    /// of a sane size (every dimension ≤ [`MAX_DIM`], every tensor ≤ [`MAX_ELEMS`] elements).
    pub fn check(&self) -> Result<(), ConvError> {
        let geometry = |reason: String| Err(ConvError::Geometry { reason });
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
                return geometry(format!("{name} = {d} must be in 1..={MAX_DIM}"));
            }
        }
        if self.padding > MAX_DIM {
            return geometry(format!("padding = {} exceeds {MAX_DIM}", self.padding));
        }
        if self.kernel_h > self.in_height + 2 * self.padding
            || self.kernel_w > self.in_width + 2 * self.padding
        {
            return geometry(format!(
                "kernel {}x{} larger than padded input {}x{}",
                self.kernel_h,
                self.kernel_w,
                self.in_height + 2 * self.padding,
                self.in_width + 2 * self.padding
            ));
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
            return geometry(format!("tensor larger than {MAX_ELEMS} elements"));
        }
        Ok(())
    }

    /// [`check`](Self::check)s the geometry and that the buffers have the lengths it needs.
    pub fn check_buffers(&self, weights: usize, input: usize) -> Result<(), ConvError> {
        self.check()?;
        if weights != self.weight_len() {
            return Err(ConvError::Length {
                what: "weights",
                expected: self.weight_len(),
                got: weights,
            });
        }
        if input != self.input_len() {
            return Err(ConvError::Length {
                what: "input",
                expected: self.input_len(),
                got: input,
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

/// `x mod 2^k` mask (`k` in 1..=64; 64 and above give all ones): the ring crate's.
pub use cryptonas_ring::mask as ring_mask;

/// The ring convolution of docs/ring-spec.md: `out = Σ W·x (mod 2^k)` with wrapping u64 arithmetic,
/// weights reduced mod 2^k, `x` CHW ring elements (upper bits are ignored), output masked to k bits.
pub fn conv_ring(
    conv: &IntConv,
    weights: &[i64],
    x: &[u64],
    k: u32,
) -> Result<Vec<u64>, ConvError> {
    if !(1..=64).contains(&k) {
        return Err(ConvError::RingBits { k });
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
pub trait Mac: Copy + PartialEq {
    /// The additive identity.
    const ZERO: Self;
    /// Whether the loop may skip zero weights. Never for the ring types: the server's online
    /// convolution runs on secret weights, and skipping zeros would make its time reveal their
    /// sparsity (per layer, to a client timing its answers). The float and exact types serve
    /// plaintext tools, where skipping is a free speed-up.
    const SKIP_ZEROS: bool;
    /// `self + w·x` in this scalar's arithmetic.
    fn mac(self, w: Self, x: Self) -> Self;
}

impl Mac for u64 {
    const ZERO: Self = 0;
    const SKIP_ZEROS: bool = false;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self.wrapping_add(w.wrapping_mul(x))
    }
}

impl Mac for u32 {
    const ZERO: Self = 0;
    const SKIP_ZEROS: bool = false;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self.wrapping_add(w.wrapping_mul(x))
    }
}

impl Mac for f32 {
    const ZERO: Self = 0.0;
    const SKIP_ZEROS: bool = true;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self + w * x
    }
}

/// Exact integers for the checked mode; saturating, so that even absurd weights report an
/// overflow instead of wrapping or panicking.
impl Mac for i128 {
    const ZERO: Self = 0;
    const SKIP_ZEROS: bool = true;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self.saturating_add(w.saturating_mul(x))
    }
}

impl Mac for f64 {
    const ZERO: Self = 0.0;
    const SKIP_ZEROS: bool = true;
    #[inline(always)]
    fn mac(self, w: Self, x: Self) -> Self {
        self + w * x
    }
}

/// Accumulates `W·x` into `out` mod 2^k (geometry already checked). For k ≤ 32 it computes in
/// u32 (exact mod 2^32, and SIMD multiplies 32-bit lanes natively), otherwise in u64.
pub fn conv_ring_acc(conv: &IntConv, weights: &[i64], x: &[u64], out: &mut [u64], k: u32) {
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
pub fn conv_acc<T: Mac>(conv: &IntConv, weights: &[T], x: &[T], out: &mut [T]) {
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
            if T::SKIP_ZEROS && wv == T::ZERO {
                continue;
            }
            for (a, &b) in orow.iter_mut().zip(prow) {
                *a = a.mac(wv, b);
            }
        }
    }
}

/// The same convolution over the reals (f64), used by the float normal form and calibration.
pub fn conv_f64(conv: &IntConv, weights: &[f64], x: &[f64]) -> Result<Vec<f64>, ConvError> {
    conv.check_buffers(weights.len(), x.len())?;
    let mut out = vec![0f64; conv.output_len()];
    conv_f64_acc(conv, weights, x, &mut out);
    Ok(out)
}

/// Accumulates the real convolution into `out` (geometry already checked).
pub fn conv_f64_acc(conv: &IntConv, weights: &[f64], x: &[f64], out: &mut [f64]) {
    conv_acc(conv, weights, x, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(kernel: usize, stride: usize, padding: usize) -> IntConv {
        IntConv {
            in_channels: 1,
            out_channels: 1,
            in_height: 3,
            in_width: 3,
            kernel_h: kernel,
            kernel_w: kernel,
            stride,
            padding,
        }
    }

    #[test]
    fn ring_small_example() {
        // 1 channel 3x3 input, 2x2 kernel of ones, stride 1, no padding: sums of 2x2 windows.
        let x: Vec<u64> = (1..=9).collect();
        assert_eq!(
            conv_ring(&conv(2, 1, 0), &[1, 1, 1, 1], &x, 8).unwrap(),
            [12, 16, 24, 28]
        );
        // Negative weights wrap mod 2^8.
        let out = conv_ring(&conv(2, 1, 0), &[-1, 0, 0, 0], &x, 8).unwrap();
        assert_eq!(out, [255, 254, 252, 251]);
        // Padding reads zeros; stride 2 samples every other window.
        let out = conv_ring(&conv(3, 2, 1), &[1; 9], &x, 16).unwrap();
        assert_eq!(out, [12, 16, 24, 28]);
    }

    /// The im2col loop equals the textbook definition for every scalar type, ring widths included.
    #[test]
    fn im2col_matches_definition() {
        let g = IntConv {
            in_channels: 3,
            out_channels: 4,
            in_height: 7,
            in_width: 6,
            kernel_h: 3,
            kernel_w: 5,
            stride: 2,
            padding: 2,
        };
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let w: Vec<i64> = (0..g.weight_len()).map(|_| next() as i64).collect();
        let x: Vec<u64> = (0..g.input_len()).map(|_| next()).collect();
        for k in [1u32, 8, 31, 32, 33, 64] {
            let (o_n, oh, ow) = g.output_shape();
            let mut expect = vec![0u64; o_n * oh * ow];
            for o in 0..o_n {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = 0u64;
                        for c in 0..g.in_channels {
                            for u in 0..g.kernel_h {
                                for v in 0..g.kernel_w {
                                    let (y, xx) = (i * 2 + u, j * 2 + v);
                                    if y < 2
                                        || xx < 2
                                        || y - 2 >= g.in_height
                                        || xx - 2 >= g.in_width
                                    {
                                        continue;
                                    }
                                    let wt = w[((o * 3 + c) * 3 + u) * 5 + v] as u64;
                                    let xv = x[(c * g.in_height + y - 2) * g.in_width + xx - 2];
                                    acc = acc.wrapping_add(wt.wrapping_mul(xv));
                                }
                            }
                        }
                        expect[(o * oh + i) * ow + j] = acc & ring_mask(k);
                    }
                }
            }
            assert_eq!(conv_ring(&g, &w, &x, k).unwrap(), expect, "k = {k}");
        }
    }

    #[test]
    fn bad_geometry_and_buffers_are_refused() {
        assert!(matches!(
            conv(5, 1, 0).check(),
            Err(ConvError::Geometry { .. })
        ));
        assert!(conv(5, 1, 1).check().is_ok());
        assert!(matches!(
            conv(3, 0, 0).check(),
            Err(ConvError::Geometry { .. })
        ));
        let huge = IntConv {
            in_channels: MAX_DIM,
            in_height: MAX_DIM,
            ..conv(1, 1, 0)
        };
        assert!(matches!(huge.check(), Err(ConvError::Geometry { .. })));
        let e = conv_ring(&conv(2, 1, 0), &[1; 3], &[0; 9], 8).unwrap_err();
        assert!(matches!(
            e,
            ConvError::Length {
                what: "weights",
                ..
            }
        ));
        let e = conv_ring(&conv(2, 1, 0), &[1; 4], &[0; 8], 8).unwrap_err();
        assert!(matches!(e, ConvError::Length { what: "input", .. }));
        assert_eq!(
            conv_ring(&conv(2, 1, 0), &[1; 4], &[0; 9], 65),
            Err(ConvError::RingBits { k: 65 })
        );
    }

    /// A ring-like scalar that counts its multiply-accumulates.
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct Counted(u32);

    static MACS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    impl Mac for Counted {
        const ZERO: Self = Counted(0);
        const SKIP_ZEROS: bool = <u32 as Mac>::SKIP_ZEROS;
        fn mac(self, w: Self, x: Self) -> Self {
            MACS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Counted(self.0.wrapping_add(w.0.wrapping_mul(x.0)))
        }
    }

    #[test]
    fn ring_convolution_work_does_not_depend_on_zero_weights() {
        // TIM-1: the server's online convolution must do the same work whatever its weights are,
        // so that latency does not reveal per-layer sparsity.
        const { assert!(!<u32 as Mac>::SKIP_ZEROS && !<u64 as Mac>::SKIP_ZEROS) };
        let c = conv(3, 1, 1);
        let x: Vec<Counted> = (0..c.input_len() as u32).map(Counted).collect();
        let count = |w: Vec<Counted>| {
            let mut out = vec![Counted(0); c.output_len()];
            MACS.store(0, std::sync::atomic::Ordering::Relaxed);
            conv_acc(&c, &w, &x, &mut out);
            MACS.load(std::sync::atomic::Ordering::Relaxed)
        };
        let dense = count(vec![Counted(3); c.weight_len()]);
        let sparse = count(
            (0..c.weight_len())
                .map(|i| Counted(u32::from(i % 5 == 0)))
                .collect(),
        );
        let zero = count(vec![Counted(0); c.weight_len()]);
        assert_eq!(dense, c.weight_len() * c.out_height() * c.out_width());
        assert_eq!((sparse, zero), (dense, dense));
    }
}
