//! Plaintext classification of one input through both engines: the f32 reference and the
//! bit-exact fixed-point engine (what the private protocol computes), side by side.
//!
//! This is what `cryptonas plain` and the `classify` example print. The input is a normalised CHW
//! tensor: decode an image with [`crate::image::load_input`], or read a tensor another tool wrote
//! with [`read_f32_le`] (no image decoder involved, so numerics can be compared exactly).

use ndarray::ArrayView4;
use serde::Serialize;

use crate::{
    relu_count, Calibration, CalibrationParams, FixedModel, InputSpec, Model, ModelError,
    NormalForm, Result,
};

/// Largest raw tensor [`parse_f32_le`] accepts (bytes): far above any model input here.
pub const MAX_RAW_BYTES: usize = 64 << 20;

/// Why bytes are not a usable raw input tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawInputError {
    /// Not a whole number of f32 values, empty, or above [`MAX_RAW_BYTES`].
    #[error("{bytes} bytes is not a whole number of f32 values (at most {MAX_RAW_BYTES} bytes)")]
    Length {
        /// Bytes given.
        bytes: usize,
    },
    /// NaN or infinity.
    #[error("value {index} is not finite")]
    NonFinite {
        /// Its index.
        index: usize,
    },
    /// A tensor of the wrong size for the model.
    #[error("{found} values, the model takes {}×{}×{} = {}", .shape[0], .shape[1], .shape[2], .shape.iter().product::<usize>())]
    Shape {
        /// Values given.
        found: usize,
        /// The model's C, H, W.
        shape: [usize; 3],
    },
}

/// Parses a little-endian f32 tensor (any length; see [`read_f32_le`] for the model's shape).
pub fn parse_f32_le(bytes: &[u8]) -> Result<Vec<f32>, RawInputError> {
    if bytes.is_empty() || bytes.len() > MAX_RAW_BYTES || !bytes.len().is_multiple_of(4) {
        return Err(RawInputError::Length { bytes: bytes.len() });
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(RawInputError::NonFinite { index }),
        None => Ok(v),
    }
}

/// Parses a little-endian f32 tensor of exactly the model's input shape (C×H×W, CHW order).
pub fn read_f32_le(bytes: &[u8], input: &InputSpec) -> Result<Vec<f32>, RawInputError> {
    let v = parse_f32_le(bytes)?;
    let shape = [input.channels, input.height, input.width];
    if v.len() != shape.iter().product::<usize>() {
        return Err(RawInputError::Shape {
            found: v.len(),
            shape,
        });
    }
    Ok(v)
}

/// The two engines' answers for one input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlainReport {
    /// Model name.
    pub model: String,
    /// ReLUs one private inference evaluates.
    pub relus: u64,
    /// Normal-form stages (ReLU layers and the logits).
    pub stages: usize,
    /// Ring bits of the fixed-point engine.
    pub k: u32,
    /// Fractional bits of the input.
    pub f_in: u32,
    /// Fractional bits of the activations.
    pub f_a: u32,
    /// True when the model stores no fixed-point configuration for this `k` and one was calibrated
    /// on the input and its mirror image (the numbers are then not what a server would compute).
    pub calibrated_on_input: bool,
    /// Class names.
    pub classes: Vec<String>,
    /// Logits of the f32 reference engine.
    pub f32_logits: Vec<f64>,
    /// Logits of the fixed-point engine, dequantized.
    pub fixed_logits: Vec<f64>,
    /// The fixed-point logits as ring elements (what the protocol reconstructs).
    pub fixed_ring: Vec<u64>,
    /// Argmax of the f32 logits.
    pub f32_class: usize,
    /// Argmax of the fixed-point logits.
    pub fixed_class: usize,
    /// The fixed-point evaluation left the signed k-bit range: the ring result is shown wrapped.
    pub overflow: Option<String>,
}

impl PlainReport {
    /// Name of the fixed-point class.
    pub fn fixed_class_name(&self) -> &str {
        self.classes
            .get(self.fixed_class)
            .map_or("?", String::as_str)
    }

    /// Both engines' logits side by side, a line per class (with a header line).
    pub fn logits_table(&self) -> String {
        let mut out = format!("{:>12} {:>10} {:>10}\n", "class", "f32", "fixed");
        for (i, name) in self.classes.iter().enumerate() {
            out += &format!(
                "{name:>12} {:>10.4} {:>10.4}\n",
                self.f32_logits[i], self.fixed_logits[i]
            );
        }
        out
    }
}

