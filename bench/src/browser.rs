//! Browser mode: the real demo page (`www/`) in headless Chromium, driven by
//! `bench/browser/drive.mjs` over Chromium's DevTools protocol (`bench/browser/cdp.mjs`: one page
//! session and no worker attached on loopback, so the driver adds no per-frame cost; Node's
//! WebSocket, or the one bundled in npm `playwright-core` from `tests/node_modules`), measured like
//! the native client and checked bit-exact against the plaintext fixed-point engine.
//!
//! For each model the harness spawns the driver once (`node drive.mjs <config JSON>`); the driver
//! starts its own Chromium with a fresh profile, opens the page served by the in-process server,
//! clicks bundled CIFAR-10 samples and "Classify privately", and prints JSON lines (progress, one
//! line per inference, then garbled-evaluation rates and memory). The harness decodes the same
//! sample files exactly as the client does (`cryptonas_model::image::load_input`), runs the
//! plaintext fixed-point engine and rejects any class or ring-logit difference.

use crate::models::Prepared;
use crate::run::{Inference, Network, Run};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The bundled samples, in the page's order (`www/app.js` draws one button per name): one test
/// image per CIFAR-10 class, named after it.
pub const SAMPLES: [&str; 10] = cryptonas_model::zoo::CIFAR10_CLASSES;

/// How the tab's memory is measured (recorded with the results).
pub const MEMORY_METHOD: &str = "peak = VmHWM (peak resident set) of the Chromium renderer process that hosts the page and its \
     workers (the session worker and the evaluation workers) (one fresh browser per model, read from /proc before the garbling benchmark); it counts \
     the pages of Chromium's binary and data files that all its processes map and share (about 120 MB here); private = the largest sample, every \
     50 ms, of that process's RssAnon + RssShmem (its own heaps, wasm memories and buffers, without those shared file pages); also recorded: the \
     wasm linear memory of the session worker and of all evaluation workers (never shrinks, so its last size is its peak), the main thread's JSHeapUsedSize \
     (CDP Performance.getMetrics, sampled every 250 ms) and performance.measureUserAgentSpecificMemory() after the runs";

/// Why the browser mode cannot run or failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// `node` does not run.
    #[error("node ('{node}') cannot run ({reason}): install Node.js with scripts/setup.sh")]
    NodeMissing {
        /// The command tried.
        node: String,
        /// What happened.
        reason: String,
    },
    /// No Chromium binary.
    #[error("Chromium is missing at {}: install Debian's chromium with scripts/setup.sh (or pass --chromium PATH)", path.display())]
    ChromiumMissing {
        /// The path tried.
        path: PathBuf,
    },
    /// npm `playwright-core` is not installed.
    #[error("npm playwright-core is missing in {}: run scripts/setup.sh (it runs `npm ci` in tests/)", dir.display())]
    PlaywrightMissing {
        /// The `node_modules` directory tried.
        dir: PathBuf,
    },
    /// The wasm client is not built.
    #[error("the browser client is not built ({} is missing): run scripts/build-wasm.sh", path.display())]
    WasmMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// The page, its samples or the driver script are missing.
    #[error("{what} is missing at {}", path.display())]
    FileMissing {
        /// What it is.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The driver failed or reported an error.
    #[error("browser run of {model} failed: {message}")]
    Driver {
        /// Model.
        model: String,
        /// The driver's message (and the end of its stderr).
        message: String,
    },
    /// A browser inference differs from the plaintext fixed-point engine.
    #[error("browser inference {index} of {model} (sample {sample}): {message}")]
    Mismatch {
        /// Model.
        model: String,
        /// Inference index.
        index: usize,
        /// Sample name.
        sample: String,
        /// What differs.
        message: String,
    },
}

/// What the browser mode needs, checked before anything runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BrowserSetup {
    /// The `node` command.
    pub node: String,
    /// Chromium binary.
    pub chromium: PathBuf,
    /// `drive.mjs`.
    pub script: PathBuf,
    /// The page directory the server serves.
    pub www: PathBuf,
    /// `node_modules` holding `playwright-core`.
    pub node_modules: PathBuf,
    /// `node --version`.
    pub node_version: String,
}

fn exists(what: &'static str, path: &Path) -> Result<(), BrowserError> {
    if path.exists() {
        Ok(())
    } else {
        Err(BrowserError::FileMissing {
            what,
            path: path.to_path_buf(),
        })
    }
}

