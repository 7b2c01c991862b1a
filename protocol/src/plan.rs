//! The public plan of an inference and the server's private, precomputed model.
//!
//! The plan is what the client may know: the ring, the scales, the shapes of every stage and which
//! shared tensors feed it (the architecture is public; ReLU counts are the cost model). Weights and
//! biases stay in [`ServerModel`].

use crate::ProtocolError;
use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use cryptonas_gc::{
    ActiveLabels, CircuitError, DecodingBits, Delta, Encoder, GarbleError, Garbled, MaxPoolCircuit,
    OutputLabels, ReluCircuit, ReluVariant, ShareDecoding, TopKCircuit, TweakDomain,
};
use cryptonas_he::HeParams;
use cryptonas_model::{FixedModel, InputSpec, IntConv, Model, NormalForm, Pool, Source, StageKind};
use serde::{Deserialize, Serialize};

/// What a stage does with its output Z: a garbled layer that turns the shares of Z into shares
/// of the next shared tensor, or the logits, whose share the server sends in the clear.
///
/// Each garbled op determines its circuit ([`PlanStage::circuit_spec`]); a new kind of garbled
/// stage is one more variant here, one more [`CircuitKind`] and one more [`StageCircuit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StageOp {
    /// ReLU of every element of Z (one circuit instance per element).
    Relu {
        /// `min(relu(Z), clip)` (ReLU6 and other `Clip(0, c)`): the bound in the circuit's scale
        /// (Z's scale plus the rounding term 2^(t−1)); absent for a plain ReLU.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<u64>,
    },
    /// Max over each window of Z (one circuit instance per output element; padding cells are
    /// excluded), with a ReLU fused when the model has one right before or after the pool.
    MaxPool {
        /// The windows (`pool.input` is Z's shape).
        pool: Pool,
        /// Whether the ReLU is fused.
        relu: bool,
    },
    /// The model's logits (always the last stage): no circuit; the server sends its share and
    /// the client learns the logits.
    Logits,
    /// The model's logits (always the last stage) ranked inside a garbled circuit
    /// ([`TopKCircuit`]): the client learns the indices of the `top` largest, largest first,
    /// and nothing else about the logits.
    TopK {
        /// Indices revealed (1: the class only).
        top: u32,
    },
}

/// What a client learns from an inference: set per hosted model by the server operator, public
/// in the plan ([`Plan::output`]) so the client knows it before it starts. In JSON (APIs,
/// reports) it is its text form: `"logits"`, `"class"`, `"top-3"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OutputPolicy {
    /// The logits (full precision, fixed point): the richest answer and the richest oracle.
    #[default]
    Logits,
    /// The indices of the k most likely classes, most likely first (k ≥ 2; `top-1` is `Class`).
    TopK(u32),
    /// The most likely class only.
    Class,
}

impl OutputPolicy {
    /// The last stage's op under this policy.
    pub fn stage_op(self) -> StageOp {
        match self {
            OutputPolicy::Logits => StageOp::Logits,
            OutputPolicy::Class => StageOp::TopK { top: 1 },
            OutputPolicy::TopK(top) => StageOp::TopK { top },
        }
    }

    /// What a stage op reveals (None for a garbled layer that is not an output).
    pub fn of_op(op: &StageOp) -> Option<OutputPolicy> {
        match op {
            StageOp::Logits => Some(OutputPolicy::Logits),
            StageOp::TopK { top: 1 } => Some(OutputPolicy::Class),
            StageOp::TopK { top } => Some(OutputPolicy::TopK(*top)),
            StageOp::Relu { .. } | StageOp::MaxPool { .. } => None,
        }
    }

    /// Class indices the client learns of a model with `classes` classes (all of them, ranked
    /// by their logits, under `logits`).
    pub fn revealed_classes(self, classes: usize) -> usize {
        match self {
            OutputPolicy::Logits => classes,
            OutputPolicy::Class => 1,
            OutputPolicy::TopK(k) => (k as usize).min(classes),
        }
    }

    /// In words, for pages and terminals: "logits", "class only", "top-3 classes".
    pub fn describe(self) -> String {
        match self {
            OutputPolicy::Logits => "logits".into(),
            OutputPolicy::Class => "class only".into(),
            OutputPolicy::TopK(k) => format!("top-{k} classes"),
        }
    }
}

impl std::fmt::Display for OutputPolicy {
    /// `logits`, `class`, `top-3` (what [`OutputPolicy::from_str`](std::str::FromStr) parses).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputPolicy::Logits => f.write_str("logits"),
            OutputPolicy::Class => f.write_str("class"),
            OutputPolicy::TopK(k) => write!(f, "top-{k}"),
        }
    }
}

impl From<OutputPolicy> for String {
    fn from(p: OutputPolicy) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for OutputPolicy {
    type Error = String;

    fn try_from(s: String) -> Result<OutputPolicy, String> {
        s.parse()
    }
}

impl std::str::FromStr for OutputPolicy {
    type Err = String;

    /// `logits`, `class`, or `top-N` with N ≥ 1 (`top-1` is `class`).
    fn from_str(s: &str) -> Result<OutputPolicy, String> {
        match s {
            "logits" => Ok(OutputPolicy::Logits),
            "class" => Ok(OutputPolicy::Class),
            _ => {
                let n = s
                    .strip_prefix("top-")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        format!("unknown output policy '{s}' (logits, class or top-N with N ≥ 1)")
                    })?;
                Ok(if n == 1 {
                    OutputPolicy::Class
                } else {
                    OutputPolicy::TopK(n)
                })
            }
        }
    }
}

