//! The results of a run: assembled, fitted, compared with DELPHI, and written as JSON, Markdown
//! and SVG plots.

use crate::browser::{BrowserRun, BrowserSetup, MEMORY_METHOD};
use crate::fit::{fit_line, Fit};
use crate::gates::GateRates;
use crate::machine::Machine;
use crate::models::{ModelInfo, ModelKind, Skipped};
use crate::run::{ComputeProfile, Run};
use crate::Settings;
use anyhow::Context;
use serde::Serialize;
use std::fmt::Write as _;

/// DELPHI's published per-ReLU figures (DESIGN.md §4): offline KB per ReLU.
pub const DELPHI_OFFLINE_KB_PER_RELU: f64 = 18.5;
/// DELPHI online KB per ReLU.
pub const DELPHI_ONLINE_KB_PER_RELU: f64 = 1.18;
/// DELPHI online µs per ReLU (end to end, 32 threads).
pub const DELPHI_ONLINE_US_PER_RELU: f64 = 22.0;

/// The reference figures, as recorded in the results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delphi {
    /// Offline KB (10³ B) per ReLU.
    pub offline_kb_per_relu: f64,
    /// Online KB per ReLU.
    pub online_kb_per_relu: f64,
    /// Online µs per ReLU.
    pub online_us_per_relu: f64,
    /// Where the figures come from.
    pub source: &'static str,
}

/// One scaling fit: a cost against the ReLU count over the generated models.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitRow {
    /// What was fitted ("online time", "offline bytes", ...).
    pub quantity: String,
    /// Network profile (none for bytes and in-process compute, which do not depend on it).
    pub network: Option<String>,
    /// Slope in `slope_unit`.
    pub slope: f64,
    /// "µs/ReLU" or "B/ReLU".
    pub slope_unit: &'static str,
    /// Intercept in `intercept_unit`.
    pub intercept: f64,
    /// "s" or "B".
    pub intercept_unit: &'static str,
    /// Coefficient of determination.
    pub r2: f64,
    /// The ReLU counts fitted.
    pub relus: Vec<usize>,
}

/// One run against DELPHI: ratios are DELPHI's cost divided by ours (> 1: we are cheaper).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Model, or "fit slope" for the marginal cost from the scaling fit.
    pub model: String,
    /// Network profile.
    pub network: String,
    /// ReLUs (0 for the fit).
    pub relus: usize,
    /// Our offline KB per ReLU.
    pub offline_kb_per_relu: f64,
    /// DELPHI / ours.
    pub offline_bytes_ratio: f64,
    /// Our online KB per ReLU.
    pub online_kb_per_relu: f64,
    /// DELPHI / ours.
    pub online_bytes_ratio: f64,
    /// Our online µs per ReLU.
    pub online_us_per_relu: f64,
    /// DELPHI / ours.
    pub online_time_ratio: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// How it was run.
    pub settings: Settings,
    /// On what.
    pub machine: Machine,
    /// When it started.
    pub started: String,
    /// Wall-clock seconds of the whole run.
    pub wall_s: f64,
    /// The models.
    pub models: Vec<ModelInfo>,
    /// Models that failed to load.
    pub skipped: Vec<Skipped>,
    /// Per model and network profile.
    pub runs: Vec<Run>,
    /// In-process compute per handler, one inference per model.
    pub compute: Vec<ComputeProfile>,
    /// Garbling / evaluation rates of the ReLU circuit.
    pub gates: GateRates,
    /// Scaling fits over the generated models.
    pub fits: Vec<FitRow>,
    /// Why a fit is missing (e.g. fewer than two budgets).
    pub fit_notes: Vec<String>,
    /// Against DELPHI.
    pub delphi: Delphi,
    /// Ratios per run and for the fitted slopes.
    pub comparison: Vec<Comparison>,
    /// The real page in headless Chromium, per model (`--browser`).
    pub browser: Vec<BrowserRun>,
    /// What the browser mode ran with.
    pub browser_setup: Option<BrowserSetup>,
    /// How the tab's memory was measured (browser mode).
    pub browser_memory_method: Option<&'static str>,
}

fn ratio(delphi: f64, ours: f64) -> f64 {
    if ours > 0.0 {
        delphi / ours
    } else {
        f64::INFINITY
    }
}

