#![doc = include_str!("../README.md")]

pub mod cli;

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    ClientInput, ClientSession, EvalTask, LocalWorkers, MsgKind, Output, Phase, ProtocolError,
    Session, Traffic,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Largest server frame the client accepts: garbled layers are streamed in chunks of
/// [`cryptonas_protocol::GARBLE_CHUNK`] ReLUs (≈ 3 MB); HE responses are smaller still.
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
/// (in-process, no root needed): each frame's size / bandwidth, and half the round-trip time once
/// per flight — frames that follow each other in one direction stream back to back, as on a real
/// link, and the first frame after the direction turns pays the latency.
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

    /// The delay of a frame of `bytes`; `new_flight`: the first one in its direction since the
    /// last frame the other way.
    fn delay(&self, bytes: usize, new_flight: bool) -> Duration {
        let transfer = if self.bits_per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(bytes as f64 * 8.0 / self.bits_per_second as f64)
        };
        if new_flight {
            self.rtt / 2 + transfer
        } else {
            transfer
        }
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
    /// What the model revealed, in words ("logits", "class only", "top-3 classes").
    pub reveals: String,
    /// Names of the revealed classes ([`Outcome::ranked`]), most likely first.
    pub ranked_names: Vec<String>,
    /// The outcome (policy, ranked classes; logits and ring values under `logits`; the
    /// quantized input).
    pub outcome: Outcome,
    /// Bytes and rounds.
    pub traffic: Traffic,
    /// Time per phase.
    pub timings: Timings,
    /// ReLUs evaluated.
    pub relus: usize,
}

/// Runs one private inference of `input` on `model` at `server` (e.g. `http://127.0.0.1:8080`):
/// [`prepare`], then [`Prepared::classify`] at once.
pub async fn classify(
    server: &str,
    model: &str,
    input: ClientInput,
    network: NetworkProfile,
) -> anyhow::Result<Report> {
    prepare(server, model, network).await?.classify(input).await
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A session whose offline phase is done: it holds the garbled layers and waits for the image,
/// so [`Prepared::classify`] costs only the online phase. The server keeps it for its
/// prepared-session time to live (10 minutes by default); after that `classify` fails with the
/// server's [`ErrorCode::Expired`](cryptonas_protocol::ErrorCode::Expired) and a new one must be
/// prepared ([`is_expired`]).
pub struct Prepared {
    socket: Socket,
    session: ClientSession,
    workers: LocalWorkers,
    model: String,
    network: NetworkProfile,
    /// Whether the last frame went up (to the server): the simulated link's current flight.
    last_up: Option<bool>,
    offline_s: f64,
    layers: LayerClock,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("model", &self.model)
            .field("relus", &self.session.relu_count())
            .field("offline_s", &self.offline_s)
            .finish_non_exhaustive()
    }
}

/// Connects to `server` and runs the offline phase of one inference of `model` (HE, OT, garbled
/// layers), which does not depend on the image.
pub async fn prepare(
    server: &str,
    model: &str,
    network: NetworkProfile,
) -> anyhow::Result<Prepared> {
    let base = server
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let url = format!("{base}/api/session/{model}");
    let started = Instant::now();
    // The largest server frames are garbled chunks of GARBLE_CHUNK ReLUs (≈ 3 MB at k = 32).
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .map_err(|e| refusal(&url, e))?;
    let mut prepared = Prepared {
        socket,
        session: ClientSession::prepare(Csprng::from_entropy()?),
        workers: LocalWorkers::default(),
        model: model.to_string(),
        network,
        last_up: None,
        offline_s: 0.0,
        layers: LayerClock::default(),
    };
    prepared.drive(Until::Ready).await?;
    prepared.offline_s = started.elapsed().as_secs_f64();
    Ok(prepared)
}

/// Whether `error` is the server's word that a prepared session waited too long for its image.
pub fn is_expired(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<SessionFailed>(),
        Some(SessionFailed(ProtocolError::Peer {
            code: cryptonas_protocol::ErrorCode::Expired,
            ..
        }))
    )
}

/// Where [`Prepared::drive`] stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The offline phase is done; the session waits for its image.
    Ready,
    /// The session finished.
    Finished,
}

/// Online time per ReLU layer: from the request that unlocks a layer (the masked image or the
/// previous layer's reply) to the layer's shares being ready.
#[derive(Default)]
struct LayerClock {
    started: Option<Instant>,
    layers: Vec<f64>,
}

impl Prepared {
    /// ReLUs of the model.
    pub fn relu_count(&self) -> usize {
        self.session.relu_count()
    }

