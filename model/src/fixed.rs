//! Fixed-point evaluation of the normal form in Z_2^k (docs/ring-spec.md), bit-exact with the protocol.
//!
//! Scales are powers of two: the image enters at `f_in` fractional bits, every ReLU output at
//! `f_a`, stage outputs Z at `F_Z`. A term reading a tensor at scale `f_src` has integer weights
//! `round(w·2^f_w) << (F_Z − f_src − f_w)` (the left shift is the free alignment), biases are
//! `round(b·2^F_Z)`. The only truncation is inside the ReLU: `relu_trunc_t(Z)` with
//! `t = F_Z − f_a`, rounding to nearest exactly as the garbled circuit does.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::format::Shape;
use crate::intconv::{conv_acc, conv_ring_acc, ring_mask, IntConv};
use crate::normal::{NormalForm, Pool, Source, StageKind};

/// Scales of one stage: output scale F_Z and the weight scale of each term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageScales {
    /// Fractional bits of the stage output Z (every term is aligned to it).
    pub f_z: u32,
    /// Fractional bits of each term's weights (f_w ≤ F_Z − f_src; the rest is a left shift).
    pub f_w: Vec<u32>,
    /// Ring width k_j ≤ k of this stage's ReLU: Z is reduced mod 2^(k_j) before it
    /// (docs/ring-spec.md §4). Absent: k itself; always absent for the logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
}

/// Ring size and every scale of a quantized normal form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedConfig {
    /// Ring bits k ∈ [8, 64] of the linear layers, the HE plaintexts and the logits (ReLU layers
    /// may use narrower rings, [`StageScales::k`]).
    pub k: u32,
    /// Fractional bits of the client's normalised input.
    pub f_in: u32,
    /// Fractional bits of every ReLU output.
    pub f_a: u32,
    /// Per stage, in normal-form order.
    pub stages: Vec<StageScales>,
}

/// Signed meaning of a k-bit ring element (two's complement); k is clamped to [1, 64]. The ring
/// arithmetic itself lives in `cryptonas-ring` ([`cryptonas_ring::RingWidth::to_signed`]).
pub fn to_signed(v: u64, k: u32) -> i64 {
    cryptonas_ring::RingWidth::new(k.clamp(1, 64)).map_or(0, |w| w.to_signed(v))
}

/// Ring element of a signed integer (mod 2^k; [`cryptonas_ring::RingWidth::from_signed`]).
pub fn from_signed(v: i64, k: u32) -> u64 {
    (v as u64) & ring_mask(k)
}

/// The indices of the `top` largest ring logits (k-bit two's complement), largest first; equal
/// logits rank by the lower index first. This is THE ranking rule of the project: the plaintext
/// engines' arg-max (`rank_logits(..)[0]`), the client's class under the `logits` output policy
/// and the garbled top-k circuit (`cryptonas_gc::TopKCircuit`) all follow it, so a private
/// class or top-k is bit-exact with the plaintext fixed-point engine. `top` is clamped to the
/// number of logits.
pub fn rank_logits(logits: &[u64], k: u32, top: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // A stable sort keeps equal logits in index order.
    order.sort_by_key(|&i| std::cmp::Reverse(to_signed(logits[i], k)));
    order.truncate(top);
    order
}

/// `relu_trunc_t(z) = relu_k(z + 2^(t−1) mod 2^k) >> t` (no rounding term when t = 0);
/// k is clamped to [1, 64], and t ≥ k gives 0.
pub fn relu_trunc(z: u64, t: u32, k: u32) -> u64 {
    // No bound: a non-negative k-bit value never exceeds u64::MAX.
    clip_trunc(z, t, k, u64::MAX)
}

