//! CryptoNAS model format, f32 and bit-exact fixed-point engines, ReLU counting, image input.
//!
//! * [`format`](mod@format): the versioned JSON graph ([`ModelSpec`]) + safetensors weights, validated on load
//!   ([`Model::load`], [`Model::from_bytes`]) with typed [`ModelError`]s naming node and tensor.
//! * [`zoo`]: the CryptoNAS macro network builder, CNet1/2/3, random weights.
//! * [`count`]: the ReLU budget ([`relu_count`]) and MACs by shape inference.
//! * [`engine`]: the f32 reference forward pass ([`Model::forward`]).
//! * [`normal`]: the ReLU-separated normal form the protocol runs ([`NormalForm`]): per ReLU
//!   input (and the logits) a sum of composed convolutions of earlier shared tensors.
//! * [`intconv`]: the integer convolution contract ([`IntConv`], [`conv_ring`]) HE implements.
//! * [`fixed`]: quantization, calibration and bit-exact evaluation in Z_2^k ([`FixedModel`]).
//! * [`image`]: PNG/JPEG decoding, resize and normalisation.
//! * [`plain`]: one input through both engines, side by side (`cryptonas plain`).
//!
//! ```
//! use cryptonas_model::{zoo, Calibration, CalibrationParams, FixedModel, Model, NormalForm};
//! let spec = zoo::cnet1(1).to_model_spec("tiny").unwrap();
//! assert_eq!(cryptonas_model::relu_count(&spec).unwrap(), 6 * 1024);
//! let weights = zoo::random_init(&spec, 7).unwrap();
//! let model = Model::from_bytes(spec.to_json().as_bytes(), &weights).unwrap();
//! let nf = NormalForm::compile(&model).unwrap();
//! let image = vec![0.5f32; 3 * 32 * 32];
//! let cal = Calibration::run(&nf, [image.as_slice()]).unwrap();
//! let config = cal.config(&nf, 32, &CalibrationParams::default()).unwrap();
//! let fixed = FixedModel::quantize(&nf, &config).unwrap();
//! let logits = fixed.logits(&image).unwrap();
//! assert_eq!(logits.len(), 10);
//! ```

pub mod count;
pub mod engine;
pub mod error;
pub mod fixed;
pub mod format;
pub mod image;
pub mod intconv;
pub mod normal;
pub mod plain;
pub mod rng;
pub mod zoo;

pub use count::{macs, max_pool_comparisons, relu_count, summary};
pub use error::{ModelError, Result};
pub use fixed::{
    Calibration, CalibrationParams, FixedConfig, FixedModel, QuantStage, QuantTerm, StageScales,
};
pub use format::{Graph, InputSpec, Metadata, Model, ModelSpec, Node, NodeId, Op, Shape, Tensor};
pub use intconv::{conv_ring, IntConv};
pub use normal::{InputEncoding, NormalForm, Source, Stage, StageKind, Term};
