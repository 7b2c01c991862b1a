#![doc = include_str!("../README.md")]

pub mod browser;
pub mod fit;
pub mod gates;
pub mod machine;
pub mod models;
pub mod plots;
pub mod report;
pub mod run;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use models::{ModelKind, Prepared};
use report::Results;
use run::{LocalServer, Network, Run};
use std::path::PathBuf;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "cryptonas-bench",
    about = "Private-inference benchmark: latency, traffic and per-ReLU costs against the ReLU budget"
)]
pub struct Args {
    /// Directory of trained models (`<name>.json` + `<name>.safetensors`) to measure as well.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// CNet1 widths C of the generated budget sweep (6144·C ReLUs each, 32×32 inputs).
    #[arg(long, value_delimiter = ',')]
    pub sweep: Option<Vec<usize>>,
    /// Private inferences per model and network profile.
    #[arg(long)]
    pub inferences: Option<usize>,
    /// Network profiles: loopback, lan (0.5 ms, 1 Gbit/s), wan (40 ms, 100 Mbit/s) or
    /// `<rtt>ms@<bandwidth>mbit`.
    #[arg(long, value_delimiter = ',')]
    pub network: Option<Vec<String>>,
    /// CI mode: the tiny test model and CNet1 C = 1, 2 inferences, loopback only.
    #[arg(long)]
    pub short: bool,
    /// Output directory (default `bench/results`, or a fresh temporary directory with --short).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// ReLUs per batch when timing garbling and evaluation directly.
    #[arg(long)]
    pub gate_relus: Option<usize>,
    /// Seed of the generated models' weights and inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No generated budget sweep (only `--models`, or the tiny model with `--short`).
    #[arg(long, conflicts_with = "sweep")]
    pub no_sweep: bool,
    /// Also run every model in the real demo page in headless Chromium (node + playwright-core).
    #[arg(long)]
    pub browser: bool,
    /// Only the browser runs (no native network runs or compute profiles).
    #[arg(long)]
    pub browser_only: bool,
    /// The page directory the in-process server serves (default `www`, or the repository's).
    #[arg(long)]
    pub www: Option<PathBuf>,
    /// Chromium binary for the browser mode.
    #[arg(long, env = "CRYPTONAS_CHROMIUM", default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
    /// Node.js command for the browser mode.
    #[arg(long, env = "CRYPTONAS_NODE", default_value = "node")]
    pub node: String,
    /// Garbled-evaluation benchmark in the browser with these numbers of workers at once
    /// (default 1 and the machine's parallelism).
    #[arg(long, value_delimiter = ',')]
    pub browser_workers: Option<Vec<usize>>,
    /// Network profiles the browser runs under (Chromium's own network emulation over CDP:
    /// added latency and bandwidth on the page's traffic, its WebSocket included), comma-separated
    /// like `--network`; default loopback only.
    #[arg(long, value_delimiter = ',', default_value = "loopback")]
    pub browser_network: Vec<String>,
}

/// The settings a run used (after `--short` defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Settings {
    /// CNet1 widths.
    pub sweep: Vec<usize>,
    /// Inferences per model and profile.
    pub inferences: usize,
    /// Profiles.
    pub networks: Vec<Network>,
    /// CI mode.
    pub short: bool,
    /// Trained-model directory.
    pub models: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// ReLUs per garbling batch.
    pub gate_relus: usize,
    /// Seed.
    pub seed: u64,
    /// The command line.
    pub command: String,
    /// Browser mode: run every model in the page as well.
    pub browser: bool,
    /// Browser runs only.
    pub browser_only: bool,
    /// Page directory served.
    pub www: PathBuf,
    /// Workers of the browser's garbled-evaluation benchmark.
    pub browser_workers: Vec<usize>,
    /// Networks the browser runs under (emulated by Chromium).
    pub browser_networks: Vec<Network>,
}

