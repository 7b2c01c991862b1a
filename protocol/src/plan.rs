//! The public plan of an inference and the server's private, precomputed model.
//!
//! The plan is what the client may know: the ring, the scales, the shapes of every stage and which
//! shared tensors feed it (the architecture is public; ReLU counts are the cost model). Weights and
//! biases stay in [`ServerModel`].

use crate::ProtocolError;
use cryptonas_gc::{ReluCircuit, ReluVariant};
use cryptonas_he::HeParams;
use cryptonas_model::{FixedModel, InputSpec, IntConv, Model, NormalForm, Source, StageKind};
use serde::{Deserialize, Serialize};

/// One stage as the client sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStage {
    /// True for a ReLU layer's input, false for the logits (always last).
    pub relu: bool,
    /// Elements of Z (= ReLUs of this layer).
    pub len: usize,
    /// ReLU truncation t (0 for the logits).
    pub trunc: u32,
    /// Ring width k_l ≤ k of the ReLU: both shares of Z are reduced mod 2^(k_l) and the garbled
    /// circuit, the OT and the online labels take k_l bits per ReLU (k for the logits).
    pub k: u32,
    /// Scale of Z.
    pub f_z: u32,
    /// Which shared tensor each term reads, and its geometry.
    pub terms: Vec<(Source, IntConv)>,
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
                    relu: matches!(s.kind, StageKind::Relu { .. }),
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
    /// messages, the garbled chunks of every ReLU layer, one labels frame per ReLU layer and the
    /// output (what a progress bar counts to).
    pub fn server_frames(&self) -> usize {
        let relu = self.stages.iter().filter(|s| s.relu);
        let chunks: usize = relu
            .clone()
            .map(|s| s.len.div_ceil(crate::GARBLE_CHUNK))
            .sum();
        1 + self.stages.len() + 2 + chunks + relu.count() + 1
    }

    /// Bits of every ReLU layer's share of Z (`len · k_l` each): one correlated OT per bit.
    pub fn ot_bits(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| s.relu)
            .map(|s| s.len * s.k as usize)
            .sum()
    }

    /// Where stage `i`'s share bits start among [`Plan::ot_bits`].
    pub fn ot_offset(&self, i: usize) -> usize {
        self.stages[..i.min(self.stages.len())]
            .iter()
            .filter(|s| s.relu)
            .map(|s| s.len * s.k as usize)
            .sum()
    }

    /// The garbled ReLU of stage `i` (None for the logits): inputs in the stage's ring
    /// Z_2^(k_l), result in the shares' ring Z_2^k.
    pub fn circuit(&self, i: usize) -> Result<Option<ReluCircuit>, ProtocolError> {
        let s = &self.stages[i];
        s.relu
            .then(|| ReluCircuit::with_output_ring(s.k, self.k, s.trunc, ReluVariant::Relu))
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

    /// Number of ReLUs one inference evaluates.
    pub fn relu_count(&self) -> usize {
        self.stages.iter().filter(|s| s.relu).map(|s| s.len).sum()
    }

    /// Elements of a shared tensor.
    pub fn source_len(&self, s: Source) -> usize {
        match s {
            Source::Image => self.input_len(),
            Source::Relu(j) => self.stages[j].len,
        }
    }

    /// Checks internal consistency (a client must not trust sizes blindly: a wrong plan would make
    /// it allocate or index wrongly).
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |reason: String| ProtocolError::Malformed {
            what: "ServerPlan",
            reason,
        };
        if !(8..=64).contains(&self.k) {
            return Err(bad(format!("k = {} outside [8, 64]", self.k)));
        }
        let n = self.stages.len();
        if n == 0 || self.stages[n - 1].relu || self.stages[..n - 1].iter().any(|s| !s.relu) {
            return Err(bad(
                "stages must be ReLU layers followed by the logits".into()
            ));
        }
        if self.input.mean.len() != self.input.channels
            || self.input.std.len() != self.input.channels
        {
            return Err(bad("input mean/std do not match the channels".into()));
        }
        for (i, st) in self.stages.iter().enumerate() {
            if st.relu && !(2..=self.k).contains(&st.k) {
                return Err(bad(format!(
                    "stage {i}: ReLU ring width {} outside [2, {}]",
                    st.k, self.k
                )));
            }
            if !st.relu && st.k != self.k {
                return Err(bad(format!("the logits' ring width {} is not k", st.k)));
            }
            if st.relu && st.trunc + 1 >= st.k {
                return Err(bad(format!("stage {i}: truncation {} too large", st.trunc)));
            }
            if st.terms.is_empty() {
                return Err(bad(format!("stage {i} has no terms")));
            }
            // An empty ReLU layer would have no chunk to wait for and no job to complete.
            if st.len == 0 {
                return Err(bad(format!("stage {i} is empty")));
            }
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
        Ok(())
    }
}

/// A model ready to serve: the quantized normal form, its plan, the HE weight precomputation and the
/// ReLU circuits. Built once per model and shared (read-only) by all sessions.
pub struct ServerModel {
    pub(crate) plan: Plan,
    pub(crate) fixed: FixedModel,
    pub(crate) he_params: HeParams,
    pub(crate) he_stages: Vec<cryptonas_he::ServerStage>,
    pub(crate) circuits: Vec<Option<ReluCircuit>>,
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
    /// A ReLU circuit could not be built for the stage's parameters.
    #[error("ReLU circuit: {0}")]
    Circuit(#[from] cryptonas_gc::CircuitError),
    /// The plan is inconsistent.
    #[error(transparent)]
    Plan(#[from] ProtocolError),
}

impl ServerModel {
    /// Prepares a loaded model with its calibrated fixed-point configuration.
    pub fn new(name: &str, model: &Model) -> Result<ServerModel, ModelLoadError> {
        let config = model
            .spec
            .metadata
            .fixed_point
            .clone()
            .ok_or_else(|| ModelLoadError::NotCalibrated(name.to_string()))?;
        let nf = NormalForm::compile(model)?;
        let fixed = FixedModel::quantize(&nf, &config)?;
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
    /// for admission control. Held between messages: HE shares and the masked tensors (8 B per
    /// element each), the client's OT zero-labels and the garbler's input labels (16·k_l B per
    /// ReLU each), the re-masks. On top, the largest transient of one step: a streamed chunk of
    /// tables (built, then copied into its frame), the KOS matrix (16·k_l B per ReLU, received and
    /// transposed), or an HE stage (its input and output ciphertexts, three copies each: as
    /// received, in NTT form, and while being multiplied or flooded).
    pub fn session_memory_bytes(&self) -> u64 {
        let ot_bits = self.plan.ot_bits() as u64;
        let relus = self.plan.relu_count() as u64;
        let elements: u64 = self.plan.stages.iter().map(|s| s.len as u64).sum::<u64>()
            + self.plan.input_len() as u64;
        let held = 2 * 8 * elements + 2 * 16 * ot_bits + 8 * relus;
        let chunk = self
            .circuits
            .iter()
            .flatten()
            .map(|c| 2 * (crate::GARBLE_CHUNK * c.circuit().table_bytes()) as u64)
            .max()
            .unwrap_or(0);
        let kos = 2 * 16 * ot_bits;
        let ciphertext = (2 * self.he_params.degree() * self.he_params.moduli().len() * 8) as u64;
        let he = self
            .he_stages
            .iter()
            .map(|st| {
                let p = st.plan();
                3 * ciphertext * (p.input_ciphertexts() + p.output_ciphertexts()) as u64
            })
            .max()
            .unwrap_or(0);
        held + chunk.max(kos).max(he)
    }
}
