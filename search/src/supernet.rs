//! ENAS-style weight sharing for the decoupled search.
//!
//! One supernet holds every op of every layer and, per layer, a skip projection wide enough for
//! every skip pattern. Each training step trains one uniformly sampled architecture (random
//! sampling with weight sharing, which Li & Talwalkar 2019 found competitive with ENAS's
//! REINFORCE controller, without the controller's hundreds of extra samples). A candidate
//! is then scored by one forward pass over the validation split with the shared weights: well
//! under a second, against tens of seconds to train a proxy network.
//!
//! The supernet computes exactly the sampled child network: the child's skip projection is the
//! supernet's projection restricted to the input channels of the chosen skips (a test copies the
//! weights into a [`Net`](crate::train::Net) and compares the outputs). BN always normalises with
//! the batch's statistics: running statistics averaged over many sampled children describe none
//! of them.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::clock::{Clock, Stopwatch};
use crate::data::{Augment, Dataset, Normalization, Split};
use crate::train::{
    batch_tensors, bn, conv, correct_count, progress_bar, sgd, split_and_normalization, Body,
    Recipe, Reduce,
};
use crate::SearchError;
use cryptonas_arch::{
    layer_stages, nodes_used_from, reduction_points, stages, Arch, ArchError, InputShape, Op,
};

/// One searchable layer: a body and BN per op, and the widest skip projection.
struct SuperLayer {
    bodies: Vec<(Op, Body, nn::BatchNorm)>,
    /// `concat(n0 … n{i-1}, out)` → 1×1 conv → BN; `None` for layer 0, which has nothing to skip.
    proj: Option<(nn::Conv2D, nn::BatchNorm)>,
    channels: usize,
}

/// The weight-sharing supernet over depth `L`, width `C` and a set of ops.
pub struct SuperNet {
    depth: usize,
    ops: Vec<Op>,
    stem: nn::Conv2D,
    stem_bn: nn::BatchNorm,
    layers: Vec<SuperLayer>,
    reductions: [Vec<Reduce>; 2],
    fc: nn::Linear,
}

impl SuperNet {
    /// Creates the shared variables under `root`. Names follow the trainer's network, with the op
    /// inserted: `layers.{i}.{op}.conv.weight`, `layers.{i}.{op}.bn.*`, `layers.{i}.proj.weight`
    /// (all `i + 1` input blocks), `reduce{r}.n{j}.*`, `head.fc.*`.
    pub fn new(
        root: &nn::Path,
        depth: usize,
        width: usize,
        input: InputShape,
        classes: usize,
        ops: &[Op],
    ) -> Result<SuperNet, SearchError> {
        if ops.is_empty() {
            return Err(ArchError::NoOps.into());
        }
        if width == 0 {
            return Err(ArchError::ZeroWidth.into());
        }
        let st = stages(width, input);
        let stage_of = layer_stages(depth);
        let stem = conv(root / "stem" / "conv", input.channels, width, 3, 1, 1);
        let stem_bn = bn(root / "stem" / "bn", width);
        let layers = (0..depth)
            .map(|i| {
                let c = st[stage_of[i]].channels;
                let p = root / "layers" / i;
                let bodies = ops
                    .iter()
                    .map(|&op| {
                        let q = &p / op.name();
                        (op, Body::new(&q, op, c), bn(&q / "bn", c))
                    })
                    .collect();
                let proj = (i > 0).then(|| {
                    (
                        conv(&p / "proj", c * (i + 1), c, 1, 1, 1),
                        bn(&p / "proj_bn", c),
                    )
                });
                SuperLayer {
                    bodies,
                    proj,
                    channels: c,
                }
            })
            .collect();
        let after = reduction_points(depth).ok_or(SearchError::TooShallow { depth })?;
        let reductions = [0, 1].map(|r| {
            (0..=after[r] + 1)
                .map(|j| {
                    Reduce::new(
                        &(root / format!("reduce{r}") / format!("n{j}")),
                        st[r].channels,
                    )
                })
                .collect()
        });
        let fc = nn::linear(
            root / "head" / "fc",
            st[2].channels as i64,
            classes as i64,
            Default::default(),
        );
        Ok(SuperNet {
            depth,
            ops: ops.to_vec(),
            stem,
            stem_bn,
            layers,
            reductions,
            fc,
        })
    }