/// One stage as the client sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStage {
    /// What follows Z: a garbled layer or the logits (always last).
    pub op: StageOp,
    /// Elements of Z (= ReLUs of a ReLU layer).
    pub len: usize,
    /// Truncation t of the garbled layer (0 for the logits).
    pub trunc: u32,
    /// Ring width k_l ≤ k of the garbled layer: both shares of Z are reduced mod 2^(k_l) and the
    /// garbled circuit, the OT and the online labels take k_l bits per share word (k for the
    /// logits).
    pub k: u32,
    /// Scale of Z.
    pub f_z: u32,
    /// Which shared tensor each term reads, and its geometry.
    pub terms: Vec<(Source, IntConv)>,
}

impl PlanStage {
    /// Whether the stage ends in a garbled circuit (every stage but logits revealed in the clear).
    pub fn garbled(&self) -> bool {
        !matches!(self.op, StageOp::Logits)
    }

    /// Whether the stage is the model's output (the logits, revealed or ranked): always the last.
    pub fn is_output(&self) -> bool {
        matches!(self.op, StageOp::Logits | StageOp::TopK { .. })
    }

    /// Circuit instances of the garbled layer = elements of the shared tensor it outputs (0 for
    /// the logits).
    pub fn instances(&self) -> usize {
        match self.op {
            StageOp::Relu { .. } => self.len,
            StageOp::MaxPool { pool, .. } => pool.output().len(),
            StageOp::TopK { .. } => 1,
            StageOp::Logits => 0,
        }
    }

    /// Garbled activations of the stage (its instances; 0 for the output, which is no ReLU
    /// layer even when a garbled top-k ranks it).
    pub fn relus(&self) -> usize {
        if self.is_output() {
            0
        } else {
            self.instances()
        }
    }

    /// Share words (of k_l bits) each circuit instance reads from each party.
    pub fn window(&self) -> usize {
        match self.op {
            StageOp::Relu { .. } => 1,
            StageOp::MaxPool { pool, .. } => pool.window(),
            StageOp::TopK { .. } => self.len,
            StageOp::Logits => 0,
        }
    }

    /// Share words the garbled layer reads from each party: one OT per bit of the client's,
    /// `k_l` labels per word of the server's.
    pub fn share_words(&self) -> usize {
        self.instances() * self.window()
    }

    /// The share words the garbled layer reads from one party's share `z` of Z, instance after
    /// instance (`window` each). `pad` stands for a cell outside Z (a max pool's padding).
    /// Overlapping windows (stride < kernel) read a cell once per window: each copy is its own
    /// share word (its own OT bits and labels).
    pub fn gather(&self, z: &[u64], pad: u64) -> Vec<u64> {
        match self.op {
            StageOp::Relu { .. } | StageOp::TopK { .. } => z.to_vec(),
            StageOp::MaxPool { pool, .. } => pool
                .cells()
                .map(|c| c.and_then(|i| z.get(i).copied()).unwrap_or(pad))
                .collect(),
            StageOp::Logits => Vec::new(),
        }
    }

    /// The garbled circuit of the stage (None for the logits), its results shared in Z_2^k_out.
    pub fn circuit_spec(&self, k_out: u32) -> Option<CircuitSpec> {
        let kind = match self.op {
            StageOp::Relu { clip } => CircuitKind::Relu { clip },
            StageOp::MaxPool { pool, relu } => CircuitKind::MaxPool {
                window: pool.window(),
                relu,
            },
            StageOp::TopK { top } => CircuitKind::TopK {
                classes: u32::try_from(self.len).unwrap_or(u32::MAX),
                top,
            },
            StageOp::Logits => return None,
        };
        // The logits are ranked as they are: no truncation.
        let t = if self.is_output() { 0 } else { self.trunc };
        Some(CircuitSpec {
            k: self.k,
            k_out,
            t,
            kind,
        })
    }
}

/// Which garbled circuit a stage runs, with its parameters beyond the rings and the truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitKind {
    /// [`ReluCircuit`]: `Relu` or, with a bound, `Clipped`.
    Relu {
        /// The clipping bound in the circuit's scale.
        clip: Option<u64>,
    },
    /// [`MaxPoolCircuit`] over `window` cells.
    MaxPool {
        /// Cells per window.
        window: usize,
        /// Whether the ReLU is fused.
        relu: bool,
    },
    /// [`TopKCircuit`]: the indices of the `top` largest of `classes` logits.
    TopK {
        /// Logits.
        classes: u32,
        /// Indices revealed.
        top: u32,
    },
}

/// Everything public that determines a garbled layer's circuit: what a worker needs to rebuild
/// it ([`crate::ChunkJob`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitSpec {
    /// Ring bits of the share words the circuit reads (k_l).
    pub k: u32,
    /// Ring bits of the result shares (the plan's k).
    pub k_out: u32,
    /// Truncation.
    pub t: u32,
    /// The circuit.
    pub kind: CircuitKind,
}

/// Bytes of [`CircuitSpec::to_bytes`].
pub(crate) const CIRCUIT_SPEC_BYTES: usize = 4 * 4 + 8;

