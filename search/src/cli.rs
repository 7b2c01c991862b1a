//! The `count`, `train`, `search`, `export`, `pareto` and `check-fixed` commands: their arguments
//! (clap) and their bodies, shared by the `cryptonas` tool and the `cryptonas-search` alias so there
//! is one implementation.
//!
//! Every command that reports something prints text, or JSON on stdout with `--json` (progress
//! goes to stderr either way). Without the `tch` feature, `train`, `search` and `export` check
//! their arguments and then fail with [`NeedsTch`], which says how to rebuild.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::data::DatasetKind;
use crate::{count, export, pareto, Arch};

/// A command needs libtorch and this binary was built without the `tch` feature.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{command}` needs libtorch, and this binary was built without the `tch` feature. Rebuild \
     with it, LIBTORCH pointing at a libtorch (a PyTorch install's site-packages/torch works): \
     `LIBTORCH=/path/to/torch LIBTORCH_BYPASS_VERSION_CHECK=1 cargo install --path cli --features \
     tch` (or `cargo build -p cryptonas-search --features tch`), and run it with \
     LD_LIBRARY_PATH=$LIBTORCH/lib"
)]
pub struct NeedsTch {
    /// The command asked for.
    pub command: &'static str,
}

/// The commands of the `cryptonas-search` alias (the `cryptonas` tool lists them itself).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Exact ReLU and MAC counts of an architecture, or the (depth, width) pairs fitting a budget.
    Count(CountArgs),
    /// Train a network with the CryptoNAS recipe (needs feature `tch`).
    Train(TrainArgs),
    /// Proxy-training search for the best architecture under a ReLU budget (needs feature `tch`).
    Search(SearchArgs),
    /// Export a training run directory to the model format (needs feature `tch`).
    Export(ExportArgs),
    /// Accuracy-vs-ReLU report (SVG + Markdown) of every exported model in a directory.
    Pareto(ParetoArgs),
    /// Fixed-point accuracy of exported models on the whole test set, compared image by image
    /// with the float model and written into their metadata (`--images N`: a quick look at N).
    CheckFixed(CheckFixedArgs),
    /// Score architectures with a supernet saved by `search --supernet-dir` (needs feature `tch`).
    Score(ScoreArgs),
    /// The searched-vs-released study's steps (scripts/search-study.sh): pick, tau, paired.
    #[command(subcommand)]
    Study(StudyCmd),
}

/// `score`: supernet scores of given architectures.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Directory of the saved supernet (`supernet.json` + `supernet.safetensors`).
    #[arg(long)]
    pub supernet: PathBuf,
    /// JSON lines with an `arc` (and optionally a `label`) each, e.g. `study pick`'s output.
    #[arg(long)]
    pub arcs: PathBuf,
    /// Output JSON lines: the input lines with `val_acc` (the supernet score) added.
    #[arg(long)]
    pub out: PathBuf,
    /// Torch intra-op threads.
    #[arg(long)]
    pub threads: Option<i32>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub data: DataArgs,
}

/// The study's steps.
#[derive(Subcommand, Debug)]
pub enum StudyCmd {
    /// Architectures for the τ study: evenly spread over a search log's score range (best and
    /// worst included), random draws from the search space's prior, and CNet1 (JSON lines).
    Pick(PickArgs),
    /// Kendall's τ between supernet scores and standalone training runs: Markdown + SVG.
    Tau(TauArgs),
    /// The paired comparison table (searched vs CNet1) of exported models: Markdown.
    Paired(PairedArgs),
    /// Copies a searched network's exported model under its bundled name, its metadata naming
    /// the search that found it (result, log, scorer); run `check-fixed --narrow` on it next.
    Bundle(BundleArgs),
}

/// `study pick`.
#[derive(Args, Debug)]
pub struct PickArgs {
    /// The search's JSON-lines log.
    #[arg(long)]
    pub log: PathBuf,
    /// Architectures spread over the score range (the best and the worst included).
    #[arg(long, default_value_t = 8)]
    pub spread: usize,
    /// Architectures drawn at random from the search space's prior.
    #[arg(long, default_value_t = 3)]
    pub random: usize,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only dense convs (as `search --dense-only`): random draws use conv3/conv5 and CNet1 is
    /// added in its dense form (the form the supernet can score).
    #[arg(long)]
    pub dense_only: bool,
    /// Leave CNet1 out.
    #[arg(long)]
    pub no_cnet1: bool,
    /// Output JSON lines (`label`, `arc`).
    #[arg(long)]
    pub out: PathBuf,
}

/// `study tau`.
#[derive(Args, Debug)]
pub struct TauArgs {
    /// `score`'s output: JSON lines with `label`, `arc`, `val_acc`.
    #[arg(long)]
    pub scores: PathBuf,
    /// Directory holding one training run per label (`<runs>/<label>/state.json`); labels
    /// without a finished run are left out and listed.
    #[arg(long)]
    pub runs: PathBuf,
    /// Output stem: writes `<out>.md`, `<out>.svg` and `<out>.json` (the rows and τ).
    #[arg(long)]
    pub out: PathBuf,
    /// Title of the table and plot.
    #[arg(long, default_value = "Supernet ranking")]
    pub title: String,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `study paired`.
#[derive(Args, Debug)]
pub struct PairedArgs {
    /// Exported model JSON files named `<arm>-<relus>-s<seed>.json` (arm: searched or cnet1).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Output Markdown file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also plot the runs into this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// `study bundle`.
#[derive(Args, Debug)]
pub struct BundleArgs {
    /// The exported model JSON (`<name>.safetensors` beside it).
    #[arg(long)]
    pub model: PathBuf,
    /// The bundled name (e.g. `searched-25k`).
    #[arg(long)]
    pub name: String,
    /// The search's `result.json` (its final architecture must be the model's).
    #[arg(long)]
    pub search_result: PathBuf,
    /// Where the search's log is kept, as recorded in the metadata (e.g. the committed
    /// `search/results/study-search-24576-log.jsonl`).
    #[arg(long)]
    pub search_log: String,
    /// Output directory (`<name>.json` + `<name>.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
}

/// Which dataset, and where it is.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset.
    #[arg(long, value_enum, default_value = "cifar10")]
    pub dataset: DatasetKind,
    /// Dataset path: the CIFAR-10 JPEG tar.gz or the Fashion-MNIST directory
    /// [default: ../shared/data/cifar10-jpeg.tar.gz or /usr/share/datasets/fashion-mnist].
    #[arg(long)]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// `--data`, or the dataset's default path.
    pub fn path(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| PathBuf::from(self.dataset.default_path()))
    }
}

