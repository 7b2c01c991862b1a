#![doc = include_str!("../README.md")]

use cryptonas_crypto::{Csprng, FixedKeyAes};
use cryptonas_gc::{Delta, ReluCircuit, ReluVariant, TweakDomain};
use cryptonas_protocol::{
    ChunkEvaluator, ChunkJob, ClientInput, ClientSession, EvalTask, FrameInfo, GarbledLayout, Msg,
    MsgKind, Output, Phase, Plan, Session, StageCircuit, StageOp, LABELS_HEAD,
};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// Serialises to plain JS objects (maps as objects, `None` as `null`).
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&format!("cannot convert to JavaScript: {e}")))
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Offline => "offline",
        Phase::Ready => "ready",
        Phase::Online => "online",
        Phase::Done => "done",
    }
}

/// What a server frame was, for progress display.
fn frame_event(frame: &[u8]) -> (&'static str, Option<u32>) {
    let Some(FrameInfo { kind, stage }) = FrameInfo::of(frame) else {
        return ("unknown", None);
    };
    let event = match kind {
        MsgKind::ServerPlan => "plan",
        MsgKind::ServerHeResponse => "he",
        MsgKind::ServerOtChoices | MsgKind::ServerOtChallenge => "ot",
        MsgKind::ServerGarbled => "garbled",
        MsgKind::ServerLabels => "labels",
        MsgKind::ServerOutput => "output",
        MsgKind::Error => "error",
        _ => "unknown",
    };
    (event, stage)
}

/// One garbled layer of the public plan (a ReLU or max-pool layer, or the output's top-k).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PlanLayer {
    /// Stage index (as in the traffic's per-layer costs).
    pub stage: usize,
    /// What the layer computes: `"relu"`, `"clip"` (a clipped ReLU such as ReLU6), `"max_pool"`
    /// (a ReLU before or after it fused in) or `"top_k"` (the output's ranking).
    pub op: &'static str,
    /// Garbled circuit instances in the layer: one per ReLU, or per max-pool output (0 for the
    /// output's top-k).
    pub relus: usize,
    /// Whether the layer is the output's garbled top-k (policies `class` and `top-k`).
    pub output: bool,
    /// AND gates the client evaluates for this layer online.
    pub and_gates: u64,
}

/// The public facts of the session's model, known after the server's first frame.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PlanInfo {
    /// Model name.
    pub model: String,
    /// Class names in logit order.
    pub classes: Vec<String>,
    /// Ring bits.
    pub k: u32,
    /// Total garbled circuit instances (ReLUs and max-pool outputs).
    pub relus: usize,
    /// Garbled layers in order.
    pub layers: Vec<PlanLayer>,
    /// What the model reveals (`"logits"`, `"class"`, `"top-3"`): the server's output policy.
    pub output: String,
    /// The same in words ("logits", "class only", "top-3 classes").
    pub reveals: String,
    /// Frames the server sends in a complete session (for a progress bar).
    pub expected_frames: u32,
}

impl PlanInfo {
    /// Reads the plan from the server's first frame; `None` if the frame is not a valid plan (the
    /// session itself reports why).
    fn from_frame(frame: &[u8]) -> Option<PlanInfo> {
        let Ok(Msg::ServerPlan { plan, .. }) = Msg::decode(frame) else {
            return None;
        };
        let plan: Plan = serde_json::from_slice(&plan).ok()?;
        let layers: Vec<PlanLayer> = plan
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.garbled())
            .map(|(i, s)| {
                let ands = plan
                    .circuit(i)
                    .ok()
                    .flatten()
                    .map_or(0, |c| c.circuit().and_count() as u64);
                PlanLayer {
                    stage: i,
                    op: match s.op {
                        StageOp::Relu { clip: None } => "relu",
                        StageOp::Relu { clip: Some(_) } => "clip",
                        StageOp::MaxPool { .. } => "max_pool",
                        StageOp::TopK { .. } => "top_k",
                        StageOp::Logits => "logits",
                    },
                    relus: s.relus(),
                    output: s.is_output(),
                    and_gates: ands * s.instances() as u64,
                }
            })
            .collect();
        let expected_frames = plan.server_frames() as u32;
        Some(PlanInfo {
            model: plan.model.clone(),
            classes: plan.classes.clone(),
            k: plan.k,
            relus: plan.relu_count(),
            layers,
            output: plan.output().to_string(),
            reveals: plan.output().describe(),
            expected_frames,
        })
    }
}