/// `min(relu_k(z + 2^(t−1) mod 2^k), max) >> t`: the clipped ReLU exactly as
/// `cryptonas_gc::ReluCircuit` with `Clipped { max }` computes it (`max` in the circuit's scale:
/// the bound at Z's scale plus the rounding term); k is clamped to [1, 64], t ≥ k gives 0.
pub fn clip_trunc(z: u64, t: u32, k: u32, max: u64) -> u64 {
    let k = k.clamp(1, 64);
    if t >= k {
        return 0;
    }
    let m = ring_mask(k);
    let v = if t == 0 {
        z & m
    } else {
        z.wrapping_add(1u64 << (t - 1)) & m
    };
    if v >> (k - 1) & 1 == 1 {
        0
    } else {
        v.min(max) >> t
    }
}

/// The max pool of a ring tensor exactly as `cryptonas_gc::MaxPoolCircuit` computes it: per
/// window, the signed maximum of `z + 2^(t−1) mod 2^kj` over its real cells (a padding cell is the
/// most negative value and never wins), the ReLU if fused, an arithmetic shift by t, the result
/// in Z_2^k.
pub fn max_pool_trunc(z: &[u64], pool: &Pool, relu: bool, t: u32, kj: u32, k: u32) -> Vec<u64> {
    let kj = kj.clamp(2, 64);
    let round = if t == 0 { 0 } else { 1u64 << (t - 1) };
    let cells: Vec<Option<usize>> = pool.cells().collect();
    cells
        .chunks(pool.window())
        .map(|w| {
            let max = w
                .iter()
                .map(|c| match c {
                    Some(i) => to_signed(z[*i].wrapping_add(round) & ring_mask(kj), kj),
                    None => i64::MIN >> (64 - kj),
                })
                .max()
                .unwrap_or(0);
            let v = if relu { max.max(0) } else { max };
            from_signed(v >> t.min(63), k)
        })
        .collect()
}

/// One quantized term: exact integer weights (alignment shift included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantTerm {
    /// Shared tensor read.
    pub source: Source,
    /// Geometry.
    pub conv: IntConv,
    /// Integer weights at scale F_Z − f_src (reduce mod 2^k to use in the ring).
    pub weights: Vec<i64>,
}

/// One quantized stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantStage {
    /// ReLU input or logits.
    pub kind: StageKind,
    /// Shape of Z.
    pub shape: Shape,
    /// Terms.
    pub terms: Vec<QuantTerm>,
    /// Per-element bias at scale F_Z, as ring elements (added by the server to its share).
    pub bias: Vec<u64>,
    /// Scale of Z.
    pub f_z: u32,
    /// ReLU truncation t = F_Z − f_a (0 for the logits).
    pub trunc: u32,
    /// Ring width of the ReLU, k_j ≤ k (k for the logits): the ReLU reads Z mod 2^(k_j).
    pub k: u32,
    /// A clip stage's bound in the circuit's scale (the bound at Z's scale plus the rounding
    /// term, at most 2^(k_j − 1) − 1); None for every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<u64>,
}

impl QuantStage {
    /// The stage's non-linear layer on Z (ring elements): the next shared tensor, in Z_2^k.
    /// The logits are returned as they are.
    pub fn activate(&self, z: &[u64], k: u32) -> Vec<u64> {
        let kj = self.k.clamp(1, k);
        match &self.kind {
            StageKind::Relu { .. } => z.iter().map(|&v| relu_trunc(v, self.trunc, kj)).collect(),
            StageKind::Clip { .. } => {
                let max = self.clip.unwrap_or(u64::MAX);
                z.iter()
                    .map(|&v| clip_trunc(v, self.trunc, kj, max))
                    .collect()
            }
            StageKind::MaxPool { pool, relu, .. } => {
                max_pool_trunc(z, pool, *relu, self.trunc, kj, k)
            }
            StageKind::Logits => z.to_vec(),
        }
    }

