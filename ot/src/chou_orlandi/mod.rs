//! Chou–Orlandi base OT ("The Simplest Protocol for Oblivious Transfer", LATINCRYPT 2015) on the
//! Ristretto group, in its batch form: one sender setup point for `m` transfers of 128-bit keys.
//!
//! ```text
//! Sender                                   Receiver (choices c_1..c_m)
//! y ←$ Z_ℓ, S = y·G   ── SenderSetup(S) ──▶  check S decodes and S ≠ 0
//!                                           x_i ←$ Z_ℓ, R_i = c_i·S + x_i·G
//! check R_i decode, ≠ 0 ◀─ ReceiverChoices(R_1..R_m) ─
//! k_i^0 = H(S, R_i, y·R_i, i)               k_i = H(S, R_i, x_i·S, i) = k_i^{c_i}
//! k_i^1 = H(S, R_i, y·R_i − y·S, i)
//! ```
//!
//! Fixes from later analyses (Genç–Iovino–Rial 2017, Hauck–Loss 2017, and the Ristretto encoding):
//! a prime-order group without cofactor pitfalls; every received point must be a canonical encoding
//! and not the identity; the key hash binds the whole per-transfer transcript (S, R_i, the index and a
//! domain tag), not only the Diffie–Hellman point. Receiver privacy is perfect (R_i is uniform);
//! sender privacy rests on CDH in the random-oracle model. This is the semi-honest / "uniform
//! message" setting used by OT extension; it does not give simulation-based security against a
//! malicious sender with chosen messages.
//!
//! Sans-IO: [`Sender`] and [`Receiver`] turn message structs into message structs; steps are typed
//! states, so calling them out of order does not compile:
//!
//! ```compile_fail,E0599
//! use cryptonas_ot::chou_orlandi::Sender;
//! // A sender must run `setup` before it can answer the receiver's choices.
//! let sender = Sender::new();
//! let _ = sender.send(todo!());
//! ```

mod msgs;
mod receiver;
mod sender;

pub use msgs::{ReceiverChoices, SenderSetup};
pub use receiver::Receiver;
pub use sender::Sender;

use cryptonas_crypto::Block;
use cryptonas_crypto::Csprng;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::RistrettoPoint;
use curve25519_dalek::Scalar;
use sha2::{Digest, Sha256};

/// Typestates of the base-OT sender and receiver.
pub mod state {
    use curve25519_dalek::ristretto::CompressedRistretto;
    use curve25519_dalek::{RistrettoPoint, Scalar};

    mod sealed {
        pub trait Sealed {}
    }

    /// A protocol state (sealed: only the states below exist).
    pub trait State: sealed::Sealed {}

    /// Freshly created, nothing sent or received.
    #[derive(Debug, Default)]
    pub struct Initialized;

    /// Sender after `setup`: holds its secret exponent.
    pub struct Setup {
        pub(super) y: Scalar,
        pub(super) s: CompressedRistretto,
        pub(super) t: RistrettoPoint,
    }

    /// Receiver after it has seen the sender's setup point.
    pub struct SetupReceived {
        pub(super) s: RistrettoPoint,
        pub(super) s_bytes: CompressedRistretto,
    }

    impl sealed::Sealed for Initialized {}
    impl sealed::Sealed for Setup {}
    impl sealed::Sealed for SetupReceived {}
    impl State for Initialized {}
    impl State for Setup {}
    impl State for SetupReceived {}

    /// y is the sender's secret exponent: wiped when the state goes away.
    impl Drop for Setup {
        fn drop(&mut self) {
            zeroize::Zeroize::zeroize(&mut self.y);
        }
    }

    impl std::fmt::Debug for Setup {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Setup { .. }")
        }
    }

    impl std::fmt::Debug for SetupReceived {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SetupReceived { .. }")
        }
    }
}

/// Domain separation for the key-derivation hash.
const KDF_TAG: &[u8] = b"cryptonas-ot/chou-orlandi/v1";

/// `H(tag, S, R_i, P, i)`: 32 bytes, so OT extension can seed its PRGs with a full 256-bit key.
pub(crate) fn derive_key(
    s: &CompressedRistretto,
    r: &CompressedRistretto,
    p: &RistrettoPoint,
    index: u64,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(KDF_TAG);
    h.update(s.as_bytes());
    h.update(r.as_bytes());
    h.update(p.compress().as_bytes());
    h.update(index.to_le_bytes());
    h.finalize().into()
}

