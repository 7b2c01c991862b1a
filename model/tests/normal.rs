//! The normal form evaluated over the reals equals the f32 graph engine.
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_arch::{cnet1, Arch, InputShape, Net};
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{Model, ModelError, NormalForm, Source, StageKind};
use ndarray::Array4;

fn model(net: &Net, seed: u64) -> Model {
    let s = model_spec(net, "t").unwrap();
    let w = random_init(&s, seed).unwrap();
    Model::from_bytes(s.to_json().as_bytes(), &w).unwrap()
}

fn max_err(m: &Model, nf: &NormalForm, seed: u64, n: usize) -> (f64, f64) {
    let mut rng = SplitMix64::new(seed);
    let (c, h, w) = (nf.input.c, nf.input.h, nf.input.w);
    let x = Array4::from_shape_fn((n, c, h, w), |_| rng.normal());
    let want = m.forward(x.view()).unwrap();
    let mut err = 0.0f64;
    let mut mag = 0.0f64;
    for b in 0..n {
        let xb: Vec<f64> = x
            .index_axis(ndarray::Axis(0), b)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let got = nf.logits_f64(&xb).unwrap();
        for (k, g) in got.iter().enumerate() {
            err = err.max((g - f64::from(want[[b, k]])).abs());
            mag = mag.max(g.abs());
        }
    }
    (err, mag)
}

#[test]
fn cnet1_normal_form_matches_the_graph() {
    let m = model(&cnet1(4), 11);
    let nf = NormalForm::compile(&m).unwrap();
    assert_eq!(nf.stages.len(), 7);
    assert_eq!(nf.relu_count(), 6 * 4 * 1024);
    assert_eq!(nf.stages[6].kind, StageKind::Logits);
    for (j, st) in nf.stages.iter().enumerate() {
        // Terms read only earlier shared tensors, at most one per (source, stride), with the
        // stage's output geometry.
        for t in &st.terms {
            if let Source::Relu(i) = t.source {
                assert!(i < j);
            }
            let src = nf.source_shape(t.source);
            assert_eq!(
                (t.conv.in_channels, t.conv.in_height, t.conv.in_width),
                (src.c, src.h, src.w)
            );
            assert_eq!(
                (t.conv.out_channels, t.conv.out_height(), t.conv.out_width()),
                (st.shape.c, st.shape.h, st.shape.w)
            );
        }
        assert_eq!(st.bias.len(), st.shape.len());
    }
    // Layer 2 reads the stem (image) and L0 through the concat: 3 sources.
    let l2 = &nf.stages[3];
    assert_eq!(
        l2.kind,
        StageKind::Relu {
            node: "layers.3.relu".into()
        }
    );
    let (err, mag) = max_err(&m, &nf, 1, 4);
    println!("CNet1 C=4: normal form vs graph max |logit err| {err:.2e} (|logits| up to {mag:.2})");
    assert!(
        err < 1e-4 * mag.max(1.0),
        "max abs err {err} (logits up to {mag})"
    );
}

#[test]
fn dense_skips_and_small_images_also_match() {
    // Every layer skips to every earlier node; 3 pools on 8x8 inputs.
    let arch =
        Arch::dense((0..6).map(|i| (if i % 2 == 0 { 5 } else { 3 }, (0..i).collect()))).unwrap();
    let spec = Net {
        arch,
        width: 2,
        classes: 3,
        input: InputShape {
            channels: 1,
            height: 8,
            width: 8,
        },
    };
    let m = model(&spec, 5);
    let nf = NormalForm::compile(&m).unwrap();
    for st in &nf.stages {
        let mut srcs: Vec<_> = st.terms.iter().map(|t| t.source).collect();
        srcs.dedup();
        assert_eq!(srcs.len(), st.terms.len(), "one term per source");
    }
    let (err, mag) = max_err(&m, &nf, 2, 3);
    assert!(
        err < 1e-4 * mag.max(1.0),
        "max abs err {err} (logits up to {mag})"
    );
}

#[test]
fn odd_factorized_reduction_is_unsupported() {
    let spec = Net {
        input: InputShape {
            channels: 3,
            height: 30, // 30 -> 15 (odd) -> second reduction fails
            width: 30,
        },
        ..cnet1(2)
    };
    let m = model(&spec, 1);
    match NormalForm::compile(&m).unwrap_err() {
        ModelError::Unsupported { node, .. } => assert!(node.starts_with("reduce1."), "{node}"),
        e => panic!("{e}"),
    }
}

#[test]
fn padded_conv_over_composed_map_is_unsupported() {
    // conv3x3(pad 1) directly after conv3x3(pad 1) with no ReLU in between.
    let mut spec = model_spec(&cnet1(2), "t").unwrap();
    let relu = spec.node_index("layers.0.relu").unwrap();
    spec.nodes[relu].op = cryptonas_model::Op::Dropout { p: 0.0 };
    let w = random_init(&spec, 1).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    match NormalForm::compile(&m).unwrap_err() {
        ModelError::Unsupported { node, detail } => {
            assert_eq!(node, "layers.0.conv");
            assert!(detail.contains("pad"), "{detail}");
        }
        e => panic!("{e}"),
    }
}

