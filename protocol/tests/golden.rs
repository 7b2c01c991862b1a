//! A seeded golden transcript: with fixed generators on both sides, every frame of a whole
//! inference (both directions, in order) is pinned by one SHA-256. Refactors of the sessions or the
//! transports must keep the bytes on the wire; a deliberate change of a message updates the pin in
//! the same commit and says why.

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{run_local_with, ClientInput, ClientSession, ServerSession, Side, Tap};
use sha2::{Digest, Sha256};

/// SHA-256 over `[direction][len u64 LE][frame]` for every frame after the client's hello.
const TRANSCRIPT_SHA256: &str = "a815df1ede9a63af3c5ec775306f3098e59204e54018fd002c11b4428e41e075";

#[test]
fn seeded_transcript_is_pinned() {
    let (_, _, model, images) = cryptonas_protocol::testing::tiny_model(2, 8, 11);
    let mut server = ServerSession::new(model.clone(), Csprng::from_seed([1; 32]));
    let mut client = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_seed([2; 32]),
    );
    /// Keeps every frame with its direction.
    struct Transcript(Vec<(u8, Vec<u8>)>);
    impl Tap for Transcript {
        fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
            self.0.push((u8::from(from == Side::Server), frame.clone()));
            frame
        }
    }
    let mut transcript = Transcript(Vec::new());
    run_local_with(&mut client, &mut server, &mut transcript).unwrap();
    let frames = transcript.0;
    let out = client.outcome().unwrap();
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    let (dir, hello) = &frames[0];
    assert_eq!(
        (*dir, hello[0]),
        (0, 0x01),
        "the client's hello comes first"
    );
    let mut h = Sha256::new();
    for (dir, f) in &frames[1..] {
        h.update([*dir]);
        h.update((f.len() as u64).to_le_bytes());
        h.update(f);
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("{} frames, transcript {digest}", frames.len());
    assert_eq!(digest, TRANSCRIPT_SHA256);
}