impl CircuitSpec {
    /// `[k k_out t kind: u32 LE][argument: u64 LE]`; kind 0: ReLU (argument 0), 1: clipped ReLU
    /// (argument: the bound), 2: max pool (argument: the window), 3: max pool with the ReLU,
    /// 8: top-k (argument: classes | top << 32).
    pub(crate) fn to_bytes(self) -> [u8; CIRCUIT_SPEC_BYTES] {
        let (kind, arg) = match self.kind {
            CircuitKind::Relu { clip: None } => (0u32, 0u64),
            CircuitKind::Relu { clip: Some(max) } => (1, max),
            CircuitKind::MaxPool { window, relu } => (2 + u32::from(relu), window as u64),
            CircuitKind::TopK { classes, top } => (8, u64::from(classes) | u64::from(top) << 32),
        };
        let mut out = [0u8; CIRCUIT_SPEC_BYTES];
        for (i, v) in [self.k, self.k_out, self.t, kind].into_iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        out[16..].copy_from_slice(&arg.to_le_bytes());
        out
    }

    /// Parses [`CircuitSpec::to_bytes`] (the circuit itself is checked by [`CircuitSpec::build`]).
    pub(crate) fn from_bytes(b: &[u8; CIRCUIT_SPEC_BYTES]) -> Result<CircuitSpec, String> {
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let arg = u64::from_le_bytes(b[16..].try_into().expect("8 bytes"));
        let kind = match u32_at(12) {
            0 => CircuitKind::Relu { clip: None },
            1 => CircuitKind::Relu { clip: Some(arg) },
            kind @ (2 | 3) => CircuitKind::MaxPool {
                // An absurd window is refused by `build`.
                window: usize::try_from(arg).unwrap_or(usize::MAX),
                relu: kind == 3,
            },
            8 => CircuitKind::TopK {
                classes: arg as u32,
                top: (arg >> 32) as u32,
            },
            other => return Err(format!("unknown circuit kind {other}")),
        };
        Ok(CircuitSpec {
            k: u32_at(0),
            k_out: u32_at(4),
            t: u32_at(8),
            kind,
        })
    }

    /// Builds the circuit (errors on parameters it cannot take).
    pub fn build(self) -> Result<StageCircuit, CircuitError> {
        Ok(match self.kind {
            CircuitKind::Relu { clip } => {
                let variant = match clip {
                    None => ReluVariant::Relu,
                    Some(max) => ReluVariant::Clipped { max },
                };
                StageCircuit::Relu(ReluCircuit::with_output_ring(
                    self.k, self.k_out, self.t, variant,
                )?)
            }
            CircuitKind::MaxPool { window, relu } => StageCircuit::MaxPool(MaxPoolCircuit::new(
                self.k, self.k_out, self.t, window, relu,
            )?),
            CircuitKind::TopK { classes, top } => {
                if !(2..=64).contains(&self.k_out) || self.t != 0 {
                    return Err(CircuitError::Parameter {
                        name: "top-k k_out / t",
                        value: u64::from(self.k_out.max(self.t)),
                        range: "k_out in [2, 64], t = 0",
                    });
                }
                let circuit = TopKCircuit::new(self.k, classes as usize, top as usize)?;
                if circuit.index_bits() > self.k_out {
                    return Err(CircuitError::Parameter {
                        name: "k_out",
                        value: u64::from(self.k_out),
                        range: "wide enough for a class index",
                    });
                }
                StageCircuit::TopK {
                    circuit,
                    k_out: self.k_out,
                }
            }
        })
    }
}

/// The garbled circuit of one stage, with the word-level operations the sessions need. Each
/// instance reads [`StageCircuit::window`] share words of k bits from each party and outputs
/// [`StageCircuit::outputs`] words of at most k_out bits to the evaluator: for a ReLU, from the
/// garbler's fresh mask (k_out bits), the evaluator's share of one element; for the top-k, the
/// revealed class indices.
#[derive(Clone, Debug)]
pub enum StageCircuit {
    /// ReLU (or clipped ReLU) of one element.
    Relu(ReluCircuit),
    /// Max (and ReLU) of one window.
    MaxPool(MaxPoolCircuit),
    /// The top-k of the logits (one instance per inference).
    TopK {
        /// The circuit.
        circuit: TopKCircuit,
        /// The ring the indices are packed in for the session (the plan's k).
        k_out: u32,
    },
}

impl StageCircuit {
    /// What rebuilds it.
    pub fn spec(&self) -> CircuitSpec {
        match self {
            StageCircuit::Relu(c) => CircuitSpec {
                k: c.k(),
                k_out: c.k_out(),
                t: c.t(),
                kind: CircuitKind::Relu {
                    clip: match c.variant() {
                        ReluVariant::Relu => None,
                        ReluVariant::Clipped { max } => Some(max),
                    },
                },
            },
            StageCircuit::MaxPool(c) => CircuitSpec {
                k: c.k(),
                k_out: c.k_out(),
                t: c.t(),
                kind: CircuitKind::MaxPool {
                    window: c.window(),
                    relu: c.relu(),
                },
            },
            StageCircuit::TopK { circuit, k_out } => CircuitSpec {
                k: circuit.k(),
                k_out: *k_out,
                t: 0,
                kind: CircuitKind::TopK {
                    classes: circuit.classes() as u32,
                    top: circuit.top() as u32,
                },
            },
        }
    }

    /// The Boolean circuit of one instance.
    pub fn circuit(&self) -> &cryptonas_gc::Circuit {
        match self {
            StageCircuit::Relu(c) => c.circuit(),
            StageCircuit::MaxPool(c) => c.circuit(),
            StageCircuit::TopK { circuit, .. } => circuit.circuit(),
        }
    }