/// A hand-built graph off the CryptoNAS path: grouped conv with bias, add, a strided 1×1 conv over
/// a padded 3×3 (composition without padding), a factorized reduction merged with it (terms of
/// different padding from the same source), a strided conv straight on the image, and a linear
/// layer on a flattened 4×4 map.
#[test]
fn add_groups_flatten_and_merged_paddings_match() {
    use cryptonas_model::format::FORMAT_VERSION;
    use cryptonas_model::{InputSpec, Metadata, ModelSpec, Node, Op};
    let n = |id: &str, op: Op, ins: &[&str]| Node {
        id: id.into(),
        op,
        inputs: ins.iter().map(|s| s.to_string()).collect(),
    };
    let conv = |o, k, s, p, g, bias| Op::Conv2d {
        out_channels: o,
        kernel: k,
        stride: s,
        padding: p,
        groups: g,
        bias,
    };
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        name: "mix".into(),
        input: InputSpec {
            channels: 2,
            height: 8,
            width: 8,
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
        },
        classes: vec!["a".into(), "b".into(), "c".into()],
        nodes: vec![
            n("x", Op::Input, &[]),
            n("c1", conv(4, 3, 1, 1, 2, true), &["x"]),
            n("bn1", Op::BatchNorm { eps: 1e-3 }, &["c1"]),
            n("r1", Op::Relu, &["bn1"]),
            n("c2", conv(4, 3, 1, 1, 1, true), &["r1"]),
            n("c3", conv(4, 1, 2, 0, 1, false), &["c2"]),
            n("fr", Op::FactorizedReduction { out_channels: 4 }, &["r1"]),
            n("cx", conv(4, 2, 2, 0, 1, true), &["x"]),
            n("sum", Op::Add, &["c3", "fr", "cx"]),
            n("r2", Op::Relu, &["sum"]),
            n("drop", Op::Dropout { p: 0.1 }, &["r2"]),
            n("fc", Op::Linear { out_features: 3 }, &["drop"]),
        ],
        output: "fc".into(),
        metadata: Metadata::default(),
    };
    let w = random_init(&spec, 9).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let nf = NormalForm::compile(&m).unwrap();
    assert_eq!(nf.stages.len(), 3);
    // Stage 1 = r2's input: image + r1 (c2∘c3 and both FR paths merged into one term).
    let st = &nf.stages[1];
    assert_eq!(st.terms.len(), 2);
    let t = st
        .terms
        .iter()
        .find(|t| t.source == Source::Relu(0))
        .unwrap();
    assert_eq!((t.conv.kernel_h, t.conv.stride, t.conv.padding), (3, 2, 1));
    let (err, mag) = max_err(&m, &nf, 3, 4);
    println!("mixed graph: max |logit err| {err:.2e} (|logits| up to {mag:.2})");
    assert!(err < 1e-4 * mag.max(1.0), "max abs err {err}");
}

/// Global average pooling consumed by something other than a linear layer (an add, the output)
/// is materialised; through dropout into a linear layer it is fused.
#[test]
fn pooled_outputs_in_every_position_match() {
    use cryptonas_model::format::FORMAT_VERSION;
    use cryptonas_model::{InputSpec, Metadata, ModelSpec, Node, Op};
    let n = |id: &str, op: Op, ins: &[&str]| Node {
        id: id.into(),
        op,
        inputs: ins.iter().map(|s| s.to_string()).collect(),
    };
    let conv = Op::Conv2d {
        out_channels: 3,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 1,
        bias: true,
    };
    let base = |nodes: Vec<Node>, out: &str, classes: usize| ModelSpec {
        format_version: FORMAT_VERSION,
        name: "gap".into(),
        input: InputSpec {
            channels: 2,
            height: 4,
            width: 4,
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
        },
        classes: (0..classes).map(|i| format!("c{i}")).collect(),
        nodes,
        output: out.into(),
        metadata: Metadata::default(),
    };
    let specs = [
        base(
            vec![
                n("x", Op::Input, &[]),
                n("c", conv.clone(), &["x"]),
                n("r", Op::Relu, &["c"]),
                n("g", Op::GlobalAvgPool, &["r"]),
            ],
            "g",
            3,
        ),
        base(
            vec![
                n("x", Op::Input, &[]),
                n("c", conv.clone(), &["x"]),
                n("r", Op::Relu, &["c"]),
                n("g", Op::GlobalAvgPool, &["r"]),
                n("d", Op::Dropout { p: 0.5 }, &["g"]),
                n("s", Op::Add, &["d", "g"]),
                n("fc", Op::Linear { out_features: 2 }, &["d"]),
                n("fc2", Op::Linear { out_features: 2 }, &["s"]),
                n("o", Op::Add, &["fc", "fc2"]),
            ],
            "o",
            2,
        ),
    ];
    for spec in specs {
        let w = random_init(&spec, 2).unwrap();
        let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
        let nf = NormalForm::compile(&m).unwrap();
        let (err, mag) = max_err(&m, &nf, 4, 3);
        assert!(err < 1e-5 * mag.max(1.0), "{}: err {err}", spec.output);
    }
}
