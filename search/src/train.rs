//! Training with libtorch (`tch`): the CryptoNAS network, the recipe, checkpoints and evaluation.
//!
//! Parameter names follow the model crate's zoo exactly (`stem.conv.weight`, `layers.{i}.bn.*`,
//! `reduce{r}.n{j}.path1.weight`, `head.fc.*`, …) so a checkpoint exports without renaming.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::clock::{process_cpu_seconds, Clock, Stopwatch};
use crate::data::{
    balanced_split, make_batch, Augment, Dataset, DatasetKind, Images, Normalization, Split,
};
use crate::SearchError;
use cryptonas_arch::{layer_stages, nodes_used_from, stages, Arch, ArchError, InputShape, Op};

/// Shape of a network: architecture, width, input and classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Layers (search ops allowed; final nets are densified).
    pub arch: Arch,
    /// Base channels `C`.
    pub width: usize,
    /// Input image shape.
    pub input: InputShape,
    /// Output classes.
    pub classes: usize,
}

/// The body of a layer: what its op computes between the ReLU and the BN.
pub(crate) enum Body {
    Conv(nn::Conv2D),
    Sep(nn::Conv2D, nn::Conv2D),
    AvgPool,
    MaxPool,
}

impl Body {
    /// Variables of `op` on `c` channels under `p` (model crate names: `conv`, `dw`, `pw`).
    pub(crate) fn new(p: &nn::Path, op: Op, c: usize) -> Body {
        match op {
            Op::Conv3 | Op::Conv5 => Body::Conv(conv(p / "conv", c, c, op.final_kernel(), 1, 1)),
            Op::Sep3 | Op::Sep5 => Body::Sep(
                conv(p / "dw", c, c, op.final_kernel(), 1, c),
                conv(p / "pw", c, c, 1, 1, 1),
            ),
            Op::AvgPool3 => Body::AvgPool,
            Op::MaxPool3 => Body::MaxPool,
        }
    }

    pub(crate) fn forward(&self, h: &Tensor) -> Tensor {
        match self {
            Body::Conv(c) => h.apply(c),
            Body::Sep(dw, pw) => h.apply(dw).apply(pw),
            Body::AvgPool => h.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>),
            Body::MaxPool => h.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false),
        }
    }
}

struct LayerNet {
    body: Body,
    bn: nn::BatchNorm,
    proj: Option<(nn::Conv2D, nn::BatchNorm)>,
    skips: Vec<usize>,
}

/// A factorized reduction: two offset stride-2 1×1 paths, concatenated, BN.
pub(crate) struct Reduce {
    path1: nn::Conv2D,
    path2: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl Reduce {
    /// Variables under `p` for a node of `c` channels.
    pub(crate) fn new(p: &nn::Path, c: usize) -> Reduce {
        Reduce {
            path1: conv(p / "path1", c, 2 * c, 1, 2, 1),
            path2: conv(p / "path2", c, 2 * c, 1, 2, 1),
            bn: bn(p / "bn", 4 * c),
        }
    }

    /// Halves the resolution of `x` and quadruples its channels (ReLU balancing).
    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let p1 = x.apply(&self.path1);
        let shifted = x
            .slice(2, 1, None, 1)
            .slice(3, 1, None, 1)
            .constant_pad_nd([0, 1, 0, 1]);
        let p2 = shifted.apply(&self.path2);
        self.bn.forward_t(&Tensor::cat(&[p1, p2], 1), train)
    }
}

/// A CryptoNAS network in a `VarStore`.
pub struct Net {
    /// Its configuration.
    pub config: NetConfig,
    stem: nn::Conv2D,
    stem_bn: nn::BatchNorm,
    layers: Vec<LayerNet>,
    /// `reductions[r][j]`: the reduction of node `j` at reduction `r`.
    reductions: [Vec<Reduce>; 2],
    /// `used[r][j]`: node `j` is read after reduction `r`.
    used: [Vec<bool>; 2],
    fc: nn::Linear,
    dropout: f64,
}

pub(crate) fn bn(p: nn::Path, c: usize) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c as i64,
        nn::BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            ..Default::default()
        },
    )
}

pub(crate) fn conv(
    p: nn::Path,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin as i64,
        cout as i64,
        k as i64,
        nn::ConvConfig {
            stride: stride as i64,
            padding: (k / 2) as i64,
            groups: groups as i64,
            bias: false,
            ..Default::default()
        },
    )
}