impl BrowserSetup {
    /// Checks node, Chromium, playwright-core, the built wasm client and the samples; the first
    /// missing one is a clear error naming the command that installs it.
    pub fn check(
        node: &str,
        chromium: &Path,
        www: &Path,
        repo: &Path,
    ) -> Result<BrowserSetup, BrowserError> {
        let out = Command::new(node).arg("--version").output().map_err(|e| {
            BrowserError::NodeMissing {
                node: node.into(),
                reason: e.to_string(),
            }
        })?;
        if !out.status.success() {
            return Err(BrowserError::NodeMissing {
                node: node.into(),
                reason: format!("exit status {}", out.status),
            });
        }
        let node_version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !chromium.is_file() {
            return Err(BrowserError::ChromiumMissing {
                path: chromium.to_path_buf(),
            });
        }
        let node_modules = std::env::var_os("CRYPTONAS_NODE_MODULES")
            .map_or_else(|| repo.join("tests/node_modules"), PathBuf::from);
        if !node_modules.join("playwright-core/package.json").exists() {
            return Err(BrowserError::PlaywrightMissing { dir: node_modules });
        }
        exists("the demo page", &www.join("index.html"))?;
        for f in ["wasm_client.js", "wasm_client_bg.wasm"] {
            let path = www.join("pkg").join(f);
            if !path.exists() {
                return Err(BrowserError::WasmMissing { path });
            }
        }
        for s in SAMPLES {
            exists("a bundled sample", &www.join(format!("samples/{s}.jpg")))?;
        }
        let script = repo.join("bench/browser/drive.mjs");
        exists("the browser driver", &script)?;
        Ok(BrowserSetup {
            node: node.into(),
            chromium: chromium.to_path_buf(),
            script,
            www: www.to_path_buf(),
            node_modules,
            node_version,
        })
    }
}

// ---------- the driver's JSON lines ----------

/// One line of the driver's output.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    /// Page loaded, model selected.
    Ready(ReadyLine),
    /// A progress message of the page's worker.
    Progress(ProgressLine),
    /// One finished inference.
    Inference(Box<InferenceLine>),
    /// Garbling rates and memory; the driver is done.
    Done(DoneLine),
    /// The driver failed.
    Error {
        /// Why.
        message: String,
    },
}

/// Page loaded.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyLine {
    /// Chromium version.
    pub browser: String,
    /// `navigator.hardwareConcurrency`.
    pub hardware_concurrency: u32,
    /// `self.crossOriginIsolated`.
    pub cross_origin_isolated: bool,
}

/// Progress of inference `index`.
#[derive(Debug, Deserialize)]
pub struct ProgressLine {
    /// Inference index.
    pub index: usize,
    /// "offline" / "online" / "done".
    pub phase: String,
    /// Frame kind.
    pub event: String,
    /// Stage, if any.
    pub stage: Option<u32>,
    /// Fraction of the session's frames.
    pub fraction: f64,
}

/// The worker's outcome (`PrivateInference.outcome()`).
#[derive(Debug, Deserialize, Serialize, Clone)]
pub struct OutcomeJs {
    /// Arg-max class.
    pub class: usize,
    /// Real logits.
    pub logits: Vec<f64>,
    /// Ring logits as decimal strings.
    pub logits_ring: Vec<String>,
}

/// One ReLU layer of the public plan.
#[derive(Debug, Deserialize, Clone)]
pub struct PlanLayerJs {
    /// Stage.
    pub stage: usize,
    /// ReLUs.
    pub relus: usize,
    /// AND gates garbled for it.
    pub and_gates: u64,
}

/// The public plan as the page sees it.
#[derive(Debug, Deserialize, Clone)]
pub struct PlanJs {
    /// Total ReLUs.
    pub relus: usize,
    /// ReLU layers.
    pub layers: Vec<PlanLayerJs>,
}

/// The worker's timing (ms, `performance.now()`).
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TimingJs {
    /// The prepared session's offline phase: socket opened to ready for the image.
    pub offline_ms: f64,
    /// Masked image sent to logits.
    pub online_ms: f64,
}

/// Milliseconds of one step of the offline phase in the page (`connect`, `plan`, `he`, `ot`,
/// `garbled`: each until its last frame was handled).
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
pub struct PhaseMs {
    /// Step.
    pub name: String,
    /// Milliseconds.
    pub ms: f64,
}

/// Milliseconds of one stage.
#[derive(Debug, Deserialize, Clone)]
pub struct StageMs {
    /// Stage.
    pub stage: usize,
    /// Milliseconds.
    pub ms: f64,
}

