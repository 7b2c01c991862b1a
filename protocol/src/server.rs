//! The server's half of one inference, as a sans-IO state machine.
//!
//! Offline: HE responses per stage (keeping s_i), the KOS correlated OT on the client's share bits
//! with the garbling Δ, then the ReLU layers garbled with fresh re-masks m_i and streamed in chunks
//! of [`GARBLE_CHUNK`] ReLUs through [`Session::poll_output`]: a chunk is garbled only when the
//! transport has sent the previous one, so the server never holds a layer's tables, only the
//! garbler's input labels it needs online.
//! Online: per stage, its share a_i = Σ W·(src − r) + bias + s_i (the client sent the masked sources);
//! for a garbled layer it sends the labels of a_i (rounding term added); for the logits it sends
//! a_i under the `logits` output policy, and under `class` / `top-k` the labels of a_i for the
//! garbled top-k, whose result only the client learns (the server never sees the answer).

use crate::msgs::{Msg, PROTOCOL_VERSION};
use crate::plan::{ServerModel, StageCircuit, StageDecoding};
use crate::session::{he_err, ot_err, Output, Session};
use crate::{ring_err, Phase, ProtocolError};
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use cryptonas_gc::{Delta, Encoder, TweakDomain};
use cryptonas_he::{MasksMsg, PublicKey, PublicKeyMsg};
use cryptonas_model::{conv_ring, Source};
use cryptonas_ot::chou_orlandi::SenderSetup;
use cryptonas_ot::kos::{self, CheckResponse, ExtendMatrix};
use cryptonas_ring::{RingVec, RingWidth};
use std::collections::VecDeque;
use std::sync::Arc;
use zeroize::Zeroizing;

/// What a message handler produced.
enum Step {
    /// Frames to send; the session goes on.
    Continue(Vec<Vec<u8>>),
    /// Frames to send; then the session is over.
    Finished(Vec<Vec<u8>>),
}

enum State {
    Hello,
    HeKey,
    HeMasks {
        pk: Box<PublicKey>,
        shares: Vec<RingVec>,
    },
    OtSetup {
        shares: Vec<RingVec>,
    },
    OtExtend {
        sender: kos::Sender<kos::state::Receiving>,
        shares: Vec<RingVec>,
    },
    OtCheck {
        sender: kos::Sender<kos::state::Checking>,
        shares: Vec<RingVec>,
    },
    Garbling(Box<Garbling>),
    Input(Box<Online>),
    Masked(Box<Online>),
    Closed,
}

/// ReLUs per streamed `ServerGarbled` frame: ≈ 3 MB of tables at k = 32, a millisecond or two of
/// garbling; a multiple of the garbling batch width so chunks never split a batch. A chunk is one
/// evaluation job in the browser, so it is also the unit of balance between evaluation workers:
/// at 2,048 a 14,336-ReLU layer (the 86K model) split 4:3 between two workers, at 1,024 it splits
/// 7:7.
pub const GARBLE_CHUNK: usize = 1024;
const _: () = assert!(GARBLE_CHUNK.is_multiple_of(cryptonas_gc::CHUNK));

/// What one inference's garbling is hashed with: the session id (in every tweak) and π's key, both
/// fresh per inference and public once the session starts ([`Msg::ServerPlan`]). A per-session π
/// key keeps an adversary's offline work on π from helping against more than one session (see the
/// gc crate's README for the concrete security).
#[derive(Clone)]
struct SessionKeys {
    id: u64,
    pi_key: [u8; 16],
    pi: FixedKeyAes,
}

impl SessionKeys {
    fn random(rng: &mut Csprng) -> SessionKeys {
        let id = rng.u64();
        let pi_key = rng.block().0;
        SessionKeys {
            id,
            pi_key,
            pi: FixedKeyAes::new(pi_key),
        }
    }
}

/// Garbling done ahead of any client (a server's pool, see [`ServerModel::prepare_offline`]): Δ,
/// the session id the tables are tweaked with, and every layer's re-mask and garbled chunks. The
/// client's input wires got random zero-labels W₀; once the OT gives the session its K₀, each chunk
/// travels with the corrections W₀ ⊕ K₀ (16 B per share bit) so the client's K₀ ⊕ b·Δ become
/// W₀ ⊕ b·Δ. Used by one session only.
pub struct OfflineMaterial {
    model: String,
    keys: SessionKeys,
    delta: Delta,
    /// Per ReLU layer in stage order: the re-mask and the chunks.
    layers: std::collections::VecDeque<PooledLayer>,
}

