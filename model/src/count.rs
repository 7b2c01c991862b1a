//! ReLU and MAC counting by shape inference: the ReLU count is the budget figure used everywhere.

use crate::error::Result;
use crate::format::{Graph, ModelSpec, Op};

/// Number of elements entering ReLU nodes for one image (= garbled ReLU circuits per inference).
pub fn relu_count(spec: &ModelSpec) -> Result<u64> {
    let g = spec.validate()?;
    Ok(relu_count_graph(spec, &g))
}

/// Multiply-accumulates of the convolutions and linear layers for one image (BN not counted: it is
/// folded at export).
pub fn macs(spec: &ModelSpec) -> Result<u64> {
    let g = spec.validate()?;
    Ok(macs_graph(spec, &g))
}

/// Pairwise comparisons of the max-pool nodes for one image: per output element, the number of
/// real (non-padding) cells in its window minus one (a running maximum; padding is never
/// compared), so `k² − 1` away from the borders.
pub fn max_pool_comparisons(spec: &ModelSpec) -> Result<u64> {
    let g = spec.validate()?;
    Ok(g.order
        .iter()
        .map(|&i| match g.inputs[i].first() {
            Some(&j) => node_comparisons(&spec.nodes[i].op, g.shapes[j], g.shapes[i]),
            None => 0,
        })
        .sum())
}

/// Comparisons of one node with input shape `x` and output shape `out` (see
/// [`max_pool_comparisons`]; 0 for every op but `max_pool`).
pub fn node_comparisons(op: &Op, x: crate::format::Shape, out: crate::format::Shape) -> u64 {
    match op {
        Op::MaxPool {
            kernel,
            stride,
            padding,
            ..
        } => {
            // Real cells per window are (rows)·(cols): sum each axis separately.
            let real = |n: usize, o: usize| -> u64 {
                (0..o)
                    .map(|i| {
                        let lo = (i * stride).saturating_sub(*padding);
                        let hi = (i * stride + kernel - padding).min(n);
                        hi.saturating_sub(lo) as u64
                    })
                    .sum()
            };
            (out.c as u64) * real(x.h, out.h) * real(x.w, out.w) - out.len() as u64
        }
        _ => 0,
    }
}

pub(crate) fn relu_count_graph(spec: &ModelSpec, g: &Graph) -> u64 {
    g.order
        .iter()
        .filter(|&&i| spec.nodes[i].op == Op::Relu)
        .map(|&i| g.shapes[i].len() as u64)
        .sum()
}

pub(crate) fn macs_graph(spec: &ModelSpec, g: &Graph) -> u64 {
    let mut total = 0u64;
    for &i in &g.order {
        let out = g.shapes[i];
        let x = match g.inputs[i].first() {
            Some(&j) => g.shapes[j],
            None => continue,
        };
        total += match &spec.nodes[i].op {
            Op::Conv2d { kernel, groups, .. } => {
                (out.len() * (x.c / groups) * kernel * kernel) as u64
            }
            Op::FactorizedReduction { .. } => (out.len() * x.c) as u64,
            Op::Linear { out_features } => (out_features * x.len()) as u64,
            _ => 0,
        };
    }
    total
}

/// A per-node table (id, op, output shape, weights, MACs, ReLUs) with totals, for CLIs and logs.
pub fn summary(spec: &ModelSpec) -> Result<String> {
    use std::fmt::Write;
    let g = spec.validate()?;
    let mut weights = vec![0usize; spec.nodes.len()];
    for (i, _, shape) in spec.expected_tensors(&g) {
        weights[i] += shape.iter().product::<usize>();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:<21} {:>13} {:>9} {:>11} {:>8}",
        "node", "op", "output", "weights", "MACs", "ReLUs"
    );
    for &i in &g.order {
        let n = &spec.nodes[i];
        let sh = g.shapes[i];
        let x = g.inputs[i].first().map(|&j| g.shapes[j]);
        let macs = match (&n.op, x) {
            (Op::Conv2d { kernel, groups, .. }, Some(x)) => {
                sh.len() * (x.c / groups) * kernel * kernel
            }
            (Op::FactorizedReduction { .. }, Some(x)) => sh.len() * x.c,
            (Op::Linear { out_features }, Some(x)) => out_features * x.len(),
            _ => 0,
        };
        let relus = if n.op == Op::Relu { sh.len() } else { 0 };
        let _ = writeln!(
            s,
            "{:<22} {:<21} {:>13} {:>9} {:>11} {:>8}",
            n.id,
            n.op.name(),
            format!("{}x{}x{}", sh.c, sh.h, sh.w),
            weights[i],
            macs,
            relus
        );
    }
    let _ = writeln!(
        s,
        "total: {} weights, {} MACs, {} ReLUs",
        weights.iter().sum::<usize>(),
        macs_graph(spec, &g),
        relu_count_graph(spec, &g)
    );
    Ok(s)
}
