//! `cryptonas-client`: an alias of `cryptonas classify` (the body lives in
//! [`cryptonas_client::cli`]).
//!
//! Run: `cargo run --release -p cryptonas-client -- --server http://127.0.0.1:8080 --model cnet1-c8 image.jpg`

use clap::Parser;

/// Classify an image privately: the server never sees it, you never see the weights.
#[derive(Parser)]
#[command(name = "cryptonas-client", version, about)]
struct Cli {
    #[command(flatten)]
    args: cryptonas_client::cli::ClassifyArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    cryptonas_client::cli::run(&Cli::parse().args).await
}