struct PooledLayer {
    remask: RingVec,
    chunks: std::collections::VecDeque<cryptonas_gc::Garbled<StageDecoding>>,
}

impl std::fmt::Debug for OfflineMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OfflineMaterial({}, {} layers, Δ hidden)",
            self.model,
            self.layers.len()
        )
    }
}

impl OfflineMaterial {
    /// Bytes held (tables, output decoding, labels, re-masks), for pool accounting.
    pub fn bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| {
                8 * l.remask.len() as u64
                    + l.chunks
                        .iter()
                        .map(|g| {
                            (g.tables.as_bytes().len()
                                + g.decoding.as_bytes().len()
                                + 16 * 2 * g.encoder.instances() * share_bits(g))
                                as u64
                        })
                        .sum::<u64>()
            })
            .sum()
    }
}

/// Share bits per instance of a garbled chunk (its evaluator inputs).
fn share_bits(g: &cryptonas_gc::Garbled<StageDecoding>) -> usize {
    g.encoder.evaluator_zero_labels().len() / g.encoder.instances().max(1)
}

impl ServerModel {
    /// Garbles every ReLU layer of one future inference now, before any client: fresh Δ, session
    /// id and re-masks. A server keeps a bounded pool of these per model so that a session's
    /// offline phase only streams them (see [`ServerSession::with_material`]).
    pub fn prepare_offline(&self, rng: &mut Csprng) -> Result<OfflineMaterial, ProtocolError> {
        let keys = SessionKeys::random(rng);
        let delta = Delta::random(rng);
        let mut layers = std::collections::VecDeque::new();
        let mut offset = 0usize;
        for (circuit, st) in self.circuits.iter().zip(&self.plan.stages) {
            let Some(circuit) = circuit else { continue };
            let n = st.instances();
            let remask = RingVec::random(self.plan.ring()?, n, || rng.u64());
            let mut chunks = std::collections::VecDeque::new();
            let mut first = 0;
            while first < n {
                let count = GARBLE_CHUNK.min(n - first);
                let masks = &remask.values()[first..first + count];
                let at = offset + first;
                chunks.push_back(garble_chunk(circuit, &keys, &delta, at, masks, None, rng)?);
                first += count;
            }
            offset += n;
            layers.push_back(PooledLayer { remask, chunks });
        }
        Ok(OfflineMaterial {
            model: self.plan.model.clone(),
            keys,
            delta,
            layers,
        })
    }
}

/// Garbles the ReLUs of one chunk, the first being ReLU `at` of the inference (its tweaks), with
/// the client's input zero-labels from the OT or, ahead of any client, fresh ones.
fn garble_chunk(
    circuit: &StageCircuit,
    keys: &SessionKeys,
    delta: &Delta,
    at: usize,
    masks: &[u64],
    client_zero: Option<&[Block]>,
    rng: &mut Csprng,
) -> Result<cryptonas_gc::Garbled<StageDecoding>, ProtocolError> {
    let first_instance = u32::try_from(at).map_err(|_| ProtocolError::WrongSize {
        what: "circuit instances per inference",
        expected: u32::MAX as usize,
        got: at,
    })?;
    let domain = TweakDomain {
        session_id: keys.id,
        first_instance,
    };
    circuit
        .garble_with_pi(&keys.pi, delta.clone(), domain, masks, client_zero, rng)
        .map_err(|e| ProtocolError::Check(format!("garbling: {e}")))
}

/// Pooled material that ran out before the layers did (checked by [`ServerSession::with_material`]).
const POOL_SHORT: ProtocolError = ProtocolError::Internal("pooled material ran out");

/// The offline garbling in progress: Δ, the client's input zero-labels from the OT, and where the
/// next chunk starts.
struct Garbling {
    delta: Delta,
    /// The client's input zero-labels K₀ (with Δ they give every label of its shares): wiped.
    zero: Zeroizing<Vec<Block>>,
    online: Online,
    /// Next stage to garble (ReLU stages only; the logits stage ends the loop).
    stage: usize,
    /// Next ReLU within `stage`.
    first: usize,
    /// ReLUs of the stages before `stage`.
    offset: usize,
    /// Pre-garbled layers, if the session took material from a pool.
    pooled: Option<std::collections::VecDeque<PooledLayer>>,
}