/// `count`: exact ReLU and MAC counts, or the (depth, width) pairs fitting a budget.
#[derive(Args, Debug)]
pub struct CountArgs {
    /// An exported model (`<name>.json`; the weights are not read): count its ReLUs and MACs
    /// instead of a generated architecture.
    #[arg(value_name = "MODEL_JSON", conflicts_with_all = ["arch", "width", "budget"])]
    pub model: Option<PathBuf>,
    /// Architecture: cnet1, cnet2, cnet3, an ENAS arc string ("0 1 0 …") or arch JSON.
    #[arg(long, default_value = "cnet1")]
    pub arch: String,
    /// Base width C (channels of the first stage).
    #[arg(long, default_value_t = 14)]
    pub width: usize,
    /// Dataset geometry (cifar10: 3×32×32, fashion-mnist: 1×28×28).
    #[arg(long, value_enum, default_value = "cifar10")]
    pub dataset: DatasetKind,
    /// List the (depth, width) pairs that fit this many ReLUs instead, largest first.
    #[arg(long)]
    pub budget: Option<u64>,
    /// Deepest network considered by --budget.
    #[arg(long, default_value_t = 30)]
    pub max_depth: usize,
    /// How many pairs --budget prints.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `train`: train a network with the CryptoNAS recipe.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Architecture: cnet1, cnet2, cnet3, an ENAS arc string or arch JSON (file or inline).
    #[arg(long, default_value = "cnet1")]
    pub arch: String,
    /// Base width C.
    #[arg(long)]
    pub width: usize,
    /// Epochs (the paper trains 310).
    #[arg(long, default_value_t = 310)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Wall-clock budget in seconds: the LR schedule follows whichever of time and epochs is
    /// further along, and training stops (annealed) when the time is spent.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// The clock --time-budget counts: wall time, or this process's CPU time (equal compute for
    /// runs that share a busy machine at low priority).
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: crate::clock::Clock,
    /// Run directory for checkpoints (`checkpoint.safetensors`, `state.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Fine-tune: start from the weights of this run directory (same network) under a new
    /// schedule, e.g. a run that already annealed at the end of its time budget.
    #[arg(long, value_name = "RUN_DIR")]
    pub warm_start: Option<PathBuf>,
    /// Peak learning rate of each SGDR cycle.
    #[arg(long, default_value_t = 0.05)]
    pub lr_max: f64,
    /// Length in epochs of the first SGDR cycle (set it to --epochs for one cosine decay).
    #[arg(long, default_value_t = 10.0)]
    t0: f64,
    /// Dropout before the classifier.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Cutout square side in pixels (0 = off; 16 is the usual CIFAR-10 choice).
    #[arg(long, default_value_t = 0)]
    pub cutout: usize,
    /// Validation images per class held out of training.
    #[arg(long, default_value_t = 500)]
    pub val_per_class: usize,
    /// Train on at most this many images per class (quick runs and smoke tests) [default: all].
    #[arg(long)]
    pub train_per_class: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Torch intra-op threads (default: torch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// After training, export into this directory (as `--name`).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Model name for --export [default: lL-cC from depth and width, e.g. l6-c14].
    #[arg(long)]
    pub name: Option<String>,
    /// Test images for the fixed-point check at export; 0 skips it.
    #[arg(long, default_value_t = 500)]
    pub fixed_images: usize,
    /// Print the result (accuracy, export) as JSON.
    #[arg(long)]
    pub json: bool,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub data: DataArgs,
}

/// `search`: the architecture search under a ReLU budget.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// ReLU budget; the search runs at the depth of the best (depth, width) pair.
    #[arg(long)]
    pub budget: u64,
    /// Time limit in seconds (on --clock).
    #[arg(long, default_value_t = 3600.0)]
    pub time_limit: f64,
    /// The clock --time-limit counts: wall time, or this process's CPU time.
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: crate::clock::Clock,
    /// Search at this depth instead of the budget solver's choice.
    #[arg(long)]
    pub depth: Option<usize>,
    /// JSON-lines log, one line per candidate.
    #[arg(long, default_value = "search-log.jsonl")]
    pub log: PathBuf,
    /// Where to write the result (best arch, pair, all candidates) as JSON.
    #[arg(long, default_value = "search-result.json")]
    pub result: PathBuf,
    /// How candidates are scored: with the shared weights of a supernet trained first, or by
    /// training each one briefly (proxy).
    #[arg(long, value_enum, default_value = "supernet")]
    pub method: crate::SearchMethod,
    /// Supernet training epochs (its share of --time-limit may end training earlier, annealed).
    #[arg(long, default_value_t = 30)]
    pub supernet_epochs: usize,
    /// Share of --time-limit spent training the supernet; the rest scores candidates.
    #[arg(long, default_value_t = 0.5)]
    pub supernet_fraction: f64,
    /// Width of the proxy networks or of the supernet.
    #[arg(long, default_value_t = 8)]
    pub proxy_width: usize,
    /// Epochs per proxy candidate.
    #[arg(long, default_value_t = 3)]
    pub proxy_epochs: usize,
    /// Training images per class for proxy candidates.
    #[arg(long, default_value_t = 500)]
    pub proxy_per_class: usize,
    /// Validation images per class for ranking candidates.
    #[arg(long, default_value_t = 200)]
    pub val_per_class: usize,
    /// Search only dense convs (conv3×3, conv5×5) instead of the six ENAS ops.
    #[arg(long)]
    pub dense_only: bool,
    /// Random initial population.
    #[arg(long, default_value_t = 8)]
    pub population: usize,
    /// Tournament size.
    #[arg(long, default_value_t = 3)]
    pub tournament: usize,
    /// Maximum candidates.
    #[arg(long, default_value_t = 1000)]
    pub max_candidates: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Save the trained supernet here, or load it from here when it is already there (a rerun
    /// then skips supernet training; `score` scores other architectures with it).
    #[arg(long)]
    pub supernet_dir: Option<PathBuf>,
    /// Continue the search logged in --log (interrupted): replay its candidates, then go on.
    #[arg(long)]
    pub resume: bool,
    /// Torch intra-op threads.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Print the result (what --result holds) as JSON on stdout too.
    #[arg(long)]
    pub json: bool,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub data: DataArgs,
}

/// `export`: a training run directory to the model format.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Training run directory (with checkpoint.safetensors and state.json).
    #[arg(long)]
    pub run: PathBuf,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub options: ExportOptions,
}

