//! The client's half of one inference, as a sans-IO state machine: one state per message it
//! waits for, one handler per state.
//!
//! | state | waits for | handler | sends (and hands out) | next |
//! |---|---|---|---|---|
//! | (new) | — | [`ClientSession::new`] or [`ClientSession::prepare`] | `ClientHello` | `AwaitPlan` |
//! | `AwaitPlan` | `ServerPlan` | `on_plan` | `ClientHeKey` | `AwaitHe` |
//! | `AwaitHe` | `ServerHeResponse` × stages, in order | `on_he_response`; `next_he_masks` while masks are left and the outbox is empty | one `ClientHeMasks` per stage, then `ClientOtSetup` | after the last response: `AwaitOtChoices` |
//! | `AwaitOtChoices` | `ServerOtChoices` | `on_ot_choices` | — (KOS on the bits of every ReLU share) | `SendingOtParts` |
//! | `SendingOtParts` | the outbox to empty | `next_ot_part` | `ClientOtExtend` parts, one per call | after the last: `AwaitOtChallenge` |
//! | `AwaitOtChallenge` | `ServerOtChallenge` | `on_ot_challenge` | `ClientOtResponse` | `AwaitGarbled` |
//! | `AwaitGarbled` | `ServerGarbled` chunks, layer by layer, front to back | `on_garbled` | a `Store` job per chunk; after the last: `ClientInput` (x − r) if the image is known | `AwaitLabels`, or `AwaitImage` |
//! | `AwaitImage` | the image ([`ClientSession::set_input`]) | `on_image` | `ClientInput` (x − r) | `AwaitLabels` |
//! | `AwaitLabels` | `ServerLabels` of the next ReLU layer | `on_labels` | an `Evaluate` job per chunk of the layer | `AwaitJobs` |
//! | `AwaitJobs` | every job's result ([`ClientSession::complete_job`]) | `on_job_result` | after the last: `ClientMasked` (o − r') | `AwaitLabels` or `AwaitOutput` |
//! | `AwaitOutput` | `ServerOutput` (output policy `logits`) | `on_output` | — (the logits are the client's) | `Done` |
//!
//! Under the `class` and `top-k` output policies the last stage is a garbled top-k like any
//! garbled layer: its job's result is the revealed class indices (`on_ranked`), and the session
//! ends there, without `ServerOutput`.
//!
//! Frames made by `next_he_masks` and `next_ot_part` are made one at a time, from
//! [`Session::poll_output`] when the outbox is empty: a transport that sends each frame before it
//! polls again holds one stage's masks or one matrix part (1 MiB) at a time.
//!
//! Any other message, any malformed frame, and a peer's `Error` end the session (`Done`, with the
//! error returned): the transport sends [`ProtocolError::to_frame`] and closes.
//!
//! **Preparing before the image is known.** Nothing before `ClientInput` depends on the image, so
//! a session made with [`ClientSession::prepare`] runs the whole offline phase, then waits in
//! `AwaitImage` ([`Phase::Ready`]) until [`ClientSession::set_input`] gives it the image: the
//! user's click then costs only the online phase. An image that cannot be used (corrupt, wrong
//! size) is refused by `set_input` without ending the prepared session.
//!
//! Garbled evaluation is work the session hands to its transport as [`EvalTask`] jobs, so one code
//! path serves every transport: the native client and [`crate::run_local`] run them on
//! [`crate::LocalWorkers`] (a layer's chunks in parallel), a browser on its Web Workers.

use crate::msgs::{FrameInfo, Msg, MsgKind, OT_PART_ROWS, PROTOCOL_VERSION};
use crate::plan::{OutputPolicy, Plan};
use crate::plan::{PlanStage, StageCircuit};
use crate::session::{he_err, ot_err, Output, Session};
use crate::{ring_err, ChunkJob, ProtocolError};
use cryptonas_crypto::{Block, Csprng};
use cryptonas_he::{ClientKeys, ClientStage, HeParams};
use cryptonas_model::Source;
use cryptonas_ot::chou_orlandi::ReceiverChoices;
use cryptonas_ot::kos::{self, CheckChallenge, CotReceiverSeeds};
use cryptonas_ring::{RingVec, RingWidth};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use zeroize::Zeroizing;

/// What the client classifies.
#[derive(Clone, Debug)]
pub enum ClientInput {
    /// An encoded image (PNG or JPEG), resized and normalised with the model's statistics.
    ImageBytes(Vec<u8>),
    /// An already normalised CHW image.
    Normalised(Vec<f32>),
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Preprocessing (independent of the image).
    Offline,
    /// Preprocessing done; waiting for the image ([`ClientSession::set_input`]).
    Ready,
    /// From the masked image to the logits.
    Online,
    /// Finished.
    Done,
}

/// Bytes of one garbled layer (a ReLU or max-pool layer, or the output's top-k).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Stage index.
    pub stage: usize,
    /// ReLUs in the layer (0 for the output's top-k).
    pub relus: usize,
    /// Garbled tables and output decoding received offline.
    pub offline_down: u64,
    /// Server labels received online.
    pub online_down: u64,
    /// Masked shares sent online (for the next stages).
    pub online_up: u64,
}

/// Traffic of one inference, as counted by the client (also read back from the browser client's
/// JSON by the benchmark harness).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Offline bytes client → server.
    pub offline_up: u64,
    /// Offline bytes server → client.
    pub offline_down: u64,
    /// Online bytes client → server.
    pub online_up: u64,
    /// Online bytes server → client.
    pub online_down: u64,
    /// Offline HE bytes up / down (part of the offline totals).
    pub he_up: u64,
    /// HE bytes down.
    pub he_down: u64,
    /// OT bytes up / down (part of the offline totals).
    pub ot_up: u64,
    /// OT bytes down.
    pub ot_down: u64,
    /// Online round trips (one per ReLU layer plus the output).
    pub online_rounds: u32,
    /// Per ReLU layer.
    pub layers: Vec<LayerCost>,
}

