//! ONNX conformance: the backend node tests and "light" real models of the pip `onnx` package,
//! written by `onnx/tests/gen_conformance.py` into `$ONNX_CONFORMANCE_DIR` (scripts/test.sh does
//! both). Every case either imports and the f32 engine reproduces the expected output within
//! the tolerance, or the import is refused with a reason; an imported case with a wrong number
//! fails the test. Without the variable the test says so and checks nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cryptonas_onnx::proto::TensorProto;
use cryptonas_onnx::tensor::Const;
use cryptonas_onnx::{analyze, report, ImportOptions};
use ndarray::Array4;
use prost::Message;

/// Node tests and shipped light outputs: |got − want| ≤ ATOL + RTOL·|want| (the ONNX backend's
/// own node tests use rtol 1e-3).
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;
/// Whole random-weight networks against onnxruntime (deep f32 sums in another order):
/// |got − want| ≤ ORT_TOL · (1 + max |want|).
const ORT_TOL: f64 = 1e-4;

fn read_tensor(p: &Path) -> Const {
    let bytes = std::fs::read(p).unwrap();
    Const::from_proto(&TensorProto::decode(bytes.as_slice()).unwrap()).unwrap()
}

#[derive(Debug)]
enum Outcome {
    Pass {
        max_err: f64,
        scale: f64,
        relus: u64,
    },
    Mismatch(String),
    Rejected(String),
}