    /// Ring bits of the share words read.
    pub fn k(&self) -> u32 {
        match self {
            StageCircuit::Relu(c) => c.k(),
            StageCircuit::MaxPool(c) => c.k(),
            StageCircuit::TopK { circuit, .. } => circuit.k(),
        }
    }

    /// Ring bits of the result and the mask.
    pub fn k_out(&self) -> u32 {
        match self {
            StageCircuit::Relu(c) => c.k_out(),
            StageCircuit::MaxPool(c) => c.k_out(),
            StageCircuit::TopK { k_out, .. } => *k_out,
        }
    }

    /// Share words per instance and party.
    pub fn window(&self) -> usize {
        match self {
            StageCircuit::Relu(_) => 1,
            StageCircuit::MaxPool(c) => c.window(),
            StageCircuit::TopK { circuit, .. } => circuit.classes(),
        }
    }

    /// Result words per instance (the evaluator's shares, or the revealed indices).
    pub fn outputs(&self) -> usize {
        match self {
            StageCircuit::Relu(_) => 1,
            StageCircuit::MaxPool(_) => 1,
            StageCircuit::TopK { circuit, .. } => circuit.top(),
        }
    }

    /// The rounding term the garbler adds to each of its share words before encoding.
    pub fn round_term(&self) -> u64 {
        match self {
            StageCircuit::Relu(c) => c.round_term(),
            StageCircuit::MaxPool(c) => c.round_term(),
            StageCircuit::TopK { .. } => 0,
        }
    }

    /// Garbles `masks.len()` instances (see [`ReluCircuit::garble_with_pi`]); the top-k reveals
    /// its indices unmasked and ignores the masks' values.
    pub fn garble_with_pi(
        &self,
        pi: &FixedKeyAes,
        delta: Delta,
        domain: TweakDomain,
        masks: &[u64],
        evaluator_zero: Option<&[Block]>,
        rng: &mut Csprng,
    ) -> Result<Garbled<StageDecoding>, GarbleError> {
        let shares = |g: Garbled<ShareDecoding>| Garbled {
            tables: g.tables,
            decoding: StageDecoding::Shares(g.decoding),
            encoder: g.encoder,
        };
        Ok(match self {
            StageCircuit::Relu(c) => {
                shares(c.garble_with_pi(pi, delta, domain, masks, evaluator_zero, rng)?)
            }
            StageCircuit::MaxPool(c) => {
                shares(c.garble_with_pi(pi, delta, domain, masks, evaluator_zero, rng)?)
            }
            StageCircuit::TopK { circuit, .. } => {
                let g =
                    circuit.garble_with_pi(pi, delta, domain, masks.len(), evaluator_zero, rng)?;
                Garbled {
                    tables: g.tables,
                    decoding: StageDecoding::Bits(g.decoding),
                    encoder: g.encoder,
                }
            }
        })
    }

    /// Bytes of the output decoding of `instances` instances (saturating).
    pub fn decoding_len(&self, instances: usize) -> usize {
        match self {
            StageCircuit::Relu(c) => c.output().decoding_len(instances),
            StageCircuit::MaxPool(c) => c.output().decoding_len(instances),
            StageCircuit::TopK { circuit, .. } => {
                DecodingBits::byte_len(circuit.circuit(), instances)
            }
        }
    }

    /// Checks that `len` bytes are the output decoding of `instances` instances (for a party that
    /// checks a declared size before the bytes arrive).
    pub fn check_decoding_len(&self, instances: usize, len: usize) -> Result<(), GarbleError> {
        match self {
            StageCircuit::Relu(c) => ShareDecoding::check_len(c.output(), instances, len),
            StageCircuit::MaxPool(c) => ShareDecoding::check_len(c.output(), instances, len),
            StageCircuit::TopK { circuit, .. } => {
                DecodingBits::check_len(circuit.circuit(), instances, len)
            }
        }
    }

    /// Parses the output decoding of `instances` instances as sent.
    pub fn decoding_from_bytes(
        &self,
        instances: usize,
        bytes: &[u8],
    ) -> Result<StageDecoding, GarbleError> {
        Ok(match self {
            StageCircuit::Relu(c) => {
                StageDecoding::Shares(ShareDecoding::from_bytes(c.output(), instances, bytes)?)
            }
            StageCircuit::MaxPool(c) => {
                StageDecoding::Shares(ShareDecoding::from_bytes(c.output(), instances, bytes)?)
            }
            StageCircuit::TopK { circuit, .. } => StageDecoding::Bits(DecodingBits::from_bytes(
                circuit.circuit(),
                instances,
                bytes,
            )?),
        })
    }

    /// The garbler's active labels of its share words (`window` per instance, in order).
    pub fn encode_garbler(
        &self,
        encoder: &Encoder,
        a: &[u64],
    ) -> Result<ActiveLabels, GarbleError> {
        match self {
            StageCircuit::Relu(c) => c.encode_garbler(encoder, a),
            StageCircuit::MaxPool(c) => c.encode_garbler(encoder, a),
            StageCircuit::TopK { circuit, .. } => circuit.encode_garbler(encoder, a),
        }
    }

    /// The evaluator's active labels (ideal OT; tests and benchmarks).
    pub fn encode_evaluator(
        &self,
        encoder: &Encoder,
        b: &[u64],
    ) -> Result<ActiveLabels, GarbleError> {
        match self {
            StageCircuit::Relu(c) => c.encode_evaluator(encoder, b),
            StageCircuit::MaxPool(c) => c.encode_evaluator(encoder, b),
            StageCircuit::TopK { circuit, .. } => circuit.encode_evaluator(encoder, b),
        }
    }

