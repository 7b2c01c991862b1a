//! End-to-end tests of base OT and KOS correlated OT, every message through its byte encoding.
//! They run natively and in headless Chromium (wasm-bindgen-test).

use cryptonas_crypto::{Block, Csprng};
use cryptonas_ot::chou_orlandi;
use cryptonas_ot::kos::{
    self, CheckChallenge, CheckResponse, CotReceiverOutput, CotSenderOutput, ExtendMatrix,
    ReceiverDerandomize, SenderMessages,
};
use cryptonas_ot::OtError;
use zeroize::Zeroizing;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A garbling-style Δ: random with lsb forced to 1.
fn garbling_delta(rng: &mut Csprng) -> Block {
    Block::from_u128(rng.block().to_u128() | 1)
}

fn random_bits(rng: &mut Csprng, n: usize) -> Vec<bool> {
    (0..n).map(|_| rng.bool()).collect()
}

/// Both sides after base OTs, with every message round-tripped through bytes.
fn ready_pair(
    delta: Block,
    rng: &mut Csprng,
) -> (
    kos::Sender<kos::state::Ready>,
    kos::Receiver<kos::state::ReceiverReady>,
) {
    let (setup, receiver) = kos::Receiver::new().setup(rng);
    let setup = chou_orlandi::SenderSetup::from_bytes(&setup.to_bytes()).unwrap();
    let (choices, sender) = kos::Sender::new(delta)
        .unwrap()
        .receive_base_setup(setup, rng);
    let choices = chou_orlandi::ReceiverChoices::from_bytes(&choices.to_bytes()).unwrap();
    let receiver = receiver.receive_base_choices(choices).unwrap();
    (sender, receiver)
}

/// One batch through bytes; returns both outputs and the next states.
fn batch(
    sender: kos::Sender<kos::state::Ready>,
    receiver: kos::Receiver<kos::state::ReceiverReady>,
    choices: &[bool],
    rng: &mut Csprng,
) -> (
    CotSenderOutput,
    CotReceiverOutput,
    kos::Sender<kos::state::Ready>,
    kos::Receiver<kos::state::ReceiverReady>,
) {
    // The transport's way: the matrix written straight into a frame behind its header.
    let mut frame = vec![0x05];
    let receiver = receiver
        .extend_into(Zeroizing::new(choices.to_vec()), rng, &mut frame)
        .unwrap();
    let matrix = ExtendMatrix::from_bytes(&frame[1..]).unwrap();
    assert_eq!(matrix.count(), choices.len());
    let (challenge, sender) = sender.receive_extend(matrix, rng).unwrap();
    let challenge = CheckChallenge::from_bytes(&challenge.to_bytes()).unwrap();
    let (response, r_out, receiver) = receiver.receive_challenge(challenge);
    let response = CheckResponse::from_bytes(&response.to_bytes()).unwrap();
    let (s_out, sender) = sender.receive_check(response).unwrap();
    (s_out, r_out, sender, receiver)
}

/// The correlated-OT relation `t_j = q_j ⊕ b_j·Δ` for every transfer.
fn assert_correlated(s: &CotSenderOutput, r: &CotReceiverOutput, choices: &[bool], delta: Block) {
    assert_eq!(s.delta(), delta);
    assert_eq!(s.len(), choices.len());
    assert_eq!(r.len(), choices.len());
    assert_eq!(r.choices(), choices);
    assert_eq!(s.first_index(), r.first_index());
    for (j, ((q, t), &b)) in s
        .zero_labels()
        .iter()
        .zip(r.labels())
        .zip(choices)
        .enumerate()
    {
        assert_eq!(*t, *q ^ delta.select(b), "transfer {j}");
    }
}

fn cot(n: usize, seed: u8) {
    let mut rng = Csprng::from_seed([seed; 32]);
    let delta = garbling_delta(&mut rng);
    assert!(delta.lsb());
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let choices = random_bits(&mut rng, n);
    let (s, r, _, _) = batch(sender, receiver, &choices, &mut rng);
    assert_correlated(&s, &r, &choices, delta);
    // Zero-labels look random: not all equal, not Δ-related to each other trivially.
    if n > 1 {
        assert_ne!(s.zero_labels()[0], s.zero_labels()[1]);
        assert_ne!(s.zero_labels()[0] ^ s.zero_labels()[1], delta);
    }
}