/// One finished browser inference.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct InferenceLine {
    /// Index.
    pub index: usize,
    /// Sample clicked.
    pub sample: String,
    /// Click to answer in the page (`PrivateClassifier.classify`, session prepared before).
    #[serde(default)]
    pub call_ms: Option<f64>,
    /// Outcome.
    pub outcome: OutcomeJs,
    /// Traffic.
    pub traffic: cryptonas_protocol::Traffic,
    /// Plan.
    pub plan: PlanJs,
    /// Timing.
    pub timing: TimingJs,
    /// Labels to reply per layer in the page (garbled evaluation + masking).
    pub layer_eval: Vec<StageMs>,
    /// The offline phase step by step.
    #[serde(default)]
    pub phases: Vec<PhaseMs>,
    /// Online wall time per layer (request sent to labels evaluated).
    pub layer_wall_ms: Vec<StageMs>,
    /// AND gates/s of the online evaluation (layer wall time, all workers together).
    pub and_per_sec_online: Option<f64>,
    /// Evaluation workers the page used (0: evaluated in the session worker).
    #[serde(default)]
    pub eval_workers: u32,
    /// AND gates/s of one evaluation worker over its own evaluation time.
    #[serde(default)]
    pub and_per_sec_per_worker: Option<f64>,
    /// Worker wasm memory after the run.
    pub wasm_memory_bytes: Option<f64>,
    /// Which wasm build the page loaded (`simd128` or `relaxed-simd`, `www/wasm.js`).
    #[serde(default)]
    pub wasm_build: Option<String>,
}

/// `GcBench` in one worker.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PageBenchJs {
    /// AND gates/s (over the time to the shares: the arithmetic output's hashes included).
    pub and_per_sec: f64,
    /// ReLUs/s, evaluated and decoded to shares.
    #[serde(default)]
    pub relus_per_sec: Option<f64>,
    /// AND gates/s of the garbled gates alone (no decoding to shares).
    #[serde(default)]
    pub gate_and_per_sec: Option<f64>,
    /// ReLUs per evaluation.
    pub relus: usize,
}

/// `GcBench` in W workers at once.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ParallelJs {
    /// Workers.
    pub workers: usize,
    /// AND gates/s of each.
    pub per_worker: Vec<f64>,
    /// Wall seconds until all finished.
    pub wall_s: f64,
    /// AND gates evaluated in all.
    pub and_gates: f64,
}

/// The driver's benchmarks.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BenchJs {
    /// The page's benchmark button (a fresh evaluation worker the session worker starts for it).
    pub page_worker: PageBenchJs,
    /// Fresh workers in parallel.
    pub parallel: Vec<ParallelJs>,
}

/// The driver's memory figures.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all(deserialize = "camelCase"))]
pub struct MemoryJs {
    /// Renderer VmHWM.
    pub renderer_peak_rss_bytes: Option<f64>,
    /// Renderer's private resident memory (RssAnon + RssShmem), largest sample (every 50 ms).
    #[serde(default)]
    pub renderer_peak_private_bytes: Option<f64>,
    /// Main-thread JS heap peak (CDP).
    pub js_heap_used_peak_bytes: Option<f64>,
    /// The session worker's wasm memory.
    pub wasm_memory_bytes: Option<f64>,
    /// All evaluation workers' wasm memory together.
    #[serde(default)]
    pub eval_workers_wasm_bytes: Option<f64>,
    /// `measureUserAgentSpecificMemory`.
    pub ua_specific_bytes: Option<f64>,
}

/// The last line.
#[derive(Debug, Deserialize)]
pub struct DoneLine {
    /// Benchmarks.
    pub bench: BenchJs,
    /// Memory.
    pub memory: MemoryJs,
}

// ---------- results ----------

/// One ReLU layer in the browser, averaged over the inferences.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BrowserLayer {
    /// Stage.
    pub stage: usize,
    /// ReLUs.
    pub relus: usize,
    /// AND gates.
    pub and_gates: u64,
    /// Garbled tables + decoding bits received offline (bytes).
    pub offline_down: u64,
    /// Labels received online (bytes).
    pub online_down: u64,
    /// Mean online wall seconds (request sent to labels evaluated, like the native client).
    pub online_s: f64,
    /// Mean seconds from the labels to the layer's reply in the page: garbled evaluation (in the
    /// evaluation workers, all together, when the page has them) and masking.
    pub eval_s: f64,
    /// AND gates per second of that evaluation.
    pub eval_and_per_s: f64,
}

/// Garbled evaluation in W workers at once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerRate {
    /// Workers evaluating at the same time.
    pub workers: usize,
    /// Mean AND gates/s per worker.
    pub and_per_s_per_worker: f64,
    /// Every worker's rate.
    pub per_worker: Vec<f64>,
    /// Sum of the workers' rates (they evaluate at the same time).
    pub and_per_s_total: f64,
}

