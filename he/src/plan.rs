//! Cheetah-style coefficient packing of one stage `Z = Σ_m IntConv_m(src_m)`.
//!
//! Every term is first rewritten as a **stride-1** convolution over "canonical" channels:
//! * stride S > 1: polyphase (space-to-depth) — phase (u0, v0) of the padded input,
//!   `X_{u0,v0}[a][b] = Xpad[S·a + u0][S·b + v0]`, becomes its own channel and the kernel shrinks to
//!   ⌈K/S⌉ (tap (l, l') of phase (u0, v0) is `W[S·l + u0][S·l' + v0]`); phases no kernel tap reaches
//!   are dropped (a stride-2 1×1 keeps one phase of four);
//! * output 1×1 (a fully connected layer, kernel = whole input): a 1×1 conv over C·KH·KW channels,
//!   keeping only the taps that fall inside the input.
//!
//! All terms then share one output layout. Output tile `th × tw`, row stride `Wt = tw + max kw − 1`,
//! block length L, offset O and `k_s` output channels per ciphertext. Term m packs `c_b` channels of a
//! zero-halo input tile of `(th + kh − 1)` rows at channel stride `P = (th + kh − 1)·Wt`:
//! input `(c, r, q)` → coefficient `c·P + r·Wt + q`; kernel `(s, c, l, l')` →
//! `s·L + O − c·P − l·Wt − l'`; output `(s, i, j)` appears at `s·L + O + i·Wt + j`. With
//! `c_b·P ≤ L`, `k_s·L ≤ N` and `O ≥ (c_b − 1)·P + (kh − 1)·Wt + kw − 1` for every term, each output
//! coefficient receives exactly the terms of the convolution (no negacyclic wrap, no cross-talk), so
//! products of different terms and channel blocks can simply be added.

use crate::conv::IntConv;
use crate::error::HeError;

/// How a term's canonical channels map back to its source tensor and weights.
#[derive(Debug, Clone)]
enum Canon {
    /// Stride-1 conv over polyphase channels `(c, phase)`.
    Phases(Vec<(usize, usize)>),
    /// 1×1 conv over channels `(c, tap)` (output 1×1).
    Flat(Vec<(usize, usize)>),
}

/// One term after canonicalisation and blocking.
#[derive(Debug, Clone)]
pub(crate) struct TermPlan {
    pub(crate) conv: IntConv,
    canon: Canon,
    /// Canonical channels.
    pub(crate) chans: usize,
    /// Canonical kernel.
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    /// Canonical input height/width (only what the outputs read).
    ch_h: usize,
    ch_w: usize,
    /// Channels per ciphertext.
    pub(crate) c_b: usize,
    /// Channel stride in coefficients.
    pub(crate) p: usize,
    /// Channel blocks (ciphertexts per tile).
    pub(crate) n_blocks: usize,
}

impl TermPlan {
    fn new(conv: IntConv) -> Self {
        let (oh, ow) = (conv.out_height(), conv.out_width());
        let (s, p) = (conv.stride, conv.padding);
        if oh == 1 && ow == 1 {
            let mut taps = Vec::new();
            for u in 0..conv.kernel_h {
                for v in 0..conv.kernel_w {
                    let inside_y = u >= p && u - p < conv.in_height;
                    let inside_x = v >= p && v - p < conv.in_width;
                    if inside_y && inside_x {
                        taps.push((u, v));
                    }
                }
            }
            let chans = conv.in_channels * taps.len();
            TermPlan {
                conv,
                canon: Canon::Flat(taps),
                chans,
                kh: 1,
                kw: 1,
                ch_h: 1,
                ch_w: 1,
                c_b: 0,
                p: 0,
                n_blocks: 0,
            }
        } else {
            let kh = conv.kernel_h.div_ceil(s);
            let kw = conv.kernel_w.div_ceil(s);
            let mut phases = Vec::new();
            for u0 in 0..s.min(conv.kernel_h) {
                for v0 in 0..s.min(conv.kernel_w) {
                    phases.push((u0, v0));
                }
            }
            let chans = conv.in_channels * phases.len();
            TermPlan {
                conv,
                canon: Canon::Phases(phases),
                chans,
                kh,
                kw,
                ch_h: oh + kh - 1,
                ch_w: ow + kw - 1,
                c_b: 0,
                p: 0,
                n_blocks: 0,
            }
        }
    }

    /// Source index (CHW) of canonical input `(cp, y, x)`, or `None` for a structural zero.
    fn input_index(&self, cp: usize, y: usize, x: usize) -> Option<usize> {
        let c = &self.conv;
        match &self.canon {
            Canon::Phases(ph) => {
                let (ch, (u0, v0)) = (cp / ph.len(), ph[cp % ph.len()]);
                let iy = (c.stride * y + u0).checked_sub(c.padding)?;
                let ix = (c.stride * x + v0).checked_sub(c.padding)?;
                (iy < c.in_height && ix < c.in_width)
                    .then(|| (ch * c.in_height + iy) * c.in_width + ix)
            }
            Canon::Flat(taps) => {
                let (ch, (u, v)) = (cp / taps.len(), taps[cp % taps.len()]);
                Some((ch * c.in_height + u - c.padding) * c.in_width + v - c.padding)
            }
        }
    }

