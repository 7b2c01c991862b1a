//! Plaintext classification of one image through the f32 engine and the bit-exact fixed-point
//! engine (what the private protocol computes), with the model's ReLU budget: a small program on
//! [`cryptonas_model::plain`]; `cryptonas plain` is the full command (JSON, raw tensors).
//!
//! Run: `cargo run --release -p cryptonas-model --example classify -- <model.json> <weights.safetensors> <image.{png,jpg}> [k]`
//! or   `cargo run --release -p cryptonas-model --example classify -- --demo` (random-weight CNet1
//! C = 8 on a bundled CIFAR-10 test image: the numbers are meaningless, the pipeline is real).

use std::process::ExitCode;

use cryptonas_arch::cnet1;
use cryptonas_model::image::load_input;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{plain, Model};

const DEMO_IMAGE: &[u8] = include_bytes!("../tests/fixtures/cifar10-test-cat-0000.jpg");

fn run(model: &Model, image: &[u8], k: u32) -> Result<(), Box<dyn std::error::Error>> {
    let x = load_input(image, &model.spec.input)?;
    let r = plain::classify(model, &x, k)?;
    if r.calibrated_on_input {
        println!("no stored fixed-point configuration for k = {k}: calibrated on the input");
    }
    if let Some(e) = &r.overflow {
        println!("warning: {e}; showing the wrapped ring result");
    }
    println!(
        "model {:?}: {} ReLUs, {} normal-form stages, ring Z_2^{k}, f_in = {}, f_a = {}",
        r.model, r.relus, r.stages, r.f_in, r.f_a
    );
    print!("{}", r.logits_table());
    println!(
        "f32 class: {}   fixed-point class: {}",
        r.classes[r.f32_class], r.classes[r.fixed_class]
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [demo] if demo == "--demo" => (|| {
            let spec = model_spec(&cnet1(8), "cnet1-c8-random")?;
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
