//! Running private inferences: over the real server with each network profile, and once
//! in-process with every handler timed (where the compute goes).

use crate::models::Prepared;
use anyhow::Context;
use cryptonas_client::{classify, NetworkProfile, Report};
use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    run_local_with, Activity, ClientInput, ClientSession, MsgKind, ServerSession, Side, Tap,
};
use cryptonas_server::{app, AppState, HostedModel, Limits, ProtocolModel};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A named network profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    /// "loopback", "lan", "wan" or the custom spec as given.
    pub name: String,
    /// Added round-trip time (ms).
    pub rtt_ms: f64,
    /// Bandwidth (Mbit/s; 0 = unlimited).
    pub mbit_per_s: f64,
    #[serde(skip)]
    profile: NetworkProfile,
}

/// A network profile that does not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown network '{given}': use loopback, lan, wan or <rtt>ms@<bandwidth>mbit (e.g. 10ms@50mbit)")]
pub struct NetworkParseError {
    /// What was given.
    pub given: String,
}

impl Network {
    /// Parses `loopback`, `lan` (0.5 ms, 1 Gbit/s), `wan` (40 ms, 100 Mbit/s) or a custom
    /// `<rtt>ms@<bandwidth>mbit`.
    pub fn parse(s: &str) -> Result<Network, NetworkParseError> {
        let err = || NetworkParseError { given: s.into() };
        let lower = s.trim().to_ascii_lowercase();
        let profile = match lower.as_str() {
            "loopback" => NetworkProfile::LOOPBACK,
            "lan" => NetworkProfile::LAN,
            "wan" => NetworkProfile::WAN,
            custom => {
                let (rtt, bw) = custom.split_once('@').ok_or_else(err)?;
                let rtt: f64 = rtt
                    .strip_suffix("ms")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(err)?;
                let mbit: f64 = bw
                    .strip_suffix("mbit")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(err)?;
                // `contains` is false for NaN.
                if !((0.0..=60_000.0).contains(&rtt) && (0.0..=1e6).contains(&mbit)) {
                    return Err(err());
                }
                NetworkProfile {
                    rtt: Duration::from_secs_f64(rtt / 1000.0),
                    bits_per_second: (mbit * 1e6) as u64,
                }
            }
        };
        Ok(Network {
            name: lower,
            rtt_ms: profile.rtt.as_secs_f64() * 1000.0,
            mbit_per_s: profile.bits_per_second as f64 / 1e6,
            profile,
        })
    }

    /// The client's profile.
    pub fn profile(&self) -> NetworkProfile {
        self.profile
    }
}

/// One private inference's cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inference {
    /// Connect to masked image sent (s).
    pub offline_s: f64,
    /// Masked image to logits (s).
    pub online_s: f64,
    /// Online seconds per ReLU layer.
    pub online_layers_s: Vec<f64>,
    /// Offline bytes client → server.
    pub offline_up: u64,
    /// Offline bytes server → client.
    pub offline_down: u64,
    /// Online bytes client → server.
    pub online_up: u64,
    /// Online bytes server → client.
    pub online_down: u64,
    /// HE bytes up (offline).
    pub he_up: u64,
    /// HE bytes down (offline).
    pub he_down: u64,
    /// OT bytes up (offline).
    pub ot_up: u64,
    /// OT bytes down (offline).
    pub ot_down: u64,
    /// Garbled tables and decoding bits down (offline).
    pub gc_down: u64,
    /// Online round trips.
    pub online_rounds: u32,
    /// Predicted class.
    pub class: usize,
}

impl Inference {
    /// The record of one inference from the client's traffic counters (native or browser), its
    /// phase times (s) and its class.
    pub(crate) fn from_traffic(
        t: &cryptonas_protocol::Traffic,
        offline_s: f64,
        online_s: f64,
        online_layers_s: Vec<f64>,
        class: usize,
    ) -> Inference {
        Inference {
            offline_s,
            online_s,
            online_layers_s,
            offline_up: t.offline_up,
            offline_down: t.offline_down,
            online_up: t.online_up,
            online_down: t.online_down,
            he_up: t.he_up,
            he_down: t.he_down,
            ot_up: t.ot_up,
            ot_down: t.ot_down,
            gc_down: t.layers.iter().map(|l| l.offline_down).sum(),
            online_rounds: t.online_rounds,
            class,
        }
    }

    fn of(r: &Report) -> Inference {
        let t = &r.timings;
        Inference::from_traffic(
            &r.traffic,
            t.offline_s,
            t.online_s,
            t.online_layers_s.clone(),
            r.class,
        )
    }
}

