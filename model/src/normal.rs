//! The ReLU-separated normal form (docs/ring-spec.md, DESIGN.md §3 way (a)).
//!
//! Every linear chain between shared tensors (the image and the ReLU outputs) is composed in float,
//! BN folded, into one [`IntConv`]-shaped map per (source → target) pair. A [`Stage`] produces a
//! ReLU input (or the logits) as `Z = Σ_m conv_m(src_m) + bias`. Stages come in evaluation order;
//! the output of stage j's ReLU is [`Source::Relu`]`(j)`.

use serde::{Deserialize, Serialize};

use crate::engine::bn_affine;
use crate::error::{ModelError, Result};
use crate::format::{Model, NodeId, Op, Shape};
use crate::intconv::{conv_f64, conv_f64_acc, IntConv};

/// Largest tensor a standalone [`Op::Flatten`] compiles (its map is dense: n² weights).
pub const MAX_FLATTEN: usize = 4096;

/// A shared tensor a term reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// The normalised input image.
    Image,
    /// The ReLU output of stage `j`.
    Relu(usize),
}

/// One composed linear map from a shared tensor into a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Term {
    /// What it reads.
    pub source: Source,
    /// Geometry (input = the source's shape, output = the stage's shape).
    pub conv: IntConv,
    /// Real weights, OIHW.
    pub weights: Vec<f64>,
}

/// What a stage's output feeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StageKind {
    /// The input of this ReLU node.
    Relu {
        /// Id of the ReLU node.
        node: NodeId,
    },
    /// The input of this `Clip(0, max)` node (ReLU6 at max = 6): `min(relu(Z), max)`.
    Clip {
        /// Id of the clip node.
        node: NodeId,
        /// The upper bound (> 0, finite).
        max: f64,
    },
    /// The input of this max-pool node: the stage outputs `max` over each window of Z (padding
    /// cells excluded), with a ReLU fused when one directly precedes or follows the pool
    /// (`relu ∘ max = max ∘ relu`).
    MaxPool {
        /// Id of the max-pool node.
        node: NodeId,
        /// The windows.
        pool: Pool,
        /// Whether a ReLU is fused.
        relu: bool,
    },
    /// The model's logits.
    Logits,
}

impl StageKind {
    /// Whether the stage ends in a non-linear layer (every stage but the logits).
    pub fn is_nonlinear(&self) -> bool {
        !matches!(self, StageKind::Logits)
    }
}

/// Largest max-pool window (kernel²) the normal form compiles: bounds the garbled circuit.
pub const MAX_POOL_WINDOW: usize = 256;

/// The windows of a max pool over a C × H × W tensor: kernel k × k, stride, padding before
/// (top, left) and after (bottom, right). Windows read only cells of their own channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// The pooled tensor.
    pub input: Shape,
    /// Window side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding at the top and left.
    pub padding: usize,
    /// Padding at the bottom and right.
    pub padding_end: usize,
}

impl Pool {
    /// Checks the geometry: kernel², stride ≥ 1, padding < kernel, a window that fits, and at
    /// most [`MAX_POOL_WINDOW`] cells per window (so every window holds a real cell).
    pub fn check(&self) -> std::result::Result<(), String> {
        let Pool {
            input,
            kernel,
            stride,
            padding,
            padding_end,
        } = *self;
        if kernel == 0 || stride == 0 || padding >= kernel || padding_end >= kernel {
            return Err(format!(
                "max pool kernel {kernel}, stride {stride}: need kernel, stride >= 1 and \
                 padding {padding}/{padding_end} < kernel"
            ));
        }
        if kernel.saturating_mul(kernel) > MAX_POOL_WINDOW {
            return Err(format!(
                "max pool window {kernel}x{kernel} has more than {MAX_POOL_WINDOW} cells"
            ));
        }
        let len = input
            .c
            .checked_mul(input.h)
            .and_then(|n| n.checked_mul(input.w));
        if !len.is_some_and(|n| n > 0 && n as u64 <= 1 << 40)
            || input.h + padding + padding_end < kernel
            || input.w + padding + padding_end < kernel
        {
            return Err(format!(
                "max pool window {kernel} with padding {padding}/{padding_end} does not fit \
                 {}x{}x{}",
                input.c, input.h, input.w
            ));
        }
        Ok(())
    }

    /// Cells per window (kernel²).
    pub fn window(&self) -> usize {
        self.kernel * self.kernel
    }

