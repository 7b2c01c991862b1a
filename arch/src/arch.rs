//! Ops, layers and architectures, and the ENAS `arc` string that writes them down.
//!
//! Layer `i` of an `L`-layer network reads node `n{i}` (the previous layer, or the stem for layer 0)
//! and may concatenate raw skips from the earlier nodes `n0 … n{i-1}` (stem = `n0`, layer `j` =
//! `n{j+1}`). In the `arc` string each layer is written `op bit_0 … bit_{i-1}`, exactly as in the
//! released CryptoNAS scripts, so layer `i` contributes `1 + i` integers.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::shape::reduction_points;
use crate::ArchError;

/// An ENAS macro operation. The numeric ids are the ENAS branch ids used in `arc` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Dense 3×3 convolution (id 0).
    Conv3,
    /// Depthwise-separable 3×3 convolution (id 1); dense 3×3 in final networks.
    Sep3,
    /// Dense 5×5 convolution (id 2).
    Conv5,
    /// Depthwise-separable 5×5 convolution (id 3); dense 5×5 in final networks.
    Sep5,
    /// 3×3 average pooling, stride 1 (id 4); search only.
    AvgPool3,
    /// 3×3 max pooling, stride 1 (id 5); search only.
    MaxPool3,
}

impl Op {
    /// All ops in ENAS id order.
    pub const ALL: [Op; 6] = [
        Op::Conv3,
        Op::Sep3,
        Op::Conv5,
        Op::Sep5,
        Op::AvgPool3,
        Op::MaxPool3,
    ];

    /// The ENAS branch id.
    pub fn id(self) -> u8 {
        match self {
            Op::Conv3 => 0,
            Op::Sep3 => 1,
            Op::Conv5 => 2,
            Op::Sep5 => 3,
            Op::AvgPool3 => 4,
            Op::MaxPool3 => 5,
        }
    }

    /// The op with the given ENAS branch id.
    pub fn from_id(id: u8) -> Option<Op> {
        Op::ALL.get(usize::from(id)).copied()
    }

    /// The name used in JSON and in the supernet's variable names (`layers.{i}.{name}.…`):
    /// `conv3`, `sep5`, `avg_pool3`, ….
    pub fn name(self) -> &'static str {
        match self {
            Op::Conv3 => "conv3",
            Op::Sep3 => "sep3",
            Op::Conv5 => "conv5",
            Op::Sep5 => "sep5",
            Op::AvgPool3 => "avg_pool3",
            Op::MaxPool3 => "max_pool3",
        }
    }

    /// Kernel of the dense convolution this op becomes in a final (private-inference) network:
    /// separable convs become dense ones of the same size (as in the released CNets), and the
    /// pooling ops, which a final net does not use, become 3×3 convs.
    pub fn final_kernel(self) -> usize {
        match self {
            Op::Conv5 | Op::Sep5 => 5,
            Op::Conv3 | Op::Sep3 | Op::AvgPool3 | Op::MaxPool3 => 3,
        }
    }

    /// The dense convolution of kernel `k` (3 or 5), the only ops a final network holds.
    pub fn dense(kernel: usize) -> Option<Op> {
        match kernel {
            3 => Some(Op::Conv3),
            5 => Some(Op::Conv5),
            _ => None,
        }
    }

    /// Whether a final network may hold this op (a dense convolution).
    pub fn is_dense(self) -> bool {
        matches!(self, Op::Conv3 | Op::Conv5)
    }
}

/// One CryptoNAS layer: `ReLU → op → BN`, then optionally `concat(skips, out) → 1×1 conv → BN`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layer {
    /// The body operation.
    pub op: Op,
    /// Earlier nodes concatenated as raw skips, strictly increasing, each `< i` for layer `i`
    /// (0 = stem).
    pub skips: Vec<usize>,
}

/// An architecture: a chain of layers. Depth is `layers.len()`; width is chosen separately
/// ([`Net`](crate::Net)).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arch {
    /// The layers, input side first.
    pub layers: Vec<Layer>,
}

