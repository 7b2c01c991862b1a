//! `cryptonas`: the project's one command-line tool. Each subcommand is a thin shell around a
//! library: `serve` ([`cryptonas_server::cli`]), `classify` ([`cryptonas_client::cli`]), `plain`
//! ([`cryptonas_model::plain`]), `count`/`search`/`train`/`export --run`/`pareto`/`check-fixed`
//! ([`cryptonas_search::cli`]), `import`/`export --onnx` ([`cryptonas_onnx::cli`]) and `bench`
//! ([`cryptonas_bench`]). The old binaries (`cryptonas-server`, `cryptonas-client`, …) call the same
//! code. Exit statuses are in [`exit`].

mod exit;
mod plain;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand};

const TOP_EXAMPLES: &str = "\
Examples:
  cryptonas serve --models models --www www       # host the bundled models and the demo page
  cryptonas classify --model cnet1-c4 www/samples/cat.jpg
  cryptonas plain models/cnet1-c4.json www/samples/cat.jpg
  cryptonas count models/cnet1-c4.json
  cryptonas count --budget 86016                  # (depth, width) pairs that fit a ReLU budget
  cryptonas completions bash > ~/.local/share/bash-completion/completions/cryptonas

Every command that reports something takes --json (one JSON document on stdout; progress and
logs go to stderr).";

const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  error: bad input, a missing file, a failed session, I/O
  2  usage error: unknown flag, missing or conflicting arguments
  3  the server refused: busy (503), rate-limited (429), unknown model (404), origin or
     plaintext answers not allowed (403)
  4  protocol version mismatch between this client and the server
  5  a check failed: classify --verify found a divergence, classify --reveal got another class,
     import found a model that private inference cannot run
  6  built without libtorch: train, search and export --run need `--features tch`";

/// CryptoNAS: private image classification on a ReLU budget.
///
/// A client sends an encrypted image, the server runs its network on it (HE offline, garbled
/// ReLUs online); neither sees the other's secret.
#[derive(Parser, Debug)]
#[command(
    name = "cryptonas",
    version,
    about,
    long_about,
    after_help = format!("{TOP_EXAMPLES}\n\n{EXIT_STATUS}"),
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Host models for private inference (and the demo page).
    #[command(after_help = "\
Examples:
  cryptonas serve --models models --www www --bind 127.0.0.1:8080
  CRYPTONAS_POOL=2 cryptonas serve --models models    # garble 2 inferences per model ahead
  cryptonas serve --models models --allow-plaintext   # the page's \"reveal\" box (an oracle!)

Every flag has a CRYPTONAS_* environment variable (shown with each flag). Logs go to stderr
(RUST_LOG=debug for more); stdout gets one line, `CryptoNAS server ready: <url>`.")]
    Serve(cryptonas_server::Config),

    /// Classify an image privately against a server.
    ///
    /// The server never sees the image, you never see the weights.
    #[command(after_help = "\
Examples:
  cryptonas classify --server http://127.0.0.1:8080 --model cnet1-c4 www/samples/cat.jpg
  cryptonas classify --model cnet1-c4 --raw-f32 cat.f32 --json    # a normalised tensor
  cryptonas classify --model cnet1-c4 --reveal www/samples/cat.jpg
  cryptonas classify --verify models/cnet1-c4.json www/samples/cat.jpg   # in process, no server

--reveal compares with the server's plaintext engine (the server must run with
--allow-plaintext, and sees the image); --verify runs both halves in this process and compares
every layer with the fixed-point engine bit for bit. Either exits with 5 when they disagree.")]
    Classify(cryptonas_client::cli::ClassifyArgs),

    /// Classify with the plaintext engines (f32 and fixed point), no server.
    ///
    /// Both engines side by side: the f32 reference and the bit-exact fixed point that private
    /// inference computes. No server, no cryptography.
    #[command(after_help = "\
Examples:
  cryptonas plain models/cnet1-c4.json www/samples/cat.jpg
  cryptonas plain models/cnet1-c4 --raw-f32 cat.f32 --json    # normalised CHW little-endian f32

The fixed-point logits are what `classify` returns for the same input, bit for bit.")]
    Plain(plain::PlainArgs),

    /// Count ReLUs and MACs, or fit (depth, width) to a ReLU budget.
    ///
    /// Exact ReLU and MAC counts of an exported model or a generated architecture, or the (depth,
    /// width) pairs whose network fits a ReLU budget.
    #[command(after_help = "\
Examples:
  cryptonas count models/cnet1-c4.json              # an exported model
  cryptonas count --arch cnet1 --width 14 --json    # 86016 ReLUs, MACs by part
  cryptonas count --budget 86016 --top 5            # (depth, width) pairs, largest first")]
    Count(cryptonas_search::cli::CountArgs),

    /// Search an architecture under a ReLU budget (needs libtorch).
    ///
    /// Needs a binary built with `--features tch` (see the exit status 6 below).
    #[command(after_help = "\
Examples:
  cryptonas search --budget 86016 --time-limit 3600 --data ../shared/data/cifar10-jpeg.tar.gz
  cryptonas search --budget 50000 --method proxy --dense-only --json

Then train the result: the last line prints the `cryptonas train` command.")]
    Search(cryptonas_search::cli::SearchArgs),

    /// Train a network with the CryptoNAS recipe (needs libtorch).
    ///
    /// Optionally exports it (--export). Needs a binary built with `--features tch`.
    #[command(after_help = "\
