//! Browser client: thin wasm-bindgen shell over the protocol's client session.
