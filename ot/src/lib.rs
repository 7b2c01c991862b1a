#![doc = include_str!("../README.md")]

pub mod chou_orlandi;
mod error;
pub mod gf128;
pub mod kos;
mod transpose;

pub use error::OtError;
pub use transpose::transpose128;
