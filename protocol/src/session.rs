//! The transport-facing shape shared by both halves of the protocol.

/// What a session wants the transport to do after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these frames (possibly none) and wait for the next incoming frame.
    Continue(Vec<Vec<u8>>),
    /// Send these frames, then close: the session is over and successful.
    Finished(Vec<Vec<u8>>),
}

/// Why a session ended early. Every variant is safe to show to the peer: no secret is included.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame that does not decode (too short, unknown tag, wrong length, bad encoding).
    #[error("malformed {what} message: {reason}")]
    Malformed {
        /// Which message was being decoded.
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A well-formed message that is not allowed in the session's current state (out of order, replayed).
    #[error("unexpected {got} message while {state}")]
    Unexpected {
        /// The message that arrived.
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
    /// The peer reported an error and ended the session.
    #[error("peer error: {0}")]
    Peer(String),
    /// A cryptographic check failed (e.g. the OT-extension consistency check).
    #[error("cryptographic check failed: {0}")]
    Check(String),
    /// The session was used after it had finished or failed.
    #[error("session already closed")]
    Closed,
}

/// One half of the protocol as the transport sees it.
pub trait FrameSession: Send {
    /// The frames to send before anything has been received (e.g. the client's hello).
    fn start(&mut self) -> Result<Vec<Vec<u8>>, ProtocolError>;
    /// Consumes one incoming frame.
    fn handle(&mut self, frame: &[u8]) -> Result<Step, ProtocolError>;
    /// The next frame the session sends on its own, produced only when asked for, or `None` when
    /// it waits for the peer. Transports call this after every [`FrameSession::handle`] until it
    /// returns `None`, sending each frame before asking for the next: long outputs (the garbled
    /// layers) are thereby streamed under the socket's backpressure, one chunk in memory at a time.
    fn poll_frame(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        Ok(None)
    }
}

/// An HE decoding or size error, as the peer sees it.
pub(crate) fn he_err(e: cryptonas_he::HeError) -> ProtocolError {
    ProtocolError::Malformed {
        what: "HE",
        reason: e.to_string(),
    }
}

/// An OT decoding or size error, as the peer sees it.
pub(crate) fn ot_err(e: cryptonas_ot::OtError) -> ProtocolError {
    ProtocolError::Malformed {
        what: "OT",
        reason: e.to_string(),
    }
}
