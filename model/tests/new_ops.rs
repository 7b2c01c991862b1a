//! The ops added for imported models (max_pool, avg_pool, channel_affine, clip, flatten): the f32
//! engine against hand-computed values, the normal form against the engine for the linear ones,
//! a clear refusal naming the node for the others, and the JSON form.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use cryptonas_model::format::FORMAT_VERSION;
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::{
    max_pool_comparisons, relu_count, InputSpec, Metadata, Model, ModelSpec, Node, NormalForm, Op,
    Tensor,
};
use ndarray::{Array4, ArrayView4};

fn node(id: &str, op: Op, inputs: &[&str]) -> Node {
    Node {
        id: id.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
    }
}

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// `input (c,h,w) → nodes → flatten` with `n` outputs: the output is the probed tensor itself.
fn model(
    (c, h, w): (usize, usize, usize),
    nodes: Vec<Node>,
    last: &str,
    n: usize,
    tensors: HashMap<String, Tensor>,
) -> Model {
    let mut all = vec![node("input", Op::Input, &[])];
    all.extend(nodes);
    all.push(node("flat", Op::Flatten, &[last]));
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        name: "ops".into(),
        input: InputSpec {
            channels: c,
            height: h,
            width: w,
            mean: vec![0.0; c],
            std: vec![1.0; c],
        },
        classes: (0..n).map(|i| i.to_string()).collect(),
        nodes: all,
        output: "flat".into(),
        metadata: Metadata::default(),
    };
    Model::new(spec, tensors).unwrap()
}

fn run(m: &Model, x: &[f32]) -> Vec<f32> {
    let i = &m.spec.input;
    let xv = ArrayView4::from_shape((1, i.channels, i.height, i.width), x).unwrap();
    m.forward(xv).unwrap().iter().copied().collect()
}

#[test]
fn max_pool_ignores_padding_and_counts_comparisons() {
    // 1 channel 3x3, kernel 2, stride 2, padding 1: windows clipped to real cells.
    let m = model(
        (1, 3, 3),
        vec![node(
            "mp",
            Op::MaxPool {
                kernel: 2,
                stride: 2,
                padding: 1,
                padding_end: 1,
            },
            &["input"],
        )],
        "mp",
        4,
        HashMap::new(),
    );
    let x = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0];
    // Output 2x2: windows {x00}, {x01,x02}, {x10,x20}, {x11,x12,x21,x22}.
    assert_eq!(run(&m, &x), vec![-1.0, -2.0, -4.0, -5.0]);
    // Real cells per window 1, 2, 2, 4: 0 + 1 + 1 + 3 comparisons.
    assert_eq!(max_pool_comparisons(&m.spec).unwrap(), 5);
    assert_eq!(relu_count(&m.spec).unwrap(), 0);
    // The normal form pools the same windows over the reals (padding excluded: no ReLU here).
    let nf = NormalForm::compile(&m).unwrap();
    let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(nf.logits_f64(&xf).unwrap(), vec![-1.0, -2.0, -4.0, -5.0]);
    assert_eq!(nf.relu_count(), 4);
}

#[test]
fn avg_pool_divisors() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    for (cip, want) in [
        // count_include_pad: always /4.
        (
            true,
            vec![
                1.0 / 4.0,
                (2.0 + 3.0) / 4.0,
                (4.0 + 7.0) / 4.0,
                (5.0 + 6.0 + 8.0 + 9.0) / 4.0,
            ],
        ),
        // real cells only.
        (false, vec![1.0, 2.5, 5.5, 7.0]),
    ] {
        let op = Op::AvgPool {
            kernel: 2,
            stride: 2,
            padding: 1,
            padding_end: 1,
            count_include_pad: cip,
        };
        let m = model(
            (1, 3, 3),
            vec![node("ap", op, &["input"])],
            "ap",
            4,
            HashMap::new(),
        );
        assert_eq!(run(&m, &x), want);
        let nf = NormalForm::compile(&m);
        if cip {
            let got = nf
                .unwrap()
                .logits_f64(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - f64::from(*w)).abs() < 1e-9);
            }
        } else {
            let e = nf.unwrap_err().to_string();
            assert!(e.contains("ap") && e.contains("count_include_pad"), "{e}");
        }
    }
}

