//! The client's half of one inference, as a sans-IO state machine.
//!
//! The client draws a mask for the image and for every ReLU output, obtains by HE its share
//! c_i = Σ W·r − s_i of every stage, gets the labels of c_i's bits by correlated OT, receives the
//! garbled layers, and then runs the online phase: x − r_img up, per ReLU layer the server's labels
//! down and o_i − r_i up, finally the server's logits share down. Only the client learns the logits.

use crate::msgs::{FrameKind, Msg, PROTOCOL_VERSION};
use crate::plan::Plan;
use crate::session::{he_err, ot_err};
use crate::{ring, FrameSession, ProtocolError, Step};
use crate::{ChunkEvaluator, ChunkJob};
use cryptonas_crypto::{Block, Csprng};
use cryptonas_gc::{words_to_bits, ReluCircuit, ReluVariant};
use cryptonas_he::{ClientKeys, ClientStage, HeParams, ResponseMsg};
use cryptonas_model::fixed::{from_signed, to_signed};
use cryptonas_model::Source;
use cryptonas_ot::chou_orlandi::ReceiverChoices;
use cryptonas_ot::kos::{self, CheckChallenge};
use serde::{Deserialize, Serialize};

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
    /// From the masked image to the logits.
    Online,
    /// Finished.
    Done,
}

/// Bytes of one ReLU layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Stage index.
    pub stage: usize,
    /// ReLUs in the layer.
    pub relus: usize,
    /// Garbled tables and decoding bits received offline.
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

/// The result of a private inference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// Logits as ring elements at scale `f_z` (bit-exact with the plaintext fixed-point engine).
    pub logits_ring: Vec<u64>,
    /// Logits as reals.
    pub logits: Vec<f64>,
    /// Arg-max class.
    pub class: usize,
    /// The quantized image the client used (for checking against the plaintext engine).
    pub input_ring: Vec<u64>,
}

struct Ctx {
    plan: Plan,
    session_id: u64,
    keys: ClientKeys,
    he_params: HeParams,
    input: Vec<u64>,
    mask_image: Vec<u64>,
    mask_relu: Vec<Vec<u64>>,
    circuits: Vec<Option<ReluCircuit>>,
    /// Client share c_i of every stage (from HE).
    shares: Vec<Vec<u64>>,
}

/// One streamed chunk of a garbled layer: ReLUs `first .. first + count`, evaluated here or by
/// whoever took its job.
struct GarbledChunk {
    first: usize,
    count: usize,
    work: ChunkWork,
}

enum ChunkWork {
    Local(Box<ChunkEvaluator>),
    Delegated(u32),
}

/// Evaluation work the transport must run (delegated mode, see
/// [`ClientSession::delegate_evaluation`]).
#[derive(Clone, PartialEq, Eq)]
pub enum EvalTask {
    /// Offline: keep this chunk (e.g. in a worker) until its labels come.
    Store(ChunkJob),
    /// Online: evaluate job `id` on these server labels and pass the shares to
    /// [`ClientSession::complete_job`].
    Evaluate {
        /// The [`ChunkJob::id`].
        id: u32,
        /// The server's active labels for the chunk.
        garbler_labels: Vec<u8>,
    },
}

impl std::fmt::Debug for EvalTask {
    /// Ids and sizes only: labels are secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalTask::Store(job) => write!(f, "Store({job:?})"),
            EvalTask::Evaluate { id, garbler_labels } => {
                write!(
                    f,
                    "Evaluate(job {id}, {} B of labels)",
                    garbler_labels.len()
                )
            }
        }
    }
}

/// A layer whose delegated chunks are being evaluated.
struct Pending {
    stage: usize,
    ids: Vec<u32>,
    counts: Vec<usize>,
    shares: Vec<Option<Vec<u64>>>,
}

enum State {
    Plan,
    HeResponses {
        ctx: Box<Ctx>,
        he: Vec<cryptonas_he::ClientState>,
    },
    OtChoices {
        ctx: Box<Ctx>,
        receiver: kos::Receiver<kos::state::BaseSetup>,
    },
    OtChallenge {
        ctx: Box<Ctx>,
        receiver: kos::Receiver<kos::state::Extended>,
    },
    Garbled {
        ctx: Box<Ctx>,
        labels: Vec<Block>,
        garbled: Vec<Vec<GarbledChunk>>,
        /// The ReLU layer being received and how many of its ReLUs have arrived.
        stage: usize,
        received: usize,
    },
    Labels {
        ctx: Box<Ctx>,
        garbled: Vec<Vec<GarbledChunk>>,
        next: usize,
        pending: Option<Pending>,
    },
    Done,
}

