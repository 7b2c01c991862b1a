//! The server's half of one inference, as a sans-IO state machine.
//!
//! Offline: HE responses per stage (keeping s_i), the KOS correlated OT on the client's share bits
//! with the garbling Δ, then one garbled batch per ReLU layer with fresh re-masks m_i.
//! Online: per stage, its share a_i = Σ W·(src − r) + bias + s_i (the client sent the masked sources);
//! for a ReLU layer it sends the labels of a_i (rounding term added), for the logits it sends a_i.

use crate::msgs::{Msg, PROTOCOL_VERSION};
use crate::plan::ServerModel;
use crate::session::{he_err, ot_err};
use crate::{ring, FrameSession, ProtocolError, Step};
use cryptonas_crypto::{Block, Csprng};
use cryptonas_gc::{Delta, Encoder, TweakDomain};
use cryptonas_he::{MasksMsg, PublicKey, PublicKeyMsg};
use cryptonas_model::{conv_ring, Source};
use cryptonas_ot::chou_orlandi::SenderSetup;
use cryptonas_ot::kos::{self, CheckResponse, ExtendMatrix};
use std::sync::Arc;

enum State {
    Hello,
    HeKey,
    HeMasks {
        pk: Box<PublicKey>,
        shares: Vec<Vec<u64>>,
    },
    OtSetup {
        shares: Vec<Vec<u64>>,
    },
    OtExtend {
        sender: kos::Sender<kos::state::Ready>,
        shares: Vec<Vec<u64>>,
    },
    OtCheck {
        sender: kos::Sender<kos::state::Checking>,
        shares: Vec<Vec<u64>>,
    },
    Input(Box<Online>),
    Masked(Box<Online>),
    Closed,
}

/// What the online phase needs: HE shares s_i, the encoders and re-masks of every ReLU layer, and
/// the masked shared tensors received so far (x − r, then y_j − r_j).
struct Online {
    shares: Vec<Vec<u64>>,
    encoders: Vec<Option<Encoder>>,
    remasks: Vec<Vec<u64>>,
    masked_image: Vec<u64>,
    masked_relu: Vec<Vec<u64>>,
}

