//! The constant-time software backends (`AesBackend::Bitsliced`, `AesBackend::VecPerm`) against
//! the `aes` crate reference, through the public API. Natively they run their portable lanes; in
//! WebAssembly with `simd128` their `v128` lanes, in headless Chromium:
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown -p cryptonas-crypto --tests`
//! (and, for `VecPerm`'s `i8x16.relaxed_swizzle`, once more with `RUSTFLAGS='--cfg
//! getrandom_backend="wasm_js" -C target-feature=+simd128,+relaxed-simd'`).

use cryptonas_crypto::{AesBackend, Block, Csprng, FixedKeyAes};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// The software backends under test.
const SOFTWARE: [AesBackend; 2] = [AesBackend::Bitsliced, AesBackend::VecPerm];

/// The browser build detects the vector-permute backend with `relaxed-simd`, else the bitsliced
/// one with `simd128`; natively neither is chosen.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn detected_backend() {
    let relaxed = cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd"));
    let simd = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));
    assert_eq!(AesBackend::detected() == AesBackend::VecPerm, relaxed);
    assert_eq!(
        AesBackend::detected() == AesBackend::Bitsliced,
        simd && !relaxed
    );
    assert!(SOFTWARE.iter().all(|b| b.is_supported()));
}

/// The reference and `backend` under one key.
fn pair(key: [u8; 16], backend: AesBackend) -> (FixedKeyAes, FixedKeyAes) {
    (
        FixedKeyAes::with_backend(key, AesBackend::AesCrate).unwrap(),
        FixedKeyAes::with_backend(key, backend).unwrap(),
    )
}

/// FIPS-197 Appendix C.1 in every slot of a batch, for every length up to two batches.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fips197_every_length() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let pt = Block(std::array::from_fn(|i| (i as u8) * 0x11));
    let ct = Block([
        0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5,
        0x5a,
    ]);
    for backend in SOFTWARE {
        let (_, bs) = pair(key, backend);
        for n in 0..=17 {
            let mut v = vec![pt; n];
            bs.permute_many(&mut v);
            assert!(v.iter().all(|b| *b == ct), "{backend:?} n={n}");
        }
    }
}

/// Random keys, blocks and every batch size (ragged tails included) against the `aes` crate;
/// each block differs, so a slot mix-up in the (un)bitslicing shows.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn random_keys_and_lengths_match_aes_crate() {
    let mut rng = Csprng::from_seed([9; 32]);
    for (backend, _) in SOFTWARE.into_iter().flat_map(|b| [b; 8]).zip(0..) {
        let (reference, bs) = pair(rng.block().0, backend);
        for n in (0..=40).chain([63, 64, 65, 128, 255, 1000]) {
            let xs = rng.blocks(n);
            let mut got = xs.clone();
            bs.permute_many(&mut got);
            let mut expect = xs.clone();
            reference.permute_many(&mut expect);
            assert_eq!(got, expect, "{backend:?} n={n}");
            for (x, e) in xs.iter().zip(&expect) {
                assert_eq!(reference.permute(*x), *e);
            }
        }
    }
}

/// The half-gates batch kernels on the bitsliced backend equal the reference backend's, for chunk
/// lengths on both sides of the reference's 64-gate sub-chunks.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn half_gates_batches_match_reference() {
    let mut rng = Csprng::from_seed([13; 32]);
    let u = |rng: &mut Csprng, n: usize| -> Vec<u128> {
        rng.blocks(n).iter().map(|b| b.to_u128()).collect()
    };
    for (backend, n) in SOFTWARE
        .into_iter()
        .flat_map(|b| [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200].map(|n| (b, n)))
    {
        let (reference, bs) = pair(rng.block().0, backend);
        let d = rng.block().to_u128() | 1;
        let t: Vec<u128> = u(&mut rng, n).iter().map(|t| t & !1).collect();
        let (a, b) = (u(&mut rng, n), u(&mut rng, n));
        let (mut out_r, mut tab_r) = (vec![0u128; n], vec![0u128; 2 * n]);
        let (mut out_b, mut tab_b) = (vec![0u128; n], vec![0u128; 2 * n]);
        reference.garble_and_batch(d, &t, &a, &b, &mut out_r, &mut tab_r);
        bs.garble_and_batch(d, &t, &a, &b, &mut out_b, &mut tab_b);
        assert_eq!(
            (&out_b, &tab_b),
            (&out_r, &tab_r),
            "{backend:?} garble n={n}"
        );
        let (xa, xb) = (u(&mut rng, n), u(&mut rng, n));
        let (mut e_r, mut e_b) = (vec![0u128; n], vec![0u128; n]);
        reference.eval_and_batch(&t, &xa, &xb, &mut e_r, &tab_r);
        bs.eval_and_batch(&t, &xa, &xb, &mut e_b, &tab_r);
        assert_eq!(e_b, e_r, "{backend:?} evaluate n={n}");
    }
}

/// `tccr_many` (π(x) kept bitsliced or in registers between the two encryptions) against `tccr`
/// on the reference.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn tccr_many_matches_reference() {
    let mut rng = Csprng::from_seed([17; 32]);
    for (backend, n) in SOFTWARE
        .into_iter()
        .flat_map(|b| (0..=17).chain([64, 129]).map(move |n| (b, n)))
    {
        let (reference, bs) = pair(rng.block().0, backend);
        let xs = rng.blocks(n);
        let ts = rng.blocks(n);
        let mut got = xs.clone();
        bs.tccr_many(&ts, &mut got);
        let expect: Vec<Block> = xs
            .iter()
            .zip(&ts)
            .map(|(x, t)| reference.tccr(*t, *x))
            .collect();
        assert_eq!(got, expect, "{backend:?} n={n}");
    }
}
