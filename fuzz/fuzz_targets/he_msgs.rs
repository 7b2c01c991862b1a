//! HE wire messages: strict decoding, never a panic.
#![no_main]
use cryptonas_he::{HeParams, MasksMsg, PublicKeyMsg, ResponseMsg};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static P: OnceLock<HeParams> = OnceLock::new();
    let p = P.get_or_init(|| HeParams::new(32).unwrap());
    let _ = PublicKeyMsg::from_bytes(p, data);
    let _ = MasksMsg::from_bytes(p, data);
    let _ = ResponseMsg::from_bytes(p, data);
});
