//! Fixed-point forward pass of CNet1 (C = 8, random weights) in images/s, next to the f32 graph
//! engine and the f64 normal form. Run: `cargo bench -p cryptonas-model --bench fixed_point`.

use criterion::{criterion_main, Criterion, Throughput};
use cryptonas_arch::cnet1;
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{Calibration, CalibrationParams, FixedModel, Model, NormalForm};
use ndarray::Array4;

fn bench(c: &mut Criterion) {
    let spec = model_spec(&cnet1(8), "cnet1-c8").unwrap();
    let w = random_init(&spec, 1).unwrap();
    let model = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let nf = NormalForm::compile(&model).unwrap();
    let mut rng = SplitMix64::new(2);
    let imgs: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..3 * 32 * 32).map(|_| rng.normal()).collect())
        .collect();
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let cfg = cal.config(&nf, 32, &CalibrationParams::default()).unwrap();
    let fm = FixedModel::quantize(&nf, &cfg).unwrap();
    let q = fm.quantize_input(&imgs[0]).unwrap();
    let xf: Vec<f64> = imgs[0].iter().map(|&v| f64::from(v)).collect();
    let x4 = Array4::from_shape_vec((1, 3, 32, 32), imgs[0].clone()).unwrap();

    let mut g = c.benchmark_group("cnet1_c8");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.bench_function("fixed_point_k32", |b| b.iter(|| fm.forward(&q).unwrap()));
    g.bench_function("fixed_point_k32_checked", |b| {
        b.iter(|| fm.forward_checked(&q).unwrap())
    });
    g.bench_function("normal_form_f64", |b| {
        b.iter(|| nf.logits_f64(&xf).unwrap())
    });
    g.bench_function("graph_f32", |b| {
        b.iter(|| model.forward(x4.view()).unwrap())
    });
    g.finish();
}

/// All benchmarks of this file (written out instead of `criterion_group!`, whose generated
/// function has no doc comment).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
