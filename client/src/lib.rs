#![doc = include_str!("../README.md")]

pub mod cli;

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    ClientInput, ClientSession, EvalTask, LocalWorkers, MsgKind, Output, Phase, ProtocolError,
    Session, Traffic,
};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Largest server frame the client accepts: garbled layers are streamed in chunks of
/// [`cryptonas_protocol::GARBLE_CHUNK`] ReLUs (≈ 6 MB); HE responses are smaller still.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

pub use cryptonas_protocol::Outcome;

/// The server refused to open a session (or to answer a request): its HTTP status and reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot open a session at {url}: HTTP {status}: {reason}{}", retry_after.as_ref().map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
pub struct Refused {
    /// What was asked for.
    pub url: String,
    /// HTTP status (503 busy, 429 rate-limited, 404 unknown model, 403 origin, …).
    pub status: u16,
    /// The `error` of the server's JSON body.
    pub reason: String,
    /// Its `Retry-After`, if any.
    pub retry_after: Option<String>,
}

/// A session failed in the protocol: this side's error, or the server's (`Peer`).
#[derive(Debug, thiserror::Error)]
#[error("protocol error: {0}")]
pub struct SessionFailed(pub ProtocolError);

impl SessionFailed {
    /// The two sides speak different protocol versions (found here, or reported by the server).
    pub fn is_version_mismatch(&self) -> bool {
        matches!(
            &self.0,
            ProtocolError::Version { .. }
                | ProtocolError::Peer {
                    code: cryptonas_protocol::ErrorCode::Version,
                    ..
                }
        )
    }
}

/// Simulated network conditions, applied by the client to every frame it sends and receives
/// (in-process, no root needed): half the round-trip time each way plus size / bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NetworkProfile {
    /// Round-trip time added.
    pub rtt: Duration,
    /// Bandwidth in bits per second (0 = unlimited).
    pub bits_per_second: u64,
}

impl NetworkProfile {
    /// No added delay.
    pub const LOOPBACK: NetworkProfile = NetworkProfile {
        rtt: Duration::ZERO,
        bits_per_second: 0,
    };
    /// 0.5 ms RTT, 1 Gbit/s.
    pub const LAN: NetworkProfile = NetworkProfile {
        rtt: Duration::from_micros(500),
        bits_per_second: 1_000_000_000,
    };
    /// 40 ms RTT, 100 Mbit/s.
    pub const WAN: NetworkProfile = NetworkProfile {
        rtt: Duration::from_millis(40),
        bits_per_second: 100_000_000,
    };

    fn delay(&self, bytes: usize) -> Duration {
        let transfer = if self.bits_per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(bytes as f64 * 8.0 / self.bits_per_second as f64)
        };
        self.rtt / 2 + transfer
    }
}

/// Time spent in each phase, as the client saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timings {
    /// From connecting to sending the masked image.
    pub offline_s: f64,
    /// From sending the masked image to holding the logits.
    pub online_s: f64,
    /// Online seconds per ReLU layer (from the request to the server's labels being evaluated).
    pub online_layers_s: Vec<f64>,
}

/// The result and the cost of one private inference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// Predicted class index.
    pub class: usize,
    /// Its name.
    pub class_name: String,
    /// The outcome (logits, ring values, quantized input).
    pub outcome: Outcome,
    /// Bytes and rounds.
    pub traffic: Traffic,
    /// Time per phase.
    pub timings: Timings,
    /// ReLUs evaluated.
    pub relus: usize,
}

/// Runs one private inference of `input` on `model` at `server` (e.g. `http://127.0.0.1:8080`).
pub async fn classify(
    server: &str,
    model: &str,
    input: ClientInput,
    network: NetworkProfile,
) -> anyhow::Result<Report> {
    let base = server
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let url = format!("{base}/api/session/{model}");
    let started = Instant::now();
    // The largest server frames are garbled chunks of GARBLE_CHUNK ReLUs (≈ 6 MB at k = 32).
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .map_err(|e| refusal(&url, e))?;
    let mut session = ClientSession::new(input, Csprng::from_entropy()?);
    let mut workers = LocalWorkers::default();
    let mut online_started = None;
    let mut layer_started = None;
    let mut layers = Vec::new();
    let failed = |e: ProtocolError| anyhow::Error::new(SessionFailed(e));
    'session: loop {
        // Everything the session has to say, and the evaluation it hands out (a layer's chunks
        // are evaluated together, in parallel).
        let mut jobs = Vec::new();
        loop {
            let out = match session.poll_output() {
                Ok(out) => out,
                Err(e) => return Err(tell_server(&mut socket, e).await),
            };
            match out {
                Some(Output::Frame(frame)) => {
                    tokio::time::sleep(network.delay(frame.len())).await;
                    let kind = frame.first().and_then(|&t| MsgKind::from_tag(t));
                    if matches!(kind, Some(MsgKind::ClientInput | MsgKind::ClientMasked)) {
                        layer_started = Some(Instant::now());
                    }
                    socket.send(Message::binary(frame)).await?;
                }
                Some(Output::Job(task)) => jobs.push(task),
                Some(Output::Finished) => break 'session,
                None => break,
            }
        }
        if online_started.is_none() && session.phase() != Phase::Offline {
            online_started = Some(Instant::now());
        }
        if !jobs.is_empty() {
            let evaluating = matches!(jobs[0], EvalTask::Evaluate { .. });
            let results = match workers.run(jobs) {
                Ok(r) => r,
                Err(e) => return Err(tell_server(&mut socket, e).await),
            };
            if evaluating {
                if let Some(t) = layer_started.take() {
                    layers.push(t.elapsed().as_secs_f64());
                }
            }
            for (id, shares) in results {
                if let Err(e) = session.complete_job(id, &shares) {
                    return Err(tell_server(&mut socket, e).await);
                }
            }
            continue;
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
        tokio::time::sleep(network.delay(frame.len())).await;
        if let Err(e) = session.handle(&frame) {
            // A peer's error is the server's reason; anything else the server must hear.
            return Err(match e {
                ProtocolError::Peer { .. } => failed(e),
                e => tell_server(&mut socket, e).await,
            });
        }
    }
    let done = Instant::now();
    let _ = socket.close(None).await;
    drop(workers);
    let outcome = session
        .outcome()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("session ended without an outcome"))?;
    let online_started = online_started.unwrap_or(done);
    let plan_classes = session.classes().to_vec();
    Ok(Report {
        model: model.to_string(),
        class: outcome.class,
        class_name: plan_classes
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

/// Sends the protocol's error frame (the one error channel), closes, and returns the error.
async fn tell_server<S>(socket: &mut S, e: ProtocolError) -> anyhow::Error
where
    S: futures_util::Sink<Message> + Unpin,
{
    let _ = socket.send(Message::binary(e.to_frame())).await;
    let _ = socket.close().await;
    SessionFailed(e).into()
}

/// A refused handshake as the server explained it ([`Refused`]: its status, the `error` of its
/// JSON body and its `Retry-After`), other failures as they are.
fn refusal(url: &str, e: tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    let tokio_tungstenite::tungstenite::Error::Http(resp) = &e else {
        return anyhow::anyhow!("cannot open a session at {url}: {e}");
    };
    let reason = resp
        .body()
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| "no reason given".into());
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Refused {
        url: url.to_string(),
        status: resp.status().as_u16(),
        reason,
        retry_after,
    }
    .into()
}
