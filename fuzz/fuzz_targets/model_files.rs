//! Model files (JSON architecture + safetensors weights): validation errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().copied().unwrap_or(0) as usize;
    let body = data.get(1..).unwrap_or(&[]);
    let cut = cut.min(body.len());
    let (json, weights) = body.split_at(cut);
    let _ = cryptonas_model::Model::from_bytes(json, weights);
    let _ = cryptonas_model::image::decode(body);
});
