//! Decoupled architecture search: regularized evolution over architectures, each candidate scored
//! by validation accuracy, either with the shared weights of a supernet ([`SearchMethod::Supernet`],
//! see [`crate::supernet`]) or by training it briefly on its own ([`SearchMethod::Proxy`]).
//!
//! The ReLU count does not depend on ops or skips, so candidates are ranked by accuracy only; the
//! budget is met afterwards by the (depth, width) pair (DESIGN §5). Measured on 2 CPU cores with a
//! 1-hour limit (search README): proxy scoring evaluated 22 candidates at 160 s each; the supernet
//! trained for half the hour and then scored 538 candidates at 3.3 s each.

use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::clock::{Clock, Stopwatch};
use crate::count::{relu_count, BudgetPair};
use crate::data::Dataset;
use crate::supernet::{
    train_supernet, train_supernet_checkpointed, SupernetOptions, TrainedSupernet,
};
use crate::train::{train, NetConfig, Progress, Recipe, TrainOptions};
use crate::{SearchError, SearchMethod};
use cryptonas_arch::{Arch, Op};

/// Search options.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchOptions {
    /// How candidates are scored.
    #[serde(default)]
    pub method: SearchMethod,
    /// Supernet training epochs (the supernet's share of the time limit may end it earlier).
    #[serde(default)]
    pub supernet_epochs: usize,
    /// Share of the time limit spent training the supernet (the rest scores candidates).
    #[serde(default)]
    pub supernet_fraction: f64,
    /// Depth of the searched networks (the budget's depth).
    pub depth: usize,
    /// Width of the proxy networks or of the supernet.
    pub proxy_width: usize,
    /// Proxy training epochs per candidate.
    pub proxy_epochs: usize,
    /// Proxy training images per class.
    pub proxy_per_class: usize,
    /// Validation images per class for ranking.
    pub val_per_class: usize,
    /// Ops the search may choose.
    pub ops: Vec<Op>,
    /// Initial random population size.
    pub population: usize,
    /// Tournament size for parent selection.
    pub tournament: usize,
    /// Time limit in seconds (supernet training and scoring together), on `clock`.
    pub time_limit_s: f64,
    /// The clock the time limit counts.
    #[serde(default)]
    pub clock: Clock,
    /// Hard cap on candidates.
    pub max_candidates: usize,
    /// Seed.
    pub seed: u64,
    /// Where the trained supernet is saved, and loaded from when it is already there (a rerun of
    /// a search then skips supernet training; its options must match).
    #[serde(default)]
    pub supernet_dir: Option<std::path::PathBuf>,
}

/// One evaluated candidate (one line of the JSON-lines log).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    /// Sequence number.
    pub index: usize,
    /// The architecture (`arc` string).
    pub arc: String,
    /// Index of the parent candidate (`None` for the random population).
    pub parent: Option<usize>,
    /// Validation accuracy (proxy-trained, or with the supernet's shared weights).
    pub val_acc: f64,
    /// Final training loss of the proxy run (`null` for supernet scoring).
    pub train_loss: f64,
    /// Seconds spent on this candidate, on the search's clock.
    pub seconds: f64,
    /// Seconds since the search started (a loaded supernet's training included), on the
    /// search's clock.
    pub elapsed_s: f64,
}

/// How the supernet was trained.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupernetReport {
    /// Seconds of training, on the search's clock.
    pub seconds: f64,
    /// Epochs trained.
    pub epochs: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Mean loss over the last epoch.
    pub final_loss: f64,
}

/// Search result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchResult {
    /// The supernet's training, for [`SearchMethod::Supernet`].
    pub supernet: Option<SupernetReport>,
    /// All candidates in order.
    pub candidates: Vec<Candidate>,
    /// Best architecture found (as searched).
    pub best: Arch,
    /// Its proxy accuracy.
    pub best_val_acc: f64,
    /// Best architecture with dense convs, instantiated at the budget pair.
    pub final_arch: Arch,
    /// The (depth, width) meeting the budget.
    pub pair: BudgetPair,
    /// Seconds, on the search's clock.
    pub seconds: f64,
}

/// Runs the search and appends every candidate to `log` (JSON lines).
pub fn search(
    data: &Dataset,
    options: &SearchOptions,
    pair: BudgetPair,
    log: &Path,
    device: Device,
) -> Result<SearchResult, SearchError> {
    search_resumable(data, options, pair, log, device, false)
}

/// A logged candidate as read back (a supernet score's `train_loss` is logged as `null`).
#[derive(Deserialize)]
struct LoggedCandidate {
    index: usize,
    arc: String,
    val_acc: f64,
    #[serde(default)]
    train_loss: Option<f64>,
    seconds: f64,
    elapsed_s: f64,
}