impl Arch {
    /// Builds an architecture, checking depth and skip indices.
    pub fn new(layers: Vec<Layer>) -> Result<Arch, ArchError> {
        let arch = Arch { layers };
        arch.validate()?;
        Ok(arch)
    }

    /// A dense architecture from kernel sizes (3 or 5) and skip lists.
    pub fn dense(layers: impl IntoIterator<Item = (usize, Vec<usize>)>) -> Result<Arch, ArchError> {
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, (kernel, skips))| {
                let op = Op::dense(kernel).ok_or(ArchError::BadKernel { layer: i, kernel })?;
                Ok(Layer { op, skips })
            })
            .collect::<Result<_, ArchError>>()?;
        Arch::new(layers)
    }

    /// Number of layers `L`.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Checks that there is at least one layer and that every skip vector is strictly
    /// increasing and points only at earlier nodes. Depths 1 and 2 are valid: they have no
    /// reduction ([`reduction_points`]).
    pub fn validate(&self) -> Result<(), ArchError> {
        if self.layers.is_empty() {
            return Err(ArchError::Empty);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let mut prev: Option<usize> = None;
            for &s in &layer.skips {
                if s >= i || prev.is_some_and(|p| p >= s) {
                    return Err(ArchError::BadSkip { layer: i, skip: s });
                }
                prev = Some(s);
            }
        }
        Ok(())
    }

    /// Checks [`validate`](Arch::validate) and that every op is a dense convolution, as in a
    /// final network.
    pub fn validate_dense(&self) -> Result<(), ArchError> {
        self.validate()?;
        match self.layers.iter().position(|l| !l.op.is_dense()) {
            Some(i) => Err(ArchError::NotDense {
                layer: i,
                op: self.layers[i].op.name(),
            }),
            None => Ok(()),
        }
    }

    /// The layers after which a factorized reduction is applied ([`reduction_points`] of the
    /// depth); `None` below 3 layers.
    pub fn reduction_after(&self) -> Option<[usize; 2]> {
        reduction_points(self.depth())
    }

    /// Parses the ENAS `arc` form: for layer `i`, the op id followed by `i` skip bits.
    pub fn from_arc(arc: &str) -> Result<Arch, ArchError> {
        let mut nums = Vec::new();
        for tok in arc.split_whitespace() {
            let v: u8 = tok.parse().map_err(|_| ArchError::ArcToken {
                token: tok.to_string(),
            })?;
            nums.push(v);
        }
        let mut layers = Vec::new();
        let mut pos = 0;
        while pos < nums.len() {
            let i = layers.len();
            let op = Op::from_id(nums[pos]).ok_or(ArchError::ArcOp {
                layer: i,
                id: nums[pos],
            })?;
            let bits = nums
                .get(pos + 1..pos + 1 + i)
                .ok_or(ArchError::ArcLength { len: nums.len() })?;
            let mut skips = Vec::new();
            for (j, &b) in bits.iter().enumerate() {
                match b {
                    0 => {}
                    1 => skips.push(j),
                    _ => return Err(ArchError::ArcBit { layer: i, bit: b }),
                }
            }
            layers.push(Layer { op, skips });
            pos += 1 + i;
        }
        Arch::new(layers)
    }

    /// The ENAS `arc` string (space-separated integers).
    pub fn to_arc(&self) -> String {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            out.push(layer.op.id().to_string());
            for j in 0..i {
                out.push(if layer.skips.contains(&j) { "1" } else { "0" }.to_string());
            }
        }
        out.join(" ")
    }

    /// The same architecture with only dense convolutions, as used in final networks.
    pub fn densified(&self) -> Arch {
        Arch {
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    op: if l.op.final_kernel() == 5 {
                        Op::Conv5
                    } else {
                        Op::Conv3
                    },
                    skips: l.skips.clone(),
                })
                .collect(),
        }
    }

    /// A uniformly random architecture of the given depth over `ops`, each skip present with
    /// probability `skip_p` (ENAS's controller targets ≈ 0.4).
    pub fn random<R: Rng>(
        rng: &mut R,
        depth: usize,
        ops: &[Op],
        skip_p: f64,
    ) -> Result<Arch, ArchError> {
        if ops.is_empty() {
            return Err(ArchError::NoOps);
        }
        let layers = (0..depth)
            .map(|i| Layer {
                op: ops[rng.random_range(0..ops.len())],
                skips: (0..i).filter(|_| rng.random_bool(skip_p)).collect(),
            })
            .collect();
        Arch::new(layers)
    }

    /// A copy with one random change: a new op for one layer, or one skip bit flipped.
    pub fn mutate<R: Rng>(&self, rng: &mut R, ops: &[Op]) -> Arch {
        let mut out = self.clone();
        if out.layers.is_empty() {
            return out;
        }
        let i = rng.random_range(0..out.depth());
        if i == 0 || rng.random_bool(0.5) {
            if !ops.is_empty() {
                out.layers[i].op = ops[rng.random_range(0..ops.len())];
            }
        } else {
            let j = rng.random_range(0..i);
            let skips = &mut out.layers[i].skips;
            match skips.binary_search(&j) {
                Ok(p) => {
                    skips.remove(p);
                }
                Err(p) => skips.insert(p, j),
            }
        }
        out
    }

    /// A released network by name (`cnet1`, `cnet2`, `cnet3`, any case), as released (with
    /// separable ops; [`densified`](Arch::densified) gives the deployed form).
    pub fn builtin(name: &str) -> Result<Arch, ArchError> {
        match name.to_ascii_lowercase().as_str() {
            "cnet1" => Arch::from_arc(CNET1_ARC),
            "cnet2" => Arch::from_arc(CNET2_ARC),
            "cnet3" => Arch::from_arc(CNET3_ARC),
            _ => Err(ArchError::UnknownArch {
                name: name.to_string(),
            }),
        }
    }

    /// Parses `cnet1|cnet2|cnet3`, an `arc` string, or a JSON `Arch` (file contents or inline).
    pub fn parse_any(s: &str) -> Result<Arch, ArchError> {
        let t = s.trim();
        if t.starts_with('{') {
            let arch: Arch =
                serde_json::from_str(t).map_err(|e| ArchError::ArchJson { msg: e.to_string() })?;
            arch.validate()?;
            return Ok(arch);
        }
        if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return Arch::from_arc(t);
        }
        Arch::builtin(t)
    }
}