/// How a training run is exported (everything but the run directory).
#[derive(Args, Debug)]
pub struct ExportOptions {
    /// Output directory for `<name>.json` + `<name>.safetensors`.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// Model name [default: run directory name].
    #[arg(long)]
    pub name: Option<String>,
    /// Measure test accuracy now if the run has none (needs the dataset).
    #[arg(long)]
    pub measure: bool,
    /// Test images for the fixed-point check (model crate engine, k = 32); 0 skips it.
    #[arg(long, default_value_t = 500)]
    pub fixed_images: usize,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub data: DataArgs,
}

/// `check-fixed`: fixed-point accuracy of exported models against their float versions.
#[derive(Args, Debug)]
pub struct CheckFixedArgs {
    /// Exported model JSON files (`<name>.safetensors` beside each).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Check only this many test images, evenly spread, and leave the model file as it is
    /// [default: all, stored in the metadata].
    #[arg(long)]
    pub images: Option<usize>,
    /// First re-calibrate: per ReLU layer the narrowest ring (and least weight precision) whose
    /// fixed-point accuracy on `--search-images` test images stays within `--tolerance` points of
    /// float; then check as usual. The model file is rewritten only when the whole test set
    /// was checked and is within the tolerance there too.
    #[arg(long)]
    pub narrow: bool,
    /// Test images the narrowing judges each candidate on (evenly spread) [default: all].
    #[arg(long)]
    pub search_images: Option<usize>,
    /// Largest |fixed − float| accuracy gap, in points, that `--narrow` accepts.
    #[arg(long, default_value_t = 0.1)]
    pub tolerance: f64,
    /// With `--narrow`: no search, every ReLU layer gets this many fractional weight bits and
    /// the narrowest ring that holds its range.
    #[arg(long)]
    pub weight_bits: Option<u32>,
    /// Training images the narrowing calibrates value ranges on (evenly spread).
    #[arg(long, default_value_t = 512)]
    pub calibration_images: usize,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub data: DataArgs,
}

/// `pareto`: the accuracy-vs-ReLU report of a directory of exported models.
#[derive(Args, Debug)]
pub struct ParetoArgs {
    /// Directory of exported models.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Output stem: writes `<out>.svg` and `<out>.md`.
    #[arg(long, default_value = "models/pareto")]
    pub out: PathBuf,
    /// Dataset label for titles.
    #[arg(long, default_value = "CIFAR-10 (JPEG-q75 copy)")]
    pub dataset_label: String,
    /// Print the points as JSON (the files are written either way).
    #[arg(long)]
    pub json: bool,
}

/// Runs one command.
pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Count(a) => run_count(&a),
        Command::Train(a) => run_train(&a),
        Command::Search(a) => run_search(&a),
        Command::Export(a) => run_export(&a.run, &a.options),
        Command::Pareto(a) => run_pareto(&a),
        Command::CheckFixed(a) => run_check_fixed(&a),
        Command::Score(a) => run_score(&a),
        Command::Study(StudyCmd::Pick(a)) => run_pick(&a),
        Command::Study(StudyCmd::Tau(a)) => run_tau(&a),
        Command::Study(StudyCmd::Paired(a)) => run_paired(&a),
        Command::Study(StudyCmd::Bundle(a)) => run_bundle(&a),
    }
}