/// What the online phase needs: HE shares s_i, the encoders (one per streamed chunk) and re-masks
/// of every ReLU layer, and the masked shared tensors received so far (x − r, then y_j − r_j).
struct Online {
    k: RingWidth,
    shares: Vec<RingVec>,
    encoders: Vec<Vec<Encoder>>,
    remasks: Vec<RingVec>,
    masked_image: RingVec,
    masked_relu: Vec<RingVec>,
}

/// The server's session for one inference. Fresh randomness; nothing is shared with other sessions
/// except the read-only model.
pub struct ServerSession {
    model: Arc<ServerModel>,
    rng: Csprng,
    keys: SessionKeys,
    state: State,
    record: Option<ServerRecord>,
    material: Option<OfflineMaterial>,
    outbox: VecDeque<Vec<u8>>,
    /// The last frames are queued: [`Output::Finished`] follows them.
    finishing: bool,
    /// Whether any message was accepted (and so the session id sent).
    answered: bool,
}

/// The server's secret shares of one inference, kept only for the per-layer diff harness
/// ([`crate::verify_local`]); never enabled by the server binary.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerRecord {
    /// a_i: the server's share of every stage output (without the rounding term).
    pub(crate) stage_shares: Vec<Vec<u64>>,
    /// m_i: the server's share of every ReLU layer's output.
    pub(crate) remasks: Vec<Vec<u64>>,
}

impl ServerSession {
    /// A session over `model` with a fresh generator.
    pub fn new(model: Arc<ServerModel>, mut rng: Csprng) -> Self {
        let keys = SessionKeys::random(&mut rng);
        ServerSession::with_keys(model, rng, keys)
    }

    /// A session whose garbling uses `keys` (fresh, or those pooled material was garbled with).
    fn with_keys(model: Arc<ServerModel>, rng: Csprng, keys: SessionKeys) -> Self {
        ServerSession {
            model,
            rng,
            keys,
            state: State::Hello,
            record: None,
            material: None,
            outbox: VecDeque::new(),
            finishing: false,
            answered: false,
        }
    }

    /// A session whose garbling was done ahead of time ([`ServerModel::prepare_offline`]); its
    /// offline phase streams the material with per-chunk label corrections instead of garbling.
    pub fn with_material(
        model: Arc<ServerModel>,
        rng: Csprng,
        material: OfflineMaterial,
    ) -> Result<Self, ProtocolError> {
        let garbled = model.plan.stages.iter().filter(|s| s.garbled());
        let fits = material.model == model.plan.model
            && material.layers.len() == garbled.clone().count()
            && material.layers.iter().zip(garbled).all(|(l, st)| {
                l.remask.len() == st.instances()
                    && l.chunks.len() == st.instances().div_ceil(GARBLE_CHUNK)
                    && l.chunks
                        .iter()
                        .map(|g| g.encoder.instances())
                        .sum::<usize>()
                        == st.instances()
            });
        if !fits {
            return Err(ProtocolError::Check(format!(
                "offline material of model '{}' does not fit model '{}'",
                material.model, model.plan.model
            )));
        }
        let mut session = ServerSession::with_keys(model, rng, material.keys.clone());
        session.material = Some(material);
        Ok(session)
    }

    /// Keeps the server's shares for [`crate::verify_local`].
    pub(crate) fn record(&mut self) {
        self.record = Some(ServerRecord::default());
    }