    /// [`QuantStage::activate`] over exact integers (no wrap-around), for overflow checking.
    fn activate_exact(&self, ze: &[i128]) -> Vec<i128> {
        let round = if self.trunc > 0 {
            1i128 << (self.trunc - 1)
        } else {
            0
        };
        let t = self.trunc;
        match &self.kind {
            StageKind::Relu { .. } => ze.iter().map(|&v| (v + round).max(0) >> t).collect(),
            StageKind::Clip { .. } => {
                let max = self.clip.map_or(i128::MAX, i128::from);
                ze.iter()
                    .map(|&v| (v + round).max(0).min(max) >> t)
                    .collect()
            }
            StageKind::MaxPool { pool, relu, .. } => {
                let cells: Vec<Option<usize>> = pool.cells().collect();
                cells
                    .chunks(pool.window())
                    .map(|w| {
                        let max = w.iter().flatten().map(|&i| ze[i] + round).max();
                        let max = max.unwrap_or(0);
                        (if *relu { max.max(0) } else { max }) >> t
                    })
                    .collect()
            }
            StageKind::Logits => ze.to_vec(),
        }
    }
}

impl FixedConfig {
    /// Ring width of stage `j`'s ReLU (k where the stage has none of its own).
    pub fn relu_k(&self, j: usize) -> u32 {
        self.stages.get(j).and_then(|s| s.k).unwrap_or(self.k)
    }
}

/// A normal form quantized under a [`FixedConfig`]: what the protocol runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedModel {
    /// The scales.
    pub config: FixedConfig,
    /// Image shape.
    pub input: Shape,
    /// Stages in evaluation order (the last is the logits).
    pub stages: Vec<QuantStage>,
}

fn cfg_err(detail: String) -> ModelError {
    ModelError::FixedConfig { detail }
}

fn round_scaled(v: f64, bits: u32, what: &str) -> Result<i64> {
    let r = (v * (bits as f64).exp2()).round();
    if !r.is_finite() || r.abs() >= 2f64.powi(62) {
        return Err(cfg_err(format!(
            "{what}: {v} at {bits} fractional bits does not fit 62 bits"
        )));
    }
    Ok(r as i64)
}

