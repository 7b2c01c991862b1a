//! Writes a small random-weight CryptoNAS-shaped model (CNet1's layers, calibrated fixed point) as
//! `<dir>/<name>.json` + `<dir>/<name>.safetensors`, the layout `cryptonas-server --models <dir>`
//! loads: lets the page test run before trained models exist. The predictions are meaningless; the
//! protocol is real.
//!
//! Run: `cargo run -p wasm-client --example tiny_model -- <dir> [channels=2] [side=32]`

use cryptonas_protocol::testing::tiny_model;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: tiny_model <dir> [channels=2] [side=32]");
        return ExitCode::from(2);
    };
    let num = |i: usize, default: usize| -> Result<usize, String> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| format!("argument {i} must be a positive integer, got {s:?}"))
        })
    };
    let (channels, side) = match (num(1, 2), num(2, 32)) {
        (Ok(c), Ok(s)) if c > 0 && s >= 8 => (c, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        _ => {
            eprintln!("channels must be > 0 and side >= 8");
            return ExitCode::from(2);
        }
    };
    let (json, weights, model, _) = tiny_model(channels, side, 7);
    let name = &model.plan().model;
    let dir = std::path::Path::new(dir);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.json")), &json)?;
        std::fs::write(dir.join(format!("{name}.safetensors")), &weights)
    };
    if let Err(e) = write() {
        eprintln!("cannot write the model into {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    println!(
        "wrote {}/{name}.{{json,safetensors}}: {} ReLUs, input 3x{side}x{side}",
        dir.display(),
        model.plan().relu_count()
    );
    ExitCode::SUCCESS
}