/// The browser's figures for one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BrowserRun {
    /// Model.
    pub model: String,
    /// ReLUs.
    pub relus: usize,
    /// Chromium version.
    pub browser: String,
    /// `navigator.hardwareConcurrency`.
    pub hardware_concurrency: u32,
    /// Which wasm build the page loaded (`simd128` or `relaxed-simd`).
    pub wasm_build: Option<String>,
    /// Every inference and the means, like a native run (network: the page over loopback, no
    /// simulated delay). All checked bit-exact.
    pub run: Run,
    /// Samples classified, in order.
    pub samples: Vec<String>,
    /// Per ReLU layer.
    pub layers: Vec<BrowserLayer>,
    /// Mean AND gates/s of the online garbled evaluation (all evaluation workers together).
    pub online_and_per_s: f64,
    /// Evaluation workers the page ran (0: the session worker evaluated).
    pub eval_workers: u32,
    /// Mean seconds from the click to the answer in the page (the session prepared before).
    pub click_to_answer_s: Option<f64>,
    /// The offline phase step by step (means over the inferences).
    pub offline_phases: Vec<PhaseMs>,
    /// Mean online AND gates/s of one evaluation worker (over its own evaluation time).
    pub online_and_per_s_per_worker: Option<f64>,
    /// `GcBench` of the page's benchmark button (after the inferences).
    pub page_worker_and_per_s: f64,
    /// The same in ReLUs/s (to the shares).
    pub page_worker_relus_per_s: Option<f64>,
    /// Its AND gates/s over the garbled gates alone (no decoding to shares).
    #[serde(default)]
    pub page_worker_gate_and_per_s: Option<f64>,
    /// `GcBench` ReLUs per evaluation.
    pub bench_relus: usize,
    /// `GcBench` in 1..W fresh workers at once.
    pub workers: Vec<WorkerRate>,
    /// The tab's memory.
    pub memory: MemoryJs,
    /// Wall seconds of the driver (browser start included).
    pub wall_s: f64,
}

fn mismatch(p: &Prepared, line: &InferenceLine, message: String) -> BrowserError {
    BrowserError::Mismatch {
        model: p.info.name.clone(),
        index: line.index,
        sample: line.sample.clone(),
        message,
    }
}

/// Checks one browser inference of the image `bytes` (the sample file the page sent) against the
/// plaintext fixed-point engine: ring logits bit-exact, the same class, the plan's ReLUs and rounds.
pub fn verify(p: &Prepared, bytes: &[u8], line: &InferenceLine) -> Result<(), BrowserError> {
    let plan = p.model.plan();
    let fixed = p.model.fixed();
    let x = cryptonas_model::image::load_input(bytes, &plan.input).map_err(|e| {
        mismatch(
            p,
            line,
            format!("the harness cannot decode the sample: {e}"),
        )
    })?;
    let want = fixed
        .quantize_input(&x)
        .and_then(|q| fixed.forward(&q))
        .map_err(|e| mismatch(p, line, format!("plaintext engine: {e}")))?;
    let got: Vec<u64> = line
        .outcome
        .logits_ring
        .iter()
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| mismatch(p, line, format!("ring logits do not parse: {e}")))?;
    if got != want {
        return Err(mismatch(
            p,
            line,
            format!(
                "private logits {got:?} differ from the plaintext fixed-point engine's {want:?}"
            ),
        ));
    }
    // The protocol's arg-max: the first largest signed logit.
    let class = want
        .iter()
        .map(|&v| cryptonas_model::fixed::to_signed(v, plan.k))
        .enumerate()
        .fold(
            (0, i64::MIN),
            |best, (i, v)| if v > best.1 { (i, v) } else { best },
        )
        .0;
    if line.outcome.class != class {
        return Err(mismatch(
            p,
            line,
            format!(
                "page class {} differs from the plaintext class {class}",
                line.outcome.class
            ),
        ));
    }
    let relus: usize = line.plan.layers.iter().map(|l| l.relus).sum();
    if relus != p.info.relus || line.plan.relus != p.info.relus {
        return Err(mismatch(
            p,
            line,
            format!(
                "{relus} ReLUs in the page's plan, the model has {}",
                p.info.relus
            ),
        ));
    }
    if line.traffic.online_rounds as usize != p.info.stages {
        return Err(mismatch(
            p,
            line,
            format!(
                "{} online rounds for {} stages",
                line.traffic.online_rounds, p.info.stages
            ),
        ));
    }
    Ok(())
}

