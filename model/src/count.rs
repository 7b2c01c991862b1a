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

/// Pairwise comparisons of the max-pool nodes for one image: `k² − 1` per output element (a
/// running maximum over the window's cells; padding cells are never compared).
pub fn max_pool_comparisons(spec: &ModelSpec) -> Result<u64> {
    let g = spec.validate()?;
    Ok(g.order
        .iter()
        .map(|&i| node_comparisons(&spec.nodes[i].op, g.shapes[i]))
        .sum())
}

/// Comparisons of one node (`k² − 1` per output element of a max pool, 0 otherwise).
pub fn node_comparisons(op: &Op, out: crate::format::Shape) -> u64 {
    match op {
        Op::MaxPool { kernel, .. } => (out.len() * (kernel * kernel - 1)) as u64,
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