/// The client's session for one inference.
pub struct ClientSession {
    input: Option<ClientInput>,
    rng: Csprng,
    state: State,
    traffic: Traffic,
    phase: Phase,
    outcome: Option<Outcome>,
    classes: Vec<String>,
    relus: usize,
    record: Option<ClientRecord>,
    delegate: bool,
    tasks: std::collections::VecDeque<EvalTask>,
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
    /// A session classifying `input`, with a fresh generator.
    pub fn new(input: ClientInput, rng: Csprng) -> Self {
        ClientSession {
            input: Some(input),
            rng,
            state: State::Plan,
            traffic: Traffic::default(),
            phase: Phase::Offline,
            outcome: None,
            classes: Vec::new(),
            relus: 0,
            record: None,
            delegate: false,
            tasks: Default::default(),
            next_job: 0,
        }
    }

    /// Hands garbled evaluation to the transport instead of running it here: every garbled chunk
    /// becomes an [`EvalTask::Store`] job, every layer's labels an [`EvalTask::Evaluate`] per chunk,
    /// and the layer's reply follows once [`ClientSession::complete_job`] has every chunk's shares.
    /// A browser uses it to spread evaluation over Web Workers. Call before the first frame.
    pub fn delegate_evaluation(&mut self) {
        self.delegate = true;
    }

    /// Evaluation work produced by the last frame (delegated mode only).
    pub fn take_tasks(&mut self) -> Vec<EvalTask> {
        self.tasks.drain(..).collect()
    }

    /// The client's output shares of job `id`, packed as the ring's wire format
    /// ([`ChunkEvaluator::evaluate_packed`]). Returns the frames to send: the layer's
    /// `ClientMasked` once its last chunk is in, else none.
    pub fn complete_job(&mut self, id: u32, packed: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let result = self.complete(id, packed);
        match &result {
            Ok(out) => {
                for f in out {
                    self.count(f, true);
                }
            }
            Err(_) => self.state = State::Done,
        }
        result
    }

    /// Stores one job's shares; the layer's reply once all are in. An error closes the session
    /// (its caller, [`ClientSession::complete_job`], marks it done).
    fn complete(&mut self, id: u32, packed: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let State::Labels {
            ctx,
            garbled,
            next,
            pending: Some(mut p),
        } = state
        else {
            self.state = state;
            return Err(ProtocolError::Unexpected {
                got: "job result",
                state: "no layer is being evaluated",
            });
        };
        let unexpected = |got| ProtocolError::Unexpected {
            got,
            state: "evaluating a layer",
        };
        let slot = p
            .ids
            .iter()
            .position(|&i| i == id)
            .ok_or(unexpected("result of another job"))?;
        if p.shares[slot].is_some() {
            return Err(unexpected("second result of a job"));
        }
        let shares = ring::unpack(packed, p.counts[slot], ctx.plan.k, "job result")?;
        p.shares[slot] = Some(shares);
        let (out, pending) = if p.shares.iter().all(Option::is_some) {
            let o: Vec<u64> = p.shares.into_iter().flatten().flatten().collect();
            (vec![self.layer_reply(&ctx, p.stage, o).encode()], None)
        } else {
            (Vec::new(), Some(p))
        };
        self.state = State::Labels {
            ctx,
            garbled,
            next,
            pending,
        };
        Ok(out)
    }