impl InferenceLine {
    /// The native harness's record of this inference.
    pub fn inference(&self) -> Inference {
        Inference::from_traffic(
            &self.traffic,
            self.timing.offline_ms / 1e3,
            self.timing.online_ms / 1e3,
            self.layer_wall_ms.iter().map(|l| l.ms / 1e3).collect(),
            self.outcome.class,
        )
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Assembles a model's browser results from the driver's lines (inferences already verified).
pub fn summarise(
    p: &Prepared,
    network: &Network,
    ready: &ReadyLine,
    lines: &[InferenceLine],
    done: &DoneLine,
    wall_s: f64,
) -> BrowserRun {
    let run = Run::summarise(
        &p.info.name,
        p.info.relus,
        network.clone(),
        lines.iter().map(InferenceLine::inference).collect(),
    );
    let layers = lines
        .first()
        .map(|first| {
            first
                .plan
                .layers
                .iter()
                .map(|l| {
                    let per = |f: &dyn Fn(&InferenceLine) -> Option<f64>| {
                        mean(&lines.iter().filter_map(f).collect::<Vec<_>>())
                    };
                    let stage_ms =
                        |v: &[StageMs]| v.iter().find(|x| x.stage == l.stage).map(|x| x.ms / 1e3);
                    let traffic = first.traffic.layers.iter().find(|t| t.stage == l.stage);
                    let eval_s = per(&|i| stage_ms(&i.layer_eval));
                    BrowserLayer {
                        stage: l.stage,
                        relus: l.relus,
                        and_gates: l.and_gates,
                        offline_down: traffic.map_or(0, |t| t.offline_down),
                        online_down: traffic.map_or(0, |t| t.online_down),
                        online_s: per(&|i| stage_ms(&i.layer_wall_ms)),
                        eval_s,
                        eval_and_per_s: if eval_s > 0.0 {
                            l.and_gates as f64 / eval_s
                        } else {
                            0.0
                        },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    BrowserRun {
        model: p.info.name.clone(),
        relus: p.info.relus,
        browser: format!("Chromium {} (headless)", ready.browser),
        hardware_concurrency: ready.hardware_concurrency,
        wasm_build: lines.first().and_then(|l| l.wasm_build.clone()),
        run,
        samples: lines.iter().map(|l| l.sample.clone()).collect(),
        layers,
        online_and_per_s: mean(
            &lines
                .iter()
                .filter_map(|l| l.and_per_sec_online)
                .collect::<Vec<_>>(),
        ),
        eval_workers: lines.first().map_or(0, |l| l.eval_workers),
        offline_phases: {
            let mut names: Vec<&str> = Vec::new();
            for l in lines {
                for p in &l.phases {
                    if !names.contains(&p.name.as_str()) {
                        names.push(&p.name);
                    }
                }
            }
            names
                .into_iter()
                .map(|name| PhaseMs {
                    name: name.to_string(),
                    ms: mean(
                        &lines
                            .iter()
                            .flat_map(|l| l.phases.iter().filter(|p| p.name == name))
                            .map(|p| p.ms)
                            .collect::<Vec<_>>(),
                    ),
                })
                .collect()
        },
        click_to_answer_s: {
            let v: Vec<f64> = lines.iter().filter_map(|l| l.call_ms).collect();
            (!v.is_empty()).then(|| mean(&v) / 1e3)
        },
        online_and_per_s_per_worker: {
            let v: Vec<f64> = lines
                .iter()
                .filter_map(|l| l.and_per_sec_per_worker)
                .collect();
            (!v.is_empty()).then(|| mean(&v))
        },
        page_worker_and_per_s: done.bench.page_worker.and_per_sec,
        page_worker_relus_per_s: done.bench.page_worker.relus_per_sec,
        page_worker_gate_and_per_s: done.bench.page_worker.gate_and_per_sec,
        bench_relus: done.bench.page_worker.relus,
        workers: done
            .bench
            .parallel
            .iter()
            .map(|w| WorkerRate {
                workers: w.workers,
                and_per_s_per_worker: mean(&w.per_worker),
                per_worker: w.per_worker.clone(),
                and_per_s_total: w.per_worker.iter().sum(),
            })
            .collect(),
        memory: done.memory.clone(),
        wall_s,
    }
}

/// The driver's configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DriverConfig<'a> {
    url: &'a str,
    /// Chromium's network emulation (`None`: none, loopback).
    network: Option<Emulation>,
    model: &'a str,
    samples: Vec<&'a str>,
    n: usize,
    chromium: &'a Path,
    workers: &'a [usize],
    bench_relus: usize,
    k: u32,
    timeout_ms: u64,
}

/// CDP `Network.emulateNetworkConditions`: latency added to each request and message, and the
/// throughput both ways.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Emulation {
    latency_ms: f64,
    /// Bytes per second (CDP's unit); -1 disables throttling.
    throughput: f64,
}

/// Runs `n` private inferences of `p` in the page at `url` (the server must serve `setup.www`)
/// under `network` (emulated by Chromium), verifying each as it arrives; `pb` shows progress and
/// advances once per inference.
pub fn run_model(
    setup: &BrowserSetup,
    url: &str,
    p: &Prepared,
    network: &Network,
    n: usize,
    workers: &[usize],
    pb: &ProgressBar,
) -> Result<BrowserRun, BrowserError> {
    let started = Instant::now();
    let driver_err = |message: String| BrowserError::Driver {
        model: p.info.name.clone(),
        message,
    };
    let samples: Vec<&str> = (0..n).map(|i| SAMPLES[i % SAMPLES.len()]).collect();
    let config = DriverConfig {
        url,
        network: (network.rtt_ms > 0.0 || network.mbit_per_s > 0.0).then(|| Emulation {
            latency_ms: network.rtt_ms,
            throughput: if network.mbit_per_s > 0.0 {
                network.mbit_per_s * 1e6 / 8.0
            } else {
                -1.0
            },
        }),
        model: &p.info.name,
        samples: samples.clone(),
        n,
        chromium: &setup.chromium,
        workers,
        bench_relus: 4096,
        k: p.model.plan().k,
        timeout_ms: 900_000,
    };
    let config = serde_json::to_string(&config).map_err(|e| driver_err(e.to_string()))?;
    let mut child = Command::new(&setup.node)
        .arg(&setup.script)
        .arg(config)
        .env("CRYPTONAS_NODE_MODULES", &setup.node_modules)
        .env("CRYPTONAS_DRIVER_STDIN_WATCH", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| driver_err(format!("cannot start {}: {e}", setup.node)))?;
    // Collect stderr on a thread so a chatty driver cannot block on a full pipe.
    let stderr = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            buf
        })
    });
    // Held open while the driver runs: closing it tells the driver to stop its browser and exit.
    let stdin = child.stdin.take();
    let result = read_lines(p, setup, &samples, n, child.stdout.take(), pb, &driver_err);
    let status = if result.is_err() {
        drop(stdin);
        // Give the driver time to take its browser down; kill it only if it does not exit.
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                _ => {
                    let _ = child.kill();
                    break child.wait();
                }
            }
        }
    } else {
        let status = child.wait();
        drop(stdin);
        status
    };
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let (ready, infs, done) = match result {
        Ok(x) => x,
        Err(BrowserError::Driver { model, message }) => {
            return Err(BrowserError::Driver {
                model,
                message: format!("{message}\ndriver stderr:\n{}", tail(&stderr)),
            })
        }
        Err(e) => return Err(e),
    };
    match status {
        Ok(s) if s.success() => {}
        other => {
            return Err(driver_err(format!(
                "driver exited with {other:?}\ndriver stderr:\n{}",
                tail(&stderr)
            )))
        }
    }
    Ok(summarise(
        p,
        network,
        &ready,
        &infs,
        &done,
        started.elapsed().as_secs_f64(),
    ))
}

