//! Shared helpers of the integration tests: random tensors and one full offline round.

#![allow(dead_code, unreachable_pub)]

use cryptonas_crypto::Csprng;
use cryptonas_he::{
    conv_ring, ClientKeys, ClientStage, HeParams, IntConv, MasksMsg, PublicKey, PublicKeyMsg,
    ResponseMsg, ServerStage,
};
use rand_core::RngCore;

pub fn conv(c: usize, o: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> IntConv {
    IntConv {
        in_channels: c,
        out_channels: o,
        in_height: h,
        in_width: w,
        kernel_h: k,
        kernel_w: k,
        stride: s,
        padding: p,
    }
}

pub fn rand_weights(rng: &mut Csprng, n: usize, bound: i64) -> Vec<i64> {
    (0..n)
        .map(|_| (rng.next_u64() % (2 * bound as u64 + 1)) as i64 - bound)
        .collect()
}

pub fn rand_ring(rng: &mut Csprng, n: usize, k: u32) -> Vec<u64> {
    let mask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    (0..n).map(|_| rng.next_u64() & mask).collect()
}

/// Σ_m conv_ring(term_m, r_m) mod 2^k.
pub fn reference(terms: &[(IntConv, Vec<i64>)], masks: &[Vec<u64>], k: u32) -> Vec<u64> {
    let mask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    let mut acc = vec![0u64; terms[0].0.output_len()];
    for ((c, w), r) in terms.iter().zip(masks) {
        for (a, v) in acc.iter_mut().zip(conv_ring(c, w, r, k).unwrap()) {
            *a = a.wrapping_add(v) & mask;
        }
    }
    acc
}

/// Runs keygen, encrypt, respond, decrypt through the byte format; returns (client, server) shares.
pub fn run_stage(
    k: u32,
    terms: &[(IntConv, Vec<i64>)],
    masks: &[Vec<u64>],
    rng: &mut Csprng,
) -> (Vec<u64>, Vec<u64>) {
    let params = HeParams::new(k).unwrap();
    let keys = ClientKeys::generate(&params, rng).unwrap();
    let pk_bytes = keys.public_key().to_bytes(&params);
    let pk = PublicKey::from_msg(
        &params,
        &PublicKeyMsg::from_bytes(&params, &pk_bytes).unwrap(),
    )
    .unwrap();
    let geoms: Vec<IntConv> = terms.iter().map(|(c, _)| *c).collect();
    let client = ClientStage::new(&params, &geoms).unwrap();
    let server = ServerStage::new(&params, terms).unwrap();
    let refs: Vec<&[u64]> = masks.iter().map(|m| m.as_slice()).collect();
    let (state, msg) = client.encrypt_masks(&keys, &refs, rng).unwrap();
    let msg = MasksMsg::from_bytes(&params, &msg.to_bytes(&params)).unwrap();
    let (s, resp) = server.respond(&pk, &msg, rng).unwrap();
    let bytes = resp.to_bytes(&params);
    let resp = ResponseMsg::from_bytes(&params, &bytes).unwrap();
    let client_share = state.decrypt(&keys, &resp).unwrap();
    // Decrypting the bytes a ciphertext at a time gives the same share; cut bytes are refused.
    assert_eq!(state.decrypt_bytes(&keys, &bytes).unwrap(), client_share);
    assert!(state
        .decrypt_bytes(&keys, &bytes[..bytes.len() - 1])
        .is_err());
    (client_share, s)
}

/// Checks client + server share == reference for random masks.
pub fn check_stage(k: u32, terms: &[(IntConv, Vec<i64>)], rng: &mut Csprng) {
    let masks: Vec<Vec<u64>> = terms
        .iter()
        .map(|(c, _)| rand_ring(rng, c.input_len(), k))
        .collect();
    let (cs, ss) = run_stage(k, terms, &masks, rng);
    let want = reference(terms, &masks, k);
    let mask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    let got: Vec<u64> = cs
        .iter()
        .zip(&ss)
        .map(|(a, b)| a.wrapping_add(*b) & mask)
        .collect();
    assert_eq!(got.len(), want.len());
    let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(bad, 0, "{bad} of {} outputs wrong", want.len());
    // The client's share alone must not be the result (s is random).
    assert_ne!(cs, want);
}
