//! CryptoNAS model format, f32 and bit-exact fixed-point engines, ReLU counting, image input.
