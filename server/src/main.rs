//! `cryptonas-server`: an alias of `cryptonas serve` (the body lives in
//! [`cryptonas_server::cli`]): hosts the models of a directory and runs the server half of private
//! inference.
//!
//! Run: `cargo run --release -p cryptonas-server -- --models models --www www`

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cryptonas_server::cli::run(&cryptonas_server::Config::parse()).await
}
