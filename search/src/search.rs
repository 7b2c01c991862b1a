//! Decoupled architecture search by proxy training (regularized evolution).
//!
//! Why proxy training and not an ENAS weight-sharing supernet: on 2 CPU cores one supernet epoch
//! over the six-op space costs as much as several proxy candidates, and a REINFORCE controller needs
//! hundreds of child samples to move; a proxy candidate (short training on a class-balanced subset)
//! takes tens of seconds and gives a direct accuracy signal (DESIGN §5). The ReLU count does not
//! depend on ops or skips, so candidates are ranked by validation accuracy only; the budget is met
//! afterwards by the (depth, width) pair.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::arch::{Arch, Op};
use crate::count::{relu_count, BudgetPair};
use crate::data::Dataset;
use crate::train::{train, NetConfig, Progress, Recipe, TrainOptions};
use crate::SearchError;

/// Search options.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchOptions {
    /// Depth of the searched networks (the budget's depth).
    pub depth: usize,
    /// Proxy width (channels of the proxy networks).
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
    /// Wall-clock limit in seconds.
    pub time_limit_s: f64,
    /// Hard cap on candidates.
    pub max_candidates: usize,
    /// Seed.
    pub seed: u64,
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
    /// Proxy validation accuracy.
    pub val_acc: f64,
    /// Final training loss of the proxy run.
    pub train_loss: f64,
    /// Seconds spent on this candidate.
    pub seconds: f64,
    /// Seconds since the search started.
    pub elapsed_s: f64,
}

/// Search result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchResult {
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
    /// Wall seconds.
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
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| SearchError::io(log, e))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let start = Instant::now();
    let mut cands: Vec<(Arch, Candidate)> = Vec::new();
    let recipe = Recipe {
        epochs: options.proxy_epochs,
        fit_last_cycle: true,
        ..Recipe::default()
    };
    while cands.len() < options.max_candidates.max(1) {
        let elapsed = start.elapsed().as_secs_f64();
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
        let t = Instant::now();
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
        let last = trained.state.history.last().cloned();
        let cand = Candidate {
            index: cands.len(),
            arc: arch.to_arc(),
            parent,
            val_acc: last.as_ref().map_or(0.0, |l| l.val_acc),
            train_loss: last.as_ref().map_or(f64::NAN, |l| l.loss),
            seconds: t.elapsed().as_secs_f64(),
            elapsed_s: start.elapsed().as_secs_f64(),
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
        candidates: cands.into_iter().map(|c| c.1).collect(),
        best,
        best_val_acc: best_c.val_acc,
        final_arch,
        pair,
        seconds: start.elapsed().as_secs_f64(),
    })
}