fn print_json(v: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// An architecture from a file (arch JSON or arc string) or inline.
fn load_arch(s: &str) -> Result<Arch> {
    let p = std::path::Path::new(s);
    if p.is_file() {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {s}"))?;
        return Ok(Arch::parse_any(&text)?);
    }
    Ok(Arch::parse_any(s)?)
}

/// `count`: exact ReLU and MAC counts of an exported model or a generated architecture, or the
/// (depth, width) pairs fitting a budget.
pub fn run_count(a: &CountArgs) -> Result<()> {
    if let Some(path) = &a.model {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let spec = cryptonas_model::ModelSpec::from_json(&bytes)
            .with_context(|| format!("{} is not a model file", path.display()))?;
        let relus = cryptonas_model::relu_count(&spec)?;
        let macs = cryptonas_model::macs(&spec)?;
        let i = &spec.input;
        if a.json {
            return print_json(&serde_json::json!({
                "model": spec.name,
                "input": [i.channels, i.height, i.width],
                "relus": relus,
                "macs": macs,
            }));
        }
        println!("model  {}", spec.name);
        println!("input  {}×{}×{}", i.channels, i.height, i.width);
        println!("ReLUs  {relus}");
        println!("MACs   {macs}");
        return Ok(());
    }
    let input = a.dataset.shape();
    if let Some(budget) = a.budget {
        let pairs = count::solve_budget(budget, input, a.max_depth)?;
        let top = &pairs[..a.top.min(pairs.len())];
        if a.json {
            return print_json(&serde_json::json!({
                "budget": budget,
                "dataset": a.dataset.label(),
                "pairs": top,
            }));
        }
        println!(
            "(depth, width) pairs within {budget} ReLUs on {}, largest first:",
            a.dataset.label()
        );
        println!(
            "{:>6} {:>6} {:>10} {:>8}",
            "depth", "width", "ReLUs", "use %"
        );
        for p in top {
            println!(
                "{:>6} {:>6} {:>10} {:>7.1}%",
                p.depth,
                p.width,
                p.relus,
                100.0 * p.relus as f64 / budget as f64
            );
        }
        return Ok(());
    }
    let arch = load_arch(&a.arch)?;
    let dense = arch.densified();
    let relus = count::relu_count(arch.depth(), a.width, input)?;
    let m = count::macs(&dense, a.width, input, 10)?;
    if a.json {
        return print_json(&serde_json::json!({
            "arch": arch.to_arc(),
            "depth": arch.depth(),
            "width": a.width,
            "input": [input.channels, input.height, input.width],
            "relus": relus,
            "macs": m.total(),
            "macs_by_part": m,
        }));
    }
    println!("arch   {}", arch.to_arc());
    println!(
        "depth  {}   width {}   input {}×{}×{}",
        arch.depth(),
        a.width,
        input.channels,
        input.height,
        input.width
    );
    println!("ReLUs  {relus}");
    println!(
        "MACs   {} (stem {}, body {}, proj {}, reductions {}, head {})",
        m.total(),
        m.stem,
        m.body,
        m.proj,
        m.reduce,
        m.head
    );
    Ok(())
}

/// `n` test images evenly spread over the test set (class-mixed), normalised with `norm`.
fn test_subset(
    data: &crate::data::Dataset,
    norm: &crate::data::Normalization,
    n: usize,
) -> Vec<(Vec<f32>, u8)> {
    use crate::data::make_batch;
    let n = n.min(data.test.len());
    let step = data.test.len() / n.max(1);
    (0..n)
        .map(|j| {
            let i = j * step;
            let x = make_batch::<rand_chacha::ChaCha8Rng>(&data.test, data.shape, &[i], norm, None);
            (x, data.test.labels[i])
        })
        .collect()
}

/// `check-fixed`: the fixed-point engine's accuracy on the test set, image by image against the
/// float model; a whole-test-set figure is stored in the model's metadata.
pub fn run_check_fixed(a: &CheckFixedArgs) -> Result<()> {
    use crate::data::{Dataset, Normalization};
    use cryptonas_model::Model;
    // Missing model files fail before the (slow) dataset load.
    for json in &a.models {
        for p in [json.clone(), json.with_extension("safetensors")] {
            if !p.is_file() {
                bail!("{} not found", p.display());
            }
        }
    }
    let data = Dataset::load(a.data.dataset, &a.data.path())?;
    let mut results = Vec::new();
    for json in &a.models {
        let weights = json.with_extension("safetensors");
        let mut model = Model::load(json, &weights)
            .with_context(|| format!("loading {} + {}", json.display(), weights.display()))?;
        let input = &model.spec.input;
        if [input.channels, input.height, input.width]
            != [data.shape.channels, data.shape.height, data.shape.width]
        {
            bail!(
                "{} takes {}×{}×{} inputs, {} has {}×{}×{}",
                json.display(),
                input.channels,
                input.height,
                input.width,
                a.data.dataset.label(),
                data.shape.channels,
                data.shape.height,
                data.shape.width
            );
        }
        let norm = Normalization {
            mean: input.mean.clone(),
            std: input.std.clone(),
        };
        let n = a.images.unwrap_or(data.test.len()).min(data.test.len());
        let test = test_subset(&data, &norm, n);
        if a.narrow {
            use crate::data::make_batch;
            let m = a.calibration_images.clamp(1, data.train.len());
            let step = data.train.len() / m;
            let calib: Vec<Vec<f32>> = (0..m)
                .map(|j| {
                    make_batch::<rand_chacha::ChaCha8Rng>(
                        &data.train,
                        data.shape,
                        &[j * step],
                        &norm,
                        None,
                    )
                })
                .collect();
            let s = a
                .search_images
                .unwrap_or(data.test.len())
                .min(data.test.len());
            let started = std::time::Instant::now();
            let name = model.spec.name.clone();
            let cfg = if let Some(w) = a.weight_bits {
                export::narrow_fixed_point_at(&mut model, &calib, 32, w)?
            } else {
                let search = test_subset(&data, &norm, s);
                export::narrow_fixed_point(
                    &mut model,
                    &calib,
                    &search,
                    32,
                    a.tolerance,
                    &|tried, gap| {
                        eprintln!(
                            "{name}: configuration {tried}: fixed − float {gap:+.2} points on {s} \
                             test images ({:.0} s)",
                            started.elapsed().as_secs_f64()
                        )
                    },
                )?
            };
            eprintln!(
                "{name}: narrowest rings per ReLU layer {:?}, weight bits {:?}",
                cfg.stages.iter().filter_map(|s| s.k).collect::<Vec<_>>(),
                cfg.stages
                    .iter()
                    .map(|s| s.f_w.iter().copied().min().unwrap_or(0))
                    .collect::<Vec<_>>()
            );
        }
        let started = std::time::Instant::now();
        let step = (n / 20).max(1);
        let name = model.spec.name.clone();
        let progress = |done: usize| {
            if done.is_multiple_of(step) {
                eprint!(
                    "\r{name}: {done}/{n} images, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        };
        let whole = n == data.test.len();
        let chk = export::recheck_fixed_point(&mut model, &test, whole, &progress)?;
        eprintln!();
        let gap = (chk.fixed_accuracy - chk.float_accuracy).abs() * 100.0;
        if a.narrow && whole && gap > a.tolerance {
            bail!(
                "{}: the narrowed rings are {gap:.2} points off float on the whole test set \
                 (tolerance {}); not stored: search on more images",
                json.display(),
                a.tolerance
            );
        }
        // Only a whole-test-set figure replaces what the metadata records, and only the metadata
        // changes: the graph is written back as it was read (loading prunes dead nodes, whose
        // tensors the safetensors file still holds).
        if whole {
            let mut on_disk = cryptonas_model::ModelSpec::from_json(
                &std::fs::read(json).with_context(|| format!("reading {}", json.display()))?,
            )
            .with_context(|| format!("parsing {}", json.display()))?;
            on_disk.metadata = model.spec.metadata.clone();
            std::fs::write(json, on_disk.to_json())
                .with_context(|| format!("writing {}", json.display()))?;
        }
        let seconds = started.elapsed().as_secs_f64();
        if !a.json {
            println!(
                "{name}: k = {}, ReLU layers k_l = {:?}, {} test images in {seconds:.0} s: fixed point {:.2} %, float {:.2} %, {} disagreements{}",
                chk.k,
                chk.relu_k,
                chk.images,
                100.0 * chk.fixed_accuracy,
                100.0 * chk.float_accuracy,
                chk.disagreements,
                if whole {
                    " (whole test set: stored as test_accuracy)"
                } else {
                    " (a subset: not stored)"
                }
            );
        }
        results.push(serde_json::json!({
            "model": name,
            "file": json,
            "check": chk,
            "seconds": seconds,
            "stored": whole,
        }));
    }
    if a.json {
        print_json(&results)?;
    }
    Ok(())
}

/// `pareto`: writes `<out>.svg` and `<out>.md` for the exported models of a directory.
pub fn run_pareto(a: &ParetoArgs) -> Result<()> {
    let pts = export::collect_points(&a.models)?;
    if pts.is_empty() {
        bail!(
            "no exported model with accuracy and ReLU metadata in {}",
            a.models.display()
        );
    }
    let svg = pareto::svg(&pts, &a.dataset_label)?;
    let md = pareto::markdown(&pts, &a.dataset_label);
    let svg_path = a.out.with_extension("svg");
    let md_path = a.out.with_extension("md");
    std::fs::write(&svg_path, svg).with_context(|| format!("writing {}", svg_path.display()))?;
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    if a.json {
        return print_json(&serde_json::json!({
            "points": pts,
            "svg": svg_path,
            "markdown": md_path,
        }));
    }
    print!("{md}");
    println!("wrote {} and {}", svg_path.display(), md_path.display());
    Ok(())
}

/// `train`: checks the architecture and the dataset path, then reports [`NeedsTch`].
#[cfg(not(feature = "tch"))]
pub fn run_train(a: &TrainArgs) -> Result<()> {
    load_arch(&a.arch)?;
    let e = anyhow::Error::new(NeedsTch { command: "train" });
    // Both problems at once: the dataset would be the next one.
    if !a.data.path().exists() {
        return Err(e.context(format!(
            "dataset {} not found (pass --data)",
            a.data.path().display()
        )));
    }
    Err(e)
}

/// `score`: reports [`NeedsTch`].
#[cfg(not(feature = "tch"))]
pub fn run_score(_a: &ScoreArgs) -> Result<()> {
    Err(NeedsTch { command: "score" }.into())
}

/// `score`: supernet scores of given architectures.
#[cfg(feature = "tch")]
pub fn run_score(a: &ScoreArgs) -> Result<()> {
    with_tch::run_score(a)
}

/// The lines of a JSON-lines file, parsed.
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

fn write_jsonl<T: serde::Serialize>(path: &std::path::Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        text += &serde_json::to_string(r)?;
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `study pick`.
pub fn run_pick(a: &PickArgs) -> Result<()> {
    use crate::study::{pick_random, pick_spread, Pick, Scored};
    let log: Vec<Scored> = read_jsonl(&a.log)?;
    let first = log
        .first()
        .with_context(|| format!("{} has no candidates", a.log.display()))?;
    let depth = Arch::from_arc(&first.arc)?.depth();
    let ops: Vec<crate::Op> = if a.dense_only {
        vec![crate::Op::Conv3, crate::Op::Conv5]
    } else {
        crate::Op::ALL.to_vec()
    };
    let mut picks = pick_spread(&log, a.spread);
    if !a.no_cnet1 {
        let cnet1 = Arch::builtin("cnet1")?;
        if cnet1.depth() != depth {
            bail!(
                "the search ran at depth {depth}, CNet1 has depth {}: search with --depth {}",
                cnet1.depth(),
                cnet1.depth()
            );
        }
        let cnet1 = if a.dense_only {
            cnet1.densified()
        } else {
            cnet1
        };
        picks.push(Pick {
            label: "cnet1".into(),
            arc: cnet1.to_arc(),
        });
    }
    let taken: Vec<String> = picks
        .iter()
        .map(|p| p.arc.clone())
        .chain(log.iter().map(|c| c.arc.clone()))
        .collect();
    picks.extend(pick_random(a.seed, depth, &ops, a.random, &taken)?);
    // A spread pick can coincide with CNet1: it stays once, under its spread label.
    let mut seen = std::collections::HashSet::new();
    picks.retain(|p| seen.insert(p.arc.clone()));
    write_jsonl(&a.out, &picks)?;
    for p in &picks {
        println!("{:10} {}", p.label, p.arc);
    }
    Ok(())
}

/// What the τ study reads of a training run's `state.json` (no libtorch needed).
#[derive(serde::Deserialize)]
struct RunState {
    history: Vec<RunEpoch>,
    #[serde(default)]
    test_acc: Option<f64>,
}

#[derive(serde::Deserialize)]
struct RunEpoch {
    val_acc: f64,
    #[serde(default = "one")]
    fraction: f64,
}

fn one() -> f64 {
    1.0
}

/// `study tau`.
pub fn run_tau(a: &TauArgs) -> Result<()> {
    use crate::study::{tau_markdown, tau_svg, tau_with_ci, TauRow};
    #[derive(serde::Deserialize)]
    struct ScoreLine {
        label: String,
        arc: String,
        val_acc: f64,
    }
    let scores: Vec<ScoreLine> = read_jsonl(&a.scores)?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for s in scores {
        let state = a.runs.join(&s.label).join("state.json");
        // Only finished runs: the test accuracy is measured after the last epoch.
        let run: Option<RunState> = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .filter(|r: &RunState| r.test_acc.is_some() && !r.history.is_empty());
        match run {
            Some(r) => rows.push(TauRow {
                label: s.label,
                arc: s.arc,
                score: s.val_acc,
                val_acc: r.history.iter().map(|h| h.val_acc).fold(0.0, f64::max),
                test_acc: r.test_acc,
                epochs: Some(r.history.iter().map(|h| h.fraction).sum()),
            }),
            None => missing.push(s.label),
        }
    }
    if !missing.is_empty() {
        eprintln!("not trained (yet), left out: {}", missing.join(", "));
    }
    let x: Vec<f64> = rows.iter().map(|r| r.score).collect();
    let y: Vec<f64> = rows.iter().map(|r| r.val_acc).collect();
    let est = tau_with_ci(&x, &y, a.resamples, 0.95, a.seed)?;
    let mut md = tau_markdown(&rows, &est, &a.title);
    if !missing.is_empty() {
        md += &format!(
            "\nNot trained yet (left out of τ): {}.\n",
            missing.join(", ")
        );
    }
    let svg = tau_svg(&rows, &est, &a.title)?;
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "title": &a.title, "tau": est, "rows": rows, "missing": missing,
    }))?;
    for (ext, text) in [("md", &md), ("svg", &svg), ("json", &json)] {
        let p = a.out.with_extension(ext);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    print!("{md}");
    Ok(())
}

/// `study paired`.
pub fn run_paired(a: &PairedArgs) -> Result<()> {
    use crate::study::{paired_markdown, paired_svg, PairedRun};
    let mut runs = Vec::new();
    for path in &a.models {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parts: Vec<&str> = stem.split('-').collect();
        let (arm, seed) = match parts[..] {
            [arm, _, seed] if seed.starts_with('s') => (arm, seed[1..].parse::<u64>().ok()),
            _ => ("", None),
        };
        let Some(seed) = seed else {
            bail!(
                "{}: expected a name <arm>-<relus>-s<seed>.json",
                path.display()
            );
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        // The metadata's `extra` map is flattened into it.
        let m = &v["metadata"];
        let extra = m;
        let check = &extra["fixed_point_check"];
        runs.push(PairedRun {
            relus: m["relu_count"]
                .as_u64()
                .with_context(|| format!("{}: no relu_count", path.display()))?,
            arm: arm.to_string(),
            seed,
            fixed_acc: check["fixed_accuracy"].as_f64(),
            fixed_images: check["images"].as_u64().map(|n| n as usize),
            float_acc: m["float_accuracy"].as_f64(),
            epochs: m["epochs"].as_f64(),
            seconds: extra["train_seconds"].as_f64(),
            arc: extra["arc"].as_str().unwrap_or("").to_string(),
        });
    }
    let md = paired_markdown(&runs);
    std::fs::write(&a.out, &md).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(svg_path) = &a.svg {
        std::fs::write(svg_path, paired_svg(&runs)?)
            .with_context(|| format!("writing {}", svg_path.display()))?;
    }
    print!("{md}");
    Ok(())
}

/// `study bundle`.
pub fn run_bundle(a: &BundleArgs) -> Result<()> {
    let read_json = |p: &Path| -> Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let mut model = read_json(&a.model)?;
    let result = read_json(&a.search_result)?;
    let arc = model["metadata"]["arc"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let final_arc = result["final_arc"].as_str().unwrap_or_default();
    if arc.is_empty() || arc != final_arc {
        bail!(
            "{} has arc {arc:?}, the search in {} chose {final_arc:?}",
            a.model.display(),
            a.search_result.display()
        );
    }
    let options = &result["options"];
    let supernet = &result["supernet"];
    let scorer = format!(
        "supernet (weight sharing) validation accuracy: width {}, {} epochs over {} s ({} clock), \
         {} validation images per class; regularized evolution, population {}, {} candidates, seed {}",
        options["proxy_width"],
        supernet["epochs"],
        supernet["seconds"],
        options["clock"].as_str().unwrap_or("wall"),
        options["val_per_class"]
            .as_u64()
            .map_or("all".to_string(), |n| n.to_string()),
        options["population"],
        result["candidates"],
        options["seed"],
    );
    let search = serde_json::json!({
        "budget": result["budget"],
        "result": a.search_result.file_name().map(|f| f.to_string_lossy()),
        "log": a.search_log,
        "scorer": scorer,
        "best_score": result["best_val_acc"],
        "search_seconds": result["seconds"],
        "trained_as": a.model.file_stem().map(|f| f.to_string_lossy()),
    });
    let Some(metadata) = model["metadata"].as_object_mut() else {
        bail!("{}: no metadata", a.model.display());
    };
    metadata.insert("search".into(), search);
    model["name"] = serde_json::Value::String(a.name.clone());
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json = a.out.join(format!("{}.json", a.name));
    let mut text = serde_json::to_string_pretty(&model)?;
    text.push('\n');
    std::fs::write(&json, text).with_context(|| format!("writing {}", json.display()))?;
    let weights = a.model.with_extension("safetensors");
    std::fs::copy(&weights, json.with_extension("safetensors"))
        .with_context(|| format!("copying {}", weights.display()))?;
    // The copy must still load as a model (name, graph and tensors agree).
    cryptonas_model::Model::load(&json, json.with_extension("safetensors"))
        .with_context(|| format!("loading {}", json.display()))?;
    println!("{}", json.display());
    Ok(())
}

/// `search`: checks the budget, then reports [`NeedsTch`].
#[cfg(not(feature = "tch"))]
pub fn run_search(a: &SearchArgs) -> Result<()> {
    count::solve_budget(a.budget, a.data.dataset.shape(), 30)?;
    Err(NeedsTch { command: "search" }.into())
}

/// `export` of a training run: checks that the run directory exists, then reports [`NeedsTch`].
#[cfg(not(feature = "tch"))]
pub fn run_export(run: &Path, _options: &ExportOptions) -> Result<()> {
    if !run.is_dir() {
        bail!("training run directory {} not found", run.display());
    }
    Err(NeedsTch {
        command: "export --run",
    }
    .into())
}

#[cfg(feature = "tch")]
mod with_tch {
    use super::*;
    use crate::data::Dataset;
    use crate::search::{search_resumable, SearchOptions};
    use crate::train::{
        export_tensors, load_run, train, NetConfig, Progress, Recipe, TrainOptions, Trained,
    };
    use crate::Op;
    use tch::Device;

    fn load_data(d: &DataArgs) -> Result<Dataset> {
        let path = d.path();
        let t = std::time::Instant::now();
        let ds = Dataset::load(d.dataset, &path)?;
        eprintln!(
            "loaded {} from {}: {} train, {} test images in {:.1}s",
            d.dataset.label(),
            path.display(),
            ds.train.len(),
            ds.test.len(),
            t.elapsed().as_secs_f64()
        );
        Ok(ds)
    }

    fn recipe_text(r: &Recipe) -> String {
        format!(
            "SGD Nesterov {}, SGDR cosine lr {}→{} (T0={}, Tmul={}, last cycle fitted), wd {}, dropout {}, batch {}, pad-crop + flip{}, per-channel normalisation; {} epochs",
            r.momentum, r.lr_max, r.lr_min, r.t0, r.t_mul, r.weight_decay, r.dropout, r.batch_size,
            if r.cutout > 0 { format!(" + cutout {}", r.cutout) } else { String::new() },
            r.epochs
        )
    }

    pub(super) fn do_export(
        t: &Trained,
        name: &str,
        out: &std::path::Path,
        data: Option<&Dataset>,
        fixed_images: usize,
    ) -> Result<serde_json::Value> {
        let st = &t.state;
        let net = &st.options.net;
        let info = export::ExportInfo {
            name: name.to_string(),
            arch: net.arch.clone(),
            width: net.width,
            classes: net.classes,
            dataset: st.dataset,
            norm: st.norm.clone(),
            float_test_accuracy: st.test_acc,
            val_accuracy: st.history.iter().map(|h| h.val_acc).reduce(f64::max),
            // Whole epochs trained, warm starts included (a time budget may end the last one
            // early; the recipe text has the fractions).
            epochs: st.total_epochs().round() as usize,
            recipe: format!(
                "{}{}; trained {:.2} epochs{}",
                st.prior.as_ref().map_or(String::new(), |p| format!(
                    "fine-tuned from a run of {:.2} epochs ({}) with ",
                    p.epochs,
                    p.test_acc
                        .map_or("test accuracy not measured".into(), |a| format!(
                            "{:.2}% test accuracy",
                            100.0 * a
                        ))
                )),
                recipe_text(&st.options.recipe),
                st.history.iter().map(|h| h.fraction).sum::<f64>(),
                st.options
                    .recipe
                    .time_budget_s
                    .map_or(String::new(), |b| format!(
                        " (schedule over a {b:.0} {} time budget)",
                        st.options.recipe.clock.unit()
                    ))
            ),
            train_seconds: Some(st.total_seconds()),
            dropout: st.options.recipe.dropout,
        };
        let spec = export::model_spec(&info)?;
        let tensors = export_tensors(&t.vs)?;
        let (json, stp, mut model) = export::write_model(out, &spec, &tensors)?;
        let mut check = None;
        if let (Some(data), true) = (data, fixed_images > 0) {
            use crate::data::make_batch;
            let norm = &st.norm;
            let calib: Vec<Vec<f32>> = (0..64)
                .map(|i| {
                    let i = i * 97 % data.train.len();
                    make_batch::<rand_chacha::ChaCha8Rng>(&data.train, data.shape, &[i], norm, None)
                })
                .collect();
            let n = fixed_images.min(data.test.len());
            let test = test_subset(data, norm, n);
            let t0 = std::time::Instant::now();
            let chk =
                export::fixed_point_check(&mut model, &calib, &test, 32, n == data.test.len())?;
            export::rewrite_json(out, &model)?;
            eprintln!(
                "fixed-point check (k = 32, {} test images, {:.0}s): float {:.2}%, fixed {:.2}%, {} disagreements, within 0.3 points: {}",
                chk.images,
                t0.elapsed().as_secs_f64(),
                100.0 * chk.float_accuracy,
                100.0 * chk.fixed_accuracy,
                chk.disagreements,
                chk.within_0_3_points
            );
            check = Some(chk);
        }
        eprintln!(
            "exported {} + {} ({} ReLUs, {} MACs, float test acc {})",
            json.display(),
            stp.display(),
            model.spec.metadata.relu_count.unwrap_or(0),
            model.spec.metadata.macs.unwrap_or(0),
            st.test_acc
                .map_or("n/a".into(), |a| format!("{:.2}%", 100.0 * a))
        );
        Ok(serde_json::json!({
            "model": json,
            "weights": stp,
            "relus": model.spec.metadata.relu_count,
            "macs": model.spec.metadata.macs,
            "float_test_accuracy": st.test_acc,
            "fixed_point_check": check,
        }))
    }

    pub(super) fn run_train(a: &TrainArgs) -> Result<()> {
        if let Some(n) = a.threads {
            tch::set_num_threads(n);
        }
        let arch = load_arch(&a.arch)?.densified();
        let data = load_data(&a.data)?;
        let opts = TrainOptions {
            net: NetConfig {
                arch: arch.clone(),
                width: a.width,
                input: data.shape,
                classes: data.classes,
            },
            recipe: Recipe {
                epochs: a.epochs,
                batch_size: a.batch_size,
                time_budget_s: a.time_budget,
                clock: a.clock,
                lr_max: a.lr_max,
                t0: a.t0,
                dropout: a.dropout,
                cutout: a.cutout,
                ..Recipe::default()
            },
            val_per_class: a.val_per_class,
            train_per_class: a.train_per_class,
            seed: a.seed,
            test: true,
            warm_start: a.warm_start.clone(),
        };
        let relus = count::relu_count(arch.depth(), a.width, data.shape)?;
        eprintln!(
            "training L={} C={} ({relus} ReLUs) on {:?}",
            arch.depth(),
            a.width,
            Device::cuda_if_available()
        );
        let t = train(
            &data,
            opts,
            Some(&a.out),
            a.resume,
            Progress::Bars,
            Device::cuda_if_available(),
        )?;
        let acc = t.state.test_acc.unwrap_or(0.0);
        if !a.json {
            println!(
                "test accuracy {:.2}% on {} after {} epochs ({relus} ReLUs)",
                100.0 * acc,
                data.kind.label(),
                t.state.history.len()
            );
        }
        let mut exported = None;
        if let Some(dir) = &a.export {
            let name = a
                .name
                .clone()
                .unwrap_or_else(|| format!("l{}-c{}", arch.depth(), a.width));
            exported = Some(do_export(&t, &name, dir, Some(&data), a.fixed_images)?);
        }
        if a.json {
            print_json(&serde_json::json!({
                "arch": arch.to_arc(),
                "width": a.width,
                "relus": relus,
                "dataset": data.kind.label(),
                "epochs": t.state.history.len(),
                "test_accuracy": t.state.test_acc,
                "run": a.out,
                "exported": exported,
            }))?;
        }
        Ok(())
    }

    pub(super) fn run_search(a: &SearchArgs) -> Result<()> {
        if let Some(n) = a.threads {
            tch::set_num_threads(n);
        }
        let input = a.data.dataset.shape();
        let pairs = count::solve_budget(a.budget, input, 30)?;
        let pair = match a.depth {
            Some(d) => *pairs
                .iter()
                .find(|p| p.depth == d)
                .with_context(|| format!("no width fits {} ReLUs at depth {d}", a.budget))?,
            None => pairs[0],
        };
        eprintln!(
            "budget {} → depth {}, width {} ({} ReLUs)",
            a.budget, pair.depth, pair.width, pair.relus
        );
        let data = load_data(&a.data)?;
        let ops: Vec<Op> = if a.dense_only {
            vec![Op::Conv3, Op::Conv5]
        } else {
            Op::ALL.to_vec()
        };
        let opts = SearchOptions {
            method: a.method,
            supernet_epochs: a.supernet_epochs,
            supernet_fraction: a.supernet_fraction,
            depth: pair.depth,
            proxy_width: a.proxy_width,
            proxy_epochs: a.proxy_epochs,
            proxy_per_class: a.proxy_per_class,
            val_per_class: a.val_per_class,
            ops,
            population: a.population,
            tournament: a.tournament,
            time_limit_s: a.time_limit,
            clock: a.clock,
            max_candidates: a.max_candidates,
            seed: a.seed,
            supernet_dir: a.supernet_dir.clone(),
        };
        let res = search_resumable(
            &data,
            &opts,
            pair,
            &a.log,
            Device::cuda_if_available(),
            a.resume,
        )?;
        let result = serde_json::json!({
            "budget": a.budget,
            "pair": res.pair,
            "best_arc_searched": res.best.to_arc(),
            "best_val_acc": res.best_val_acc,
            "supernet": res.supernet,
            "final_arc": res.final_arch.to_arc(),
            "final_arch": res.final_arch,
            "candidates": res.candidates.len(),
            "seconds": res.seconds,
            "options": opts,
        });
        let text = serde_json::to_string_pretty(&result)?;
        std::fs::write(&a.result, &text)
            .with_context(|| format!("writing {}", a.result.display()))?;
        if a.json {
            println!("{text}");
            return Ok(());
        }
        println!(
            "{} candidates in {:.0}s; best val {:.2}%\nfinal arch (L={}, C={}, {} ReLUs): {}\ntrain it with: cryptonas train --arch \"{}\" --width {} --epochs 310 --out runs/searched --export models",
            res.candidates.len(),
            res.seconds,
            100.0 * res.best_val_acc,
            pair.depth,
            pair.width,
            pair.relus,
            res.final_arch.to_arc(),
            res.final_arch.to_arc(),
            pair.width
        );
        Ok(())
    }

    pub(super) fn run_score(a: &ScoreArgs) -> Result<()> {
        use crate::supernet::TrainedSupernet;
        if let Some(n) = a.threads {
            tch::set_num_threads(n);
        }
        let lines: Vec<serde_json::Map<String, serde_json::Value>> = read_jsonl(&a.arcs)?;
        let data = load_data(&a.data)?;
        let sup = TrainedSupernet::load(&a.supernet, &data, Device::cuda_if_available())?;
        let mut out = Vec::with_capacity(lines.len());
        for mut l in lines {
            let arc = l
                .get("arc")
                .and_then(|v| v.as_str())
                .with_context(|| format!("{}: a line without an arc", a.arcs.display()))?;
            let score = sup.score(&data, &Arch::parse_any(arc)?)?;
            eprintln!("val {:.2}%  arc {arc}", 100.0 * score);
            l.insert("val_acc".into(), score.into());
            out.push(l);
        }
        write_jsonl(&a.out, &out)
    }

    pub(super) fn run_export(run: &Path, a: &ExportOptions) -> Result<()> {
        let mut t = load_run(run)?;
        let name = a.name.clone().unwrap_or_else(|| {
            run.file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned())
        });
        let data = if a.measure || a.fixed_images > 0 {
            Some(load_data(&a.data)?)
        } else {
            None
        };
        if let (None, Some(d)) = (t.state.test_acc, &data) {
            let all: Vec<usize> = (0..d.test.len()).collect();
            t.state.test_acc = Some(crate::train::evaluate(
                &t.net,
                &d.test,
                d.shape,
                &all,
                &t.state.norm,
                Device::Cpu,
            ));
        }
        let exported = do_export(&t, &name, &a.out, data.as_ref(), a.fixed_images)?;
        if a.json {
            print_json(&exported)?;
        }
        Ok(())
    }
}

/// `train`: trains with the CryptoNAS recipe, optionally exporting the result.
#[cfg(feature = "tch")]
pub fn run_train(a: &TrainArgs) -> Result<()> {
    with_tch::run_train(a)
}

/// `search`: the architecture search under a ReLU budget.
#[cfg(feature = "tch")]
pub fn run_search(a: &SearchArgs) -> Result<()> {
    with_tch::run_search(a)
}

/// `export` of a training run directory to the model format.
#[cfg(feature = "tch")]
pub fn run_export(run: &Path, options: &ExportOptions) -> Result<()> {
    with_tch::run_export(run, options)
}
