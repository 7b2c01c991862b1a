//! Garbled-circuit wire formats and Bristol Fashion text: errors, never panics.
#![no_main]
use cryptonas_gc::{
    from_bristol, ActiveLabels, BristolParties, DecodingBits, GarbledTables, ReluCircuit,
    ReluVariant, ShareDecoding,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static R: OnceLock<ReluCircuit> = OnceLock::new();
    let relu = R.get_or_init(|| ReluCircuit::new(32, 8, ReluVariant::Relu).unwrap());
    let n = data.first().copied().unwrap_or(0) as usize % 4;
    let body = data.get(1..).unwrap_or(&[]);
    let _ = GarbledTables::from_bytes(relu.circuit(), n, body);
    let _ = DecodingBits::from_bytes(relu.circuit(), n, body);
    let _ = ShareDecoding::from_bytes(relu.output(), n, body);
    let _ = ActiveLabels::from_bytes(32, n, body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = from_bristol(text, BristolParties::default());
    }
});