impl Results {
    /// Builds the fits and comparisons from the measurements.
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        settings: Settings,
        machine: Machine,
        started: String,
        wall_s: f64,
        models: Vec<ModelInfo>,
        skipped: Vec<Skipped>,
        runs: Vec<Run>,
        compute: Vec<ComputeProfile>,
        gates: GateRates,
    ) -> Results {
        let generated = |name: &str| {
            models
                .iter()
                .any(|m| m.name == name && m.kind != ModelKind::Trained)
        };
        let mut fits = Vec::new();
        let mut notes = Vec::new();
        let mut add =
            |quantity: &str, network: Option<&str>, points: &[(usize, f64)], time: bool| {
                let xs: Vec<f64> = points.iter().map(|p| p.0 as f64).collect();
                let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
                match fit_line(&xs, &ys) {
                    Ok(Fit {
                        slope,
                        intercept,
                        r2,
                        ..
                    }) => fits.push(FitRow {
                        quantity: quantity.into(),
                        network: network.map(String::from),
                        slope: if time { slope * 1e6 } else { slope },
                        slope_unit: if time { "µs/ReLU" } else { "B/ReLU" },
                        intercept,
                        intercept_unit: if time { "s" } else { "B" },
                        r2,
                        relus: points.iter().map(|p| p.0).collect(),
                    }),
                    Err(e) => notes.push(format!(
                        "{quantity}{}: no fit ({e})",
                        network.map(|n| format!(" over {n}")).unwrap_or_default()
                    )),
                }
            };
        for net in &settings.networks {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| r.network.name == net.name && generated(&r.model))
                .collect();
            let pts = |f: &dyn Fn(&Run) -> f64| -> Vec<(usize, f64)> {
                rs.iter().map(|r| (r.relus, f(r))).collect()
            };
            add(
                "offline time",
                Some(&net.name),
                &pts(&|r| r.offline_s),
                true,
            );
            add("online time", Some(&net.name), &pts(&|r| r.online_s), true);
        }
        if let Some(first) = settings.networks.first() {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| r.network.name == first.name && generated(&r.model))
                .collect();
            let pts = |f: &dyn Fn(&Run) -> f64| -> Vec<(usize, f64)> {
                rs.iter().map(|r| (r.relus, f(r))).collect()
            };
            add(
                "offline bytes",
                None,
                &pts(&|r| r.offline_up + r.offline_down),
                false,
            );
            add(
                "online bytes",
                None,
                &pts(&|r| r.online_up + r.online_down),
                false,
            );
        }
        let cs: Vec<&ComputeProfile> = compute.iter().filter(|c| generated(&c.model)).collect();
        add(
            "offline compute (in-process)",
            None,
            &cs.iter()
                .map(|c| (c.relus, c.offline_s))
                .collect::<Vec<_>>(),
            true,
        );
        add(
            "online compute (in-process)",
            None,
            &cs.iter().map(|c| (c.relus, c.online_s)).collect::<Vec<_>>(),
            true,
        );

        let mut comparison: Vec<Comparison> = runs
            .iter()
            .map(|r| Comparison {
                model: r.model.clone(),
                network: r.network.name.clone(),
                relus: r.relus,
                offline_kb_per_relu: r.offline_kb_per_relu,
                offline_bytes_ratio: ratio(DELPHI_OFFLINE_KB_PER_RELU, r.offline_kb_per_relu),
                online_kb_per_relu: r.online_kb_per_relu,
                online_bytes_ratio: ratio(DELPHI_ONLINE_KB_PER_RELU, r.online_kb_per_relu),
                online_us_per_relu: r.online_us_per_relu,
                online_time_ratio: ratio(DELPHI_ONLINE_US_PER_RELU, r.online_us_per_relu),
            })
            .collect();
        let slope = |q: &str, net: Option<&str>| {
            fits.iter()
                .find(|f| f.quantity == q && f.network.as_deref() == net)
                .map(|f| f.slope)
        };
        if let (Some(off_b), Some(on_b)) =
            (slope("offline bytes", None), slope("online bytes", None))
        {
            for net in &settings.networks {
                if let Some(on_t) = slope("online time", Some(&net.name)) {
                    comparison.push(Comparison {
                        model: "fit slope (marginal)".into(),
                        network: net.name.clone(),
                        relus: 0,
                        offline_kb_per_relu: off_b / 1000.0,
                        offline_bytes_ratio: ratio(DELPHI_OFFLINE_KB_PER_RELU, off_b / 1000.0),
                        online_kb_per_relu: on_b / 1000.0,
                        online_bytes_ratio: ratio(DELPHI_ONLINE_KB_PER_RELU, on_b / 1000.0),
                        online_us_per_relu: on_t,
                        online_time_ratio: ratio(DELPHI_ONLINE_US_PER_RELU, on_t),
                    });
                }
            }
        }
        Results {
            settings,
            machine,
            started,
            wall_s,
            models,
            skipped,
            runs,
            compute,
            gates,
            fits,
            fit_notes: notes,
            delphi: Delphi {
                offline_kb_per_relu: DELPHI_OFFLINE_KB_PER_RELU,
                online_kb_per_relu: DELPHI_ONLINE_KB_PER_RELU,
                online_us_per_relu: DELPHI_ONLINE_US_PER_RELU,
                source: "DELPHI (Mishra et al., USENIX Security 2020), 41-bit field, ReLU circuit of 288 AND; online time end to end at 32 threads",
            },
            comparison,
            browser: Vec::new(),
            browser_setup: None,
            browser_memory_method: None,
        }
    }

    /// Adds the browser runs.
    pub fn with_browser(mut self, runs: Vec<BrowserRun>, setup: Option<BrowserSetup>) -> Results {
        self.browser_memory_method = setup.as_ref().map(|_| MEMORY_METHOD);
        self.browser = runs;
        self.browser_setup = setup;
        self
    }

    /// The native run of `model` on `network`, a browser run's counterpart (same machine, same
    /// network profile: simulated by the native client, emulated by Chromium).
    fn native_on(&self, model: &str, network: &str) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.model == model && r.network.name == network)
    }

    /// Native vs browser: latency, bytes, rounds, per-layer cost, AND/s per worker, tab memory.
    fn browser_section(&self, s: &mut String) {
        if self.browser.is_empty() {
            return;
        }
        let mut browser: Vec<&BrowserRun> = self.browser.iter().collect();
        browser.sort_by_key(|b| b.relus);
        let _ = writeln!(
            s,
            "## Browser (headless Chromium) vs native
"
        );
        if let Some(b) = self.browser.first() {
            let _ = writeln!(
                s,
                "The real demo page (`www/`, its Web Worker running the wasm client, build `{}`) in {} with {} hardware threads, \
                 driven by `bench/browser/drive.mjs` over CDP (one page session; no DevTools session in the workers except, for emulated networks, the session worker's) against the same in-process server over \
                 127.0.0.1; the browser's network is Chromium's own emulation (CDP `Network.emulateNetworkConditions`: \
                 latency and throughput, the WebSocket included), the native client's the same profile simulated in process. The page classified bundled \
                 CIFAR-10 samples (clicked in the page); **every browser inference's class and ring logits were checked \
                 bit-exact against the plaintext fixed-point engine on the same JPEG bytes.** The page prepares each \
                 session before the click (on model selection, then after each answer) and the driver clicks once it \
                 is ready: offline = the prepared session's offline phase, online = masked image sent → logits, \
                 click → answer = the page's `classify()` call. Memory: {MEMORY_METHOD}.\n",
                b.wasm_build.as_deref().unwrap_or("?"),
                b.browser,
                b.hardware_concurrency
            );
        }
        let _ = writeln!(
            s,
            "| model | ReLUs | network | offline s native / browser | online s native / browser | click → answer s browser | online browser ÷ native | MB ↑ native / browser | MB ↓ native / browser | rounds | online µs/ReLU browser | eval workers | wasm M AND/s online: all workers (per worker) | peak tab memory MB (renderer RSS / private; wasm: session + eval workers; JS heap) |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for b in &browser {
            let r = &b.run;
            let n = self.native_on(&b.model, &b.run.network.name);
            let pair = |f: &dyn Fn(&Run) -> f64, prec: usize| {
                format!(
                    "{} / {:.prec$}",
                    n.map_or("–".into(), |n| format!("{:.prec$}", f(n))),
                    f(r)
                )
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {:.2} ({}) | {} / {} ; {} + {} ; {} |",
                b.model,
                b.relus,
                b.run.network.name,
                pair(&|x| x.offline_s, 2),
                pair(&|x| x.online_s, 3),
                b.click_to_answer_s
                    .map_or("–".into(), |v| format!("{v:.3}")),
                n.map_or("–".into(), |n| format!("{:.1}×", r.online_s / n.online_s.max(1e-12))),
                pair(&|x| (x.offline_up + x.online_up) / 1e6, 1),
                pair(&|x| (x.offline_down + x.online_down) / 1e6, 1),
                r.online_rounds,
                r.online_us_per_relu,
                b.eval_workers,
                b.online_and_per_s / 1e6,
                b.online_and_per_s_per_worker
                    .map_or("–".into(), |v| format!("{:.2}", v / 1e6)),
                mb(b.memory.renderer_peak_rss_bytes),
                mb(b.memory.renderer_peak_private_bytes),
                mb(b.memory.wasm_memory_bytes),
                mb(b.memory.eval_workers_wasm_bytes),
                b.memory
                    .js_heap_used_peak_bytes
                    .map_or("–".into(), |v| format!("{:.1}", v / 1e6)),
            );
        }

        let _ = writeln!(
            s,
            "\n### Garbled evaluation in wasm, AND gates/s per worker (GcBench, {} ReLUs per evaluation to the shares, the arithmetic output's hashes included: W fresh workers at once; the page's benchmark button: {})\n",
            browser.first().map_or(0, |b| b.bench_relus),
            browser
                .iter()
                .map(|b| {
                    let mut v = format!("{:.2} M AND/s", b.page_worker_and_per_s / 1e6);
                    if let Some(r) = b.page_worker_relus_per_s {
                        v += &format!(", {:.1} K ReLU/s", r / 1e3);
                    }
                    if let Some(g) = b.page_worker_gate_and_per_s {
                        v += &format!(", the gates alone {:.2} M AND/s", g / 1e6);
                    }
                    v
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "| in the browser of | W | M AND/s per worker (mean) | each worker | M AND/s all workers (sum) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---:|");
        for b in &browser {
            for w in &b.workers {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} | {} | {:.2} |",
                    b.model,
                    w.workers,
                    w.and_per_s_per_worker / 1e6,
                    w.per_worker
                        .iter()
                        .map(|v| format!("{:.2}", v / 1e6))
                        .collect::<Vec<_>>()
                        .join(", "),
                    w.and_per_s_total / 1e6
                );
            }
        }
        let _ = writeln!(
            s,
            "\nNative garbled evaluation on this machine: see the garbling rates below (AES-NI, one thread).\n"
        );

        let _ = writeln!(s, "### Per ReLU layer (means)\n");
        let _ = writeln!(
            s,
            "| model | layer | ReLUs | AND gates | garbled tables MB | online labels MB | online ms native | online ms browser | browser labels → reply ms | browser M AND/s (all workers) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for b in &browser {
            let native = self.native_on(&b.model, &b.run.network.name);
            for (i, l) in b.layers.iter().enumerate() {
                let native_ms = native.and_then(|n| {
                    let v: Vec<f64> = n
                        .inferences
                        .iter()
                        .filter_map(|x| x.online_layers_s.get(i).copied())
                        .collect();
                    (!v.is_empty()).then(|| 1e3 * v.iter().sum::<f64>() / v.len() as f64)
                });
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {:.2} |",
                    b.model,
                    i + 1,
                    l.relus,
                    l.and_gates,
                    l.offline_down as f64 / 1e6,
                    l.online_down as f64 / 1e6,
                    native_ms.map_or("–".into(), |v| format!("{v:.1}")),
                    l.online_s * 1e3,
                    l.eval_s * 1e3,
                    l.eval_and_per_s / 1e6
                );
            }
        }
        let _ = writeln!(s);
    }

    /// Writes `results.json`, `results.md` and the plots into the output directory.
    pub fn write(&self) -> anyhow::Result<()> {
        let out = &self.settings.out;
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(out.join("results.json"), json)
            .with_context(|| format!("writing {}", out.join("results.json").display()))?;
        crate::plots::write_all(self, out)?;
        std::fs::write(out.join("results.md"), self.markdown())
            .with_context(|| format!("writing {}", out.join("results.md").display()))?;
        Ok(())
    }

    /// A few lines for the terminal: per generated model, the headline per-ReLU costs.
    pub fn headline(&self) -> String {
        let mut s = String::new();
        for r in &self.runs {
            let _ = writeln!(
                s,
                "{} ({} ReLUs, {}): offline {:.2} s, {:.2} KB/ReLU ({:.1}× less than DELPHI); online {:.3} s, {:.3} KB/ReLU ({:.1}×), {:.2} µs/ReLU ({:.1}×)",
                r.model,
                r.relus,
                r.network.name,
                r.offline_s,
                r.offline_kb_per_relu,
                ratio(DELPHI_OFFLINE_KB_PER_RELU, r.offline_kb_per_relu),
                r.online_s,
                r.online_kb_per_relu,
                ratio(DELPHI_ONLINE_KB_PER_RELU, r.online_kb_per_relu),
                r.online_us_per_relu,
                ratio(DELPHI_ONLINE_US_PER_RELU, r.online_us_per_relu),
            );
        }
        for b in &self.browser {
            let _ = writeln!(
                s,
                "{} ({} ReLUs, browser, {}): offline {:.2} s ({}), online {:.3} s, click → answer {}, {} eval workers at {} M AND/s each (wasm GcBench {:.2} M), peak tab memory {:.0} MB ({} MB private)",
                b.model,
                b.relus,
                b.run.network.name,
                b.run.offline_s,
                b.offline_phases
                    .iter()
                    .map(|p| format!("{} {:.2} s", p.name, p.ms / 1e3))
                    .collect::<Vec<_>>()
                    .join(", "),
                b.run.online_s,
                b.click_to_answer_s
                    .map_or("–".into(), |v| format!("{v:.3} s")),
                b.eval_workers,
                b.online_and_per_s_per_worker
                    .map_or("–".into(), |v| format!("{:.2}", v / 1e6)),
                b.page_worker_and_per_s / 1e6,
                b.memory.renderer_peak_rss_bytes.unwrap_or(0.0) / 1e6,
                mb(b.memory.renderer_peak_private_bytes),
            );
        }
        s
    }

    /// One row per model: accuracy, ReLUs, latency per network, bytes and DELPHI ratios.
    fn headline_table(&self, s: &mut String) {
        let nets = &self.settings.networks;
        let _ = writeln!(s, "## Headline\n");
        let mut head = String::from("| model | accuracy | ReLUs |");
        let mut rule = String::from("|---|---:|---:|");
        for n in nets {
            let _ = write!(head, " offline s ({0}) | online s ({0}) |", n.name);
            rule.push_str("---:|---:|");
        }
        head.push_str(" offline MB | online MB | offline KB/ReLU (DELPHI ÷ ours) | online KB/ReLU (DELPHI ÷ ours) |");
        rule.push_str("---:|---:|---:|---:|");
        let _ = writeln!(s, "{head}\n{rule}");
        for m in &self.models {
            let runs: Vec<&Run> = self.runs.iter().filter(|r| r.model == m.name).collect();
            let Some(first) = runs.first() else { continue };
            let mut row = format!(
                "| {} | {} | {} |",
                m.name,
                m.accuracy.map_or("– (random weights)".into(), |a| format!(
                    "{:.2} %",
                    100.0 * a
                )),
                m.relus
            );
            for n in nets {
                match runs.iter().find(|r| r.network.name == n.name) {
                    Some(r) => {
                        let _ = write!(row, " {:.2} | {:.3} |", r.offline_s, r.online_s);
                    }
                    None => row.push_str(" – | – |"),
                }
            }
            let _ = writeln!(
                s,
                "{row} {:.1} | {:.2} | {:.3} ({:.1}×) | {:.3} ({:.2}×) |",
                (first.offline_up + first.offline_down) / 1e6,
                (first.online_up + first.online_down) / 1e6,
                first.offline_kb_per_relu,
                ratio(DELPHI_OFFLINE_KB_PER_RELU, first.offline_kb_per_relu),
                first.online_kb_per_relu,
                ratio(DELPHI_ONLINE_KB_PER_RELU, first.online_kb_per_relu),
            );
        }
        let _ = writeln!(s);
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let st = &self.settings;
        let _ = writeln!(s, "# Private-inference benchmark\n");
        let _ = writeln!(
            s,
            "Started {}, {:.0} s wall clock. Command: `{}`.\n",
            self.started, self.wall_s, st.command
        );
        let _ = writeln!(
            s,
            "**Machine:** {} ({} logical CPUs, {} usable threads; CPU features {}; AES backend {} chosen at run time), {:.1} GiB RAM, Linux {}, {} build on {} (portable: no `target-cpu`). \
             Load average at start {:.2} / {:.2} / {:.2}, at end {:.2} / {:.2} / {:.2} (1/5/15 min; a shared machine slows every time below).\n",
            m.cpu,
            m.logical_cpus,
            m.available_parallelism,
            if m.cpu_features.is_empty() {
                "none of aes, vaes, avx2, avx512f".to_string()
            } else {
                m.cpu_features.join(", ")
            },
            m.aes_backend,
            m.memory_gib,
            m.kernel,
            m.profile,
            m.arch,
            m.load_at_start[0],
            m.load_at_start[1],
            m.load_at_start[2],
            m.load_at_end[0],
            m.load_at_end[1],
            m.load_at_end[2],
        );
        let _ = writeln!(
            s,
            "Each inference runs the native client against the real axum server, in-process on 127.0.0.1 over \
             WebSocket; network profiles are simulated by the client (size/bandwidth per frame, half the RTT once \
             per flight of frames in one direction, no overlap of transfer and compute). **Every inference's logits were checked bit-exact against the \
             plaintext fixed-point engine** (and its quantized input against the image). {} inference(s) per \
             model and profile; times are means. KB = 1000 B. Generated models are CNet1 (L = 6) with random \
             weights on 32×32 inputs (6144·C ReLUs), calibrated at k = 32; inputs are random normalised images \
             (the costs do not depend on the image).\n",
            st.inferences
        );

        self.headline_table(&mut s);
        self.browser_section(&mut s);

        let _ = writeln!(s, "## Models\n");
        let _ = writeln!(
            s,
            "| model | kind | C | input | ReLUs | k | ReLU layers | test accuracy (fixed point / float) | prepare s |"
        );
        let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---|---:|");
        for mi in &self.models {
            let pct = |a: Option<f64>| a.map_or("–".into(), |a| format!("{:.2} %", 100.0 * a));
            let _ = writeln!(
                s,
                "| {} | {:?} | {} | {}×{}×{} | {} | {} | {} | {} / {} | {:.2} |",
                mi.name,
                mi.kind,
                mi.channels.map_or("–".into(), |c| c.to_string()),
                mi.input[0],
                mi.input[1],
                mi.input[2],
                mi.relus,
                mi.k,
                mi.relu_layers,
                pct(mi.fixed_accuracy),
                pct(mi.float_accuracy),
                mi.prepare_s
            );
        }
        let _ = writeln!(
            s,
            "\nFixed point: the k-bit engine the protocol computes, on the whole test set \
             (`cryptonas-search check-fixed`; – where not measured). Float: the trainer's figure."
        );
        for k in &self.skipped {
            let _ = writeln!(s, "\nSkipped `{}`: {}", k.name, k.error);
        }

        let _ = writeln!(s, "\n## Latency and traffic per model and network\n");
        let _ = writeln!(
            s,
            "| model | ReLUs | network | offline s | online s | offline MB ↑ / ↓ | online MB ↑ / ↓ | rounds | offline KB/ReLU | online KB/ReLU | online µs/ReLU |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.runs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.3} | {:.2} / {:.2} | {:.3} / {:.3} | {} | {:.3} | {:.3} | {:.2} |",
                r.model,
                r.relus,
                r.network.name,
                r.offline_s,
                r.online_s,
                r.offline_up / 1e6,
                r.offline_down / 1e6,
                r.online_up / 1e6,
                r.online_down / 1e6,
                r.online_rounds,
                r.offline_kb_per_relu,
                r.online_kb_per_relu,
                r.online_us_per_relu
            );
        }

        let _ = writeln!(
            s,
            "\n## Offline traffic split (HE / OT / garbled circuits)\n"
        );
        let _ = writeln!(
            s,
            "| model | ReLUs | HE MB | OT MB | GC MB | other MB | HE B/ReLU | OT B/ReLU | GC B/ReLU |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let first = st
            .networks
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        for r in self.runs.iter().filter(|r| r.network.name == first) {
            let total = r.offline_up + r.offline_down;
            let rl = r.relus.max(1) as f64;
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} | {:.0} |",
                r.model,
                r.relus,
                r.he_bytes / 1e6,
                r.ot_bytes / 1e6,
                r.gc_bytes / 1e6,
                (total - r.he_bytes - r.ot_bytes - r.gc_bytes) / 1e6,
                r.he_bytes / rl,
                r.ot_bytes / rl,
                r.gc_bytes / rl
            );
        }

        let _ = writeln!(
            s,
            "\n## Where the compute goes (one in-process inference, no network)\n"
        );
        let _ = writeln!(s, "| model | side | message handled | work | phase | s |");
        let _ = writeln!(s, "|---|---|---|---|---|---:|");
        for c in &self.compute {
            for h in &c.handlers {
                let _ = writeln!(
                    s,
                    "| {} | {} | {}{} | {} | {} | {:.3} |",
                    c.model,
                    h.side,
                    h.message,
                    if h.calls > 1 {
                        format!(" ×{}", h.calls)
                    } else {
                        String::new()
                    },
                    h.work,
                    h.phase,
                    h.seconds
                );
            }
            let _ = writeln!(
                s,
                "| **{}** | both | | **total** | offline / online | **{:.3} / {:.3}** |",
                c.model, c.offline_s, c.online_s
            );
        }

        let g = &self.gates;
        let _ = writeln!(
            s,
            "\n## Garbling and evaluation rates (gc crate, ReLU circuit k = {}, t = {}: {} AND, {} B of tables and arithmetic-output words per ReLU; {} ReLUs per batch, best of {}; evaluation includes reading the shares from the output labels, every one checked)\n",
            g.k, g.t, g.and_per_relu, g.table_bytes_per_relu, g.relus, g.repetitions
        );
        let _ = writeln!(
            s,
            "| threads | garble M AND/s | evaluate M AND/s | garble µs/ReLU | evaluate µs/ReLU |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
        for r in &g.rates {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {:.3} | {:.3} |",
                r.threads,
                r.garble_and_per_s / 1e6,
                r.evaluate_and_per_s / 1e6,
                r.garble_us_per_relu,
                r.evaluate_us_per_relu
            );
        }

        let _ = writeln!(
            s,
            "\n## Scaling check: least-squares fit against the ReLU count (generated models)\n"
        );
        let _ = writeln!(
            s,
            "| quantity | network | slope | intercept | R² | ReLU counts |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---|");
        for f in &self.fits {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} {} | {:.3} {} | {:.4} | {} |",
                f.quantity,
                f.network.as_deref().unwrap_or("any"),
                f.slope,
                f.slope_unit,
                f.intercept,
                f.intercept_unit,
                f.r2,
                f.relus
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for n in &self.fit_notes {
            let _ = writeln!(s, "\n{n}");
        }
        if self.fits.iter().any(|f| f.relus.len() < 4) {
            let _ = writeln!(
                s,
                "\nFewer than 4 budgets: the fit is indicative only (run with `--sweep 2,4,8,14`)."
            );
        }

        let d = &self.delphi;
        let _ = writeln!(
            s,
            "\n## Against DELPHI's per-ReLU figures\n\nDELPHI: {} KB offline, {} KB online, {} µs online per ReLU ({}). \
             Ratios are DELPHI ÷ ours (> 1: cheaper than DELPHI). Per-model figures include the linear layers' HE \
             traffic and all fixed per-inference costs; the fit slope is the marginal cost of one more ReLU.\n",
            d.offline_kb_per_relu, d.online_kb_per_relu, d.online_us_per_relu, d.source
        );
        let _ = writeln!(
            s,
            "| model | network | ReLUs | offline KB/ReLU | ratio | online KB/ReLU | ratio | online µs/ReLU | ratio |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.comparison {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.1}× | {:.3} | {:.2}× | {:.2} | {:.2}× |",
                c.model,
                c.network,
                if c.relus == 0 {
                    "–".into()
                } else {
                    c.relus.to_string()
                },
                c.offline_kb_per_relu,
                c.offline_bytes_ratio,
                c.online_kb_per_relu,
                c.online_bytes_ratio,
                c.online_us_per_relu,
                c.online_time_ratio
            );
        }

        let _ = writeln!(s, "\n## Plots\n");
        let browser_plot = (!self.browser.is_empty()).then_some(crate::plots::BROWSER_FILE);
        for (file, what) in crate::plots::FILES.into_iter().chain(browser_plot) {
            let _ = writeln!(s, "- [{file}]({file}): {what}\n\n  ![{what}]({file})");
        }
        s
    }
}

