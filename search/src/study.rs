//! The searched-vs-released study (`scripts/search-study.sh`): which architectures the supernet's
//! ranking is checked on, Kendall's τ between supernet score and standalone accuracy with a
//! confidence interval, and the paired comparison table of exported models.
//!
//! Everything here is deterministic for a seed and needs no libtorch, so the selection and the
//! statistics are unit-tested; the script feeds them the search log and the training results.

use std::fmt::Write as _;

use plotters::prelude::*;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::SearchError;
use cryptonas_arch::{Arch, Op};

/// An architecture with its supernet score (a line of the search log, or of `score`'s output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The `arc` string.
    pub arc: String,
    /// Validation accuracy with the supernet's shared weights.
    pub val_acc: f64,
}

/// One architecture chosen for the τ study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    /// Why it was chosen: `best`, `worst`, `spread-K` (K-th of the evenly spaced score
    /// targets), `random-K` (drawn from the search space's prior) or `cnet1`.
    pub label: String,
    /// The `arc` string.
    pub arc: String,
}

/// `n ≥ 2` distinct architectures of `log` spread evenly over its score range: for targets
/// `min + k·(max − min)/(n − 1)`, `k = 0..n`, the not yet chosen candidate nearest each target
/// (ties: the earlier log line). The first is the worst, the last the best. Candidates scored
/// twice count once. Fewer than `n` distinct candidates: all of them.
pub fn pick_spread(log: &[Scored], n: usize) -> Vec<Pick> {
    let mut distinct: Vec<&Scored> = Vec::new();
    for c in log {
        if !distinct.iter().any(|d| d.arc == c.arc) {
            distinct.push(c);
        }
    }
    if distinct.is_empty() || n == 0 {
        return Vec::new();
    }
    let n = n.max(2).min(distinct.len());
    let lo = distinct
        .iter()
        .map(|c| c.val_acc)
        .fold(f64::INFINITY, f64::min);
    let hi = distinct
        .iter()
        .map(|c| c.val_acc)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut taken = vec![false; distinct.len()];
    let mut out = Vec::with_capacity(n);
    // Extremes first, so that the ends of the range are always the true best and worst.
    let mut order: Vec<usize> = vec![0, n - 1];
    order.extend(1..n - 1);
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    for k in order {
        let target = lo + (hi - lo) * k as f64 / (n - 1) as f64;
        let best = (0..distinct.len()).filter(|&i| !taken[i]).min_by(|&a, &b| {
            (distinct[a].val_acc - target)
                .abs()
                .total_cmp(&(distinct[b].val_acc - target).abs())
                .then(a.cmp(&b))
        });
        if let Some(i) = best {
            taken[i] = true;
            chosen.push((k, i));
        }
    }
    chosen.sort_by_key(|&(k, _)| k);
    for (k, i) in chosen {
        let label = if k == 0 {
            "worst".to_string()
        } else if k == n - 1 {
            "best".to_string()
        } else {
            format!("spread-{k}")
        };
        out.push(Pick {
            label,
            arc: distinct[i].arc.clone(),
        });
    }
    out
}

/// `n` architectures drawn from the search space's prior (uniform ops, skips with probability
/// 0.4, as the supernet samples them), none equal to one in `exclude`: the random points of
/// the τ study, which the evolution's bias towards good scores does not choose.
pub fn pick_random(
    seed: u64,
    depth: usize,
    ops: &[Op],
    n: usize,
    exclude: &[String],
) -> Result<Vec<Pick>, SearchError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7a75);
    let mut out: Vec<Pick> = Vec::new();
    let mut tries = 0usize;
    while out.len() < n {
        tries += 1;
        if tries > 1000 * n.max(1) {
            return Err(SearchError::Invalid {
                what: format!("could not draw {n} distinct random architectures of depth {depth}"),
            });
        }
        let arc = Arch::random(&mut rng, depth, ops, 0.4)?.to_arc();
        if !exclude.contains(&arc) && !out.iter().any(|p| p.arc == arc) {
            out.push(Pick {
                label: format!("random-{}", out.len() + 1),
                arc,
            });
        }
    }
    Ok(out)
}

