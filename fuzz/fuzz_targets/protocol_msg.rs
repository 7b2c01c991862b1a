//! Protocol frames and plans: decoding never panics; what decodes re-encodes to the same frame.
#![no_main]
use cryptonas_protocol::{Msg, Plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Msg::decode(data) {
        if !matches!(m, Msg::Error { .. }) {
            assert_eq!(m.encode(), data);
        }
    }
    if let Ok(plan) = serde_json::from_slice::<Plan>(data) {
        let _ = plan.validate();
    }
});