    /// Logits of the child network `arch` (BN with batch statistics).
    pub fn forward(&self, x: &Tensor, arch: &Arch) -> Result<Tensor, SearchError> {
        if arch.depth() != self.depth {
            return Err(SearchError::Invalid {
                what: format!(
                    "architecture of depth {} for a supernet of depth {}",
                    arch.depth(),
                    self.depth
                ),
            });
        }
        let after = arch.reduction_after().ok_or(SearchError::TooShallow {
            depth: arch.depth(),
        })?;
        let used = after.map(|a| nodes_used_from(arch, a + 1));
        let mut nodes = vec![self.stem_bn.forward_t(&x.apply(&self.stem), true)];
        for (i, (l, layer)) in self.layers.iter().zip(&arch.layers).enumerate() {
            let (_, body, body_bn) =
                l.bodies
                    .iter()
                    .find(|b| b.0 == layer.op)
                    .ok_or_else(|| SearchError::Invalid {
                        what: format!("op {:?} is not in this supernet ({:?})", layer.op, self.ops),
                    })?;
            let h = body_bn.forward_t(&body.forward(&nodes[i].relu()), true);
            let out = match (&l.proj, layer.skips.is_empty()) {
                (Some((proj, proj_bn)), false) => {
                    let c = l.channels as i64;
                    let blocks = layer.skips.iter().copied().chain([i]);
                    let idx: Vec<i64> = blocks
                        .flat_map(|b| (b as i64 * c)..(b as i64 + 1) * c)
                        .collect();
                    let w = proj
                        .ws
                        .index_select(1, &Tensor::from_slice(&idx).to(x.device()));
                    let mut parts: Vec<&Tensor> = layer.skips.iter().map(|&j| &nodes[j]).collect();
                    parts.push(&h);
                    let z = Tensor::cat(&parts, 1).conv2d(
                        &w,
                        None::<Tensor>,
                        [1, 1],
                        [0, 0],
                        [1, 1],
                        1,
                    );
                    proj_bn.forward_t(&z, true)
                }
                _ => h,
            };
            nodes.push(out);
            if let Some(r) = after.iter().position(|&a| a == i) {
                for (j, red) in self.reductions[r].iter().enumerate() {
                    if used[r][j] {
                        nodes[j] = red.forward(&nodes[j], true);
                    }
                }
            }
        }
        Ok(nodes[self.depth]
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float)
            .apply(&self.fc))
    }
}

/// How the supernet is trained.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SupernetOptions {
    /// Depth L.
    pub depth: usize,
    /// Width C of the supernet.
    pub width: usize,
    /// Ops sampled.
    pub ops: Vec<Op>,
    /// Epochs over the training split (the time limit may end it earlier, annealed).
    pub epochs: usize,
    /// Time limit in seconds, on `clock`.
    pub time_limit_s: f64,
    /// The clock the time limit counts.
    #[serde(default)]
    pub clock: Clock,
    /// Training images per class (`None`: all).
    pub train_per_class: Option<usize>,
    /// Validation images per class (what candidates are scored on).
    pub val_per_class: usize,
    /// Seed of the split, the initialisation, the sampling and the augmentation.
    pub seed: u64,
    /// Show a progress bar.
    #[serde(skip)]
    pub progress: bool,
}

/// Weights file of a saved supernet (in its directory).
pub const SUPERNET_WEIGHTS: &str = "supernet.safetensors";
/// State file of a saved supernet: [`SupernetState`] as JSON.
pub const SUPERNET_STATE: &str = "supernet.json";

/// What a saved supernet records beside its weights: enough to rebuild the network and the exact
/// validation split it scores on (the split is a function of the options' seed).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SupernetState {
    /// How it was trained.
    pub options: SupernetOptions,
    /// Input normalisation fitted on its training split.
    pub norm: Normalization,
    /// Seconds spent training, on the options' clock.
    pub seconds: f64,
    /// Epochs trained.
    pub epochs: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Mean loss over the last epoch's steps.
    pub final_loss: f64,
}

/// A trained supernet with its data split, ready to score candidates.
pub struct TrainedSupernet {
    /// How it was trained.
    pub options: SupernetOptions,
    /// The supernet (its variables live in `vs`).
    pub net: SuperNet,
    /// The variables.
    pub vs: nn::VarStore,
    split: Split,
    norm: Normalization,
    /// Seconds spent training, on the options' clock.
    pub seconds: f64,
    /// Epochs trained (fractional when the time limit ended one).
    pub epochs: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Mean loss over the last epoch's steps.
    pub final_loss: f64,
}