/// Kendall's τ-b of paired samples (ties in either variable handled as in τ-b; `None` below
/// two pairs or when one variable is constant).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    let (mut conc, mut disc, mut tie_x, mut tie_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i].total_cmp(&x[j]) as i64;
            let dy = y[i].total_cmp(&y[j]) as i64;
            match (dx, dy) {
                (0, 0) => {}
                (0, _) => tie_x += 1,
                (_, 0) => tie_y += 1,
                _ if dx == dy => conc += 1,
                _ => disc += 1,
            }
        }
    }
    let denom = (((conc + disc + tie_x) * (conc + disc + tie_y)) as f64).sqrt();
    (denom > 0.0).then(|| (conc - disc) as f64 / denom)
}

/// τ with its uncertainty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TauEstimate {
    /// Pairs.
    pub n: usize,
    /// Kendall's τ-b.
    pub tau: f64,
    /// Percentile bootstrap interval (resampling the pairs).
    pub ci: (f64, f64),
    /// Its level (0.95).
    pub level: f64,
    /// Bootstrap resamples (degenerate resamples, with one variable constant, are skipped).
    pub resamples: usize,
    /// Two-sided p-value of τ = 0 by the normal approximation `z = 3τ√(n(n−1)) / √(2(2n+5))`.
    pub p_value: f64,
}

/// Kendall's τ-b of `(x, y)` with a percentile bootstrap interval at `level` from `reps`
/// resamples drawn with `seed`.
pub fn tau_with_ci(
    x: &[f64],
    y: &[f64],
    reps: usize,
    level: f64,
    seed: u64,
) -> Result<TauEstimate, SearchError> {
    let n = x.len();
    if n != y.len() || n < 3 {
        return Err(SearchError::Invalid {
            what: format!(
                "τ needs at least 3 pairs of equal length (got {} and {})",
                x.len(),
                y.len()
            ),
        });
    }
    let tau = kendall_tau_b(x, y).ok_or_else(|| SearchError::Invalid {
        what: "τ is undefined: one of the variables is constant".into(),
    })?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut taus = Vec::with_capacity(reps);
    let (mut bx, mut by) = (vec![0.0; n], vec![0.0; n]);
    for _ in 0..reps {
        for k in 0..n {
            let i = rng.random_range(0..n);
            bx[k] = x[i];
            by[k] = y[i];
        }
        if let Some(t) = kendall_tau_b(&bx, &by) {
            taus.push(t);
        }
    }
    taus.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if taus.is_empty() {
            return f64::NAN;
        }
        let pos = p * (taus.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        taus[lo] + (taus[hi] - taus[lo]) * (pos - lo as f64)
    };
    let alpha = (1.0 - level) / 2.0;
    let nf = n as f64;
    let z = 3.0 * tau * (nf * (nf - 1.0)).sqrt() / (2.0 * (2.0 * nf + 5.0)).sqrt();
    Ok(TauEstimate {
        n,
        tau,
        ci: (q(alpha), q(1.0 - alpha)),
        level,
        resamples: taus.len(),
        p_value: 2.0 * (1.0 - normal_cdf(z.abs())),
    })
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + erf.copysign(x))
}

/// One row of the τ table: an architecture, its supernet score and its standalone result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TauRow {
    /// Why it was chosen ([`Pick::label`]).
    pub label: String,
    /// The `arc` string as scored (the trained network is its dense form).
    pub arc: String,
    /// Supernet score (validation accuracy with shared weights).
    pub score: f64,
    /// Best validation accuracy of the standalone training.
    pub val_acc: f64,
    /// Test accuracy (float) of the standalone training, if measured.
    #[serde(default)]
    pub test_acc: Option<f64>,
    /// Epochs of the standalone training.
    #[serde(default)]
    pub epochs: Option<f64>,
}