impl Net {
    /// Creates the variables under `root` with the model crate's names.
    pub fn new(root: &nn::Path, config: NetConfig, dropout: f64) -> Result<Net, SearchError> {
        config.arch.validate()?;
        if config.width == 0 {
            return Err(ArchError::ZeroWidth.into());
        }
        let st = stages(config.width, config.input);
        let stage_of = layer_stages(config.arch.depth());
        let c0 = config.width;
        let stem = conv(root / "stem" / "conv", config.input.channels, c0, 3, 1, 1);
        let stem_bn = bn(root / "stem" / "bn", c0);
        let mut layers = Vec::new();
        for (i, l) in config.arch.layers.iter().enumerate() {
            let c = st[stage_of[i]].channels;
            let p = root / "layers" / i;
            let body = Body::new(&p, l.op, c);
            let proj = (!l.skips.is_empty()).then(|| {
                (
                    conv(&p / "proj", c * (l.skips.len() + 1), c, 1, 1, 1),
                    bn(&p / "proj_bn", c),
                )
            });
            layers.push(LayerNet {
                body,
                bn: bn(&p / "bn", c),
                proj,
                skips: l.skips.clone(),
            });
        }
        let after = config
            .arch
            .reduction_after()
            .ok_or(SearchError::TooShallow {
                depth: config.arch.depth(),
            })?;
        let mut reductions: [Vec<Reduce>; 2] = [Vec::new(), Vec::new()];
        let mut used: [Vec<bool>; 2] = [Vec::new(), Vec::new()];
        for r in 0..2 {
            let c = st[r].channels;
            for j in 0..=after[r] + 1 {
                let p = root / format!("reduce{r}") / format!("n{j}");
                reductions[r].push(Reduce::new(&p, c));
            }
            used[r] = nodes_used_from(&config.arch, after[r] + 1);
        }
        let fc = nn::linear(
            root / "head" / "fc",
            st[2].channels as i64,
            config.classes as i64,
            Default::default(),
        );
        Ok(Net {
            config,
            stem,
            stem_bn,
            layers,
            reductions,
            used,
            fc,
            dropout,
        })
    }

    /// Forward pass to logits. `train` selects batch statistics and dropout.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut nodes: Vec<Tensor> = vec![self.stem_bn.forward_t(&x.apply(&self.stem), train)];
        let after = self.config.arch.reduction_after();
        for (i, l) in self.layers.iter().enumerate() {
            let h = l.bn.forward_t(&l.body.forward(&nodes[i].relu()), train);
            let out = match &l.proj {
                Some((proj, proj_bn)) => {
                    let mut parts: Vec<&Tensor> = l.skips.iter().map(|&j| &nodes[j]).collect();
                    parts.push(&h);
                    proj_bn.forward_t(&Tensor::cat(&parts, 1).apply(proj), train)
                }
                None => h,
            };
            nodes.push(out);
            if let Some(r) = after.iter().flatten().position(|&a| a == i) {
                for (j, red) in self.reductions[r].iter().enumerate() {
                    if self.used[r][j] {
                        nodes[j] = red.forward(&nodes[j], train);
                    }
                }
            }
        }
        let last = &nodes[self.layers.len()];
        last.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
            .dropout(self.dropout, train)
            .apply(&self.fc)
    }
}

/// The training recipe (CryptoNAS defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Epochs to train.
    pub epochs: usize,
    /// Mini-batch size (100).
    pub batch_size: usize,
    /// Peak learning rate of each SGDR cycle (0.05).
    pub lr_max: f64,
    /// Floor learning rate (0.001).
    pub lr_min: f64,
    /// First cycle length in epochs (10).
    pub t0: f64,
    /// Cycle growth factor (2).
    pub t_mul: f64,
    /// L2 weight decay (2e-4).
    pub weight_decay: f64,
    /// Nesterov momentum (0.9).
    pub momentum: f64,
    /// Dropout before the classifier (0.5).
    pub dropout: f64,
    /// Side of the Cutout square in pixels (0 = off, the paper's recipe; 16 is the usual CIFAR-10
    /// choice), a regulariser for networks that overfit.
    #[serde(default)]
    pub cutout: usize,
    /// Stretch or shrink the last SGDR cycle so the run ends at `lr_min` instead of mid-cycle.
    pub fit_last_cycle: bool,
    /// Wall-clock budget in seconds: the schedule advances by `max(time fraction, epoch
    /// fraction)` and training stops when the time is spent (mid-epoch if need be), so a run on
    /// a shared machine still ends annealed at `lr_min`.
    #[serde(default)]
    pub time_budget_s: Option<f64>,
    /// The clock `time_budget_s` counts: wall time, or this process's CPU time (fair budgets
    /// for low-priority runs on a shared machine).
    #[serde(default)]
    pub clock: Clock,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: 310,
            batch_size: 100,
            lr_max: 0.05,
            lr_min: 0.001,
            t0: 10.0,
            t_mul: 2.0,
            weight_decay: 2e-4,
            momentum: 0.9,
            dropout: 0.5,
            cutout: 0,
            fit_last_cycle: true,
            time_budget_s: None,
            clock: Clock::Wall,
        }
    }
}