/// The first of equal maxima (the project's tie rule, [`crate::fixed::rank_logits`]).
fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

/// Classifies a normalised CHW input (the model's input shape) with both engines at ring size
/// `k`, using the model's stored fixed-point configuration when it is for `k`.
pub fn classify(model: &Model, x: &[f32], k: u32) -> Result<PlainReport> {
    let spec = &model.spec;
    let (c, h, w) = (spec.input.channels, spec.input.height, spec.input.width);
    let view = ArrayView4::from_shape((1, c, h, w), x).map_err(|_| ModelError::InputShape {
        expected: vec![c, h, w],
        found: vec![x.len()],
    })?;
    let f32_logits: Vec<f64> = model.forward(view)?.iter().map(|&v| f64::from(v)).collect();

    let nf = NormalForm::compile(model)?;
    let (config, calibrated_on_input) = match &spec.metadata.fixed_point {
        Some(cfg) if cfg.k == k => (cfg.clone(), false),
        _ => {
            // No stored calibration for this k: calibrate on the input and its mirror image.
            let mut mirror = x.to_vec();
            for row in mirror.chunks_mut(w) {
                row.reverse();
            }
            let cal = Calibration::run(&nf, [x, mirror.as_slice()])?;
            (cal.config(&nf, k, &CalibrationParams::default())?, true)
        }
    };
    let fixed = FixedModel::quantize(&nf, &config)?;
    let q = fixed.quantize_input(x)?;
    let (ring, overflow) = match fixed.forward_checked(&q) {
        Ok(r) => (r, None),
        Err(e @ ModelError::Overflow { .. }) => (fixed.forward(&q)?, Some(e.to_string())),
        Err(e) => return Err(e),
    };
    let fixed_logits = fixed.dequantize_logits(&ring);
    Ok(PlainReport {
        model: spec.name.clone(),
        relus: relu_count(spec)?,
        stages: nf.stages.len(),
        k,
        f_in: config.f_in,
        f_a: config.f_a,
        calibrated_on_input,
        classes: spec.classes.clone(),
        f32_class: argmax(&f32_logits),
        fixed_class: crate::fixed::rank_logits(&ring, fixed.config.k, 1)
            .first()
            .copied()
            .unwrap_or(0),
        f32_logits,
        fixed_logits,
        fixed_ring: ring,
        overflow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    fn tiny() -> Model {
        let spec = zoo::model_spec(&cryptonas_arch::cnet1(1), "tiny").unwrap();
        let weights = zoo::random_init(&spec, 3).unwrap();
        Model::from_bytes(spec.to_json().as_bytes(), &weights).unwrap()
    }

    #[test]
    fn raw_tensor_round_trips_and_bad_lengths_are_refused() {
        let m = tiny();
        let x: Vec<f32> = (0..3 * 32 * 32)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect();
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(read_f32_le(&bytes, &m.spec.input).unwrap(), x);
        assert_eq!(
            read_f32_le(&bytes[..bytes.len() - 4], &m.spec.input),
            Err(RawInputError::Shape {
                found: 3 * 32 * 32 - 1,
                shape: [3, 32, 32]
            })
        );
        assert_eq!(
            read_f32_le(&bytes[..bytes.len() - 1], &m.spec.input),
            Err(RawInputError::Length {
                bytes: bytes.len() - 1
            })
        );
        assert!(parse_f32_le(&[]).is_err());
        let mut nan = bytes.clone();
        nan[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(
            read_f32_le(&nan, &m.spec.input),
            Err(RawInputError::NonFinite { index: 2 })
        );
    }

    #[test]
    fn both_engines_report_and_a_wrong_shape_is_an_error() {
        let m = tiny();
        let x = vec![0.25f32; 3 * 32 * 32];
        let r = classify(&m, &x, 32).unwrap();
        assert!(r.calibrated_on_input);
        assert_eq!(r.f32_logits.len(), 10);
        assert_eq!(r.fixed_ring.len(), 10);
        assert_eq!(r.relus, 6 * 1024);
        assert!(classify(&m, &x[1..], 32).is_err());
    }
}