// ---------------------------------------------------------------- base OT

fn base_ot(n: usize, seed: u8) {
    let mut rng = Csprng::from_seed([seed; 32]);
    let (setup, sender) = chou_orlandi::Sender::new().setup(&mut rng);
    let setup = chou_orlandi::SenderSetup::from_bytes(&setup.to_bytes()).unwrap();
    let choices = random_bits(&mut rng, n);
    let (msg, keys) = chou_orlandi::Receiver::new()
        .receive_setup(setup)
        .choose(&choices, &mut rng);
    let bytes = msg.to_bytes();
    assert_eq!(bytes.len(), 32 * n);
    let pairs = sender.send(chou_orlandi::ReceiverChoices::from_bytes(&bytes).unwrap());
    assert_eq!(pairs.len(), n);
    for ((pair, key), &c) in pairs.iter().zip(&keys).zip(&choices) {
        assert_eq!(pair[usize::from(c)], *key);
        assert_ne!(pair[usize::from(!c)], *key);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn base_ot_one_transfer() {
    base_ot(1, 1);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn base_ot_batch_of_1000() {
    base_ot(1000, 2);
}

/// 10^6 base OTs (about a minute of scalar multiplications in release): run with
/// `cargo test --release -p cryptonas-ot -- --ignored`.
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore = "10^6 public-key OTs: release only; base_ot_batch_of_1000 covers the same code"]
fn base_ot_one_million() {
    base_ot(1_000_000, 3);
}

// ---------------------------------------------------------------- correlated OT

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cot_one_transfer() {
    cot(1, 10);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cot_one_hundred_thousand() {
    cot(100_000, 11);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cot_one_million() {
    cot(1_000_000, 12);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cot_batches_share_base_ots_and_number_transfers_consecutively() {
    let mut rng = Csprng::from_seed([13; 32]);
    let delta = garbling_delta(&mut rng);
    let (mut sender, mut receiver) = ready_pair(delta, &mut rng);
    let mut next = 0u64;
    for n in [0usize, 1, 127, 128, 129, 1000] {
        let choices = random_bits(&mut rng, n);
        let (s, r, s2, r2) = batch(sender, receiver, &choices, &mut rng);
        assert_correlated(&s, &r, &choices, delta);
        assert_eq!(s.first_index(), next);
        next += n as u64;
        assert_eq!(s2.next_index(), next);
        assert_eq!(r2.next_index(), next);
        (sender, receiver) = (s2, r2);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn all_zero_and_all_one_choices() {
    let mut rng = Csprng::from_seed([14; 32]);
    let delta = garbling_delta(&mut rng);
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let zeros = vec![false; 300];
    let (s, r, sender, receiver) = batch(sender, receiver, &zeros, &mut rng);
    assert_correlated(&s, &r, &zeros, delta);
    let ones = vec![true; 300];
    let (s, r, _, _) = batch(sender, receiver, &ones, &mut rng);
    assert_correlated(&s, &r, &ones, delta);
}

// ---------------------------------------------------------------- random and chosen OT

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn random_ot_from_cot() {
    let mut rng = Csprng::from_seed([20; 32]);
    let delta = garbling_delta(&mut rng);
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let choices = random_bits(&mut rng, 500);
    let (s, r, _, _) = batch(sender, receiver, &choices, &mut rng);
    let zero_labels = s.zero_labels().to_vec();
    let pairs = s.into_random_ot();
    let got = r.into_random_ot();
    for (j, ((pair, g), &b)) in pairs.iter().zip(&got).zip(&choices).enumerate() {
        assert_eq!(pair[usize::from(b)], *g);
        assert_ne!(pair[usize::from(!b)], *g);
        // Hashing removed the correlation.
        assert_ne!(pair[0] ^ pair[1], delta);
        assert_ne!(pair[0], zero_labels[j]);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn chosen_ot_with_and_without_derandomisation() {
    let mut rng = Csprng::from_seed([21; 32]);
    let delta = garbling_delta(&mut rng);
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let n = 777;
    let messages: Vec<[Block; 2]> = (0..n).map(|_| [rng.block(), rng.block()]).collect();

    // Choices fixed at extension time.
    let choices = random_bits(&mut rng, n);
    let (s, r, sender, receiver) = batch(sender, receiver, &choices, &mut rng);
    let payload =
        SenderMessages::from_bytes(&s.send_chosen(&messages).unwrap().to_bytes()).unwrap();
    let got = r.receive_chosen(&payload).unwrap();
    for ((m, g), &b) in messages.iter().zip(&got).zip(&choices) {
        assert_eq!(m[usize::from(b)], *g);
    }

    // Random choices offline, real choices online (Beaver derandomisation).
    let (matrix, receiver) = receiver.extend_random(n, &mut rng).unwrap();
    let (challenge, sender) = sender.receive_extend(matrix, &mut rng).unwrap();
    let (response, mut r, _) = receiver.receive_challenge(challenge);
    let (mut s, _) = sender.receive_check(response).unwrap();
    let offline = r.choices().to_vec();
    assert_correlated(&s, &r, &offline, delta);
    assert!(offline.iter().any(|b| *b) && offline.iter().any(|b| !*b));
    let online = random_bits(&mut rng, n);
    let d = r.derandomize(&online).unwrap();
    let d = ReceiverDerandomize::from_bytes(&d.to_bytes()).unwrap();
    s.derandomize(&d).unwrap();
    assert_correlated(&s, &r, &online, delta);
    let got = r
        .receive_chosen(&s.send_chosen(&messages).unwrap())
        .unwrap();
    for ((m, g), &b) in messages.iter().zip(&got).zip(&online) {
        assert_eq!(m[usize::from(b)], *g);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn chosen_ot_rejects_mismatched_batches() {
    let mut rng = Csprng::from_seed([22; 32]);
    let delta = garbling_delta(&mut rng);
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let (s1, _r1, sender, receiver) = batch(sender, receiver, &[true; 4], &mut rng);
    let (_s2, r2, _, _) = batch(sender, receiver, &[false; 4], &mut rng);
    let err = s1.clone().send_chosen(&[[Block::ZERO; 2]; 3]).unwrap_err();
    assert!(matches!(
        err,
        OtError::CountMismatch {
            expected: 4,
            got: 3,
            ..
        }
    ));
    let payload = s1.send_chosen(&[[Block::ZERO; 2]; 4]).unwrap();
    let err = r2.receive_chosen(&payload).unwrap_err();
    assert!(matches!(
        err,
        OtError::IndexMismatch {
            expected: 4,
            got: 0,
            ..
        }
    ));
}

// ---------------------------------------------------------------- KOS check

/// Runs one batch with a tampering hook on the matrix bytes and on the response bytes.
fn tampered(
    seed: u8,
    delta: Block,
    n: usize,
    tamper_matrix: impl FnOnce(&mut Vec<u8>),
    tamper_response: impl FnOnce(&mut Vec<u8>),
) -> Result<(), OtError> {
    let mut rng = Csprng::from_seed([seed; 32]);
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let choices = random_bits(&mut rng, n);
    let mut bytes = Vec::new();
    let receiver = receiver
        .extend_into(Zeroizing::new(choices), &mut rng, &mut bytes)
        .unwrap();
    tamper_matrix(&mut bytes);
    let (challenge, sender) = sender.receive_extend(ExtendMatrix::from_bytes(&bytes)?, &mut rng)?;
    let (response, _, _) = receiver.receive_challenge(challenge);
    let mut bytes = response.to_bytes();
    tamper_response(&mut bytes);
    sender
        .receive_check(CheckResponse::from_bytes(&bytes)?)
        .map(|_| ())
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kos_check_rejects_tampered_matrix() {
    let n = 1000;
    let col_bytes = (n + 256usize).div_ceil(128) * 128 / 8;
    // Δ with bit 5 set and bit 6 clear.
    let delta = Block::from_u128(0xdead_beef_0123_4567_89ab_cdef_0000_0021);
    assert!(tampered(30, delta, n, |_| {}, |_| {}).is_ok());
    for row in [0usize, 17, n - 1, n + 100] {
        // Column 5 feeds the sender's q (Δ_5 = 1): any flipped bit is caught.
        let err = tampered(
            31,
            delta,
            n,
            |m| m[16 + 5 * col_bytes + row / 8] ^= 1 << (row % 8),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(err, OtError::ConsistencyCheckFailed { count: n });
    }
    // Column 6 (Δ_6 = 0) is ignored by the sender: the flip passes. This is KOS's inherent
    // selective-failure leak — one guessed bit of Δ per deviating column, at the risk of abort.
    assert!(tampered(32, delta, n, |m| m[16 + 6 * col_bytes] ^= 1, |_| {}).is_ok());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kos_check_rejects_tampered_response() {
    let mut rng = Csprng::from_seed([33; 32]);
    let delta = garbling_delta(&mut rng);
    for byte in [0usize, 15, 16, 31] {
        let err = tampered(34, delta, 200, |_| {}, |r| r[byte] ^= 0x80).unwrap_err();
        assert_eq!(err, OtError::ConsistencyCheckFailed { count: 200 });
    }
}

// ---------------------------------------------------------------- malformed input

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn malformed_messages_are_rejected() {
    let mut rng = Csprng::from_seed([40; 32]);
    let (sender, receiver) = ready_pair(Block::ONE, &mut rng);
    let (matrix, _) = receiver.extend(&[true; 10], &mut rng).unwrap();
    let bytes = matrix.to_bytes();
    assert_eq!(bytes.len(), 16 + 128 * 384 / 8);
    assert!(matches!(
        ExtendMatrix::from_bytes(&bytes[..15]),
        Err(OtError::Length {
            expected: 16,
            got: 15,
            ..
        })
    ));
    assert!(matches!(
        ExtendMatrix::from_bytes(&bytes[..bytes.len() - 1]),
        Err(OtError::NotMultiple { .. })
    ));
    assert!(matches!(
        ExtendMatrix::from_bytes(&bytes[..16]),
        Err(OtError::NotMultiple { got: 0, .. })
    ));
    let mut big = bytes.clone();
    big[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        ExtendMatrix::from_bytes(&big),
        Err(OtError::TooManyTransfers { .. })
    ));
    // A part past the batch's end (10 transfers: 3 words of rows), or starting at a huge word.
    for first in [1u64, 3, u64::MAX / 64, u64::MAX] {
        let mut late = bytes.clone();
        late[8..16].copy_from_slice(&first.to_le_bytes());
        assert!(
            matches!(
                ExtendMatrix::from_bytes(&late),
                Err(OtError::PartOutside { .. })
            ),
            "first word {first}"
        );
    }
    // 200 transfers have 512 rows: these 384 parse as the first part of such a batch, and the
    // check is refused until the rest has come.
    let mut other = bytes.clone();
    other[..8].copy_from_slice(&200u64.to_le_bytes());
    let part = ExtendMatrix::from_bytes(&other).unwrap();
    assert_eq!((part.count(), part.first_row(), part.rows()), (200, 0, 384));
    assert!(matches!(
        sender.receive_extend(part, &mut rng),
        Err(OtError::Incomplete {
            got: 384,
            rows: 512
        })
    ));

    assert!(matches!(
        CheckChallenge::from_bytes(&[0; 31]),
        Err(OtError::Length {
            expected: 32,
            got: 31,
            ..
        })
    ));
    assert!(matches!(
        CheckResponse::from_bytes(&[0; 33]),
        Err(OtError::Length {
            expected: 32,
            got: 33,
            ..
        })
    ));
    assert!(matches!(
        SenderMessages::from_bytes(&[0; 15]),
        Err(OtError::Length { .. })
    ));
    let mut sm = vec![0u8; 16 + 64];
    sm[8] = 3; // announces 3 transfers, carries 2
    assert!(matches!(
        SenderMessages::from_bytes(&sm),
        Err(OtError::Length {
            expected: 112,
            got: 80,
            ..
        })
    ));
    let mut d = vec![0u8; 17];
    d[8] = 3; // 3 flips in one byte; bit 3 set is non-canonical
    d[16] = 0b1000;
    assert!(matches!(
        ReceiverDerandomize::from_bytes(&d),
        Err(OtError::NonZeroPadding { .. })
    ));
    d[16] = 0b101;
    assert_eq!(
        ReceiverDerandomize::from_bytes(&d).unwrap().to_bytes(),
        d,
        "canonical encodings round-trip"
    );

    // The extension needs exactly 128 base OTs.
    let (setup, _) = kos::Receiver::new().setup(&mut rng);
    let (short, _) = chou_orlandi::Receiver::new()
        .receive_setup(setup)
        .choose(&[true; 127], &mut rng);
    let (_, receiver) = kos::Receiver::new().setup(&mut rng);
    assert!(matches!(
        receiver.receive_base_choices(short),
        Err(OtError::CountMismatch {
            expected: 128,
            got: 127,
            ..
        })
    ));
    assert_eq!(
        kos::Sender::new(Block::ZERO).unwrap_err(),
        OtError::ZeroDelta
    );
}

/// A matrix sent in parts gives the same correlated OTs as one sent whole; parts out of order,
/// of another batch, or a challenge asked for early are refused.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn matrix_parts_give_the_same_correlated_ots() {
    let mut rng = Csprng::from_seed([41; 32]);
    let delta = garbling_delta(&mut rng);
    let n = 5000;
    let choices = random_bits(&mut rng, n);
    let (sender, receiver) = ready_pair(delta, &mut rng);
    let mut next = receiver
        .extend_in_parts(Zeroizing::new(choices.clone()), &mut rng)
        .unwrap();
    let mut sender = sender.expect_extension(n).unwrap();
    let mut parts = Vec::new();
    let receiver = loop {
        let mut out = Vec::new();
        let step = next.next_part(1024, &mut out);
        parts.push(ExtendMatrix::from_bytes(&out).unwrap());
        match step {
            kos::Extension::More(r) => next = r,
            kos::Extension::Done(r) => break r,
        }
    };
    // (5000 + 256) rows round up to 5376: five parts of 1024 rows and one of 256.
    assert_eq!(parts.len(), 6);
    assert_eq!(sender.rows_left(), 5376);
    assert!(matches!(
        sender.receive_part(parts[1].clone()),
        Err(OtError::PartOrder {
            expected: 0,
            got: 1024
        })
    ));
    let mut parts = parts.into_iter();
    sender.receive_part(parts.next().unwrap()).unwrap();
    let mut other = Vec::new();
    let _ = ready_pair(delta, &mut rng)
        .1
        .extend_in_parts(Zeroizing::new(vec![true; 10]), &mut rng)
        .unwrap()
        .next_part(1024, &mut other);
    assert!(matches!(
        sender.receive_part(ExtendMatrix::from_bytes(&other).unwrap()),
        Err(OtError::CountMismatch { got: 10, .. })
    ));
    for part in parts {
        sender.receive_part(part).unwrap();
    }
    assert_eq!(sender.rows_left(), 0);
    let (challenge, sender) = sender.challenge(&mut rng).unwrap();
    let (response, mut seeds) = receiver.receive_challenge_regenerating(challenge);
    let (s_out, _) = sender.receive_check(response).unwrap();
    let labels = seeds.labels(0..n).unwrap();
    for (j, (&t, &q)) in labels.iter().zip(s_out.zero_labels()).enumerate() {
        assert_eq!(t, q ^ delta.select(choices[j]), "transfer {j}");
    }
}

// ---------------------------------------------------------------- building blocks (also in wasm32)

/// Bitwise multiply-and-reduce in GF(2^128) mod x^128 + x^7 + x^2 + x + 1: the definition.
fn gf128_mul_reference(a: u128, b: u128) -> u128 {
    let (mut r, mut a) = (0u128, a);
    for i in 0..128 {
        r ^= a & (b >> i & 1).wrapping_neg();
        a = (a << 1) ^ (0x87 & (a >> 127).wrapping_neg());
    }
    r
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn gf128_and_clmul_match_reference() {
    use cryptonas_ot::gf128;
    let mut rng = Csprng::from_seed([50; 32]);
    for _ in 0..300 {
        let (a, b) = (rng.block(), rng.block());
        assert_eq!(
            gf128::mul(a, b).to_u128(),
            gf128_mul_reference(a.to_u128(), b.to_u128())
        );
        let (h, l) = gf128::clmul(a, b);
        assert_eq!(gf128::reduce(h, l), gf128::mul(a, b));
        let (x, y) = (rng.u64(), rng.u64());
        let schoolbook = (0..64).fold(0u128, |acc, i| {
            acc ^ (u128::from(x) << i) & (u128::from(y) >> i & 1).wrapping_neg()
        });
        assert_eq!(gf128::clmul64(x, y), schoolbook);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn transpose128_matches_definition() {
    let mut rng = Csprng::from_seed([51; 32]);
    let mut m = [0u128; 128];
    for w in m.iter_mut() {
        *w = rng.block().to_u128();
    }
    let orig = m;
    cryptonas_ot::transpose128(&mut m);
    for (r, row) in m.iter().enumerate() {
        for (c, col) in orig.iter().enumerate() {
            assert_eq!(row >> c & 1, col >> r & 1);
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn plain_chosen_ot_with_a_random_delta() {
    let mut rng = Csprng::from_seed([23; 32]);
    let (setup, receiver) = kos::Receiver::new().setup(&mut rng);
    let (choices, sender) =
        kos::Sender::with_random_delta(&mut rng).receive_base_setup(setup, &mut rng);
    let receiver = receiver.receive_base_choices(choices).unwrap();
    assert!(sender.delta().lsb());
    let bits = random_bits(&mut rng, 64);
    let messages: Vec<[Block; 2]> = (0..64).map(|_| [rng.block(), rng.block()]).collect();
    let (s, r, _, _) = batch(sender, receiver, &bits, &mut rng);
    let got = r
        .receive_chosen(&s.send_chosen(&messages).unwrap())
        .unwrap();
    for ((m, g), &b) in messages.iter().zip(&got).zip(&bits) {
        assert_eq!(m[usize::from(b)], *g);
    }
}

/// Every decoder returns `Ok` or `Err` on arbitrary bytes, truncations and extensions of valid
/// messages — never panics.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn decoders_never_panic_on_garbage() {
    let mut rng = Csprng::from_seed([70; 32]);
    let (sender, receiver) = ready_pair(Block::ONE, &mut rng);
    let choices = random_bits(&mut rng, 3);
    let (matrix, receiver) = receiver.extend(&choices, &mut rng).unwrap();
    let (challenge, sender) = sender.receive_extend(matrix.clone(), &mut rng).unwrap();
    let (response, mut r, _) = receiver.receive_challenge(challenge.clone());
    let (s, _) = sender.receive_check(response.clone()).unwrap();
    let derand = r.derandomize(&[true, true, false]).unwrap();
    let payload = s.send_chosen(&[[Block::ONES; 2]; 3]).unwrap();
    let valid: Vec<Vec<u8>> = vec![
        matrix.to_bytes(),
        challenge.to_bytes(),
        response.to_bytes(),
        derand.to_bytes(),
        payload.to_bytes(),
    ];
    let decode_all = |b: &[u8]| {
        let _ = chou_orlandi::SenderSetup::from_bytes(b);
        let _ = chou_orlandi::ReceiverChoices::from_bytes(b);
        let _ = ExtendMatrix::from_bytes(b);
        let _ = CheckChallenge::from_bytes(b);
        let _ = CheckResponse::from_bytes(b);
        let _ = ReceiverDerandomize::from_bytes(b);
        let _ = SenderMessages::from_bytes(b);
    };
    for v in &valid {
        for len in (0..v.len()).step_by(1 + v.len() / 97) {
            decode_all(&v[..len]);
        }
        decode_all(&[v.as_slice(), &[0, 1, 2]].concat());
    }
    for _ in 0..300 {
        let len = (rng.u64() % 200) as usize;
        let mut b: Vec<u8> = rng
            .blocks(len.div_ceil(16))
            .iter()
            .flat_map(|x| x.0)
            .collect();
        b.truncate(len);
        // Small counts in the headers so the length checks, not the size limit, are exercised.
        if b.len() >= 16 {
            b[1..8].fill(0);
            b[9..16].fill(0);
        }
        decode_all(&b);
    }
}