impl Recipe {
    /// SGDR learning rate at fractional epoch `t`.
    pub fn lr_at(&self, t: f64) -> f64 {
        let total = self.epochs as f64;
        let (mut start, mut len) = (0.0, self.t0);
        loop {
            let mut this = len;
            // The cycle after this one would not finish: merge the remainder into this cycle.
            if self.fit_last_cycle && start + len + len * self.t_mul > total {
                this = total - start;
            }
            if t < start + this || this <= 0.0 || start + this >= total {
                let frac = ((t - start) / this.max(1e-9)).clamp(0.0, 1.0);
                return self.lr_min
                    + 0.5
                        * (self.lr_max - self.lr_min)
                        * (1.0 + (std::f64::consts::PI * frac).cos());
            }
            start += this;
            len *= self.t_mul;
        }
    }
}

/// Options of one training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Network to train.
    pub net: NetConfig,
    /// Recipe.
    pub recipe: Recipe,
    /// Validation images per class held out of the training set.
    pub val_per_class: usize,
    /// Cap on training images per class (proxy runs); `None` = all.
    pub train_per_class: Option<usize>,
    /// Seed for split, init and augmentation.
    pub seed: u64,
    /// Evaluate on the test set at the end.
    pub test: bool,
    /// Start from the weights (and normalisation) of another run's directory instead of a fresh
    /// initialisation, then follow this run's own schedule: fine-tuning with a new learning-rate
    /// cycle, e.g. to continue a time-budgeted run that has already annealed.
    #[serde(default)]
    pub warm_start: Option<PathBuf>,
}

/// Training a warm-started run inherited (summed over the whole chain of warm starts), so that
/// reports state the total epochs and time behind a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriorTraining {
    /// Run directory the weights came from.
    pub from: String,
    /// Epochs trained before this run (fractional when a time budget cut one short).
    pub epochs: f64,
    /// Wall seconds trained before this run.
    pub seconds: f64,
    /// Test accuracy of the weights this run started from, if measured.
    pub test_acc: Option<f64>,
}

/// Statistics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (augmented, dropout on).
    pub train_acc: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Wall seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Fraction of the epoch trained (below 1 when a time budget cut it short).
    #[serde(default = "one")]
    pub fraction: f64,
    /// CPU seconds of the epoch (this process, all threads; `None` where unreadable).
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
}

impl EpochStats {
    /// Seconds of this epoch on `clock` (a CPU-time figure missing from an old state counts
    /// the wall time, which is never less for one thread).
    pub fn seconds_on(&self, clock: Clock) -> f64 {
        match clock {
            Clock::Wall => self.seconds,
            Clock::Cpu => self.cpu_seconds.unwrap_or(self.seconds),
        }
    }
}

fn one() -> f64 {
    1.0
}

/// Checkpoint state saved beside the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Options of the run.
    pub options: TrainOptions,
    /// Dataset trained on.
    pub dataset: DatasetKind,
    /// Input normalisation.
    pub norm: Normalization,
    /// Completed epochs.
    pub history: Vec<EpochStats>,
    /// Test accuracy, once measured.
    pub test_acc: Option<f64>,
    /// What the starting weights had been trained for (`None`: fresh initialisation).
    #[serde(default)]
    pub prior: Option<PriorTraining>,
}

impl TrainState {
    /// Epochs behind the current weights, prior runs included.
    pub fn total_epochs(&self) -> f64 {
        self.prior.as_ref().map_or(0.0, |p| p.epochs)
            + self.history.iter().map(|h| h.fraction).sum::<f64>()
    }

    /// Wall seconds behind the current weights, prior runs included.
    pub fn total_seconds(&self) -> f64 {
        self.prior.as_ref().map_or(0.0, |p| p.seconds)
            + self.history.iter().map(|h| h.seconds).sum::<f64>()
    }
}

