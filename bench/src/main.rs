//! `cryptonas-bench`: see the library docs for what it measures and writes.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cryptonas_bench::Args::parse();
    let results = cryptonas_bench::run(&args)?;
    println!("{}", results.headline());
    println!("results written to {}", results.settings.out.display());
    Ok(())
}