/// N inferences of one model under one network profile, with means and per-ReLU figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// Model name.
    pub model: String,
    /// ReLUs per inference.
    pub relus: usize,
    /// Network profile.
    pub network: Network,
    /// Every inference (all checked bit-exact against the plaintext fixed-point engine).
    pub inferences: Vec<Inference>,
    /// Mean offline seconds.
    pub offline_s: f64,
    /// Fastest offline seconds.
    pub offline_s_min: f64,
    /// Mean online seconds.
    pub online_s: f64,
    /// Fastest online seconds.
    pub online_s_min: f64,
    /// Mean offline bytes up.
    pub offline_up: f64,
    /// Mean offline bytes down.
    pub offline_down: f64,
    /// Mean online bytes up.
    pub online_up: f64,
    /// Mean online bytes down.
    pub online_down: f64,
    /// Mean HE bytes (both directions).
    pub he_bytes: f64,
    /// Mean OT bytes (both directions).
    pub ot_bytes: f64,
    /// Mean garbled-circuit bytes.
    pub gc_bytes: f64,
    /// Online round trips.
    pub online_rounds: u32,
    /// Offline KB (10³ B, both directions) per ReLU.
    pub offline_kb_per_relu: f64,
    /// Online KB (both directions) per ReLU.
    pub online_kb_per_relu: f64,
    /// Mean offline µs per ReLU.
    pub offline_us_per_relu: f64,
    /// Mean online µs per ReLU.
    pub online_us_per_relu: f64,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

impl Run {
    /// Summarises `inferences` (at least one).
    pub fn summarise(
        model: &str,
        relus: usize,
        network: Network,
        inferences: Vec<Inference>,
    ) -> Run {
        let m = |f: &dyn Fn(&Inference) -> f64| mean(inferences.iter().map(f));
        let min =
            |f: &dyn Fn(&Inference) -> f64| inferences.iter().map(f).fold(f64::INFINITY, f64::min);
        let offline_s = m(&|i| i.offline_s);
        let online_s = m(&|i| i.online_s);
        let offline_up = m(&|i| i.offline_up as f64);
        let offline_down = m(&|i| i.offline_down as f64);
        let online_up = m(&|i| i.online_up as f64);
        let online_down = m(&|i| i.online_down as f64);
        let r = relus.max(1) as f64;
        Run {
            model: model.into(),
            relus,
            network,
            offline_s,
            offline_s_min: min(&|i| i.offline_s),
            online_s,
            online_s_min: min(&|i| i.online_s),
            offline_up,
            offline_down,
            online_up,
            online_down,
            he_bytes: m(&|i| (i.he_up + i.he_down) as f64),
            ot_bytes: m(&|i| (i.ot_up + i.ot_down) as f64),
            gc_bytes: m(&|i| i.gc_down as f64),
            online_rounds: inferences.first().map_or(0, |i| i.online_rounds),
            offline_kb_per_relu: (offline_up + offline_down) / r / 1000.0,
            online_kb_per_relu: (online_up + online_down) / r / 1000.0,
            offline_us_per_relu: offline_s * 1e6 / r,
            online_us_per_relu: online_s * 1e6 / r,
            inferences,
        }
    }
}

/// Checks one private inference against the plaintext fixed-point engine: the client quantized
/// exactly `image`, the logits are bit-exact, and the ReLU count and rounds match the plan.
pub fn verify(p: &Prepared, image: &[f32], r: &Report) -> anyhow::Result<()> {
    let fixed = p.model.fixed();
    let q = fixed.quantize_input(image)?;
    anyhow::ensure!(
        r.outcome.input_ring == q,
        "{}: the client's quantized input differs from the image",
        p.info.name
    );
    let want = fixed.forward(&r.outcome.input_ring)?;
    anyhow::ensure!(
        r.outcome.logits_ring == want,
        "{}: private logits {:?} differ from the plaintext fixed-point engine's {:?}",
        p.info.name,
        r.outcome.logits_ring,
        want
    );
    anyhow::ensure!(
        r.relus == p.info.relus,
        "{}: {} ReLUs evaluated, plan has {}",
        p.info.name,
        r.relus,
        p.info.relus
    );
    anyhow::ensure!(
        r.traffic.online_rounds as usize == p.info.stages,
        "{}: {} online rounds for {} stages",
        p.info.name,
        r.traffic.online_rounds,
        p.info.stages
    );
    Ok(())
}

