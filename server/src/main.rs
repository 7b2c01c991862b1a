//! axum server hosting models and running the server half of the protocol.

fn main() {}