/// Trains a supernet: one uniformly sampled child (skips with probability 0.4) per step, SGD
/// Nesterov with one cosine decay over `epochs` or the time limit, whichever ends first.
pub fn train_supernet(
    data: &Dataset,
    options: &SupernetOptions,
    device: Device,
) -> Result<TrainedSupernet, SearchError> {
    train_supernet_inner(data, options, device, None, None)?.ok_or(SearchError::Invalid {
        what: "supernet training stopped early".into(),
    })
}

/// Weights of an unfinished supernet training (in its directory).
pub const PROGRESS_WEIGHTS: &str = "progress.safetensors";
/// Position of an unfinished supernet training: [`SupernetProgress`] as JSON.
pub const PROGRESS_STATE: &str = "progress.json";

/// Where an unfinished supernet training stands (written every quarter epoch).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SupernetProgress {
    /// The training's options (a resume must match them).
    pub options: SupernetOptions,
    /// Steps done.
    pub done_steps: usize,
    /// Images seen.
    pub seen: usize,
    /// Seconds spent so far, on the options' clock.
    pub seconds: f64,
    /// Wall seconds spent so far.
    pub wall_seconds: f64,
    /// Loss sum and steps of the current epoch.
    pub epoch_loss: (f64, usize),
}

/// [`train_supernet`] that checkpoints into `dir` every quarter epoch and resumes from the
/// checkpoint found there (weights, step, time spent; SGD momentum restarts from zero, and the
/// sampling stream is reseeded from the step, so a resumed run is a different draw of the same
/// procedure). `stop_after_steps` ends it early (`Ok(None)`), as an interruption would.
pub fn train_supernet_checkpointed(
    data: &Dataset,
    options: &SupernetOptions,
    device: Device,
    dir: &std::path::Path,
    stop_after_steps: Option<usize>,
) -> Result<Option<TrainedSupernet>, SearchError> {
    train_supernet_inner(data, options, device, Some(dir), stop_after_steps)
}

fn write_progress(
    dir: &std::path::Path,
    vs: &nn::VarStore,
    p: &SupernetProgress,
) -> Result<(), SearchError> {
    std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
    let tmp_w = dir.join("progress.tmp.safetensors");
    vs.save(&tmp_w)
        .map_err(|e| tch_err("saving supernet progress", e))?;
    let w = dir.join(PROGRESS_WEIGHTS);
    std::fs::rename(&tmp_w, &w).map_err(|e| SearchError::io(&w, e))?;
    let text = serde_json::to_string_pretty(p).map_err(|e| SearchError::Invalid {
        what: e.to_string(),
    })?;
    let st = dir.join(PROGRESS_STATE);
    let tmp_s = dir.join("progress.json.tmp");
    std::fs::write(&tmp_s, text).map_err(|e| SearchError::io(&tmp_s, e))?;
    std::fs::rename(&tmp_s, &st).map_err(|e| SearchError::io(&st, e))
}