/// Why a browser session call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The browser gave no secure randomness.
    #[error("no secure randomness in this browser: {0}")]
    NoRandomness(String),
    /// The image was empty.
    #[error("empty image")]
    EmptyImage,
    /// The image was given in a state that cannot take it.
    #[error("this session cannot take an image now: {0}")]
    ImageRefused(cryptonas_protocol::ProtocolError),
    /// `start` was called twice.
    #[error("session already started")]
    AlreadyStarted,
    /// A frame arrived before `start`.
    #[error("frame handled before start()")]
    NotStarted,
    /// The protocol rejected a frame (or the peer reported an error).
    #[error(transparent)]
    Protocol(#[from] cryptonas_protocol::ProtocolError),
}

fn js_err(e: ClientError) -> JsError {
    JsError::new(&e.to_string())
}

/// What one handled frame produced.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FrameStep {
    /// Frames to send to the server (not serialised: JavaScript gets `Uint8Array`s).
    #[serde(skip)]
    pub frames: Vec<Vec<u8>>,
    /// Evaluation jobs for the workers (JavaScript gets `jobs`).
    #[serde(skip)]
    pub tasks: Vec<EvalTask>,
    /// The session finished: close the socket.
    pub done: bool,
    /// `"offline"`, `"ready"` (prepared: waiting for the image), `"online"` or `"done"` after
    /// this frame.
    pub phase: &'static str,
    /// What the frame was: `plan`, `he`, `ot`, `garbled`, `labels`, `output`.
    pub event: &'static str,
    /// The stage the frame belongs to, if any.
    pub stage: Option<u32>,
    /// Server frames handled so far (compare with [`PlanInfo::expected_frames`]).
    pub frames_received: u32,
}

/// What the session had to say after a call.
#[derive(Default)]
struct Drained {
    frames: Vec<Vec<u8>>,
    tasks: Vec<EvalTask>,
    done: bool,
}

/// The result for JavaScript: ring logits as decimal strings (they may exceed 2^53).
#[derive(Serialize)]
struct OutcomeJs<'a> {
    /// What the model revealed (`"logits"`, `"class"`, `"top-3"`) and in words.
    output: String,
    reveals: String,
    class: usize,
    label: Option<&'a str>,
    /// The revealed classes, most likely first (every class under `logits`).
    ranked: &'a [usize],
    /// Empty unless the output is `logits`.
    logits: &'a [f64],
    logits_ring: Vec<String>,
}

/// A step as JavaScript gets it: the step's fields, `frames` as `Uint8Array`s and `jobs` as
/// `{ kind: "store", id, job }` / `{ kind: "evaluate", id, labels }`.
fn step_to_js(step: FrameStep, frames: js_sys::Array) -> Result<JsValue, JsError> {
    let info = to_js(&step)?;
    let set = |key: &str, value: &JsValue| {
        js_sys::Reflect::set(&info, &key.into(), value)
            .map(|_| ())
            .map_err(|_| JsError::new("cannot build the step object"))
    };
    set("frames", &frames.into())?;
    let jobs = js_sys::Array::new();
    for task in step.tasks {
        let job = js_sys::Object::new();
        let field = |key: &str, value: JsValue| {
            js_sys::Reflect::set(&job, &key.into(), &value)
                .map(|_| ())
                .map_err(|_| JsError::new("cannot build a job object"))
        };
        match task {
            EvalTask::Store(chunk) => {
                field("kind", "store".into())?;
                field("id", chunk.id.into())?;
                field(
                    "job",
                    js_sys::Uint8Array::from(chunk.to_bytes().as_slice()).into(),
                )?;
            }
            EvalTask::Evaluate {
                id,
                garbler_labels,
                labels_at,
            } => {
                field("kind", "evaluate".into())?;
                field("id", id.into())?;
                // Empty when the session saw only the frame's head: `at` says where to cut.
                let labels = if garbler_labels.is_empty() {
                    JsValue::NULL
                } else {
                    js_sys::Uint8Array::from(garbler_labels.as_slice()).into()
                };
                field("labels", labels)?;
                field(
                    "at",
                    js_sys::Array::of2(&labels_at.start.into(), &labels_at.end.into()).into(),
                )?;
            }
        }
        jobs.push(&job);
    }
    set("jobs", &jobs.into())?;
    Ok(info)
}