    /// The client's masked ReLU output o − r of a finished layer.
    fn layer_reply(&mut self, ctx: &Ctx, stage: usize, o: Vec<u64>) -> Msg {
        let masked = ring::sub(&o, &ctx.mask_relu[stage], ctx.plan.k);
        if let Some(r) = self.record.as_mut() {
            r.relu_shares.push(o);
        }
        Msg::ClientMasked {
            stage: stage as u32,
            body: ring::pack(&masked, ctx.plan.k),
        }
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

    fn quantize_input(&mut self, plan: &Plan) -> Result<Vec<u64>, ProtocolError> {
        let bad = |reason: String| ProtocolError::Malformed {
            what: "client input",
            reason,
        };
        let x = match self.input.take() {
            Some(ClientInput::ImageBytes(bytes)) => {
                cryptonas_model::image::load_input(&bytes, &plan.input)
                    .map_err(|e| bad(e.to_string()))?
            }
            Some(ClientInput::Normalised(x)) => x,
            None => return Err(ProtocolError::Closed),
        };
        if x.len() != plan.input_len() {
            return Err(bad(format!(
                "{} values for a {}-value input",
                x.len(),
                plan.input_len()
            )));
        }
        let lim = 2f64.powi(plan.k as i32 - 1);
        x.iter()
            .map(|&v| {
                let r = (f64::from(v) * f64::from(plan.f_in).exp2()).round();
                if !r.is_finite() || r >= lim || r < -lim {
                    Err(bad(format!("input value {v} does not fit the ring")))
                } else {
                    Ok(from_signed(r as i64, plan.k))
                }
            })
            .collect()
    }

    fn on_plan(
        &mut self,
        session_id: u64,
        json: &[u8],
    ) -> Result<(State, Vec<Msg>), ProtocolError> {
        let plan: Plan = serde_json::from_slice(json).map_err(|e| ProtocolError::Malformed {
            what: "ServerPlan",
            reason: e.to_string(),
        })?;
        plan.validate()?;
        self.classes = plan.classes.clone();
        self.relus = plan.relu_count();
        self.traffic.layers = plan
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.relu)
            .map(|(stage, s)| LayerCost {
                stage,
                relus: s.len,
                ..LayerCost::default()
            })
            .collect();
        let k = plan.k;
        let input = self.quantize_input(&plan)?;
        let he_params = HeParams::new(k).map_err(he_err)?;
        let keys = ClientKeys::generate(&he_params, &mut self.rng).map_err(he_err)?;
        let mask_image = ring::random(&mut self.rng, plan.input_len(), k);
        let mask_relu: Vec<Vec<u64>> = plan
            .stages
            .iter()
            .map(|s| {
                if s.relu {
                    ring::random(&mut self.rng, s.len, k)
                } else {
                    Vec::new()
                }
            })
            .collect();
        let circuits = plan
            .stages
            .iter()
            .map(|s| {
                s.relu
                    .then(|| ReluCircuit::new(k, s.trunc, ReluVariant::Relu))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ProtocolError::Malformed {
                what: "ServerPlan",
                reason: e.to_string(),
            })?;
        let mut out = vec![Msg::ClientHeKey(keys.public_key().to_bytes(&he_params))];
        let mut he = Vec::with_capacity(plan.stages.len());
        for (i, st) in plan.stages.iter().enumerate() {
            let convs: Vec<_> = st.terms.iter().map(|(_, c)| *c).collect();
            let stage = ClientStage::new(&he_params, &convs).map_err(he_err)?;
            let masks: Vec<&[u64]> = st
                .terms
                .iter()
                .map(|(src, _)| match src {
                    Source::Image => mask_image.as_slice(),
                    Source::Relu(j) => mask_relu[*j].as_slice(),
                })
                .collect();
            let (state, msg) = stage
                .encrypt_masks(&keys, &masks, &mut self.rng)
                .map_err(he_err)?;
            he.push(state);
            out.push(Msg::ClientHeMasks {
                stage: i as u32,
                body: msg.to_bytes(&he_params),
            });
        }
        let ctx = Ctx {
            plan,
            session_id,
            keys,
            he_params,
            input,
            mask_image,
            mask_relu,
            circuits,
            shares: Vec::new(),
        };
        Ok((
            State::HeResponses {
                ctx: Box::new(ctx),
                he,
            },
            out,
        ))
    }

    fn step(&mut self, msg: Msg) -> Result<Step, ProtocolError> {
        let state_name = self.state_name();
        let state = std::mem::replace(&mut self.state, State::Done);
        let (next, out) = match (state, msg) {
            (_, Msg::Error(text)) => return Err(ProtocolError::Peer(text)),
            (State::Plan, Msg::ServerPlan { session_id, plan }) => {
                self.on_plan(session_id, &plan)?
            }
            (State::HeResponses { mut ctx, he }, Msg::ServerHeResponse { stage, body }) => {
                let i = ctx.shares.len();
                if stage as usize != i {
                    return Err(ProtocolError::Unexpected {
                        got: "ServerHeResponse for another stage",
                        state: state_name,
                    });
                }
                let resp = ResponseMsg::from_bytes(&ctx.he_params, &body).map_err(he_err)?;
                let share = he[i].decrypt(&ctx.keys, &resp).map_err(he_err)?;
                ctx.shares.push(share);
                if ctx.shares.len() < ctx.plan.stages.len() {
                    (State::HeResponses { ctx, he }, vec![])
                } else {
                    let (setup, receiver) = kos::Receiver::new().setup(&mut self.rng);
                    (
                        State::OtChoices { ctx, receiver },
                        vec![Msg::ClientOtSetup(setup.to_bytes())],
                    )
                }
            }
            (State::OtChoices { ctx, receiver }, Msg::ServerOtChoices(bytes)) => {
                let choices = ReceiverChoices::from_bytes(&bytes).map_err(ot_err)?;
                let receiver = receiver.receive_base_choices(choices).map_err(ot_err)?;
                let mut bits = Vec::with_capacity(ctx.plan.relu_count() * ctx.plan.k as usize);
                for (i, st) in ctx.plan.stages.iter().enumerate() {
                    if st.relu {
                        bits.extend(
                            words_to_bits(&ctx.shares[i], ctx.plan.k)
                                .map_err(|e| ProtocolError::Check(format!("share bits: {e}")))?,
                        );
                    }
                }
                let (matrix, receiver) = receiver.extend(&bits, &mut self.rng).map_err(ot_err)?;
                (
                    State::OtChallenge { ctx, receiver },
                    vec![Msg::ClientOtExtend(matrix.to_bytes())],
                )
            }
            (State::OtChallenge { ctx, receiver }, Msg::ServerOtChallenge(bytes)) => {
                let challenge = CheckChallenge::from_bytes(&bytes).map_err(ot_err)?;
                let (response, labels, _receiver) = receiver.receive_challenge(challenge);
                let labels = labels.labels().to_vec();
                let mut out = vec![Msg::ClientOtResponse(response.to_bytes())];
                let garbled = ctx.plan.stages.iter().map(|_| Vec::new()).collect();
                let next = if ctx.plan.stages[0].relu {
                    State::Garbled {
                        ctx,
                        labels,
                        garbled,
                        stage: 0,
                        received: 0,
                    }
                } else {
                    // No ReLU layer: nothing to garble, straight online.
                    out.push(self.go_online(&ctx));
                    State::Labels {
                        ctx,
                        garbled,
                        next: 0,
                        pending: None,
                    }
                };
                (next, out)
            }
            (
                State::Garbled {
                    ctx,
                    labels,
                    mut garbled,
                    stage: i,
                    received,
                },
                Msg::ServerGarbled {
                    stage,
                    first,
                    count,
                    tables,
                    decoding,
                    corrections,
                },
            ) => {
                // Chunks arrive in order: stage by stage, each layer front to back.
                let (Some(circuit), true) = (&ctx.circuits[i], stage as usize == i) else {
                    return Err(ProtocolError::Unexpected {
                        got: "ServerGarbled for another stage",
                        state: state_name,
                    });
                };
                let (first, count) = (first as usize, count as usize);
                let len = ctx.plan.stages[i].len;
                if first != received || count == 0 || count > len - received {
                    return Err(ProtocolError::Malformed {
                        what: "ServerGarbled",
                        reason: format!(
                            "chunk {first}..{} of a {len}-ReLU layer, expected one starting at {received}",
                            first.saturating_add(count)
                        ),
                    });
                }
                let k = ctx.plan.k as usize;
                let at = ctx.plan.stages[..i].iter().map(|s| s.len).sum::<usize>() + first;
                let mut client_labels =
                    Block::slice_as_bytes(&labels[at * k..(at + count) * k]).to_vec();
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
                let job = ChunkJob {
                    id: self.next_job,
                    k: ctx.plan.k,
                    trunc: circuit.t(),
                    session_id: ctx.session_id,
                    first_instance: at as u32,
                    count: count as u32,
                    tables,
                    decoding,
                    client_labels,
                };
                self.next_job += 1;
                // Sizes are checked here in either mode, so a bad frame fails the session at once.
                let work = if self.delegate {
                    job.check_server_parts(circuit)?;
                    let id = job.id;
                    self.tasks.push_back(EvalTask::Store(job));
                    ChunkWork::Delegated(id)
                } else {
                    ChunkWork::Local(Box::new(ChunkEvaluator::new(&job)?))
                };
                garbled[i].push(GarbledChunk { first, count, work });
                let (stage, received) = if received + count == len {
                    (i + 1, 0)
                } else {
                    (i, received + count)
                };
                if ctx.plan.stages[stage].relu {
                    (
                        State::Garbled {
                            ctx,
                            labels,
                            garbled,
                            stage,
                            received,
                        },
                        vec![],
                    )
                } else {
                    // The OT labels now live in the chunks.
                    drop(labels);
                    let input = self.go_online(&ctx);
                    (
                        State::Labels {
                            ctx,
                            garbled,
                            next: 0,
                            pending: None,
                        },
                        vec![input],
                    )
                }
            }
            (
                State::Labels {
                    ctx,
                    mut garbled,
                    next,
                    pending: None,
                },
                Msg::ServerLabels { stage, body },
            ) => {
                let plan = &ctx.plan;
                let per_relu = plan.k as usize * 16;
                if ctx.circuits[next].is_none() || stage as usize != next {
                    return Err(ProtocolError::Unexpected {
                        got: "ServerLabels for another stage",
                        state: state_name,
                    });
                }
                let n = plan.stages[next].len;
                if body.len() != n * per_relu {
                    return Err(ProtocolError::WrongSize {
                        what: "ServerLabels bytes",
                        expected: n * per_relu,
                        got: body.len(),
                    });
                }
                let labels_of =
                    |c: &GarbledChunk| &body[c.first * per_relu..(c.first + c.count) * per_relu];
                // Material used once: each chunk's tables are dropped after evaluation.
                let chunks = std::mem::take(&mut garbled[next]);
                if self.delegate {
                    let mut pending = Pending {
                        stage: next,
                        ids: Vec::new(),
                        counts: Vec::new(),
                        shares: Vec::new(),
                    };
                    for c in &chunks {
                        let ChunkWork::Delegated(id) = c.work else {
                            return Err(ProtocolError::Closed);
                        };
                        self.tasks.push_back(EvalTask::Evaluate {
                            id,
                            garbler_labels: labels_of(c).to_vec(),
                        });
                        pending.ids.push(id);
                        pending.counts.push(c.count);
                        pending.shares.push(None);
                    }
                    let state = State::Labels {
                        ctx,
                        garbled,
                        next: next + 1,
                        pending: Some(pending),
                    };
                    (state, vec![])
                } else {
                    let mut work = Vec::with_capacity(chunks.len());
                    for c in &chunks {
                        let ChunkWork::Local(evaluator) = &c.work else {
                            return Err(ProtocolError::Closed);
                        };
                        work.push((evaluator.as_ref(), labels_of(c)));
                    }
                    let o = evaluate_chunks(&work)?;
                    let reply = self.layer_reply(&ctx, next, o);
                    let state = State::Labels {
                        ctx,
                        garbled,
                        next: next + 1,
                        pending: None,
                    };
                    (state, vec![reply])
                }
            }
            (
                State::Labels {
                    ctx,
                    next,
                    pending: None,
                    ..
                },
                Msg::ServerOutput(body),
            ) if next + 1 == ctx.plan.stages.len() => {
                let plan = &ctx.plan;
                let last = &plan.stages[next];
                let mut logits = ring::unpack(&body, last.len, plan.k, "ServerOutput")?;
                ring::add_assign(&mut logits, &ctx.shares[next], plan.k);
                let real: Vec<f64> = logits
                    .iter()
                    .map(|&v| to_signed(v, plan.k) as f64 / f64::from(last.f_z).exp2())
                    .collect();
                let class = real
                    .iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                        if v > best.1 {
                            (i, v)
                        } else {
                            best
                        }
                    })
                    .0;
                if let Some(r) = self.record.as_mut() {
                    r.stage_shares = ctx.shares.clone();
                }
                self.outcome = Some(Outcome {
                    logits_ring: logits,
                    logits: real,
                    class,
                    input_ring: ctx.input.clone(),
                });
                self.phase = Phase::Done;
                return Ok(Step::Finished(Vec::new()));
            }
            (state, msg) => {
                self.state = state;
                return Err(ProtocolError::Unexpected {
                    got: msg.name(),
                    state: state_name,
                });
            }
        };
        self.state = next;
        Ok(Step::Continue(out.iter().map(Msg::encode).collect()))
    }

    /// Enters the online phase: the masked image x − r.
    fn go_online(&mut self, ctx: &Ctx) -> Msg {
        let masked = ring::sub(&ctx.input, &ctx.mask_image, ctx.plan.k);
        self.phase = Phase::Online;
        Msg::ClientInput(ring::pack(&masked, ctx.plan.k))
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Plan => "waiting for ServerPlan",
            State::HeResponses { .. } => "waiting for ServerHeResponse",
            State::OtChoices { .. } => "waiting for ServerOtChoices",
            State::OtChallenge { .. } => "waiting for ServerOtChallenge",
            State::Garbled { .. } => "waiting for ServerGarbled",
            State::Labels {
                pending: Some(_), ..
            } => "evaluating a layer",
            State::Labels { .. } => "waiting for ServerLabels or ServerOutput",
            State::Done => "closed",
        }
    }

    /// Books a frame's bytes into the traffic counters.
    fn count(&mut self, frame: &[u8], up: bool) {
        let Some(kind) = FrameKind::of(frame) else {
            return;
        };
        let len = frame.len() as u64;
        let t = &mut self.traffic;
        let online = self.phase != Phase::Offline || kind.name == "ClientInput";
        match (online, up) {
            (false, true) => t.offline_up += len,
            (false, false) => t.offline_down += len,
            (true, true) => t.online_up += len,
            (true, false) => t.online_down += len,
        }
        match kind.name {
            "ClientHeKey" | "ClientHeMasks" => t.he_up += len,
            "ServerHeResponse" => t.he_down += len,
            "ClientOtSetup" | "ClientOtExtend" | "ClientOtResponse" => t.ot_up += len,
            "ServerOtChoices" | "ServerOtChallenge" => t.ot_down += len,
            "ServerOutput" => t.online_rounds += 1,
            _ => {}
        }
        if let Some(stage) = kind.stage {
            let stage = stage as usize;
            let layer = match t.layers.iter_mut().position(|l| l.stage == stage) {
                Some(p) => &mut t.layers[p],
                None => {
                    t.layers.push(LayerCost {
                        stage,
                        ..LayerCost::default()
                    });
                    t.layers.last_mut().expect("just pushed")
                }
            };
            match kind.name {
                "ServerGarbled" => layer.offline_down += len,
                "ServerLabels" => {
                    layer.online_down += len;
                    t.online_rounds += 1;
                }
                "ClientMasked" => layer.online_up += len,
                _ => {}
            }
        }
    }
}