    /// Shape of the pooled output (valid after [`Pool::check`]).
    pub fn output(&self) -> Shape {
        let out = |n: usize| (n + self.padding + self.padding_end - self.kernel) / self.stride + 1;
        Shape {
            c: self.input.c,
            h: out(self.input.h),
            w: out(self.input.w),
        }
    }

    /// Every window's cells, output element after output element (CHW order), each window row
    /// major: the index of the cell in the (CHW) input, or `None` for a padding cell.
    pub fn cells(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        let o = self.output();
        let (h, w, k) = (self.input.h, self.input.w, self.kernel);
        (0..o.len()).flat_map(move |e| {
            let (c, i, j) = (e / (o.h * o.w), (e / o.w) % o.h, e % o.w);
            (0..k * k).map(move |uv| {
                let y = (i * self.stride + uv / k).checked_sub(self.padding)?;
                let x = (j * self.stride + uv % k).checked_sub(self.padding)?;
                (y < h && x < w).then_some((c * h + y) * w + x)
            })
        })
    }

    /// The max pool of real values (padding cells excluded).
    pub fn apply_f64(&self, z: &[f64]) -> Vec<f64> {
        let win = self.window();
        let cells: Vec<Option<usize>> = self.cells().collect();
        cells
            .chunks(win)
            .map(|w| {
                w.iter()
                    .flatten()
                    .map(|&i| z[i])
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect()
    }
}

/// `Z = Σ terms + bias`, then the stage's non-linear layer ([`StageKind`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// ReLU input or logits.
    pub kind: StageKind,
    /// Shape of Z.
    pub shape: Shape,
    /// Linear maps, at most one per (source, stride).
    pub terms: Vec<Term>,
    /// Per-element bias (len = `shape.len()`).
    pub bias: Vec<f64>,
}

impl Stage {
    /// Shape of the shared tensor the stage outputs (Z's for element-wise layers, the pooled one
    /// for a max pool).
    pub fn output_shape(&self) -> Shape {
        match &self.kind {
            StageKind::MaxPool { pool, .. } => pool.output(),
            _ => self.shape,
        }
    }

    /// The stage's non-linear layer over the reals on Z (Z itself for the logits).
    pub fn activate_f64(&self, z: &[f64]) -> Vec<f64> {
        match &self.kind {
            StageKind::Relu { .. } => z.iter().map(|v| v.max(0.0)).collect(),
            StageKind::Clip { max, .. } => z.iter().map(|v| v.max(0.0).min(*max)).collect(),
            StageKind::MaxPool { pool, relu, .. } => {
                let y = pool.apply_f64(z);
                if *relu {
                    y.into_iter().map(|v| v.max(0.0)).collect()
                } else {
                    y
                }
            }
            StageKind::Logits => z.to_vec(),
        }
    }
}

/// What the image terms read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputEncoding {
    /// The normalised image `(p/255 − mean) / std` (what [`crate::image::load_input`] returns).
    #[default]
    Normalised,
    /// Raw pixel values in [0, 255] (what [`crate::image::load_raw_input`] returns): the
    /// normalisation is folded into the image terms and biases, so pixels enter the ring as
    /// exact 8-bit integers (f_in = 0).
    RawPixels,
}

/// The compiled model: stages in evaluation order, the last one producing the logits.
/// Stage j's output (its ReLU, clip or max pool) is the shared tensor [`Source::Relu`]`(j)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalForm {
    /// Image shape.
    pub input: Shape,
    /// Stages; every one but the last is a ReLU input.
    pub stages: Vec<Stage>,
    /// What the image terms expect.
    #[serde(default)]
    pub encoding: InputEncoding,
}

/// A node's value as an affine function of shared tensors.
#[derive(Clone, Debug)]
struct Affine {
    shape: Shape,
    terms: Vec<Term>,
    bias: Vec<f64>,
}

/// A float convolution about to be applied to an [`Affine`]: dense OIHW weights over the
/// affine's channels.
struct Lin {
    out: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    w: Vec<f64>,
    /// Every kernel offset holds the same weights (global average pooling): the composition
    /// computes one product and places it at every offset.
    uniform: bool,
}

fn identity(source: Source, s: Shape) -> Affine {
    let mut w = vec![0.0; s.c * s.c];
    for c in 0..s.c {
        w[c * s.c + c] = 1.0;
    }
    Affine {
        shape: s,
        terms: vec![Term {
            source,
            conv: IntConv {
                in_channels: s.c,
                out_channels: s.c,
                in_height: s.h,
                in_width: s.w,
                kernel_h: 1,
                kernel_w: 1,
                stride: 1,
                padding: 0,
            },
            weights: w,
        }],
        bias: vec![0.0; s.len()],
    }
}