/// Markdown report of the τ study.
pub fn tau_markdown(rows: &[TauRow], est: &TauEstimate, title: &str) -> String {
    let mut sorted: Vec<&TauRow> = rows.iter().collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut s = format!("## {title}\n\n");
    let _ = writeln!(
        s,
        "Kendall's τ-b (supernet score vs standalone validation accuracy) = **{:.3}** over {} \
         architectures; {:.0} % bootstrap interval [{:.3}, {:.3}] ({} resamples); p = {:.3} for \
         τ = 0 (normal approximation).\n",
        est.tau,
        est.n,
        100.0 * est.level,
        est.ci.0,
        est.ci.1,
        est.resamples,
        est.p_value
    );
    s += "| choice | arc | supernet score | standalone val | standalone test (float) | epochs |\n";
    s += "|---|---|---:|---:|---:|---:|\n";
    for r in sorted {
        let _ = writeln!(
            s,
            "| {} | `{}` | {:.2} % | {:.2} % | {} | {} |",
            r.label,
            r.arc,
            100.0 * r.score,
            100.0 * r.val_acc,
            r.test_acc
                .map_or("–".into(), |t| format!("{:.2} %", 100.0 * t)),
            r.epochs.map_or("–".into(), |e| format!("{e:.1}"))
        );
    }
    s
}

fn plot_err(e: &dyn std::fmt::Display) -> SearchError {
    SearchError::Invalid {
        what: format!("plot: {e}"),
    }
}

/// SVG scatter plot of the τ study: supernet score against standalone validation accuracy.
pub fn tau_svg(rows: &[TauRow], est: &TauEstimate, title: &str) -> Result<String, SearchError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (960, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let pct = |v: f64| 100.0 * v;
        let range = |f: &dyn Fn(&TauRow) -> f64| {
            let lo = rows.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = rows.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.1).max(0.5);
            (lo - pad)..(hi + pad)
        };
        let xr = range(&|r| pct(r.score));
        let yr = range(&|r| pct(r.val_acc));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{title}: τ = {:.2} [{:.2}, {:.2}], n = {}",
                    est.tau, est.ci.0, est.ci.1, est.n
                ),
                ("sans-serif", 18),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(xr, yr)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("supernet score (validation accuracy, shared weights) %")
            .y_desc("standalone validation accuracy %")
            .draw()
            .map_err(|e| plot_err(&e))?;
        chart
            .draw_series(rows.iter().map(|r| {
                let c = if r.label == "cnet1" { RED } else { BLUE };
                Circle::new((pct(r.score), pct(r.val_acc)), 5, c.filled())
            }))
            .map_err(|e| plot_err(&e))?;
        chart
            .draw_series(rows.iter().map(|r| {
                Text::new(
                    r.label.clone(),
                    (pct(r.score), pct(r.val_acc)),
                    ("sans-serif", 12),
                )
            }))
            .map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
    }
    Ok(out)
}

/// One trained model of the paired comparison (read from its exported metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedRun {
    /// Budget in ReLUs.
    pub relus: u64,
    /// `searched` or `cnet1`.
    pub arm: String,
    /// Training seed.
    pub seed: u64,
    /// Fixed-point accuracy of the last fixed-point check (`None`: none ran).
    pub fixed_acc: Option<f64>,
    /// Test images of that check (the whole test set after `check-fixed`).
    pub fixed_images: Option<usize>,
    /// Float accuracy on the whole test set.
    pub float_acc: Option<f64>,
    /// Epochs trained.
    pub epochs: Option<f64>,
    /// Wall seconds trained.
    pub seconds: Option<f64>,
    /// Dense `arc` of the network.
    pub arc: String,
}

/// Mean and sample standard deviation (0 for one value); `None` for none.
pub fn mean_sd(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((m, var.sqrt()))
}

