//! Where the family reduces resolution, and the shape of each stage.
//!
//! The one reduction rule of the family lives here ([`reduction_points`]); the model zoo's graphs,
//! the counts, the trainer and the supernet all read it.

use serde::{Deserialize, Serialize};

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

/// The layers after which an `L`-layer network reduces resolution (×½ per side, ×4 channels):
/// after layer `⌊L/3⌋ − 1` and after layer `2⌊L/3⌋ − 1`.
///
/// This is ENAS's `pool_distance = L // 3; pool_layers = [pool_distance − 1, 2·pool_distance − 1]`,
/// which the released CNets (L = 6, 12, 24: after layers 1, 3 / 3, 7 / 7, 15), the exported
/// models and the search all use. Below 3 layers `⌊L/3⌋ = 0` and ENAS's indices are −1, which no
/// layer has: such a network has **no** reduction, one stage at full resolution, and this returns
/// `None`. (The search once mapped them to `[0, 0]`, two reductions after layer 0; nothing built
/// such a net, and that reading is gone.)
pub fn reduction_points(depth: usize) -> Option<[usize; 2]> {
    let third = depth / 3;
    (third >= 1).then(|| [third - 1, 2 * third - 1])
}

/// Stage index (0, 1, 2) of every layer of a depth-`depth` net: the number of reductions before
/// it. All 0 below 3 layers.
pub fn layer_stages(depth: usize) -> Vec<usize> {
    let points = reduction_points(depth);
    (0..depth)
        .map(|i| points.map_or(0, |[r0, r1]| usize::from(i > r0) + usize::from(i > r1)))
        .collect()
}

/// The stage the head reads (that of the last layer): 2, or 0 below 3 layers.
pub fn output_stage(depth: usize) -> usize {
    if reduction_points(depth).is_some() {
        2
    } else {
        0
    }
}

/// The three stage shapes for width `width` and the given input (stride-2 outputs are
/// `⌈H/2⌉`, as the factorized reduction computes them).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_reduction_points() {
        assert_eq!(reduction_points(6), Some([1, 3]));
        assert_eq!(reduction_points(12), Some([3, 7]));
        assert_eq!(reduction_points(24), Some([7, 15]));
    }

    /// The rule over depths 1..=12, written out, and what it implies: below 3 layers nothing is
    /// reduced; from 3 on exactly two distinct points, increasing, both before the last layer,
    /// so every stage has at least one layer.
    #[test]
    fn reduction_rule_over_depths() {
        let expected: [Option<[usize; 2]>; 12] = [
            None,
            None,
            Some([0, 1]),
            Some([0, 1]),
            Some([0, 1]),
            Some([1, 3]),
            Some([1, 3]),
            Some([1, 3]),
            Some([2, 5]),
            Some([2, 5]),
            Some([2, 5]),
            Some([3, 7]),
        ];
        for depth in 1..=12 {
            let got = reduction_points(depth);
            assert_eq!(got, expected[depth - 1], "depth {depth}");
            let st = layer_stages(depth);
            match got {
                None => assert!(st.iter().all(|&s| s == 0)),
                Some([a, b]) => {
                    assert!(a < b && b + 1 < depth, "depth {depth}: {a}, {b}");
                    for s in 0..3 {
                        assert!(st.contains(&s), "depth {depth}: stage {s} is empty");
                    }
                    assert!(st.windows(2).all(|w| w[0] <= w[1]));
                }
            }
            assert_eq!(output_stage(depth), *st.last().unwrap());
        }
    }
}
