//! The importer on models built here with the prost types: bad input gets a clear error naming
//! node and reason (and nothing is written), a small CNN imports, its report is right, and the
//! private-inference path compiles and calibrates it (or refuses max pooling by node name).

use cryptonas_onnx::proto::*;
use cryptonas_onnx::{analyze, calibrate, report, write_model, ImportError, ImportOptions, Status};
use prost::Message;

fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

fn ints_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Dimension]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto { dim: dims.to_vec() }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn d(v: i64) -> Dimension {
    Dimension {
        dim_value: Some(v),
        ..Default::default()
    }
}

fn sym(p: &str) -> Dimension {
    Dimension {
        dim_param: Some(p.into()),
        ..Default::default()
    }
}

fn det(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 1000.0
                - 0.5
        })
        .collect()
}

/// conv(3→4, 3×3, pad 1) → BN → Relu → [MaxPool 2×2 | AveragePool 2×2] → GAP → Flatten → Gemm(4→3)
/// → Softmax, on a symbolic-batch N×3×8×8 input.
fn cnn(max_pool: bool, opset: i64) -> ModelProto {
    let pool = if max_pool { "MaxPool" } else { "AveragePool" };
    let graph = GraphProto {
        name: "cnn".into(),
        node: vec![
            node(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["c"],
                vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
            ),
            node(
                "BatchNormalization",
                "bn",
                &["c", "g", "beta", "mean", "var"],
                &["n"],
                vec![],
            ),
            node("Relu", "relu", &["n"], &["r"], vec![]),
            node(
                pool,
                "pool",
                &["r"],
                &["p"],
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node("GlobalAveragePool", "gap", &["p"], &["gp"], vec![]),
            node("Flatten", "flat", &["gp"], &["f"], vec![]),
            node(
                "Gemm",
                "fc",
                &["f", "fw", "fb"],
                &["logits"],
                vec![AttributeProto {
                    name: "transB".into(),
                    r#type: AttributeType::Int as i32,
                    i: 1,
                    ..Default::default()
                }],
            ),
            node("Softmax", "sm", &["logits"], &["prob"], vec![]),
        ],
        initializer: vec![
            tensor("w", &[4, 3, 3, 3], det(108, 1)),
            tensor("b", &[4], det(4, 2)),
            tensor("g", &[4], vec![1.0, 0.5, 2.0, 1.5]),
            tensor("beta", &[4], det(4, 3)),
            tensor("mean", &[4], det(4, 4)),
            tensor("var", &[4], vec![1.0, 0.25, 4.0, 2.0]),
            tensor("fw", &[3, 4], det(12, 5)),
            tensor("fb", &[3], det(3, 6)),
        ],
        input: vec![value_info("x", &[sym("N"), d(3), d(8), d(8)])],
        output: vec![value_info("prob", &[sym("N"), d(3)])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: "test".into(),
        graph: Some(graph),
        ..Default::default()
    }
}

fn err(m: &ModelProto) -> String {
    match analyze(&m.encode_to_vec(), &ImportOptions::new("t")) {
        Err(e) => e.to_string(),
        Ok(a) => a.into_model().map(|_| ()).unwrap_err().to_string(),
    }
}

#[test]
fn a_small_cnn_imports_and_runs_privately_after_calibration() {
    let a = analyze(&cnn(false, 17).encode_to_vec(), &ImportOptions::new("cnn")).unwrap();
    assert!(a.softmax_dropped);
    assert!(
        a.nodes.iter().all(|n| n.status != Status::Unsupported),
        "{:?}",
        a.nodes
    );
    let mut model = a.model.clone().unwrap();
    assert_eq!(model.spec.classes.len(), 3);
    let (nf, d) = report::private_check(&model).unwrap();
    assert!(d.contains("1 ReLU stages"), "{d}");
    // Calibrate on a few deterministic images; the fixed point agrees with float.
    let imgs: Vec<Vec<f32>> = (0..8)
        .map(|s| det(192, 100 + s).iter().map(|v| v * 4.0).collect())
        .collect();
    let cal = calibrate(&mut model, &nf, &imgs, 32).unwrap();
    assert_eq!(cal.argmax_agreement, 8);
    assert!(cal.max_logit_error < 0.05, "{cal:?}");
    assert!(model.spec.metadata.fixed_point.is_some());
    let rep = report::build(&a, Ok(d), Some(Ok(cal)), None);
    let c = rep.costs.as_ref().unwrap();
    assert_eq!((c.relus, c.comparisons), (4 * 64, 0));
    assert_eq!(c.and_gates, 256 * 31);
    assert!(rep.to_text().contains("IMPORTED"));
    assert!(rep.to_json().contains("\"relus\": 256"));
    // The f32 engine equals the fixed point within the calibration's error on an image.
    let x = ndarray::Array4::from_shape_vec((1, 3, 8, 8), imgs[0].clone()).unwrap();
    let f = model.forward(x.view()).unwrap();
    let fm = cryptonas_model::FixedModel::quantize(
        &nf,
        model.spec.metadata.fixed_point.as_ref().unwrap(),
    )
    .unwrap();
    let q = fm.logits(&imgs[0]).unwrap();
    for k in 0..3 {
        assert!((f64::from(f[[0, k]]) - q[k]).abs() < 0.05);
    }
}

#[test]
fn max_pool_imports_runs_privately_and_reports_the_real_circuit() {
    let a = analyze(&cnn(true, 13).encode_to_vec(), &ImportOptions::new("cnn")).unwrap();
    let mut model = a.model.clone().unwrap();
    let (nf, d) = report::private_check(&model).unwrap();
    assert!(d.contains("1 ReLU stages (1 of them max pools)"), "{d}");
    // relu → pool: the ReLU is fused into the pool's stage.
    assert!(matches!(
        nf.stages[0].kind,
        cryptonas_model::StageKind::MaxPool { relu: true, .. }
    ));
    let imgs: Vec<Vec<f32>> = (0..8)
        .map(|s| det(192, 100 + s).iter().map(|v| v * 4.0).collect())
        .collect();
    let cal = calibrate(&mut model, &nf, &imgs, 32).unwrap();
    assert_eq!(cal.argmax_agreement, 8);
    let cfg = model.spec.metadata.fixed_point.clone().unwrap();
    let fm = cryptonas_model::FixedModel::quantize(&nf, &cfg).unwrap();
    let rep = report::build(&a, Ok(d), Some(Ok(cal)), Some((&nf, &cfg)));
    let c = rep.costs.unwrap();
    assert_eq!(c.comparisons, 4 * 16 * 3);
    // The report's AND gates are the garbled max pool's, for each of its 4·4·4 outputs, at the
    // stage's ring and truncation; the fused ReLU costs nothing of its own.
    let st = &fm.stages[0];
    let circuit = cryptonas_gc::MaxPoolCircuit::new(st.k, cfg.k, st.trunc, 4, true).unwrap();
    let layer = |id: &str| c.layers.iter().find(|l| l.node == id).unwrap();
    assert_eq!(
        layer("pool").and_gates,
        64 * circuit.circuit().and_count() as u64
    );
    assert_eq!(layer("relu").and_gates, 0);
    assert_eq!(c.and_gates, layer("pool").and_gates);
}

#[test]
fn bad_files_get_clear_errors() {
    // Garbage and truncation.
    let e = analyze(&[0xff; 64], &ImportOptions::new("t")).unwrap_err();
    assert!(matches!(e, ImportError::Malformed { .. }), "{e}");
    let bytes = cnn(false, 17).encode_to_vec();
    for cut in [bytes.len() / 2, bytes.len() - 3] {
        let e = analyze(&bytes[..cut], &ImportOptions::new("t")).unwrap_err();
        assert!(
            matches!(e, ImportError::Malformed { .. } | ImportError::Model(_)),
            "{e}"
        );
    }
    // Opsets.
    for v in [8, 29] {
        assert!(err(&cnn(false, v)).contains("opset"), "{v}");
    }
    // External data.
    let mut m = cnn(false, 17);
    let g = m.graph.as_mut().unwrap();
    g.initializer[0].float_data.clear();
    g.initializer[0].data_location = 1;
    g.initializer[0].external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "w.bin".into(),
    }];
    let e = err(&m);
    assert!(e.contains("'w'") && e.contains("external"), "{e}");
    // NaN weight.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().initializer[1].float_data[2] = f32::NAN;
    let e = err(&m);
    assert!(e.contains("'b'") && e.contains("not finite"), "{e}");
    // Declared size without the data, and a huge ConstantOfShape: refused before allocating.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().initializer[1].dims = vec![1 << 40];
    assert!(err(&m).contains("limit"));
    let mut m = cnn(false, 17);
    let g = m.graph.as_mut().unwrap();
    g.initializer
        .push(ints_tensor("huge_shape", &[1 << 20, 1 << 20]));
    g.node.insert(
        0,
        node(
            "ConstantOfShape",
            "big",
            &["huge_shape"],
            &["big_out"],
            vec![],
        ),
    );
    g.node[3].input[0] = "n".into();
    let e = err(&m);
    assert!(e.contains("'big'") && e.contains("limit"), "{e}");
    // Dynamic spatial size, with the hint and the fix.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().input[0] = value_info("x", &[sym("N"), d(3), sym("H"), sym("W")]);
    assert!(err(&m).contains("--input-shape"));
    let mut o = ImportOptions::new("t");
    o.input_shape = Some([3, 8, 8]);
    assert!(analyze(&m.encode_to_vec(), &o).unwrap().model.is_some());
    // Cycle and dangling input.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().node[0].input[0] = "r".into();
    m.graph.as_mut().unwrap().input[0].name = "unused".into();
    let e = err(&m);
    assert!(e.contains("cycle") && e.contains("'conv'"), "{e}");
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().node[2].input[0] = "nowhere".into();
    let e = err(&m);
    assert!(
        e.contains("'relu'") && e.contains("nowhere") && e.contains("dangling"),
        "{e}"
    );
    // An unsupported op: named, with a hint, and counted in the report.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().node[2].op_type = "Gelu".into();
    let a = analyze(&m.encode_to_vec(), &ImportOptions::new("t")).unwrap();
    let bad: Vec<_> = a
        .nodes
        .iter()
        .filter(|n| n.status == Status::Unsupported)
        .collect();
    assert_eq!(bad.len(), 1);
    assert!(bad[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("replace it with ReLU"));
    assert!(a.partial_spec.is_some());
    // Unknown attributes are refused, not ignored.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().node[0]
        .attribute
        .push(ints("dilations", &[2, 2]));
    assert!(err(&m).contains("dilation"));
    // Asymmetric padding.
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().node[0].attribute[0] = ints("pads", &[1, 1, 0, 0]);
    assert!(err(&m).contains("asymmetric"));
}

#[test]
fn nothing_is_written_unless_the_import_succeeded() {
    let dir = std::env::temp_dir().join(format!("cryptonas-onnx-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut m = cnn(false, 17);
    m.graph.as_mut().unwrap().node[2].op_type = "Tanh".into();
    let a = analyze(&m.encode_to_vec(), &ImportOptions::new("t")).unwrap();
    assert!(a.into_model().is_err());
    assert!(!dir.exists());
    let a = analyze(&cnn(true, 17).encode_to_vec(), &ImportOptions::new("ok")).unwrap();
    let model = a.into_model().unwrap();
    let (j, s) = write_model(&model, &dir.join("ok")).unwrap();
    let back = cryptonas_model::Model::load(&j, &s).unwrap();
    assert_eq!(back.spec, model.spec);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Byte-level mutations of a valid file (flips, truncations, splices) never panic: each gives a
/// model, a report with unsupported nodes, or an error.
#[test]
fn mutated_files_never_panic() {
    let base = cnn(true, 13).encode_to_vec();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            match next() % 4 {
                0 => b[i] ^= 1 << (next() % 8),
                1 => b[i] = next() as u8,
                2 => b.truncate(i.max(1)),
                _ => {
                    let j = (next() % b.len() as u64) as usize;
                    let chunk: Vec<u8> = b[j..(j + 8).min(b.len())].to_vec();
                    b.splice(i..i, chunk);
                }
            }
        }
        match analyze(&b, &ImportOptions::new("m")) {
            Ok(a) => {
                if let Some(m) = &a.model {
                    let _ = report::private_check(m);
                    let i = &m.spec.input;
                    let x = ndarray::Array4::<f32>::zeros((1, i.channels, i.height, i.width));
                    if i.channels * i.height * i.width <= 1 << 16 {
                        let _ = m.forward(x.view());
                    }
                    ok += 1;
                } else {
                    refused += 1;
                }
                let _ = report::build(&a, Err(String::new()), None, None).to_text();
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    assert!(ok > 0 && refused > 0, "{ok} {refused}");
}

/// ShuffleNet's channel shuffle (Reshape to groups, Transpose, Reshape back) becomes an exact
/// channel permutation; a Transpose that moves spatial axes is refused with a hint.
#[test]
fn channel_shuffle_is_an_exact_permutation() {
    let build = |perm: &[i64]| ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: vec![
                node("Reshape", "split", &["x", "s1"], &["r1"], vec![]),
                node(
                    "Transpose",
                    "shuffle",
                    &["r1"],
                    &["t"],
                    vec![ints("perm", perm)],
                ),
                node("Reshape", "merge", &["t", "s2"], &["r2"], vec![]),
                node("GlobalAveragePool", "gap", &["r2"], &["g"], vec![]),
                node("Flatten", "flat", &["g"], &["y"], vec![]),
            ],
            initializer: vec![
                ints_tensor("s1", &[1, 2, 3, 1, 2]),
                ints_tensor("s2", &[1, 6, 1, 2]),
            ],
            input: vec![value_info("x", &[d(1), d(6), d(1), d(2)])],
            output: vec![value_info("y", &[d(1), d(6)])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let a = analyze(
        &build(&[0, 2, 1, 3, 4]).encode_to_vec(),
        &ImportOptions::new("s"),
    )
    .unwrap();
    let m = a.into_model().unwrap();
    // Channel c = g·3 + j (g < 2, j < 3) moves to j·2 + g; each channel holds (c, c) so its mean is c.
    let x: Vec<f32> = (0..6).flat_map(|c| [c as f32, c as f32]).collect();
    let xs = ndarray::Array4::from_shape_vec((1, 6, 1, 2), x).unwrap();
    let y: Vec<f32> = m.forward(xs.view()).unwrap().iter().copied().collect();
    assert_eq!(y, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert!(report::private_check(&m).is_ok());
    let e = err(&build(&[0, 1, 2, 4, 3]));
    assert!(
        e.contains("'shuffle'") && e.contains("channel groups"),
        "{e}"
    );
}
