#![doc = include_str!("../README.md")]

mod client;
mod conv;
mod error;
mod params;
mod plan;
mod server;
mod wire;

#[cfg(test)]
mod flood_tests;

pub use client::{ClientKeys, ClientStage, ClientState};
pub use conv::{conv_ring, IntConv};
pub use error::HeError;
pub use params::{HeParams, STAT_SECURITY_BITS};
pub use plan::StagePlan;
pub use server::{NoiseReport, PublicKey, ServerStage};
pub use wire::{MasksMsg, PublicKeyMsg, ResponseMsg};
