//! The base-OT receiver.

use super::msgs::{ReceiverChoices, SenderSetup};
use super::state::{Initialized, SetupReceived, State};
use super::{derive_key, key_block, random_scalar};
use cryptonas_crypto::{Block, Csprng};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoBasepointTable;
use curve25519_dalek::traits::Identity;
use curve25519_dalek::RistrettoPoint;
use subtle::{Choice, ConditionallySelectable};

/// The receiver of `m` base OTs: it learns the key `k_i^{c_i}` for each choice bit `c_i`.
#[derive(Debug)]
pub struct Receiver<S: State = Initialized> {
    state: S,
}

impl Default for Receiver<Initialized> {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver<Initialized> {
    /// A fresh receiver.
    pub fn new() -> Self {
        Receiver { state: Initialized }
    }

    /// Takes the sender's (already validated) setup point.
    pub fn receive_setup(self, msg: SenderSetup) -> Receiver<SetupReceived> {
        Receiver {
            state: SetupReceived {
                s: msg.point,
                s_bytes: msg.compressed,
            },
        }
    }
}

impl Receiver<SetupReceived> {
    /// Commits to `choices`: returns the message for the sender and the chosen keys.
    pub fn choose(self, choices: &[bool], rng: &mut Csprng) -> (ReceiverChoices, Vec<Block>) {
        let (msg, keys) = self.choose_wide(choices, rng);
        let keys = zeroize::Zeroizing::new(keys);
        (msg, keys.iter().map(key_block).collect())
    }

    /// As [`Self::choose`], with full 256-bit keys.
    pub(crate) fn choose_wide(
        self,
        choices: &[bool],
        rng: &mut Csprng,
    ) -> (ReceiverChoices, Vec<[u8; 32]>) {
        let SetupReceived { s, s_bytes } = self.state;
        let xs: zeroize::Zeroizing<Vec<_>> =
            zeroize::Zeroizing::new(choices.iter().map(|_| random_scalar(rng)).collect());
        // x·S through a precomputed table for S: constant time, several times faster than a
        // variable-base multiplication once the table is amortised.
        let s_table = RistrettoBasepointTable::create(&s);
        let one = |(i, (x, &c)): (usize, (&_, &bool))| {
            // R = c·S + x·G, selecting S or the identity without a branch on c.
            let cs = RistrettoPoint::conditional_select(
                &RistrettoPoint::identity(),
                &s,
                Choice::from(u8::from(c)),
            );
            let r = cs + x * RISTRETTO_BASEPOINT_TABLE;
            let r_bytes = r.compress();
            let key = derive_key(&s_bytes, &r_bytes, &(x * &s_table), i as u64);
            (r_bytes, r, key)
        };
        #[cfg(not(target_arch = "wasm32"))]
        let out: Vec<_> = {
            use rayon::prelude::*;
            xs.par_iter()
                .zip(choices.par_iter())
                .enumerate()
                .map(one)
                .collect()
        };
        #[cfg(target_arch = "wasm32")]
        let out: Vec<_> = xs.iter().zip(choices.iter()).enumerate().map(one).collect();
        let mut compressed = Vec::with_capacity(out.len());
        let mut points = Vec::with_capacity(out.len());
        let mut keys = Vec::with_capacity(out.len());
        for (c, p, k) in out {
            compressed.push(c);
            points.push(p);
            keys.push(k);
        }
        (ReceiverChoices { compressed, points }, keys)
    }
}