    /// Weight index (OIHW) of canonical tap `(o, cp, l, l')`, or `None` for a structural zero.
    pub(crate) fn weight_index(&self, o: usize, cp: usize, l: usize, lp: usize) -> Option<usize> {
        let c = &self.conv;
        let (ch, u, v) = match &self.canon {
            Canon::Phases(ph) => {
                let (u0, v0) = ph[cp % ph.len()];
                (cp / ph.len(), c.stride * l + u0, c.stride * lp + v0)
            }
            Canon::Flat(taps) => {
                let (u, v) = taps[cp % taps.len()];
                (cp / taps.len(), u, v)
            }
        };
        (u < c.kernel_h && v < c.kernel_w)
            .then(|| ((o * c.in_channels + ch) * c.kernel_h + u) * c.kernel_w + v)
    }
}

/// Relative costs used to pick a packing (an input ciphertext ≈ an output ciphertext ≈ 4 products).
const COST_IN: f64 = 1.0;
const COST_OUT: f64 = 1.0;
const COST_MUL: f64 = 0.25;

/// The public packing plan of a stage; client and server derive the same plan from the geometry.
#[derive(Debug, Clone)]
pub struct StagePlan {
    n: usize,
    out_shape: (usize, usize, usize),
    th: usize,
    tw: usize,
    wt: usize,
    tiles_y: usize,
    tiles_x: usize,
    pub(crate) k_s: usize,
    pub(crate) l: usize,
    pub(crate) o_off: usize,
    pub(crate) n_outb: usize,
    pub(crate) terms: Vec<TermPlan>,
    /// First input ciphertext of each term.
    pub(crate) in_offset: Vec<usize>,
    /// Per input ciphertext: (coefficient, source index) pairs.
    pub(crate) in_maps: Vec<Vec<(u32, u32)>>,
    /// Per output ciphertext: (coefficient, output index) pairs.
    pub(crate) out_maps: Vec<Vec<(u32, u32)>>,
}

fn tile_candidates(d: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (1..=d).map(|n| d.div_ceil(n)).collect();
    v.dedup();
    v
}

