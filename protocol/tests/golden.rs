//! A seeded golden transcript: with fixed generators on both sides, every frame of a whole
//! inference (both directions, in order) is pinned by one SHA-256
//! ([`cryptonas_protocol::testing::seeded_transcript`]). Refactors of the sessions or the
//! transports must keep the bytes on the wire; a deliberate change of a message updates the pin in
//! the same commit and says why.

use cryptonas_protocol::testing::{
    seeded_transcript, SEEDED_CLASS_TRANSCRIPT_SHA256, SEEDED_TRANSCRIPT_SHA256,
};
use cryptonas_protocol::OutputPolicy;

#[test]
fn seeded_transcript_is_pinned() {
    let (digest, frames) = seeded_transcript(OutputPolicy::Logits);
    eprintln!("{frames} frames, transcript {digest}");
    assert_eq!(digest, SEEDED_TRANSCRIPT_SHA256);
}

#[test]
fn seeded_class_transcript_is_pinned() {
    let (digest, frames) = seeded_transcript(OutputPolicy::Class);
    eprintln!("{frames} frames, class-only transcript {digest}");
    assert_eq!(digest, SEEDED_CLASS_TRANSCRIPT_SHA256);
}
