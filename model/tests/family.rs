//! One family, one rule: the zoo's graphs of `cryptonas-arch` networks have the ReLU and MAC
//! counts the arch crate computes in closed form, and change resolution exactly after the layers
//! that `reduction_points` names (none below 3 layers), for every depth 1..=12.
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_arch::{layer_stages, reduction_points, stages, Arch, InputShape, Net};
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::model_spec;
use cryptonas_model::{macs, relu_count};

/// A dense architecture of `depth` layers: kernels 3 or 5, each skip present with probability ½.
fn random_dense(rng: &mut SplitMix64, depth: usize) -> Arch {
    Arch::dense((0..depth).map(|i| {
        let kernel = if rng.next_u64() & 1 == 0 { 3 } else { 5 };
        (kernel, (0..i).filter(|_| rng.next_u64() & 2 == 0).collect())
    }))
    .unwrap()
}

#[test]
fn graphs_follow_the_one_reduction_rule_and_the_closed_form_counts() {
    let mut rng = SplitMix64::new(19);
    let inputs = [
        InputShape::CIFAR,
        InputShape::FASHION,
        InputShape {
            channels: 2,
            height: 7,
            width: 9,
        },
    ];
    for depth in 1..=12 {
        for (width, input) in [1, 2, 5].into_iter().zip(inputs) {
            let net = Net {
                arch: random_dense(&mut rng, depth),
                width,
                classes: 3,
                input,
            };
            let spec = model_spec(&net, "t").unwrap();
            let what = format!("depth {depth}, width {width}, input {input:?}");
            assert_eq!(
                relu_count(&spec).unwrap(),
                net.relu_count().unwrap(),
                "{what}"
            );
            assert_eq!(macs(&spec).unwrap(), net.macs().unwrap().total(), "{what}");
            assert_eq!(spec.metadata.relu_count, Some(net.relu_count().unwrap()));
            assert!(spec.clone().prune_dead_nodes().is_empty(), "{what}");

            // Each layer's ReLU sees its stage's shape; the resolution changes after layer i
            // exactly when i is a reduction point, and reduction r's nodes read the layer's
            // resolution before it.
            let g = spec.validate().unwrap();
            let shape = |id: &str| g.shapes[spec.node_index(id).unwrap()];
            let st = stages(width, input);
            let stage_of = layer_stages(depth);
            let points = reduction_points(depth);
            for i in 0..depth {
                let s = shape(&format!("layers.{i}.relu"));
                let want = st[stage_of[i]];
                assert_eq!(
                    (s.c, s.h, s.w),
                    (want.channels, want.height, want.width),
                    "{what}"
                );
                let reduced_after = i + 1 < depth && stage_of[i + 1] != stage_of[i];
                assert_eq!(
                    reduced_after,
                    points.is_some_and(|p| p.contains(&i)),
                    "{what}"
                );
            }
            let reductions = (0..3)
                .filter(|r| {
                    spec.nodes
                        .iter()
                        .any(|n| n.id.starts_with(&format!("reduce{r}.")))
                })
                .count();
            assert_eq!(reductions, if points.is_some() { 2 } else { 0 }, "{what}");
        }
    }
}