fn train_supernet_inner(
    data: &Dataset,
    options: &SupernetOptions,
    device: Device,
    dir: Option<&std::path::Path>,
    stop_after_steps: Option<usize>,
) -> Result<Option<TrainedSupernet>, SearchError> {
    tch::manual_seed(options.seed as i64);
    let (split, norm) = split_and_normalization(
        data,
        options.val_per_class,
        options.train_per_class,
        options.seed,
    )?;
    let mut vs = nn::VarStore::new(device);
    let net = SuperNet::new(
        &vs.root(),
        options.depth,
        options.width,
        data.shape,
        data.classes,
        &options.ops,
    )?;
    let recipe = Recipe {
        epochs: options.epochs.max(1),
        t0: options.epochs.max(1) as f64,
        ..Recipe::default()
    };
    let mut progress = SupernetProgress {
        options: options.clone(),
        done_steps: 0,
        seen: 0,
        seconds: 0.0,
        wall_seconds: 0.0,
        epoch_loss: (0.0, 0),
    };
    if let Some(d) = dir.filter(|d| d.join(PROGRESS_STATE).is_file()) {
        let st = d.join(PROGRESS_STATE);
        let text = std::fs::read_to_string(&st).map_err(|e| SearchError::io(&st, e))?;
        let old: SupernetProgress =
            serde_json::from_str(&text).map_err(|e| SearchError::Model {
                path: st.display().to_string(),
                msg: e.to_string(),
            })?;
        let mut want = options.clone();
        want.progress = old.options.progress;
        if old.options != want {
            return Err(SearchError::Invalid {
                what: format!(
                    "the unfinished supernet in {} was trained with other options ({:?}); \
                     use another directory",
                    d.display(),
                    old.options
                ),
            });
        }
        vs.load(d.join(PROGRESS_WEIGHTS))
            .map_err(|e| tch_err("loading supernet progress", e))?;
        progress = SupernetProgress {
            options: options.clone(),
            ..old
        };
        if options.progress {
            eprintln!(
                "supernet: resuming at step {} ({:.0} s spent)",
                progress.done_steps, progress.seconds
            );
        }
    }
    let mut opt = sgd(&vs, &recipe)?;
    // Children and augmentation; reseeded from the step on a resume.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        options.seed ^ 0x50be ^ (progress.done_steps as u64).rotate_left(24),
    );
    let steps = split.train.len().div_ceil(recipe.batch_size).max(1);
    let every = steps.div_ceil(4);
    let bar = progress_bar(
        steps * recipe.epochs,
        "supernet [{elapsed_precise}] {bar:30} {pos}/{len} steps {msg}",
        options.progress,
    );
    bar.inc(progress.done_steps as u64);
    // Without a terminal indicatif draws nothing: log plain lines (10 per epoch) instead.
    let plain = options.progress && !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let start = Stopwatch::start(options.clock)?;
    let first_epoch = progress.done_steps / steps;
    let mut stopped = false;
    'epochs: for epoch in first_epoch..recipe.epochs {
        // The epoch's order depends on the epoch only, so a resume skips exactly the batches done.
        let mut order = split.train.clone();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            options.seed ^ 0x50be_0000 ^ ((epoch as u64) << 32),
        ));
        let skip = if epoch == first_epoch {
            progress.done_steps % steps
        } else {
            progress.epoch_loss = (0.0, 0);
            0
        };
        for (s, chunk) in order.chunks(recipe.batch_size).enumerate().skip(skip) {
            let by_epoch = (epoch as f64 + s as f64 / steps as f64) / recipe.epochs as f64;
            let by_time = (progress.seconds + start.elapsed()) / options.time_limit_s.max(1e-9);
            if by_time >= 1.0 {
                break 'epochs;
            }
            if stop_after_steps.is_some_and(|n| progress.done_steps >= n) {
                stopped = true;
                break 'epochs;
            }
            opt.set_lr(recipe.lr_at(by_epoch.max(by_time) * recipe.epochs as f64));
            let child = Arch::random(&mut rng, options.depth, &options.ops, 0.4)?;
            let (x, y) = batch_tensors(
                &data.train,
                data.shape,
                chunk,
                &norm,
                Some((
                    &mut rng,
                    Augment {
                        pad: data.kind.crop_pad(),
                        cutout: 0,
                    },
                )),
                device,
            );
            let loss = net.forward(&x, &child)?.cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            let l = loss.double_value(&[]);
            if !l.is_finite() {
                return Err(SearchError::Invalid {
                    what: format!(
                        "supernet training diverged at step {} (loss {l})",
                        progress.done_steps
                    ),
                });
            }
            progress.epoch_loss.0 += l;
            progress.epoch_loss.1 += 1;
            progress.seen += chunk.len();
            progress.done_steps += 1;
            let wall = progress.wall_seconds + start.wall();
            let msg = format!(
                "epoch {} loss {:.3} {:.0} img/s",
                epoch + 1,
                progress.epoch_loss.0 / progress.epoch_loss.1 as f64,
                progress.seen as f64 / wall.max(1e-9)
            );
            if plain && (s + 1) % steps.div_ceil(10) == 0 {
                eprintln!("supernet step {}/{}: {msg}", s + 1, steps);
            }
            bar.inc(1);
            bar.set_message(msg);
            if let (Some(d), true) = (dir, progress.done_steps.is_multiple_of(every)) {
                let mut p = progress.clone();
                p.seconds += start.elapsed();
                p.wall_seconds += start.wall();
                write_progress(d, &vs, &p)?;
            }
        }
    }
    bar.finish();
    if stopped {
        if let Some(d) = dir {
            let mut p = progress.clone();
            p.seconds += start.elapsed();
            p.wall_seconds += start.wall();
            write_progress(d, &vs, &p)?;
        }
        return Ok(None);
    }
    let seconds = progress.seconds + start.elapsed();
    let wall = progress.wall_seconds + start.wall();
    Ok(Some(TrainedSupernet {
        options: options.clone(),
        net,
        vs,
        split,
        norm,
        seconds,
        epochs: progress.done_steps as f64 / steps as f64,
        images_per_s: progress.seen as f64 / wall.max(1e-9),
        final_loss: progress.epoch_loss.0 / progress.epoch_loss.1.max(1) as f64,
    }))
}

