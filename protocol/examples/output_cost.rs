//! What each output policy costs for a model: the garbled top-k's AND gates (from the real
//! circuit) and the bytes of one private inference under `logits`, `class`, `top-3` and
//! `top-N` (every class ranked), each checked against the plaintext fixed-point ranking.
//!
//! Run: `cargo run --release -p cryptonas-protocol --example output_cost -- models/cnet1-c4 [IMAGE]`
//! (IMAGE defaults to `www/samples/cat.jpg`).

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    run_local, ClientInput, ClientSession, OutputPolicy, ServerModel, ServerSession,
};
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = PathBuf::from(args.next().unwrap_or_else(|| "models/cnet1-c4".into()));
    let image = std::fs::read(args.next().unwrap_or_else(|| "www/samples/cat.jpg".into()))?;
    let name = base
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string();
    let model = cryptonas_model::Model::load(
        base.with_extension("json"),
        base.with_extension("safetensors"),
    )?;
    let classes = model.spec.classes.len() as u32;
    println!("{name}: {classes} classes");
    println!("| policy | top-k AND gates | offline down | online down | online up | total |");
    println!("|---|---:|---:|---:|---:|---:|");
    for policy in [
        OutputPolicy::Logits,
        OutputPolicy::Class,
        OutputPolicy::TopK(3),
        OutputPolicy::TopK(classes),
    ] {
        let mut served = ServerModel::new(&name, &model)?;
        served.set_output(policy)?;
        let served = Arc::new(served);
        let last = served.plan().stages.len() - 1;
        let ands = served
            .plan()
            .circuit(last)?
            .map_or(0, |c| c.circuit().and_count());
        let mut server = ServerSession::new(served.clone(), Csprng::from_entropy()?);
        let mut client = ClientSession::new(
            ClientInput::ImageBytes(image.clone()),
            Csprng::from_entropy()?,
        );
        run_local(&mut client, &mut server)
            .map_err(|(side, e)| anyhow::anyhow!("{side:?}: {e}"))?;
        let out = client.outcome().expect("finished");
        let logits = served.fixed().forward(&out.input_ring)?;
        let top = policy.revealed_classes(classes as usize);
        anyhow::ensure!(
            out.ranked == cryptonas_model::rank_logits(&logits, served.plan().k, top),
            "{policy}: the private ranking differs from the fixed-point engine's"
        );
        let t = client.traffic();
        let total = t.offline_up + t.offline_down + t.online_up + t.online_down;
        println!(
            "| {policy} | {ands} | {} | {} | {} | {} |",
            t.offline_down, t.online_down, t.online_up, total
        );
    }
    Ok(())
}
