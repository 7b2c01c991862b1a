//! The `classify` command: its arguments (clap) and its body, shared by the `cryptonas` tool and
//! the `cryptonas-client` alias so there is one implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cryptonas_protocol::{ClientInput, Revealed as Answer};
use serde::Serialize;

use crate::{classify, NetworkProfile, Report};

/// Largest image or raw tensor file the command reads.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// A check the user asked for failed: `--verify` found a divergence between the protocol and the
/// fixed-point engine, or `--reveal` got a different class from the server's plaintext engine.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// `classify`: private inference of one image against a server.
#[derive(Clone, Debug, clap::Args)]
pub struct ClassifyArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Model name (see GET /api/models).
    #[arg(long, required_unless_present = "verify")]
    pub model: Option<String>,
    /// Simulated network: loopback, lan (0.5 ms, 1 Gbit/s) or wan (40 ms, 100 Mbit/s).
    #[arg(long, default_value = "loopback", value_parser = ["loopback", "lan", "wan"])]
    pub network: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also ask the server for its plaintext answer and compare classes (reveals the image to the
    /// server; the server must run with --allow-plaintext). Needs an image, not --raw-f32.
    #[arg(long, conflicts_with_all = ["raw_f32", "verify"])]
    pub reveal: bool,
    /// Per-layer diff harness instead of a server session: run both halves in process with the
    /// model files at this path (`<name>.json`, weights beside it) and report the first element where
    /// the reconstructed protocol values differ from the plaintext fixed-point engine.
    #[arg(long, value_name = "MODEL_JSON")]
    pub verify: Option<PathBuf>,
    /// An already normalised input instead of an image: little-endian f32, C×H×W in CHW order,
    /// the model's input shape (bypasses the image decoder).
    #[arg(long, value_name = "FILE", conflicts_with = "image")]
    pub raw_f32: Option<PathBuf>,
    /// PNG or JPEG image.
    #[arg(required_unless_present = "raw_f32")]
    pub image: Option<PathBuf>,
}