/// One private inference, driven frame by frame by JavaScript.
#[wasm_bindgen]
pub struct PrivateInference {
    session: ClientSession,
    plan: Option<PlanInfo>,
    received: u32,
    started: bool,
    /// Set while a JavaScript call runs: frames are copied out to it as they are made, so a step
    /// that makes many (the OT matrix's parts, 1 MiB each) holds one at a time in this worker's
    /// memory, which never shrinks.
    js_frames: Option<js_sys::Array>,
}

/// The Rust-facing API (native tests, other Rust transports); the JS methods wrap it.
impl PrivateInference {
    /// A session classifying `input`, with fresh randomness from the platform.
    pub fn with_input(input: ClientInput) -> Result<PrivateInference, ClientError> {
        let mut pi = Self::prepared()?;
        pi.session.set_input(input)?;
        Ok(pi)
    }

    /// A session that runs the offline phase before it has the image
    /// ([`PrivateInference::set_input`]).
    pub fn prepared() -> Result<PrivateInference, ClientError> {
        let rng = Csprng::from_entropy().map_err(|e| ClientError::NoRandomness(e.to_string()))?;
        Ok(PrivateInference {
            session: ClientSession::prepare(rng),
            plan: None,
            received: 0,
            started: false,
            js_frames: None,
        })
    }

    /// Gives the session its image; returns the frames to send (the masked image once the
    /// session is prepared). A refused image leaves the session as it was.
    pub fn set_input(&mut self, input: ClientInput) -> Result<Vec<Vec<u8>>, ClientError> {
        self.session
            .set_input(input)
            .map_err(ClientError::ImageRefused)?;
        if !self.started {
            return Ok(Vec::new());
        }
        Ok(self.drain()?.frames)
    }

    /// The frames to send first (the hello).
    pub fn start_frames(&mut self) -> Result<Vec<Vec<u8>>, ClientError> {
        if self.started {
            return Err(ClientError::AlreadyStarted);
        }
        self.started = true;
        Ok(self.drain()?.frames)
    }

    /// Runs a call for JavaScript: its frames are copied out as they are made (see `js_frames`)
    /// and come back as `Uint8Array`s.
    fn with_js_frames<T>(
        &mut self,
        call: impl FnOnce(&mut Self) -> Result<T, ClientError>,
    ) -> Result<(T, js_sys::Array), JsError> {
        self.js_frames = Some(js_sys::Array::new());
        let result = call(self);
        let frames = self.js_frames.take().unwrap_or_default();
        Ok((result.map_err(js_err)?, frames))
    }

    /// Everything the session has to say now (frames to JavaScript directly during a JavaScript
    /// call).
    fn drain(&mut self) -> Result<Drained, ClientError> {
        let mut d = Drained::default();
        while let Some(out) = self.session.poll_output()? {
            match out {
                Output::Frame(f) => match &self.js_frames {
                    Some(js) => {
                        js.push(&js_sys::Uint8Array::from(f.as_slice()));
                    }
                    None => d.frames.push(f),
                },
                Output::Job(t) => d.tasks.push(t),
                Output::Finished => d.done = true,
            }
        }
        Ok(d)
    }

