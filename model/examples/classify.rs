//! Plaintext classification of one image through the f32 engine and the bit-exact fixed-point
//! engine (what the private protocol computes), with the model's ReLU budget.
//!
//! Run: `cargo run --release -p cryptonas-model --example classify -- <model.json> <weights.safetensors> <image.{png,jpg}> [k]`
//! or   `cargo run --release -p cryptonas-model --example classify -- --demo` (random-weight CNet1
//! C = 8 on a bundled CIFAR-10 test image: the numbers are meaningless, the pipeline is real).

use std::process::ExitCode;

use cryptonas_model::image::load_input;
use cryptonas_model::zoo::{cnet1, random_init};
use cryptonas_model::{
    relu_count, Calibration, CalibrationParams, FixedModel, Model, ModelError, NormalForm,
};
use ndarray::ArrayView4;

const DEMO_IMAGE: &[u8] = include_bytes!("../tests/fixtures/cifar10-test-cat-0000.jpg");

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

fn run(model: &Model, image: &[u8], k: u32) -> Result<(), Box<dyn std::error::Error>> {
    let spec = &model.spec;
    let x = load_input(image, &spec.input)?;
    let (c, h, w) = (spec.input.channels, spec.input.height, spec.input.width);
    let f32_logits: Vec<f64> = model
        .forward(ArrayView4::from_shape((1, c, h, w), &x)?)?
        .iter()
        .map(|&v| f64::from(v))
        .collect();

    let nf = NormalForm::compile(model)?;
    let config = match &spec.metadata.fixed_point {
        Some(cfg) if cfg.k == k => cfg.clone(),
        _ => {
            // No stored calibration for this k: calibrate on the image and its mirror image.
            let mut mirror = x.clone();
            for row in mirror.chunks_mut(w) {
                row.reverse();
            }
            let cal = Calibration::run(&nf, [x.as_slice(), mirror.as_slice()])?;
            let params = CalibrationParams::default();
            if let Some(kmin) = cal.smallest_k(&nf, &params) {
                println!(
                    "calibrated on the input: smallest safe k = {kmin} (f_a = {})",
                    params.f_a
                );
            }
            cal.config(&nf, k, &params)?
        }
    };
    let fixed = FixedModel::quantize(&nf, &config)?;
    let q = fixed.quantize_input(&x)?;
    let ring = match fixed.forward_checked(&q) {
        Ok(r) => r,
        Err(e @ ModelError::Overflow { .. }) => {
            println!("warning: {e}; showing the wrapped ring result");
            fixed.forward(&q)?
        }
        Err(e) => return Err(e.into()),
    };
    let fx_logits = fixed.dequantize_logits(&ring);

    println!(
        "model {:?}: {} ReLUs, {} normal-form stages, ring Z_2^{k}, f_in = {}, f_a = {}",
        spec.name,
        relu_count(spec)?,
        nf.stages.len(),
        config.f_in,
        config.f_a
    );
    println!("{:>12} {:>10} {:>10}", "class", "f32", "fixed");
    for (i, name) in spec.classes.iter().enumerate() {
        println!("{name:>12} {:>10.4} {:>10.4}", f32_logits[i], fx_logits[i]);
    }
    let (a, b) = (argmax(&f32_logits), argmax(&fx_logits));
    println!(
        "f32 class: {}   fixed-point class: {}",
        spec.classes[a], spec.classes[b]
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [demo] if demo == "--demo" => (|| {
            let spec = cnet1(8).to_model_spec("cnet1-c8-random")?;
            let weights = random_init(&spec, 1)?;
            let model = Model::from_bytes(spec.to_json().as_bytes(), &weights)?;
            run(&model, DEMO_IMAGE, 32)
        })(),
        [json, weights, image, rest @ ..] if rest.len() <= 1 => (|| {
            let k = match rest.first() {
                Some(s) => s.parse()?,
                None => 32,
            };
            let model = Model::load(json, weights)?;
            let bytes = std::fs::read(image).map_err(|e| format!("{image}: {e}"))?;
            run(&model, &bytes, k)
        })(),
        _ => {
            eprintln!("usage: classify <model.json> <weights.safetensors> <image> [k]\n       classify --demo");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
