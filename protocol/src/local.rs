//! Both halves in one process, exchanging frames through queues: the reference transport for tests
//! and benchmarks (no sockets, same bytes).

use crate::{FrameSession, ProtocolError, Step};
use std::collections::VecDeque;

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

/// Runs `client` against `server` until the client finishes. Either side's error ends the run and
/// is returned (tagged with the side).
pub fn run_local(
    client: &mut dyn FrameSession,
    server: &mut dyn FrameSession,
) -> Result<LocalTraffic, (&'static str, ProtocolError)> {
    let mut traffic = LocalTraffic::default();
    let mut up: VecDeque<Vec<u8>> = client.start().map_err(|e| ("client", e))?.into();
    let mut down: VecDeque<Vec<u8>> = server.start().map_err(|e| ("server", e))?.into();
    loop {
        while let Some(f) = up.pop_front() {
            traffic.frames_up += 1;
            traffic.bytes_up += f.len() as u64;
            match server.handle(&f).map_err(|e| ("server", e))? {
                Step::Continue(out) | Step::Finished(out) => down.extend(out),
            }
        }
        // Streamed server output is pulled one frame at a time, as a socket would.
        let next = match down.pop_front() {
            Some(f) => Some(f),
            None => server.poll_frame().map_err(|e| ("server", e))?,
        };
        let Some(f) = next else {
            return Err(("client", ProtocolError::Closed));
        };
        traffic.frames_down += 1;
        traffic.bytes_down += f.len() as u64;
        match client.handle(&f).map_err(|e| ("client", e))? {
            Step::Continue(out) => {
                up.extend(out);
                while let Some(f) = client.poll_frame().map_err(|e| ("client", e))? {
                    up.push_back(f);
                }
            }
            Step::Finished(out) => {
                up.extend(out);
                return Ok(traffic);
            }
        }
    }
}