    /// The recorded shares, if recording.
    pub(crate) fn recorded(&self) -> Option<&ServerRecord> {
        self.record.as_ref()
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Hello => "waiting for ClientHello",
            State::HeKey => "waiting for ClientHeKey",
            State::HeMasks { .. } => "waiting for ClientHeMasks",
            State::OtSetup { .. } => "waiting for ClientOtSetup",
            State::OtExtend { .. } => "waiting for ClientOtExtend",
            State::OtCheck { .. } => "waiting for ClientOtResponse",
            State::Garbling(_) => "sending the garbled layers",
            State::Input(_) => "waiting for ClientInput",
            State::Masked(_) => "waiting for ClientMasked",
            State::Closed => "closed",
        }
    }

    fn step(&mut self, msg: Msg) -> Result<Step, ProtocolError> {
        let model = self.model.clone();
        let plan = &model.plan;
        let state_name = self.state_name();
        let state = std::mem::replace(&mut self.state, State::Closed);
        let (next, out) = match (state, msg) {
            (_, Msg::Error { code, message }) => return Err(ProtocolError::Peer { code, message }),
            (State::Hello, Msg::ClientHello { version }) => {
                if version != PROTOCOL_VERSION {
                    return Err(ProtocolError::Version {
                        ours: PROTOCOL_VERSION,
                        theirs: version,
                    });
                }
                let plan_json = serde_json::to_vec(plan)
                    .map_err(|_| ProtocolError::Internal("the plan does not serialise"))?;
                let reply = Msg::ServerPlan {
                    session_id: self.keys.id,
                    pi_key: self.keys.pi_key,
                    plan: plan_json,
                };
                (State::HeKey, vec![reply])
            }
            (State::HeKey, Msg::ClientHeKey(bytes)) => {
                let msg = PublicKeyMsg::from_bytes(&model.he_params, &bytes).map_err(he_err)?;
                let pk = PublicKey::from_msg(&model.he_params, &msg).map_err(he_err)?;
                let shares = Vec::with_capacity(plan.stages.len());
                (
                    State::HeMasks {
                        pk: Box::new(pk),
                        shares,
                    },
                    vec![],
                )
            }
            (State::HeMasks { pk, mut shares }, Msg::ClientHeMasks { stage, body }) => {
                let i = shares.len();
                if stage as usize != i {
                    return Err(ProtocolError::Unexpected {
                        got: "ClientHeMasks for another stage",
                        state: state_name,
                    });
                }
                let masks = MasksMsg::from_bytes(&model.he_params, &body).map_err(he_err)?;
                let (s, response) = model.he_stages[i]
                    .respond(&pk, &masks, &mut self.rng)
                    .map_err(he_err)?;
                shares.push(
                    RingVec::from_values(model.plan.ring()?, s).map_err(ring_err("HE share"))?,
                );
                let reply = Msg::ServerHeResponse {
                    stage,
                    body: response.to_bytes(&model.he_params),
                };
                let next = if shares.len() == plan.stages.len() {
                    State::OtSetup { shares }
                } else {
                    State::HeMasks { pk, shares }
                };
                (next, vec![reply])
            }
            (State::OtSetup { shares }, Msg::ClientOtSetup(bytes)) => {
                let setup = SenderSetup::from_bytes(&bytes).map_err(ot_err)?;
                let delta = match &self.material {
                    Some(m) => m.delta.clone(),
                    None => Delta::random(&mut self.rng),
                };
                let sender = kos::Sender::new(delta.as_block()).map_err(ot_err)?;
                let (choices, sender) = sender.receive_base_setup(setup, &mut self.rng);
                let sender = sender.expect_extension(plan.ot_bits()).map_err(ot_err)?;
                (
                    State::OtExtend { sender, shares },
                    vec![Msg::ServerOtChoices(choices.to_bytes())],
                )
            }
            (State::OtExtend { mut sender, shares }, Msg::ClientOtExtend(bytes)) => {
                let part = ExtendMatrix::from_bytes(&bytes).map_err(ot_err)?;
                drop(bytes);
                // A part of another batch size is refused here, out of order ones by the sender.
                let want = plan.ot_bits();
                if part.count() != want {
                    return Err(ProtocolError::WrongSize {
                        what: "ClientOtExtend transfers",
                        expected: want,
                        got: part.count(),
                    });
                }
                // A larger part would make this session hold more than its frame bound says.
                if part.rows() > crate::OT_PART_ROWS {
                    return Err(ProtocolError::WrongSize {
                        what: "ClientOtExtend part rows",
                        expected: crate::OT_PART_ROWS,
                        got: part.rows(),
                    });
                }
                sender.receive_part(part).map_err(ot_err)?;
                if sender.rows_left() > 0 {
                    (State::OtExtend { sender, shares }, vec![])
                } else {
                    let (challenge, sender) = sender.challenge(&mut self.rng).map_err(ot_err)?;
                    (
                        State::OtCheck { sender, shares },
                        vec![Msg::ServerOtChallenge(challenge.to_bytes())],
                    )
                }
            }
            (State::OtCheck { sender, shares }, Msg::ClientOtResponse(bytes)) => {
                let response = CheckResponse::from_bytes(&bytes).map_err(ot_err)?;
                let (cot, _sender) = sender
                    .receive_check(response)
                    .map_err(|e| ProtocolError::Check(e.to_string()))?;
                let delta = Delta::new(cot.delta());
                let zero = Zeroizing::new(cot.into_zero_labels());
                let garbling = Garbling {
                    delta,
                    zero,
                    online: Online {
                        k: plan.ring()?,
                        shares,
                        encoders: plan.stages.iter().map(|_| Vec::new()).collect(),
                        remasks: Vec::new(),
                        masked_image: RingVec::zeros(plan.ring()?, 0),
                        masked_relu: Vec::new(),
                    },
                    stage: 0,
                    first: 0,
                    offset: 0,
                    pooled: self.material.take().map(|m| m.layers),
                };
                if model.circuits[0].is_some() {
                    // The garbled layers follow through `poll_output`.
                    (State::Garbling(Box::new(garbling)), vec![])
                } else {
                    (State::Input(Box::new(garbling.online)), vec![])
                }
            }
            (State::Input(mut online), Msg::ClientInput(bytes)) => {
                online.masked_image = RingVec::unpack(online.k, &bytes, plan.input_len())
                    .map_err(ring_err("ClientInput"))?;
                let reply = self.stage_reply(&mut online, 0)?;
                if plan.stages.len() == 1 {
                    return Ok(Step::Finished(vec![reply.encode()]));
                }
                (State::Masked(online), vec![reply])
            }
            (State::Masked(mut online), Msg::ClientMasked { stage, body }) => {
                let j = online.masked_relu.len();
                if stage as usize != j {
                    return Err(ProtocolError::Unexpected {
                        got: "ClientMasked for another stage",
                        state: state_name,
                    });
                }
                // y_j − r_j = (o_j − r_j) + m_j.
                let mut masked = RingVec::unpack(online.k, &body, plan.stages[j].instances())
                    .map_err(ring_err("ClientMasked"))?;
                masked
                    .add_assign(&online.remasks[j])
                    .map_err(ring_err("ClientMasked"))?;
                online.masked_relu.push(masked);
                let reply = self.stage_reply(&mut online, j + 1)?;
                if j + 2 == plan.stages.len() {
                    return Ok(Step::Finished(vec![reply.encode()]));
                }
                (State::Masked(online), vec![reply])
            }
            (state, msg) => {
                self.state = state;
                return Err(ProtocolError::unexpected(msg.kind(), state_name));
            }
        };
        self.state = next;
        Ok(Step::Continue(out.iter().map(Msg::encode).collect()))
    }

    /// Garbles the next chunk of the current ReLU layer with Δ and the client's input zero-labels
    /// from the OT (a fresh re-mask for the layer when it starts).
    fn garble_next(&mut self, g: &mut Garbling) -> Result<Msg, ProtocolError> {
        let model = self.model.clone();
        let plan = &model.plan;
        let i = g.stage;
        let (Some(circuit), st) = (&model.circuits[i], &plan.stages[i]) else {
            return Err(ProtocolError::Internal(
                "garbling a stage that is not a ReLU layer",
            ));
        };
        if g.first == 0 {
            let m = match g.pooled.as_mut() {
                Some(layers) => {
                    let layer = layers.front_mut().ok_or(POOL_SHORT)?;
                    std::mem::replace(&mut layer.remask, RingVec::zeros(g.online.k, 0))
                }
                None => {
                    let rng = &mut self.rng;
                    RingVec::random(g.online.k, st.instances(), || rng.u64())
                }
            };
            if let Some(r) = self.record.as_mut() {
                r.remasks.push(m.values().to_vec());
            }
            g.online.remasks.push(m);
        }
        let n = st.instances();
        let count = GARBLE_CHUNK.min(n - g.first);
        let at = g.offset + g.first;
        // The client's share bits of this chunk: k_l per share word, `window` words per instance,
        // layers one after another.
        let per = st.k as usize * circuit.window();
        let bit = plan.ot_offset(i) + g.first * per;
        let labels = g
            .zero
            .get(bit..bit + count * per)
            .ok_or(ProtocolError::Internal("fewer OT labels than share bits"))?;
        let (garbled, corrections) = match g.pooled.as_mut() {
            Some(layers) => {
                let layer = layers.front_mut().ok_or(POOL_SHORT)?;
                let garbled = layer.chunks.pop_front().ok_or(POOL_SHORT)?;
                if layer.chunks.is_empty() {
                    layers.pop_front();
                }
                // d = W₀ ⊕ K₀ for every share bit of the chunk.
                let w0 = garbled.encoder.evaluator_zero_labels();
                if w0.len() != labels.len() {
                    return Err(ProtocolError::Internal(
                        "pooled chunk and OT labels of different sizes",
                    ));
                }
                let d: Vec<Block> = w0.iter().zip(labels).map(|(w, z)| *w ^ *z).collect();
                (garbled, Block::slice_as_bytes(&d).to_vec())
            }
            None => {
                let layer = g.online.remasks.last().ok_or(ProtocolError::Internal(
                    "garbling a chunk of a layer without a re-mask",
                ))?;
                let masks = &layer.values()[g.first..g.first + count];
                let garbled = garble_chunk(
                    circuit,
                    &self.keys,
                    &g.delta,
                    at,
                    masks,
                    Some(labels),
                    &mut self.rng,
                )?;
                (garbled, Vec::new())
            }
        };
        let mut encoder = garbled.encoder;
        encoder.forget_evaluator_labels();
        g.online.encoders[i].push(encoder);
        let msg = Msg::ServerGarbled {
            stage: i as u32,
            first: g.first as u32,
            count: count as u32,
            tables: garbled.tables.as_bytes().to_vec(),
            decoding: garbled.decoding.as_bytes().to_vec(),
            corrections,
        };
        g.first += count;
        if g.first == n {
            g.offset += n;
            g.first = 0;
            g.stage += 1;
        }
        Ok(msg)
    }

    /// The server's share of stage `i` and what it sends for it.
    fn stage_reply(&mut self, online: &mut Online, i: usize) -> Result<Msg, ProtocolError> {
        let model = &self.model;
        let k = online.k;
        let stage = &model.fixed.stages[i];
        let mut a = RingVec::reduce(k, stage.bias.clone());
        a.add_assign(&online.shares[i])
            .map_err(ring_err("HE share"))?;
        for t in &stage.terms {
            let src = match t.source {
                Source::Image => &online.masked_image,
                Source::Relu(j) => &online.masked_relu[j],
            };
            let z = conv_ring(&t.conv, &t.weights, src.values(), k.bits()).map_err(|e| {
                ProtocolError::Check(format!("stage {i}: linear evaluation failed: {e}"))
            })?;
            a.add_assign(&RingVec::reduce(k, z))
                .map_err(ring_err("linear layer"))?;
        }
        if let Some(r) = self.record.as_mut() {
            r.stage_shares.push(a.values().to_vec());
        }
        // Material used once: the HE share is consumed (and wiped) here.
        online.shares[i] = RingVec::zeros(k, 0);
        let encoders = std::mem::take(&mut online.encoders[i]);
        match &model.circuits[i] {
            Some(circuit) => {
                a.add_scalar(circuit.round_term());
                // The layer reads Z mod 2^(k_l): the server's share is reduced like the client's.
                let narrow = RingWidth::new(circuit.k()).map_err(ring_err("garbled layer ring"))?;
                // A padding cell's word is the ring's most negative value (the client's is 0):
                // it never wins a max.
                let pad = 1u64 << (circuit.k() - 1);
                let a = RingVec::reduce(narrow, model.plan.stages[i].gather(a.values(), pad));
                let w = circuit.window();
                let mut body = Vec::with_capacity(a.len() * circuit.k() as usize * 16);
                let mut at = 0;
                for encoder in &encoders {
                    let n = encoder.instances() * w;
                    let labels = circuit
                        .encode_garbler(encoder, &a.values()[at..at + n])
                        .map_err(|e| ProtocolError::Check(format!("encoding: {e}")))?;
                    body.extend_from_slice(labels.as_bytes());
                    at += n;
                }
                Ok(Msg::ServerLabels {
                    stage: i as u32,
                    body,
                })
            }
            None => Ok(Msg::ServerOutput(a.pack())),
        }
    }
}

