//! Moves frames between a WebSocket and a sans-IO session, under the session's time limits.

use crate::Limits;
use axum::extract::ws::{CloseFrame, Message};
use cryptonas_protocol::{ErrorCode, Msg, Output, Phase, ProtocolError, Session};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::time::Duration;
use tokio::time::Instant;

/// What the transport needs from a session beyond [`Session`]; the defaults suit sessions
/// without phases or per-state limits (tests' toy sessions).
pub trait ServedSession: Session {
    /// The largest frame the session accepts in its current state (`None`: the global limit).
    fn max_frame_bytes(&self) -> Option<usize> {
        None
    }
    /// The session's phase: each has its own deadline ([`Limits`]); a session that never leaves
    /// [`Phase::Offline`] is held to the offline deadline.
    fn phase(&self) -> Phase {
        Phase::Offline
    }
}

/// Traffic and timing of one session.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct SessionStats {
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Length of the offline phase, once it is over.
    pub offline: Option<Duration>,
    /// How long the prepared session waited for its image (0 when the client sent it at once).
    pub prepared_wait: Option<Duration>,
    /// Length of the online phase, once it is over.
    pub online: Option<Duration>,
}

/// Why a session ended without finishing.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// The protocol rejected a frame; the client was told why.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// A frame larger than the session's current state accepts.
    #[error("protocol violation: a {got}-byte frame where at most {limit} bytes are expected")]
    FrameTooLarge {
        /// The frame's size.
        got: usize,
        /// What the state accepts.
        limit: usize,
    },
    /// A frame larger than any message of the model, cut by the WebSocket layer while reading.
    #[error("protocol violation: frame too large ({0})")]
    TooLargeForModel(String),
    /// A text frame: the protocol is binary only.
    #[error("protocol violation: text frame received; the protocol uses binary frames")]
    TextFrame,
    /// The client sent no data frame for too long (ping/pong do not count).
    #[error("timeout: no message from the client for {0:?}")]
    Idle(Duration),
    /// The client did not take a frame in time (it stopped reading).
    #[error("timeout: the client did not read for {0:?}")]
    SendTimeout(Duration),
    /// A prepared session got no image within the server's time to live for prepared sessions.
    #[error("the prepared session expired: no image within {0:?}; prepare a new session")]
    Expired(Duration),
    /// A phase ran past its deadline.
    #[error("timeout: the {phase} phase took longer than {limit:?}")]
    Deadline {
        /// "offline" or "online".
        phase: &'static str,
        /// The deadline.
        limit: Duration,
    },
    /// The client went away or the socket failed.
    #[error("connection lost: {0}")]
    Connection(String),
    /// The server is shutting down and its drain deadline passed.
    #[error("server shutting down")]
    Shutdown,
    /// A session step panicked or was cancelled (a bug; the session is dropped, others go on).
    #[error("server fault")]
    Internal,
}

impl PumpError {
    /// The WebSocket close code: 1008 for a protocol violation (1003 for a text frame, 1009 for an
    /// oversized one), 4008 for a timeout, 1001 for a shutdown, 1011 for a server fault.
    pub fn close_code(&self) -> u16 {
        match self {
            PumpError::Protocol(ProtocolError::Internal(_)) => 1011,
            PumpError::Protocol(_) => 1008,
            PumpError::FrameTooLarge { .. } | PumpError::TooLargeForModel(_) => 1009,
            PumpError::TextFrame => 1003,
            PumpError::Idle(_)
            | PumpError::SendTimeout(_)
            | PumpError::Deadline { .. }
            | PumpError::Expired(_) => 4008,
            PumpError::Shutdown => 1001,
            PumpError::Connection(_) | PumpError::Internal => 1011,
        }
    }

    /// The protocol's `Error` frame telling the client why (the protocol's one error channel; the
    /// close frame repeats it for WebSocket tools), or `None` when the socket is gone.
    pub fn error_frame(&self) -> Option<Vec<u8>> {
        let code = match self {
            PumpError::Protocol(e) => return Some(e.to_frame()),
            PumpError::Connection(_) => return None,
            PumpError::FrameTooLarge { .. } | PumpError::TooLargeForModel(_) => {
                ErrorCode::WrongSize
            }
            PumpError::TextFrame => ErrorCode::Malformed,
            PumpError::Expired(_) => ErrorCode::Expired,
            PumpError::Idle(_)
            | PumpError::SendTimeout(_)
            | PumpError::Deadline { .. }
            | PumpError::Shutdown => ErrorCode::Refused,
            PumpError::Internal => ErrorCode::Internal,
        };
        Some(
            Msg::Error {
                code,
                message: self.to_string(),
            }
            .encode(),
        )
    }

    /// Label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PumpError::Protocol(_)
            | PumpError::FrameTooLarge { .. }
            | PumpError::TooLargeForModel(_)
            | PumpError::TextFrame => "protocol",
            PumpError::Idle(_) | PumpError::SendTimeout(_) | PumpError::Deadline { .. } => {
                "timeout"
            }
            PumpError::Expired(_) => "expired",
            PumpError::Connection(_) | PumpError::Shutdown => "disconnect",
            PumpError::Internal => "internal",
        }
    }
}