    /// The evaluator's results from its output labels (`pi` and `domain` as evaluated): its
    /// shares, or the top-k's revealed indices.
    pub fn decode(
        &self,
        pi: &FixedKeyAes,
        domain: TweakDomain,
        labels: &OutputLabels,
        decoding: &StageDecoding,
    ) -> Result<Vec<u64>, GarbleError> {
        let wrong = || GarbleError::Length {
            what: "output decoding of another kind",
            expected: 0,
            got: decoding.as_bytes().len(),
            unit: "bytes",
        };
        match (self, decoding) {
            (StageCircuit::Relu(c), StageDecoding::Shares(d)) => c.decode(pi, domain, labels, d),
            (StageCircuit::MaxPool(c), StageDecoding::Shares(d)) => c.decode(pi, domain, labels, d),
            (StageCircuit::TopK { circuit, .. }, StageDecoding::Bits(d)) => {
                circuit.decode(labels, d)
            }
            _ => Err(wrong()),
        }
    }
}

/// How the client reads a garbled stage's output labels: the ReLU and max-pool layers give it
/// additive shares through an arithmetic output, the top-k reveals its indices bit by bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageDecoding {
    /// Arithmetic output (ReLU, max pool).
    Shares(ShareDecoding),
    /// Decoding bits (top-k).
    Bits(DecodingBits),
}

impl StageDecoding {
    /// The bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            StageDecoding::Shares(d) => d.as_bytes(),
            StageDecoding::Bits(d) => d.as_bytes(),
        }
    }
}

/// Everything public about one model's inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Model name.
    pub model: String,
    /// Image size and normalisation.
    pub input: InputSpec,
    /// Class names.
    pub classes: Vec<String>,
    /// Ring bits of the linear layers, the HE plaintexts, every shared tensor and the logits.
    pub k: u32,
    /// Input scale.
    pub f_in: u32,
    /// Stages in order.
    pub stages: Vec<PlanStage>,
}

impl Plan {
    /// The plan of a quantized model.
    pub fn of(name: &str, input: &InputSpec, classes: &[String], fixed: &FixedModel) -> Plan {
        Plan {
            model: name.to_string(),
            input: input.clone(),
            classes: classes.to_vec(),
            k: fixed.config.k,
            f_in: fixed.config.f_in,
            stages: fixed
                .stages
                .iter()
                .map(|s| PlanStage {
                    op: match &s.kind {
                        StageKind::Relu { .. } => StageOp::Relu { clip: None },
                        StageKind::Clip { .. } => StageOp::Relu { clip: s.clip },
                        StageKind::MaxPool { pool, relu, .. } => StageOp::MaxPool {
                            pool: *pool,
                            relu: *relu,
                        },
                        StageKind::Logits => StageOp::Logits,
                    },
                    len: s.shape.len(),
                    trunc: s.trunc,
                    k: s.k,
                    f_z: s.f_z,
                    terms: s.terms.iter().map(|t| (t.source, t.conv)).collect(),
                })
                .collect(),
        }
    }

    /// The ring Z_2^k of every share (checked by [`Plan::validate`]).
    pub fn ring(&self) -> Result<cryptonas_ring::RingWidth, ProtocolError> {
        cryptonas_ring::RingWidth::new(self.k).map_err(|e| ProtocolError::Malformed {
            what: "ServerPlan",
            reason: e.to_string(),
        })
    }

    /// Frames the server sends in a whole session: the plan, one HE response per stage, two OT
    /// messages, the garbled chunks of every garbled layer, one labels frame per garbled layer
    /// and the output in the clear under the `logits` policy (what a progress bar counts to).
    pub fn server_frames(&self) -> usize {
        let garbled = self.stages.iter().filter(|s| s.garbled());
        let chunks: usize = garbled
            .clone()
            .map(|s| s.instances().div_ceil(crate::GARBLE_CHUNK))
            .sum();
        let output = usize::from(self.output() == OutputPolicy::Logits);
        1 + self.stages.len() + 2 + chunks + garbled.count() + output
    }

    /// What the client learns (from the last stage).
    pub fn output(&self) -> OutputPolicy {
        self.stages
            .last()
            .and_then(|s| OutputPolicy::of_op(&s.op))
            .unwrap_or_default()
    }

    /// Bits of the client's share words of every garbled layer (`share_words · k_l` each): one
    /// correlated OT per bit.
    pub fn ot_bits(&self) -> usize {
        self.ot_offset(self.stages.len())
    }

    /// Where stage `i`'s share bits start among [`Plan::ot_bits`].
    pub fn ot_offset(&self, i: usize) -> usize {
        self.stages[..i.min(self.stages.len())]
            .iter()
            .map(|s| s.share_words() * s.k as usize)
            .sum()
    }

    /// The garbled circuit of stage `i` (None for the logits): inputs in the stage's ring
    /// Z_2^(k_l), result in the shares' ring Z_2^k.
    pub fn circuit(&self, i: usize) -> Result<Option<StageCircuit>, ProtocolError> {
        self.stages[i]
            .circuit_spec(self.k)
            .map(CircuitSpec::build)
            .transpose()
            .map_err(|e| ProtocolError::Malformed {
                what: "ServerPlan",
                reason: format!("stage {i}: {e}"),
            })
    }

    /// Input elements (C·H·W).
    pub fn input_len(&self) -> usize {
        self.input.channels * self.input.height * self.input.width
    }