    /// Consumes one server frame.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Result<FrameStep, ClientError> {
        let info = FrameInfo::of(frame);
        if self.started
            && self.plan.is_none()
            && info.is_some_and(|i| i.kind == MsgKind::ServerPlan)
        {
            self.plan = PlanInfo::from_frame(frame);
        }
        self.received_frame(frame, |session| session.handle(frame))
    }

    /// One server frame (whole, or its head: `head`) given to the session by `handle`; then what
    /// the session has to say.
    fn received_frame(
        &mut self,
        head: &[u8],
        handle: impl FnOnce(&mut ClientSession) -> Result<(), cryptonas_protocol::ProtocolError>,
    ) -> Result<FrameStep, ClientError> {
        if !self.started {
            return Err(ClientError::NotStarted);
        }
        self.received += 1;
        handle(&mut self.session)?;
        self.step_after(head)
    }

    /// What the session has to say after handling the frame that starts with `head`.
    fn step_after(&mut self, head: &[u8]) -> Result<FrameStep, ClientError> {
        let (event, stage) = frame_event(head);
        let Drained {
            frames,
            tasks,
            done,
        } = self.drain()?;
        Ok(FrameStep {
            frames,
            tasks,
            done,
            phase: phase_name(self.session.phase()),
            event,
            stage,
            frames_received: self.received,
        })
    }

    /// A `ServerGarbled` frame given as its head and label corrections only (the transport sends
    /// its tables and output decoding straight to the evaluation worker).
    pub fn handle_garbled_head_frame(
        &mut self,
        head: &[u8],
        corrections: &[u8],
        frame_len: usize,
    ) -> Result<FrameStep, ClientError> {
        self.received_frame(head, |session| {
            session.handle_garbled_head(head, corrections, frame_len)
        })
    }

    /// A `ServerLabels` frame given as its head only ([`LABELS_HEAD`] bytes) and its length (the
    /// transport cuts each chunk's labels from the frame for the evaluation worker).
    pub fn handle_labels_head_frame(
        &mut self,
        head: &[u8],
        frame_len: usize,
    ) -> Result<FrameStep, ClientError> {
        self.received_frame(head, |session| session.handle_labels_head(head, frame_len))
    }

    /// A job's shares (packed); the frames to send (the layer's reply once complete). The last
    /// job of a class or top-k model's garbled arg-max finishes the session instead: no frame,
    /// and [`PrivateInference::phase`] is `"done"`.
    pub fn complete_job(&mut self, id: u32, shares: &[u8]) -> Result<Vec<Vec<u8>>, ClientError> {
        self.session.complete_job(id, shares)?;
        Ok(self.drain()?.frames)
    }

    /// The public plan, once the server's first frame has arrived.
    pub fn plan_info(&self) -> Option<&PlanInfo> {
        self.plan.as_ref()
    }

    /// The protocol outcome, once finished.
    pub fn outcome_rust(&self) -> Option<&cryptonas_protocol::Outcome> {
        self.session.outcome()
    }

    /// Bytes and rounds so far.
    pub fn traffic_rust(&self) -> &cryptonas_protocol::Traffic {
        self.session.traffic()
    }
}

#[wasm_bindgen]
impl PrivateInference {
    /// A session classifying an encoded image (PNG or JPEG bytes); it is resized and normalised with
    /// the model's statistics once the server's plan arrives.
    #[wasm_bindgen(constructor)]
    pub fn new(image: &[u8]) -> Result<PrivateInference, JsError> {
        if image.is_empty() {
            return Err(js_err(ClientError::EmptyImage));
        }
        Self::with_input(ClientInput::ImageBytes(image.to_vec())).map_err(js_err)
    }

    /// A session on an already normalised CHW image (`Float32Array`).
    #[wasm_bindgen(js_name = fromNormalised)]
    pub fn from_normalised(x: Vec<f32>) -> Result<PrivateInference, JsError> {
        Self::with_input(ClientInput::Normalised(x)).map_err(js_err)
    }

    /// A session without its image: it runs the whole offline phase (phase `"ready"` once done)
    /// and waits for [`PrivateInference::set_image`], so the user's click costs only the online
    /// phase.
    #[wasm_bindgen(js_name = prepare)]
    pub fn prepare_js() -> Result<PrivateInference, JsError> {
        Self::prepared().map_err(js_err)
    }

    /// Gives a prepared session its encoded image (PNG or JPEG bytes); returns the frames to
    /// send (`Uint8Array[]`). Throws, leaving the session prepared, if the image cannot be used.
    #[wasm_bindgen(js_name = setImage)]
    pub fn set_image(&mut self, image: &[u8]) -> Result<js_sys::Array, JsError> {
        if image.is_empty() {
            return Err(js_err(ClientError::EmptyImage));
        }
        self.with_js_frames(|pi| pi.set_input(ClientInput::ImageBytes(image.to_vec())))
            .map(|(_, frames)| frames)
    }

