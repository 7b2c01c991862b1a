//! Exact ReLU and MAC counts for any architecture, width and input size, and budget solving.
//!
//! With ReLU balancing (channels ×4 at each 2× downsample) every stage has the same `C·H·W`, so a
//! 32×32 network has exactly `L·C·1024` ReLUs whatever its ops and skips. The counts here follow the
//! network shape literally (stride-2 outputs are `⌈H/2⌉`), so odd sizes such as Fashion-MNIST's
//! 28×28 → 14×14 → 7×7 are exact too.

use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Op};
use crate::SearchError;

/// Input image shape `[channels, height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Image channels (3 for CIFAR-10, 1 for Fashion-MNIST).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl InputShape {
    /// CIFAR-10: 3×32×32.
    pub const CIFAR: InputShape = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    /// Fashion-MNIST: 1×28×28.
    pub const FASHION: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
}

/// Shape of the tensors inside one stage (between reductions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Channels (`C·4^s`).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// Indices of the layers of a depth-`depth` net after which a factorized reduction is applied:
/// `⌊L/3⌋−1` and `2⌊L/3⌋−1`, the family's one formula ([`cryptonas_model::zoo::reduction_points`]).
/// Nets too shallow to have them are refused by validation (`check`); for them this gives [0, 0].
pub fn reduction_points(depth: usize) -> [usize; 2] {
    cryptonas_model::zoo::reduction_points(depth).unwrap_or([0, 0])
}

/// Stage index (0, 1, 2) of every layer of a depth-`depth` net.
pub fn layer_stages(depth: usize) -> Vec<usize> {
    let [r0, r1] = reduction_points(depth);
    (0..depth)
        .map(|i| usize::from(i > r0) + usize::from(i > r1))
        .collect()
}

/// The three stage shapes for width `width` and the given input.
pub fn stages(width: usize, input: InputShape) -> [Stage; 3] {
    let half = |x: usize| x.div_ceil(2);
    let s0 = Stage {
        channels: width,
        height: input.height,
        width: input.width,
    };
    let s1 = Stage {
        channels: 4 * width,
        height: half(s0.height),
        width: half(s0.width),
    };
    let s2 = Stage {
        channels: 16 * width,
        height: half(s1.height),
        width: half(s1.width),
    };
    [s0, s1, s2]
}

fn check(depth: usize, width: usize) -> Result<(), SearchError> {
    if depth < 3 {
        return Err(SearchError::TooShallow { depth });
    }
    if width == 0 {
        return Err(SearchError::ZeroWidth);
    }
    Ok(())
}

/// Exact ReLU count: one ReLU per element of each layer's input (`Σ_i C_i·H_i·W_i`).
pub fn relu_count(depth: usize, width: usize, input: InputShape) -> Result<u64, SearchError> {
    check(depth, width)?;
    let st = stages(width, input);
    Ok(layer_stages(depth)
        .iter()
        .map(|&s| (st[s].channels * st[s].height * st[s].width) as u64)
        .sum())
}

/// Per-part MAC counts of a network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Macs {
    /// Stem 3×3 conv.
    pub stem: u64,
    /// Layer body ops.
    pub body: u64,
    /// 1×1 projections after skip concatenations.
    pub proj: u64,
    /// Factorized reductions of the nodes used after a downsample.
    pub reduce: u64,
    /// Final fully connected layer.
    pub head: u64,
}

impl Macs {
    /// Total multiply-accumulates.
    pub fn total(&self) -> u64 {
        self.stem + self.body + self.proj + self.reduce + self.head
    }
}

/// Nodes (`n0` = stem, `n{i+1}` = layer `i`) read by some layer at index `>= from_layer`.
pub fn nodes_used_from(arch: &Arch, from_layer: usize) -> Vec<bool> {
    let mut used = vec![false; arch.depth() + 1];
    for i in from_layer..arch.depth() {
        used[i] = true;
        for &s in &arch.layers[i].skips {
            used[s] = true;
        }
    }
    used
}

/// MACs of `arch` at width `width` (BN folded, pooling and adds free; reductions counted for
/// the nodes that a later layer reads).
pub fn macs(
    arch: &Arch,
    width: usize,
    input: InputShape,
    classes: usize,
) -> Result<Macs, SearchError> {
    arch.validate()?;
    check(arch.depth(), width)?;
    let st = stages(width, input);
    let stage_of = layer_stages(arch.depth());
    let hw = |s: &Stage| (s.height * s.width) as u64;
    let mut m = Macs {
        stem: hw(&st[0]) * (width * input.channels * 9) as u64,
        head: (st[2].channels * classes) as u64,
        ..Macs::default()
    };
    for (i, layer) in arch.layers.iter().enumerate() {
        let s = &st[stage_of[i]];
        let c = s.channels as u64;
        m.body += hw(s)
            * match layer.op {
                Op::Conv3 => c * c * 9,
                Op::Conv5 => c * c * 25,
                Op::Sep3 => c * 9 + c * c,
                Op::Sep5 => c * 25 + c * c,
                Op::AvgPool3 | Op::MaxPool3 => 0,
            };
        if !layer.skips.is_empty() {
            m.proj += hw(s) * c * c * (layer.skips.len() as u64 + 1);
        }
    }
    for (r, &after) in arch.reduction_after().iter().enumerate() {
        let used = nodes_used_from(arch, after + 1);
        let (src, dst) = (&st[r], &st[r + 1]);
        let c = src.channels as u64;
        let n = used[..=after + 1].iter().filter(|&&u| u).count() as u64;
        m.reduce += n * 2 * hw(dst) * c * 2 * c;
    }
    Ok(m)
}

