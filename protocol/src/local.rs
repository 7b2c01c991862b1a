//! Both halves in one process, exchanging frames through queues: the one driving loop of the
//! workspace's tests, tools and benchmarks (no sockets, same bytes as a real transport), with a
//! [`Tap`] for those that watch, time or tamper with the frames.

use crate::{
    ClientSession, EvalTask, LocalWorkers, MsgKind, Output, Phase, ProtocolError, Session,
};
use std::collections::VecDeque;

/// A stopwatch for [`Tap::activity`]. `std` has no clock on `wasm32-unknown-unknown` (calling it
/// panics), so there every activity reports 0 s.
#[derive(Clone, Copy)]
struct Stopwatch(#[cfg(not(target_arch = "wasm32"))] std::time::Instant);

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch(
            #[cfg(not(target_arch = "wasm32"))]
            std::time::Instant::now(),
        )
    }

    fn seconds(self) -> f64 {
        #[cfg(not(target_arch = "wasm32"))]
        return self.0.elapsed().as_secs_f64();
        #[cfg(target_arch = "wasm32")]
        0.0
    }
}

/// Frames and bytes that crossed in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalTraffic {
    /// Frames client → server.
    pub frames_up: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Frames server → client.
    pub frames_down: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
}

/// One of the two parties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The party holding the image.
    Client,
    /// The party holding the weights.
    Server,
}

impl Side {
    /// `"client"` or `"server"`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// Work the driver did on one side, as reported to [`Tap::activity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activity {
    /// [`Session::handle`] of a frame of this kind.
    Handle(MsgKind),
    /// A [`Session::poll_output`] that produced an output (e.g. the server garbling a chunk).
    Produce,
    /// The client's workers storing the chunks one frame brought ([`EvalTask::Store`]).
    StoreChunk,
    /// The client's workers evaluating a layer's chunks ([`EvalTask::Evaluate`], in parallel).
    EvaluateChunk,
}

/// Watches (and may tamper with) a local run. Every method has a do-nothing default.
pub trait Tap {
    /// A frame on its way from `from` to the other side; what is returned is delivered.
    fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
        let _ = from;
        frame
    }
    /// `side` spent `seconds` on `what` (0 on wasm32, which has no clock).
    fn activity(&mut self, side: Side, what: Activity, seconds: f64) {
        let _ = (side, what, seconds);
    }
    /// The results of a layer's delegated jobs, in the order they will be handed back to the
    /// client (reorder them to play workers that finish in any order).
    fn job_results(&mut self, results: &mut Vec<(u32, Vec<u8>)>) {
        let _ = results;
    }
}

/// The tap that does nothing.
impl Tap for () {}

/// Runs `client` against `server` until the client finishes. Either side's error ends the run and
/// is returned with the side. (A prepared client: [`run_local_on`].)
pub fn run_local(
    client: &mut ClientSession,
    server: &mut dyn Session,
) -> Result<LocalTraffic, (Side, ProtocolError)> {
    run_local_with(client, server, &mut ())
}

/// [`run_local`] with a tap. The schedule is a socket's: every frame the client has is delivered
/// first, then the server's output is pulled one frame at a time; delegated jobs run on
/// [`LocalWorkers`] as soon as the client hands them out.
pub fn run_local_with(
    client: &mut ClientSession,
    server: &mut dyn Session,
    tap: &mut dyn Tap,
) -> Result<LocalTraffic, (Side, ProtocolError)> {
    run_local_on(client, server, &mut LocalWorkers::default(), tap)
}

/// [`run_local_with`] on the caller's workers, which keep the stored garbled chunks between
/// calls: a prepared client ([`ClientSession::prepare`]) stops the run once it is ready for its
/// image; give it one ([`ClientSession::set_input`]) and run again on the same workers. The
/// traffic counts this call's frames.
pub fn run_local_on(
    client: &mut ClientSession,
    server: &mut dyn Session,
    workers: &mut LocalWorkers,
    tap: &mut dyn Tap,
) -> Result<LocalTraffic, (Side, ProtocolError)> {
    let mut traffic = LocalTraffic::default();
    let mut results: Vec<(u32, Vec<u8>)> = Vec::new();
    let client_err = |e| (Side::Client, e);
    let server_err = |e| (Side::Server, e);
    loop {
        // Everything the client has to say, and the work it hands out.
        let mut pending = VecDeque::new();
        let mut jobs = Vec::new();
        loop {
            let started = Stopwatch::start();
            let Some(out) = client.poll_output().map_err(client_err)? else {
                break;
            };
            tap.activity(Side::Client, Activity::Produce, started.seconds());
            match out {
                Output::Frame(f) => pending.push_back(f),
                Output::Job(task) => jobs.push(task),
                Output::Finished => return Ok(traffic),
            }
        }
        if !jobs.is_empty() {
            let what = match jobs[0] {
                EvalTask::Store(_) => Activity::StoreChunk,
                EvalTask::Evaluate { .. } => Activity::EvaluateChunk,
            };
            let started = Stopwatch::start();
            results.extend(workers.run(jobs).map_err(client_err)?);
            tap.activity(Side::Client, what, started.seconds());
        }
        for f in pending {
            let f = tap.frame(Side::Client, f);
            traffic.frames_up += 1;
            traffic.bytes_up += f.len() as u64;
            let started = Stopwatch::start();
            let kind = MsgKind::from_tag(f.first().copied().unwrap_or(0));
            server.handle(&f).map_err(server_err)?;
            if let Some(kind) = kind {
                let seconds = started.seconds();
                tap.activity(Side::Server, Activity::Handle(kind), seconds);
            }
        }
        if !results.is_empty() {
            tap.job_results(&mut results);
            for (id, shares) in results.drain(..) {
                client.complete_job(id, &shares).map_err(client_err)?;
            }
            continue;
        }
        // One server frame, pulled as a socket would.
        let started = Stopwatch::start();
        let next = server.poll_output().map_err(server_err)?;
        let f = match next {
            Some(Output::Frame(f)) => {
                tap.activity(Side::Server, Activity::Produce, started.seconds());
                f
            }
            Some(Output::Job(_)) => {
                return Err((
                    Side::Server,
                    ProtocolError::Internal("a server handed out a job"),
                ))
            }
            // A prepared client waits for its image: the caller gives it one and runs again.
            None if client.phase() == Phase::Ready => return Ok(traffic),
            Some(Output::Finished) | None => {
                return Err((
                    Side::Client,
                    ProtocolError::Unexpected {
                        got: "end of the server's frames",
                        state: "the client had not finished",
                    },
                ))
            }
        };
        let f = tap.frame(Side::Server, f);
        traffic.frames_down += 1;
        traffic.bytes_down += f.len() as u64;
        let started = Stopwatch::start();
        let kind = MsgKind::from_tag(f.first().copied().unwrap_or(0));
        client.handle(&f).map_err(client_err)?;
        if let Some(kind) = kind {
            tap.activity(Side::Client, Activity::Handle(kind), started.seconds());
        }
    }
}