    /// Seconds the offline phase took.
    pub fn offline_seconds(&self) -> f64 {
        self.offline_s
    }

    /// Classifies `input`: the online phase only. A bad image is refused before anything is sent
    /// and leaves the session prepared; a session classifies one image.
    pub async fn classify(&mut self, input: ClientInput) -> anyhow::Result<Report> {
        self.read_pending()?;
        self.session
            .set_input(input)
            .map_err(|e| anyhow::anyhow!("cannot use this image: {e}"))?;
        let online_started = Instant::now();
        self.drive(Until::Finished).await?;
        let done = Instant::now();
        let _ = self.socket.close(None).await;
        let session = &self.session;
        let outcome = session
            .outcome()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("session ended without an outcome"))?;
        let classes = session.classes();
        Ok(Report {
            model: self.model.clone(),
            class: outcome.class,
            class_name: classes
                .get(outcome.class)
                .cloned()
                .unwrap_or_else(|| outcome.class.to_string()),
            reveals: outcome.policy.describe(),
            ranked_names: outcome
                .ranked
                .iter()
                .map(|&c| classes.get(c).cloned().unwrap_or_else(|| c.to_string()))
                .collect(),
            relus: session.relu_count(),
            traffic: session.traffic().clone(),
            timings: Timings {
                offline_s: self.offline_s,
                online_s: (done - online_started).as_secs_f64(),
                online_layers_s: std::mem::take(&mut self.layers.layers),
            },
            outcome,
        })
    }

    /// Handles what the server sent while the session waited (its expiry, a shutdown), so that
    /// `classify` reports the server's reason rather than a failed write.
    fn read_pending(&mut self) -> anyhow::Result<()> {
        while let Some(next) = self.socket.next().now_or_never() {
            match next {
                Some(Ok(Message::Binary(b))) => self.session.handle(&b).map_err(SessionFailed)?,
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    anyhow::bail!("server closed the prepared session: {why}");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => anyhow::bail!("connection failed: {e}"),
                None => anyhow::bail!("server went away"),
            }
        }
        Ok(())
    }

    /// Moves frames and evaluation jobs until the session reaches `until`.
    async fn drive(&mut self, until: Until) -> anyhow::Result<()> {
        let network = self.network;
        loop {
            // Everything the session has to say, and the evaluation it hands out (a layer's
            // chunks are evaluated together, in parallel).
            let mut jobs = Vec::new();
            loop {
                let out = match self.session.poll_output() {
                    Ok(out) => out,
                    Err(e) => return Err(tell_server(&mut self.socket, e).await),
                };
                match out {
                    Some(Output::Frame(frame)) => {
                        let new_flight = self.last_up != Some(true);
                        self.last_up = Some(true);
                        tokio::time::sleep(network.delay(frame.len(), new_flight)).await;
                        let kind = frame.first().and_then(|&t| MsgKind::from_tag(t));
                        if matches!(kind, Some(MsgKind::ClientInput | MsgKind::ClientMasked)) {
                            self.layers.started = Some(Instant::now());
                        }
                        self.socket.send(Message::binary(frame)).await?;
                    }
                    Some(Output::Job(task)) => jobs.push(task),
                    Some(Output::Finished) => return Ok(()),
                    None => break,
                }
            }
            if !jobs.is_empty() {
                let evaluating = matches!(jobs[0], EvalTask::Evaluate { .. });
                let results = match self.workers.run(jobs) {
                    Ok(r) => r,
                    Err(e) => return Err(tell_server(&mut self.socket, e).await),
                };
                if evaluating {
                    if let Some(t) = self.layers.started.take() {
                        self.layers.layers.push(t.elapsed().as_secs_f64());
                    }
                }
                for (id, shares) in results {
                    if let Err(e) = self.session.complete_job(id, &shares) {
                        return Err(tell_server(&mut self.socket, e).await);
                    }
                }
                continue;
            }
            if until == Until::Ready && self.session.phase() == Phase::Ready {
                return Ok(());
            }
            let frame = match self.socket.next().await {
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    anyhow::bail!("server closed the session: {why}");
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => anyhow::bail!("connection failed: {e}"),
                None => anyhow::bail!("server went away"),
            };
            let new_flight = self.last_up != Some(false);
            self.last_up = Some(false);
            tokio::time::sleep(network.delay(frame.len(), new_flight)).await;
            if let Err(e) = self.session.handle(&frame) {
                // A peer's error is the server's reason; anything else the server must hear.
                return Err(match e {
                    ProtocolError::Peer { .. } => SessionFailed(e).into(),
                    e => tell_server(&mut self.socket, e).await,
                });
            }
        }
    }
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