    /// Number of garbled circuit instances one inference evaluates (its ReLUs when every garbled
    /// layer is a ReLU layer).
    pub fn relu_count(&self) -> usize {
        self.stages.iter().map(PlanStage::relus).sum()
    }

    /// Elements of a shared tensor.
    pub fn source_len(&self, s: Source) -> usize {
        match s {
            Source::Image => self.input_len(),
            Source::Relu(j) => self.stages[j].instances(),
        }
    }

    /// Upper estimate of the memory one server session of this plan holds at its peak, in bytes,
    /// computed from the plan alone (the HE stage geometry, no weights): what a server checks
    /// before it precomputes a model. Held between messages: HE shares and the masked tensors
    /// (8 B per element each), the client's OT zero-labels and the garbler's input labels (16 B
    /// per share bit each), the re-masks (8 B per circuit instance). On top, the largest transient
    /// of one step: a streamed chunk of tables and output words (built, then copied into its frame), a part of the
    /// KOS matrix (received and transposed), or an HE stage (its input and output
    /// ciphertexts, three copies each: as received, in NTT form, and while being multiplied or
    /// flooded).
    pub fn session_memory_bytes(&self) -> Result<u64, ProtocolError> {
        let params = HeParams::new(self.k).map_err(|e| bad(e.to_string()))?;
        let stages = self
            .stages
            .iter()
            .map(|st| {
                let convs: Vec<IntConv> = st.terms.iter().map(|(_, c)| *c).collect();
                cryptonas_he::ClientStage::new(&params, &convs).map_err(|e| bad(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let circuits = (0..self.stages.len())
            .map(|i| self.circuit(i))
            .collect::<Result<Vec<_>, _>>()?;
        let plans: Vec<&cryptonas_he::StagePlan> = stages.iter().map(|s| s.plan()).collect();
        Ok(self.session_memory_with(&params, &plans, &circuits))
    }

    fn session_memory_with(
        &self,
        he_params: &HeParams,
        he_stages: &[&cryptonas_he::StagePlan],
        circuits: &[Option<StageCircuit>],
    ) -> u64 {
        let ot_bits = self.ot_bits() as u64;
        let instances = self.relu_count() as u64;
        // Per stage its share of Z and its masked output (a max pool's is smaller than Z).
        let elements: u64 = self
            .stages
            .iter()
            .map(|s| s.len.max(s.instances()) as u64)
            .sum::<u64>()
            + self.input_len() as u64;
        let held = 2 * 8 * elements + 2 * 16 * ot_bits + 8 * instances;
        let chunk = circuits
            .iter()
            .flatten()
            .map(|c| {
                // The tables' 16-byte header, and per instance its tables and output words.
                let per = c.circuit().table_bytes() + c.decoding_len(1);
                2 * (16 + crate::GARBLE_CHUNK * per) as u64
            })
            .max()
            .unwrap_or(0);
        // One matrix part as received, its columns and its transposed rows (the rows join the
        // zero-labels counted above).
        let kos = 3
            * 16
            * crate::OT_PART_ROWS.min(cryptonas_ot::kos::extended_rows(ot_bits as usize)) as u64;
        let ciphertext = (2 * he_params.degree() * he_params.moduli().len() * 8) as u64;
        let he = he_stages
            .iter()
            .map(|p| 3 * ciphertext * (p.input_ciphertexts() + p.output_ciphertexts()) as u64)
            .max()
            .unwrap_or(0);
        held + chunk.max(kos).max(he)
    }

    /// Checks internal consistency (a client must not trust sizes blindly: a wrong plan would make
    /// it allocate or index wrongly).
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if !(8..=64).contains(&self.k) {
            return Err(bad(format!("k = {} outside [8, 64]", self.k)));
        }
        let n = self.stages.len();
        if n == 0
            || !self.stages[n - 1].is_output()
            || self.stages[..n - 1]
                .iter()
                .any(|s| s.is_output() || !s.garbled())
        {
            return Err(bad(
                "stages must be garbled layers followed by the logits".into()
            ));
        }
        if let StageOp::TopK { top } = self.stages[n - 1].op {
            let classes = self.stages[n - 1].len;
            if top == 0 || top as usize > classes || classes < 2 {
                return Err(bad(format!(
                    "top-{top} of {classes} logits: needs 2 or more logits and 1 ≤ top ≤ logits"
                )));
            }
        }
        if self.input.mean.len() != self.input.channels
            || self.input.std.len() != self.input.channels
        {
            return Err(bad("input mean/std do not match the channels".into()));
        }
        for (i, st) in self.stages.iter().enumerate() {
            if !st.is_output() && !(2..=self.k).contains(&st.k) {
                return Err(bad(format!(
                    "stage {i}: garbled layer's ring width {} outside [2, {}]",
                    st.k, self.k
                )));
            }
            if st.is_output() && st.k != self.k {
                return Err(bad(format!("the logits' ring width {} is not k", st.k)));
            }
            if !st.is_output() && st.trunc + 1 >= st.k {
                return Err(bad(format!("stage {i}: truncation {} too large", st.trunc)));
            }
            if st.terms.is_empty() {
                return Err(bad(format!("stage {i} has no terms")));
            }
            // An empty ReLU layer would have no chunk to wait for and no job to complete.
            if st.len == 0 {
                return Err(bad(format!("stage {i} is empty")));
            }
            if let StageOp::MaxPool { pool, .. } = &st.op {
                pool.check().map_err(|e| bad(format!("stage {i}: {e}")))?;
                if pool.input.len() != st.len {
                    return Err(bad(format!(
                        "stage {i}: the max pool reads {} elements of a {}-element Z",
                        pool.input.len(),
                        st.len
                    )));
                }
            }
            // The circuit must build (a clipping bound within the ring, …).
            self.circuit(i)?;
            for (src, conv) in &st.terms {
                if let Source::Relu(j) = src {
                    if *j >= i {
                        return Err(bad(format!("stage {i} reads later stage {j}")));
                    }
                }
                conv.check().map_err(|e| bad(format!("stage {i}: {e}")))?;
                if conv.input_len() != self.source_len(*src) || conv.output_len() != st.len {
                    return Err(bad(format!(
                        "stage {i}: term sizes disagree with the shapes"
                    )));
                }
            }
        }
        self.checked_ot_bits()?;
        Ok(())
    }

    /// [`Plan::ot_bits`] counted in u64, overflow-checked, and at most the OT extension's limit.
    /// Every size a client derives from the share bits must fit its usize (32 bits in a browser):
    /// with one OT per bit under that limit, a layer's labels (16 B per bit) stay far below 2^32
    /// bytes.
    fn checked_ot_bits(&self) -> Result<u64, ProtocolError> {
        let mut ot_bits = 0u64;
        for (i, st) in self.stages.iter().enumerate().filter(|(_, s)| s.garbled()) {
            ot_bits = (st.instances() as u64)
                .checked_mul(st.window() as u64)
                .and_then(|w| w.checked_mul(u64::from(st.k)))
                .and_then(|b| b.checked_add(ot_bits))
                .filter(|&t| t <= cryptonas_ot::kos::MAX_TRANSFERS as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "stage {i}: more than {} share bits (one OT each) up to this layer",
                        cryptonas_ot::kos::MAX_TRANSFERS
                    ))
                })?;
        }
        Ok(ot_bits)
    }
}

