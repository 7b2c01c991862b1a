#![doc = include_str!("../README.md")]

pub mod arch;
pub mod count;
mod error;
pub mod net;
pub mod shape;

pub use arch::{Arch, Layer, Op, CNET1_ARC, CNET2_ARC, CNET3_ARC};
pub use count::{macs, nodes_used_from, relu_count, Macs};
pub use error::ArchError;
pub use net::{cnet1, cnet2, cnet3, Net};
pub use shape::{layer_stages, output_stage, reduction_points, stages, InputShape, Stage};
