//! The peak heap of the receiver's extension at the session's size (about 2 M choice bits, the
//! 86,016-ReLU model), from the choice bits to the finished frame, and of its answer to the check
//! once the frame has left, measured by a metering allocator. Native only; the browser's session
//! worker keeps the larger of the two for good (wasm memory never shrinks).
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_alloc_meter::Meter;
use cryptonas_crypto::{Block, Csprng};
use cryptonas_ot::kos;
use std::sync::Mutex;
use zeroize::Zeroizing;

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

/// The frame as the client builds it now: the matrix written in place behind the tag.
fn in_place(
    receiver: kos::Receiver<kos::state::ReceiverReady>,
    choices: &[bool],
    rng: &mut Csprng,
) -> (Vec<u8>, kos::Receiver<kos::state::Extended>) {
    let choices = Zeroizing::new(choices.to_vec());
    let mut frame = vec![0];
    let receiver = receiver.extend_into(choices, rng, &mut frame).unwrap();
    (frame, receiver)
}

/// What the in-place extension may hold at its peak besides the frame (16 B per row): the choices
/// (1 B per transfer), their packed words and padding draw (1/8 B per row each), one block of t
/// (256 KiB) and slack for the PRGs and allocation headers. The rows t_j are not held: they are
/// regenerated at the check.
fn in_place_bound(count: usize) -> usize {
    let rows = (count + 256).div_ceil(128) * 128;
    16 * rows + count + 2 * rows / 8 + (256 << 10) + (64 << 10)
}

/// The same for the answer to the check (the frame gone): the rows t_j instead of the frame.
fn check_bound(count: usize) -> usize {
    in_place_bound(count)
}

/// One metered measurement at a time (tests run on parallel threads; the meter counts them all).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Peaks of both ways at `n` choices (checking both give the same frame), and of the check's
/// answer after the new one.
fn measure(n: usize) -> (usize, usize, usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Warm the rayon pool outside the meter: its threads' allocations are not the extension's.
    let _ = ready(&mut Csprng::from_seed([0; 32]))
        .extend(&[true; 1000], &mut Csprng::from_seed([0; 32]));
    let mut rng = Csprng::from_seed([1; 32]);
    let choices: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
    let (old, (old_frame, old_rx)) = peak_of(|| {
        via_matrix(
            ready(&mut Csprng::from_seed([2; 32])),
            &choices,
            &mut Csprng::from_seed([3; 32]),
        )
    });
    drop(old_rx);
    let (new, (new_frame, new_rx)) = peak_of(|| {
        in_place(
            ready(&mut Csprng::from_seed([2; 32])),
            &choices,
            &mut Csprng::from_seed([3; 32]),
        )
    });
    assert!(old_frame == new_frame, "the two ways give different frames");
    drop((old_frame, new_frame));
    let challenge = kos::CheckChallenge::from_bytes(&[9; 32]).unwrap();
    let (check, output) = peak_of(|| new_rx.receive_challenge(challenge).1);
    assert_eq!(output.len(), n);
    (old, new, check)
}

#[test]
fn in_place_extension_holds_about_the_frame_then_the_rows() {
    let n = 1 << 18;
    let (old, new, check) = measure(n);
    assert!(
        new <= in_place_bound(n),
        "peak {new} B > bound {} B",
        in_place_bound(n)
    );
    assert!(
        check <= check_bound(n),
        "check: peak {check} B > bound {} B",
        check_bound(n)
    );
    assert!(new < old, "in place {new} B, via the matrix {old} B");
}

const N: usize = 2_064_384; // 86,016 ReLUs × 24 share bits

#[test]
#[ignore = "measurement printout (run with --release --ignored --nocapture)"]
fn extension_peak_at_two_million_choices() {
    let (old, new, check) = measure(N);
    let rows_bytes = 16 * (N + 256);
    for (how, peak) in [
        ("via ExtendMatrix", old),
        ("in place", new),
        ("check, after in place", check),
    ] {
        eprintln!(
            "{N} choices, {how}: peak {peak} B = {:.2} × 16 B × rows",
            peak as f64 / rows_bytes as f64
        );
    }
    assert!(new <= in_place_bound(N));
    assert!(check <= check_bound(N));
}