/// Slack on every per-state frame bound: headers, and room for a client's `Error` frame.
const FRAME_SLACK: usize = 4096;

/// Upper bounds on the body of each message a client sends, from the plan.
struct ClientFrameBounds {
    he_key: usize,
    he_masks: Vec<usize>,
    ot_extend: usize,
    input: usize,
    masked: Vec<usize>,
}

impl ServerModel {
    fn client_frame_bounds(&self) -> ClientFrameBounds {
        let plan = &self.plan;
        let p = &self.he_params;
        // A ciphertext's worth of top-level coefficients, at most 8 bytes each, plus its seed.
        let ct = p.moduli().len() * p.degree() * 8 + 32;
        ClientFrameBounds {
            he_key: ct,
            he_masks: self
                .he_stages
                .iter()
                .map(|st| 16 + st.plan().input_ciphertexts() * ct)
                .collect(),
            // One part of the KOS matrix: 128 columns of at most OT_PART_ROWS rows (16 B per row).
            ot_extend: ExtendMatrix::part_byte_len(
                crate::OT_PART_ROWS.min(kos::extended_rows(plan.ot_bits())),
            ),
            input: 8 * plan.input_len(),
            masked: plan.stages.iter().map(|st| 8 * st.instances()).collect(),
        }
    }