impl StagePlan {
    /// Plans the packing of `terms` (all with the same output shape) for degree `n`.
    pub(crate) fn new(n: usize, terms: &[IntConv]) -> Result<Self, HeError> {
        let first = terms.first().ok_or(HeError::EmptyStage)?;
        let expected = first.output_shape();
        for (i, t) in terms.iter().enumerate() {
            t.check()?;
            if t.output_shape() != expected {
                return Err(HeError::TermShape {
                    term: i,
                    got: t.output_shape(),
                    expected,
                });
            }
        }
        let (o_n, oh, ow) = expected;
        let mut tps: Vec<TermPlan> = terms.iter().map(|&c| TermPlan::new(c)).collect();
        let max_kw = tps.iter().map(|t| t.kw).max().unwrap_or(1);

        // (cost, th, tw, k_s, c_b per term)
        let mut best: Option<(f64, usize, usize, usize, Vec<usize>)> = None;
        for &th in &tile_candidates(oh) {
            for &tw in &tile_candidates(ow) {
                let wt = tw + max_kw - 1;
                let ps: Vec<usize> = tps.iter().map(|t| (th + t.kh - 1) * wt).collect();
                let max_p = *ps.iter().max().unwrap_or(&1);
                let n_tiles = oh.div_ceil(th) * ow.div_ceil(tw);
                for k_s in 1..=o_n {
                    if k_s * max_p > n {
                        break;
                    }
                    let l_max = n / k_s;
                    let cbs: Vec<usize> = tps
                        .iter()
                        .zip(&ps)
                        .map(|(t, &p)| t.chans.min(l_max / p))
                        .collect();
                    let blocks: usize = tps
                        .iter()
                        .zip(&cbs)
                        .map(|(t, &cb)| t.chans.div_ceil(cb))
                        .sum();
                    let n_outb = o_n.div_ceil(k_s);
                    let n_in = n_tiles * blocks;
                    let n_out = n_tiles * n_outb;
                    let cost = COST_IN * n_in as f64
                        + COST_OUT * n_out as f64
                        + COST_MUL * (n_in * n_outb) as f64;
                    if best.as_ref().is_none_or(|b| cost < b.0) {
                        best = Some((cost, th, tw, k_s, cbs));
                    }
                }
            }
        }
        let (_, th, tw, k_s, cbs) = best.ok_or_else(|| HeError::Packing {
            n,
            reason: "even a 1x1 output tile of one channel exceeds N coefficients".into(),
        })?;
        let wt = tw + max_kw - 1;
        for (t, &cb) in tps.iter_mut().zip(&cbs) {
            t.c_b = cb;
            t.p = (th + t.kh - 1) * wt;
            t.n_blocks = t.chans.div_ceil(cb);
        }
        let l = tps.iter().map(|t| t.c_b * t.p).max().unwrap_or(0);
        let o_off = tps
            .iter()
            .map(|t| (t.c_b - 1) * t.p + (t.kh - 1) * wt + t.kw - 1)
            .max()
            .unwrap_or(0);
        let n_outb = o_n.div_ceil(k_s);
        let (tiles_y, tiles_x) = (oh.div_ceil(th), ow.div_ceil(tw));
        // The layout invariants of the module documentation.
        let last = (k_s - 1) * l + o_off + (th - 1) * wt + tw - 1;
        if k_s * l > n || last >= n {
            return Err(HeError::Packing {
                n,
                reason: format!("layout overflow (k_s={k_s}, L={l}, O={o_off})"),
            });
        }

        let mut in_offset = Vec::with_capacity(tps.len());
        let mut in_maps = Vec::new();
        for t in &tps {
            in_offset.push(in_maps.len());
            for ty in 0..tiles_y {
                for tx in 0..tiles_x {
                    for cb in 0..t.n_blocks {
                        let mut map = Vec::new();
                        for cl in 0..t.c_b {
                            let cp = cb * t.c_b + cl;
                            if cp >= t.chans {
                                break;
                            }
                            for r in 0..th + t.kh - 1 {
                                let y = ty * th + r;
                                if y >= t.ch_h {
                                    break;
                                }
                                for q in 0..tw + t.kw - 1 {
                                    let x = tx * tw + q;
                                    if x >= t.ch_w {
                                        break;
                                    }
                                    if let Some(src) = t.input_index(cp, y, x) {
                                        map.push(((cl * t.p + r * wt + q) as u32, src as u32));
                                    }
                                }
                            }
                        }
                        in_maps.push(map);
                    }
                }
            }
        }
        let mut out_maps = Vec::new();
        for ty in 0..tiles_y {
            for tx in 0..tiles_x {
                for ob in 0..n_outb {
                    let mut map = Vec::new();
                    for s in 0..k_s {
                        let o = ob * k_s + s;
                        if o >= o_n {
                            break;
                        }
                        for i in 0..th {
                            let y = ty * th + i;
                            if y >= oh {
                                break;
                            }
                            for j in 0..tw {
                                let x = tx * tw + j;
                                if x >= ow {
                                    break;
                                }
                                map.push((
                                    (s * l + o_off + i * wt + j) as u32,
                                    ((o * oh + y) * ow + x) as u32,
                                ));
                            }
                        }
                    }
                    out_maps.push(map);
                }
            }
        }
        Ok(StagePlan {
            n,
            out_shape: expected,
            th,
            tw,
            wt,
            tiles_y,
            tiles_x,
            k_s,
            l,
            o_off,
            n_outb,
            terms: tps,
            in_offset,
            in_maps,
            out_maps,
        })
    }

    /// Polynomial degree the plan was made for.
    pub fn degree(&self) -> usize {
        self.n
    }

    /// Output tensor shape (O, H', W').
    pub fn output_shape(&self) -> (usize, usize, usize) {
        self.out_shape
    }

    /// Output length O·H'·W'.
    pub fn output_len(&self) -> usize {
        self.out_shape.0 * self.out_shape.1 * self.out_shape.2
    }

    /// Number of ciphertexts the client uploads.
    pub fn input_ciphertexts(&self) -> usize {
        self.in_maps.len()
    }

    /// Number of ciphertexts the server returns.
    pub fn output_ciphertexts(&self) -> usize {
        self.out_maps.len()
    }

    /// Number of ciphertext × plaintext products the server computes.
    pub fn products(&self) -> usize {
        self.input_ciphertexts() * self.n_outb
    }

    /// Tiles of the output (rows, columns).
    pub fn tiles(&self) -> (usize, usize) {
        (self.tiles_y, self.tiles_x)
    }

    /// Output tile size (rows, columns) and row stride.
    pub fn tile_shape(&self) -> (usize, usize, usize) {
        (self.th, self.tw, self.wt)
    }

    /// Output channels per ciphertext.
    pub fn channels_per_output(&self) -> usize {
        self.k_s
    }

    /// The terms' geometries.
    pub fn terms(&self) -> impl Iterator<Item = &IntConv> {
        self.terms.iter().map(|t| &t.conv)
    }

    /// Tile index (of `tiles_y · tiles_x`) of output ciphertext `i` and its output-channel block.
    pub(crate) fn out_ct_tile_block(&self, i: usize) -> (usize, usize) {
        (i / self.n_outb, i % self.n_outb)
    }

    /// Row stride Wt.
    pub(crate) fn wt(&self) -> usize {
        self.wt
    }
}
