//! The base-OT sender.

use super::msgs::{ReceiverChoices, SenderSetup};
use super::state::{Initialized, Setup, State};
use super::{derive_key, key_block, random_scalar};
use cryptonas_crypto::{Block, Csprng};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::RistrettoPoint;

/// The sender of `m` base OTs: it ends with two random 128-bit keys per transfer.
#[derive(Debug)]
pub struct Sender<S: State = Initialized> {
    state: S,
}

impl Default for Sender<Initialized> {
    fn default() -> Self {
        Self::new()
    }
}

impl Sender<Initialized> {
    /// A fresh sender.
    pub fn new() -> Self {
        Sender { state: Initialized }
    }

    /// Draws the secret `y` and returns the setup message `S = y·G`.
    pub fn setup(self, rng: &mut Csprng) -> (SenderSetup, Sender<Setup>) {
        let y = random_scalar(rng);
        // y = 0 has probability 2^-252; S would be the identity and the receiver would reject it.
        let point = &y * RISTRETTO_BASEPOINT_TABLE;
        let compressed = point.compress();
        let t = y * point;
        (
            SenderSetup { compressed, point },
            Sender {
                state: Setup {
                    y,
                    s: compressed,
                    t,
                },
            },
        )
    }
}

impl Sender<Setup> {
    /// Answers the receiver's points with the key pairs `[k_i^0, k_i^1]`.
    pub fn send(self, msg: ReceiverChoices) -> Vec<[Block; 2]> {
        let keys = zeroize::Zeroizing::new(self.send_wide(msg));
        keys.iter()
            .map(|[k0, k1]| [key_block(k0), key_block(k1)])
            .collect()
    }

    /// Full 256-bit keys (seeds of the OT-extension PRGs).
    pub(crate) fn send_wide(self, msg: ReceiverChoices) -> Vec<[[u8; 32]; 2]> {
        let Setup { y, s, t } = &self.state;
        let keys = |(i, (r_bytes, r)): (usize, (&_, &RistrettoPoint))| {
            let p0 = y * r;
            let p1 = p0 - t;
            [
                derive_key(s, r_bytes, &p0, i as u64),
                derive_key(s, r_bytes, &p1, i as u64),
            ]
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            msg.compressed
                .par_iter()
                .zip(msg.points.par_iter())
                .enumerate()
                .map(keys)
                .collect()
        }
        #[cfg(target_arch = "wasm32")]
        msg.compressed
            .iter()
            .zip(msg.points.iter())
            .enumerate()
            .map(keys)
            .collect()
    }
}
