//! A copy of `cryptonas_client::classify` whose WebSocket accepts frames up to 64 MiB (the
//! server's own limit). The client library connects with tungstenite's default 16 MiB frame cap,
//! which rejects a garbled ReLU layer above ≈ 7,000 ReLUs (CNet1 C ≥ 8: 8,192 ReLUs per layer,
//! ≈ 19.7 MB of tables). The harness uses the library wherever the model's largest frame fits,
//! and this copy (same session, same timing and network simulation) only where it does not;
//! each run records which one measured it. Drop this module once the client raises its cap.

use cryptonas_client::{NetworkProfile, Report, Timings};
use cryptonas_crypto::Csprng;
use cryptonas_protocol::{ClientInput, ClientSession, FrameSession, Msg, Phase, Step};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// tungstenite's default frame cap, which the client library uses.
pub const LIBRARY_FRAME_LIMIT: usize = 16 << 20;
/// The server's default frame limit, used by this copy.
pub const FRAME_LIMIT: usize = 64 << 20;

fn delay(p: &NetworkProfile, bytes: usize) -> Duration {
    let transfer = if p.bits_per_second == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(bytes as f64 * 8.0 / p.bits_per_second as f64)
    };
    p.rtt / 2 + transfer
}

fn tag(m: Msg) -> u8 {
    m.encode()[0]
}

/// `cryptonas_client::classify` with a 64 MiB frame limit.
pub async fn classify(
    server: &str,
    model: &str,
    input: ClientInput,
    network: NetworkProfile,
) -> anyhow::Result<Report> {
    let masked = tag(Msg::ClientMasked {
        stage: 0,
        body: Vec::new(),
    });
    let first_input = tag(Msg::ClientInput(Vec::new()));
    let labels = tag(Msg::ServerLabels {
        stage: 0,
        body: Vec::new(),
    });
    let url = format!(
        "{}/api/session/{model}",
        server.trim_end_matches('/').replacen("http://", "ws://", 1)
    );
    let started = Instant::now();
    let config = WebSocketConfig::default()
        .max_message_size(Some(FRAME_LIMIT))
        .max_frame_size(Some(FRAME_LIMIT));
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a session at {url}: {e}"))?;
    let mut session = ClientSession::new(input, Csprng::from_entropy()?);
    let mut online_started = None;
    let mut layer_started = None;
    let mut layers = Vec::new();
    let mut outgoing = session.start()?;
    let mut finished = false;
    loop {
        for frame in outgoing.drain(..) {
            tokio::time::sleep(delay(&network, frame.len())).await;
            if frame.first() == Some(&first_input) || frame.first() == Some(&masked) {
                layer_started = Some(Instant::now());
            }
            socket.send(Message::binary(frame)).await?;
        }
        if online_started.is_none() && session.phase() != Phase::Offline {
            online_started = Some(Instant::now());
        }
        if finished {
            break;
        }
        let frame = match socket.next().await {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                anyhow::bail!("server closed the session: {why}");
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => anyhow::bail!("connection failed: {e}"),
            None => anyhow::bail!("server went away"),
        };
        tokio::time::sleep(delay(&network, frame.len())).await;
        let is_labels = frame.first() == Some(&labels);
        let step = session.handle(&frame);
        if is_labels {
            if let Some(t) = layer_started.take() {
                layers.push(t.elapsed().as_secs_f64());
            }
        }
        match step {
            Ok(Step::Continue(out)) => outgoing = out,
            Ok(Step::Finished(out)) => {
                outgoing = out;
                finished = true;
            }
            Err(e) => {
                let _ = socket
                    .send(Message::binary(Msg::Error(e.to_string()).encode()))
                    .await;
                anyhow::bail!("protocol error: {e}");
            }
        }
    }
    let done = Instant::now();
    let _ = socket.close(None).await;
    let outcome = session
        .outcome()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("session ended without an outcome"))?;
    let online_started = online_started.unwrap_or(done);
    Ok(Report {
        model: model.to_string(),
        class: outcome.class,
        class_name: session
            .classes()
            .get(outcome.class)
            .cloned()
            .unwrap_or_else(|| outcome.class.to_string()),
        relus: session.relu_count(),
        traffic: session.traffic().clone(),
        timings: Timings {
            offline_s: (online_started - started).as_secs_f64(),
            online_s: (done - online_started).as_secs_f64(),
            online_layers_s: layers,
        },
        outcome,
    })
}
