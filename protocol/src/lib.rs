//! Sans-IO client and server sessions of the private-inference protocol (DELPHI-style, semi-honest).
//!
//! A session is a pure state machine: the transport hands it one binary frame at a time and sends
//! whatever frames it returns. Nothing here touches a socket, a clock or a thread.
//!
//! ```text
//! client                                             server
//! ClientHello ───────────────────────────────────▶
//!             ◀──────────────────────────────────── ServerPlan (public plan, session id)
//! ClientHeKey, ClientHeMasks × stages ───────────▶  (HE: Enc(Σ W·r − s_i), flooded)
//!             ◀──────────────────────────────────── ServerHeResponse × stages
//! ClientOtSetup ─▶ ◀─ ServerOtChoices                (Chou–Orlandi base OTs)
//! ClientOtExtend ─▶ ◀─ ServerOtChallenge             (KOS correlated OT on the client's share bits,
//! ClientOtResponse ─▶                                 Δ = the garbling Δ)
//!             ◀──────────────────────────────────── ServerGarbled × chunks of every ReLU layer
//!                                                     (streamed: garbled as the socket drains)
//! ─────────────────────────── online ────────────────────────────────────────
//! ClientInput (x − r) ───────────────────────────▶
//!             ◀──────────────────────────────────── ServerLabels (stage 0)
//! ClientMasked (o_0 − r_0) ──────────────────────▶   … one round trip per ReLU layer …
//!             ◀──────────────────────────────────── ServerOutput (server's logits share)
//! ```

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

pub use client::{ClientInput, ClientSession, EvalTask, LayerCost, Outcome, Phase, Traffic};
pub use eval::{ChunkEvaluator, ChunkJob, LocalWorkers};
pub use local::{run_local, run_local_with, Activity, LocalTraffic, Side, Tap};
pub use msgs::{ErrorCode, FrameInfo, Msg, MsgKind, PROTOCOL_VERSION};
pub use plan::{ModelLoadError, Plan, PlanStage, ServerModel};
pub use server::{OfflineMaterial, ServerSession, GARBLE_CHUNK};
pub(crate) use session::ring_err;
pub use session::{Output, ProtocolError, Session};
pub use verify::{verify_local, Divergence, VerifyReport};
