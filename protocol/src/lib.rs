#![doc = include_str!("../README.md")]

mod client;
mod eval;
mod local;
mod msgs;
mod plan;
mod server;
mod session;
#[cfg(feature = "test-utils")]
pub mod testing;
mod verify;

pub use client::{
    ClientInput, ClientSession, EvalTask, LayerCost, Outcome, Phase, Revealed, Traffic, LABELS_HEAD,
};
pub use eval::{ChunkEvaluator, ChunkJob, LocalWorkers};
pub use local::{run_local, run_local_on, run_local_with, Activity, LocalTraffic, Side, Tap};
pub use msgs::{ErrorCode, FrameInfo, GarbledLayout, Msg, MsgKind, OT_PART_ROWS, PROTOCOL_VERSION};
pub use plan::{
    CircuitKind, CircuitSpec, ModelLoadError, OutputPolicy, Plan, PlanStage, ServerModel,
    SessionEstimate, StageCircuit, StageDecoding, StageOp,
};
pub use server::{OfflineMaterial, ServerSession, GARBLE_CHUNK};
pub(crate) use session::ring_err;
pub use session::{Output, ProtocolError, Session};
pub use verify::{verify_local, Divergence, VerifyReport};