    /// The largest frame a client's first message (its hello) may take.
    pub fn hello_frame_bytes(&self) -> usize {
        FRAME_SLACK
    }

    /// The largest frame a client of this model can need to send in any state.
    pub fn max_client_frame_bytes(&self) -> usize {
        let b = self.client_frame_bounds();
        let most = [b.he_key, b.ot_extend, b.input]
            .into_iter()
            .chain(b.he_masks)
            .chain(b.masked)
            .max()
            .unwrap_or(0);
        most + FRAME_SLACK
    }
}

impl ServerSession {
    /// The largest frame the session's current state can accept, derived from the plan: an upper
    /// bound on the message it expects (or a short `Error`). Transports refuse larger frames
    /// before buffering them, so a client can only make the server hold what its state needs.
    pub fn max_frame_bytes(&self) -> usize {
        let bounds = self.model.client_frame_bounds();
        let body = match &self.state {
            State::Hello | State::OtSetup { .. } | State::OtCheck { .. } => 0,
            State::HeKey => bounds.he_key,
            State::HeMasks { shares, .. } => {
                bounds.he_masks.get(shares.len()).copied().unwrap_or(0)
            }
            State::OtExtend { .. } => bounds.ot_extend,
            State::Input(_) => bounds.input,
            State::Masked(online) => bounds
                .masked
                .get(online.masked_relu.len())
                .copied()
                .unwrap_or(0),
            State::Garbling(_) | State::Closed => 0,
        };
        body + FRAME_SLACK
    }