type Collected = (ReadyLine, Vec<InferenceLine>, DoneLine);

fn read_lines(
    p: &Prepared,
    setup: &BrowserSetup,
    samples: &[&str],
    n: usize,
    stdout: Option<std::process::ChildStdout>,
    pb: &ProgressBar,
    driver_err: &dyn Fn(String) -> BrowserError,
) -> Result<Collected, BrowserError> {
    let stdout = stdout.ok_or_else(|| driver_err("no stdout".into()))?;
    let mut ready = None;
    let mut infs = Vec::new();
    let name = &p.info.name;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| driver_err(format!("reading the driver: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| {
            driver_err(format!(
                "unexpected driver line ({e}): {}",
                line.chars().take(300).collect::<String>()
            ))
        })?;
        match parsed {
            Line::Ready(r) => {
                if !r.cross_origin_isolated {
                    return Err(driver_err("the page is not cross-origin isolated".into()));
                }
                ready = Some(r);
            }
            Line::Progress(g) => pb.set_message(format!(
                "{name} ({} ReLUs) in Chromium: inference {}/{n}, {} {}{} ({:.0} %)",
                p.info.relus,
                g.index + 1,
                g.phase,
                g.event,
                g.stage.map(|s| format!(" stage {s}")).unwrap_or_default(),
                100.0 * g.fraction
            )),
            Line::Inference(inf) => {
                let sample = samples
                    .get(inf.index)
                    .filter(|s| **s == inf.sample)
                    .ok_or_else(|| {
                        driver_err(format!(
                            "inference {} reports sample {}, expected {:?}",
                            inf.index,
                            inf.sample,
                            samples.get(inf.index)
                        ))
                    })?;
                let path = setup.www.join(format!("samples/{sample}.jpg"));
                let bytes = std::fs::read(&path)
                    .map_err(|e| driver_err(format!("reading {}: {e}", path.display())))?;
                verify(p, &bytes, &inf)?;
                infs.push(*inf);
                pb.inc(1);
            }
            Line::Done(d) => {
                let ready = ready.ok_or_else(|| driver_err("no ready line".into()))?;
                if infs.len() != n {
                    return Err(driver_err(format!(
                        "{} of {n} inferences reported",
                        infs.len()
                    )));
                }
                return Ok((ready, infs, d));
            }
            Line::Error { message } => {
                // A page that cannot parse the server's frames runs an older wasm client.
                let stale = ["malformed", "unexpected message", "version"]
                    .iter()
                    .any(|w| message.contains(w));
                let hint = if stale {
                    format!(
                        "\n(the wasm client in {} may be older than the server's protocol: rerun scripts/build-wasm.sh, or pass --www with a freshly built copy)",
                        setup.www.join("pkg").display()
                    )
                } else {
                    String::new()
                };
                return Err(driver_err(format!("{message}{hint}")));
            }
        }
    }
    Err(driver_err("the driver ended without a result".into()))
}

