//! Client encrypt/decrypt time in headless Chromium for CNet1-shaped stages (printed to the console).
//! Run: `CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown -p cryptonas-he --test browser_timing -- --nocapture`

#![cfg(target_arch = "wasm32")]

mod common;

use common::{conv, rand_ring, rand_weights};
use cryptonas_crypto::Csprng;
use cryptonas_he::{ClientKeys, ClientStage, HeParams, PublicKey, ServerStage};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn client_timing_cnet1_layer_c14() {
    let mut rng = Csprng::from_entropy().unwrap();
    let params = HeParams::new(32).unwrap();
    let t0 = js_sys::Date::now();
    let keys = ClientKeys::generate(&params, &mut rng).unwrap();
    let t_key = js_sys::Date::now() - t0;
    let pk = PublicKey::from_msg(&params, keys.public_key()).unwrap();
    // 14×32×32 → 14×32×32 3×3 (one CNet1@14 layer, 14,336 ReLUs).
    let c = conv(14, 14, 32, 32, 3, 1, 1);
    let w = rand_weights(&mut rng, c.weight_len(), 255);
    let server = ServerStage::new(&params, &[(c, w)]).unwrap();
    let client = ClientStage::new(&params, &[c]).unwrap();
    let mask = rand_ring(&mut rng, c.input_len(), 32);
    let t0 = js_sys::Date::now();
    let (state, msg) = client.encrypt_masks(&keys, &[&mask], &mut rng).unwrap();
    let bytes = msg.to_bytes(&params);
    let t_enc = js_sys::Date::now() - t0;
    let (_, resp) = server.respond(&pk, &msg, &mut rng).unwrap();
    let down = resp.to_bytes(&params);
    let t0 = js_sys::Date::now();
    let resp = cryptonas_he::ResponseMsg::from_bytes(&params, &down).unwrap();
    let share = state.decrypt(&keys, &resp).unwrap();
    let t_dec = js_sys::Date::now() - t0;
    assert_eq!(share.len(), c.output_len());
    console_log!(
        "wasm client, 14x32x32 3x3 stage: keygen {t_key:.0} ms, encrypt {t_enc:.0} ms ({} cts, {} B), \
         decrypt {t_dec:.0} ms ({} cts, {} B)",
        msg.len(),
        bytes.len(),
        resp.len(),
        down.len()
    );
}