/// Reads a run directory's state file.
fn read_state(dir: &Path) -> Result<TrainState, SearchError> {
    let s = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&s).map_err(|e| SearchError::io(&s, e))?;
    serde_json::from_str(&text).map_err(|e| SearchError::Model {
        path: s.display().to_string(),
        msg: e.to_string(),
    })
}

/// File names inside a run directory.
pub const WEIGHTS_FILE: &str = "checkpoint.safetensors";
/// State file name inside a run directory.
pub const STATE_FILE: &str = "state.json";

fn tch_err(what: &str, e: tch::TchError) -> SearchError {
    SearchError::Invalid {
        what: format!("{what}: {e}"),
    }
}

/// Accuracy of `net` on the images at `indices`.
pub fn evaluate(
    net: &Net,
    images: &Images,
    shape: InputShape,
    indices: &[usize],
    norm: &Normalization,
    device: Device,
) -> f64 {
    let correct = |x: &Tensor, y: &Tensor| correct_count(&net.forward(x, false), y);
    let hits: i64 = indices
        .chunks(500)
        .map(|chunk| {
            let (x, y) = batch_tensors(images, shape, chunk, norm, None, device);
            correct(&x, &y)
        })
        .sum();
    hits as f64 / indices.len().max(1) as f64
}

/// How many rows of `logits` pick the label in `y`.
pub(crate) fn correct_count(logits: &Tensor, y: &Tensor) -> i64 {
    logits
        .argmax(1, false)
        .eq_tensor(y)
        .sum(Kind::Int64)
        .int64_value(&[])
}

/// The images at `chunk` as an NCHW tensor (normalised; augmented when given a generator and the
/// crop padding) and their labels, both on `device`.
pub(crate) fn batch_tensors(
    images: &Images,
    shape: InputShape,
    chunk: &[usize],
    norm: &Normalization,
    augment: Option<(&mut rand_chacha::ChaCha8Rng, Augment)>,
    device: Device,
) -> (Tensor, Tensor) {
    let x = make_batch(images, shape, chunk, norm, augment);
    let x = Tensor::from_slice(&x)
        .view([
            chunk.len() as i64,
            shape.channels as i64,
            shape.height as i64,
            shape.width as i64,
        ])
        .to(device);
    let y: Vec<i64> = chunk.iter().map(|&i| i64::from(images.labels[i])).collect();
    (x, Tensor::from_slice(&y).to(device))
}

/// The class-balanced split of `data`'s training images and the normalisation fitted on its
/// training part.
pub(crate) fn split_and_normalization(
    data: &Dataset,
    val_per_class: usize,
    train_per_class: Option<usize>,
    seed: u64,
) -> Result<(Split, Normalization), SearchError> {
    let split = balanced_split(
        &data.train.labels,
        data.classes,
        val_per_class,
        train_per_class,
        seed,
    )?;
    let norm = Normalization::fit(&data.train, data.shape, &split.train);
    Ok((split, norm))
}

/// SGD with Nesterov momentum and the recipe's weight decay, starting at `lr_max`.
pub(crate) fn sgd(vs: &nn::VarStore, recipe: &Recipe) -> Result<nn::Optimizer, SearchError> {
    nn::Sgd {
        momentum: recipe.momentum,
        dampening: 0.0,
        wd: recipe.weight_decay,
        nesterov: true,
    }
    .build(vs, recipe.lr_max)
    .map_err(|e| tch_err("optimizer", e))
}

/// An indicatif bar of `len` steps drawn with `template`, or a hidden one.
pub(crate) fn progress_bar(len: usize, template: &str, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// Everything a finished (or resumed) run holds.
pub struct Trained {
    /// The variables.
    pub vs: nn::VarStore,
    /// The network.
    pub net: Net,
    /// The state (history, normalisation, test accuracy).
    pub state: TrainState,
}

/// Progress reporting of [`train`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// indicatif bars.
    Bars,
    /// Nothing (search candidates, tests).
    Quiet,
}