/// The first 128 bits of a derived key: the OT message.
pub(crate) fn key_block(key: &[u8; 32]) -> Block {
    Block(key[..16].try_into().expect("16 bytes"))
}

/// A uniform scalar from 64 random bytes (bias 2^-259).
pub(crate) fn random_scalar(rng: &mut Csprng) -> Scalar {
    let mut wide = zeroize::Zeroizing::new([0u8; 64]);
    wide[..32].copy_from_slice(&rng.seed());
    wide[32..].copy_from_slice(&rng.seed());
    Scalar::from_bytes_mod_order_wide(&wide)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OtError;

    fn run(choices: &[bool], seed: u8) -> (Vec<[Block; 2]>, Vec<Block>) {
        let mut rng = Csprng::from_seed([seed; 32]);
        let (setup, sender) = Sender::new().setup(&mut rng);
        let setup = SenderSetup::from_bytes(&setup.to_bytes()).unwrap();
        let receiver = Receiver::new().receive_setup(setup);
        let (msg, keys) = receiver.choose(choices, &mut rng);
        let msg = ReceiverChoices::from_bytes(&msg.to_bytes()).unwrap();
        (sender.send(msg), keys)
    }

    fn check(choices: &[bool], pairs: &[[Block; 2]], keys: &[Block]) {
        assert_eq!(pairs.len(), choices.len());
        assert_eq!(keys.len(), choices.len());
        for ((c, pair), k) in choices.iter().zip(pairs).zip(keys) {
            assert_eq!(pair[*c as usize], *k);
            assert_ne!(pair[!*c as usize], *k);
            assert_ne!(pair[0], pair[1]);
        }
    }

    #[test]
    fn one_transfer_each_choice() {
        for c in [false, true] {
            let (pairs, keys) = run(&[c], 3);
            check(&[c], &pairs, &keys);
        }
    }

    #[test]
    fn batch_of_random_choices_and_distinct_keys() {
        let mut rng = Csprng::from_seed([4; 32]);
        let choices: Vec<bool> = (0..300).map(|_| rng.bool()).collect();
        let (pairs, keys) = run(&choices, 5);
        check(&choices, &pairs, &keys);
        let mut all: Vec<u128> = pairs.iter().flatten().map(|b| b.to_u128()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 600, "keys of different transfers must differ");
    }

    #[test]
    fn empty_batch_is_a_no_op() {
        let (pairs, keys) = run(&[], 6);
        assert!(pairs.is_empty() && keys.is_empty());
    }

    #[test]
    fn malformed_points_are_rejected() {
        let err = SenderSetup::from_bytes(&[0u8; 31]).unwrap_err();
        assert!(matches!(
            err,
            OtError::Length {
                expected: 32,
                got: 31,
                ..
            }
        ));
        let err = SenderSetup::from_bytes(&[0u8; 32]).unwrap_err();
        assert!(matches!(err, OtError::IdentityPoint { index: 0, .. }));
        // 0xff..ff is not a canonical field element, hence no point.
        let err = SenderSetup::from_bytes(&[0xff; 32]).unwrap_err();
        assert!(matches!(err, OtError::InvalidPoint { index: 0, .. }));

        let mut rng = Csprng::from_seed([7; 32]);
        let (setup, _) = Sender::new().setup(&mut rng);
        let (msg, _) = Receiver::new()
            .receive_setup(setup)
            .choose(&[true, false, true], &mut rng);
        let mut bytes = msg.to_bytes();
        let err = ReceiverChoices::from_bytes(&bytes[..95]).unwrap_err();
        assert!(matches!(
            err,
            OtError::NotMultiple {
                unit: 32,
                got: 95,
                ..
            }
        ));
        // The low bit of a canonical encoding is 0 ("negative" field elements are rejected).
        bytes[64] ^= 1;
        let err = ReceiverChoices::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, OtError::InvalidPoint { index: 2, .. }));
        bytes[64] ^= 1;
        bytes[32..64].copy_from_slice(&[0; 32]);
        let err = ReceiverChoices::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, OtError::IdentityPoint { index: 1, .. }));
    }
}