/// The real axum server, in-process on 127.0.0.1 (ephemeral port), hosting `models`.
pub struct LocalServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl LocalServer {
    /// Binds and serves `models` and the page directory `www` (call inside a Tokio runtime).
    pub async fn start(models: &[&Prepared], www: PathBuf) -> anyhow::Result<LocalServer> {
        let hosted: Vec<Arc<dyn HostedModel>> = models
            .iter()
            .map(|p| Arc::new(ProtocolModel::new(p.model.clone())) as Arc<dyn HostedModel>)
            .collect();
        let limits = Limits {
            sessions_per_minute: 0,
            // Slow simulated links (WAN) stretch the gaps between client frames.
            idle_timeout: Duration::from_secs(900),
            ..Limits::default()
        };
        let state = AppState::new(hosted, limits, www);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                eprintln!("server stopped: {e}");
            }
        });
        Ok(LocalServer {
            url: format!("http://{addr}"),
            task,
        })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One private inference of `image` over the server, checked.
pub async fn infer(
    server: &LocalServer,
    p: &Prepared,
    image: &[f32],
    network: &Network,
) -> anyhow::Result<Inference> {
    let input = ClientInput::Normalised(image.to_vec());
    let r = classify(&server.url, &p.info.name, input, network.profile())
        .await
        .with_context(|| format!("{} over {}", p.info.name, network.name))?;
    verify(p, image, &r)?;
    Ok(Inference::of(&r))
}

/// Compute time of one message handler.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HandlerTime {
    /// "client" or "server".
    pub side: &'static str,
    /// The incoming message.
    pub message: &'static str,
    /// What the handler does.
    pub work: &'static str,
    /// "offline" or "online".
    pub phase: &'static str,
    /// Calls.
    pub calls: u32,
    /// Seconds, all calls.
    pub seconds: f64,
}

/// Where one in-process inference spends its compute (no sockets, no simulated network).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComputeProfile {
    /// Model name.
    pub model: String,
    /// ReLUs.
    pub relus: usize,
    /// Offline compute, both sides (s).
    pub offline_s: f64,
    /// Online compute, both sides (s).
    pub online_s: f64,
    /// Largest frame server → client (bytes).
    pub largest_frame_down: usize,
    /// Largest frame client → server (bytes).
    pub largest_frame_up: usize,
    /// Every handler, in protocol order.
    pub handlers: Vec<HandlerTime>,
}

/// What a handler does and in which phase, for a side and what it handled.
fn describe(side: Side, what: Activity) -> (&'static str, &'static str) {
    use MsgKind as K;
    match (side, what) {
        (Side::Server, Activity::Handle(kind)) => match kind {
            K::ClientHello => ("plan", "offline"),
            K::ClientHeKey => ("HE public key import", "offline"),
            K::ClientHeMasks => ("HE linear layers on Enc(masks), flooding", "offline"),
            K::ClientOtSetup => ("base OT", "offline"),
            K::ClientOtExtend => ("KOS extension", "offline"),
            K::ClientOtResponse => ("KOS check (garbling follows, streamed)", "offline"),
            K::ClientInput => ("linear layer on x − r, send labels", "online"),
            K::ClientMasked => ("linear layer, send labels", "online"),
            _ => ("other", "offline"),
        },
        (Side::Server, Activity::Produce) => ("garble the next chunk of a ReLU layer", "offline"),
        (Side::Client, Activity::Handle(kind)) => match kind {
            K::ServerPlan => ("HE key generation, encrypt masks", "offline"),
            K::ServerHeResponse => ("HE decrypt shares", "offline"),
            K::ServerOtChoices => ("base OT, KOS extension matrix", "offline"),
            K::ServerOtChallenge => ("KOS check response", "offline"),
            K::ServerGarbled => ("check a garbled chunk, hand it out", "offline"),
            K::ServerLabels => ("hand a layer's chunks to the workers", "online"),
            K::ServerOutput => ("reconstruct logits", "online"),
            _ => ("other", "offline"),
        },
        (_, Activity::StoreChunk) => ("parse and keep garbled chunks", "offline"),
        (_, Activity::EvaluateChunk) => ("evaluate garbled layer", "online"),
        _ => ("other", "offline"),
    }
}

/// Adds up the time of every handler of an in-process run.
#[derive(Default)]
struct HandlerTimes(Vec<HandlerTime>);

impl Tap for HandlerTimes {
    fn activity(&mut self, side: Side, what: Activity, seconds: f64) {
        let message = match (side, what) {
            (_, Activity::Handle(kind)) => kind.name(),
            (Side::Server, Activity::Produce) => "poll_output",
            // Popping the client's queue of ready frames: no work of its own.
            (Side::Client, Activity::Produce) => return,
            (_, Activity::StoreChunk) => "store chunks",
            (_, Activity::EvaluateChunk) => "evaluate chunks",
        };
        let (work, phase) = describe(side, what);
        let side = side.name();
        if let Some(h) = self
            .0
            .iter_mut()
            .find(|h| h.side == side && h.message == message)
        {
            h.calls += 1;
            h.seconds += seconds;
        } else {
            self.0.push(HandlerTime {
                side,
                message,
                work,
                phase,
                calls: 1,
                seconds,
            });
        }
    }
}

