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