    /// Where the session is, for the transport's timers: offline until the last garbled layer is
    /// out, then [`Phase::Ready`] while the client holds the prepared session without an image
    /// (a wait the transport bounds on its own), online from `ClientInput` on.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Input(_) => Phase::Ready,
            State::Masked(_) => Phase::Online,
            State::Closed => Phase::Done,
            _ => Phase::Offline,
        }
    }

    /// The pooled material of a session that failed before it used it (its first message was
    /// refused), for another session: nothing of it has been sent, not even its session id.
    /// `None` once the session has answered any message.
    pub fn into_unused_material(self) -> Option<OfflineMaterial> {
        if self.answered {
            return None;
        }
        let mut this = self;
        this.material.take()
    }
}

impl Session for ServerSession {
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError> {
        if matches!(self.state, State::Closed) {
            return Err(ProtocolError::Closed);
        }
        let result = Msg::decode(frame).and_then(|m| self.step(m));
        self.answered |= result.is_ok();
        match result {
            Ok(Step::Continue(out)) => self.outbox.extend(out),
            Ok(Step::Finished(out)) => {
                self.outbox.extend(out);
                self.finishing = true;
            }
            Err(e) => {
                // A failed session never continues: its material is dropped.
                self.state = State::Closed;
                self.outbox.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError> {
        if let Some(f) = self.outbox.pop_front() {
            return Ok(Some(Output::Frame(f)));
        }
        if self.finishing {
            self.finishing = false;
            return Ok(Some(Output::Finished));
        }
        let state = std::mem::replace(&mut self.state, State::Closed);
        let State::Garbling(mut g) = state else {
            self.state = state;
            return Ok(None);
        };
        let result = self.garble_next(&mut g);
        self.state = match &result {
            Err(_) => State::Closed,
            // The logits stage has nothing to garble: the offline phase is over
            // (a top-k output stage is garbled too: then the offline phase ends after it).
            Ok(_) if self.model.circuits.get(g.stage).is_none_or(Option::is_none) => {
                State::Input(Box::new(g.online))
            }
            Ok(_) => State::Garbling(g),
        };
        result.map(|m| Some(Output::Frame(m.encode())))
    }
}