    /// [`PrivateInference::set_image`] for an already normalised CHW image (`Float32Array`).
    #[wasm_bindgen(js_name = setNormalised)]
    pub fn set_normalised(&mut self, x: Vec<f32>) -> Result<js_sys::Array, JsError> {
        self.with_js_frames(|pi| pi.set_input(ClientInput::Normalised(x)))
            .map(|(_, frames)| frames)
    }

    /// The protocol error code (`"expired"`, `"version"`, `"refused"`…) of a server `Error`
    /// frame, or `null` for any other frame: lets JavaScript tell an expired prepared session
    /// from other failures without parsing messages.
    #[wasm_bindgen(js_name = errorCode)]
    pub fn error_code(frame: &[u8]) -> Option<String> {
        match Msg::decode(frame) {
            Ok(Msg::Error { code, .. }) => Some(code.name().to_string()),
            _ => None,
        }
    }

    /// The frames to send first (`Uint8Array[]`). Call once, right after the socket opens.
    pub fn start(&mut self) -> Result<js_sys::Array, JsError> {
        self.with_js_frames(Self::start_frames)
            .map(|(_, frames)| frames)
    }

    /// Consumes one binary frame from the server. Returns `{ frames: Uint8Array[], jobs, done,
    /// phase, event, stage, frames_received }`: send `frames`, and close the socket once `done`.
    /// A server's `Error` frame makes this throw with the server's code and reason.
    ///
    /// `jobs` are `{ kind: "store", id, job: Uint8Array }` (give it to a worker's [`EvalChunk`])
    /// or `{ kind: "evaluate", id, labels: Uint8Array }` (evaluate job `id` there and pass the
    /// result to [`PrivateInference::complete`]).
    pub fn handle(&mut self, frame: &[u8]) -> Result<JsValue, JsError> {
        let (step, frames) = self.with_js_frames(|pi| pi.handle_frame(frame))?;
        step_to_js(step, frames)
    }

