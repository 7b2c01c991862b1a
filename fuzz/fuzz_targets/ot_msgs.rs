//! OT wire messages: strict decoding (lengths, point encodings), never a panic.
#![no_main]
use cryptonas_ot::chou_orlandi::{ReceiverChoices, SenderSetup};
use cryptonas_ot::kos::{CheckChallenge, CheckResponse, ExtendMatrix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SenderSetup::from_bytes(data);
    let _ = ReceiverChoices::from_bytes(data);
    let _ = ExtendMatrix::from_bytes(data);
    let _ = CheckChallenge::from_bytes(data);
    let _ = CheckResponse::from_bytes(data);
});