/// Markdown table of the paired comparison: one line per run, then per budget and arm the mean
/// and spread over seeds, and the searched − CNet1 difference of the means.
pub fn paired_markdown(runs: &[PairedRun]) -> String {
    let mut sorted: Vec<&PairedRun> = runs.iter().collect();
    sorted.sort_by(|a, b| (a.relus, &a.arm, a.seed).cmp(&(b.relus, &b.arm, b.seed)));
    let pct = |v: Option<f64>| v.map_or("–".into(), |a| format!("{:.2} %", 100.0 * a));
    let mut s = String::from(
        "| ReLUs | arm | seed | fixed point | on images | float (whole test set) | epochs | train s | arc |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &sorted {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | `{}` |",
            r.relus,
            r.arm,
            r.seed,
            pct(r.fixed_acc),
            r.fixed_images.map_or("–".into(), |n| n.to_string()),
            pct(r.float_acc),
            r.epochs.map_or("–".into(), |e| format!("{e:.1}")),
            r.seconds.map_or("–".into(), |e| format!("{e:.0}")),
            r.arc
        );
    }
    s += "\n| ReLUs | arm | seeds | fixed point mean ± sd | float mean ± sd |\n|---:|---|---:|---:|---:|\n";
    let mut budgets: Vec<u64> = runs.iter().map(|r| r.relus).collect();
    budgets.sort_unstable();
    budgets.dedup();
    let stat = |v: Vec<f64>| {
        mean_sd(&v).map_or("–".into(), |(m, sd)| {
            format!("{:.2} ± {:.2} %", 100.0 * m, 100.0 * sd)
        })
    };
    let mut diffs = String::new();
    for b in budgets {
        let mut means = Vec::new();
        for arm in ["searched", "cnet1"] {
            let rs: Vec<&PairedRun> = runs
                .iter()
                .filter(|r| r.relus == b && r.arm == arm)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let fixed: Vec<f64> = rs.iter().filter_map(|r| r.fixed_acc).collect();
            let float: Vec<f64> = rs.iter().filter_map(|r| r.float_acc).collect();
            means.push(mean_sd(&fixed).map(|m| m.0));
            let _ = writeln!(
                s,
                "| {b} | {arm} | {} | {} | {} |",
                rs.len(),
                stat(fixed),
                stat(float)
            );
        }
        if let [Some(a), Some(c)] = means[..] {
            let _ = writeln!(
                diffs,
                "- {b} ReLUs: searched − CNet1 = {:+.2} points (fixed point, mean over seeds)",
                100.0 * (a - c)
            );
        }
    }
    if !diffs.is_empty() {
        s += "\n";
        s += &diffs;
    }
    s
}