    /// Where the parts of a `ServerGarbled` frame lie, from its first bytes (pass at least 64)
    /// and its length: `{ tables: [start, end], decoding: [start, end], corrections: [start,
    /// end] }`, or `null` for any other frame (and for a malformed one: give that to
    /// [`PrivateInference::handle`], which reports why).
    #[wasm_bindgen(js_name = garbledLayout)]
    pub fn garbled_layout(head: &[u8], frame_len: usize) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct LayoutJs {
            tables: [usize; 2],
            decoding: [usize; 2],
            corrections: [usize; 2],
        }
        if head.first() != Some(&MsgKind::ServerGarbled.tag()) {
            return Ok(JsValue::NULL);
        }
        let Ok(at) = GarbledLayout::read(head, frame_len) else {
            return Ok(JsValue::NULL);
        };
        to_js(&LayoutJs {
            tables: [at.tables.start, at.tables.end],
            decoding: [at.decoding.start, at.decoding.end],
            corrections: [at.corrections.start, at.corrections.end],
        })
    }

    /// [`PrivateInference::handle`] for a `ServerGarbled` frame whose tables and output decoding
    /// go straight to the evaluation worker: pass the frame's head (its first 64 bytes), its
    /// label corrections (the `corrections` range of [`PrivateInference::garbled_layout`]) and
    /// its length. The step's one `store` job then carries no tables: post it with the frame's
    /// buffer to the worker, which builds the chunk with [`EvalChunk::with_bulk`].
    #[wasm_bindgen(js_name = handleGarbledHead)]
    pub fn handle_garbled_head(
        &mut self,
        head: &[u8],
        corrections: &[u8],
        frame_len: usize,
    ) -> Result<JsValue, JsError> {
        let (step, frames) =
            self.with_js_frames(|pi| pi.handle_garbled_head_frame(head, corrections, frame_len))?;
        step_to_js(step, frames)
    }

    /// The bytes of a `ServerLabels` frame's head ([`LABELS_HEAD`]) if `first` (at least the
    /// frame's first byte) starts one, else `null`.
    #[wasm_bindgen(js_name = labelsHead)]
    pub fn labels_head(first: &[u8]) -> Option<usize> {
        (first.first() == Some(&MsgKind::ServerLabels.tag())).then_some(LABELS_HEAD)
    }

    /// [`PrivateInference::handle`] for a `ServerLabels` frame whose labels go straight to the
    /// evaluation workers: pass its head ([`PrivateInference::labels_head`] bytes) and its
    /// length. The step's `evaluate` jobs then carry `labels: null` and `at: [start, end]`, where
    /// the job's labels lie in the frame.
    #[wasm_bindgen(js_name = handleLabelsHead)]
    pub fn handle_labels_head(
        &mut self,
        head: &[u8],
        frame_len: usize,
    ) -> Result<JsValue, JsError> {
        let (step, frames) =
            self.with_js_frames(|pi| pi.handle_labels_head_frame(head, frame_len))?;
        step_to_js(step, frames)
    }

    /// A worker's result for job `id` (the bytes [`EvalChunk::evaluate`] returned); returns the
    /// frames to send (`Uint8Array[]`, the layer's reply once its last job is in). After the
    /// garbled arg-max of a class or top-k model the session is over instead (`phase()` is
    /// `"done"`, no frame).
    pub fn complete(&mut self, id: u32, shares: &[u8]) -> Result<js_sys::Array, JsError> {
        self.with_js_frames(|pi| pi.complete_job(id, shares))
            .map(|(_, frames)| frames)
    }

    /// `"offline"`, `"ready"`, `"online"` or `"done"`.
    pub fn phase(&self) -> String {
        phase_name(self.session.phase()).to_string()
    }

    /// The public plan (`null` before the server's first frame).
    pub fn plan(&self) -> Result<JsValue, JsError> {
        to_js(&self.plan)
    }

    /// Bytes per phase and direction, HE/OT split, online rounds and per-layer costs so far.
    pub fn traffic(&self) -> Result<JsValue, JsError> {
        to_js(self.session.traffic())
    }

    /// `{ output, reveals, class, label, ranked, logits, logits_ring }` once done, else `null`
    /// (`logits` and `logits_ring` empty unless the model reveals its logits).
    pub fn outcome(&self) -> Result<JsValue, JsError> {
        let Some(o) = self.session.outcome() else {
            return Ok(JsValue::NULL);
        };
        let label = self
            .plan
            .as_ref()
            .and_then(|p| p.classes.get(o.class))
            .map(String::as_str);
        to_js(&OutcomeJs {
            output: o.policy.to_string(),
            reveals: o.policy.describe(),
            class: o.class,
            label,
            ranked: &o.ranked,
            logits: &o.logits,
            logits_ring: o.logits_ring.iter().map(u64::to_string).collect(),
        })
    }
}

/// One garbled chunk held by an evaluation worker from the offline phase until its labels arrive.
#[wasm_bindgen]
pub struct EvalChunk {
    evaluator: ChunkEvaluator,
    and_gates: f64,
}

#[wasm_bindgen]
impl EvalChunk {
    /// Parses and checks a `store` job's bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(job: &[u8]) -> Result<EvalChunk, JsError> {
        Self::build(job, None)
    }

    /// A `store` job handed out without its tables
    /// ([`PrivateInference::handle_garbled_head`]), with the tables and output decoding cut from
    /// the frame (its layout's `tables` and `decoding` ranges).
    #[wasm_bindgen(js_name = withBulk)]
    pub fn with_bulk(job: &[u8], tables: &[u8], decoding: &[u8]) -> Result<EvalChunk, JsError> {
        Self::build(job, Some((tables, decoding)))
    }

    fn build(job: &[u8], bulk: Option<(&[u8], &[u8])>) -> Result<EvalChunk, JsError> {
        let err = |e: cryptonas_protocol::ProtocolError| JsError::new(&e.to_string());
        let job = ChunkJob::from_bytes(job).map_err(err)?;
        let evaluator = match bulk {
            None => ChunkEvaluator::new(&job),
            Some((tables, decoding)) => ChunkEvaluator::with_bulk(&job, tables, decoding),
        }
        .map_err(err)?;
        Ok(EvalChunk {
            and_gates: evaluator.and_gates() as f64,
            evaluator,
        })
    }

    /// AND gates of the chunk.
    #[wasm_bindgen(js_name = andGates)]
    pub fn and_gates(&self) -> f64 {
        self.and_gates
    }

    /// Evaluates on the server's labels; returns the client's shares, packed, for `complete`.
    pub fn evaluate(&self, labels: &[u8]) -> Result<Vec<u8>, JsError> {
        self.evaluator
            .evaluate_packed(labels)
            .map_err(|e| JsError::new(&e.to_string()))
    }
}