/// The result of a private inference: what the model's [`OutputPolicy`] let the client learn
/// ([`Outcome::revealed`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// What the server let the client learn.
    pub policy: OutputPolicy,
    /// Class indices the client learned, most likely first (equal logits: lower index first):
    /// every class under `logits`, the top k under `top-k`, one under `class`.
    pub ranked: Vec<usize>,
    /// Logits as ring elements at scale `f_z` (bit-exact with the plaintext fixed-point engine);
    /// empty unless the policy is `logits`.
    pub logits_ring: Vec<u64>,
    /// Logits as reals; empty unless the policy is `logits`.
    pub logits: Vec<f64>,
    /// Arg-max class (`ranked[0]`).
    pub class: usize,
    /// The quantized image the client used (for checking against the plaintext engine).
    pub input_ring: Vec<u64>,
}

/// What a private inference revealed, as its policy shapes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Revealed<'a> {
    /// The logits (reals; the ring values are [`Outcome::logits_ring`]).
    Logits(&'a [f64]),
    /// The indices of the most likely classes, most likely first.
    TopK(&'a [usize]),
    /// The most likely class.
    Class(usize),
}

impl Outcome {
    /// What the inference revealed.
    pub fn revealed(&self) -> Revealed<'_> {
        match self.policy {
            OutputPolicy::Logits => Revealed::Logits(&self.logits),
            OutputPolicy::TopK(_) => Revealed::TopK(&self.ranked),
            OutputPolicy::Class => Revealed::Class(self.class),
        }
    }
}

/// Bytes of a `ServerLabels` frame before its labels: the tag and the stage index.
pub const LABELS_HEAD: usize = 1 + 4;

/// Evaluation work for the transport's workers ([`Output::Job`]).
#[derive(Clone, PartialEq, Eq)]
pub enum EvalTask {
    /// Offline: keep this chunk (e.g. in a worker) until its labels come.
    Store(ChunkJob),
    /// Online: evaluate job `id` on these server labels and pass the packed shares to
    /// [`ClientSession::complete_job`].
    Evaluate {
        /// The [`ChunkJob::id`].
        id: u32,
        /// The server's active labels for the chunk; empty when the session saw only the
        /// frame's head ([`ClientSession::handle_labels_head`]): the transport then cuts them
        /// from the frame at `labels_at`.
        garbler_labels: Vec<u8>,
        /// Where the chunk's labels lie in the `ServerLabels` frame.
        labels_at: std::ops::Range<usize>,
    },
}

impl std::fmt::Debug for EvalTask {
    /// Ids and sizes only: labels are secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalTask::Store(job) => write!(f, "Store({job:?})"),
            EvalTask::Evaluate {
                id, garbler_labels, ..
            } => {
                write!(
                    f,
                    "Evaluate(job {id}, {} B of labels)",
                    garbler_labels.len()
                )
            }
        }
    }
}

/// What the client holds for the whole session: the public plan and its own secrets.
struct Ctx {
    plan: Plan,
    k: RingWidth,
    session_id: u64,
    pi_key: [u8; 16],
    /// The quantized image x, once known.
    input: Option<RingVec>,
    /// r: the image's mask.
    mask_image: RingVec,
    /// r_i: the mask of every ReLU layer's output (empty for the logits stage).
    mask_relu: Vec<RingVec>,
    circuits: Vec<Option<StageCircuit>>,
    /// c_i: the client's share of every stage (from HE).
    shares: Vec<RingVec>,
}

/// One streamed chunk of a garbled layer, held by a worker as job `id`.
#[derive(Clone, Copy)]
struct ChunkRef {
    id: u32,
    first: usize,
    count: usize,
}

/// One `ServerGarbled` chunk as its handler sees it.
struct GarbledChunk {
    stage: u32,
    first: u32,
    count: u32,
    bulk: Bulk,
    corrections: Vec<u8>,
}

/// A chunk's tables and output decoding: in the frame, or (a transport moved them straight to the
/// evaluating worker, [`ClientSession::handle_garbled_head`]) only their declared sizes.
enum Bulk {
    Inline { tables: Vec<u8>, decoding: Vec<u8> },
    Detached { tables: usize, decoding: usize },
}

/// The sizes of a chunk's tables and output decoding against its circuit.
fn check_bulk(
    circuit: &StageCircuit,
    count: usize,
    tables: usize,
    decoding: usize,
) -> Result<(), ProtocolError> {
    let gc = |what: &'static str| {
        move |e: cryptonas_gc::GarbleError| ProtocolError::Malformed {
            what,
            reason: e.to_string(),
        }
    };
    cryptonas_gc::GarbledTables::check_len(circuit.circuit(), count, tables)
        .map_err(gc("tables"))?;
    circuit
        .check_decoding_len(count, decoding)
        .map_err(gc("output decoding"))
}

/// Sending the HE masks (a stage's frame at a time, as the transport asks) and the base-OT setup
/// after them, and waiting for the HE responses.
struct AwaitHe {
    ctx: Ctx,
    keys: ClientKeys,
    params: HeParams,
    /// The decryption state of every stage whose masks have gone out.
    stages: Vec<cryptonas_he::ClientState>,
    /// Set once the base-OT setup has gone out, right after the last stage's masks.
    ot: Option<kos::Receiver<kos::state::BaseSetup>>,
}

/// Receiving the garbled layers.
struct AwaitGarbled {
    ctx: Ctx,
    /// What regenerates the OT's label of any share bit (the labels are not kept: a chunk's
    /// are made when it arrives and leave with its job).
    ot: CotReceiverSeeds,
    /// The ReLU layer being received and how many of its ReLUs have arrived.
    stage: usize,
    received: usize,
    chunks: Vec<Vec<ChunkRef>>,
}

/// The online phase: the chunks still held by workers, and the next stage.
struct Online {
    ctx: Ctx,
    chunks: Vec<Vec<ChunkRef>>,
    next: usize,
}

/// A layer whose chunks the workers are evaluating.
struct AwaitJobs {
    online: Online,
    stage: usize,
    chunks: Vec<ChunkRef>,
    results: Vec<Option<RingVec>>,
}