/// CNet1 (L = 6) as released: kernels 3,3,3,5,3,3 once densified.
pub const CNET1_ARC: &str = "0 1 0 0 1 1 3 0 1 0 1 1 0 1 0 0 0 0 1 1 0";

/// CNet2 (L = 12) as released.
pub const CNET2_ARC: &str =
    "3 3 0 3 1 1 3 1 0 0 3 0 1 1 0 0 1 1 1 0 0 0 0 1 0 0 0 0 1 0 0 1 0 1 1 1 1 1 0 0 0 1 1 0 0 \
0 0 0 0 0 0 1 1 0 0 2 0 0 0 0 1 0 0 0 0 0 0 1 0 0 1 0 0 0 1 1 1 0";

/// CNet3 (L = 24) as released.
pub const CNET3_ARC: &str =
    "0 1 1 0 0 0 1 1 0 1 2 0 0 0 0 1 0 0 0 1 1 2 1 0 0 1 1 1 0 1 0 0 1 0 1 0 3 0 0 0 0 1 0 0 0 \
3 0 0 1 1 0 1 0 1 1 2 0 1 0 0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 3 1 0 0 1 0 0 0 1 1 0 1 \
0 3 0 1 1 0 0 0 1 1 0 0 1 1 0 2 0 0 0 1 0 1 0 0 0 0 0 0 0 0 3 0 0 0 0 1 0 0 1 1 0 1 0 0 1 \
0 3 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 3 0 0 1 0 1 0 0 0 0 1 0 0 1 0 1 1 1 0 0 0 0 1 1 0 1 1 \
0 0 0 0 1 0 0 0 0 0 2 1 1 0 0 0 0 0 0 0 0 0 1 1 1 0 0 0 0 0 1 0 0 1 1 0 0 0 1 0 0 1 1 1 1 \
0 1 0 1 0 1 1 0 0 1 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 1 0 0 1 0 0 0 1 1 0 0 0 0 0 0 0 1 1 1 1 \
0 1 0 1 0 0 2 0 0 0 1 0 0 0 0 1 0 0 0 0 0 1 0 0 0 0 0 0 1 1";

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cnet1_matches_release() {
        let a = Arch::builtin("cnet1").unwrap();
        let kernels: Vec<usize> = a.layers.iter().map(|l| l.op.final_kernel()).collect();
        assert_eq!(kernels, [3, 3, 3, 5, 3, 3]);
        let skips: Vec<Vec<usize>> = a.layers.iter().map(|l| l.skips.clone()).collect();
        assert_eq!(
            skips,
            vec![vec![], vec![], vec![0, 1], vec![1], vec![0, 2], vec![2, 3]]
        );
        assert_eq!(a.reduction_after(), Some([1, 3]));
    }

    #[test]
    fn released_depths_and_kernels() {
        let c2 = Arch::builtin("cnet2").unwrap();
        assert_eq!(c2.depth(), 12);
        let k2: Vec<usize> = c2.layers.iter().map(|l| l.op.final_kernel()).collect();
        assert_eq!(k2, [5, 5, 5, 5, 5, 3, 3, 3, 3, 3, 5, 3]);
        assert_eq!(Arch::builtin("CNet3").unwrap().depth(), 24);
    }

    #[test]
    fn arc_round_trip_random() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for depth in 1..30 {
            let a = Arch::random(&mut rng, depth, &Op::ALL, 0.4).unwrap();
            assert_eq!(Arch::from_arc(&a.to_arc()).unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(Arch::parse_any(&json).unwrap(), a);
            let m = a.mutate(&mut rng, &Op::ALL);
            m.validate().unwrap();
            a.densified().validate_dense().unwrap();
        }
        for name in ["cnet1", "cnet2", "cnet3"] {
            let a = Arch::builtin(name).unwrap();
            assert_eq!(Arch::from_arc(&a.to_arc()).unwrap(), a);
        }
    }

    #[test]
    fn bad_arcs_are_rejected() {
        assert_eq!(
            Arch::from_arc("0 1 0 7 1 1"),
            Err(ArchError::ArcOp { layer: 2, id: 7 })
        );
        assert!(matches!(
            Arch::from_arc("0 1 0 0 1"),
            Err(ArchError::ArcLength { .. })
        ));
        assert_eq!(
            Arch::from_arc("0 1 2 0 1 1"),
            Err(ArchError::ArcBit { layer: 1, bit: 2 })
        );
        assert!(matches!(
            Arch::from_arc("0 1 x"),
            Err(ArchError::ArcToken { .. })
        ));
        assert_eq!(Arch::from_arc(""), Err(ArchError::Empty));
        assert!(matches!(
            Arch::parse_any("resnet"),
            Err(ArchError::UnknownArch { .. })
        ));
        assert_eq!(
            Arch::dense([(3, vec![]), (4, vec![])]),
            Err(ArchError::BadKernel {
                layer: 1,
                kernel: 4
            })
        );
        assert_eq!(
            Arch::dense([(3, vec![]), (3, vec![1])]),
            Err(ArchError::BadSkip { layer: 1, skip: 1 })
        );
        assert_eq!(
            Arch::builtin("cnet1").unwrap().validate_dense(),
            Err(ArchError::NotDense {
                layer: 1,
                op: "sep3"
            })
        );
    }

    #[test]
    fn shallow_arcs_parse_and_have_no_reduction() {
        // Depths 1 and 2 are valid architectures with one stage (see `reduction_points`).
        let a = Arch::from_arc("0 1 0").unwrap();
        assert_eq!(a.depth(), 2);
        assert_eq!(a.reduction_after(), None);
    }
}
