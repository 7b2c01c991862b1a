//! The bundled models (`models/*.json`) exported to ONNX and imported back give identical logits
//! (f32 engine, random normalised images), the same class names and normalisation, and the same
//! normal form size.

use cryptonas_model::rng::SplitMix64;
use cryptonas_model::{Model, NormalForm};
use cryptonas_onnx::{analyze, export_onnx, ImportOptions};
use ndarray::Array4;

#[test]
fn bundled_models_round_trip_through_onnx() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for json in names {
        let m = Model::load(&json, json.with_extension("safetensors")).unwrap();
        let bytes = export_onnx(&m).unwrap();
        let a = analyze(&bytes, &ImportOptions::new(&m.spec.name)).unwrap();
        let back = a.into_model().unwrap();
        assert_eq!(back.spec.classes, m.spec.classes);
        assert_eq!(back.spec.input, m.spec.input);
        assert_eq!(
            cryptonas_model::relu_count(&back.spec).unwrap(),
            cryptonas_model::relu_count(&m.spec).unwrap()
        );
        let mut rng = SplitMix64::new(3);
        let i = &m.spec.input;
        let x = Array4::from_shape_fn((4, i.channels, i.height, i.width), |_| rng.normal());
        let (want, got) = (
            m.forward(x.view()).unwrap(),
            back.forward(x.view()).unwrap(),
        );
        let mut err = 0f32;
        for (a, b) in want.iter().zip(got.iter()) {
            err = err.max((a - b).abs());
        }
        eprintln!("{}: max |logit difference| {err:e}", json.display());
        // Identical: the exporter writes the same f32 weights and the importer maps every op back
        // to the same op (a factorized reduction's path 2 comes back as a 2×2 stride-2 conv whose
        // other taps are zero).
        assert_eq!(err, 0.0, "{}", json.display());
        for (wr, gr) in want.outer_iter().zip(got.outer_iter()) {
            let am = |r: ndarray::ArrayView1<f32>| {
                r.iter()
                    .enumerate()
                    .fold((0, f32::MIN), |b, (k, &v)| if v > b.1 { (k, v) } else { b })
                    .0
            };
            assert_eq!(am(wr), am(gr));
        }
        // The imported model compiles to a normal form with the same ReLU count.
        let nf = NormalForm::compile(&back).unwrap();
        assert_eq!(
            nf.relu_count() as u64,
            cryptonas_model::relu_count(&m.spec).unwrap()
        );
    }
}