enum State {
    AwaitPlan,
    AwaitHe(Box<AwaitHe>),
    AwaitOtChoices(Box<Ctx>, kos::Receiver<kos::state::BaseSetup>),
    SendingOtParts(Box<Ctx>, kos::Receiver<kos::state::Extending>),
    AwaitOtChallenge(Box<Ctx>, kos::Receiver<kos::state::Extended>),
    AwaitGarbled(Box<AwaitGarbled>),
    AwaitImage(Box<Online>),
    AwaitLabels(Box<Online>),
    AwaitJobs(Box<AwaitJobs>),
    AwaitOutput(Box<Online>),
    Done,
}

impl State {
    /// What the state waits for, for errors.
    fn waits_for(&self) -> &'static str {
        match self {
            State::AwaitPlan => "waiting for ServerPlan",
            State::AwaitHe(_) => "waiting for ServerHeResponse",
            State::AwaitOtChoices(..) => "waiting for ServerOtChoices",
            State::SendingOtParts(..) => "sending the ClientOtExtend parts",
            State::AwaitOtChallenge(..) => "waiting for ServerOtChallenge",
            State::AwaitGarbled(_) => "waiting for ServerGarbled",
            State::AwaitImage(_) => "prepared, waiting for the image",
            State::AwaitLabels(_) => "waiting for ServerLabels",
            State::AwaitJobs(_) => "evaluating a layer",
            State::AwaitOutput(_) => "waiting for ServerOutput",
            State::Done => "closed",
        }
    }
}

/// How the image becomes ring elements (known once the plan arrived).
#[derive(Clone)]
struct InputFormat {
    spec: cryptonas_model::InputSpec,
    len: usize,
    f_in: u32,
    k: RingWidth,
}

/// The client's session for one inference.
pub struct ClientSession {
    /// The image given before the plan arrived (quantized once it has).
    input: Option<ClientInput>,
    format: Option<InputFormat>,
    rng: Csprng,
    state: State,
    outbox: VecDeque<Output>,
    traffic: Traffic,
    phase: Phase,
    outcome: Option<Outcome>,
    classes: Vec<String>,
    relus: usize,
    record: Option<ClientRecord>,
    next_job: u32,
}

/// The client's shares of one inference, kept only for the per-layer diff harness.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientRecord {
    /// c_i: the client's share of every stage output (from HE).
    pub(crate) stage_shares: Vec<Vec<u64>>,
    /// o_i: the client's share of every ReLU layer's output (from the garbled circuits).
    pub(crate) relu_shares: Vec<Vec<u64>>,
}

impl ClientSession {
    /// A session classifying `input`, with a fresh generator. Its first output is the hello.
    pub fn new(input: ClientInput, rng: Csprng) -> Self {
        let mut session = Self::prepare(rng);
        session.input = Some(input);
        session
    }

    /// A session that runs the offline phase before it knows the image: it waits in
    /// [`Phase::Ready`] for [`ClientSession::set_input`]. Its first output is the hello.
    pub fn prepare(rng: Csprng) -> Self {
        let mut session = ClientSession {
            input: None,
            format: None,
            rng,
            state: State::AwaitPlan,
            outbox: VecDeque::new(),
            traffic: Traffic::default(),
            phase: Phase::Offline,
            outcome: None,
            classes: Vec::new(),
            relus: 0,
            record: None,
            next_job: 0,
        };
        session.send(Msg::ClientHello {
            version: PROTOCOL_VERSION,
        });
        session
    }