fn unsupported(node: &str, detail: impl Into<String>) -> ModelError {
    ModelError::Unsupported {
        node: node.to_string(),
        detail: detail.into(),
    }
}

/// `B ∘ A` for one term. `B` reads A's output without padding (general rule: kernel
/// `KA + (KB−1)·SA`, stride `SA·SB`, pad `PA`), or with padding when A is pointwise (1×1, stride 1,
/// pad 0: A commutes with zero padding).
fn compose(node: &str, a: &Term, b: &Lin) -> Result<Term> {
    let ac = &a.conv;
    let oa = ac.out_channels;
    let ci = ac.in_channels;
    let nz_rows: Vec<bool> = (0..oa)
        .map(|r| {
            let n = ci * ac.kernel_h * ac.kernel_w;
            a.weights[r * n..(r + 1) * n].iter().any(|&v| v != 0.0)
        })
        .collect();
    let pointwise = ac.kernel_h == 1 && ac.kernel_w == 1 && ac.stride == 1 && ac.padding == 0;
    if b.pad > 0 && !pointwise {
        return Err(unsupported(
            node,
            format!(
                "padded conv (pad {}) over a composed {}x{} stride-{} map: it would read the \
                 zero padding of an intermediate tensor",
                b.pad, ac.kernel_h, ac.kernel_w, ac.stride
            ),
        ));
    }
    let (conv, sa) = if b.pad > 0 {
        (
            IntConv {
                in_channels: ci,
                out_channels: b.out,
                in_height: ac.in_height,
                in_width: ac.in_width,
                kernel_h: b.kh,
                kernel_w: b.kw,
                stride: b.stride,
                padding: b.pad,
            },
            1,
        )
    } else {
        (
            IntConv {
                in_channels: ci,
                out_channels: b.out,
                in_height: ac.in_height,
                in_width: ac.in_width,
                kernel_h: ac.kernel_h + (b.kh - 1) * ac.stride,
                kernel_w: ac.kernel_w + (b.kw - 1) * ac.stride,
                stride: ac.stride * b.stride,
                padding: ac.padding,
            },
            ac.stride,
        )
    };
    let (kch, kcw) = (conv.kernel_h, conv.kernel_w);
    let (kah, kaw) = (ac.kernel_h, ac.kernel_w);
    let ka = ci * kah * kaw;
    let rows: Vec<usize> = (0..oa).filter(|&r| nz_rows[r]).collect();
    let mut w = vec![0.0; conv.weight_len()];
    // For each offset (p, q) of B: T = B[:, :, p, q] · A, a matrix product over A's output
    // channels (blocked so that rows of A are reused from cache), then T is added into the
    // composite kernel at offset (p·SA, q·SA).
    let mut t = vec![0.0; b.out * ka];
    const OB: usize = 16;
    const KB: usize = 1024;
    let mut have_t = false;
    for p in 0..b.kh {
        for q in 0..b.kw {
            if !(b.uniform && have_t) {
                t.fill(0.0);
                let mut any = false;
                for o0 in (0..b.out).step_by(OB) {
                    let o1 = (o0 + OB).min(b.out);
                    for k0 in (0..ka).step_by(KB) {
                        let k1 = (k0 + KB).min(ka);
                        for &r in &rows {
                            let arow = &a.weights[r * ka + k0..r * ka + k1];
                            for o in o0..o1 {
                                let wb = b.w[((o * oa + r) * b.kh + p) * b.kw + q];
                                if wb == 0.0 {
                                    continue;
                                }
                                any = true;
                                let trow = &mut t[o * ka + k0..o * ka + k1];
                                for (tv, &av) in trow.iter_mut().zip(arow) {
                                    *tv += wb * av;
                                }
                            }
                        }
                    }
                }
                have_t = true;
                if !any {
                    if b.uniform {
                        break;
                    }
                    continue;
                }
            }
            for o in 0..b.out {
                for c in 0..ci {
                    for u in 0..kah {
                        let src = &t[((o * ci + c) * kah + u) * kaw..][..kaw];
                        let dst = &mut w[((o * ci + c) * kch + p * sa + u) * kcw + q * sa..][..kaw];
                        for (d, &sv) in dst.iter_mut().zip(src) {
                            *d += sv;
                        }
                    }
                }
            }
        }
    }
    Ok(Term {
        source: a.source,
        conv,
        weights: w,
    })
}