/// Runs `session` over a socket until it finishes, fails, times out, the peer leaves or
/// `shutdown` resolves.
///
/// Generic over the socket so tests can drive it with channels. The peer gets a close frame whose
/// code tells protocol violations, timeouts and server faults apart ([`PumpError::close_code`])
/// and whose reason is the error text (no secrets are in protocol errors).
pub async fn pump<S, E>(
    socket: S,
    session: Box<dyn ServedSession>,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> (Result<(), PumpError>, SessionStats)
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
    E: std::fmt::Display,
    <S as Sink<Message>>::Error: std::fmt::Display,
{
    let (mut tx, mut rx) = socket.split();
    let mut stats = SessionStats::default();
    let result = tokio::select! {
        r = drive(&mut tx, &mut rx, session, limits, &mut stats) => r,
        () = shutdown => Err(PumpError::Shutdown),
    };
    let (code, reason) = match &result {
        Ok(()) => (1000, "done".to_string()),
        Err(e) => (e.close_code(), e.to_string()),
    };
    if let Some(frame) = result.as_ref().err().and_then(PumpError::error_frame) {
        let send = tx.send(Message::Binary(frame.into()));
        let _ = tokio::time::timeout(limits.send_timeout, send).await;
    }
    let close = CloseFrame {
        code,
        reason: truncate(&reason, 120).into(),
    };
    // Best effort, and never longer than the send timeout.
    let _ = tokio::time::timeout(limits.send_timeout, tx.send(Message::Close(Some(close)))).await;
    (result, stats)
}

/// The frame-driving loop: one place to adapt when the session interface changes.
async fn drive<T, R, E>(
    tx: &mut T,
    rx: &mut R,
    session: Box<dyn ServedSession>,
    limits: &Limits,
    stats: &mut SessionStats,
) -> Result<(), PumpError>
where
    T: Sink<Message> + Unpin,
    T::Error: std::fmt::Display,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let mut clock = Clock {
        limits,
        phase_start: started,
        phase: Phase::Offline,
        last_heard: started,
    };
    let mut session = Some(session);
    loop {
        // Everything the session has to say. Each frame is produced after the previous one was
        // handed to the socket, so a slow client holds back the server's work (the streamed
        // garbling) instead of its memory.
        loop {
            match off_runtime(&mut session, |s| s.poll_output()).await?? {
                Some(Output::Frame(f)) => {
                    send_all(tx, vec![f], stats, &clock).await?;
                    clock.check_deadline()?;
                }
                Some(Output::Finished) => {
                    if clock.phase == Phase::Online {
                        stats.online = Some(clock.phase_start.elapsed());
                    }
                    return Ok(());
                }
                Some(Output::Job(_)) => {
                    return Err(PumpError::Protocol(ProtocolError::Internal(
                        "a server session handed out a job",
                    )))
                }
                None => break,
            }
        }
        let phase = session.as_ref().map_or(Phase::Offline, |s| s.phase());
        clock.enter(phase, stats);
        clock.check_deadline()?;
        let frame = loop {
            let deadline = clock.read_deadline();
            let wake = match clock.phase {
                Phase::Ready => deadline.min(Instant::now() + clock.limits.keepalive),
                _ => deadline,
            };
            let Ok(next) = tokio::time::timeout_at(wake, rx.next()).await else {
                if wake < deadline {
                    send_ping(tx, &clock).await?;
                    continue;
                }
                return Err(clock.read_timeout());
            };
            match next {
                None => return Err(PumpError::Connection("client closed the socket".into())),
                Some(Err(e)) => return Err(read_error(e.to_string())),
                Some(Ok(Message::Binary(b))) => break b,
                Some(Ok(Message::Text(_))) => return Err(PumpError::TextFrame),
                Some(Ok(Message::Close(_))) => {
                    return Err(PumpError::Connection("client closed mid-protocol".into()))
                }
                // Ping/pong are answered by the library and are no sign of progress.
                Some(Ok(_)) => continue,
            }
        };
        clock.last_heard = Instant::now();
        stats.frames_in += 1;
        stats.bytes_in += frame.len() as u64;
        let limit = session
            .as_ref()
            .and_then(|s| s.max_frame_bytes())
            .unwrap_or(limits.max_frame_bytes)
            .min(limits.max_frame_bytes);
        if frame.len() > limit {
            return Err(PumpError::FrameTooLarge {
                got: frame.len(),
                limit,
            });
        }
        off_runtime(&mut session, move |s| s.handle(&frame)).await??;
    }
}

/// A failed read: the WebSocket layer's size cap (tungstenite's capacity error, whose text is the
/// only part of it the generic socket exposes) is the client's fault; anything else a lost
/// connection.
fn read_error(text: String) -> PumpError {
    if text.contains("Space limit exceeded") {
        PumpError::TooLargeForModel(text.replace("Space limit exceeded: ", ""))
    } else {
        PumpError::Connection(text)
    }
}