    /// A worker's result for job `id`: the client's output shares, packed as the ring's wire
    /// format ([`crate::ChunkEvaluator::evaluate_packed`]). Once the layer's last job is in, the
    /// layer's `ClientMasked` comes out of [`Session::poll_output`]. An error closes the session.
    pub fn complete_job(&mut self, id: u32, packed: &[u8]) -> Result<(), ProtocolError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let State::AwaitJobs(jobs) = state else {
            let waits = state.waits_for();
            self.state = state;
            return Err(ProtocolError::Unexpected {
                got: "a job result",
                state: waits,
            });
        };
        self.state = self.on_job_result(jobs, id, packed)?;
        Ok(())
    }

    /// Gives the session its image. A prepared session ([`Phase::Ready`]) sends `ClientInput` at
    /// once (the next [`Session::poll_output`]); earlier, the image is kept until the offline
    /// phase ends. An image that cannot be used is refused with the session left as it was, so a
    /// prepared session survives a bad file; a second image, or one after the end, is refused.
    pub fn set_input(&mut self, input: ClientInput) -> Result<(), ProtocolError> {
        let already = ProtocolError::Unexpected {
            got: "a second image",
            state: "a session classifies one image",
        };
        if self.input.is_some() {
            return Err(already);
        }
        let Some(format) = self.format.clone() else {
            if matches!(self.state, State::AwaitPlan) {
                self.input = Some(input);
                return Ok(());
            }
            return Err(ProtocolError::Unexpected {
                got: "an image",
                state: self.state.waits_for(),
            });
        };
        let slot = match &mut self.state {
            State::AwaitHe(he) => &mut he.ctx.input,
            State::AwaitOtChoices(ctx, _) | State::AwaitOtChallenge(ctx, _) => &mut ctx.input,
            State::AwaitGarbled(g) => &mut g.ctx.input,
            State::AwaitImage(online) => &mut online.ctx.input,
            state => {
                return Err(ProtocolError::Unexpected {
                    got: "an image",
                    state: state.waits_for(),
                })
            }
        };
        if slot.is_some() {
            return Err(already);
        }
        *slot = Some(quantize_input(&format, input)?);
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitImage(online) => self.on_image(*online)?,
            other => other,
        };
        Ok(())
    }

    /// Keeps the client's shares for [`crate::verify_local`].
    pub(crate) fn record(&mut self) {
        self.record = Some(ClientRecord::default());
    }

    /// The recorded shares, if recording.
    pub(crate) fn recorded(&self) -> Option<&ClientRecord> {
        self.record.as_ref()
    }

    /// The current phase (the transport timestamps its changes).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes and rounds so far.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Class names (empty until the plan arrived).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// ReLUs of the model (0 until the plan arrived).
    pub fn relu_count(&self) -> usize {
        self.relus
    }

    /// The result, once finished.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Queues a frame for the server (counted now).
    fn send(&mut self, msg: Msg) {
        self.send_frame(msg.encode());
    }

    /// Queues an encoded frame (one built in place, see [`Msg::frame_head`]).
    fn send_frame(&mut self, frame: Vec<u8>) {
        if frame.first() == Some(&MsgKind::ClientInput.tag()) {
            self.phase = Phase::Online;
        }
        self.count(&frame, true);
        self.outbox.push_back(Output::Frame(frame));
    }

    /// Queues work for the transport's workers.
    fn hand_out(&mut self, task: EvalTask) {
        self.outbox.push_back(Output::Job(task));
    }

    /// Routes a message to the handler of the current state.
    fn dispatch(&mut self, state: State, msg: Msg) -> Result<State, ProtocolError> {
        match (state, msg) {
            (_, Msg::Error { code, message }) => Err(ProtocolError::Peer { code, message }),
            (
                State::AwaitPlan,
                Msg::ServerPlan {
                    session_id,
                    pi_key,
                    plan,
                },
            ) => self.on_plan(session_id, pi_key, &plan),
            (State::AwaitHe(he), Msg::ServerHeResponse { stage, body }) => {
                self.on_he_response(he, stage, &body)
            }
            (State::AwaitOtChoices(ctx, receiver), Msg::ServerOtChoices(bytes)) => {
                self.on_ot_choices(ctx, receiver, &bytes)
            }
            (State::AwaitOtChallenge(ctx, receiver), Msg::ServerOtChallenge(bytes)) => {
                self.on_ot_challenge(*ctx, receiver, &bytes)
            }
            (
                State::AwaitGarbled(g),
                Msg::ServerGarbled {
                    stage,
                    first,
                    count,
                    tables,
                    decoding,
                    corrections,
                },
            ) => self.on_garbled(
                g,
                GarbledChunk {
                    stage,
                    first,
                    count,
                    bulk: Bulk::Inline { tables, decoding },
                    corrections,
                },
            ),
            (State::AwaitLabels(online), Msg::ServerLabels { stage, body }) => {
                self.on_labels(*online, stage, Some(&body), body.len())
            }
            (State::AwaitOutput(online), Msg::ServerOutput(body)) => self.on_output(*online, &body),
            (state, msg) => Err(ProtocolError::unexpected(msg.kind(), state.waits_for())),
        }
    }

    /// `AwaitPlan` + `ServerPlan`: quantize the image, draw every mask, send the HE key; the
    /// encrypted masks of every stage follow as the transport takes them (`next_he_masks`).
    fn on_plan(
        &mut self,
        session_id: u64,
        pi_key: [u8; 16],
        json: &[u8],
    ) -> Result<State, ProtocolError> {
        let plan: Plan = serde_json::from_slice(json).map_err(|e| ProtocolError::Malformed {
            what: "ServerPlan",
            reason: e.to_string(),
        })?;
        plan.validate()?;
        let k = plan.ring()?;
        self.classes = plan.classes.clone();
        self.relus = plan.relu_count();
        self.traffic.layers = plan
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.garbled())
            .map(|(stage, s)| LayerCost {
                stage,
                relus: s.relus(),
                ..LayerCost::default()
            })
            .collect();
        let format = InputFormat {
            spec: plan.input.clone(),
            len: plan.input_len(),
            f_in: plan.f_in,
            k,
        };
        let input = self
            .input
            .take()
            .map(|raw| quantize_input(&format, raw))
            .transpose()?;
        self.format = Some(format);
        let params = HeParams::new(k.bits()).map_err(he_err)?;
        let keys = ClientKeys::generate(&params, &mut self.rng).map_err(he_err)?;
        let rng = &mut self.rng;
        let mask_image = RingVec::random(k, plan.input_len(), || rng.u64());
        let mask_relu: Vec<RingVec> = plan
            .stages
            .iter()
            .map(|s| RingVec::random(k, s.instances(), || rng.u64()))
            .collect();
        let circuits = (0..plan.stages.len())
            .map(|i| plan.circuit(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.send(Msg::ClientHeKey(keys.public_key().to_bytes(&params)));
        let n_stages = plan.stages.len();
        let ctx = Ctx {
            plan,
            k,
            session_id,
            pi_key,
            input,
            mask_image,
            mask_relu,
            circuits,
            shares: Vec::new(),
        };
        // The masks go a stage at a time (`next_he_masks`), so at most one stage's ciphertexts
        // are in memory; the base OTs do not depend on the HE shares, so their setup follows the
        // last masks in the same flight, and the server, which handles frames in order, answers
        // it right after its last HE response (one round trip fewer than after that response).
        Ok(State::AwaitHe(Box::new(AwaitHe {
            ctx,
            keys,
            params,
            stages: Vec::with_capacity(n_stages),
            ot: None,
        })))
    }

    /// `AwaitHe` with masks still to send, when the outbox is empty: encrypt the next stage's
    /// masks; after the last, the base-OT setup.
    fn next_he_masks(&mut self, state: State) -> Result<State, ProtocolError> {
        let State::AwaitHe(mut he) = state else {
            return Ok(state);
        };
        let i = he.stages.len();
        let st = &he.ctx.plan.stages[i];
        let convs: Vec<_> = st.terms.iter().map(|(_, c)| *c).collect();
        let stage = ClientStage::new(&he.params, &convs).map_err(he_err)?;
        let masks: Vec<&[u64]> = st
            .terms
            .iter()
            .map(|(src, _)| match src {
                Source::Image => he.ctx.mask_image.values(),
                Source::Relu(j) => he.ctx.mask_relu[*j].values(),
            })
            .collect();
        // Each ciphertext is encoded into the frame as soon as it is made.
        let mut frame = Msg::staged_frame_head(MsgKind::ClientHeMasks, i as u32).ok_or(
            ProtocolError::Internal("ClientHeMasks has a stage and one body"),
        )?;
        let state = stage
            .encrypt_masks_into(&he.keys, &masks, &mut self.rng, &mut frame)
            .map_err(he_err)?;
        he.stages.push(state);
        self.send_frame(frame);
        if he.stages.len() == he.ctx.plan.stages.len() {
            let (setup, ot) = kos::Receiver::new().setup(&mut self.rng);
            self.send(Msg::ClientOtSetup(setup.to_bytes()));
            he.ot = Some(ot);
        }
        Ok(State::AwaitHe(he))
    }

    /// `AwaitHe` + `ServerHeResponse`: decrypt the stage's share c_i; after the last stage, wait
    /// for the server's base-OT choices (their setup was sent with the HE masks).
    fn on_he_response(
        &mut self,
        mut he: Box<AwaitHe>,
        stage: u32,
        body: &[u8],
    ) -> Result<State, ProtocolError> {
        let i = he.ctx.shares.len();
        if stage as usize != i {
            return Err(ProtocolError::Unexpected {
                got: "ServerHeResponse for another stage",
                state: "waiting for the next stage's ServerHeResponse",
            });
        }
        // The masks go out a stage at a time: a response to masks not sent yet is out of order.
        let Some(stage) = he.stages.get(i) else {
            return Err(ProtocolError::Unexpected {
                got: "ServerHeResponse before its stage's masks were sent",
                state: "sending the HE masks",
            });
        };
        // Parsed and decrypted a ciphertext at a time: one is in memory besides the frame.
        let share = stage.decrypt_bytes(&he.keys, body).map_err(he_err)?;
        let share = RingVec::from_values(he.ctx.k, share).map_err(ring_err("HE share"))?;
        he.ctx.shares.push(share);
        if he.ctx.shares.len() < he.ctx.plan.stages.len() {
            return Ok(State::AwaitHe(he));
        }
        let AwaitHe { ctx, ot, .. } = *he;
        // The server answers the last stage only after all its masks, which the base-OT setup
        // followed at once.
        let ot = ot.ok_or(ProtocolError::Internal(
            "the last HE response came before the base-OT setup went out",
        ))?;
        Ok(State::AwaitOtChoices(Box::new(ctx), ot))
    }

    /// `AwaitOtChoices` + `ServerOtChoices`: extend the OTs to one per bit of every ReLU layer's
    /// share (choice bits = the share's bits, Δ = the server's garbling Δ).
    fn on_ot_choices(
        &mut self,
        ctx: Box<Ctx>,
        receiver: kos::Receiver<kos::state::BaseSetup>,
        bytes: &[u8],
    ) -> Result<State, ProtocolError> {
        let choices = ReceiverChoices::from_bytes(bytes).map_err(ot_err)?;
        let receiver = receiver.receive_base_choices(choices).map_err(ot_err)?;
        let mut bits = Zeroizing::new(Vec::with_capacity(ctx.plan.ot_bits()));
        for (share, st) in ctx.shares.iter().zip(&ctx.plan.stages) {
            if st.garbled() {
                // The share words reduced mod 2^(k_l): the layer reads Z mod 2^(k_l) only. The
                // client's share of a padding cell is 0 (the server's stands for the cell).
                let narrow = RingWidth::new(st.k).map_err(ring_err("HE share"))?;
                let words = RingVec::reduce(narrow, st.gather(share.values(), 0));
                bits.extend_from_slice(&words.bits());
            }
        }
        // The matrix (16 B per bit) leaves in parts, each made when the transport asks for the
        // next frame (`next_ot_part`): in a browser worker the peak of this step stays allocated
        // for good.
        let receiver = receiver
            .extend_in_parts(bits, &mut self.rng)
            .map_err(ot_err)?;
        Ok(State::SendingOtParts(ctx, receiver))
    }

    /// `SendingOtParts`, when the outbox is empty: the matrix's next part, written straight into
    /// its frame; after the last, wait for the challenge.
    fn next_ot_part(&mut self, state: State) -> Result<State, ProtocolError> {
        let State::SendingOtParts(ctx, receiver) = state else {
            return Ok(state);
        };
        let mut frame = Msg::frame_head(MsgKind::ClientOtExtend).ok_or(ProtocolError::Internal(
            "ClientOtExtend has a one-part body",
        ))?;
        let next = match receiver.next_part(OT_PART_ROWS, &mut frame) {
            kos::Extension::More(receiver) => State::SendingOtParts(ctx, receiver),
            kos::Extension::Done(receiver) => State::AwaitOtChallenge(ctx, receiver),
        };
        self.send_frame(frame);
        Ok(next)
    }

    /// `AwaitOtChallenge` + `ServerOtChallenge`: answer the KOS check and keep the labels; the
    /// garbled layers follow.
    fn on_ot_challenge(
        &mut self,
        ctx: Ctx,
        receiver: kos::Receiver<kos::state::Extended>,
        bytes: &[u8],
    ) -> Result<State, ProtocolError> {
        let challenge = CheckChallenge::from_bytes(bytes).map_err(ot_err)?;
        let (response, ot) = receiver.receive_challenge_regenerating(challenge);
        self.send(Msg::ClientOtResponse(response.to_bytes()));
        let chunks = ctx.plan.stages.iter().map(|_| Vec::new()).collect();
        self.after_chunk(Box::new(AwaitGarbled {
            ctx,
            ot,
            stage: 0,
            received: 0,
            chunks,
        }))
    }

    /// `AwaitGarbled` + `ServerGarbled`: check the chunk's place and sizes, attach the client's
    /// OT labels of its ReLUs, and hand it to a worker.
    fn on_garbled(
        &mut self,
        mut g: Box<AwaitGarbled>,
        chunk: GarbledChunk,
    ) -> Result<State, ProtocolError> {
        let GarbledChunk {
            stage,
            first,
            count,
            bulk,
            corrections,
        } = chunk;
        let i = g.stage;
        // Chunks arrive in order: stage by stage, each layer front to back.
        let (Some(circuit), true) = (&g.ctx.circuits[i], stage as usize == i) else {
            return Err(ProtocolError::Unexpected {
                got: "ServerGarbled for another stage",
                state: "waiting for ServerGarbled",
            });
        };
        let (first, count) = (first as usize, count as usize);
        let len = g.ctx.plan.stages[i].instances();
        if first != g.received || count == 0 || count > len - g.received {
            return Err(ProtocolError::Malformed {
                what: "ServerGarbled",
                reason: format!(
                    "chunk {first}..{} of a {len}-instance layer, expected one starting at {}",
                    first.saturating_add(count),
                    g.received
                ),
            });
        }
        // Label blocks per instance: k_l per share word.
        let per = g.ctx.plan.stages[i].k as usize * circuit.window();
        let at = g.ctx.plan.stages[..i]
            .iter()
            .map(PlanStage::instances)
            .sum::<usize>()
            + first;
        let bit = g.ctx.plan.ot_offset(i) + first * per;
        let labels = g.ot.labels(bit..bit + count * per).map_err(ot_err)?;
        let mut client_labels = Zeroizing::new(Block::slice_as_bytes(&labels).to_vec());
        drop(labels);
        // A pre-garbled chunk: K₀ ⊕ b·Δ ⊕ (W₀ ⊕ K₀) = W₀ ⊕ b·Δ.
        if !corrections.is_empty() {
            if corrections.len() != client_labels.len() {
                return Err(ProtocolError::WrongSize {
                    what: "ServerGarbled label corrections",
                    expected: client_labels.len(),
                    got: corrections.len(),
                });
            }
            client_labels
                .iter_mut()
                .zip(&corrections)
                .for_each(|(l, d)| *l ^= d);
        }
        // Checked here, so a bad frame fails the session at once rather than in a worker.
        let (tables, decoding) = match bulk {
            Bulk::Inline { tables, decoding } => {
                check_bulk(circuit, count, tables.len(), decoding.len())?;
                (tables, decoding)
            }
            Bulk::Detached { tables, decoding } => {
                check_bulk(circuit, count, tables, decoding)?;
                (Vec::new(), Vec::new())
            }
        };
        let job = ChunkJob {
            id: self.next_job,
            circuit: circuit.spec(),
            pi_key: g.ctx.pi_key,
            session_id: g.ctx.session_id,
            first_instance: at as u32,
            count: count as u32,
            tables,
            decoding,
            client_labels,
        };
        g.chunks[i].push(ChunkRef {
            id: job.id,
            first,
            count,
        });
        self.next_job += 1;
        self.hand_out(EvalTask::Store(job));
        g.received += count;
        if g.received == len {
            g.stage += 1;
            g.received = 0;
        }
        self.after_chunk(g)
    }

    /// More chunks to come, or (all layers received; the OT labels now live in the jobs) the
    /// online phase starts with the masked image x − r, or waits for the image.
    fn after_chunk(&mut self, g: Box<AwaitGarbled>) -> Result<State, ProtocolError> {
        if g.ctx
            .plan
            .stages
            .get(g.stage)
            .is_some_and(PlanStage::garbled)
        {
            return Ok(State::AwaitGarbled(g));
        }
        let AwaitGarbled { ctx, chunks, .. } = *g;
        let online = Online {
            ctx,
            chunks,
            next: 0,
        };
        if online.ctx.input.is_some() {
            self.on_image(online)
        } else {
            self.phase = Phase::Ready;
            Ok(State::AwaitImage(Box::new(online)))
        }
    }

    /// `AwaitImage` + the image (or the offline phase's end, when the image came first): send
    /// x − r; the online phase starts.
    fn on_image(&mut self, online: Online) -> Result<State, ProtocolError> {
        let input = online.ctx.input.as_ref().ok_or(ProtocolError::Internal(
            "the online phase started without an image",
        ))?;
        let masked = input
            .sub(&online.ctx.mask_image)
            .map_err(ring_err("masked image"))?;
        self.send(Msg::ClientInput(masked.pack()));
        Ok(self.next_online(online))
    }

    /// Waits for the next ReLU layer's labels, or for the logits after the last layer.
    fn next_online(&mut self, online: Online) -> State {
        if online.ctx.plan.stages[online.next].garbled() {
            State::AwaitLabels(Box::new(online))
        } else {
            State::AwaitOutput(Box::new(online))
        }
    }

    /// `AwaitLabels` + `ServerLabels`: hand every chunk of the layer to its worker with the
    /// server's labels for it (`body`), or with where they lie in the frame (a transport that
    /// kept the frame's `len` bytes of labels to itself).
    fn on_labels(
        &mut self,
        mut online: Online,
        stage: u32,
        body: Option<&[u8]>,
        len: usize,
    ) -> Result<State, ProtocolError> {
        let next = online.next;
        if stage as usize != next {
            return Err(ProtocolError::Unexpected {
                got: "ServerLabels for another stage",
                state: "waiting for the next layer's ServerLabels",
            });
        }
        let st = &online.ctx.plan.stages[next];
        // Label bytes per instance: 16 per bit of its share words.
        let per = st.k as usize * st.window() * 16;
        let n = st.instances();
        if len != n * per {
            return Err(ProtocolError::WrongSize {
                what: "ServerLabels bytes",
                expected: n * per,
                got: len,
            });
        }
        // Material used once: the workers drop each chunk after evaluating it.
        let chunks = std::mem::take(&mut online.chunks[next]);
        for c in &chunks {
            let at = c.first * per..(c.first + c.count) * per;
            self.hand_out(EvalTask::Evaluate {
                id: c.id,
                garbler_labels: body.map(|b| b[at.clone()].to_vec()).unwrap_or_default(),
                labels_at: LABELS_HEAD + at.start..LABELS_HEAD + at.end,
            });
        }
        Ok(State::AwaitJobs(Box::new(AwaitJobs {
            online,
            stage: next,
            results: vec![None; chunks.len()],
            chunks,
        })))
    }

    /// `AwaitJobs` + a job's result: keep it; once the layer is complete, send o − r'.
    fn on_job_result(
        &mut self,
        mut jobs: Box<AwaitJobs>,
        id: u32,
        packed: &[u8],
    ) -> Result<State, ProtocolError> {
        let unexpected = |got| ProtocolError::Unexpected {
            got,
            state: "evaluating a layer",
        };
        let slot = jobs
            .chunks
            .iter()
            .position(|c| c.id == id)
            .ok_or(unexpected("result of another job"))?;
        if jobs.results[slot].is_some() {
            return Err(unexpected("second result of a job"));
        }
        let k = jobs.online.ctx.k;
        let outputs = jobs.online.ctx.circuits[jobs.stage]
            .as_ref()
            .map_or(1, StageCircuit::outputs);
        let shares = RingVec::unpack(k, packed, jobs.chunks[slot].count * outputs)
            .map_err(ring_err("job result"))?;
        jobs.results[slot] = Some(shares);
        if jobs.results.iter().any(Option::is_none) {
            return Ok(State::AwaitJobs(jobs));
        }
        let AwaitJobs {
            mut online,
            stage,
            results,
            ..
        } = *jobs;
        let mut o = RingVec::zeros(k, 0);
        for r in results.iter().flatten() {
            o.extend(r).map_err(ring_err("job result"))?;
        }
        if online.ctx.plan.stages[stage].is_output() {
            return self.on_ranked(online, o.values());
        }
        let masked = o
            .sub(&online.ctx.mask_relu[stage])
            .map_err(ring_err("layer output"))?;
        if let Some(r) = self.record.as_mut() {
            r.relu_shares.push(o.values().to_vec());
        }
        self.send(Msg::ClientMasked {
            stage: stage as u32,
            body: masked.pack(),
        });
        online.next += 1;
        Ok(self.next_online(online))
    }

    /// The garbled top-k's result: the revealed class indices, checked (a server could decode
    /// anything); the session ends.
    fn on_ranked(&mut self, online: Online, indices: &[u64]) -> Result<State, ProtocolError> {
        let ctx = &online.ctx;
        let classes = ctx.plan.stages[ctx.plan.stages.len() - 1].len;
        let ranked: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
        let mut seen = vec![false; classes];
        for &i in &ranked {
            if i >= classes || std::mem::replace(&mut seen[i], true) {
                return Err(ProtocolError::Malformed {
                    what: "top-k result",
                    reason: format!("class indices {ranked:?} of {classes} classes"),
                });
            }
        }
        let class = ranked.first().copied().unwrap_or(0);
        self.finish(ctx, ranked, Vec::new(), Vec::new(), class);
        Ok(State::Done)
    }

    /// Records the outcome and ends the session.
    fn finish(
        &mut self,
        ctx: &Ctx,
        ranked: Vec<usize>,
        logits_ring: Vec<u64>,
        logits: Vec<f64>,
        class: usize,
    ) {
        if let Some(r) = self.record.as_mut() {
            r.stage_shares = ctx.shares.iter().map(|s| s.values().to_vec()).collect();
        }
        self.outcome = Some(Outcome {
            policy: ctx.plan.output(),
            ranked,
            logits_ring,
            logits,
            class,
            input_ring: ctx
                .input
                .as_ref()
                .map(|x| x.values().to_vec())
                .unwrap_or_default(),
        });
        self.phase = Phase::Done;
        self.outbox.push_back(Output::Finished);
    }

    /// `AwaitOutput` + `ServerOutput`: the logits are the server's share plus the client's.
    fn on_output(&mut self, online: Online, body: &[u8]) -> Result<State, ProtocolError> {
        let ctx = &online.ctx;
        let last = &ctx.plan.stages[online.next];
        let server = RingVec::unpack(ctx.k, body, last.len).map_err(ring_err("ServerOutput"))?;
        let logits = server
            .add(&ctx.shares[online.next])
            .map_err(ring_err("ServerOutput"))?;
        let real: Vec<f64> = logits
            .to_signed()
            .into_iter()
            .map(|v| v as f64 / f64::from(last.f_z).exp2())
            .collect();
        // The project's ranking rule (ties to the lower index), as the garbled top-k ranks.
        let ranked = cryptonas_model::fixed::rank_logits(logits.values(), ctx.k.bits(), last.len);
        let class = ranked.first().copied().unwrap_or(0);
        self.finish(ctx, ranked, logits.values().to_vec(), real, class);
        Ok(State::Done)
    }

    /// Books a frame's bytes into the traffic counters.
    fn count(&mut self, frame: &[u8], up: bool) {
        self.count_len(frame, frame.len(), up);
    }

    /// Books a frame of `len` bytes that starts with `head`.
    fn count_len(&mut self, head: &[u8], len: usize, up: bool) {
        let Some(FrameInfo { kind, stage }) = FrameInfo::of(head) else {
            return;
        };
        let len = len as u64;
        let t = &mut self.traffic;
        let online = !matches!(self.phase, Phase::Offline | Phase::Ready);
        match (online, up) {
            (false, true) => t.offline_up += len,
            (false, false) => t.offline_down += len,
            (true, true) => t.online_up += len,
            (true, false) => t.online_down += len,
        }
        match kind {
            MsgKind::ClientHeKey | MsgKind::ClientHeMasks => t.he_up += len,
            MsgKind::ServerHeResponse => t.he_down += len,
            MsgKind::ClientOtSetup | MsgKind::ClientOtExtend | MsgKind::ClientOtResponse => {
                t.ot_up += len
            }
            MsgKind::ServerOtChoices | MsgKind::ServerOtChallenge => t.ot_down += len,
            MsgKind::ServerOutput => t.online_rounds += 1,
            _ => {}
        }
        let Some(stage) = stage else { return };
        let stage = stage as usize;
        let layer = match t.layers.iter().position(|l| l.stage == stage) {
            Some(p) => &mut t.layers[p],
            None => {
                t.layers.push(LayerCost {
                    stage,
                    ..LayerCost::default()
                });
                let last = t.layers.len() - 1;
                &mut t.layers[last]
            }
        };
        match kind {
            MsgKind::ServerGarbled => layer.offline_down += len,
            MsgKind::ServerLabels => {
                layer.online_down += len;
                t.online_rounds += 1;
            }
            MsgKind::ClientMasked => layer.online_up += len,
            _ => {}
        }
    }
}

