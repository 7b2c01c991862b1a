//! Sans-IO client and server sessions of the private-inference protocol.
//!
//! A session is a pure state machine: the transport hands it one binary frame at a time and sends
//! whatever frames it returns. Nothing here touches a socket, a clock or a thread.

mod session;

pub use session::{FrameSession, ProtocolError, Step};
