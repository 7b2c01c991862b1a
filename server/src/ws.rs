//! Moves frames between a WebSocket and a sans-IO session.

use crate::Limits;
use axum::extract::ws::Message;
use cryptonas_protocol::{Output, ProtocolError, Session};
use futures_util::{Sink, SinkExt, Stream, StreamExt};

/// Traffic of one finished session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Why a session ended without finishing.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// The protocol rejected a frame; the client was told why.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The client sent nothing for too long.
    #[error("idle timeout")]
    Idle,
    /// The client went away or the socket failed.
    #[error("connection lost: {0}")]
    Connection(String),
    /// A session step panicked or was cancelled (a bug; the session is dropped, others go on).
    #[error("internal error")]
    Internal,
    /// A text frame: the protocol is binary only.
    #[error("text frame received; the protocol uses binary frames")]
    TextFrame,
}

/// Runs `session` over a socket until it finishes, fails, times out or the peer leaves.
///
/// Generic over the socket so tests can drive it with channels. On a protocol error the peer gets
/// the protocol's `Error` frame (code and reason; no secrets are in protocol errors), then a close
/// frame.
pub async fn pump<S, E>(
    socket: S,
    session: Box<dyn Session>,
    limits: &Limits,
) -> Result<SessionStats, PumpError>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
    E: std::fmt::Display,
    <S as Sink<Message>>::Error: std::fmt::Display,
{
    let (mut tx, mut rx) = socket.split();
    let mut stats = SessionStats::default();
    let mut session = Some(session);
    let result = async {
        loop {
            // Everything the session has to say. Each frame is produced after the previous one
            // was handed to the socket, so a slow client holds back the server's work (the
            // streamed garbling) instead of its memory.
            loop {
                match off_runtime(&mut session, |s| s.poll_output()).await?? {
                    Some(Output::Frame(f)) => send_all(&mut tx, vec![f], &mut stats).await?,
                    Some(Output::Finished) => return Ok(()),
                    Some(Output::Job(_)) => {
                        return Err(PumpError::Protocol(ProtocolError::Internal(
                            "a server session handed out a job",
                        )))
                    }
                    None => break,
                }
            }
            let next = tokio::time::timeout(limits.idle_timeout, rx.next())
                .await
                .map_err(|_| PumpError::Idle)?;
            let frame = match next {
                None => return Err(PumpError::Connection("client closed the socket".into())),
                Some(Err(e)) => return Err(PumpError::Connection(e.to_string())),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Text(_))) => return Err(PumpError::TextFrame),
                Some(Ok(Message::Close(_))) => {
                    return Err(PumpError::Connection("client closed mid-protocol".into()))
                }
                Some(Ok(_)) => continue, // ping/pong are answered by the library
            };
            stats.frames_in += 1;
            stats.bytes_in += frame.len() as u64;
            off_runtime(&mut session, move |s| s.handle(&frame)).await??;
        }
    }
    .await;
    if let Err(PumpError::Protocol(e)) = &result {
        // The one error channel of the protocol; the close reason repeats it for WebSocket tools.
        let _ = tx.send(Message::Binary(e.to_frame().into())).await;
    }
    let reason = match &result {
        Ok(()) => "done".to_string(),
        Err(e) => e.to_string(),
    };
    let close = axum::extract::ws::CloseFrame {
        code: if result.is_ok() { 1000 } else { 1008 },
        reason: truncate_reason(&reason).into(),
    };
    let _ = tx.send(Message::Close(Some(close))).await;
    result.map(|()| stats)
}

/// Runs a session step on the blocking pool: HE responses and garbling take milliseconds to
/// seconds of CPU and must not stall the runtime's other sessions.
async fn off_runtime<T: Send + 'static>(
    slot: &mut Option<Box<dyn Session>>,
    work: impl FnOnce(&mut dyn Session) -> T + Send + 'static,
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

async fn send_all<T>(
    tx: &mut T,
    frames: Vec<Vec<u8>>,
    stats: &mut SessionStats,
) -> Result<(), PumpError>
where
    T: Sink<Message> + Unpin,
    T::Error: std::fmt::Display,
{
    for f in frames {
        stats.frames_out += 1;
        stats.bytes_out += f.len() as u64;
        tx.send(Message::Binary(f.into()))
            .await
            .map_err(|e| PumpError::Connection(e.to_string()))?;
    }
    Ok(())
}

/// Close reasons are limited to 123 bytes by RFC 6455.
fn truncate_reason(s: &str) -> String {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
