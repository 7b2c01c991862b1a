//! `plain`: one input through the f32 and the fixed-point engines ([`cryptonas_model::plain`]).

use std::path::{Path, PathBuf};

use anyhow::Context;
use cryptonas_model::{image, plain, Model};

/// `plain`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct PlainArgs {
    /// The model: `<name>.json` (or `<name>`), with `<name>.safetensors` beside it.
    #[arg(value_name = "MODEL")]
    model: PathBuf,
    /// PNG or JPEG image (resized and normalised with the model's statistics).
    #[arg(required_unless_present = "raw_f32", conflicts_with = "raw_f32")]
    image: Option<PathBuf>,
    /// An already normalised input instead of an image: little-endian f32, C×H×W in CHW order,
    /// exactly the model's input shape (bypasses the image decoder).
    #[arg(long, value_name = "FILE")]
    raw_f32: Option<PathBuf>,
    /// Weights, by default `<name>.safetensors` beside the JSON.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Ring bits of the fixed-point engine [default: the model's calibrated k, else 32]. Without
    /// a stored calibration for k, one is made on the input (and said so).
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(8..=64))]
    k: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `models/x` → `models/x.json`; `models/x.json` stays.
fn json_path(p: &Path) -> PathBuf {
    if p.extension().is_some_and(|e| e == "json") || p.is_file() {
        p.to_path_buf()
    } else {
        p.with_extension("json")
    }
}

pub(crate) fn run(a: &PlainArgs) -> anyhow::Result<()> {
    let json = json_path(&a.model);
    let weights = a
        .weights
        .clone()
        .unwrap_or_else(|| json.with_extension("safetensors"));
    let model = Model::load(&json, &weights)
        .with_context(|| format!("cannot load {} + {}", json.display(), weights.display()))?;
    let x = match (&a.raw_f32, &a.image) {
        (Some(raw), _) => {
            let bytes = cryptonas_client::cli::read_input_file(raw)?;
            plain::read_f32_le(&bytes, &model.spec.input).with_context(|| {
                format!("{} is not an input tensor of this model", raw.display())
            })?
        }
        (None, Some(img)) => {
            let bytes = cryptonas_client::cli::read_input_file(img)?;
            image::load_input(&bytes, &model.spec.input)
                .with_context(|| format!("cannot use {} as an image", img.display()))?
        }
        (None, None) => anyhow::bail!("give an image or --raw-f32 FILE"),
    };
    let k =
        a.k.unwrap_or_else(|| model.spec.metadata.fixed_point.as_ref().map_or(32, |c| c.k));
    let r = plain::classify(&model, &x, k)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    if r.calibrated_on_input {
        eprintln!(
            "note: {} has no fixed-point calibration for k = {k}; calibrated on this input, so \
             the fixed-point numbers are not what a server computes",
            r.model
        );
    }
    if let Some(e) = &r.overflow {
        eprintln!("warning: {e}; the fixed-point logits are the wrapped ring result");
    }
    println!(
        "model {}: {} ReLUs, {} normal-form stages, ring Z_2^{k}, f_in = {}, f_a = {}",
        r.model, r.relus, r.stages, r.f_in, r.f_a
    );
    print!("{}", r.logits_table());
    println!(
        "class (fixed point, what private inference returns): {} ({})",
        r.fixed_class_name(),
        r.fixed_class
    );
    if r.f32_class != r.fixed_class {
        println!(
            "the f32 engine says {} ({})",
            r.classes.get(r.f32_class).map_or("?", String::as_str),
            r.f32_class
        );
    }
    Ok(())
}