/// The session's timers: the current phase's deadline and the client's last data frame.
struct Clock<'a> {
    limits: &'a Limits,
    phase: Phase,
    phase_start: Instant,
    last_heard: Instant,
}

impl Clock<'_> {
    /// Follows the session into `phase`, booking the phase it leaves.
    fn enter(&mut self, phase: Phase, stats: &mut SessionStats) {
        if phase == self.phase {
            return;
        }
        let spent = Some(self.phase_start.elapsed());
        match self.phase {
            Phase::Offline => stats.offline = spent,
            Phase::Ready => stats.prepared_wait = spent,
            Phase::Online | Phase::Done => {}
        }
        // A client that sends its image at once never waits prepared.
        if phase == Phase::Online && stats.prepared_wait.is_none() {
            stats.prepared_wait = Some(Duration::ZERO);
        }
        self.phase = phase;
        self.phase_start = Instant::now();
    }

    fn limit(&self) -> Duration {
        match self.phase {
            Phase::Offline => self.limits.offline_deadline,
            Phase::Ready => self.limits.prepared_ttl,
            Phase::Online | Phase::Done => self.limits.online_deadline,
        }
    }

    fn deadline(&self) -> Instant {
        self.phase_start + self.limit()
    }

    fn deadline_error(&self) -> PumpError {
        let limit = self.limit();
        match self.phase {
            Phase::Ready => PumpError::Expired(limit),
            Phase::Offline => PumpError::Deadline {
                phase: "offline",
                limit,
            },
            Phase::Online | Phase::Done => PumpError::Deadline {
                phase: "online",
                limit,
            },
        }
    }

    fn check_deadline(&self) -> Result<(), PumpError> {
        if Instant::now() >= self.deadline() {
            Err(self.deadline_error())
        } else {
            Ok(())
        }
    }

    /// When to give up reading: a prepared session waits for its user, so only its time to live
    /// bounds it; otherwise the idle timeout too.
    fn read_deadline(&self) -> Instant {
        match self.phase {
            Phase::Ready => self.deadline(),
            _ => (self.last_heard + self.limits.idle_timeout).min(self.deadline()),
        }
    }

    fn read_timeout(&self) -> PumpError {
        if Instant::now() >= self.deadline() {
            self.deadline_error()
        } else {
            PumpError::Idle(self.limits.idle_timeout)
        }
    }
}

/// A keep-alive ping, within the send timeout.
async fn send_ping<T>(tx: &mut T, clock: &Clock<'_>) -> Result<(), PumpError>
where
    T: Sink<Message> + Unpin,
    T::Error: std::fmt::Display,
{
    let send = tx.send(Message::Ping(Vec::new().into()));
    match tokio::time::timeout(clock.limits.send_timeout, send).await {
        Ok(r) => r.map_err(|e| PumpError::Connection(e.to_string())),
        Err(_) => Err(PumpError::SendTimeout(clock.limits.send_timeout)),
    }
}

/// Runs a session step on the blocking pool: HE responses and garbling take milliseconds to
/// seconds of CPU and must not stall the runtime's other sessions.
async fn off_runtime<T: Send + 'static>(
    slot: &mut Option<Box<dyn ServedSession>>,
    work: impl FnOnce(&mut dyn ServedSession) -> T + Send + 'static,
) -> Result<T, PumpError> {
    let mut session = slot
        .take()
        .ok_or(ProtocolError::Internal("a session step was lost"))?;
    let (session, out) = tokio::task::spawn_blocking(move || {
        let out = work(session.as_mut());
        (session, out)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "session step failed");
        PumpError::Internal
    })?;
    *slot = Some(session);
    Ok(out)
}

/// Sends frames, each within the send timeout and the phase deadline.
async fn send_all<T>(
    tx: &mut T,
    frames: Vec<Vec<u8>>,
    stats: &mut SessionStats,
    clock: &Clock<'_>,
) -> Result<(), PumpError>
where
    T: Sink<Message> + Unpin,
    T::Error: std::fmt::Display,
{
    for f in frames {
        stats.frames_out += 1;
        stats.bytes_out += f.len() as u64;
        let send_limit = Instant::now() + clock.limits.send_timeout;
        let by = send_limit.min(clock.deadline());
        match tokio::time::timeout_at(by, tx.send(Message::Binary(f.into()))).await {
            Ok(r) => r.map_err(|e| PumpError::Connection(e.to_string()))?,
            Err(_) if by < send_limit => return Err(clock.deadline_error()),
            Err(_) => return Err(PumpError::SendTimeout(clock.limits.send_timeout)),
        }
    }
    Ok(())
}

/// At most `max` bytes of `s` (on a character boundary).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Text from a peer, fit for a log line: control characters escaped (no forged lines), at most
/// `max` bytes, with the original length when cut.
pub fn sanitize_for_log(s: &str, max: usize) -> String {
    let head = truncate(s, max);
    let mut out: String = head.escape_debug().collect();
    if head.len() < s.len() {
        out.push_str(&format!("… ({} bytes in all)", s.len()));
    }
    out
}
