//! The zoo draws the released CryptoNAS nets and the counter reproduces their ReLU budgets.
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_arch::{cnet1, cnet2, cnet3, Arch, ArchError, InputShape, Layer, Net};
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::ModelError;
use cryptonas_model::{macs, relu_count, Model, Op};

#[test]
fn cnet_relu_counts_match_the_paper() {
    let count = |n: Net| relu_count(&model_spec(&n, "t").unwrap()).unwrap();
    assert_eq!(count(cnet1(14)), 86_016);
    assert_eq!(count(cnet1(8)), 49_152);
    assert_eq!(count(cnet1(16)), 98_304);
    assert_eq!(count(cnet2(28)), 344_064);
    assert_eq!(count(cnet3(56)), 1_376_256);
}

#[test]
fn cnet1_graph_has_the_contract_names_and_shapes() {
    let spec = model_spec(&cnet1(8), "cnet1-c8").unwrap();
    let g = spec.validate().unwrap();
    let shape = |id: &str| g.shapes[spec.node_index(id).unwrap()];
    let s = shape("stem.bn");
    assert_eq!((s.c, s.h, s.w), (8, 32, 32));
    // Pools after layers 1 and 3: every node a later layer reads is reduced to 4x channels; the
    // output of L0 (n1) is read by no layer after the second pool, so it is not reduced there.
    for j in 0..=2 {
        let s = shape(&format!("reduce0.n{j}"));
        assert_eq!((s.c, s.h, s.w), (32, 16, 16));
    }
    for j in [0, 2, 3, 4] {
        let s = shape(&format!("reduce1.n{j}"));
        assert_eq!((s.c, s.h, s.w), (128, 8, 8));
    }
    assert_eq!(spec.node_index("reduce1.n1"), None);
    assert_eq!(spec.clone().prune_dead_nodes(), Vec::<String>::new());
    // L2 <- {0, 1}: concat(stem, L0, body) after the first pool.
    let cat = &spec.nodes[spec.node_index("layers.2.concat").unwrap()];
    assert_eq!(cat.inputs, vec!["reduce0.n0", "reduce0.n1", "layers.2.bn"]);
    assert_eq!(shape("layers.2.concat").c, 96);
    assert_eq!(shape("layers.3.conv").c, 32);
    assert!(matches!(
        spec.nodes[spec.node_index("layers.3.conv").unwrap()].op,
        Op::Conv2d {
            kernel: 5,
            padding: 2,
            ..
        }
    ));
    // Layer 1 has no skips: no concat/proj nodes.
    assert!(spec.node_index("layers.1.concat").is_none());
    assert_eq!(spec.output, "head.fc");
    assert_eq!(spec.metadata.relu_count, Some(49_152));
    assert_eq!(spec.metadata.macs, Some(macs(&spec).unwrap()));
}

#[test]
fn macs_of_a_single_conv_layer() {
    let net = Net {
        arch: Arch::dense([(3, vec![])]).unwrap(),
        width: 4,
        classes: 2,
        input: InputShape {
            channels: 1,
            height: 6,
            width: 6,
        },
    };
    let spec = model_spec(&net, "one").unwrap();
    // stem 4x1x3x3 on 6x6 + layer 4x4x3x3 on 6x6 + fc 2x4.
    assert_eq!(macs(&spec).unwrap(), 36 * 4 * 9 + 36 * 4 * 4 * 9 + 8);
    let table = cryptonas_model::summary(&spec).unwrap();
    assert!(table.contains("layers.0.relu"), "{table}");
    assert!(
        table.ends_with(&format!(
            "total: {} weights, {} MACs, 144 ReLUs\n",
            4 * 9 + 4 * 4 + 4 * 4 * 9 + 4 * 4 + 2 * 4 + 2,
            36 * 4 * 9 + 36 * 4 * 4 * 9 + 8
        )),
        "{table}"
    );
    assert_eq!(relu_count(&spec).unwrap(), 4 * 36);
}

#[test]
fn random_init_round_trips_through_the_loader() {
    let spec = model_spec(&cnet1(2), "tiny").unwrap();
    let w = random_init(&spec, 7).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    assert_eq!(m.weights_bytes().unwrap(), w);
    assert_eq!(random_init(&spec, 7).unwrap(), w);
    assert_ne!(random_init(&spec, 8).unwrap(), w);
}

#[test]
fn zoo_rejects_bad_networks() {
    let draw = |arch: Arch| model_spec(&Net::cifar10(arch, 4), "x");
    let layer = |op, skips: Vec<usize>| Layer { op, skips };
    let bad_skip = Arch {
        layers: vec![
            layer(cryptonas_arch::Op::Conv3, vec![]),
            layer(cryptonas_arch::Op::Conv3, vec![1]),
        ],
    };
    assert!(matches!(
        draw(bad_skip),
        Err(ModelError::Zoo(ArchError::BadSkip { layer: 1, skip: 1 }))
    ));
    // Final networks are dense: a separable op must be densified first.
    let sep = Arch {
        layers: vec![layer(cryptonas_arch::Op::Sep3, vec![])],
    };
    assert!(matches!(
        draw(sep),
        Err(ModelError::Zoo(ArchError::NotDense { layer: 0, .. }))
    ));
    assert!(matches!(
        draw(Arch { layers: vec![] }),
        Err(ModelError::Zoo(ArchError::Empty))
    ));
    let zero_width = Net::cifar10(Arch::dense([(3, vec![])]).unwrap(), 0);
    assert!(matches!(
        model_spec(&zero_width, "x"),
        Err(ModelError::Zoo(ArchError::ZeroWidth))
    ));
}