impl Args {
    /// Resolves defaults and checks the values.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let (sweep, inferences, networks, gate_relus) = if self.short {
            (vec![1], 2, vec!["loopback".to_string()], 1024)
        } else {
            (
                vec![2, 4, 8, 14],
                3,
                vec!["loopback".into(), "lan".into(), "wan".into()],
                16384,
            )
        };
        let sweep = if self.no_sweep {
            Vec::new()
        } else {
            self.sweep.clone().unwrap_or(sweep)
        };
        let inferences = self.inferences.unwrap_or(inferences);
        anyhow::ensure!(inferences >= 1, "--inferences must be at least 1");
        anyhow::ensure!(
            sweep.iter().all(|&c| (1..=64).contains(&c)),
            "--sweep widths must be in 1..=64"
        );
        let networks = self
            .network
            .clone()
            .unwrap_or(networks)
            .iter()
            .map(|n| Network::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        anyhow::ensure!(!networks.is_empty(), "--network needs at least one profile");
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut browser_workers = self
            .browser_workers
            .clone()
            .unwrap_or_else(|| vec![1, parallelism]);
        browser_workers.sort_unstable();
        browser_workers.dedup();
        anyhow::ensure!(
            browser_workers.iter().all(|&w| (1..=64).contains(&w)),
            "--browser-workers must be in 1..=64"
        );
        let out = match &self.out {
            Some(o) => o.clone(),
            None if self.short => {
                std::env::temp_dir().join(format!("cryptonas-bench-{}", std::process::id()))
            }
            None => PathBuf::from("bench/results"),
        };
        Ok(Settings {
            sweep,
            inferences,
            networks,
            short: self.short,
            models: self.models.clone(),
            out,
            gate_relus: self.gate_relus.unwrap_or(gate_relus).max(1),
            seed: self.seed,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            browser: self.browser || self.browser_only,
            browser_only: self.browser_only,
            www: self.www.clone().unwrap_or_else(browser::default_www),
            browser_workers,
            browser_networks: self
                .browser_network
                .iter()
                .map(|n| Network::parse(n))
                .collect::<Result<Vec<_>, _>>()?,
        })
    }
}

