//! The peak heap of the receiver's extension at the session's size (about 2 M choice bits, the
//! 86,016-ReLU model), from the choice bits to the finished frame, measured by a metering
//! allocator. Native only; the browser's session worker keeps this peak for good (wasm memory
//! never shrinks).
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_alloc_meter::Meter;
use cryptonas_crypto::{Block, Csprng};
use cryptonas_ot::kos;

#[global_allocator]
static HEAP: Meter = Meter::new();

/// A receiver after base OTs (unmetered).
fn ready(rng: &mut Csprng) -> kos::Receiver<kos::state::ReceiverReady> {
    let (setup, receiver) = kos::Receiver::new().setup(rng);
    let (choices, _sender) = kos::Sender::new(Block::ONE)
        .unwrap()
        .receive_base_setup(setup, rng);
    receiver.receive_base_choices(choices).unwrap()
}

/// Peak metered bytes of `f` over what was live before it.
fn peak_of<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = HEAP.live();
    HEAP.reset_peak();
    let r = HEAP.metered(f);
    (HEAP.peak() - before, r)
}

/// The frame as the client built it before: the matrix, its bytes, then a copy behind the tag.
fn via_matrix(
    receiver: kos::Receiver<kos::state::ReceiverReady>,
    choices: &[bool],
    rng: &mut Csprng,
) -> (Vec<u8>, kos::Receiver<kos::state::Extended>) {
    let (matrix, receiver) = receiver.extend(choices, rng).unwrap();
    let body = matrix.to_bytes();
    let mut frame = Vec::with_capacity(1 + body.len());
    frame.push(0);
    frame.extend_from_slice(&body);
    (frame, receiver)
}

const N: usize = 2_064_384; // 86,016 ReLUs × 24 share bits

#[test]
#[ignore = "measurement printout (run with --release --ignored --nocapture)"]
fn extension_peak_at_two_million_choices() {
    // Warm the rayon pool outside the meter: its threads' allocations are not the extension's.
    let _ = ready(&mut Csprng::from_seed([0; 32]))
        .extend(&[true; 1000], &mut Csprng::from_seed([0; 32]));
    let mut rng = Csprng::from_seed([1; 32]);
    let choices: Vec<bool> = (0..N).map(|_| rng.bool()).collect();
    let rows_bytes = 16 * (N + 256);
    let (old, (frame, extended)) = peak_of(|| via_matrix(ready(&mut rng), &choices, &mut rng));
    eprintln!(
        "{N} choices, via ExtendMatrix: peak {old} B = {:.2} × 16 B × rows",
        old as f64 / rows_bytes as f64
    );
    drop((frame, extended));
}
