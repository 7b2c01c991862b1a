//! Oblivious transfer for the garbled-circuit ReLUs: Chou–Orlandi base OT and KOS15 OT extension,
//! as sans-IO state machines (message structs in, message structs out; no sockets).
//!
//! - [`chou_orlandi`]: 128-bit base OTs on Ristretto (`curve25519-dalek`).
//! - [`kos`]: IKNP extension with the KOS15 consistency check, producing correlated OT with a
//!   sender-chosen global Δ (`t_j = q_j ⊕ b_j·Δ`) — the garbler's free-XOR Δ — plus random OT and
//!   chosen-message 1-of-2 OT on top.
//! - [`gf128`]: portable constant-time carry-less multiplication for the KOS check.
//!
//! # Security
//! Chou–Orlandi as used here is secure against a semi-honest sender and a malicious receiver of the
//! extension (the garbler is the OT sender and the party the check protects). All randomness comes
//! from [`cryptonas_crypto::Csprng`]. Secret-dependent choices use masks, never branches or table
//! indices. After any [`OtError`] the session must be dropped. Secrets are wiped when they are
//! dropped: the base-OT exponents and keys, Δ, the PRGs seeded from base-OT keys
//! ([`cryptonas_crypto::Csprng`] overwrites its state), the extension rows, choice bits and output
//! labels. This is best effort, as everywhere in Rust: a move may leave a byte copy behind.
//!
//! # Example: correlated OT for garbled-circuit input labels
//! ```
//! use cryptonas_crypto::{Block, Csprng};
//! use cryptonas_ot::kos::{CheckChallenge, CheckResponse, ExtendMatrix, Receiver, Sender};
//! use cryptonas_ot::chou_orlandi::{ReceiverChoices, SenderSetup};
//!
//! let mut rng = Csprng::from_entropy().unwrap();
//! let delta = Block::from_u128(rng.block().to_u128() | 1); // the garbler's free-XOR Δ, lsb 1
//!
//! // Once per session: 128 base OTs (bytes cross the network between the two sides).
//! let (setup, receiver) = Receiver::new().setup(&mut rng);
//! let setup = SenderSetup::from_bytes(&setup.to_bytes()).unwrap();
//! let (choices, sender) = Sender::new(delta).unwrap().receive_base_setup(setup, &mut rng);
//! let choices = ReceiverChoices::from_bytes(&choices.to_bytes()).unwrap();
//! let receiver = receiver.receive_base_choices(choices).unwrap();
//!
//! // Per batch: the evaluator's input bits.
//! let bits = [true, false, true, true];
//! let (matrix, receiver) = receiver.extend(&bits, &mut rng).unwrap();
//! let matrix = ExtendMatrix::from_bytes(&matrix.to_bytes()).unwrap();
//! let (challenge, sender) = sender.receive_extend(matrix, &mut rng);
//! let challenge = CheckChallenge::from_bytes(&challenge.to_bytes()).unwrap();
//! let (response, evaluator_labels, _receiver) = receiver.receive_challenge(challenge);
//! let response = CheckResponse::from_bytes(&response.to_bytes()).unwrap();
//! let (garbler_labels, _sender) = sender.receive_check(response).unwrap();
//!
//! for ((q, t), b) in garbler_labels.zero_labels().iter().zip(evaluator_labels.labels()).zip(bits) {
//!     assert_eq!(*t, *q ^ delta.select(b)); // active label = zero-label ⊕ b·Δ
//! }
//! ```

pub mod chou_orlandi;
mod error;
pub mod gf128;
pub mod kos;
mod transpose;

pub use error::OtError;
pub use transpose::transpose128;