fn tch_err(what: &str, e: tch::TchError) -> SearchError {
    SearchError::Invalid {
        what: format!("{what}: {e}"),
    }
}

impl TrainedSupernet {
    /// Writes `supernet.safetensors` and `supernet.json` into `dir` (each via a rename, so a
    /// killed process leaves either the old pair or a complete new file, never a torn one; the
    /// state is written last, and [`TrainedSupernet::load`] needs both).
    pub fn save(&self, dir: &std::path::Path) -> Result<(), SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        let tmp_w = dir.join("supernet.tmp.safetensors");
        self.vs
            .save(&tmp_w)
            .map_err(|e| tch_err("saving supernet", e))?;
        let w = dir.join(SUPERNET_WEIGHTS);
        std::fs::rename(&tmp_w, &w).map_err(|e| SearchError::io(&w, e))?;
        let state = SupernetState {
            options: self.options.clone(),
            norm: self.norm.clone(),
            seconds: self.seconds,
            epochs: self.epochs,
            images_per_s: self.images_per_s,
            final_loss: self.final_loss,
        };
        let text = serde_json::to_string_pretty(&state).map_err(|e| SearchError::Invalid {
            what: e.to_string(),
        })?;
        let s = dir.join(SUPERNET_STATE);
        let tmp_s = dir.join("supernet.json.tmp");
        std::fs::write(&tmp_s, text).map_err(|e| SearchError::io(&tmp_s, e))?;
        std::fs::rename(&tmp_s, &s).map_err(|e| SearchError::io(&s, e))
    }

    /// Whether `dir` holds a complete saved supernet.
    pub fn saved_in(dir: &std::path::Path) -> bool {
        dir.join(SUPERNET_STATE).is_file() && dir.join(SUPERNET_WEIGHTS).is_file()
    }

    /// Loads a supernet saved by [`TrainedSupernet::save`], rebuilding its validation split from
    /// the recorded seed; refuses one trained on other data (the normalisation fitted on the
    /// rebuilt training split must match the recorded one).
    pub fn load(
        dir: &std::path::Path,
        data: &Dataset,
        device: Device,
    ) -> Result<TrainedSupernet, SearchError> {
        let s = dir.join(SUPERNET_STATE);
        let text = std::fs::read_to_string(&s).map_err(|e| SearchError::io(&s, e))?;
        let state: SupernetState = serde_json::from_str(&text).map_err(|e| SearchError::Model {
            path: s.display().to_string(),
            msg: e.to_string(),
        })?;
        let o = &state.options;
        let (split, norm) =
            split_and_normalization(data, o.val_per_class, o.train_per_class, o.seed)?;
        let close = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4)
        };
        if !close(&norm.mean, &state.norm.mean) || !close(&norm.std, &state.norm.std) {
            return Err(SearchError::Model {
                path: s.display().to_string(),
                msg: "the supernet was trained on other data (normalisation differs)".into(),
            });
        }
        let mut vs = nn::VarStore::new(device);
        let net = SuperNet::new(
            &vs.root(),
            o.depth,
            o.width,
            data.shape,
            data.classes,
            &o.ops,
        )?;
        vs.load(dir.join(SUPERNET_WEIGHTS))
            .map_err(|e| tch_err("loading supernet", e))?;
        Ok(TrainedSupernet {
            options: state.options,
            net,
            vs,
            split,
            norm: state.norm,
            seconds: state.seconds,
            epochs: state.epochs,
            images_per_s: state.images_per_s,
            final_loss: state.final_loss,
        })
    }

    /// Validation accuracy of the child `arch` with the shared weights (no training).
    pub fn score(&self, data: &Dataset, arch: &Arch) -> Result<f64, SearchError> {
        let _guard = tch::no_grad_guard();
        let device = self.vs.device();
        let mut correct = 0i64;
        for chunk in self.split.val.chunks(500) {
            let (x, y) = batch_tensors(&data.train, data.shape, chunk, &self.norm, None, device);
            correct += correct_count(&self.net.forward(&x, arch)?, &y);
        }
        Ok(correct as f64 / self.split.val.len().max(1) as f64)
    }
}
