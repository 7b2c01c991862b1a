//! End-to-end correctness: decrypted client share + server share == Σ conv_ring, bit-exact.

mod common;

use common::{check_stage, conv, rand_weights};
use cryptonas_crypto::Csprng;

fn rng(tag: u8) -> Csprng {
    Csprng::from_seed([tag; 32])
}

#[test]
fn conv3x3_stride1_pad1() {
    let mut r = rng(1);
    let c = conv(3, 4, 8, 8, 3, 1, 1);
    let w = rand_weights(&mut r, c.weight_len(), 127);
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn conv5x5_pad2() {
    let mut r = rng(2);
    let c = conv(2, 3, 10, 10, 5, 1, 2);
    let w = rand_weights(&mut r, c.weight_len(), 127);
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn stride2_1x1_factorized_reduction_path1() {
    let mut r = rng(3);
    let c = conv(4, 5, 8, 8, 1, 2, 0);
    let w = rand_weights(&mut r, c.weight_len(), 127);
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn stride2_2x2_only_corner_weight_path2() {
    // Path 2 of factorized reduction: shift by one pixel then subsample == 2x2 s2 with only (1,1).
    let mut r = rng(4);
    let c = conv(3, 4, 8, 8, 2, 2, 0);
    let mut w = vec![0i64; c.weight_len()];
    for o in 0..4 {
        for ch in 0..3 {
            w[((o * 3 + ch) * 2 + 1) * 2 + 1] = rand_weights(&mut r, 1, 127)[0];
        }
    }
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn stride2_3x3_pad1_and_odd_sizes() {
    let mut r = rng(5);
    let c = conv(3, 2, 9, 7, 3, 2, 1);
    let w = rand_weights(&mut r, c.weight_len(), 127);
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn several_sources_concat_of_skips() {
    // Z = conv3x3(a) + conv1x1(b) + stride-2 1x1(c at twice the resolution) + 5x5(d).
    let mut r = rng(6);
    let t1 = conv(4, 6, 8, 8, 3, 1, 1);
    let t2 = conv(5, 6, 8, 8, 1, 1, 0);
    let t3 = conv(2, 6, 16, 16, 1, 2, 0);
    let t4 = conv(2, 6, 8, 8, 5, 1, 2);
    let terms: Vec<_> = [t1, t2, t3, t4]
        .into_iter()
        .map(|c| {
            let w = rand_weights(&mut r, c.weight_len(), 100);
            (c, w)
        })
        .collect();
    check_stage(32, &terms, &mut r);
}

#[test]
fn fully_connected_kernel_is_whole_input() {
    let mut r = rng(7);
    let c = conv(16, 10, 4, 4, 4, 1, 0);
    let w = rand_weights(&mut r, c.weight_len(), 127);
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn cnet1_shaped_stage_c8() {
    // 8x32x32 -> 8x32x32 3x3 conv plus a 1x1 skip term from another 8x32x32 tensor.
    let mut r = rng(8);
    let main = conv(8, 8, 32, 32, 3, 1, 1);
    let skip = conv(8, 8, 32, 32, 1, 1, 0);
    let terms = vec![
        (main, rand_weights(&mut r, main.weight_len(), 1 << 10)),
        (skip, rand_weights(&mut r, skip.weight_len(), 1 << 10)),
    ];
    check_stage(32, &terms, &mut r);
}

#[test]
fn other_ring_sizes() {
    let mut r = rng(9);
    for k in [8u32, 20, 40, 64] {
        let c = conv(3, 3, 6, 6, 3, 1, 1);
        let mut w = rand_weights(&mut r, c.weight_len(), 127);
        // Weights beyond 2^k must act mod 2^k.
        w[0] = (1i64 << 62) + 5;
        w[1] = -(1i64 << 40) - 3;
        check_stage(k, &[(c, w)], &mut r);
    }
}

#[test]
fn large_input_is_tiled() {
    // 66x66 padded input does not fit one N = 4096 ciphertext per channel: the plan must tile.
    let mut r = rng(10);
    let c = conv(2, 3, 64, 64, 3, 1, 1);
    let params = cryptonas_he::HeParams::new(32).unwrap();
    let plan = cryptonas_he::ClientStage::new(&params, &[c]).unwrap();
    let (ty, tx) = plan.plan().tiles();
    assert!(ty * tx > 1, "expected several tiles, got {ty}x{tx}");
    let w = rand_weights(&mut r, c.weight_len(), 127);
    check_stage(32, &[(c, w)], &mut r);
}

#[test]
fn random_geometries() {
    // Many shapes (strides 1..3, kernels 1..5, paddings 0..2, multi-term) hit many layouts.
    let mut r = rng(11);
    let mut u = |n: u64| (rand_core::RngCore::next_u64(&mut r) % n) as usize;
    let mut cases = Vec::new();
    for _ in 0..12 {
        let (o, s) = (1 + u(6), 1 + u(3));
        let (oh, ow) = (1 + u(9), 1 + u(9));
        let n_terms = 1 + u(3);
        let mut terms = Vec::new();
        for _ in 0..n_terms {
            let (k, p) = (1 + u(5), u(3));
            // Pick H so that (H + 2P − K)/S + 1 == oh (and likewise W), if possible.
            let h = (oh - 1) * s + k;
            let w = (ow - 1) * s + k;
            if h <= 2 * p || w <= 2 * p {
                continue;
            }
            terms.push(conv(1 + u(5), o, h - 2 * p, w - 2 * p, k, s, p));
        }
        if !terms.is_empty() {
            cases.push(terms);
        }
    }
    let mut r = rng(12);
    for terms in cases {
        let terms: Vec<_> = terms
            .into_iter()
            .map(|mut c| {
                c.kernel_w = c.kernel_h;
                let w = rand_weights(&mut r, c.weight_len(), 1000);
                (c, w)
            })
            .collect();
        check_stage(32, &terms, &mut r);
    }
}