/// The candidates of an interrupted search's log; a torn last line (the process was killed
/// while writing it) is dropped from the file.
fn read_log(log: &Path) -> Result<Vec<LoggedCandidate>, SearchError> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SearchError::io(log, e)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str::<LoggedCandidate>(l) {
            Ok(c) => out.push(c),
            Err(_) if i + 1 == lines.len() => {
                let keep: String = lines[..i].iter().map(|l| format!("{l}\n")).collect();
                std::fs::write(log, keep).map_err(|e| SearchError::io(log, e))?;
            }
            Err(e) => {
                return Err(SearchError::Invalid {
                    what: format!("{} line {}: {e}", log.display(), i + 1),
                })
            }
        }
    }
    Ok(out)
}

/// [`search`] that, with `resume`, continues the search logged in `log`: the evolution is
/// replayed from the log (the same random stream proposes the same candidates, whose logged
/// scores and times are taken instead of scoring them again) and goes on from the last one.
/// Needs the supernet saved in `options.supernet_dir` (the one that scored the log) for
/// supernet scoring; a log of another search (seed, options) is refused.
pub fn search_resumable(
    data: &Dataset,
    options: &SearchOptions,
    pair: BudgetPair,
    log: &Path,
    device: Device,
    resume: bool,
) -> Result<SearchResult, SearchError> {
    if options.depth != pair.depth {
        return Err(SearchError::Invalid {
            what: format!(
                "search depth {} differs from the budget pair's depth {}",
                options.depth, pair.depth
            ),
        });
    }
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
    }
    let replay = if resume { read_log(log)? } else { Vec::new() };
    if !replay.is_empty()
        && options.method == SearchMethod::Supernet
        && !options
            .supernet_dir
            .as_deref()
            .is_some_and(TrainedSupernet::saved_in)
    {
        return Err(SearchError::Invalid {
            what: format!(
                "{} holds candidates scored by a supernet that was not saved: resuming needs \
                 the --supernet-dir it was saved in",
                log.display()
            ),
        });
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| SearchError::io(log, e))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let start = Stopwatch::start(options.clock)?;
    // Clock offset that makes `spent_before + start.elapsed()` the search's own time.
    let mut spent_before = 0.0;
    let supernet = match options.method {
        SearchMethod::Supernet => {
            let sopts = SupernetOptions {
                depth: options.depth,
                width: options.proxy_width,
                ops: options.ops.clone(),
                epochs: options.supernet_epochs.max(1),
                time_limit_s: options.time_limit_s * options.supernet_fraction.clamp(0.0, 1.0),
                clock: options.clock,
                train_per_class: None,
                val_per_class: options.val_per_class,
                seed: options.seed,
                progress: true,
            };
            Some(match &options.supernet_dir {
                Some(dir) if TrainedSupernet::saved_in(dir) => {
                    let s = TrainedSupernet::load(dir, data, device)?;
                    let mut want = sopts.clone();
                    // The time limit may differ: a saved supernet is reused as trained.
                    want.time_limit_s = s.options.time_limit_s;
                    // Not saved: how training was displayed.
                    want.progress = s.options.progress;
                    if s.options != want {
                        return Err(SearchError::Invalid {
                            what: format!(
                                "the supernet saved in {} was trained with other options \
                                 ({:?}); use another --supernet-dir",
                                dir.display(),
                                s.options
                            ),
                        });
                    }
                    eprintln!("loaded the supernet saved in {}", dir.display());
                    s
                }
                Some(dir) => {
                    let s = train_supernet_checkpointed(data, &sopts, device, dir, None)?.ok_or(
                        SearchError::Invalid {
                            what: "supernet training stopped early".into(),
                        },
                    )?;
                    s.save(dir)?;
                    s
                }
                None => train_supernet(data, &sopts, device)?,
            })
        }
        SearchMethod::Proxy => None,
    };
    if let Some(s) = &supernet {
        // The supernet's training counts against the limit, all of it: loaded, or resumed from
        // a checkpoint of an earlier process (whose time this process's clock did not see).
        spent_before = s.seconds - start.elapsed();
        eprintln!(
            "supernet: {:.1} epochs in {:.0}s ({:.0} img/s), last-epoch loss {:.3}",
            s.epochs, s.seconds, s.images_per_s, s.final_loss
        );
    }
    let mut cands: Vec<(Arch, Candidate)> = Vec::new();
    let recipe = Recipe {
        epochs: options.proxy_epochs,
        fit_last_cycle: true,
        ..Recipe::default()
    };
    // Time on the clock before `start`: a loaded supernet's training, then (after a replay) the
    // replayed candidates' time as logged.
    let mut offset = spent_before;
    while cands.len() < options.max_candidates.max(1) {
        let elapsed = offset + start.elapsed();
        // Stop when the next candidate would likely overrun the limit.
        let mean = if cands.is_empty() {
            0.0
        } else {
            cands.iter().map(|c| c.1.seconds).sum::<f64>() / cands.len() as f64
        };
        if !cands.is_empty() && elapsed + mean > options.time_limit_s {
            break;
        }
        let (arch, parent) = if cands.len() < options.population.max(1) {
            (
                Arch::random(&mut rng, options.depth, &options.ops, 0.4)?,
                None,
            )
        } else {
            // Regularized evolution: tournament among the most recent `population`, mutate the winner.
            let recent = &cands[cands.len() - options.population.max(1)..];
            let mut best: Option<usize> = None;
            for _ in 0..options.tournament.max(1) {
                let k = rng.random_range(0..recent.len());
                if best.is_none_or(|b| recent[k].1.val_acc > recent[b].1.val_acc) {
                    best = Some(k);
                }
            }
            let b = best.unwrap_or(0);
            (
                recent[b].0.mutate(&mut rng, &options.ops),
                Some(recent[b].1.index),
            )
        };
        if let Some(r) = replay.get(cands.len()) {
            let arc = arch.to_arc();
            if r.arc != arc || r.index != cands.len() {
                return Err(SearchError::Invalid {
                    what: format!(
                        "{}: candidate {} is `{}`, this search proposes `{arc}` (another seed \
                         or other options)",
                        log.display(),
                        cands.len(),
                        r.arc
                    ),
                });
            }
            let cand = Candidate {
                index: cands.len(),
                arc,
                parent,
                val_acc: r.val_acc,
                train_loss: r.train_loss.unwrap_or(f64::NAN),
                seconds: r.seconds,
                elapsed_s: r.elapsed_s,
            };
            offset = r.elapsed_s - start.elapsed();
            cands.push((arch, cand));
            if cands.len() == replay.len() {
                eprintln!("replayed {} logged candidates", cands.len());
            }
            continue;
        }
        let t = Stopwatch::start(options.clock)?;
        let (val_acc, train_loss) = match &supernet {
            Some(s) => (s.score(data, &arch)?, f64::NAN),
            None => proxy_score(data, options, &recipe, &arch, device)?,
        };
        let cand = Candidate {
            index: cands.len(),
            arc: arch.to_arc(),
            parent,
            val_acc,
            train_loss,
            seconds: t.elapsed(),
            elapsed_s: offset + start.elapsed(),
        };
        let line = serde_json::to_string(&cand).map_err(|e| SearchError::Invalid {
            what: e.to_string(),
        })?;
        writeln!(file, "{line}").map_err(|e| SearchError::io(log, e))?;
        eprintln!(
            "candidate {:3}  val {:.2}%  {:.0}s  arc {}",
            cand.index,
            100.0 * cand.val_acc,
            cand.seconds,
            cand.arc
        );
        cands.push((arch, cand));
    }
    let (best, best_c) = cands
        .iter()
        .max_by(|a, b| a.1.val_acc.total_cmp(&b.1.val_acc))
        .cloned()
        .ok_or(SearchError::Invalid {
            what: "no candidate was evaluated".into(),
        })?;
    let final_arch = best.densified();
    debug_assert_eq!(
        relu_count(final_arch.depth(), pair.width, data.shape).ok(),
        Some(pair.relus)
    );
    Ok(SearchResult {
        supernet: supernet.map(|s| SupernetReport {
            seconds: s.seconds,
            epochs: s.epochs,
            images_per_s: s.images_per_s,
            final_loss: s.final_loss,
        }),
        candidates: cands.into_iter().map(|c| c.1).collect(),
        best,
        best_val_acc: best_c.val_acc,
        final_arch,
        pair,
        seconds: offset + start.elapsed(),
    })
}

/// Trains `arch` briefly on the proxy subset: (validation accuracy, final training loss).
fn proxy_score(
    data: &Dataset,
    options: &SearchOptions,
    recipe: &Recipe,
    arch: &Arch,
    device: Device,
) -> Result<(f64, f64), SearchError> {
    let trained = train(
        data,
        TrainOptions {
            net: NetConfig {
                arch: arch.clone(),
                width: options.proxy_width,
                input: data.shape,
                classes: data.classes,
            },
            recipe: recipe.clone(),
            val_per_class: options.val_per_class,
            train_per_class: Some(options.proxy_per_class),
            seed: options.seed,
            test: false,
            warm_start: None,
        },
        None,
        false,
        Progress::Quiet,
        device,
    )?;
    let last = trained.state.history.last();
    Ok((
        last.map_or(0.0, |l| l.val_acc),
        last.map_or(f64::NAN, |l| l.loss),
    ))
}
