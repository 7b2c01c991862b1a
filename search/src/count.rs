//! Budget solving: the (depth, width) pairs of the family that fit a ReLU budget.
//!
//! The counts themselves are the family's ([`cryptonas_arch::count`], re-exported here so that
//! the `count` command's pieces read as one module): exact for any input size, `L·C·1024` ReLUs
//! on 32×32 inputs whatever the ops and skips.

pub use cryptonas_arch::count::{macs, nodes_used_from, relu_count, Macs};
pub use cryptonas_arch::shape::InputShape;
use serde::{Deserialize, Serialize};

use crate::SearchError;

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