/// Trains a network on `data`. With `dir`, writes a checkpoint and state after every epoch and,
/// if `resume` and a checkpoint exists there, continues from it.
pub fn train(
    data: &Dataset,
    options: TrainOptions,
    dir: Option<&Path>,
    resume: bool,
    progress: Progress,
    device: Device,
) -> Result<Trained, SearchError> {
    if options.net.input != data.shape {
        return Err(SearchError::Invalid {
            what: format!(
                "network input {:?} does not match the dataset {:?}",
                options.net.input, data.shape
            ),
        });
    }
    if options.recipe.batch_size == 0 {
        return Err(SearchError::Invalid {
            what: "batch size must be at least 1".into(),
        });
    }
    tch::manual_seed(options.seed as i64);
    let (split, norm) = split_and_normalization(
        data,
        options.val_per_class,
        options.train_per_class,
        options.seed,
    )?;
    let mut vs = nn::VarStore::new(device);
    let net = Net::new(&vs.root(), options.net.clone(), options.recipe.dropout)?;
    let mut state = TrainState {
        options: options.clone(),
        dataset: data.kind,
        norm,
        history: Vec::new(),
        test_acc: None,
        prior: None,
    };
    let resuming =
        dir.is_some_and(|d| resume && d.join(WEIGHTS_FILE).exists() && d.join(STATE_FILE).exists());
    if let (Some(d), true) = (dir, resuming) {
        let old = read_state(d)?;
        check_same_net(d, &old, &options)?;
        vs.load(d.join(WEIGHTS_FILE))
            .map_err(|e| tch_err("loading checkpoint", e))?;
        state.history = old.history;
        state.norm = old.norm;
        state.prior = old.prior;
    } else if let Some(from) = &options.warm_start {
        let old = read_state(from)?;
        check_same_net(from, &old, &options)?;
        if old.dataset != data.kind {
            return Err(SearchError::Model {
                path: from.display().to_string(),
                msg: format!(
                    "warm start was trained on {:?}, not {:?}",
                    old.dataset, data.kind
                ),
            });
        }
        vs.load(from.join(WEIGHTS_FILE))
            .map_err(|e| tch_err("loading warm-start weights", e))?;
        // The weights expect the inputs normalised as they were trained.
        state.norm = old.norm.clone();
        state.prior = Some(PriorTraining {
            from: from.display().to_string(),
            epochs: old.total_epochs(),
            seconds: old.total_seconds(),
            test_acc: old.test_acc,
        });
    }
    let recipe = &options.recipe;
    let mut opt = sgd(&vs, recipe)?;
    let shape = data.shape;
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed ^ state.history.len() as u64);
    let augment = Augment {
        pad: data.kind.crop_pad(),
        cutout: recipe.cutout,
    };
    let steps = split.train.len().div_ceil(recipe.batch_size);
    let start_epoch = state.history.len();
    let spent_before: f64 = state
        .history
        .iter()
        .map(|h| h.seconds_on(recipe.clock))
        .sum();
    let t_run = Stopwatch::start(recipe.clock)?;
    let mut out_of_time = state.history.last().is_some_and(|h| h.fraction < 1.0);
    let plain = progress == Progress::Bars && !std::io::IsTerminal::is_terminal(&std::io::stderr());
    for epoch in start_epoch..recipe.epochs {
        if out_of_time {
            break;
        }
        let t_epoch = Instant::now();
        let cpu_epoch = process_cpu_seconds().ok();
        let mut order = split.train.clone();
        order.shuffle(&mut rng);
        let bar = progress_bar(
            steps,
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            progress == Progress::Bars,
        );
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, recipe.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0i64, 0usize);
        let mut lr = recipe.lr_max;
        for (s, chunk) in order.chunks(recipe.batch_size).enumerate() {
            let by_epoch = (epoch as f64 + s as f64 / steps as f64) / recipe.epochs as f64;
            let by_time = recipe
                .time_budget_s
                .map_or(0.0, |b| (spent_before + t_run.elapsed()) / b.max(1e-9));
            if by_time >= 1.0 {
                out_of_time = true;
                break;
            }
            lr = recipe.lr_at(by_epoch.max(by_time) * recipe.epochs as f64);
            opt.set_lr(lr);
            let (x, y) = batch_tensors(
                &data.train,
                shape,
                chunk,
                &state.norm,
                Some((&mut rng, augment)),
                device,
            );
            let logits = net.forward(&x, true);
            let loss = logits.cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                return Err(SearchError::Invalid {
                    what: format!(
                        "training diverged at epoch {} step {s} (loss {l})",
                        epoch + 1
                    ),
                });
            }
            loss_sum += l * chunk.len() as f64;
            correct += correct_count(&logits, &y);
            seen += chunk.len();
            let ips = seen as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9);
            let msg = format!(
                "loss {:.3} acc {:.1}% lr {lr:.4} {ips:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            );
            // Without a terminal indicatif draws nothing: log plain lines (10 per epoch) instead.
            if plain && (s + 1) % steps.div_ceil(10) == 0 {
                eprintln!(
                    "epoch {}/{} step {}/{steps}: {msg}",
                    epoch + 1,
                    recipe.epochs,
                    s + 1
                );
            }
            bar.set_message(msg);
            bar.inc(1);
        }
        let train_secs = t_epoch.elapsed().as_secs_f64();
        let val_acc = evaluate(&net, &data.train, shape, &split.val, &state.norm, device);
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_acc,
            lr,
            images_per_s: seen as f64 / train_secs.max(1e-9),
            seconds: t_epoch.elapsed().as_secs_f64(),
            fraction: seen as f64 / split.train.len().max(1) as f64,
            cpu_seconds: cpu_epoch
                .zip(process_cpu_seconds().ok())
                .map(|(a, b)| b - a),
        };
        let msg = format!(
            "loss {:.3} train {:.1}% val {:.2}% {:.0} img/s {:.0}s",
            stats.loss,
            100.0 * stats.train_acc,
            100.0 * val_acc,
            stats.images_per_s,
            stats.seconds
        );
        if plain {
            eprintln!("epoch {}/{} done: {msg}", epoch + 1, recipe.epochs);
        }
        bar.finish_with_message(msg);
        state.history.push(stats);
        if let Some(d) = dir {
            save_checkpoint(d, &vs, &state)?;
        }
    }
    if options.test {
        let all: Vec<usize> = (0..data.test.len()).collect();
        state.test_acc = Some(evaluate(&net, &data.test, shape, &all, &state.norm, device));
        if let Some(d) = dir {
            save_checkpoint(d, &vs, &state)?;
        }
    }
    Ok(Trained { vs, net, state })
}

