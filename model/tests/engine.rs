//! The f32 engine: every op against hand-computed values.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use cryptonas_model::format::FORMAT_VERSION;
use cryptonas_model::{InputSpec, Metadata, Model, ModelSpec, Node, Op, Tensor};
use ndarray::{Array4, ArrayView4};

fn node(id: &str, op: Op, inputs: &[&str]) -> Node {
    Node {
        id: id.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
    }
}

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: data.to_vec(),
    }
}

/// Builds `input (c,h,w) → nodes… → gap → fc` where `target` feeds the head (fc = identity-ish on
/// the channels, so the graph validates), runs it and returns the value of `probe`.
fn run(
    (c, h, w): (usize, usize, usize),
    nodes: Vec<Node>,
    mut tensors: HashMap<String, Tensor>,
    target: &str,
    target_c: usize,
    x: &[f32],
    probe: &str,
) -> Array4<f32> {
    let mut all = vec![node("input", Op::Input, &[])];
    all.extend(nodes);
    all.push(node("gap", Op::GlobalAvgPool, &[target]));
    all.push(node("fc", Op::Linear { out_features: 1 }, &["gap"]));
    tensors.insert("fc.weight".into(), t(&[1, target_c], &vec![1.0; target_c]));
    tensors.insert("fc.bias".into(), t(&[1], &[0.0]));
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        name: "op".into(),
        input: InputSpec {
            channels: c,
            height: h,
            width: w,
            mean: vec![0.0; c],
            std: vec![1.0; c],
        },
        classes: vec!["only".into()],
        nodes: all,
        output: "fc".into(),
        metadata: Metadata::default(),
    };
    let m = Model::new(spec, tensors).unwrap();
    let xin = ArrayView4::from_shape((1, c, h, w), x).unwrap();
    let vals = m.forward_all(xin).unwrap();
    vals[m.spec.node_index(probe).unwrap()].clone()
}

fn flat(a: &Array4<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

fn conv(out: usize, k: usize, s: usize, p: usize, g: usize, bias: bool) -> Op {
    Op::Conv2d {
        out_channels: out,
        kernel: k,
        stride: s,
        padding: p,
        groups: g,
        bias,
    }
}

#[test]
fn conv_valid_padded_strided_grouped() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect(); // 1x3x3: 1..9
                                                           // 2x2 kernel [[1,0],[0,-1]] valid, plus bias 0.5: out[i][j] = x[i][j] - x[i+1][j+1] + 0.5.
    let mut ts = HashMap::new();
    ts.insert("c.weight".into(), t(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, -1.0]));
    ts.insert("c.bias".into(), t(&[1], &[0.5]));
    let y = run(
        (1, 3, 3),
        vec![node("c", conv(1, 2, 1, 0, 1, true), &["input"])],
        ts,
        "c",
        1,
        &x,
        "c",
    );
    assert_eq!(y.dim(), (1, 1, 2, 2));
    assert_eq!(flat(&y), vec![-3.5, -3.5, -3.5, -3.5]);

    // 3x3 all-ones kernel, pad 1, stride 2 on 3x3: outputs at (0,0),(0,2),(2,0),(2,2) = sums of
    // the 2x2 corner neighbourhoods.
    let mut ts = HashMap::new();
    ts.insert("c.weight".into(), t(&[1, 1, 3, 3], &[1.0; 9]));
    let y = run(
        (1, 3, 3),
        vec![node("c", conv(1, 3, 2, 1, 1, false), &["input"])],
        ts,
        "c",
        1,
        &x,
        "c",
    );
    assert_eq!(
        flat(&y),
        vec![
            1. + 2. + 4. + 5.,
            2. + 3. + 5. + 6.,
            4. + 5. + 7. + 8.,
            5. + 6. + 8. + 9.
        ]
    );

    // Depthwise (groups = 2) 1x1: channel 0 ×2, channel 1 ×(−1).
    let x2 = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    let mut ts = HashMap::new();
    ts.insert("c.weight".into(), t(&[2, 1, 1, 1], &[2.0, -1.0]));
    let y = run(
        (2, 2, 2),
        vec![node("c", conv(2, 1, 1, 0, 2, false), &["input"])],
        ts,
        "c",
        2,
        &x2,
        "c",
    );
    assert_eq!(
        flat(&y),
        vec![2.0, 4.0, 6.0, 8.0, -10.0, -20.0, -30.0, -40.0]
    );
}