#[test]
fn clip_channel_affine_flatten() {
    let mut w = HashMap::new();
    w.insert("aff.scale".into(), t(&[2], vec![2.0, -1.0]));
    w.insert("aff.shift".into(), t(&[2], vec![0.5, 1.0]));
    let nodes = vec![
        node("aff", Op::ChannelAffine, &["input"]),
        node("clip", Op::Clip { min: 0.0, max: 6.0 }, &["aff"]),
    ];
    let m = model((2, 1, 2), nodes, "clip", 4, w.clone());
    // ch0: 2x+0.5 on [1, 4] -> [2.5, 8.5] -> clip [2.5, 6]; ch1: -x+1 on [3, -7] -> [-2, 8] -> [0, 6].
    assert_eq!(run(&m, &[1.0, 4.0, 3.0, -7.0]), vec![2.5, 6.0, 0.0, 6.0]);
    let nf = NormalForm::compile(&m).unwrap();
    let got = nf.logits_f64(&[1.0, 4.0, 3.0, -7.0]).unwrap();
    assert_eq!(got, vec![2.5, 6.0, 0.0, 6.0]);
    // Only Clip(0, c) has a circuit: another lower bound is refused, naming the node.
    let mut other = m.spec.clone();
    other.nodes[2].op = Op::Clip {
        min: -1.0,
        max: 6.0,
    };
    let other = model((2, 1, 2), other.nodes[1..3].to_vec(), "clip", 4, w);
    let e = NormalForm::compile(&other).unwrap_err().to_string();
    assert!(e.contains("clip") && e.contains("Clip(0, c)"), "{e}");
    // JSON: infinite bounds are written as strings and read back.
    let mut s = m.spec.clone();
    s.nodes[2].op = Op::Clip {
        min: f32::NEG_INFINITY,
        max: 6.0,
    };
    let json = s.to_json();
    assert!(json.contains("\"-inf\""));
    assert_eq!(ModelSpec::from_json(json.as_bytes()).unwrap(), s);
    // Bad bounds are a clear error.
    s.nodes[2].op = Op::Clip { min: 7.0, max: 6.0 };
    assert!(s.validate().unwrap_err().to_string().contains("clip"));
}

#[test]
fn linear_new_ops_compose_in_the_normal_form() {
    // conv → relu → avg_pool (count pad) → channel_affine → relu → flatten → linear.
    let mut rng = SplitMix64::new(5);
    let mut w = HashMap::new();
    w.insert(
        "conv.weight".into(),
        t(&[4, 3, 3, 3], (0..108).map(|_| rng.normal()).collect()),
    );
    w.insert(
        "aff.scale".into(),
        t(&[4], (0..4).map(|_| rng.normal()).collect()),
    );
    w.insert(
        "aff.shift".into(),
        t(&[4], (0..4).map(|_| rng.normal()).collect()),
    );
    let nodes = vec![
        node(
            "conv",
            Op::Conv2d {
                out_channels: 4,
                kernel: 3,
                stride: 1,
                padding: 1,
                groups: 1,
                bias: false,
            },
            &["input"],
        ),
        node("r1", Op::Relu, &["conv"]),
        node(
            "ap",
            Op::AvgPool {
                kernel: 3,
                stride: 2,
                padding: 1,
                padding_end: 1,
                count_include_pad: true,
            },
            &["r1"],
        ),
        node("aff", Op::ChannelAffine, &["ap"]),
        node("r2", Op::Relu, &["aff"]),
    ];
    let m = model((3, 6, 6), nodes, "r2", 36, w);
    let nf = NormalForm::compile(&m).unwrap();
    assert_eq!(nf.relu_count(), 4 * 36 + 4 * 9);
    for _ in 0..3 {
        let x: Vec<f32> = (0..108).map(|_| rng.normal()).collect();
        let want = run(&m, &x);
        let got = nf
            .logits_f64(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())
            .unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - f64::from(*w)).abs() < 1e-4, "{g} vs {w}");
        }
    }
    let x = Array4::<f32>::zeros((2, 3, 6, 6));
    assert_eq!(m.forward(x.view()).unwrap().dim(), (2, 36));
}

#[test]
fn pools_with_end_padding() {
    // 1×4×4, kernel 3, stride 2, padding 0 before and 1 after (Caffe's ceil mode, SAME_UPPER):
    // output 2×2, windows rows {0,1,2} and {2,3}.
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mp = Op::MaxPool {
        kernel: 3,
        stride: 2,
        padding: 0,
        padding_end: 1,
    };
    let m = model(
        (1, 4, 4),
        vec![node("mp", mp, &["input"])],
        "mp",
        4,
        HashMap::new(),
    );
    assert_eq!(run(&m, &x), vec![10.0, 11.0, 14.0, 15.0]);
    // Real cells 9, 6, 6, 4.
    assert_eq!(max_pool_comparisons(&m.spec).unwrap(), 8 + 5 + 5 + 3);
    let json = m.spec.to_json();
    assert!(json.contains("\"padding_end\": 1"));
    assert_eq!(ModelSpec::from_json(json.as_bytes()).unwrap(), m.spec);
    let ap = Op::AvgPool {
        kernel: 3,
        stride: 2,
        padding: 0,
        padding_end: 1,
        count_include_pad: false,
    };
    let m = model(
        (1, 4, 4),
        vec![node("ap", ap, &["input"])],
        "ap",
        4,
        HashMap::new(),
    );
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert_eq!(
        run(&m, &x),
        vec![
            mean(&[0., 1., 2., 4., 5., 6., 8., 9., 10.]),
            mean(&[2., 3., 6., 7., 10., 11.]),
            mean(&[8., 9., 10., 12., 13., 14.]),
            mean(&[10., 11., 14., 15.]),
        ]
    );
    let e = NormalForm::compile(&m).unwrap_err().to_string();
    assert!(e.contains("ap") && e.contains("symmetric"), "{e}");
    // Omitted padding_end means padding_end = padding.
    let j = r#"{"type": "max_pool", "kernel": 2, "stride": 2, "padding": 1}"#;
    let op: Op = serde_json::from_str(j).unwrap();
    assert_eq!(
        op,
        Op::MaxPool {
            kernel: 2,
            stride: 2,
            padding: 1,
            padding_end: 1
        }
    );
}
