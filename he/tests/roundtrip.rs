//! The whole offline round (keygen, encrypt, respond, decrypt through bytes), natively and in
//! headless Chromium.

mod common;

use common::{check_stage, conv, rand_weights};
use cryptonas_crypto::Csprng;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn round_trip_k32_two_terms() {
    let mut r = Csprng::from_entropy().unwrap();
    let a = conv(3, 4, 8, 8, 3, 1, 1);
    let b = conv(2, 4, 16, 16, 1, 2, 0);
    let terms = vec![
        (a, rand_weights(&mut r, a.weight_len(), 255)),
        (b, rand_weights(&mut r, b.weight_len(), 255)),
    ];
    check_stage(32, &terms, &mut r);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn round_trip_k64_fc() {
    let mut r = Csprng::from_entropy().unwrap();
    let c = conv(4, 10, 4, 4, 4, 1, 0);
    let w = rand_weights(&mut r, c.weight_len(), 1 << 20);
    check_stage(64, &[(c, w)], &mut r);
}