fn bar(len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise:.dim} [{bar:32.cyan/blue}] {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// Runs the whole benchmark and writes its outputs; returns what it wrote.
pub fn run(args: &Args) -> anyhow::Result<Results> {
    let settings = args.settings()?;
    let mut machine = machine::Machine::describe();
    let started = machine::now_utc();
    let clock = std::time::Instant::now();
    // Browser prerequisites first: a missing piece is reported before minutes of preparation.
    let browser_setup = if settings.browser {
        Some(browser::BrowserSetup::check(
            &args.node,
            &args.chromium,
            &settings.www,
            &browser::repo_root(),
        )?)
    } else {
        None
    };

    // Models: trained ones from files, the tiny one in short mode, then the sweep.
    let prep = bar(0);
    prep.set_message("preparing models (quantize, HE weight precomputation)");
    let n_images = settings.inferences.max(1);
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut skipped = Vec::new();
    if let Some(dir) = &settings.models {
        let (ok, failed) = models::trained(dir, n_images)?;
        for f in &failed {
            prep.suspend(|| eprintln!("skipping model {}: {}", f.name, f.error));
        }
        prepared.extend(ok);
        skipped = failed;
    }
    if settings.short {
        prepared.push(models::tiny(n_images));
    }
    for &c in &settings.sweep {
        prep.set_message(format!("preparing CNet1 C = {c}"));
        prepared.push(models::sweep_model(c, settings.seed + c as u64, n_images)?);
    }
    prep.finish_and_clear();
    anyhow::ensure!(!prepared.is_empty(), "no models to measure");
    // The server hosts models by name: two with one name would silently measure the wrong one.
    let mut names: Vec<&str> = prepared.iter().map(|p| p.info.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!(
            "two models are named '{}'; rename one (the server hosts models by name)",
            w[0]
        );
    }

    let runs_per_model = if settings.browser_only {
        0
    } else {
        1 + settings.networks.len() * settings.inferences
    } + if settings.browser {
        settings.inferences
    } else {
        0
    };
    let steps = prepared.len() * runs_per_model + 1;
    let pb = bar(steps as u64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(machine.available_parallelism.max(2))
        .enable_all()
        .build()
        .context("Tokio runtime")?;

    // Garbling rates first, at the widest generated model's first ReLU ring and truncation.
    pb.set_message("garbling and evaluation rates");
    let (k, t) = prepared
        .iter()
        .rev()
        .find(|p| p.info.kind != ModelKind::Trained)
        .or(prepared.first())
        .and_then(|p| {
            p.model
                .plan()
                .stages
                .iter()
                .find(|s| matches!(s.op, cryptonas_protocol::StageOp::Relu { .. }))
                .map(|s| (s.k, s.trunc))
        })
        .unwrap_or((32, 0));
    let gates = gates::measure(
        k,
        t,
        settings.gate_relus,
        if settings.short { 1 } else { 3 },
    )?;
    pb.inc(1);

    let infos: Vec<_> = prepared.iter().map(|p| p.info.clone()).collect();
    // Results so far, rewritten after every model so a long run that fails keeps what it measured.
    let snapshot = |runs: &[Run],
                    compute: &[run::ComputeProfile],
                    browser: &[browser::BrowserRun],
                    machine: &machine::Machine| {
        Results::assemble(
            settings.clone(),
            machine.clone(),
            started.clone(),
            clock.elapsed().as_secs_f64(),
            infos.clone(),
            skipped.clone(),
            runs.to_vec(),
            compute.to_vec(),
            gates.clone(),
        )
        .with_browser(browser.to_vec(), browser_setup.clone())
    };

    let (runs, compute, browser_runs) = rt.block_on(async {
        let server =
            LocalServer::start(&prepared.iter().collect::<Vec<_>>(), settings.www.clone()).await?;
        let mut runs: Vec<Run> = Vec::new();
        let mut compute = Vec::new();
        let mut browser_runs = Vec::new();
        for p in &prepared {
            if !settings.browser_only {
                pb.set_message(format!("{}: in-process compute profile", p.info.name));
                let profile = run::compute_profile(p, &p.images[0])?;
                compute.push(profile);
                pb.inc(1);
            }
            for net in settings.networks.iter().filter(|_| !settings.browser_only) {
                let mut inferences = Vec::new();
                for i in 0..settings.inferences {
                    pb.set_message(format!(
                        "{} ({} ReLUs) over {}: inference {}/{}",
                        p.info.name,
                        p.info.relus,
                        net.name,
                        i + 1,
                        settings.inferences
                    ));
                    let image = &p.images[i % p.images.len()];
                    inferences.push(run::infer(&server, p, image, net).await?);
                    pb.inc(1);
                }
                let r = Run::summarise(
                    &p.info.name,
                    p.info.relus,
                    net.clone(),
                    inferences,
                );
                let line = format!(
                    "{:>12} {:>8} ReLUs {:>8}: offline {:7.2} s {:8.2} MB, online {:7.3} s {:7.2} MB, {} rounds; all bit-exact",
                    r.model,
                    r.relus,
                    r.network.name,
                    r.offline_s,
                    (r.offline_up + r.offline_down) / 1e6,
                    r.online_s,
                    (r.online_up + r.online_down) / 1e6,
                    r.online_rounds
                );
                // Printed even when stderr is not a terminal (CI logs), unlike `pb.println`; stderr keeps
                // stdout for the results (`cryptonas bench --json`).
                pb.suspend(|| eprintln!("{line}"));
                runs.push(r);
            }
            for net in browser_setup
                .iter()
                .flat_map(|s| settings.browser_networks.iter().map(move |n| (s, n)))
            {
                let (setup, net) = net;
                pb.set_message(format!("{}: starting Chromium", p.info.name));
                // The driver is a child process; the server keeps serving on the runtime's workers.
                let b = browser::run_model(
                    setup,
                    &server.url,
                    p,
                    net,
                    settings.inferences,
                    &settings.browser_workers,
                    &pb,
                )?;
                let line = format!(
                    "{:>12} {:>8} ReLUs  browser {}: offline {:7.2} s {:8.2} MB, online {:7.3} s {:7.2} MB, {} rounds; all bit-exact; {} eval workers at {} M AND/s each online (GcBench {:.2} M AND/s, {} K ReLU/s, the gates alone {} M AND/s), peak tab memory {:.0} MB ({} MB private)",
                    b.model,
                    b.relus,
                    b.run.network.name,
                    b.run.offline_s,
                    (b.run.offline_up + b.run.offline_down) / 1e6,
                    b.run.online_s,
                    (b.run.online_up + b.run.online_down) / 1e6,
                    b.run.online_rounds,
                    b.eval_workers,
                    b.online_and_per_s_per_worker
                        .map_or("–".into(), |v| format!("{:.2}", v / 1e6)),
                    b.page_worker_and_per_s / 1e6,
                    b.page_worker_relus_per_s
                        .map_or("–".into(), |v| format!("{:.1}", v / 1e3)),
                    b.page_worker_gate_and_per_s
                        .map_or("–".into(), |v| format!("{:.2}", v / 1e6)),
                    b.memory.renderer_peak_rss_bytes.unwrap_or(0.0) / 1e6,
                    report::mb(b.memory.renderer_peak_private_bytes),
                );
                pb.suspend(|| eprintln!("{line}"));
                browser_runs.push(b);
            }
            snapshot(&runs, &compute, &browser_runs, &machine).write()?;
        }
        anyhow::Ok((runs, compute, browser_runs))
    })?;
    pb.finish_and_clear();

    machine.finish();
    let results = snapshot(&runs, &compute, &browser_runs, &machine);
    results.write()?;
    Ok(results)
}