/// Handler times and the largest frame each way.
#[derive(Default)]
struct Profiler {
    times: HandlerTimes,
    largest_up: usize,
    largest_down: usize,
}

impl Tap for Profiler {
    fn activity(&mut self, side: Side, what: Activity, seconds: f64) {
        self.times.activity(side, what, seconds);
    }

    fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
        let largest = match from {
            Side::Client => &mut self.largest_up,
            Side::Server => &mut self.largest_down,
        };
        *largest = (*largest).max(frame.len());
        frame
    }
}

/// Runs one inference of `image` in-process (both halves in this thread, frames through queues:
/// [`run_local_with`]), timing every handler, and checks the result.
pub fn compute_profile(p: &Prepared, image: &[f32]) -> anyhow::Result<ComputeProfile> {
    let mut client = ClientSession::new(
        ClientInput::Normalised(image.to_vec()),
        Csprng::from_entropy()?,
    );
    let mut server = ServerSession::new(p.model.clone(), Csprng::from_entropy()?);
    let mut profiler = Profiler::default();
    run_local_with(&mut client, &mut server, &mut profiler)
        .map_err(|(side, e)| anyhow::anyhow!("{}: {e}", side.name()))?;
    let Profiler {
        times: HandlerTimes(handlers),
        largest_up,
        largest_down,
    } = profiler;
    let outcome = client
        .outcome()
        .ok_or_else(|| anyhow::anyhow!("no outcome"))?;
    let fixed = p.model.fixed();
    anyhow::ensure!(
        outcome.input_ring == fixed.quantize_input(image)?
            && outcome.logits_ring == fixed.forward(&outcome.input_ring)?,
        "{}: in-process inference differs from the plaintext fixed-point engine",
        p.info.name
    );
    let sum = |phase: &str| {
        handlers
            .iter()
            .filter(|h| h.phase == phase)
            .map(|h| h.seconds)
            .sum()
    };
    Ok(ComputeProfile {
        model: p.info.name.clone(),
        relus: p.info.relus,
        offline_s: sum("offline"),
        online_s: sum("online"),
        largest_frame_down: largest_down,
        largest_frame_up: largest_up,
        handlers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse() {
        let lan = Network::parse("LAN").unwrap();
        assert_eq!(lan.profile(), NetworkProfile::LAN);
        assert_eq!((lan.rtt_ms, lan.mbit_per_s), (0.5, 1000.0));
        let wan = Network::parse("wan").unwrap();
        assert_eq!((wan.rtt_ms, wan.mbit_per_s), (40.0, 100.0));
        let c = Network::parse("10ms@50mbit").unwrap();
        assert_eq!(c.profile().rtt, Duration::from_millis(10));
        assert_eq!(c.profile().bits_per_second, 50_000_000);
        for bad in ["", "moon", "10@50", "10ms@", "-1ms@5mbit", "nanms@5mbit"] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn summaries_average_and_divide_by_relus() {
        let i = |off: f64, on: f64| Inference {
            offline_s: off,
            online_s: on,
            online_layers_s: vec![],
            offline_up: 1000,
            offline_down: 3000,
            online_up: 100,
            online_down: 300,
            he_up: 200,
            he_down: 400,
            ot_up: 500,
            ot_down: 0,
            gc_down: 2800,
            online_rounds: 7,
            class: 0,
        };
        let r = Run::summarise(
            "m",
            2,
            Network::parse("wan").unwrap(),
            vec![i(1.0, 0.1), i(3.0, 0.3)],
        );
        assert_eq!((r.offline_s, r.offline_s_min), (2.0, 1.0));
        assert!((r.online_s - 0.2).abs() < 1e-12 && (r.online_s_min - 0.1).abs() < 1e-12);
        assert_eq!(r.offline_kb_per_relu, 2.0);
        assert_eq!(r.online_kb_per_relu, 0.2);
        assert_eq!(r.offline_us_per_relu, 1e6);
        assert_eq!((r.he_bytes, r.ot_bytes, r.gc_bytes), (600.0, 500.0, 2800.0));
        assert_eq!(r.online_rounds, 7);
    }

    #[test]
    fn compute_profile_covers_both_phases_and_is_exact() {
        let p = crate::models::tiny(1);
        let prof = compute_profile(&p, &p.images[0]).unwrap();
        assert!(prof.offline_s > 0.0 && prof.online_s > 0.0);
        let labels = prof
            .handlers
            .iter()
            .find(|h| h.message == "evaluate chunks")
            .unwrap();
        assert_eq!(labels.calls as usize, p.info.relu_layers);
        assert!(prof.handlers.iter().all(|h| h.work != "other"));
    }
}