impl ClientSession {
    /// A `ServerGarbled` frame whose tables and output decoding the transport hands straight to
    /// the worker that will evaluate them (a browser transfers the socket's buffer, so the bulk
    /// of the offline bytes never enters this session's memory): the session gets the frame's
    /// first [`GarbledLayout::HEAD`](crate::GarbledLayout::HEAD) bytes, its label corrections
    /// and its length, checks them as [`Session::handle`] would check the whole frame, and hands
    /// out a `Store` job without tables; the transport attaches the frame's tables and decoding
    /// bits ([`crate::GarbledLayout`]) before the job reaches its evaluator, which checks them.
    pub fn handle_garbled_head(
        &mut self,
        head: &[u8],
        corrections: &[u8],
        frame_len: usize,
    ) -> Result<(), ProtocolError> {
        self.step(|this, state| {
            let at = crate::GarbledLayout::read(head, frame_len)?;
            if corrections.len() != at.corrections.len() {
                return Err(ProtocolError::WrongSize {
                    what: "ServerGarbled label corrections",
                    expected: at.corrections.len(),
                    got: corrections.len(),
                });
            }
            this.count_len(head, frame_len, false);
            let State::AwaitGarbled(g) = state else {
                return Err(ProtocolError::unexpected(
                    MsgKind::ServerGarbled,
                    state.waits_for(),
                ));
            };
            let chunk = GarbledChunk {
                stage: at.stage,
                first: at.first,
                count: at.count,
                bulk: Bulk::Detached {
                    tables: at.tables.len(),
                    decoding: at.decoding.len(),
                },
                corrections: corrections.to_vec(),
            };
            this.on_garbled(g, chunk)
        })
    }