/// SVG plot of the paired comparison: per budget, each run's fixed-point accuracy (the float
/// one where no fixed-point check ran) for the searched network and CNet1 side by side, with
/// the mean of the seeds as a bar.
pub fn paired_svg(runs: &[PairedRun]) -> Result<String, SearchError> {
    let mut budgets: Vec<u64> = runs.iter().map(|r| r.relus).collect();
    budgets.sort_unstable();
    budgets.dedup();
    let acc = |r: &PairedRun| 100.0 * r.fixed_acc.or(r.float_acc).unwrap_or(f64::NAN);
    let vals: Vec<f64> = runs.iter().map(acc).filter(|v| v.is_finite()).collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if vals.is_empty() {
        (0.0, 100.0)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let arms = ["searched", "cnet1"];
    let x_of = |b: u64, arm: &str| {
        let i = budgets.iter().position(|&x| x == b).unwrap_or(0);
        let j = arms.iter().position(|&a| a == arm).unwrap_or(0);
        (3 * i + j + 1) as f64
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Searched vs CNet1 at equal budgets (dots: seeds, bars: mean)",
                ("sans-serif", 18),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..(3 * budgets.len()) as f64, lo..hi)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("test accuracy % (fixed point, whole test set)")
            .draw()
            .map_err(|e| plot_err(&e))?;
        let colour = |arm: &str| if arm == "cnet1" { RED } else { BLUE };
        chart
            .draw_series(
                runs.iter().filter(|r| acc(r).is_finite()).map(|r| {
                    Circle::new((x_of(r.relus, &r.arm), acc(r)), 5, colour(&r.arm).filled())
                }),
            )
            .map_err(|e| plot_err(&e))?;
        for &b in &budgets {
            for arm in arms {
                let v: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.relus == b && r.arm == arm)
                    .map(acc)
                    .filter(|v| v.is_finite())
                    .collect();
                let x = x_of(b, arm);
                if let Some((m, _)) = mean_sd(&v) {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x - 0.3, m), (x + 0.3, m)],
                            colour(arm).stroke_width(2),
                        )))
                        .map_err(|e| plot_err(&e))?;
                }
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{arm} @ {b}"),
                        (x - 0.45, lo + 0.02 * (hi - lo)),
                        ("sans-serif", 12),
                    )))
                    .map_err(|e| plot_err(&e))?;
            }
        }
        root.present().map_err(|e| plot_err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(v: &[(&str, f64)]) -> Vec<Scored> {
        v.iter()
            .map(|&(a, s)| Scored {
                arc: a.into(),
                val_acc: s,
            })
            .collect()
    }

    #[test]
    fn tau_b_known_values() {
        // Perfect agreement and perfect reversal.
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(kendall_tau_b(&x, &[10.0, 20.0, 30.0, 40.0]), Some(1.0));
        assert_eq!(kendall_tau_b(&x, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        // One discordant pair of six: (5 − 1)/6.
        let t = kendall_tau_b(&x, &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((t - 4.0 / 6.0).abs() < 1e-12);
        // Ties (scipy.stats.kendalltau([1,2,2,3],[1,2,3,3]) = 0.8): C = 4, D = 0, one tie in
        // each variable: 4 / √(5·5).
        let t = kendall_tau_b(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 3.0]).unwrap();
        assert!((t - 0.8).abs() < 1e-12, "{t}");
        assert_eq!(kendall_tau_b(&x, &[1.0; 4]), None, "constant variable");
        assert_eq!(kendall_tau_b(&[1.0], &[1.0]), None);
    }

    #[test]
    fn tau_ci_brackets_tau_and_is_deterministic() {
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let y: Vec<f64> = [0., 2., 1., 3., 5., 4., 7., 6., 8., 11., 9., 10.].to_vec();
        let a = tau_with_ci(&x, &y, 2000, 0.95, 1).unwrap();
        let b = tau_with_ci(&x, &y, 2000, 0.95, 1).unwrap();
        assert_eq!(a, b, "same seed, same interval");
        assert!(a.ci.0 <= a.tau && a.tau <= a.ci.1, "{a:?}");
        assert!(a.ci.0 > 0.3 && a.ci.1 <= 1.0, "{a:?}");
        assert!(a.p_value < 0.001, "{a:?}");
        // Independent-looking data: the interval contains 0 and p is large.
        let z: Vec<f64> = [5., 1., 9., 3., 11., 0., 7., 2., 10., 4., 8., 6.].to_vec();
        let c = tau_with_ci(&x, &z, 2000, 0.95, 1).unwrap();
        assert!(c.ci.0 < 0.0 && c.ci.1 > 0.0, "{c:?}");
        assert!(c.p_value > 0.2, "{c:?}");
        assert!(tau_with_ci(&x[..2], &y[..2], 10, 0.95, 1).is_err());
        assert!(tau_with_ci(&x, &[1.0; 12], 10, 0.95, 1).is_err());
    }

    #[test]
    fn normal_cdf_matches_tables() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn spread_takes_the_extremes_and_evenly_spaced_scores() {
        let log = scored(&[
            ("a", 0.30),
            ("b", 0.50),
            ("c", 0.31),
            ("b", 0.50), // scored twice: counts once
            ("d", 0.40),
            ("e", 0.45),
            ("f", 0.39),
        ]);
        let p = pick_spread(&log, 3);
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.label.as_str(), p.arc.as_str()))
            .collect();
        assert_eq!(got, [("worst", "a"), ("spread-1", "d"), ("best", "b")]);
        // More than there are: every distinct candidate once.
        let all = pick_spread(&log, 50);
        assert_eq!(all.len(), 6);
        let mut arcs: Vec<&str> = all.iter().map(|p| p.arc.as_str()).collect();
        arcs.sort_unstable();
        assert_eq!(arcs, ["a", "b", "c", "d", "e", "f"]);
        assert!(pick_spread(&[], 5).is_empty());
    }

    #[test]
    fn random_picks_are_distinct_valid_and_seeded() {
        let ops = [Op::Conv3, Op::Conv5];
        let excl = vec![cryptonas_arch::CNET1_ARC.to_string()];
        let a = pick_random(5, 6, &ops, 4, &excl).unwrap();
        assert_eq!(a, pick_random(5, 6, &ops, 4, &excl).unwrap());
        assert_ne!(a, pick_random(6, 6, &ops, 4, &excl).unwrap());
        for (k, p) in a.iter().enumerate() {
            assert_eq!(p.label, format!("random-{}", k + 1));
            let arch = Arch::from_arc(&p.arc).unwrap();
            assert_eq!(arch.depth(), 6);
            assert!(arch.layers.iter().all(|l| ops.contains(&l.op)));
            assert!(!excl.contains(&p.arc));
        }
        // Depth 3 with one op has 2^(0+1+2) = 8 architectures: asking for 9 fails cleanly.
        assert!(pick_random(1, 3, &[Op::Conv3], 9, &[]).is_err());
    }

    #[test]
    fn reports_render() {
        let rows: Vec<TauRow> = (0..5)
            .map(|i| TauRow {
                label: if i == 0 {
                    "cnet1".into()
                } else {
                    format!("spread-{i}")
                },
                arc: "0 0 0 0 0 0".into(),
                score: 0.3 + 0.01 * f64::from(i),
                val_acc: 0.5 + 0.02 * f64::from(i % 3),
                test_acc: Some(0.5),
                epochs: Some(4.0),
            })
            .collect();
        let x: Vec<f64> = rows.iter().map(|r| r.score).collect();
        let y: Vec<f64> = rows.iter().map(|r| r.val_acc).collect();
        let est = tau_with_ci(&x, &y, 200, 0.95, 1).unwrap();
        let md = tau_markdown(&rows, &est, "τ at 24,576 ReLUs");
        assert!(md.contains("| cnet1 |") && md.contains("Kendall"));
        let svg = tau_svg(&rows, &est, "τ").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("cnet1"));
        let runs = vec![
            PairedRun {
                relus: 24576,
                arm: "searched".into(),
                seed: 1,
                fixed_images: Some(10_000),
                fixed_acc: Some(0.80),
                float_acc: Some(0.81),
                epochs: Some(10.0),
                seconds: Some(100.0),
                arc: "x".into(),
            },
            PairedRun {
                relus: 24576,
                arm: "searched".into(),
                seed: 2,
                fixed_images: Some(10_000),
                fixed_acc: Some(0.82),
                float_acc: Some(0.83),
                epochs: Some(10.0),
                seconds: Some(100.0),
                arc: "x".into(),
            },
            PairedRun {
                relus: 24576,
                arm: "cnet1".into(),
                seed: 1,
                fixed_images: Some(10_000),
                fixed_acc: Some(0.79),
                float_acc: Some(0.80),
                epochs: Some(10.0),
                seconds: Some(100.0),
                arc: "y".into(),
            },
        ];
        let svg = paired_svg(&runs).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("cnet1 @ 24576"));
        assert!(paired_svg(&[]).unwrap().starts_with("<svg"));
        let md = paired_markdown(&runs);
        assert!(md.contains("81.00 ± 1.41 %"), "{md}");
        assert!(md.contains("searched − CNet1 = +2.00 points"), "{md}");
    }

    #[test]
    fn mean_sd_values() {
        assert_eq!(mean_sd(&[]), None);
        assert_eq!(mean_sd(&[2.0]), Some((2.0, 0.0)));
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]).unwrap();
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
    }
}
