//! A network of the family: an architecture at a width, for a number of classes and an input
//! shape; and the released CNet1/2/3 in their deployed (dense) form.

use serde::{Deserialize, Serialize};

use crate::count::{macs, relu_count, Macs};
use crate::shape::InputShape;
use crate::{Arch, ArchError, CNET1_ARC, CNET2_ARC, CNET3_ARC};

/// A CryptoNAS network: layers, base width `C` (stage `s` has `C·4^s` channels), classes and
/// input geometry. The model crate's zoo draws it as a graph (`cryptonas_model::zoo::model_spec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    /// The architecture (dense ops only, to be drawn as a graph).
    pub arch: Arch,
    /// Base channels `C`.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Input shape.
    pub input: InputShape,
}

impl Net {
    /// A network on CIFAR-10 geometry (3×32×32, 10 classes).
    pub fn cifar10(arch: Arch, width: usize) -> Net {
        Net {
            arch,
            width,
            classes: 10,
            input: InputShape::CIFAR,
        }
    }

    /// Checks the architecture (dense ops, valid skips), the width, the classes and the input.
    pub fn validate(&self) -> Result<(), ArchError> {
        self.arch.validate_dense()?;
        if self.width == 0 {
            return Err(ArchError::ZeroWidth);
        }
        let InputShape {
            channels,
            height,
            width,
        } = self.input;
        if self.classes == 0 || channels == 0 || height == 0 || width == 0 {
            return Err(ArchError::BadNet {
                what: format!(
                    "need >= 1 class and a non-empty input (got {} classes, input {channels}x{height}x{width})",
                    self.classes
                ),
            });
        }
        Ok(())
    }

    /// Exact ReLU count ([`relu_count`]).
    pub fn relu_count(&self) -> Result<u64, ArchError> {
        relu_count(self.arch.depth(), self.width, self.input)
    }

    /// MACs by part ([`macs`]).
    pub fn macs(&self) -> Result<Macs, ArchError> {
        macs(&self.arch, self.width, self.input, self.classes)
    }
}

/// A released arc string, parsed and densified. Only called with the three constants, which
/// parse (`released_nets_are_dense_and_counted`), so the `expect` states an invariant.
fn released(arc: &'static str) -> Arch {
    Arch::from_arc(arc)
        .expect("the released arc strings parse")
        .densified()
}

/// CNet1 as deployed (L = 6, kernels 3,3,3,5,3,3; skips L2←{0,1}, L3←{1}, L4←{0,2},
/// L5←{2,3}) on CIFAR-10 at width `width`: 6144·C ReLUs.
pub fn cnet1(width: usize) -> Net {
    Net::cifar10(released(CNET1_ARC), width)
}

/// CNet2 as deployed (L = 12, kernels 5,5,5,5,5,3,3,3,3,3,5,3, the released skips) on CIFAR-10:
/// 12288·C ReLUs (344,064 at C = 28).
pub fn cnet2(width: usize) -> Net {
    Net::cifar10(released(CNET2_ARC), width)
}

/// CNet3 as deployed (L = 24, the released kernels and skips) on CIFAR-10: 24576·C ReLUs
/// (1,376,256 at C = 56).
pub fn cnet3(width: usize) -> Net {
    Net::cifar10(released(CNET3_ARC), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_nets_are_dense_and_counted() {
        for (net, depth, relus) in [
            (cnet1(14), 6, 86_016),
            (cnet2(28), 12, 344_064),
            (cnet3(56), 24, 1_376_256),
        ] {
            net.validate().unwrap();
            assert_eq!(net.arch.depth(), depth);
            assert_eq!(net.relu_count().unwrap(), relus);
        }
        assert_eq!(cnet1(1).arch, Arch::builtin("cnet1").unwrap().densified());
    }

    #[test]
    fn bad_nets_are_refused() {
        let mut n = cnet1(0);
        assert_eq!(n.validate(), Err(ArchError::ZeroWidth));
        n.width = 1;
        n.classes = 0;
        assert!(matches!(n.validate(), Err(ArchError::BadNet { .. })));
        let sep = Net::cifar10(Arch::builtin("cnet1").unwrap(), 1);
        assert!(matches!(sep.validate(), Err(ArchError::NotDense { .. })));
    }
}