impl FixedModel {
    /// Quantize a normal form (round-to-nearest weights and biases).
    pub fn quantize(nf: &NormalForm, config: &FixedConfig) -> Result<FixedModel> {
        let k = config.k;
        if !(8..=64).contains(&k) {
            return Err(cfg_err(format!("k = {k} outside [8, 64]")));
        }
        if config.stages.len() != nf.stages.len() {
            return Err(cfg_err(format!(
                "{} stage scales for {} stages",
                config.stages.len(),
                nf.stages.len()
            )));
        }
        if config.f_in >= k || config.f_a >= k {
            return Err(cfg_err(format!(
                "f_in {} / f_a {} must be < k = {k}",
                config.f_in, config.f_a
            )));
        }
        let mut stages = Vec::with_capacity(nf.stages.len());
        for (j, (st, sc)) in nf.stages.iter().zip(&config.stages).enumerate() {
            let f_z = sc.f_z;
            if f_z >= 63 {
                return Err(cfg_err(format!("stage {j}: F_Z = {f_z} must be < 63")));
            }
            let trunc = if st.kind.is_nonlinear() {
                f_z.checked_sub(config.f_a).ok_or_else(|| {
                    cfg_err(format!(
                        "stage {j}: F_Z = {f_z} below the ReLU output scale f_a = {}",
                        config.f_a
                    ))
                })?
            } else {
                0
            };
            let width = match (sc.k, st.kind.is_nonlinear()) {
                (None, _) => k,
                (Some(w), true) => {
                    if !(2..=k).contains(&w) || trunc + 1 >= w {
                        return Err(cfg_err(format!(
                            "stage {j}: ReLU ring width {w} outside [max(2, t + 2), k] = \
                             [{}, {k}] (t = {trunc})",
                            (trunc + 2).max(2)
                        )));
                    }
                    w
                }
                (Some(_), false) => {
                    return Err(cfg_err(format!(
                        "stage {j}: the logits have no ReLU ring width (they use k = {k})"
                    )))
                }
            };
            if trunc + 1 >= width && st.kind.is_nonlinear() {
                return Err(cfg_err(format!(
                    "stage {j}: truncation {trunc} leaves no bit of the {width}-bit ring"
                )));
            }
            // The clip bound in the circuit's scale: round(max · 2^F_Z) plus the rounding term,
            // saturated below 2^(k_j − 1) (a non-negative value of the ring never exceeds it, so
            // saturating changes nothing).
            let clip = match &st.kind {
                StageKind::Clip { max, .. } => {
                    let c = round_scaled(*max, f_z, &format!("stage {j} clip bound"))?;
                    let r = if trunc == 0 { 0 } else { 1i64 << (trunc - 1) };
                    let top = (1i64 << (width - 1).min(62)) - 1;
                    Some(c.saturating_add(r).clamp(0, top) as u64)
                }
                _ => None,
            };
            if sc.f_w.len() != st.terms.len() {
                return Err(cfg_err(format!(
                    "stage {j}: {} weight scales for {} terms",
                    sc.f_w.len(),
                    st.terms.len()
                )));
            }
            let mut terms = Vec::with_capacity(st.terms.len());
            for (m, (t, &f_w)) in st.terms.iter().zip(&sc.f_w).enumerate() {
                let f_src = match t.source {
                    Source::Image => config.f_in,
                    Source::Relu(_) => config.f_a,
                };
                let shift = f_z.checked_sub(f_src + f_w).ok_or_else(|| {
                    cfg_err(format!(
                        "stage {j} term {m}: f_w {f_w} + f_src {f_src} exceeds F_Z {f_z}"
                    ))
                })?;
                let mut w = Vec::with_capacity(t.weights.len());
                for &v in &t.weights {
                    let q = round_scaled(v, f_w, &format!("stage {j} term {m} weight"))?;
                    w.push(
                        q.checked_shl(shift)
                            .filter(|x| x >> shift == q)
                            .ok_or_else(|| {
                                cfg_err(format!("stage {j} term {m}: weight overflows i64"))
                            })?,
                    );
                }
                terms.push(QuantTerm {
                    source: t.source,
                    conv: t.conv,
                    weights: w,
                });
            }
            let mut bias = Vec::with_capacity(st.bias.len());
            for &b in &st.bias {
                bias.push(from_signed(
                    round_scaled(b, f_z, &format!("stage {j} bias"))?,
                    k,
                ));
            }
            stages.push(QuantStage {
                kind: st.kind.clone(),
                shape: st.shape,
                terms,
                bias,
                f_z,
                trunc,
                k: width,
                clip,
            });
        }
        Ok(FixedModel {
            config: config.clone(),
            input: nf.input,
            stages,
        })
    }

