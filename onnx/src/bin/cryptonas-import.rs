//! `cryptonas-import model.onnx --out models/<name>`: an alias of `cryptonas import` (the body
//! lives in [`cryptonas_onnx::cli`]). Exit status 2 when the model cannot be imported.

use std::process::ExitCode;

use clap::Parser;

/// Import an ONNX model for private inference and report what it costs.
#[derive(Parser, Debug)]
#[command(name = "cryptonas-import", version, about)]
struct Cli {
    #[command(flatten)]
    args: cryptonas_onnx::cli::ImportArgs,
}

fn main() -> ExitCode {
    match cryptonas_onnx::cli::run_import(&Cli::parse().args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
