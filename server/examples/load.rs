//! A bounded load generator: starts the server binary as its own process on 127.0.0.1, runs
//! `--sequential` sessions one after the other (server RSS after each: no growth after warm-up
//! is the check) and `--concurrent` sessions `--workers` at a time (sustained sessions per minute),
//! every inference checked bit-exact against the plaintext fixed-point engine. Prints a markdown
//! summary and writes JSON to `--out`.
//!
//! ```sh
//! cargo build --release -p cryptonas-server --bins --examples
//! target/release/examples/load --models models --model cnet1-c4 --sequential 200 \
//!     --concurrent 20 --workers 2 --out server/results/load-cnet1-c4.json
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use cryptonas_client::{classify, NetworkProfile};
use cryptonas_protocol::{ClientInput, ServerModel};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Models directory (the server loads it; the checker loads `--model` from it).
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Model to run.
    #[arg(long)]
    model: String,
    /// Server binary.
    #[arg(long, default_value = "target/release/cryptonas-server")]
    server: PathBuf,
    /// Sessions run one after the other.
    #[arg(long, default_value_t = 200)]
    sequential: usize,
    /// Sessions run `--workers` at a time.
    #[arg(long, default_value_t = 20)]
    concurrent: usize,
    /// Clients at once in the concurrent run.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Stop starting sessions after this many seconds in all (bounded runs).
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
    /// Sample images (JPEG) cycled through.
    #[arg(long, default_value = "www/samples")]
    samples: PathBuf,
    /// JSON results.
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let json = args.models.join(format!("{}.json", args.model));
    let model = cryptonas_model::Model::load(&json, json.with_extension("safetensors"))?;
    let checker = Arc::new(ServerModel::new(&args.model, &model)?);
    let mut samples = Vec::new();
    for e in std::fs::read_dir(&args.samples)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "jpg") {
            samples.push(std::fs::read(&p)?);
        }
    }
    if samples.is_empty() {
        bail!("no samples in {}", args.samples.display());
    }
    let mut child = Command::new(&args.server)
        .args(["--bind", "127.0.0.1:0", "--sessions-per-minute", "0"])
        .args(["--max-sessions-per-address", "64"])
        .arg("--models")
        .arg(&args.models)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.server.display()))?;
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let server = Server(child);
    let addr = loop {
        let line = lines.next().context("server exited")??;
        if let Some(rest) = line.strip_prefix("CryptoNAS server ready: ") {
            break rest.trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let run = |i: usize| {
        let (addr, model, checker) = (addr.clone(), args.model.clone(), checker.clone());
        let image = samples[i % samples.len()].clone();
        async move {
            let r = classify(
                &addr,
                &model,
                ClientInput::ImageBytes(image),
                NetworkProfile::LOOPBACK,
            )
            .await?;
            let want = checker.fixed().forward(&r.outcome.input_ring)?;
            if r.outcome.logits_ring != want {
                bail!("session {i}: logits differ from the fixed-point engine");
            }
            Ok::<_, anyhow::Error>((r.timings.offline_s, r.timings.online_s, r.relus))
        }
    };

    // Sequential: latencies and the server's RSS after each session.
    let idle_rss = rss_mb(pid);
    let (mut offline, mut online, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    let mut relus = 0;
    for i in 0..args.sequential {
        if Instant::now() > deadline {
            break;
        }
        let (off, on, r) = run(i).await?;
        relus = r;
        offline.push(off);
        online.push(on);
        rss.push(rss_mb(pid));
    }
    // Concurrent: sustained throughput.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let next = next.clone();
        let total = args.concurrent;
        workers.push(async move {
            let mut done = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total || Instant::now() > deadline {
                    return Ok::<_, anyhow::Error>(done);
                }
                run(i).await?;
                done += 1;
            }
        });
    }
    let mut done = 0;
    for d in futures_util::future::join_all(workers).await {
        done += d?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_minute = done as f64 * 60.0 / elapsed;
    let peak_rss = rss.iter().copied().fold(idle_rss, f64::max);
    let warm = rss.len().min(10);
    let after_warmup = &rss[warm.min(rss.len())..];
    let (first, last) = (
        after_warmup.first().copied().unwrap_or(f64::NAN),
        after_warmup.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "| model | ReLUs | sequential sessions | offline p50 / p99 s | online p50 / p99 s | \
         server RSS idle / after 10 / last / peak MB | concurrent sessions ({} workers) | sessions per minute |",
        args.workers
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {relus} | {} | {:.3} / {:.3} | {:.3} / {:.3} | {idle_rss:.0} / {first:.0} / {last:.0} / {peak_rss:.0} | {done} in {elapsed:.1} s | {per_minute:.1} |",
        args.model,
        offline.len(),
        percentile(&offline, 0.5),
        percentile(&offline, 0.99),
        percentile(&online, 0.5),
        percentile(&online, 0.99),
    );
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "model": args.model, "relus": relus, "sequential": offline.len(),
            "offline_s": offline, "online_s": online, "server_rss_mb": rss,
            "server_rss_idle_mb": idle_rss, "concurrent": done, "workers": args.workers,
            "concurrent_seconds": elapsed, "sessions_per_minute": per_minute,
        });
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_string_pretty(&json)?)?;
    }
    drop(server);
    Ok(())
}
