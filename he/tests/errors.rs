//! Bad input gives a clear `HeError`, never a panic.

mod common;

use common::{conv, rand_ring, rand_weights};
use cryptonas_crypto::Csprng;
use cryptonas_he::{
    ClientKeys, ClientStage, HeError, HeParams, MasksMsg, PublicKey, PublicKeyMsg, ResponseMsg,
    ServerStage,
};
use rand_core::RngCore;

struct Setup {
    params: HeParams,
    keys: ClientKeys,
    client: ClientStage,
    server: ServerStage,
    masks: Vec<u64>,
    rng: Csprng,
}

fn setup() -> Setup {
    let mut rng = Csprng::from_seed([77; 32]);
    let params = HeParams::new(32).unwrap();
    let keys = ClientKeys::generate(&params, &mut rng).unwrap();
    let c = conv(2, 2, 4, 4, 3, 1, 1);
    let w = rand_weights(&mut rng, c.weight_len(), 5);
    let client = ClientStage::new(&params, &[c]).unwrap();
    let server = ServerStage::new(&params, &[(c, w)]).unwrap();
    let masks = rand_ring(&mut rng, c.input_len(), 32);
    Setup {
        params,
        keys,
        client,
        server,
        masks,
        rng,
    }
}

#[test]
fn noise_budget_refuses_huge_weights() {
    let params = HeParams::new(32).unwrap();
    let c = conv(8, 8, 8, 8, 3, 1, 1);
    let w = vec![1i64 << 30; c.weight_len()];
    let err = ServerStage::new(&params, &[(c, w)]).unwrap_err();
    match err {
        HeError::NoiseBudget {
            needed_bits,
            available_bits,
            flood_bits,
            stat_bits,
        } => {
            assert!(needed_bits > available_bits as f64);
            assert_eq!(flood_bits - stat_bits, available_bits);
        }
        e => panic!("unexpected {e}"),
    }
    // The same weights are fine once they are small: the check is about ‖w‖₁, not geometry.
    let w = vec![1i64 << 10; c.weight_len()];
    let s = ServerStage::new(&params, &[(c, w)]).unwrap();
    assert!(s.noise().stat_security_bits >= 40.0);
}

#[test]
fn geometry_and_input_errors() {
    let params = HeParams::new(32).unwrap();
    assert_eq!(
        ClientStage::new(&params, &[]).unwrap_err(),
        HeError::EmptyStage
    );
    let a = conv(2, 2, 8, 8, 3, 1, 1);
    let b = conv(2, 3, 8, 8, 3, 1, 1);
    assert!(matches!(
        ClientStage::new(&params, &[a, b]),
        Err(HeError::TermShape { term: 1, .. })
    ));
    assert!(matches!(
        ServerStage::new(&params, &[(a, vec![0; 3])]),
        Err(HeError::Length {
            what: "weights",
            ..
        })
    ));
    let mut s = setup();
    let short = vec![0u64; 3];
    assert!(matches!(
        s.client.encrypt_masks(&s.keys, &[&short], &mut s.rng),
        Err(HeError::Length { what: "mask", .. })
    ));
    let mut big = s.masks.clone();
    big[5] = 1 << 40;
    assert!(matches!(
        s.client.encrypt_masks(&s.keys, &[&big], &mut s.rng),
        Err(HeError::RingValue { index: 5, .. })
    ));
    assert!(matches!(
        s.client.encrypt_masks(&s.keys, &[], &mut s.rng),
        Err(HeError::Length { .. })
    ));
}