/// One (depth, width) that fits a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetPair {
    /// Layers `L`.
    pub depth: usize,
    /// Base channels `C`.
    pub width: usize,
    /// Exact ReLU count of this pair.
    pub relus: u64,
}

/// All (depth, width) pairs with `3 <= depth <= max_depth` and the widest width that fits
/// `budget`, largest ReLU count first; ties go to the pair whose width is nearest `7·L/3`, the
/// width-to-depth ratio of all three released CNets (6/14, 12/28, 24/56).
pub fn solve_budget(
    budget: u64,
    input: InputShape,
    max_depth: usize,
) -> Result<Vec<BudgetPair>, SearchError> {
    let mut out = Vec::new();
    for depth in 3..=max_depth {
        let per_width = relu_count(depth, 1, input)?;
        let width = usize::try_from(budget / per_width).unwrap_or(usize::MAX);
        // Counts are linear in width only when every stride-2 size divides exactly; verify.
        let mut w = width;
        while w > 0 && relu_count(depth, w, input)? > budget {
            w -= 1;
        }
        if w > 0 {
            out.push(BudgetPair {
                depth,
                width: w,
                relus: relu_count(depth, w, input)?,
            });
        }
    }
    if out.is_empty() {
        return Err(SearchError::BudgetTooSmall {
            budget,
            min: relu_count(3, 1, input)?,
        });
    }
    let dist = |p: &BudgetPair| (3 * p.width).abs_diff(7 * p.depth);
    out.sort_by(|a, b| b.relus.cmp(&a.relus).then(dist(a).cmp(&dist(b))));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn released_relu_counts() {
        let c = InputShape::CIFAR;
        assert_eq!(relu_count(6, 14, c).unwrap(), 86_016);
        assert_eq!(relu_count(12, 28, c).unwrap(), 344_064);
        assert_eq!(relu_count(24, 56, c).unwrap(), 1_376_256);
        assert_eq!(relu_count(6, 8, c).unwrap(), 49_152);
        assert_eq!(relu_count(6, 16, c).unwrap(), 98_304);
    }

    #[test]
    fn balanced_count_is_l_c_1024_for_random_archs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let depth = rng.random_range(3..40);
            let width = rng.random_range(1..100);
            let arch = Arch::random(&mut rng, depth, &Op::ALL, 0.4).unwrap();
            let n = relu_count(arch.depth(), width, InputShape::CIFAR).unwrap();
            assert_eq!(n, (depth * width * 1024) as u64);
        }
    }

    #[test]
    fn odd_sizes_count_literally() {
        // 28×28 → 14×14 → 7×7, channels ×4: each stage has C·784 ReLUs per layer.
        assert_eq!(
            relu_count(6, 10, InputShape::FASHION).unwrap(),
            6 * 10 * 784
        );
        // 7×7 → 4×4 → 2×2: stage sizes 49C, 64C, 64C.
        let tiny = InputShape {
            channels: 1,
            height: 7,
            width: 7,
        };
        assert_eq!(relu_count(3, 1, tiny).unwrap(), 49 + 64 + 64);
        assert!(matches!(
            relu_count(2, 4, tiny),
            Err(SearchError::TooShallow { depth: 2 })
        ));
        assert!(matches!(
            relu_count(3, 0, tiny),
            Err(SearchError::ZeroWidth)
        ));
    }

    #[test]
    fn cnet1_macs() {
        let a = Arch::builtin("cnet1").unwrap().densified();
        let m = macs(&a, 14, InputShape::CIFAR, 10).unwrap();
        // Hand count for C = 14 (stage channels 14, 56, 224; sizes 32, 16, 8).
        let stem = 1024 * 14 * 27;
        let body = 1024 * 14 * 14 * 9 * 2 + 256 * 56 * 56 * (9 + 25) + 64 * 224 * 224 * 9 * 2;
        let proj = 256 * 56 * 56 * (3 + 2) + 64 * 224 * 224 * (3 + 3);
        // After layer 1: later layers read n0, n1, n2 (L2 skips 0,1; main n2) → 3 nodes.
        // After layer 3: later layers read n0, n2, n3, n4 → 4 nodes.
        let reduce = 3 * 2 * 256 * 14 * 28 + 4 * 2 * 64 * 56 * 112;
        assert_eq!(m.stem, stem);
        assert_eq!(m.body, body);
        assert_eq!(m.proj, proj);
        assert_eq!(m.reduce, reduce);
        assert_eq!(m.head, 2240);
        assert_eq!(m.total(), 116_195_520);
    }

    #[test]
    fn budget_solving() {
        let pairs = solve_budget(86_016, InputShape::CIFAR, 24).unwrap();
        assert_eq!(
            pairs[0],
            BudgetPair {
                depth: 6,
                width: 14,
                relus: 86_016
            }
        );
        for w in pairs.windows(2) {
            assert!(w[0].relus >= w[1].relus);
        }
        for p in &pairs {
            assert!(p.relus <= 86_016);
            assert!(relu_count(p.depth, p.width + 1, InputShape::CIFAR).unwrap() > 86_016);
        }
        let p50 = solve_budget(50_000, InputShape::CIFAR, 24).unwrap();
        // 49,152 ReLUs at (3,16), (4,12), (6,8), (12,4), (24,2): (4,12) is nearest C = 7L/3.
        assert_eq!((p50[0].depth, p50[0].width, p50[0].relus), (4, 12, 49_152));
        assert!(p50.iter().any(|p| (p.depth, p.width) == (6, 8)));
        let p344 = solve_budget(344_064, InputShape::CIFAR, 30).unwrap();
        assert_eq!((p344[0].depth, p344[0].width), (12, 28));
        assert!(matches!(
            solve_budget(1000, InputShape::CIFAR, 24),
            Err(SearchError::BudgetTooSmall { min: 3072, .. })
        ));
    }
}
