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

/// Masks encrypted straight into a frame are the bytes of the message built in memory (same
/// randomness), appended behind what the frame already holds, and a bad mask leaves no state.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn masks_written_in_place_are_the_message_bytes() {
    use cryptonas_he::{ClientKeys, ClientStage, HeParams};
    let mut r = Csprng::from_seed([5; 32]);
    let a = conv(3, 4, 8, 8, 3, 1, 1);
    let b = conv(2, 4, 16, 16, 1, 2, 0);
    let params = HeParams::new(32).unwrap();
    let keys = ClientKeys::generate(&params, &mut r).unwrap();
    let stage = ClientStage::new(&params, &[a, b]).unwrap();
    let ma = common::rand_ring(&mut r, a.input_len(), 32);
    let mb = common::rand_ring(&mut r, b.input_len(), 32);
    let (_, msg) = stage
        .encrypt_masks(&keys, &[&ma, &mb], &mut Csprng::from_seed([6; 32]))
        .unwrap();
    let mut frame = vec![0xee, 0x01];
    stage
        .encrypt_masks_into(
            &keys,
            &[&ma, &mb],
            &mut Csprng::from_seed([6; 32]),
            &mut frame,
        )
        .unwrap();
    assert_eq!(frame[..2], [0xee, 0x01]);
    assert_eq!(frame[2..], msg.to_bytes(&params));
    assert_eq!(
        frame.len() - 2,
        cryptonas_he::MasksMsg::byte_len(&params, msg.len())
    );
    let mut out = vec![7];
    assert!(stage
        .encrypt_masks_into(&keys, &[&ma], &mut r, &mut out)
        .is_err());
    assert_eq!(out, [7]);
}