    /// The client's encoding of a normalised CHW image: `round(x·2^f_in) mod 2^k`.
    /// Errors ([`ModelError::InputRange`], which does not repeat the value) on non-finite values
    /// or values outside the signed k-bit range.
    pub fn quantize_input(&self, x: &[f32]) -> Result<Vec<u64>> {
        if x.len() != self.input.len() {
            return Err(ModelError::InputShape {
                expected: vec![self.input.c, self.input.h, self.input.w],
                found: vec![x.len()],
            });
        }
        let k = self.config.k;
        let lim = 2f64.powi(k as i32 - 1);
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let r = (f64::from(v) * (self.config.f_in as f64).exp2()).round();
                if !r.is_finite() || r >= lim || r < -lim {
                    Err(ModelError::InputRange { element: i, k })
                } else {
                    Ok(from_signed(r as i64, k))
                }
            })
            .collect()
    }

    /// Ring evaluation exactly as the protocol computes it; returns the logits as ring elements
    /// at scale `F_Z` of the last stage.
    pub fn forward(&self, x: &[u64]) -> Result<Vec<u64>> {
        self.run(x, false, None)
    }

    /// Every stage output Z (ReLU inputs, then the logits) of a ring evaluation: the reference a
    /// per-layer diff harness compares reconstructed protocol shares against.
    pub fn forward_stages(&self, x: &[u64]) -> Result<Vec<Vec<u64>>> {
        let mut stages = Vec::with_capacity(self.stages.len());
        self.run(x, false, Some(&mut stages))?;
        Ok(stages)
    }

    /// Like [`FixedModel::forward`] but also evaluates every stage over exact integers and fails
    /// with [`ModelError::Overflow`] at the first stage/element whose value (including the ReLU
    /// rounding term) leaves the signed k-bit range.
    pub fn forward_checked(&self, x: &[u64]) -> Result<Vec<u64>> {
        self.run(x, true, None)
    }

    fn run(
        &self,
        x: &[u64],
        checked: bool,
        mut keep: Option<&mut Vec<Vec<u64>>>,
    ) -> Result<Vec<u64>> {
        let k = self.config.k;
        let mask = ring_mask(k);
        if x.len() != self.input.len() {
            return Err(ModelError::InputShape {
                expected: vec![self.input.c, self.input.h, self.input.w],
                found: vec![x.len()],
            });
        }
        let x: Vec<u64> = x.iter().map(|v| v & mask).collect();
        let x_signed: Vec<i128> = if checked {
            x.iter().map(|&v| i128::from(to_signed(v, k))).collect()
        } else {
            Vec::new()
        };
        let mut acts: Vec<Vec<u64>> = Vec::with_capacity(self.stages.len());
        let mut acts_exact: Vec<Vec<i128>> = Vec::new();
        for (j, st) in self.stages.iter().enumerate() {
            // The stage's values must fit its own ring: the ReLU's (k_j) or the logits' (k).
            let kj = st.k.clamp(1, k);
            let lo = -(1i128 << (kj - 1));
            let hi = 1i128 << (kj - 1);
            let mut z = st.bias.clone();
            for t in &st.terms {
                let src: &[u64] = match t.source {
                    Source::Image => &x,
                    Source::Relu(i) => &acts[i],
                };
                conv_ring_acc(&t.conv, &t.weights, src, &mut z, k);
            }
            z.iter_mut().for_each(|v| *v &= mask);
            if checked {
                let mut ze: Vec<i128> = st
                    .bias
                    .iter()
                    .map(|&b| i128::from(to_signed(b, k)))
                    .collect();
                for t in &st.terms {
                    let src: &[i128] = match t.source {
                        Source::Image => &x_signed,
                        Source::Relu(i) => &acts_exact[i],
                    };
                    let w: Vec<i128> = t.weights.iter().map(|&v| i128::from(v)).collect();
                    conv_acc(&t.conv, &w, src, &mut ze);
                }
                let round = if st.trunc > 0 {
                    1i128 << (st.trunc - 1)
                } else {
                    0
                };
                if let Some((e, &v)) = ze
                    .iter()
                    .enumerate()
                    .find(|(_, &v)| v < lo || v.saturating_add(round) >= hi)
                {
                    return Err(ModelError::Overflow {
                        stage: match &st.kind {
                            StageKind::Relu { node }
                            | StageKind::Clip { node, .. }
                            | StageKind::MaxPool { node, .. } => format!("{j} ({node})"),
                            StageKind::Logits => format!("{j} (logits)"),
                        },
                        element: e,
                        value: v as f64,
                        k: kj,
                    });
                }
                acts_exact.push(st.activate_exact(&ze));
            }
            if let Some(keep) = keep.as_mut() {
                keep.push(z.clone());
            }
            if j + 1 == self.stages.len() {
                return Ok(z);
            }
            // The layer reads Z mod 2^(k_j); its output is an element of Z_2^k.
            acts.push(st.activate(&z, k));
        }
        unreachable!("a normal form ends with the logits stage")
    }

    /// Real values of ring logits (signed, divided by 2^F_Z).
    pub fn dequantize_logits(&self, logits: &[u64]) -> Vec<f64> {
        let k = self.config.k;
        let f = self.stages.last().map_or(0, |s| s.f_z);
        logits
            .iter()
            .map(|&v| to_signed(v, k) as f64 / (f as f64).exp2())
            .collect()
    }

    /// Normalised CHW image → real logits through the ring engine.
    pub fn logits(&self, x: &[f32]) -> Result<Vec<f64>> {
        let q = self.quantize_input(x)?;
        Ok(self.dequantize_logits(&self.forward(&q)?))
    }
}

