//! The transport-facing shape shared by both halves of the protocol, and its one error type.

use crate::msgs::{ErrorCode, Msg, MsgKind};
use crate::EvalTask;

/// What a session asks of its transport next ([`Session::poll_output`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this frame to the peer.
    Frame(Vec<u8>),
    /// Client only: hand this evaluation work to a worker and pass its result to
    /// [`crate::ClientSession::complete_job`].
    Job(EvalTask),
    /// The session is over and succeeded: close the connection once the frames given before it
    /// are sent. Nothing follows.
    Finished,
}

/// One half of the protocol as every transport sees it: frames go in through [`Session::handle`],
/// and everything the session wants done comes out, one item at a time, through
/// [`Session::poll_output`].
///
/// Transports drive it with one loop: after each incoming frame (and at the start: the client's
/// hello is its first output), call `poll_output` until it returns `None`, sending each frame
/// before asking for the next. Long outputs (the server's garbled layers) are produced only when
/// asked for, so they stream under the socket's backpressure with one chunk in memory at a time.
/// After an error the session is closed: the transport sends [`ProtocolError::to_frame`] and
/// closes the connection.
pub trait Session: Send {
    /// Consumes one incoming frame. Its effects come out of [`Session::poll_output`].
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError>;
    /// The next output, or `None` while the session waits for the peer (or for job results).
    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError>;
}

/// Why a session ended early. Every variant is safe to show to the peer: no secret is included.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame that does not decode (too short, unknown tag, wrong length, bad encoding).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message or field was being decoded.
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A well-formed message that is not allowed in the session's current state (out of order,
    /// replayed).
    #[error("unexpected {got} while {state}")]
    Unexpected {
        /// What arrived (a message kind, possibly qualified, e.g. "ServerLabels for another stage").
        got: &'static str,
        /// What the session was waiting for.
        state: &'static str,
    },
    /// A message whose sizes disagree with the model being served.
    #[error("wrong size in {what}: expected {expected}, got {got}")]
    WrongSize {
        /// Which field.
        what: &'static str,
        /// What the model requires.
        expected: usize,
        /// What arrived.
        got: usize,
    },
    /// The peers speak different protocol versions.
    #[error("protocol version mismatch: this side speaks {ours}, the peer {theirs}")]
    Version {
        /// [`crate::PROTOCOL_VERSION`].
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// A cryptographic check failed (e.g. the OT-extension consistency check).
    #[error("cryptographic check failed: {0}")]
    Check(String),
    /// The peer reported an error and ended the session.
    #[error("peer error ({}): {message}", code.name())]
    Peer {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's reason.
        message: String,
    },
    /// The session was used after it had finished or failed.
    #[error("session already closed")]
    Closed,
    /// An invariant of this implementation broke: a bug, never the peer's doing.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl ProtocolError {
    /// The code this error travels with in an [`Msg::Error`] frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Malformed { .. } => ErrorCode::Malformed,
            ProtocolError::Unexpected { .. } | ProtocolError::Closed => ErrorCode::Unexpected,
            ProtocolError::WrongSize { .. } => ErrorCode::WrongSize,
            ProtocolError::Version { .. } => ErrorCode::Version,
            ProtocolError::Check(_) => ErrorCode::Check,
            // Relaying a peer's error: this side gives up because the other did.
            ProtocolError::Peer { .. } => ErrorCode::Refused,
            ProtocolError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The frame that tells the peer why this side stops (send it, then close).
    pub fn to_frame(&self) -> Vec<u8> {
        Msg::Error {
            code: self.code(),
            message: self.to_string(),
        }
        .encode()
    }

    /// An out-of-order message: `got` arrived while the session was `state`.
    pub(crate) fn unexpected(got: MsgKind, state: &'static str) -> ProtocolError {
        ProtocolError::Unexpected {
            got: got.name(),
            state,
        }
    }
}

/// A ring-vector error in `what`, as the peer sees it: a wrong length is a size error, anything
/// else (a value of k bits or more) a malformed message.
pub(crate) fn ring_err(what: &'static str) -> impl Fn(cryptonas_ring::RingError) -> ProtocolError {
    move |e| match e {
        cryptonas_ring::RingError::Length { expected, got, .. } => ProtocolError::WrongSize {
            what,
            expected,
            got,
        },
        e => ProtocolError::Malformed {
            what,
            reason: e.to_string(),
        },
    }
}

/// An HE decoding or size error, as the peer sees it.
pub(crate) fn he_err(e: cryptonas_he::HeError) -> ProtocolError {
    ProtocolError::Malformed {
        what: "HE message",
        reason: e.to_string(),
    }
}

/// An OT decoding or size error, as the peer sees it.
pub(crate) fn ot_err(e: cryptonas_ot::OtError) -> ProtocolError {
    ProtocolError::Malformed {
        what: "OT message",
        reason: e.to_string(),
    }
}
