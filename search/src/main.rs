//! `cryptonas-search`: the search crate's commands under their old name (an alias of `cryptonas
//! count|train|search|export|pareto|check-fixed`; the bodies live in [`cryptonas_search::cli`]).

use clap::Parser;
use cryptonas_search::cli::{self, Command};

/// CryptoNAS: networks for private inference on a ReLU budget.
///
/// Typical flow: `count --budget 86016` to see which (depth, width) pairs fit, `search --budget
/// 86016 --time-limit 3600` to pick an architecture, `train --arch <arc> --width 14 --epochs 60
/// --export models` to train and export it, `pareto` to compare exported models with the paper.
/// Training and search need the `tch` cargo feature and libtorch (LIBTORCH, LD_LIBRARY_PATH).
/// The same commands are subcommands of the `cryptonas` tool.
#[derive(Parser, Debug)]
#[command(name = "cryptonas-search", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

fn main() {
    if let Err(e) = cli::run(Cli::parse().cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
