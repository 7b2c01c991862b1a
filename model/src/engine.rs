//! The f32 reference engine: a forward pass of the graph on a batch (N × C × H × W).

use ndarray::{Array1, Array2, Array4, ArrayView4, Axis};

use crate::error::{ModelError, Result};
use crate::format::{Model, Op};
use crate::intconv::{conv_acc, IntConv};

/// Per-channel affine (scale, shift) equivalent to an inference-mode batch norm.
pub(crate) fn bn_affine(model: &Model, prefix: &str, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let g = &model.tensor(&format!("{prefix}.weight")).data;
    let b = &model.tensor(&format!("{prefix}.bias")).data;
    let m = &model.tensor(&format!("{prefix}.running_mean")).data;
    let v = &model.tensor(&format!("{prefix}.running_var")).data;
    let scale: Vec<f32> = g.iter().zip(v).map(|(g, v)| g / (v + eps).sqrt()).collect();
    let shift = b
        .iter()
        .zip(m)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

/// Direct convolution (NCHW, OIHW weights, grouped, symmetric zero padding); the caller has
/// validated the geometry.
pub(crate) fn conv2d(
    x: ArrayView4<'_, f32>,
    weight: &[f32],
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().expect("standard layout");
    let oh = (h + 2 * padding - kernel) / stride + 1;
    let ow = (w + 2 * padding - kernel) / stride + 1;
    if groups == 1 {
        let conv = IntConv {
            in_channels: c,
            out_channels,
            in_height: h,
            in_width: w,
            kernel_h: kernel,
            kernel_w: kernel,
            stride,
            padding,
        };
        let per = out_channels * oh * ow;
        let mut out = vec![0f32; n * per];
        for (b, o) in out.chunks_exact_mut(per).enumerate() {
            conv_acc(&conv, weight, &xs[b * c * h * w..][..c * h * w], o);
        }
        return Array4::from_shape_vec((n, out_channels, oh, ow), out).expect("sizes match");
    }
    let cg = c / groups;
    let og = out_channels / groups;
    let mut out = vec![0f32; n * out_channels * oh * ow];
    for b in 0..n {
        for o in 0..out_channels {
            let g = o / og;
            let plane = &mut out[(b * out_channels + o) * oh * ow..][..oh * ow];
            for ci in 0..cg {
                let c_in = g * cg + ci;
                let xin = &xs[(b * c + c_in) * h * w..][..h * w];
                for u in 0..kernel {
                    for v in 0..kernel {
                        let wv = weight[((o * cg + ci) * kernel + u) * kernel + v];
                        if wv == 0.0 {
                            continue;
                        }
                        for i in 0..oh {
                            let y = (i * stride + u) as isize - padding as isize;
                            if y < 0 || y >= h as isize {
                                continue;
                            }
                            let row = &xin[y as usize * w..][..w];
                            for j in 0..ow {
                                let xx = (j * stride + v) as isize - padding as isize;
                                if xx < 0 || xx >= w as isize {
                                    continue;
                                }
                                plane[i * ow + j] += wv * row[xx as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    Array4::from_shape_vec((n, out_channels, oh, ow), out).expect("sizes match")
}

/// `x[:, :, 1:, 1:]` zero-padded bottom/right (path 2 of a factorized reduction).
fn shift_up_left(x: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let mut out = Array4::<f32>::zeros((n, c, h, w));
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h.saturating_sub(1) {
                for j in 0..w.saturating_sub(1) {
                    out[[b, ch, i, j]] = x[[b, ch, i + 1, j + 1]];
                }
            }
        }
    }
    out
}

/// Max or mean over k × k windows (see [`Op::MaxPool`], [`Op::AvgPool`] for the exact rules).
fn pool2d(
    x: &Array4<f32>,
    kernel: usize,
    stride: usize,
    (padding, padding_end): (usize, usize),
    mode: PoolMode,
) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let oh = (h + padding + padding_end - kernel) / stride + 1;
    let ow = (w + padding + padding_end - kernel) / stride + 1;
    let mut out = Array4::<f32>::zeros((n, c, oh, ow));
    for b in 0..n {
        for ch in 0..c {
            for i in 0..oh {
                // Window rows [y0, y1) clipped to the real rows.
                let y0 = (i * stride).saturating_sub(padding);
                let y1 = (i * stride + kernel - padding).min(h);
                for j in 0..ow {
                    let x0 = (j * stride).saturating_sub(padding);
                    let x1 = (j * stride + kernel - padding).min(w);
                    let mut acc = match mode {
                        PoolMode::Max => f32::NEG_INFINITY,
                        _ => 0.0,
                    };
                    for y in y0..y1 {
                        for xx in x0..x1 {
                            let v = x[[b, ch, y, xx]];
                            acc = match mode {
                                PoolMode::Max => acc.max(v),
                                _ => acc + v,
                            };
                        }
                    }
                    out[[b, ch, i, j]] = match mode {
                        PoolMode::Max => acc,
                        PoolMode::AvgAll => acc / (kernel * kernel) as f32,
                        PoolMode::AvgReal => acc / ((y1 - y0) * (x1 - x0)) as f32,
                    };
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
enum PoolMode {
    Max,
    /// Divide by k² (padding counts).
    AvgAll,
    /// Divide by the number of real cells.
    AvgReal,
}

fn channel_affine(mut x: Array4<f32>, scale: &[f32], shift: &[f32]) -> Array4<f32> {
    for (c, mut plane) in x.axis_iter_mut(Axis(1)).enumerate() {
        plane.mapv_inplace(|v| v * scale[c] + shift[c]);
    }
    x
}

impl Model {
    /// Forward pass on a normalised batch `N × C × H × W`; returns logits `N × classes`.
    pub fn forward(&self, x: ArrayView4<'_, f32>) -> Result<Array2<f32>> {
        let out = self.forward_all(x)?;
        let logits = &out[self.graph.output];
        let n = logits.dim().0;
        let classes = logits.dim().1;
        Ok(logits
            .to_owned()
            .into_shape_with_order((n, classes))
            .expect("output is classes x 1 x 1"))
    }

    /// Forward pass returning every node's value (indexed like `spec.nodes`).
    pub fn forward_all(&self, x: ArrayView4<'_, f32>) -> Result<Vec<Array4<f32>>> {
        let inp = &self.spec.input;
        let (n, c, h, w) = x.dim();
        if (c, h, w) != (inp.channels, inp.height, inp.width) || n == 0 {
            return Err(ModelError::InputShape {
                expected: vec![n.max(1), inp.channels, inp.height, inp.width],
                found: vec![n, c, h, w],
            });
        }
        let nodes = &self.spec.nodes;
        let mut vals: Vec<Option<Array4<f32>>> = vec![None; nodes.len()];
        for &i in &self.graph.order {
            let node = &nodes[i];
            let ins: Vec<&Array4<f32>> = self.graph.inputs[i]
                .iter()
                .map(|&j| vals[j].as_ref().expect("topological order"))
                .collect();
            let id = &node.id;
            let v = match &node.op {
                Op::Input => x.to_owned(),
                Op::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    groups,
                    bias,
                } => {
                    let wt = &self.tensor(&format!("{id}.weight")).data;
                    let mut y = conv2d(
                        ins[0].view(),
                        wt,
                        *out_channels,
                        *kernel,
                        *stride,
                        *padding,
                        *groups,
                    );
                    if *bias {
                        let b = &self.tensor(&format!("{id}.bias")).data;
                        y = channel_affine(y, &vec![1.0; *out_channels], b);
                    }
                    y
                }
                Op::BatchNorm { eps } => {
                    let (sc, sh) = bn_affine(self, id, *eps);
                    channel_affine(ins[0].clone(), &sc, &sh)
                }
                Op::Relu => ins[0].mapv(|v| v.max(0.0)),
                Op::Dropout { .. } => ins[0].clone(),
                Op::Concat => {
                    let views: Vec<_> = ins.iter().map(|a| a.view()).collect();
                    ndarray::concatenate(Axis(1), &views).expect("shapes validated")
                }
                Op::Add => {
                    let mut acc = ins[0].clone();
                    for a in &ins[1..] {
                        acc += *a;
                    }
                    acc
                }
                Op::FactorizedReduction { out_channels } => {
                    let half = out_channels / 2;
                    let xin = ins[0];
                    let p1 = conv2d(
                        xin.view(),
                        &self.tensor(&format!("{id}.path1.weight")).data,
                        half,
                        1,
                        2,
                        0,
                        1,
                    );
                    // x[:, :, 1:, 1:] zero-padded bottom/right.
                    let shifted = shift_up_left(xin);
                    let p2 = conv2d(
                        shifted.view(),
                        &self.tensor(&format!("{id}.path2.weight")).data,
                        half,
                        1,
                        2,
                        0,
                        1,
                    );
                    let cat = ndarray::concatenate(Axis(1), &[p1.view(), p2.view()])
                        .expect("same spatial size");
                    let (sc, sh) = bn_affine(self, &format!("{id}.bn"), crate::zoo::BN_EPS);
                    channel_affine(cat, &sc, &sh)
                }
                Op::GlobalAvgPool => {
                    let a = ins[0];
                    let (n, c, h, w) = a.dim();
                    let m = a
                        .to_shape((n, c, h * w))
                        .expect("contiguous")
                        .mean_axis(Axis(2))
                        .expect("h*w > 0");
                    m.into_shape_with_order((n, c, 1, 1)).expect("n*c")
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                    padding_end,
                } => pool2d(
                    ins[0],
                    *kernel,
                    *stride,
                    (*padding, *padding_end),
                    PoolMode::Max,
                ),
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                    padding_end,
                    count_include_pad,
                } => {
                    let mode = if *count_include_pad {
                        PoolMode::AvgAll
                    } else {
                        PoolMode::AvgReal
                    };
                    pool2d(ins[0], *kernel, *stride, (*padding, *padding_end), mode)
                }
                Op::ChannelAffine => {
                    let sc = &self.tensor(&format!("{id}.scale")).data;
                    let sh = &self.tensor(&format!("{id}.shift")).data;
                    channel_affine(ins[0].clone(), sc, sh)
                }
                Op::Clip { min, max } => ins[0].mapv(|v| v.max(*min).min(*max)),
                Op::Flatten => {
                    let a = ins[0];
                    let n = a.dim().0;
                    let flat = a.len() / n;
                    a.as_standard_layout()
                        .to_owned()
                        .into_shape_with_order((n, flat, 1, 1))
                        .expect("n * flat")
                }
                Op::Linear { out_features } => {
                    let a = ins[0];
                    let n = a.dim().0;
                    let flat = a.len() / n;
                    let xs = a.to_shape((n, flat)).expect("contiguous").to_owned();
                    let wt = Array2::from_shape_vec(
                        (*out_features, flat),
                        self.tensor(&format!("{id}.weight")).data.clone(),
                    )
                    .expect("validated shape");
                    let b = Array1::from_vec(self.tensor(&format!("{id}.bias")).data.clone());
                    let y = xs.dot(&wt.t()) + &b;
                    y.into_shape_with_order((n, *out_features, 1, 1))
                        .expect("n*out")
                }
            };
            vals[i] = Some(v);
        }
        Ok(vals
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Array4::zeros((0, 0, 0, 0))))
            .collect())
    }
}