/// A model ready to serve: the quantized normal form, its plan, the HE weight precomputation and the
/// ReLU circuits. Built once per model and shared (read-only) by all sessions.
pub struct ServerModel {
    pub(crate) plan: Plan,
    pub(crate) fixed: FixedModel,
    pub(crate) he_params: HeParams,
    pub(crate) he_stages: Vec<cryptonas_he::ServerStage>,
    pub(crate) circuits: Vec<Option<StageCircuit>>,
    accuracy: Option<f64>,
    description: String,
}

/// Why a model cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    /// The model files are invalid.
    #[error(transparent)]
    Model(#[from] cryptonas_model::ModelError),
    /// The model has no calibrated fixed-point configuration in its metadata.
    #[error("model '{0}' has no fixed-point configuration (metadata.fixed_point); export it with the search crate or calibrate it")]
    NotCalibrated(String),
    /// HE precomputation failed (e.g. weights too large for the noise budget).
    #[error("HE setup: {0}")]
    He(#[from] cryptonas_he::HeError),
    /// A garbled circuit could not be built for the stage's parameters.
    #[error("garbled circuit: {0}")]
    Circuit(#[from] cryptonas_gc::CircuitError),
    /// The plan is inconsistent.
    #[error(transparent)]
    Plan(#[from] ProtocolError),
    /// One session of the model would need more memory than the server admits per session.
    #[error(
        "model '{model}' needs {need}, more than the server's per-session limit of {limit_mb} \
         MiB: refused (raise --max-session-memory-mb, or choose a smaller model)"
    )]
    TooLarge {
        /// Model name.
        model: String,
        /// What one session needs.
        need: SessionEstimate,
        /// The limit, MiB (rounded down).
        limit_mb: u64,
    },
}

/// What one server session of a model needs, from its plan alone (no HE precomputation): what the
/// server checks when it loads a model and what `cryptonas import` reports, so that both state
/// the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SessionEstimate {
    /// Peak bytes ([`Plan::session_memory_bytes`]).
    pub bytes: u64,
    /// Garbled circuit instances of one inference (ReLUs, clipped ReLUs and pool outputs).
    pub instances: usize,
}

impl SessionEstimate {
    /// The estimate for a calibrated model (its `metadata.fixed_point`).
    pub fn of(name: &str, model: &Model) -> Result<SessionEstimate, ModelLoadError> {
        let (_, plan) = quantized_plan(name, model)?;
        Self::of_plan(&plan)
    }

    fn of_plan(plan: &Plan) -> Result<SessionEstimate, ModelLoadError> {
        Ok(SessionEstimate {
            bytes: plan.session_memory_bytes()?,
            instances: plan.relu_count(),
        })
    }

    /// [`SessionEstimate::bytes`] in MiB, rounded up (the unit both the server and the report
    /// print).
    pub fn mib(&self) -> u64 {
        self.bytes.div_ceil(1 << 20)
    }
}

impl std::fmt::Display for SessionEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an estimated {} MiB per session ({} garbled ReLUs and pool outputs)",
            self.mib(),
            self.instances
        )
    }
}

/// The quantized model and its validated plan.
fn quantized_plan(name: &str, model: &Model) -> Result<(FixedModel, Plan), ModelLoadError> {
    let config = model
        .spec
        .metadata
        .fixed_point
        .clone()
        .ok_or_else(|| ModelLoadError::NotCalibrated(name.to_string()))?;
    let nf = NormalForm::compile(model)?;
    let fixed = FixedModel::quantize(&nf, &config)?;
    let plan = Plan::of(name, &model.spec.input, &model.spec.classes, &fixed);
    plan.validate()?;
    Ok((fixed, plan))
}