/// Sums terms that read the same source with the same stride, embedding each kernel into a common
/// geometry (kernel offset by the padding difference). Keeps the term count ≤ sources.
fn merge(terms: Vec<Term>) -> Vec<Term> {
    let mut out: Vec<Term> = Vec::new();
    for t in terms {
        match out
            .iter_mut()
            .find(|m| m.source == t.source && m.conv.stride == t.conv.stride)
        {
            None => out.push(t),
            Some(m) => {
                let (a, b) = (m.conv, t.conv);
                let p = a.padding.max(b.padding);
                let (da, db) = (p - a.padding, p - b.padding);
                let s = a.stride;
                let (oh, ow) = (a.out_height(), a.out_width());
                let fit = |n: usize, out: usize, k1: usize, k2: usize| {
                    (k1.max(k2)).max((n + 2 * p + 1).saturating_sub(s * out))
                };
                let kh = fit(a.in_height, oh, a.kernel_h + da, b.kernel_h + db);
                let kw = fit(a.in_width, ow, a.kernel_w + da, b.kernel_w + db);
                let conv = IntConv {
                    kernel_h: kh,
                    kernel_w: kw,
                    padding: p,
                    ..a
                };
                let mut w = vec![0.0; conv.weight_len()];
                for (src, c, d) in [(&m.weights, a, da), (&t.weights, b, db)] {
                    for oc in 0..c.out_channels * c.in_channels {
                        for u in 0..c.kernel_h {
                            for v in 0..c.kernel_w {
                                w[(oc * kh + u + d) * kw + v + d] +=
                                    src[(oc * c.kernel_h + u) * c.kernel_w + v];
                            }
                        }
                    }
                }
                debug_assert_eq!((conv.out_height(), conv.out_width()), (oh, ow));
                m.conv = conv;
                m.weights = w;
            }
        }
    }
    out
}

impl Affine {
    fn apply(&self, node: &str, lin: &Lin, bias: Option<&[f32]>) -> Result<Affine> {
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            terms.push(compose(node, t, lin)?);
        }
        let s = self.shape;
        let bconv = IntConv {
            in_channels: s.c,
            out_channels: lin.out,
            in_height: s.h,
            in_width: s.w,
            kernel_h: lin.kh,
            kernel_w: lin.kw,
            stride: lin.stride,
            padding: lin.pad,
        };
        let mut b = conv_f64(&bconv, &lin.w, &self.bias)?;
        let shape = Shape {
            c: lin.out,
            h: bconv.out_height(),
            w: bconv.out_width(),
        };
        if let Some(cb) = bias {
            let hw = shape.h * shape.w;
            for (i, v) in b.iter_mut().enumerate() {
                *v += f64::from(cb[i / hw]);
            }
        }
        Ok(Affine {
            shape,
            terms: merge(terms),
            bias: b,
        })
    }

    fn channel_affine(mut self, scale: &[f32], shift: &[f32]) -> Affine {
        for t in &mut self.terms {
            let per = t.conv.in_channels * t.conv.kernel_h * t.conv.kernel_w;
            for (o, row) in t.weights.chunks_mut(per).enumerate() {
                row.iter_mut().for_each(|w| *w *= f64::from(scale[o]));
            }
        }
        let hw = self.shape.h * self.shape.w;
        for (i, b) in self.bias.iter_mut().enumerate() {
            let c = i / hw;
            *b = *b * f64::from(scale[c]) + f64::from(shift[c]);
        }
        self
    }

    fn concat(parts: &[&Affine]) -> Affine {
        let c: usize = parts.iter().map(|a| a.shape.c).sum();
        let (h, w) = (parts[0].shape.h, parts[0].shape.w);
        let mut terms = Vec::new();
        let mut bias = Vec::with_capacity(c * h * w);
        let mut off = 0;
        for a in parts {
            for t in &a.terms {
                let per = t.conv.in_channels * t.conv.kernel_h * t.conv.kernel_w;
                let mut wt = vec![0.0; c * per];
                wt[off * per..(off + a.shape.c) * per].copy_from_slice(&t.weights);
                terms.push(Term {
                    source: t.source,
                    conv: IntConv {
                        out_channels: c,
                        ..t.conv
                    },
                    weights: wt,
                });
            }
            bias.extend_from_slice(&a.bias);
            off += a.shape.c;
        }
        Affine {
            shape: Shape { c, h, w },
            terms: merge(terms),
            bias,
        }
    }

    fn add(parts: &[&Affine]) -> Affine {
        let mut terms = Vec::new();
        let mut bias = vec![0.0; parts[0].bias.len()];
        for a in parts {
            terms.extend(a.terms.iter().cloned());
            bias.iter_mut().zip(&a.bias).for_each(|(x, y)| *x += y);
        }
        Affine {
            shape: parts[0].shape,
            terms: merge(terms),
            bias,
        }
    }
}

