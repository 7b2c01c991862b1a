//! `cryptonas-client`: classify an image privately against a running server.
//!
//! Run: `cargo run --release -p cryptonas-client -- --server http://127.0.0.1:8080 --model cnet1-c8 image.jpg`

use clap::Parser;
use cryptonas_client::{classify, NetworkProfile, Report};
use cryptonas_protocol::ClientInput;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Classify an image privately: the server never sees it, you never see the weights"
)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Model name (see GET /api/models).
    #[arg(long)]
    model: String,
    /// Simulated network: loopback, lan (0.5 ms, 1 Gbit/s) or wan (40 ms, 100 Mbit/s).
    #[arg(long, default_value = "loopback")]
    network: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also ask the server for the plaintext answer (reveals the image to the server).
    #[arg(long)]
    reveal: bool,
    /// Per-layer diff harness instead of a server session: run both halves in process with the
    /// model files at this path (`<name>.json`, weights beside it) and report the first element where
    /// the reconstructed protocol values differ from the plaintext fixed-point engine.
    #[arg(long, value_name = "MODEL_JSON")]
    verify: Option<PathBuf>,
    /// PNG or JPEG image.
    image: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let network = match args.network.as_str() {
        "loopback" => NetworkProfile::LOOPBACK,
        "lan" => NetworkProfile::LAN,
        "wan" => NetworkProfile::WAN,
        other => anyhow::bail!("unknown network profile '{other}' (loopback, lan, wan)"),
    };
    let bytes = std::fs::read(&args.image)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.image.display()))?;
    if let Some(json) = &args.verify {
        return verify(json, bytes);
    }
    let report = classify(
        &args.server,
        &args.model,
        ClientInput::ImageBytes(bytes.clone()),
        network,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if args.reveal {
        let plain = reveal(&args.server, &args.model, &bytes).await?;
        println!("plaintext check (image revealed): {plain}");
    }
    Ok(())
}

fn kb(b: u64) -> String {
    format!("{:.1} KB", b as f64 / 1000.0)
}

fn print_report(r: &Report) {
    let t = &r.traffic;
    println!("class: {} ({})", r.class_name, r.class);
    let logits: Vec<String> = r.outcome.logits.iter().map(|v| format!("{v:.3}")).collect();
    println!("logits: [{}]", logits.join(", "));
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
        println!(
            "  layer {:>2}: {:>6} ReLUs  online {:>7.1} ms  up {:>9}  down {:>10}  (offline tables {})",
            l.stage,
            l.relus,
            s * 1000.0,
            kb(l.online_up),
            kb(l.online_down),
            kb(l.offline_down)
        );
    }
}

/// POST /api/plain/{model}: the server's plaintext answer, for comparison only.
async fn reveal(server: &str, model: &str, image: &[u8]) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hostport = server
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&hostport).await?;
    let head = format!(
        "POST /api/plain/{model} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        image.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(image).await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(buf))
}

fn verify(json: &std::path::Path, image: Vec<u8>) -> anyhow::Result<()> {
    let name = json.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let model = cryptonas_model::Model::load(json, json.with_extension("safetensors"))?;
    let model = std::sync::Arc::new(cryptonas_protocol::ServerModel::new(name, &model)?);
    let report = cryptonas_protocol::verify_local(&model, ClientInput::ImageBytes(image))?;
    match &report.first_divergence {
        None => println!(
            "verify: all {} stages bit-identical to the fixed-point engine (class {})",
            report.stages_checked, report.outcome.class
        ),
        Some(d) => {
            println!(
                "verify: first divergence at stage {} ({}), element {}: protocol {:#x}, engine {:#x}",
                d.stage, d.what, d.index, d.got, d.expected
            );
            std::process::exit(1);
        }
    }
    Ok(())
}