#[test]
fn malformed_messages_are_rejected() {
    let mut s = setup();
    let p = &s.params;
    let (state, msg) = s
        .client
        .encrypt_masks(&s.keys, &[&s.masks], &mut s.rng)
        .unwrap();
    let bytes = msg.to_bytes(p);
    assert_eq!(MasksMsg::from_bytes(p, &bytes).unwrap(), msg);
    // Truncations and a trailing byte.
    for cut in [0, 4, 8, 11, 12, 40, bytes.len() - 1] {
        assert!(matches!(
            MasksMsg::from_bytes(p, &bytes[..cut]),
            Err(HeError::Malformed { .. })
        ));
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        MasksMsg::from_bytes(p, &long),
        Err(HeError::Malformed { .. })
    ));
    // Wrong magic, version and kind.
    for (i, v) in [(0usize, b'X'), (4, 9), (5, 3)] {
        let mut b = bytes.clone();
        b[i] = v;
        assert!(matches!(
            MasksMsg::from_bytes(p, &b),
            Err(HeError::Malformed { .. })
        ));
    }
    // A message for other parameters.
    let mut b = bytes.clone();
    b[6] = 31;
    assert!(matches!(
        MasksMsg::from_bytes(p, &b),
        Err(HeError::ParamMismatch { .. })
    ));
    // A residue that is not reduced (all ones in the first packed value).
    let mut b = bytes.clone();
    for x in &mut b[12 + 32..12 + 32 + 8] {
        *x = 0xff;
    }
    assert!(matches!(
        MasksMsg::from_bytes(p, &b),
        Err(HeError::Malformed { .. })
    ));
    // A count far beyond the message.
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        MasksMsg::from_bytes(p, &b),
        Err(HeError::Malformed { .. })
    ));
    // Feeding one kind of message to another parser.
    let pk_bytes = s.keys.public_key().to_bytes(p);
    assert!(matches!(
        MasksMsg::from_bytes(p, &pk_bytes),
        Err(HeError::Malformed { .. })
    ));
    assert!(matches!(
        ResponseMsg::from_bytes(p, &bytes),
        Err(HeError::Malformed { .. })
    ));
    assert!(matches!(
        PublicKeyMsg::from_bytes(p, &bytes),
        Err(HeError::Malformed { .. })
    ));

    // Random corruption never panics.
    let pk = PublicKey::from_msg(p, s.keys.public_key()).unwrap();
    let (_, resp) = s.server.respond(&pk, &msg, &mut s.rng).unwrap();
    let rbytes = resp.to_bytes(p);
    for _ in 0..300 {
        let mut b = rbytes.clone();
        let i = (s.rng.next_u64() as usize) % b.len();
        b[i] ^= 1 << (s.rng.next_u64() % 8);
        let cut = (s.rng.next_u64() as usize) % (b.len() + 1);
        if let Ok(r) = ResponseMsg::from_bytes(p, &b[..cut]) {
            let _ = state.decrypt(&s.keys, &r);
        }
    }
}

#[test]
fn mis_sized_messages_are_rejected() {
    let mut s = setup();
    let p = s.params.clone();
    let pk = PublicKey::from_msg(&p, s.keys.public_key()).unwrap();
    let (state, msg) = s
        .client
        .encrypt_masks(&s.keys, &[&s.masks], &mut s.rng)
        .unwrap();
    // Masks of another stage (more ciphertexts) for this server stage.
    let other = ClientStage::new(&p, &[conv(40, 2, 32, 32, 3, 1, 1)]).unwrap();
    let m = rand_ring(&mut s.rng, 40 * 32 * 32, 32);
    let (_, big) = other.encrypt_masks(&s.keys, &[&m], &mut s.rng).unwrap();
    assert!(big.len() != msg.len());
    assert!(matches!(
        s.server.respond(&pk, &big, &mut s.rng),
        Err(HeError::MessageShape { .. })
    ));
    // A response with one ciphertext too many for the client's plan.
    let (_, resp) = s.server.respond(&pk, &msg, &mut s.rng).unwrap();
    let mut bytes = resp.to_bytes(&p);
    let count = resp.len();
    let per_ct = (bytes.len() - 12) / count;
    let extra = bytes[12..12 + per_ct].to_vec();
    bytes.extend_from_slice(&extra);
    bytes[8..12].copy_from_slice(&((count + 1) as u32).to_le_bytes());
    let resp2 = ResponseMsg::from_bytes(&p, &bytes).unwrap();
    assert!(matches!(
        state.decrypt(&s.keys, &resp2),
        Err(HeError::MessageShape { .. })
    ));
    // Keys and messages of another ring size do not mix.
    let p16 = HeParams::new(16).unwrap();
    assert!(matches!(
        ResponseMsg::from_bytes(&p16, &resp.to_bytes(&p)),
        Err(HeError::ParamMismatch { .. })
    ));
}

#[test]
fn keys_of_other_parameters_are_refused() {
    let mut s = setup();
    let p16 = HeParams::new(16).unwrap();
    let keys16 = ClientKeys::generate(&p16, &mut s.rng).unwrap();
    // Client stage planned for k = 32, keys for k = 16 (same N).
    assert!(matches!(
        s.client.encrypt_masks(&keys16, &[&s.masks], &mut s.rng),
        Err(HeError::ParamMismatch { .. })
    ));
    let (state, msg) = s
        .client
        .encrypt_masks(&s.keys, &[&s.masks], &mut s.rng)
        .unwrap();
    let pk16 = PublicKey::from_msg(&p16, keys16.public_key()).unwrap();
    assert!(matches!(
        s.server.respond(&pk16, &msg, &mut s.rng),
        Err(HeError::ParamMismatch { .. })
    ));
    let pk = PublicKey::from_msg(&s.params, s.keys.public_key()).unwrap();
    let (_, resp) = s.server.respond(&pk, &msg, &mut s.rng).unwrap();
    assert!(matches!(
        state.decrypt(&keys16, &resp),
        Err(HeError::ParamMismatch { .. })
    ));
}
