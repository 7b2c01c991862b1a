//! `cryptonas-export-onnx model.json model.safetensors out.onnx`: a project model as ONNX
//! (opset 17), for onnxruntime and other tools (stands in for `cryptonas export --onnx`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Export a CryptoNAS model pair as an ONNX file.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Architecture JSON.
    json: PathBuf,
    /// Weights.
    safetensors: PathBuf,
    /// Output ONNX file.
    out: PathBuf,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let r = cryptonas_model::Model::load(&a.json, &a.safetensors)
        .map_err(|e| e.to_string())
        .and_then(|m| cryptonas_onnx::export_onnx(&m))
        .and_then(|b| std::fs::write(&a.out, b).map_err(|e| format!("{}: {e}", a.out.display())));
    match r {
        Ok(()) => {
            eprintln!("wrote {}", a.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