/// Reads a file the user named, bounded, with its name in the error.
pub fn read_input_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_INPUT_BYTES {
        anyhow::bail!(
            "{}: {len} bytes is more than the {MAX_INPUT_BYTES} byte limit",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// What the server's plaintext engine answered for `--reveal`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Revealed {
    /// Its class.
    pub class: usize,
    /// The classes the model's output policy reveals, most likely first.
    #[serde(default)]
    pub ranked: Vec<usize>,
    /// Its logits, when the server reveals them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<f64>>,
}

/// Runs `classify`.
pub async fn run(args: &ClassifyArgs) -> anyhow::Result<()> {
    let network = match args.network.as_str() {
        "lan" => NetworkProfile::LAN,
        "wan" => NetworkProfile::WAN,
        _ => NetworkProfile::LOOPBACK,
    };
    let (input, image) = match (&args.raw_f32, &args.image) {
        (Some(raw), _) => {
            let bytes = read_input_file(raw)?;
            let x = cryptonas_model::plain::parse_f32_le(&bytes)
                .with_context(|| format!("{} is not a raw f32 tensor", raw.display()))?;
            (ClientInput::Normalised(x), None)
        }
        (None, Some(path)) => {
            let bytes = read_input_file(path)?;
            (ClientInput::ImageBytes(bytes.clone()), Some(bytes))
        }
        (None, None) => anyhow::bail!("give an image or --raw-f32 FILE"),
    };
    if let Some(json) = &args.verify {
        return verify(json, input, args.json);
    }
    let model = args
        .model
        .as_deref()
        .context("--model is required for a server session")?;
    let report = classify(&args.server, model, input, network).await?;
    let revealed = match (&image, args.reveal) {
        (Some(bytes), true) => Some(reveal(&args.server, model, bytes).await?),
        _ => None,
    };
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let (Some(r), Some(obj)) = (&revealed, v.as_object_mut()) {
            obj.insert("revealed".into(), serde_json::to_value(r)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_report(&report);
    }
    if let Some(r) = revealed {
        if !args.json {
            println!(
                "plaintext check (image revealed): server's plaintext class {}",
                r.class
            );
        }
        if r.class != report.class {
            return Err(CheckFailed(format!(
                "the server's plaintext engine says class {}, the private inference class {}",
                r.class, report.class
            ))
            .into());
        }
        if !r.ranked.is_empty() && r.ranked != report.outcome.ranked {
            return Err(CheckFailed(format!(
                "the server's plaintext engine ranks {:?}, the private inference {:?}",
                r.ranked, report.outcome.ranked
            ))
            .into());
        }
    }
    Ok(())
}

fn kb(b: u64) -> String {
    format!("{:.1} KB", b as f64 / 1000.0)
}

/// The report as text.
pub fn print_report(r: &Report) {
    let t = &r.traffic;
    println!("this model reveals: {}", r.outcome.policy.describe());
    println!("class: {} ({})", r.class_name, r.class);
    match r.outcome.revealed() {
        Answer::Logits(logits) => {
            let logits: Vec<String> = logits.iter().map(|v| format!("{v:.3}")).collect();
            println!("logits: [{}]", logits.join(", "));
        }
        Answer::TopK(ranked) => {
            let named: Vec<String> = ranked
                .iter()
                .zip(&r.ranked_names)
                .map(|(c, name)| format!("{name} ({c})"))
                .collect();
            println!("top {}: {}", ranked.len(), named.join(", "));
        }
        Answer::Class(_) => {}
    }
    println!("ReLUs: {}", r.relus);
    println!(
        "offline: {:.3} s, up {} down {} (HE {} / {}, OT {} / {})",
        r.timings.offline_s,
        kb(t.offline_up),
        kb(t.offline_down),
        kb(t.he_up),
        kb(t.he_down),
        kb(t.ot_up),
        kb(t.ot_down)
    );
    println!(
        "online:  {:.3} s, up {} down {}, {} round trips",
        r.timings.online_s,
        kb(t.online_up),
        kb(t.online_down),
        t.online_rounds
    );
    for (l, s) in t.layers.iter().zip(r.timings.online_layers_s.iter()) {
        // The garbled arg-max of a class or top-k model is the one layer without ReLUs.
        let what = if l.relus == 0 {
            "arg-max    ".to_string()
        } else {
            format!("{:>6} ReLUs", l.relus)
        };
        println!(
            "  layer {:>2}: {what}  online {:>7.1} ms  up {:>9}  down {:>10}  (offline tables {})",
            l.stage,
            s * 1000.0,
            kb(l.online_up),
            kb(l.online_down),
            kb(l.offline_down)
        );
    }
}

/// POST /api/plain/{model}: the server's plaintext answer, for comparison only.
async fn reveal(server: &str, model: &str, image: &[u8]) -> anyhow::Result<Revealed> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(hostport) = server.trim_end_matches('/').strip_prefix("http://") else {
        anyhow::bail!("--reveal speaks plain http:// only (the server is {server})");
    };
    let mut s = tokio::net::TcpStream::connect(hostport)
        .await
        .with_context(|| format!("cannot connect to {hostport}"))?;
    let head = format!(
        "POST /api/plain/{model} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        image.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(image).await?;
    // The answer is a small JSON object; a server that sends more is not this one.
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the plaintext answer is not HTTP")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the plaintext answer has no HTTP status")?;
    if status != 200 {
        let reason = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string());
        return Err(crate::Refused {
            url: format!("{}/api/plain/{model}", server.trim_end_matches('/')),
            status,
            reason,
            retry_after: None,
        }
        .into());
    }
    serde_json::from_str(body).with_context(|| format!("unexpected plaintext answer: {body}"))
}

fn verify(json: &Path, input: ClientInput, as_json: bool) -> anyhow::Result<()> {
    let name = json.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let model = cryptonas_model::Model::load(json, json.with_extension("safetensors"))?;
    let model = Arc::new(cryptonas_protocol::ServerModel::new(name, &model)?);
    let report = cryptonas_protocol::verify_local(&model, input)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    match &report.first_divergence {
        None => {
            if !as_json {
                println!(
                    "verify: all {} stages bit-identical to the fixed-point engine (class {})",
                    report.stages_checked, report.outcome.class
                );
            }
            Ok(())
        }
        Some(d) => Err(CheckFailed(format!(
            "verify: first divergence at stage {} ({}), element {}: protocol {:#x}, engine {:#x}",
            d.stage, d.what, d.index, d.got, d.expected
        ))
        .into()),
    }
}