/// Per-stage value ranges of the float normal form on calibration images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// max |x| of the normalised input.
    pub input_max: f64,
    /// max |Z| of each stage.
    pub stage_max: Vec<f64>,
    /// Number of images seen.
    pub images: usize,
}

impl Calibration {
    /// Runs the float normal form on normalised CHW images and records every stage's range.
    pub fn run<'a>(nf: &NormalForm, images: impl IntoIterator<Item = &'a [f32]>) -> Result<Self> {
        let mut cal = Calibration {
            input_max: 0.0,
            stage_max: vec![0.0; nf.stages.len()],
            images: 0,
        };
        for img in images {
            let x: Vec<f64> = img.iter().map(|&v| f64::from(v)).collect();
            let zs = nf.eval_f64(&x)?;
            cal.input_max = x.iter().fold(cal.input_max, |m, v| m.max(v.abs()));
            for (m, z) in cal.stage_max.iter_mut().zip(&zs) {
                *m = z.iter().fold(*m, |m, v| m.max(v.abs()));
            }
            cal.images += 1;
        }
        if cal.images == 0 {
            return Err(cfg_err("calibration needs at least one image".into()));
        }
        Ok(cal)
    }

    /// Largest scale F (capped at `cap`) with `max · 2^F < 2^(k − 1 − guard)`.
    fn largest_scale(max: f64, k: u32, guard: u32, cap: u32) -> Option<u32> {
        let limit = 2f64.powi(k as i32 - 1 - guard as i32);
        (0..=cap).rev().find(|&f| max * (f as f64).exp2() < limit)
    }

    /// Picks every scale for ring size `k`: per stage the largest F_Z that keeps the calibrated
    /// range below `2^(k−1−guard)` (weights get f_w = F_Z − f_src, the largest that fits), capped
    /// so that weights carry at most `max_f_w` fractional bits. Errors name the first stage that
    /// cannot reach `F_Z ≥ f_a` and `f_w ≥ min_f_w`: k is then too small (see
    /// [`Calibration::smallest_k`]).
    pub fn config(&self, nf: &NormalForm, k: u32, p: &CalibrationParams) -> Result<FixedConfig> {
        let CalibrationParams {
            f_in,
            f_a,
            guard,
            min_f_w,
            max_f_w,
        } = *p;
        if !(8..=64).contains(&k) || guard + 2 > k || min_f_w > max_f_w {
            return Err(cfg_err(format!(
                "k = {k} / guard = {guard} / f_w in [{min_f_w}, {max_f_w}] out of range"
            )));
        }
        if self.stage_max.len() != nf.stages.len() {
            return Err(cfg_err("calibration was run on another normal form".into()));
        }
        if Self::largest_scale(self.input_max, k, guard, f_in) != Some(f_in) {
            return Err(cfg_err(format!(
                "input range {} at f_in = {f_in} does not fit k = {k} with {guard} guard bits",
                self.input_max
            )));
        }
        let mut stages = Vec::with_capacity(nf.stages.len());
        for (j, (st, &max)) in nf.stages.iter().zip(&self.stage_max).enumerate() {
            let f_src: Vec<u32> = st
                .terms
                .iter()
                .map(|t| match t.source {
                    Source::Image => f_in,
                    Source::Relu(_) => f_a,
                })
                .collect();
            let min_src = f_src.iter().copied().min().unwrap_or(0);
            let cap = (min_src + max_f_w).min(62);
            let need = (f_src.iter().copied().max().unwrap_or(0) + min_f_w)
                .max(if st.kind.is_nonlinear() { f_a } else { 0 });
            let f_z = Self::largest_scale(max, k, guard, cap)
                .filter(|&f| f >= need)
                .ok_or_else(|| {
                    cfg_err(format!(
                        "stage {j}: range {max:.3e} at F_Z >= {need} (f_a = {f_a}, f_w >= \
                         {min_f_w}) does not fit k = {k} with {guard} guard bits"
                    ))
                })?;
            stages.push(StageScales {
                f_z,
                f_w: f_src.iter().map(|&s| f_z - s).collect(),
                k: None,
            });
        }
        Ok(FixedConfig {
            k,
            f_in,
            f_a,
            stages,
        })
    }

    /// Tries `f_in = f_a = f` for f in `f_range` at ring size `k` and keeps the configuration
    /// with the smallest max |logit error| against the float normal form on `images`.
    /// Returns the config and that error.
    pub fn tune<'a>(
        &self,
        nf: &NormalForm,
        k: u32,
        base: &CalibrationParams,
        f_range: std::ops::RangeInclusive<u32>,
        images: impl IntoIterator<Item = &'a [f32]> + Clone,
    ) -> Result<(FixedConfig, f64)> {
        let mut best: Option<(FixedConfig, f64)> = None;
        let mut last_err = None;
        let want: Vec<(Vec<f32>, Vec<f64>)> = images
            .clone()
            .into_iter()
            .map(|x| {
                let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                Ok((x.to_vec(), nf.logits_f64(&xf)?))
            })
            .collect::<Result<_>>()?;
        for f in f_range {
            let p = CalibrationParams {
                f_in: f,
                f_a: f,
                ..*base
            };
            let cfg = match self.config(nf, k, &p) {
                Ok(c) => c,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let fm = FixedModel::quantize(nf, &cfg)?;
            let mut err = 0f64;
            for (x, w) in &want {
                let q = fm.quantize_input(x)?;
                let got = fm.dequantize_logits(&fm.forward_checked(&q)?);
                err = got
                    .iter()
                    .zip(w)
                    .fold(err, |e, (a, b)| e.max((a - b).abs()));
            }
            if best.as_ref().is_none_or(|(_, e)| err < *e) {
                best = Some((cfg, err));
            }
        }
        best.ok_or_else(|| {
            last_err.unwrap_or_else(|| cfg_err("empty range of scales to tune".into()))
        })
    }

    /// Smallest ring size for which [`Calibration::config`] succeeds (None if even 64 fails).
    pub fn smallest_k(&self, nf: &NormalForm, p: &CalibrationParams) -> Option<u32> {
        (8..=64).find(|&k| self.config(nf, k, p).is_ok())
    }

    /// The configuration at ring size `k` whose ReLU stage j has weight precision `precision[j]`
    /// (fractional bits of the weights of its finest-scale source; entries of the logits stage
    /// are ignored: it keeps [`Calibration::config`]'s scale) and the narrowest ReLU ring that
    /// holds its calibrated range with `guard` spare bits: the smallest k_j with
    /// `max · 2^F_Z < 2^(k_j − 1 − guard)` and `k_j ≥ t + 2` (the ReLU keeps a bit). Errors when
    /// a stage would need more than `k` bits.
    pub fn narrow_config(
        &self,
        nf: &NormalForm,
        k: u32,
        p: &CalibrationParams,
        precision: &[u32],
    ) -> Result<FixedConfig> {
        let mut cfg = self.config(nf, k, p)?;
        if precision.len() != nf.stages.len() {
            return Err(cfg_err(format!(
                "{} weight precisions for {} stages",
                precision.len(),
                nf.stages.len()
            )));
        }
        for (j, ((st, sc), &w)) in nf
            .stages
            .iter()
            .zip(cfg.stages.iter_mut())
            .zip(precision)
            .enumerate()
        {
            if matches!(st.kind, StageKind::Logits) {
                continue;
            }
            let f_src: Vec<u32> = st
                .terms
                .iter()
                .map(|t| match t.source {
                    Source::Image => p.f_in,
                    Source::Relu(_) => p.f_a,
                })
                .collect();
            let f_z = (f_src.iter().copied().max().unwrap_or(0) + w).max(p.f_a);
            let t = f_z - p.f_a;
            let max = self.stage_max[j];
            let width = (2..=k)
                .find(|&kj| {
                    kj >= t + 2
                        && kj > p.guard + 1
                        && max * (f_z as f64).exp2() < 2f64.powi(kj as i32 - 1 - p.guard as i32)
                })
                .ok_or_else(|| {
                    cfg_err(format!(
                        "stage {j}: range {max:.3e} at F_Z = {f_z} (weights at {w} bits) does not \
                         fit k = {k} with {} guard bits",
                        p.guard
                    ))
                })?;
            *sc = StageScales {
                f_z,
                f_w: f_src.iter().map(|&s| f_z - s).collect(),
                k: Some(width),
            };
        }
        Ok(cfg)
    }

    /// Per ReLU layer, the narrowest ring that `accept` still takes (it judges a configuration,
    /// typically by fixed-point against float accuracy on test images). First the smallest
    /// weight precision in `[min_f_w, max_f_w]` shared by every layer that is accepted, then, layer
    /// by layer, one bit less while still accepted; each layer's width follows from its precision
    /// ([`Calibration::narrow_config`]). Errors when no shared precision is accepted or fits `k`:
    /// the model then needs a wider ring or a looser tolerance.
    pub fn narrowest(
        &self,
        nf: &NormalForm,
        k: u32,
        p: &CalibrationParams,
        mut accept: impl FnMut(&FixedConfig) -> Result<bool>,
    ) -> Result<FixedConfig> {
        let n = nf.stages.len();
        let mut found = None;
        let mut last_err = None;
        for w in p.min_f_w..=p.max_f_w {
            match self.narrow_config(nf, k, p, &vec![w; n]) {
                // A higher precision needs a wider ring still.
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
                Ok(cfg) => {
                    if accept(&cfg)? {
                        found = Some((w, cfg));
                        break;
                    }
                }
            }
        }
        let Some((w, mut best)) = found else {
            return Err(cfg_err(format!(
                "no weight precision in [{}, {}] bits is accepted at k = {k}{}",
                p.min_f_w,
                p.max_f_w,
                last_err.map_or(String::new(), |e| format!(" (the rest do not fit: {e})"))
            )));
        };
        let mut precision = vec![w; n];
        for j in 0..n {
            if matches!(nf.stages[j].kind, StageKind::Logits) {
                continue;
            }
            while precision[j] > p.min_f_w {
                let mut trial = precision.clone();
                trial[j] -= 1;
                match self.narrow_config(nf, k, p, &trial) {
                    Ok(cfg) if accept(&cfg)? => {
                        precision = trial;
                        best = cfg;
                    }
                    _ => break,
                }
            }
        }
        Ok(best)
    }
}

/// What calibration trades off: input/activation scales, guard bits and weight precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationParams {
    /// Fractional bits of the normalised input.
    pub f_in: u32,
    /// Fractional bits of ReLU outputs.
    pub f_a: u32,
    /// Spare bits kept above the calibrated range (≥ 1–2).
    pub guard: u32,
    /// Fewest fractional weight bits any term may get.
    pub min_f_w: u32,
    /// Most fractional weight bits worth spending (caps F_Z).
    pub max_f_w: u32,
}

impl Default for CalibrationParams {
    /// f_in = f_a = 8, 2 guard bits, 6 ≤ f_w ≤ 24 (at k = 32 on CNet1 f_a = 8 balances
    /// activation rounding against weight precision best; see [`Calibration::tune`]).
    fn default() -> Self {
        CalibrationParams {
            f_in: 8,
            f_a: 8,
            guard: 2,
            min_f_w: 6,
            max_f_w: 24,
        }
    }
}