#[test]
fn batchnorm_relu_dropout() {
    let x = [-2.0, 0.0, 2.0, 4.0];
    let mut ts = HashMap::new();
    ts.insert("bn.weight".into(), t(&[1], &[2.0]));
    ts.insert("bn.bias".into(), t(&[1], &[1.0]));
    ts.insert("bn.running_mean".into(), t(&[1], &[1.0]));
    ts.insert("bn.running_var".into(), t(&[1], &[4.0 - 1e-3]));
    let nodes = vec![
        node("bn", Op::BatchNorm { eps: 1e-3 }, &["input"]),
        node("r", Op::Relu, &["bn"]),
        node("d", Op::Dropout { p: 0.5 }, &["r"]),
    ];
    // (x − 1)/2·2 + 1 = x.
    let bn = run((1, 2, 2), nodes.clone(), ts.clone(), "d", 1, &x, "bn");
    for (a, b) in flat(&bn).iter().zip(x) {
        assert!((a - b).abs() < 1e-6);
    }
    let d = run((1, 2, 2), nodes, ts, "d", 1, &x, "d");
    assert_eq!(flat(&d), vec![0.0, 0.0, 2.0, 4.0]);
}

#[test]
fn concat_add_gap_linear() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let nodes = vec![
        node("cat", Op::Concat, &["input", "input"]),
        node("add", Op::Add, &["cat", "cat", "cat"]),
        node("pool", Op::GlobalAvgPool, &["add"]),
        node("lin", Op::Linear { out_features: 2 }, &["add"]),
    ];
    let mut ts = HashMap::new();
    // Linear on the flattened 2x2x2 = 8 features.
    ts.insert(
        "lin.weight".into(),
        t(
            &[2, 8],
            &[
                1., 0., 0., 0., 0., 0., 0., 1., 1., 1., 1., 1., -1., -1., -1., -1.,
            ],
        ),
    );
    ts.insert("lin.bias".into(), t(&[2], &[0.25, -0.25]));
    let cat = run((1, 2, 2), nodes.clone(), ts.clone(), "lin", 2, &x, "cat");
    assert_eq!(cat.dim(), (1, 2, 2, 2));
    assert_eq!(flat(&cat), vec![1., 2., 3., 4., 1., 2., 3., 4.]);
    let add = run((1, 2, 2), nodes.clone(), ts.clone(), "lin", 2, &x, "add");
    assert_eq!(flat(&add), vec![3., 6., 9., 12., 3., 6., 9., 12.]);
    let pool = run((1, 2, 2), nodes.clone(), ts.clone(), "lin", 2, &x, "pool");
    assert_eq!(flat(&pool), vec![7.5, 7.5]);
    let lin = run((1, 2, 2), nodes, ts, "lin", 2, &x, "lin");
    assert_eq!(flat(&lin), vec![3. + 12. + 0.25, 30. - 30. - 0.25]);
}

#[test]
fn factorized_reduction_paths() {
    // 1x4x4 input 0..15; path1 picks x[2i][2j], path2 picks x[2i+1][2j+1] (shifted by one).
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let mut ts = HashMap::new();
    ts.insert("fr.path1.weight".into(), t(&[1, 1, 1, 1], &[1.0]));
    ts.insert("fr.path2.weight".into(), t(&[1, 1, 1, 1], &[-2.0]));
    ts.insert("fr.bn.weight".into(), t(&[2], &[1.0, 1.0]));
    ts.insert("fr.bn.bias".into(), t(&[2], &[0.0, 1.0]));
    ts.insert("fr.bn.running_mean".into(), t(&[2], &[0.0, 0.0]));
    ts.insert(
        "fr.bn.running_var".into(),
        t(&[2], &[1.0 - 1e-5, 1.0 - 1e-5]),
    );
    let nodes = vec![node(
        "fr",
        Op::FactorizedReduction { out_channels: 2 },
        &["input"],
    )];
    let y = run((1, 4, 4), nodes, ts, "fr", 2, &x, "fr");
    assert_eq!(y.dim(), (1, 2, 2, 2));
    let want = [
        0.,
        2.,
        8.,
        10.,
        -2. * 5. + 1.,
        -2. * 7. + 1.,
        -2. * 13. + 1.,
        -2. * 15. + 1.,
    ];
    for (a, b) in flat(&y).iter().zip(want) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn batches_are_independent_and_bad_input_shape_is_an_error() {
    let spec = cryptonas_model::zoo::model_spec(&cryptonas_arch::cnet1(2), "t").unwrap();
    let w = cryptonas_model::zoo::random_init(&spec, 3).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let mut rng = cryptonas_model::rng::SplitMix64::new(5);
    let x = Array4::from_shape_fn((3, 3, 32, 32), |_| rng.normal());
    let all = m.forward(x.view()).unwrap();
    assert_eq!(all.dim(), (3, 10));
    for b in 0..3 {
        let one = m
            .forward(x.slice_axis(ndarray::Axis(0), (b..b + 1).into()))
            .unwrap();
        for c in 0..10 {
            assert!((one[[0, c]] - all[[b, c]]).abs() < 1e-4);
        }
    }
    assert!(m.forward(Array4::zeros((1, 3, 16, 16)).view()).is_err());
}