/// Global average pooling as a (diagonal, uniform) convolution with kernel H × W.
fn gap_lin(s: Shape) -> Lin {
    let mut w = vec![0.0; s.c * s.c * s.h * s.w];
    let inv = 1.0 / (s.h * s.w) as f64;
    for c in 0..s.c {
        w[(c * s.c + c) * s.h * s.w..][..s.h * s.w].fill(inv);
    }
    Lin {
        out: s.c,
        kh: s.h,
        kw: s.w,
        stride: 1,
        pad: 0,
        w,
        uniform: true,
    }
}

fn dense_conv_weights(w: &[f32], out: usize, cin: usize, groups: usize, k: usize) -> Vec<f64> {
    let cg = cin / groups;
    let og = out / groups;
    let mut d = vec![0.0; out * cin * k * k];
    for o in 0..out {
        let g = o / og;
        for ci in 0..cg {
            let c = g * cg + ci;
            for uv in 0..k * k {
                d[(o * cin + c) * k * k + uv] = f64::from(w[(o * cg + ci) * k * k + uv]);
            }
        }
    }
    d
}

impl NormalForm {
    /// Compile a validated model (BN folded, every linear chain composed).
    pub fn compile(model: &Model) -> Result<NormalForm> {
        let spec = &model.spec;
        let g = &model.graph;
        let n = spec.nodes.len();
        let mut vals: Vec<Option<Affine>> = vec![None; n];
        // A global average pool is kept pending (its input node) until its consumer is known:
        // GAP∘Linear is fused into one small map before it meets the composed terms.
        let mut pending_gap: Vec<Option<usize>> = vec![None; n];
        // Remaining consumers of each node: the last one takes the value instead of cloning it.
        let mut uses = vec![0usize; n];
        for ins in &g.inputs {
            for &j in ins {
                uses[j] += 1;
            }
        }
        uses[g.output] += 1;
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ins) in g.inputs.iter().enumerate() {
            for &j in ins {
                consumers[j].push(i);
            }
        }
        // The only consumer of node i, when there is exactly one and i is not the output.
        let sole = |i: usize| -> Option<&Op> {
            match consumers[i].as_slice() {
                [c] if i != g.output => Some(&spec.nodes[*c].op),
                _ => None,
            }
        };
        // A ReLU whose only consumer is a max pool is fused into the pool's stage: its value is
        // the affine ReLU input. A max pool whose only consumer is a ReLU fuses it: that ReLU
        // passes the (non-negative) pool output through.
        let mut relu_deferred = vec![false; n];
        let mut relu_fused_after = vec![false; n];
        let mut stages = Vec::new();
        let input = g.shapes[g.input];
        for &i in &g.order {
            let node = &spec.nodes[i];
            let id = node.id.as_str();
            let op = &node.op;
            // Pending GAPs flow through dropout and fuse into a linear layer.
            let first = g.inputs[i].first().copied();
            if let Some(j) = first.filter(|&j| pending_gap[j].is_some()) {
                match op {
                    Op::Dropout { .. } => {
                        pending_gap[i] = pending_gap[j];
                        continue;
                    }
                    Op::Linear { out_features } => {
                        let src = pending_gap[j].expect("pending");
                        let s = g.shapes[src];
                        let hw = s.h * s.w;
                        let fc = &model.tensor(&format!("{id}.weight")).data;
                        let mut w = Vec::with_capacity(out_features * s.c * hw);
                        for &v in fc.iter() {
                            let v = f64::from(v) / hw as f64;
                            w.extend(std::iter::repeat_n(v, hw));
                        }
                        let lin = Lin {
                            out: *out_features,
                            kh: s.h,
                            kw: s.w,
                            stride: 1,
                            pad: 0,
                            w,
                            uniform: true,
                        };
                        let b = model.tensor(&format!("{id}.bias")).data.as_slice();
                        let a = vals[src].as_ref().expect("GAP input evaluated");
                        vals[i] = Some(a.apply(id, &lin, Some(b))?);
                        continue;
                    }
                    _ => {}
                }
            }
            // Any other consumer materialises pending GAPs.
            for &j in &g.inputs[i] {
                if let Some(src) = pending_gap[j].take() {
                    let a = vals[src].as_ref().expect("GAP input evaluated");
                    vals[j] = Some(a.apply(&spec.nodes[j].id, &gap_lin(a.shape), None)?);
                }
            }
            if *op == Op::GlobalAvgPool {
                let j = first.expect("validated arity");
                pending_gap[i] = Some(j);
                // Keep the input alive for the fused consumer.
                uses[j] += 1;
                continue;
            }
            let ins: Vec<&Affine> = g.inputs[i]
                .iter()
                .map(|&j| vals[j].as_ref().expect("topological order"))
                .collect();
            // Take the value of a single-input op's input when this is its last consumer.
            let owned = |vals: &mut Vec<Option<Affine>>, uses: &mut Vec<usize>| -> Affine {
                let j = first.expect("validated arity");
                if uses[j] == 1 {
                    vals[j].take().expect("evaluated")
                } else {
                    vals[j].clone().expect("evaluated")
                }
            };
            let v = match op {
                Op::Input => identity(Source::Image, input),
                Op::Relu if relu_fused_after[first.expect("validated arity")] => {
                    drop(ins);
                    owned(&mut vals, &mut uses)
                }
                Op::Relu if matches!(sole(i), Some(Op::MaxPool { .. })) => {
                    relu_deferred[i] = true;
                    drop(ins);
                    owned(&mut vals, &mut uses)
                }
                Op::Relu => {
                    let a = ins[0];
                    stages.push(Stage {
                        kind: StageKind::Relu {
                            node: node.id.clone(),
                        },
                        shape: a.shape,
                        terms: a.terms.clone(),
                        bias: a.bias.clone(),
                    });
                    identity(Source::Relu(stages.len() - 1), a.shape)
                }
                Op::Dropout { .. } => {
                    drop(ins);
                    owned(&mut vals, &mut uses)
                }
                Op::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    groups,
                    bias,
                } => {
                    let cin = ins[0].shape.c;
                    let w = &model.tensor(&format!("{id}.weight")).data;
                    let lin = Lin {
                        out: *out_channels,
                        kh: *kernel,
                        kw: *kernel,
                        stride: *stride,
                        pad: *padding,
                        w: dense_conv_weights(w, *out_channels, cin, *groups, *kernel),
                        uniform: false,
                    };
                    let b = bias.then(|| model.tensor(&format!("{id}.bias")).data.as_slice());
                    ins[0].apply(id, &lin, b)?
                }
                Op::BatchNorm { eps } => {
                    drop(ins);
                    let (sc, sh) = bn_affine(model, id, *eps);
                    owned(&mut vals, &mut uses).channel_affine(&sc, &sh)
                }
                Op::Concat => Affine::concat(&ins),
                Op::Add => Affine::add(&ins),
                Op::FactorizedReduction { out_channels } => {
                    let a = ins[0];
                    if !a.shape.h.is_multiple_of(2) || !a.shape.w.is_multiple_of(2) {
                        return Err(unsupported(
                            id,
                            format!(
                                "factorized reduction of odd {}x{} input (path 2 reads padding)",
                                a.shape.h, a.shape.w
                            ),
                        ));
                    }
                    let half = out_channels / 2;
                    let cin = a.shape.c;
                    let w1 = &model.tensor(&format!("{id}.path1.weight")).data;
                    let w2 = &model.tensor(&format!("{id}.path2.weight")).data;
                    let p1 = Lin {
                        out: half,
                        kh: 1,
                        kw: 1,
                        stride: 2,
                        pad: 0,
                        w: w1.iter().map(|&v| f64::from(v)).collect(),
                        uniform: false,
                    };
                    // Path 2 = 2×2 stride-2 kernel with the weight at (1, 1).
                    let mut k2 = vec![0.0; half * cin * 4];
                    for (oc, &v) in w2.iter().enumerate() {
                        k2[oc * 4 + 3] = f64::from(v);
                    }
                    let p2 = Lin {
                        out: half,
                        kh: 2,
                        kw: 2,
                        stride: 2,
                        pad: 0,
                        w: k2,
                        uniform: false,
                    };
                    let y1 = a.apply(id, &p1, None)?;
                    let y2 = a.apply(id, &p2, None)?;
                    let (sc, sh) = bn_affine(model, &format!("{id}.bn"), crate::zoo::BN_EPS);
                    Affine::concat(&[&y1, &y2]).channel_affine(&sc, &sh)
                }
                Op::GlobalAvgPool => unreachable!("handled above"),
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                    padding_end,
                } => {
                    let a = ins[0];
                    let pool = Pool {
                        input: a.shape,
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                        padding_end: *padding_end,
                    };
                    pool.check().map_err(|e| unsupported(id, e))?;
                    let before = relu_deferred[first.expect("validated arity")];
                    let after = matches!(sole(i), Some(Op::Relu));
                    relu_fused_after[i] = after;
                    stages.push(Stage {
                        kind: StageKind::MaxPool {
                            node: node.id.clone(),
                            pool,
                            relu: before || after,
                        },
                        shape: a.shape,
                        terms: a.terms.clone(),
                        bias: a.bias.clone(),
                    });
                    identity(Source::Relu(stages.len() - 1), pool.output())
                }
                Op::Clip { min, max } => {
                    if *min != 0.0 || !(max.is_finite() && *max > 0.0) {
                        return Err(unsupported(
                            id,
                            format!(
                                "clip to [{min}, {max}]: private inference takes Clip(0, c) with \
                                 a finite c > 0 (ReLU6); replace it with relu and fine-tune"
                            ),
                        ));
                    }
                    let a = ins[0];
                    stages.push(Stage {
                        kind: StageKind::Clip {
                            node: node.id.clone(),
                            max: f64::from(*max),
                        },
                        shape: a.shape,
                        terms: a.terms.clone(),
                        bias: a.bias.clone(),
                    });
                    identity(Source::Relu(stages.len() - 1), a.shape)
                }
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                    padding_end,
                    count_include_pad,
                } => {
                    if padding != padding_end {
                        return Err(unsupported(
                            id,
                            format!(
                                "average pool with padding {padding} before and {padding_end} \
                                 after: the normal form pads symmetrically"
                            ),
                        ));
                    }
                    if *padding > 0 && !count_include_pad {
                        return Err(unsupported(
                            id,
                            "average pool with padding that excludes padding cells from the \
                             divisor is not a convolution (the divisor depends on the position); \
                             use count_include_pad = 1 or no padding",
                        ));
                    }
                    let s = ins[0].shape;
                    let k2 = kernel * kernel;
                    let mut w = vec![0.0; s.c * s.c * k2];
                    for c in 0..s.c {
                        w[(c * s.c + c) * k2..][..k2].fill(1.0 / k2 as f64);
                    }
                    let lin = Lin {
                        out: s.c,
                        kh: *kernel,
                        kw: *kernel,
                        stride: *stride,
                        pad: *padding,
                        w,
                        uniform: false,
                    };
                    ins[0].apply(id, &lin, None)?
                }
                Op::ChannelAffine => {
                    drop(ins);
                    let sc = &model.tensor(&format!("{id}.scale")).data;
                    let sh = &model.tensor(&format!("{id}.shift")).data;
                    owned(&mut vals, &mut uses).channel_affine(sc, sh)
                }
                Op::Flatten => {
                    let s = ins[0].shape;
                    let n = s.len();
                    if n > MAX_FLATTEN {
                        return Err(unsupported(
                            id,
                            format!(
                                "flatten of {n} elements as its own map (limit {MAX_FLATTEN}): \
                                 feed the tensor straight into a linear layer instead"
                            ),
                        ));
                    }
                    // One-hot kernel H × W: output channel (c·H + y)·W + x reads (c, y, x).
                    let hw = s.h * s.w;
                    let mut w = vec![0.0; n * s.c * hw];
                    for o in 0..n {
                        w[o * s.c * hw + o] = 1.0;
                    }
                    let lin = Lin {
                        out: n,
                        kh: s.h,
                        kw: s.w,
                        stride: 1,
                        pad: 0,
                        w,
                        uniform: false,
                    };
                    ins[0].apply(id, &lin, None)?
                }
                Op::Linear { out_features } => {
                    let s = ins[0].shape;
                    let lin = Lin {
                        out: *out_features,
                        kh: s.h,
                        kw: s.w,
                        stride: 1,
                        pad: 0,
                        w: model
                            .tensor(&format!("{id}.weight"))
                            .data
                            .iter()
                            .map(|&v| f64::from(v))
                            .collect(),
                        uniform: false,
                    };
                    let b = model.tensor(&format!("{id}.bias")).data.as_slice();
                    ins[0].apply(id, &lin, Some(b))?
                }
            };
            debug_assert_eq!(v.shape, g.shapes[i], "node {id}");
            for &j in &g.inputs[i] {
                uses[j] = uses[j].saturating_sub(1);
                if uses[j] == 0 {
                    vals[j] = None;
                }
            }
            vals[i] = Some(v);
        }
        if let Some(src) = pending_gap[g.output].take() {
            let a = vals[src].as_ref().expect("GAP input evaluated");
            vals[g.output] = Some(a.apply(&spec.nodes[g.output].id, &gap_lin(a.shape), None)?);
        }
        let out = vals[g.output].take().expect("output evaluated");
        stages.push(Stage {
            kind: StageKind::Logits,
            shape: out.shape,
            terms: out.terms,
            bias: out.bias,
        });
        Ok(NormalForm {
            input,
            stages,
            encoding: InputEncoding::Normalised,
        })
    }

    /// Folds the input normalisation `(p/255 − mean[c]) / std[c]` into every image term: weights
    /// are scaled by `1/(255·std[c])` and the constant `−mean[c]/std[c]`, pushed through the
    /// (zero-padded) term, joins the stage bias. The result reads raw pixels in [0, 255].
    pub fn fold_normalisation(&self, input: &crate::format::InputSpec) -> Result<NormalForm> {
        let s = self.input;
        if self.encoding != InputEncoding::Normalised
            || input.channels != s.c
            || input.mean.len() != s.c
            || input.std.len() != s.c
            || input.std.iter().any(|&d| !(d.is_finite() && d > 0.0))
        {
            return Err(ModelError::InputSpec {
                detail: format!(
                    "cannot fold normalisation ({:?}, {} channels, {}/{} mean/std) into a {:?} \
                     normal form with {} channels",
                    input.channels,
                    input.channels,
                    input.mean.len(),
                    input.std.len(),
                    self.encoding,
                    s.c
                ),
            });
        }
        let hw = s.h * s.w;
        let constant: Vec<f64> = (0..s.len())
            .map(|i| -f64::from(input.mean[i / hw]) / f64::from(input.std[i / hw]))
            .collect();
        let mut out = self.clone();
        for st in &mut out.stages {
            for t in st.terms.iter_mut().filter(|t| t.source == Source::Image) {
                let shift = conv_f64(&t.conv, &t.weights, &constant)?;
                st.bias.iter_mut().zip(shift).for_each(|(b, v)| *b += v);
                let per = t.conv.kernel_h * t.conv.kernel_w;
                for (i, chunk) in t.weights.chunks_mut(per).enumerate() {
                    let c = i % t.conv.in_channels;
                    let scale = 1.0 / (255.0 * f64::from(input.std[c]));
                    chunk.iter_mut().for_each(|w| *w *= scale);
                }
            }
        }
        out.encoding = InputEncoding::RawPixels;
        Ok(out)
    }

    /// Shape of a shared tensor.
    pub fn source_shape(&self, s: Source) -> Shape {
        match s {
            Source::Image => self.input,
            Source::Relu(j) => self.stages[j].output_shape(),
        }
    }

    /// Number of garbled circuit instances: ReLUs and clips (elements of their stages) and max
    /// pool outputs.
    pub fn relu_count(&self) -> usize {
        self.stages[..self.stages.len() - 1]
            .iter()
            .map(|s| s.output_shape().len())
            .sum()
    }

    /// Dense MACs of all terms (the server's plaintext work per image).
    pub fn macs(&self) -> usize {
        self.stages
            .iter()
            .flat_map(|s| &s.terms)
            .map(|t| t.conv.macs())
            .sum()
    }

    /// Evaluates every stage over the reals on one normalised CHW image; returns each stage's Z
    /// (the input of its ReLU, clip or max pool; the last is the logits).
    pub fn eval_f64(&self, x: &[f64]) -> Result<Vec<Vec<f64>>> {
        if x.len() != self.input.len() {
            return Err(ModelError::InputShape {
                expected: vec![self.input.c, self.input.h, self.input.w],
                found: vec![x.len()],
            });
        }
        let mut zs: Vec<Vec<f64>> = Vec::with_capacity(self.stages.len());
        let mut acts: Vec<Vec<f64>> = Vec::with_capacity(self.stages.len());
        for st in &self.stages {
            let mut z = st.bias.clone();
            for t in &st.terms {
                let src = match t.source {
                    Source::Image => x,
                    Source::Relu(j) => &acts[j],
                };
                conv_f64_acc(&t.conv, &t.weights, src, &mut z);
            }
            acts.push(st.activate_f64(&z));
            zs.push(z);
        }
        Ok(zs)
    }

    /// Logits over the reals for one normalised CHW image.
    pub fn logits_f64(&self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(self.eval_f64(x)?.pop().expect("at least the logits stage"))
    }
}