    /// A `ServerLabels` frame whose labels the transport hands straight to the workers (a browser
    /// cuts each chunk's from the socket's buffer, so the online phase's bulk never enters this
    /// session's memory): the session gets the frame's first [`LABELS_HEAD`] bytes and its
    /// length, checks them as [`Session::handle`] would check the whole frame, and hands out
    /// `Evaluate` jobs without labels, each with where its labels lie in the frame
    /// (`labels_at`).
    pub fn handle_labels_head(
        &mut self,
        head: &[u8],
        frame_len: usize,
    ) -> Result<(), ProtocolError> {
        self.step(|this, state| {
            let what = "ServerLabels";
            let stage = Msg::staged_body(head, MsgKind::ServerLabels)
                .filter(|_| frame_len >= LABELS_HEAD)
                .map(|(stage, _)| stage)
                .ok_or_else(|| ProtocolError::Malformed {
                    what,
                    reason: format!("not the first {LABELS_HEAD} bytes of a ServerLabels frame"),
                })?;
            this.count_len(head, frame_len, false);
            let State::AwaitLabels(online) = state else {
                return Err(ProtocolError::unexpected(
                    MsgKind::ServerLabels,
                    state.waits_for(),
                ));
            };
            this.on_labels(*online, stage, None, frame_len - LABELS_HEAD)
        })
    }