/// The server's session for one inference. Fresh randomness; nothing is shared with other sessions
/// except the read-only model.
pub struct ServerSession {
    model: Arc<ServerModel>,
    rng: Csprng,
    session_id: u64,
    state: State,
    record: Option<ServerRecord>,
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
        let session_id = rng.u64();
        ServerSession {
            model,
            rng,
            session_id,
            state: State::Hello,
            record: None,
        }
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
            State::Input(_) => "waiting for ClientInput",
            State::Masked(_) => "waiting for ClientMasked",
            State::Closed => "closed",
        }
    }

    fn step(&mut self, msg: Msg) -> Result<Step, ProtocolError> {
        let model = self.model.clone();
        let plan = &model.plan;
        let k = plan.k;
        let unexpected = |got: &Msg, state| ProtocolError::Unexpected {
            got: got.name(),
            state,
        };
        let state_name = self.state_name();
        let state = std::mem::replace(&mut self.state, State::Closed);
        let (next, out) = match (state, msg) {
            (_, Msg::Error(text)) => return Err(ProtocolError::Peer(text)),
            (State::Hello, Msg::ClientHello { version }) => {
                if version != PROTOCOL_VERSION {
                    return Err(ProtocolError::Malformed {
                        what: "ClientHello",
                        reason: format!(
                            "protocol version {version}, this server speaks {PROTOCOL_VERSION}"
                        ),
                    });
                }
                let plan_json = serde_json::to_vec(plan).expect("plans serialise");
                let reply = Msg::ServerPlan {
                    session_id: self.session_id,
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
                shares.push(s);
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
                let delta = Delta::random(&mut self.rng);
                let sender = kos::Sender::new(delta.as_block()).map_err(ot_err)?;
                let (choices, sender) = sender.receive_base_setup(setup, &mut self.rng);
                (
                    State::OtExtend { sender, shares },
                    vec![Msg::ServerOtChoices(choices.to_bytes())],
                )
            }
            (State::OtExtend { sender, shares }, Msg::ClientOtExtend(bytes)) => {
                let matrix = ExtendMatrix::from_bytes(&bytes).map_err(ot_err)?;
                let want = plan.relu_count() * k as usize;
                if matrix.count() != want {
                    return Err(ProtocolError::WrongSize {
                        what: "ClientOtExtend transfers",
                        expected: want,
                        got: matrix.count(),
                    });
                }
                let (challenge, sender) = sender.receive_extend(matrix, &mut self.rng);
                (
                    State::OtCheck { sender, shares },
                    vec![Msg::ServerOtChallenge(challenge.to_bytes())],
                )
            }
            (State::OtCheck { sender, shares }, Msg::ClientOtResponse(bytes)) => {
                let response = CheckResponse::from_bytes(&bytes).map_err(ot_err)?;
                let (cot, _sender) = sender
                    .receive_check(response)
                    .map_err(|e| ProtocolError::Check(e.to_string()))?;
                let delta = Delta::new(cot.delta());
                let zero = cot.into_zero_labels();
                let (online, frames) = self.garble_all(delta, &zero, shares)?;
                (State::Input(Box::new(online)), frames)
            }
            (State::Input(mut online), Msg::ClientInput(bytes)) => {
                online.masked_image = ring::unpack(&bytes, plan.input_len(), k, "ClientInput")?;
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
                let mut masked = ring::unpack(&body, plan.stages[j].len, k, "ClientMasked")?;
                ring::add_assign(&mut masked, &online.remasks[j], k);
                online.masked_relu.push(masked);
                let reply = self.stage_reply(&mut online, j + 1)?;
                if j + 2 == plan.stages.len() {
                    return Ok(Step::Finished(vec![reply.encode()]));
                }
                (State::Masked(online), vec![reply])
            }
            (state, msg) => {
                self.state = state;
                return Err(unexpected(&msg, state_name));
            }
        };
        self.state = next;
        Ok(Step::Continue(out.iter().map(Msg::encode).collect()))
    }

    /// Garbles every ReLU layer with Δ and the client's input zero-labels from the OT.
    fn garble_all(
        &mut self,
        delta: Delta,
        zero: &[Block],
        shares: Vec<Vec<u64>>,
    ) -> Result<(Online, Vec<Msg>), ProtocolError> {
        let model = self.model.clone();
        let k = model.plan.k as usize;
        let mut offset = 0usize;
        let mut encoders = Vec::new();
        let mut remasks = Vec::new();
        let mut frames = Vec::new();
        for (i, st) in model.plan.stages.iter().enumerate() {
            let Some(circuit) = &model.circuits[i] else {
                encoders.push(None);
                continue;
            };
            let m = ring::random(&mut self.rng, st.len, model.plan.k);
            let domain = TweakDomain {
                session_id: self.session_id,
                first_instance: u32::try_from(offset).map_err(|_| ProtocolError::WrongSize {
                    what: "ReLUs per inference",
                    expected: u32::MAX as usize,
                    got: offset,
                })?,
            };
            let labels = &zero[offset * k..(offset + st.len) * k];
            let garbled = circuit
                .garble(delta.clone(), domain, &m, Some(labels), &mut self.rng)
                .map_err(|e| ProtocolError::Check(format!("garbling: {e}")))?;
            frames.push(Msg::ServerGarbled {
                stage: i as u32,
                tables: garbled.tables.as_bytes().to_vec(),
                decoding: garbled.decoding.as_bytes().to_vec(),
            });
            encoders.push(Some(garbled.encoder));
            if let Some(r) = self.record.as_mut() {
                r.remasks.push(m.clone());
            }
            remasks.push(m);
            offset += st.len;
        }
        let online = Online {
            shares,
            encoders,
            remasks,
            masked_image: Vec::new(),
            masked_relu: Vec::new(),
        };
        Ok((online, frames))
    }

    /// The server's share of stage `i` and what it sends for it.
    fn stage_reply(&mut self, online: &mut Online, i: usize) -> Result<Msg, ProtocolError> {
        let model = &self.model;
        let k = model.plan.k;
        let stage = &model.fixed.stages[i];
        let mut a = stage.bias.clone();
        ring::add_assign(&mut a, &online.shares[i], k);
        for t in &stage.terms {
            let src = match t.source {
                Source::Image => &online.masked_image,
                Source::Relu(j) => &online.masked_relu[j],
            };
            let z = conv_ring(&t.conv, &t.weights, src, k).map_err(|e| {
                ProtocolError::Check(format!("stage {i}: linear evaluation failed: {e}"))
            })?;
            ring::add_assign(&mut a, &z, k);
        }
        if let Some(r) = self.record.as_mut() {
            r.stage_shares.push(a.clone());
        }
        // Material used once: the HE share is consumed here.
        online.shares[i] = Vec::new();
        match (&model.circuits[i], online.encoders[i].take()) {
            (Some(circuit), Some(encoder)) => {
                let round = circuit.round_term();
                let mask = cryptonas_model::intconv::ring_mask(k);
                a.iter_mut().for_each(|v| *v = v.wrapping_add(round) & mask);
                let labels = circuit
                    .encode_garbler(&encoder, &a)
                    .map_err(|e| ProtocolError::Check(format!("encoding: {e}")))?;
                Ok(Msg::ServerLabels {
                    stage: i as u32,
                    body: labels.as_bytes().to_vec(),
                })
            }
            _ => Ok(Msg::ServerOutput(ring::pack(&a, k))),
        }
    }
}

impl FrameSession for ServerSession {
    fn start(&mut self) -> Result<Vec<Vec<u8>>, ProtocolError> {
        Ok(Vec::new())
    }

    fn handle(&mut self, frame: &[u8]) -> Result<Step, ProtocolError> {
        if matches!(self.state, State::Closed) {
            return Err(ProtocolError::Closed);
        }
        let msg = Msg::decode(frame);
        let result = msg.and_then(|m| self.step(m));
        if result.is_err() {
            // A failed session never continues: its material is dropped.
            self.state = State::Closed;
        }
        result
    }
}