/// Whole megabytes (10^6 B), or "–" when not measured.
pub(crate) fn mb(bytes: Option<f64>) -> String {
    bytes.map_or("–".into(), |v| format!("{:.0}", v / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::GateRates;
    use crate::run::{Inference, Network};

    fn inference(relus: usize, offline_s: f64, online_s: f64) -> Inference {
        Inference {
            offline_s,
            online_s,
            online_layers_s: vec![online_s],
            offline_up: 1000 * relus as u64,
            offline_down: 2000 * relus as u64 + 50_000,
            online_up: 18 * relus as u64,
            online_down: 512 * relus as u64,
            he_up: 300 * relus as u64,
            he_down: 700 * relus as u64,
            ot_up: 512 * relus as u64,
            ot_down: 0,
            gc_down: 1488 * relus as u64,
            online_rounds: 7,
            class: 3,
        }
    }

    fn model(name: &str, relus: usize, kind: ModelKind) -> ModelInfo {
        ModelInfo {
            name: name.into(),
            kind,
            channels: None,
            input: [3, 32, 32],
            relus,
            k: 32,
            stages: 7,
            relu_layers: 6,
            accuracy: None,
            fixed_accuracy: None,
            float_accuracy: None,
            macs: None,
            description: String::new(),
            prepare_s: 0.1,
        }
    }

    #[test]
    fn fits_and_delphi_ratios_follow_the_measurements() {
        let lan = Network::parse("lan").unwrap();
        let budgets = [12288usize, 24576, 49152, 86016];
        let mut models: Vec<ModelInfo> = budgets
            .iter()
            .map(|&r| model(&format!("m{r}"), r, ModelKind::Sweep))
            .collect();
        // A trained model far off the line must not enter the fit.
        models.push(model("trained", 50000, ModelKind::Trained));
        let runs: Vec<Run> = models
            .iter()
            .map(|m| {
                let bad = if m.kind == ModelKind::Trained {
                    10.0
                } else {
                    1.0
                };
                let i = |x: f64| inference(m.relus, bad * (0.5 + 40e-6 * m.relus as f64), x);
                Run::summarise(
                    &m.name,
                    m.relus,
                    lan.clone(),
                    vec![i(11e-6 * m.relus as f64), i(9e-6 * m.relus as f64)],
                )
            })
            .collect();
        let settings = Settings {
            sweep: vec![2, 4, 8, 14],
            inferences: 2,
            networks: vec![lan],
            short: false,
            models: None,
            out: std::env::temp_dir(),
            gate_relus: 1,
            seed: 1,
            command: "test".into(),
            browser: false,
            browser_only: false,
            www: std::env::temp_dir(),
            browser_workers: vec![1],
            browser_networks: vec![],
        };
        let gates = GateRates {
            k: 32,
            t: 8,
            and_per_relu: 85,
            table_bytes_per_relu: 2720,
            relus: 1,
            repetitions: 1,
            rates: vec![],
        };
        let r = Results::assemble(
            settings,
            Machine::describe(),
            "now".into(),
            1.0,
            models,
            vec![],
            runs,
            vec![],
            gates,
        );
        let get = |q: &str| r.fits.iter().find(|f| f.quantity == q).unwrap();
        let off = get("offline time");
        assert!((off.slope - 40.0).abs() < 1e-6, "{off:?}");
        assert!((off.intercept - 0.5).abs() < 1e-9 && off.r2 > 0.999_999);
        assert_eq!(off.relus, budgets);
        assert!((get("online time").slope - 10.0).abs() < 1e-6);
        assert!((get("offline bytes").slope - 3000.0).abs() < 1e-6);
        assert!((get("offline bytes").intercept - 50_000.0).abs() < 1e-3);
        assert!((get("online bytes").slope - 530.0).abs() < 1e-6);
        // No compute profiles: those fits are reported missing, not invented.
        assert_eq!(r.fit_notes.len(), 2, "{:?}", r.fit_notes);

        let c = r.comparison.iter().find(|c| c.model == "m86016").unwrap();
        let want_off = 3.0 + 50.0 / 86016.0;
        assert!((c.offline_kb_per_relu - want_off).abs() < 1e-9);
        assert!((c.offline_bytes_ratio - 18.5 / want_off).abs() < 1e-9);
        assert!((c.online_kb_per_relu - 0.53).abs() < 1e-12);
        assert!((c.online_us_per_relu - 10.0).abs() < 1e-9);
        assert!((c.online_time_ratio - 2.2).abs() < 1e-9);
        let marginal = r
            .comparison
            .iter()
            .find(|c| c.model.starts_with("fit slope"))
            .unwrap();
        assert!((marginal.offline_bytes_ratio - 18.5 / 3.0).abs() < 1e-9);

        let md = r.markdown();
        assert!(md.contains("| m86016 | 86016 | lan |"), "{md}");
        assert!(
            md.contains("| m86016 | – (random weights) | 86016 | "),
            "{md}"
        );
        assert!(
            md.contains("| offline bytes | any | 3000.000 B/ReLU"),
            "{md}"
        );
        assert!(r.headline().lines().count() == 5);
    }
}
