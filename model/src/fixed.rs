//! Fixed-point evaluation of the normal form in Z_2^k (ring-spec.md), bit-exact with the protocol.

use serde::{Deserialize, Serialize};

/// Scales of one stage: output scale F_Z and the weight scale of each term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageScales {
    /// Fractional bits of the stage output Z (every term is aligned to it).
    pub f_z: u32,
    /// Fractional bits of each term's weights (f_w ≤ F_Z − f_src; the rest is a left shift).
    pub f_w: Vec<u32>,
}

/// Ring size and every scale of a quantized normal form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedConfig {
    /// Ring bits k ∈ [8, 64].
    pub k: u32,
    /// Fractional bits of the client's normalised input.
    pub f_in: u32,
    /// Fractional bits of every ReLU output.
    pub f_a: u32,
    /// Per stage, in normal-form order.
    pub stages: Vec<StageScales>,
}