/// Refuses a checkpoint made for another network (arch, width or input).
fn check_same_net(dir: &Path, old: &TrainState, options: &TrainOptions) -> Result<(), SearchError> {
    if old.options.net != options.net {
        return Err(SearchError::Model {
            path: dir.join(STATE_FILE).display().to_string(),
            msg: "checkpoint is for a different network (arch/width/input)".into(),
        });
    }
    Ok(())
}

/// Writes `checkpoint.safetensors` and `state.json` into `dir` (atomically via rename).
pub fn save_checkpoint(
    dir: &Path,
    vs: &nn::VarStore,
    state: &TrainState,
) -> Result<(), SearchError> {
    std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
    let tmp_w = dir.join("checkpoint.tmp.safetensors");
    vs.save(&tmp_w)
        .map_err(|e| tch_err("saving checkpoint", e))?;
    let w = dir.join(WEIGHTS_FILE);
    std::fs::rename(&tmp_w, &w).map_err(|e| SearchError::io(&w, e))?;
    let s = dir.join(STATE_FILE);
    let tmp_s = dir.join("state.json.tmp");
    let text = serde_json::to_string_pretty(state).map_err(|e| SearchError::Invalid {
        what: e.to_string(),
    })?;
    std::fs::write(&tmp_s, text).map_err(|e| SearchError::io(&tmp_s, e))?;
    std::fs::rename(&tmp_s, &s).map_err(|e| SearchError::io(&s, e))?;
    Ok(())
}

/// Loads a run directory's state and weights (CPU).
pub fn load_run(dir: &Path) -> Result<Trained, SearchError> {
    let state = read_state(dir)?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = Net::new(
        &vs.root(),
        state.options.net.clone(),
        state.options.recipe.dropout,
    )?;
    vs.load(dir.join(WEIGHTS_FILE))
        .map_err(|e| tch_err("loading checkpoint", e))?;
    Ok(Trained { vs, net, state })
}

/// A run directory under `root` named after the network.
pub fn run_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// The variables as the model crate's f32 tensors (names unchanged).
pub fn export_tensors(
    vs: &nn::VarStore,
) -> Result<std::collections::BTreeMap<String, cryptonas_model::format::Tensor>, SearchError> {
    let mut out = std::collections::BTreeMap::new();
    for (name, t) in vs.variables() {
        let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data =
            Vec::<f32>::try_from(t.flatten(0, -1)).map_err(|e| tch_err("reading tensor", e))?;
        out.insert(name, cryptonas_model::format::Tensor { shape, data });
    }
    Ok(out)
}
