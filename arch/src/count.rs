//! Exact ReLU and MAC counts of an architecture at a width, in closed form.
//!
//! With ReLU balancing (channels ×4 at each 2× downsample) every stage has the same `C·H·W`, so a
//! 32×32 network of 3 or more layers has exactly `L·C·1024` ReLUs whatever its ops and skips. The
//! counts follow the network shape literally (stride-2 outputs are `⌈H/2⌉`), so odd sizes such as
//! Fashion-MNIST's 28×28 → 14×14 → 7×7 are exact too. They equal what the model crate counts on
//! the graph built from the same network (tested in `model/tests/family.rs`).

use serde::{Deserialize, Serialize};

use crate::shape::{layer_stages, output_stage, stages, InputShape, Stage};
use crate::{Arch, ArchError, Op};

/// Exact ReLU count: one ReLU per element of each layer's input (`Σ_i C_i·H_i·W_i`).
pub fn relu_count(depth: usize, width: usize, input: InputShape) -> Result<u64, ArchError> {
    if depth == 0 {
        return Err(ArchError::Empty);
    }
    if width == 0 {
        return Err(ArchError::ZeroWidth);
    }
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

/// Nodes (`n0` = stem, `n{i+1}` = layer `i`) read by some layer at index `>= from_layer`: as
/// main input or as a skip. At a reduction after layer `r`, exactly the nodes `n0 … n{r+1}` that
/// this marks for `from_layer = r + 1` are reduced; the others are never read again.
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
) -> Result<Macs, ArchError> {
    arch.validate()?;
    if width == 0 {
        return Err(ArchError::ZeroWidth);
    }
    let st = stages(width, input);
    let stage_of = layer_stages(arch.depth());
    let hw = |s: &Stage| (s.height * s.width) as u64;
    let mut m = Macs {
        stem: hw(&st[0]) * (width * input.channels * 9) as u64,
        head: (st[output_stage(arch.depth())].channels * classes) as u64,
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
    for (r, &after) in arch.reduction_after().iter().flatten().enumerate() {
        let used = nodes_used_from(arch, after + 1);
        let (src, dst) = (&st[r], &st[r + 1]);
        let c = src.channels as u64;
        let n = used[..=after + 1].iter().filter(|&&u| u).count() as u64;
        m.reduce += n * 2 * hw(dst) * c * 2 * c;
    }
    Ok(m)
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
            let depth = rng.random_range(1..40);
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
        // Two layers: no reduction, both at 7×7.
        assert_eq!(relu_count(2, 4, tiny).unwrap(), 2 * 4 * 49);
        assert_eq!(relu_count(0, 4, tiny), Err(ArchError::Empty));
        assert_eq!(relu_count(3, 0, tiny), Err(ArchError::ZeroWidth));
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
    fn shallow_macs_have_no_reduction_and_a_narrow_head() {
        let a = Arch::dense([(3, vec![]), (5, vec![0])]).unwrap();
        let m = macs(&a, 2, InputShape::FASHION, 10).unwrap();
        let hw = 28 * 28;
        assert_eq!(m.reduce, 0);
        assert_eq!(m.head, 2 * 10);
        assert_eq!(m.body, hw * 4 * (9 + 25));
        assert_eq!(m.proj, hw * 4 * 2);
    }
}