Examples:
  cryptonas train --arch cnet1 --width 14 --epochs 60 --out runs/c14 --export models
  cryptonas train --arch cnet1 --width 4 --epochs 60 --out runs/c4 --resume
  cryptonas train --dataset fashion-mnist --arch cnet1 --width 8 --epochs 20 --out runs/f8")]
    Train(cryptonas_search::cli::TrainArgs),

    /// Export a training run (--run, needs libtorch) or a model to ONNX (--onnx).
    #[command(after_help = "\
Examples:
  cryptonas export --run runs/c14 --out models --name cnet1-c14
  cryptonas export --onnx cnet1-c4.onnx models/cnet1-c4.json")]
    Export(ExportCmd),

    /// Fixed-point accuracy of exported models against their float versions.
    ///
    /// On the test set, image by image; a whole-test-set figure is stored in the model's metadata.
    #[command(after_help = "\
Examples:
  cryptonas check-fixed models/cnet1-c14.json                  # whole test set, stored
  cryptonas check-fixed models/*.json --images 500 --json     # a quick look, not stored")]
    CheckFixed(cryptonas_search::cli::CheckFixedArgs),

    /// Accuracy-vs-ReLU report (SVG + Markdown) of exported models.
    #[command(after_help = "\
Examples:
  cryptonas pareto --models models --out models/pareto")]
    Pareto(cryptonas_search::cli::ParetoArgs),

    /// Import an ONNX model, with a compatibility and cost report.
    #[command(after_help = "\
Examples:
  cryptonas import model.onnx --dry-run                       # the report only
  cryptonas import model.onnx --out models/mynet --calibration calib-images/ \\
      --input-norm 0.49,0.48,0.45,0.25,0.24,0.26 --classes classes.txt

Exits with 5 when private inference cannot run the model (the report says why).")]
    Import(cryptonas_onnx::cli::ImportArgs),

    /// Benchmark private inference: latency, traffic, per-ReLU costs.
    ///
    /// Against the ReLU budget, every result checked bit-exact against the plaintext engine.
    #[command(after_help = "\
Examples:
  cryptonas bench --short                                       # a quick smoke run
  cryptonas bench --models models --sweep 2,4,8,14 --inferences 3 --network loopback,lan,wan \\
      --out bench/results

Writes results.json, results.md and SVG plots into --out; --json also prints the results.")]
    Bench(BenchCmd),

    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  cryptonas completions bash > ~/.local/share/bash-completion/completions/cryptonas
  cryptonas completions zsh > ~/.zfunc/_cryptonas        # with fpath+=~/.zfunc in .zshrc
  cryptonas completions fish > ~/.config/fish/completions/cryptonas.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `export`: one of --run or --onnx.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["run", "onnx"])))]
struct ExportCmd {
    /// Training run directory (checkpoint.safetensors, state.json) to export to the model format
    /// (needs libtorch).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["onnx", "model"])]
    run: Option<PathBuf>,
    /// Write MODEL_JSON as an ONNX file (opset 17) to this path.
    #[arg(long, value_name = "OUT_ONNX", requires = "model")]
    onnx: Option<PathBuf>,
    /// The model to export with --onnx (`<name>.json`, `<name>.safetensors` beside it).
    #[arg(value_name = "MODEL_JSON")]
    model: Option<PathBuf>,
    #[command(flatten)]
    options: cryptonas_search::cli::ExportOptions,
}

/// `bench`: the harness's flags and --json.
#[derive(Args, Debug)]
struct BenchCmd {
    #[command(flatten)]
    args: cryptonas_bench::Args,
    /// Print the results as JSON (they are written to --out either way).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code(&e))
        }
    }
}

/// `cryptonas … | head` closes stdout early; `println!` then panics with a broken pipe. That is
/// the reader's choice, not an error: end quietly with status 0 (as ripgrep does) instead of a
/// panic message. Every other panic goes to the default hook.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    Ok(b.enable_all().build()?)
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    use cryptonas_search::cli as search;
    match cmd {
        Cmd::Serve(config) => runtime(true)?.block_on(cryptonas_server::cli::run(&config)),
        Cmd::Classify(a) => runtime(false)?.block_on(cryptonas_client::cli::run(&a)),
        Cmd::Plain(a) => plain::run(&a),
        Cmd::Count(a) => search::run_count(&a),
        Cmd::Search(a) => search::run_search(&a),
        Cmd::Train(a) => search::run_train(&a),
        Cmd::CheckFixed(a) => search::run_check_fixed(&a),
        Cmd::Pareto(a) => search::run_pareto(&a),
        Cmd::Export(e) => match (&e.run, &e.onnx, &e.model) {
            (Some(run), _, _) => search::run_export(run, &e.options),
            (None, Some(out), Some(model)) => {
                cryptonas_onnx::cli::export_onnx_file(model, None, out)
                    .map_err(anyhow::Error::msg)?;
                if e.options.json {
                    println!("{}", serde_json::json!({ "onnx": out, "model": model }));
                } else {
                    eprintln!("wrote {}", out.display());
                }
                Ok(())
            }
            // clap's group and `requires` rule this out.
            _ => anyhow::bail!("give --run RUN_DIR, or --onnx OUT_ONNX MODEL_JSON"),
        },
        Cmd::Import(a) => match cryptonas_onnx::cli::run_import(&a) {
            Ok(true) => Ok(()),
            Ok(false) => Err(exit::CheckFailed(
                "private inference cannot run this model (the report above says why)".into(),
            )
            .into()),
            Err(e) => Err(anyhow::Error::msg(e)),
        },
        Cmd::Bench(b) => {
            let results = cryptonas_bench::run(&b.args)?;
            if b.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                println!("{}", results.headline());
                println!("results written to {}", results.settings.out.display());
            }
            Ok(())
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cryptonas",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