fn run_case(dir: &Path, kind: &str) -> Outcome {
    let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
    let mut opts = ImportOptions::new(dir.file_name().unwrap().to_string_lossy());
    opts.flatten_output = true;
    let analysis = match analyze(&bytes, &opts) {
        Ok(a) => a,
        Err(e) => return Outcome::Rejected(e.to_string()),
    };
    let softmax = analysis.softmax_dropped;
    let model = match analysis.into_model() {
        Ok(m) => m,
        Err(e) => return Outcome::Rejected(e.to_string()),
    };
    let x = read_tensor(&dir.join("input_0.pb"));
    let want = read_tensor(&dir.join("output_0.pb"));
    let inp = &model.spec.input;
    let n = x.dims.first().copied().unwrap_or(1);
    let per = inp.channels * inp.height * inp.width;
    if x.len() != n * per {
        return Outcome::Mismatch(format!("input {:?} does not fit {per} per image", x.dims));
    }
    let xs = Array4::from_shape_vec(
        (n, inp.channels, inp.height, inp.width),
        x.data.iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let got = match model.forward(xs.view()) {
        Ok(g) => g,
        Err(e) => return Outcome::Mismatch(format!("engine: {e}")),
    };
    let classes = got.dim().1;
    if want.len() != n * classes {
        return Outcome::Mismatch(format!("output {:?} vs engine {n}x{classes}", want.dims));
    }
    let scale = want.data.iter().fold(0f64, |m, v| m.max(v.abs()));
    let mut max_err = 0f64;
    for (b, row) in got.outer_iter().enumerate() {
        let mut v: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
        if softmax {
            let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = v.iter().map(|x| (x - m).exp()).sum();
            v.iter_mut().for_each(|x| *x = (*x - m).exp() / s);
        }
        for (i, g) in v.iter().enumerate() {
            let w = want.data[b * classes + i];
            let err = (g - w).abs();
            let tol = if kind == "ort" {
                ORT_TOL * (1.0 + scale)
            } else {
                ATOL + RTOL * w.abs()
            };
            if err > tol || !g.is_finite() {
                return Outcome::Mismatch(format!("element {b},{i}: got {g}, want {w}"));
            }
            max_err = max_err.max(err);
        }
    }
    let relus = cryptonas_model::relu_count(&model.spec).unwrap_or(0);
    Outcome::Pass {
        max_err,
        scale,
        relus,
    }
}

fn cases(root: &Path, kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Node cases that must import and match (the op's standard forms); the rest may be refused.
const MUST_PASS: &[&str] = &[
    "test_basic_conv_with_padding",
    "test_basic_conv_without_padding",
    "test_conv_with_strides_padding",
    "test_conv_with_strides_no_padding",
    "test_relu",
    "test_batchnorm_example",
    "test_batchnorm_epsilon",
    "test_maxpool_2d_default",
    "test_maxpool_2d_pads",
    "test_maxpool_2d_strides",
    "test_averagepool_2d_default",
    "test_averagepool_2d_pads",
    "test_averagepool_2d_strides",
    "test_globalaveragepool",
    "test_globalmaxpool",
    "test_gemm_default_single_elem_vector_bias",
    "test_flatten_default_axis",
    "test_softmax_example",
    "test_dropout_default",
    "test_identity",
    "test_clip",
    "test_clip_default_min",
];

/// Light real models that must import and reproduce the shipped output.
const LIGHT_MUST_PASS: &[&str] = &[
    "light_resnet50",
    "light_squeezenet",
    "light_vgg19",
    "light_densenet121",
];

#[test]
fn onnx_conformance() {
    let Ok(root) = std::env::var("ONNX_CONFORMANCE_DIR") else {
        eprintln!(
            "ONNX_CONFORMANCE_DIR is not set: run onnx/tests/gen_conformance.py DIR first \
             (scripts/test.sh does); nothing checked"
        );
        return;
    };
    let root = PathBuf::from(root);
    let mut table = String::new();
    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    let light_filter = std::env::var("ONNX_LIGHT_MODELS").unwrap_or_else(|_| "all".into());
    for kind in ["node", "light", "ort"] {
        for dir in cases(&root, kind) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if kind == "light"
                && light_filter != "all"
                && !light_filter.split(',').any(|m| name.contains(m))
            {
                continue;
            }
            let t = std::time::Instant::now();
            let out = run_case(&dir, kind);
            let line = match &out {
                Outcome::Pass {
                    max_err,
                    scale,
                    relus,
                } => format!(
                    "PASS     {kind:<5} {name} (max error {max_err:.2e}, max |want| {scale:.2e}, \
                     {relus} ReLUs)"
                ),
                Outcome::Mismatch(m) => format!("MISMATCH {kind:<5} {name}: {m}"),
                Outcome::Rejected(r) => format!("refused  {kind:<5} {name}: {r}"),
            };
            eprintln!("{line} [{:.1} s]", t.elapsed().as_secs_f64());
            table.push_str(&line);
            table.push('\n');
            results.insert(format!("{kind}/{name}"), out);
        }
    }
    // The light models' reports (ReLUs, comparisons, estimated costs) also for refused ones.
    for dir in cases(&root, "light") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
        if let Ok(a) = analyze(&bytes, &ImportOptions::new(&name)) {
            let private = a.model.as_ref().map_or(Err("not imported".into()), |m| {
                report::private_check(m).map(|(_, d)| d)
            });
            let r = report::build(&a, private, None, None);
            let line = match &r.costs {
                Some(c) => format!(
                    "report   light {name}: imported {}, {} ReLUs, {} max-pool comparisons, {:.1} GB offline, {:.2} GB online, {:.1} GB server memory (default limit: {}), online WAN {:.0} s",
                    r.imported, c.relus, c.comparisons, c.offline_bytes / 1e9, c.online_bytes / 1e9,
                    c.server_memory_bytes as f64 / 1e9,
                    if c.fits_default_server_limit { "fits" } else { "refused" }, c.latency[2].online_s
                ),
                None => format!("report   light {name}: imported {}, no cost estimate (graph could not be bridged)", r.imported),
            };
            eprintln!("{line}");
            table.push_str(&line);
            table.push('\n');
        }
    }
    let pass = results
        .values()
        .filter(|o| matches!(o, Outcome::Pass { .. }))
        .count();
    let refused = results
        .values()
        .filter(|o| matches!(o, Outcome::Rejected(_)))
        .count();
    let bad: Vec<&String> = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Mismatch(_)))
        .map(|(k, _)| k)
        .collect();
    let summary = format!(
        "{} cases: {pass} pass, {refused} refused with a reason, {} mismatch (tolerance {ATOL:e} + {RTOL:e}·|want|; against onnxruntime {ORT_TOL:e}·(1 + max|want|))\n",
        results.len(),
        bad.len()
    );
    eprint!("{summary}");
    table.push_str(&summary);
    let _ = std::fs::write(root.join("results.txt"), &table);
    assert!(bad.is_empty(), "imported but wrong: {bad:?}");
    for m in MUST_PASS {
        let key = format!("node/{m}");
        if let Some(o) = results.get(&key) {
            assert!(matches!(o, Outcome::Pass { .. }), "{m} must pass: {o:?}");
        }
    }
    for m in LIGHT_MUST_PASS {
        if let Some(o) = results.get(*m) {
            assert!(matches!(o, Outcome::Pass { .. }), "{m} must pass: {o:?}");
        }
    }
    for o in results.values() {
        if let Outcome::Rejected(r) = o {
            assert!(!r.trim().is_empty());
        }
    }
}