    /// Runs one handler on the current state. On error the session stays `Done`: its secrets
    /// are dropped (and wiped) with the state, and nothing a failed handler queued goes out.
    fn step(
        &mut self,
        handler: impl FnOnce(&mut Self, State) -> Result<State, ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        if matches!(state, State::Done) {
            return Err(ProtocolError::Closed);
        }
        match handler(self, state) {
            Ok(next) => {
                self.state = next;
                Ok(())
            }
            Err(e) => {
                self.outbox.clear();
                Err(e)
            }
        }
    }
}

impl Session for ClientSession {
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError> {
        self.step(|this, state| {
            this.count(frame, false);
            // HE responses are read in place: `Msg::decode` would copy their megabytes first.
            match (state, Msg::staged_body(frame, MsgKind::ServerHeResponse)) {
                (State::AwaitHe(he), Some((stage, body))) => this.on_he_response(he, stage, body),
                (state, _) => Msg::decode(frame).and_then(|msg| this.dispatch(state, msg)),
            }
        })
    }

    /// Frames made on demand (the HE masks, the OT matrix's parts) are made here, one per call, once the
    /// outbox is empty: a transport that sends each frame before it asks for the next holds one
    /// part at a time.
    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError> {
        if self.outbox.is_empty() {
            match &self.state {
                State::AwaitHe(he) if he.stages.len() < he.ctx.plan.stages.len() => {
                    self.step(Self::next_he_masks)?
                }
                State::SendingOtParts(..) => self.step(Self::next_ot_part)?,
                _ => {}
            }
        }
        Ok(self.outbox.pop_front())
    }
}

/// The image as ring elements at the plan's input scale.
fn quantize_input(format: &InputFormat, input: ClientInput) -> Result<RingVec, ProtocolError> {
    let bad = |reason: String| ProtocolError::Malformed {
        what: "client input",
        reason,
    };
    let x = match input {
        ClientInput::ImageBytes(bytes) => cryptonas_model::image::load_input(&bytes, &format.spec)
            .map_err(|e| bad(e.to_string()))?,
        ClientInput::Normalised(x) => x,
    };
    if x.len() != format.len {
        return Err(bad(format!(
            "{} values for a {}-value input",
            x.len(),
            format.len
        )));
    }
    let lim = 2f64.powi(format.k.bits() as i32 - 1);
    let mut q = Vec::with_capacity(x.len());
    for (i, &v) in x.iter().enumerate() {
        let r = (f64::from(v) * f64::from(format.f_in).exp2()).round();
        if !r.is_finite() || r >= lim || r < -lim {
            // The index, not the value: the image is the client's secret.
            return Err(bad(format!(
                "input element {i} is outside the ring's range at scale 2^{}",
                format.f_in
            )));
        }
        q.push(r as i64);
    }
    Ok(RingVec::from_signed(format.k, &q))
}