/// [`SessionEstimate::of_plan`] against a per-session limit in bytes.
fn plan_within(plan: &Plan, limit: u64) -> Result<(), ModelLoadError> {
    let need = SessionEstimate::of_plan(plan)?;
    if need.bytes > limit {
        return Err(ModelLoadError::TooLarge {
            model: plan.model.clone(),
            need,
            limit_mb: limit >> 20,
        });
    }
    Ok(())
}

impl ServerModel {
    /// Prepares a loaded model with its calibrated fixed-point configuration.
    pub fn new(name: &str, model: &Model) -> Result<ServerModel, ModelLoadError> {
        Self::new_within(name, model, u64::MAX)
    }

    /// [`ServerModel::new`] for a server that admits at most `limit` bytes per session: a model
    /// whose session would need more ([`SessionEstimate`], from the plan alone) is refused with
    /// [`ModelLoadError::TooLarge`] before its HE weights are precomputed.
    pub fn new_within(
        name: &str,
        model: &Model,
        limit: u64,
    ) -> Result<ServerModel, ModelLoadError> {
        let (fixed, plan) = quantized_plan(name, model)?;
        plan_within(&plan, limit)?;
        let mut description = String::new();
        if let Some(d) = &model.spec.metadata.dataset {
            description.push_str(d);
        }
        if let Some(e) = model.spec.metadata.epochs {
            description.push_str(&format!(", {e} epochs"));
        }
        Self::from_fixed(
            name,
            &model.spec.input,
            &model.spec.classes,
            fixed,
            // Fixed-point accuracy when measured, else the float one (the export checks they agree).
            model
                .spec
                .metadata
                .test_accuracy
                .or(model.spec.metadata.float_accuracy),
            description,
        )
    }

    /// Prepares an already quantized model (tests, benchmarks).
    pub fn from_fixed(
        name: &str,
        input: &InputSpec,
        classes: &[String],
        fixed: FixedModel,
        accuracy: Option<f64>,
        description: String,
    ) -> Result<ServerModel, ModelLoadError> {
        let plan = Plan::of(name, input, classes, &fixed);
        plan.validate()?;
        let he_params = HeParams::new(plan.k)?;
        let he_stages = fixed
            .stages
            .iter()
            .map(|s| {
                let terms: Vec<_> = s
                    .terms
                    .iter()
                    .map(|t| (t.conv, t.weights.clone()))
                    .collect();
                cryptonas_he::ServerStage::new(&he_params, &terms)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let circuits = (0..plan.stages.len())
            .map(|i| plan.circuit(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerModel {
            plan,
            fixed,
            he_params,
            he_stages,
            circuits,
            accuracy,
            description,
        })
    }

    /// Sets what clients learn ([`OutputPolicy`]): the last stage reveals the logits or becomes
    /// a garbled top-k. Errors (and leaves the model as it was) when the policy asks for more
    /// classes than the model has.
    pub fn set_output(&mut self, policy: OutputPolicy) -> Result<(), ModelLoadError> {
        let mut plan = self.plan.clone();
        let last = plan.stages.len() - 1;
        plan.stages[last].op = policy.stage_op();
        plan.validate()?;
        self.circuits[last] = plan.circuit(last)?;
        self.plan = plan;
        Ok(())
    }

    /// Refuses ([`ModelLoadError::TooLarge`]) a model whose one session, under its current
    /// output policy, would need more than `limit` bytes: [`ServerModel::new_within`]'s check,
    /// again after [`ServerModel::set_output`] (a top-k adds its labels).
    pub fn check_within(&self, limit: u64) -> Result<(), ModelLoadError> {
        plan_within(&self.plan, limit)
    }

    /// What clients learn.
    pub fn output(&self) -> OutputPolicy {
        self.plan.output()
    }

    /// The public plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plaintext fixed-point model (the reference every private inference must match).
    pub fn fixed(&self) -> &FixedModel {
        &self.fixed
    }

    /// Measured test accuracy, if the metadata has it.
    pub fn accuracy(&self) -> Option<f64> {
        self.accuracy
    }

    /// Dataset and training, for listings.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Upper estimate of the memory one server session of this model holds at its peak, in bytes,
    /// for admission control ([`Plan::session_memory_bytes`] with this model's HE stages).
    pub fn session_memory_bytes(&self) -> u64 {
        let stages: Vec<&cryptonas_he::StagePlan> =
            self.he_stages.iter().map(|s| s.plan()).collect();
        self.plan
            .session_memory_with(&self.he_params, &stages, &self.circuits)
    }
}

/// A plan that cannot be used: inconsistent ([`Plan::validate`]) or outside what HE supports.
fn bad(reason: String) -> ProtocolError {
    ProtocolError::Malformed {
        what: "ServerPlan",
        reason,
    }
}

#[cfg(test)]
mod tests {
    /// A plan announcing more share bits than one OT extension carries is refused before the
    /// client sizes anything by it (on wasm32 `instances × k × 16` would overflow).
    #[test]
    fn a_plan_beyond_the_ot_limit_is_refused() {
        let (_, _, model, _) = crate::testing::tiny_model(2, 16, 11);
        let mut plan = model.plan().clone();
        assert_eq!(plan.checked_ot_bits().unwrap(), plan.ot_bits() as u64);
        plan.stages[0].len = usize::MAX / 2;
        let err = plan.checked_ot_bits().unwrap_err().to_string();
        assert!(err.contains("more than 16777216 share bits"), "{err}");
    }
}
