//! The garbled top-k (the protocol's `class` and `top-k` output policies) against its plaintext
//! reference: random shares for several rings and class counts, with ties planted. Runs natively
//! and in headless Chromium (wasm-bindgen-test).

use cryptonas_crypto::{Block, Csprng};
use cryptonas_gc::{ActiveLabels, Delta, Evaluator, TopKCircuit, TweakDomain};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn mask(k: u32) -> u64 {
    if k == 64 {
        u64::MAX
    } else {
        (1 << k) - 1
    }
}

/// Garbles `instances` top-k instances on the concatenated shares, evaluates with the evaluator's
/// labels computed from outside zero-labels (as the correlated OT gives them), decodes.
fn run(c: &TopKCircuit, a: &[u64], b: &[u64], instances: usize, rng: &mut Csprng) -> Vec<u64> {
    let k = c.k() as usize;
    let domain = TweakDomain {
        session_id: rng.u64(),
        first_instance: 7,
    };
    let delta = Delta::random(rng);
    let zero = rng.blocks(b.len() * k);
    let d = delta.as_block();
    let active: Vec<Block> = zero
        .iter()
        .enumerate()
        .map(|(j, z)| *z ^ d.select((b[j / k] >> (j % k)) & 1 == 1))
        .collect();
    let pi = cryptonas_crypto::FixedKeyAes::default();
    let g = c
        .garble_with_pi(&pi, delta, domain, instances, Some(&zero), rng)
        .unwrap();
    assert_eq!(
        g.tables.as_bytes().len(),
        16 + instances * c.circuit().and_count() * 32
    );
    let ga = c.encode_garbler(&g.encoder, a).unwrap();
    let eb = ActiveLabels::new(k * c.classes(), active).unwrap();
    let out = Evaluator::new(c.circuit(), domain)
        .with_pi(pi)
        .evaluate(&g.tables, &ga, &eb)
        .unwrap();
    c.decode(&out, &g.decoding).unwrap()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn garbled_top_k_matches_reference_on_random_shares_with_ties() {
    let mut rng = Csprng::from_seed([9; 32]);
    for k in [8u32, 16, 32, 64] {
        for (classes, top) in [
            (2usize, 1usize),
            (2, 2),
            (10, 1),
            (10, 3),
            (7, 7),
            (100, 1),
            (33, 5),
        ] {
            let c = TopKCircuit::new(k, classes, top).unwrap();
            let instances = 24;
            let mut a = Vec::new();
            let mut b = Vec::new();
            let mut want = Vec::new();
            for inst in 0..instances {
                // Logits: random, or drawn from a few values so that ties (and the extremes
                // −2^(k−1), 2^(k−1) − 1) are common.
                let x: Vec<u64> = (0..classes)
                    .map(|_| match inst % 3 {
                        0 => rng.u64() & mask(k),
                        1 => [0u64, 1, mask(k), 1 << (k - 1), mask(k) >> 1][rng.u64() as usize % 5],
                        _ => rng.u64() % 3,
                    })
                    .collect();
                let bi: Vec<u64> = (0..classes).map(|_| rng.u64() & mask(k)).collect();
                let ai: Vec<u64> = x
                    .iter()
                    .zip(&bi)
                    .map(|(v, s)| v.wrapping_sub(*s) & mask(k))
                    .collect();
                want.extend(c.reference(&ai, &bi).into_iter().map(|i| i as u64));
                a.extend(ai);
                b.extend(bi);
            }
            let got = run(&c, &a, &b, instances, &mut rng);
            assert_eq!(got, want, "k={k} classes={classes} top={top}");
        }
    }
}
