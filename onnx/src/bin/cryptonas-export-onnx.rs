//! `cryptonas-export-onnx model.json model.safetensors out.onnx`: an alias of `cryptonas export
//! --onnx out.onnx model.json` (the body lives in [`cryptonas_onnx::cli`]).

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
    match cryptonas_onnx::cli::export_onnx_file(&a.json, Some(&a.safetensors), &a.out) {
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