/// The repository root (this crate's parent), where `tests/node_modules` and `bench/browser` live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The page directory: `www` under the current directory if it holds the page, else the
/// repository's.
pub fn default_www() -> PathBuf {
    let here = PathBuf::from("www");
    if here.join("index.html").exists() {
        here
    } else {
        repo_root().join("www")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptonas_crypto::Csprng;
    use cryptonas_protocol::{run_local, ClientInput, ClientSession, ServerSession};

    /// A real private inference of the bundled cat sample (image bytes, as the page sends them),
    /// written as the driver would report it.
    fn line_for(p: &Prepared, bytes: &[u8]) -> InferenceLine {
        let mut client = ClientSession::new(
            ClientInput::ImageBytes(bytes.to_vec()),
            Csprng::from_entropy().unwrap(),
        );
        let mut server = ServerSession::new(p.model.clone(), Csprng::from_entropy().unwrap());
        run_local(&mut client, &mut server).unwrap();
        let o = client.outcome().unwrap().clone();
        let t = client.traffic().clone();
        let plan = p.model.plan();
        let json = serde_json::json!({
            "type": "inference", "index": 0, "sample": "cat",
            "outcome": { "class": o.class, "logits": o.logits,
                "logits_ring": o.logits_ring.iter().map(u64::to_string).collect::<Vec<_>>() },
            "traffic": t,
            "plan": { "relus": plan.relu_count(), "layers": plan.stages.iter().enumerate()
                .filter(|(_, s)| s.garbled()).map(|(i, s)| serde_json::json!({
                    "stage": i, "relus": s.len, "and_gates": 75 * s.len })).collect::<Vec<_>>() },
            "timing": { "offlineMs": 1500.0, "onlineMs": 500.0, "totalMs": 2000.0 },
            "layerEval": [{ "stage": 0, "ms": 20.0 }],
            "layerWallMs": [{ "stage": 0, "ms": 30.0 }],
            "andPerSecOnline": 1.0e6, "wasmMemoryBytes": 1.0e7,
            "evalWorkers": 2, "andPerSecPerWorker": 5.0e5,
        });
        match serde_json::from_value::<Line>(json).unwrap() {
            Line::Inference(l) => *l,
            other => panic!("{other:?}"),
        }
    }

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(repo_root().join(format!("www/samples/{name}.jpg"))).unwrap()
    }

    #[test]
    fn a_real_private_inference_of_the_sent_bytes_verifies() {
        let p = crate::models::tiny(1);
        let cat = sample("cat");
        let line = line_for(&p, &cat);
        verify(&p, &cat, &line).unwrap();
        let inf = line.inference();
        assert_eq!((inf.offline_s, inf.online_s), (1.5, 0.5));
        assert_eq!(inf.online_layers_s, vec![0.03]);
        assert_eq!(inf.online_rounds as usize, p.info.stages);
        assert!(inf.gc_down > 0);
    }

    #[test]
    fn a_changed_logit_class_or_image_is_a_mismatch() {
        let p = crate::models::tiny(1);
        let cat = sample("cat");
        let line = line_for(&p, &cat);

        let mut bad = line.clone();
        let v: u64 = bad.outcome.logits_ring[0].parse().unwrap();
        bad.outcome.logits_ring[0] = (v ^ 1).to_string();
        let e = verify(&p, &cat, &bad).unwrap_err().to_string();
        assert!(e.contains("differ from the plaintext"), "{e}");

        let mut bad = line.clone();
        bad.outcome.class = (bad.outcome.class + 1) % bad.outcome.logits.len();
        let e = verify(&p, &cat, &bad).unwrap_err().to_string();
        assert!(e.contains("page class"), "{e}");

        // The same answer checked against another image: the harness must notice (all ten
        // samples giving identical tiny-model logits would make this vacuous).
        let other = SAMPLES
            .iter()
            .map(|s| sample(s))
            .find(|b| verify(&p, b, &line).is_err());
        assert!(other.is_some(), "every sample gives the cat's logits");
    }

    #[test]
    fn driver_lines_parse_and_summarise() {
        let p = crate::models::tiny(1);
        let cat = sample("cat");
        let line = line_for(&p, &cat);
        let ready: Line = serde_json::from_str(
            r#"{"type":"ready","browser":"156.0","hardwareConcurrency":2,"crossOriginIsolated":true,"models":["tiny"]}"#,
        )
        .unwrap();
        let done: Line = serde_json::from_str(
            r#"{"type":"done","bench":{"pageWorker":{"type":"bench","relus":4096,"andPerSec":3.0e6,"relusPerSec":1.0e5,"gateAndPerSec":6.0e6},
               "parallel":[{"workers":2,"wallS":2.0,"perWorker":[1.0e6,3.0e6],"andGates":4.0e6}]},
               "memory":{"rendererPeakRssBytes":4.0e8,"jsHeapUsedPeakBytes":null,"wasmMemoryBytes":9.0e7,"uaSpecificBytes":null}}"#,
        )
        .unwrap();
        let (Line::Ready(ready), Line::Done(done)) = (ready, done) else {
            panic!("wrong variants")
        };
        let wan = Network::parse("wan").unwrap();
        let r = summarise(&p, &wan, &ready, &[line.clone(), line], &done, 3.0);
        assert_eq!(r.run.inferences.len(), 2);
        assert_eq!(r.run.network.name, "wan");
        assert_eq!(r.run.online_s, 0.5);
        assert_eq!(r.workers[0].and_per_s_per_worker, 2.0e6);
        assert_eq!(r.workers[0].and_per_s_total, 4.0e6);
        assert_eq!(r.page_worker_and_per_s, 3.0e6);
        assert_eq!(r.page_worker_relus_per_s, Some(1.0e5));
        assert_eq!(r.page_worker_gate_and_per_s, Some(6.0e6));
        assert_eq!(
            (r.eval_workers, r.online_and_per_s_per_worker),
            (2, Some(5.0e5))
        );
        assert_eq!(r.layers.len(), p.info.relu_layers);
        let l0 = &r.layers[0];
        assert!((l0.eval_s - 0.02).abs() < 1e-12 && (l0.online_s - 0.03).abs() < 1e-12);
        assert!((l0.eval_and_per_s - l0.and_gates as f64 / 0.02).abs() < 1e-6);
        assert!(l0.offline_down > 0);
        let err: Line = serde_json::from_str(r#"{"type":"error","message":"boom"}"#).unwrap();
        assert!(matches!(err, Line::Error { message } if message == "boom"));
    }

    #[test]
    fn missing_pieces_name_the_command_that_installs_them() {
        let repo = repo_root();
        let e = BrowserSetup::check(
            "no-such-node-binary",
            Path::new("/usr/bin/chromium"),
            &repo.join("www"),
            &repo,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scripts/setup.sh"), "{e}");
        if Command::new("node").arg("--version").output().is_ok() {
            let e =
                BrowserSetup::check("node", Path::new("/no/chromium"), &repo.join("www"), &repo)
                    .unwrap_err()
                    .to_string();
            assert!(
                e.contains("Chromium is missing") && e.contains("scripts/setup.sh"),
                "{e}"
            );
            if Path::new("/usr/bin/chromium").exists()
                && repo.join("tests/node_modules/playwright-core").exists()
            {
                // A page directory without pkg/: the wasm client is not built.
                let www = std::env::temp_dir()
                    .join(format!("cryptonas-bench-www-{}", std::process::id()));
                std::fs::create_dir_all(&www).unwrap();
                std::fs::write(www.join("index.html"), "<html></html>").unwrap();
                let e = BrowserSetup::check("node", Path::new("/usr/bin/chromium"), &www, &repo)
                    .unwrap_err()
                    .to_string();
                let _ = std::fs::remove_dir_all(&www);
                assert!(e.contains("scripts/build-wasm.sh"), "{e}");
            }
        }
    }
}