/// Garbled ReLUs prepared for timing their evaluation (the client's online work) in this thread.
///
/// It evaluates through [`ChunkEvaluator::evaluate`], the very function the evaluation workers
/// run, so a few calls at start-up also move that function into V8's optimising tier (wasm has no
/// on-stack replacement: a function's first long call runs to its end in the baseline tier).
#[wasm_bindgen]
pub struct GcBench {
    evaluator: ChunkEvaluator,
    garbler: Vec<u8>,
    and_gates: usize,
}

#[wasm_bindgen]
impl GcBench {
    /// Garbles `relus` ReLUs over Z_2^k with random inputs (the garbling itself is not timed).
    #[wasm_bindgen(constructor)]
    pub fn new(relus: usize, k: u32) -> Result<GcBench, JsError> {
        if relus == 0 || relus > 1 << 20 {
            return Err(JsError::new("relus must be in 1..=1048576"));
        }
        let relu =
            ReluCircuit::new(k, 0, ReluVariant::Relu).map_err(|e| JsError::new(&e.to_string()))?;
        let mut rng =
            Csprng::from_entropy().map_err(|e| JsError::new(&format!("no randomness: {e}")))?;
        let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
        let mut words = |_| (0..relus).map(|_| rng.u64() & mask).collect::<Vec<_>>();
        let (masks, a, b) = (words(0), words(1), words(2));
        let domain = TweakDomain {
            session_id: 1,
            first_instance: 0,
        };
        let err = |e: cryptonas_gc::GarbleError| JsError::new(&e.to_string());
        // A session's π key, as the server draws one.
        let pi_key = rng.block().0;
        let g = relu
            .garble_with_pi(
                &FixedKeyAes::new(pi_key),
                Delta::random(&mut rng),
                domain,
                &masks,
                None,
                &mut rng,
            )
            .map_err(err)?;
        let garbler = relu.encode_garbler(&g.encoder, &a).map_err(err)?;
        let evaluator = relu.encode_evaluator(&g.encoder, &b).map_err(err)?;
        let job = ChunkJob {
            id: 0,
            circuit: StageCircuit::Relu(relu.clone()).spec(),
            pi_key,
            session_id: domain.session_id,
            first_instance: domain.first_instance,
            count: relus as u32,
            tables: g.tables.as_bytes().to_vec(),
            decoding: g.decoding.as_bytes().to_vec(),
            client_labels: evaluator.as_bytes().to_vec().into(),
        };
        let evaluator = ChunkEvaluator::new(&job).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(GcBench {
            evaluator,
            garbler: garbler.as_bytes().to_vec(),
            and_gates: relus * relu.circuit().and_count(),
        })
    }

    /// AND gates one [`GcBench::evaluate`] call evaluates.
    pub fn and_gates(&self) -> f64 {
        self.and_gates as f64
    }

    /// Evaluates and decodes every garbled ReLU once (time this from JavaScript).
    pub fn evaluate(&self) -> Result<(), JsError> {
        self.evaluator
            .evaluate(&self.garbler)
            .map(|_| ())
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Reads the server's labels and evaluates every garbled ReLU's gates once, without decoding
    /// the output labels to shares: the garbled gates' part of [`GcBench::evaluate`] (time this
    /// from JavaScript).
    pub fn evaluate_gates(&self) -> Result<(), JsError> {
        self.evaluator
            .evaluate_gates(&self.garbler)
            .map(|_| ())
            .map_err(|e| JsError::new(&e.to_string()))
    }
}