/// Evaluates a layer's chunks and concatenates their shares. Natively the chunks run in parallel
/// (one rayon pass per layer: evaluating chunk after chunk synchronised the threads at every chunk
/// and halved the throughput); in wasm the page's workers do that.
fn evaluate_chunks(work: &[(&ChunkEvaluator, &[u8])]) -> Result<Vec<u64>, ProtocolError> {
    #[cfg(not(target_arch = "wasm32"))]
    let shares: Vec<Vec<u64>> = {
        use rayon::prelude::*;
        work.par_iter()
            .map(|(e, labels)| e.evaluate(labels))
            .collect::<Result<_, _>>()?
    };
    #[cfg(target_arch = "wasm32")]
    let shares: Vec<Vec<u64>> = work
        .iter()
        .map(|(e, labels)| e.evaluate(labels))
        .collect::<Result<_, _>>()?;
    Ok(shares.concat())
}

impl FrameSession for ClientSession {
    fn start(&mut self) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let hello = Msg::ClientHello {
            version: PROTOCOL_VERSION,
        }
        .encode();
        self.count(&hello, true);
        Ok(vec![hello])
    }

    fn handle(&mut self, frame: &[u8]) -> Result<Step, ProtocolError> {
        if matches!(self.state, State::Done) {
            return Err(ProtocolError::Closed);
        }
        self.count(frame, false);
        let result = Msg::decode(frame).and_then(|m| self.step(m));
        match &result {
            Ok(Step::Continue(out)) | Ok(Step::Finished(out)) => {
                for f in out {
                    self.count(f, true);
                }
            }
            Err(_) => self.state = State::Done,
        }
        result
    }
}
