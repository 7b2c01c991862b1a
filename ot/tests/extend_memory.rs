//! The peak heap of the receiver's extension at the session's size (about 2 M choice bits, the
//! 86,016-ReLU model), from the choice bits to the finished frame (whole, or each part of a matrix
//! sent in parts), and of its answer to the check once the matrix has left, measured by a
//! metering allocator. Native only; the browser's session
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

/// The matrix sent in parts of `part_rows` rows, each frame dropped once "sent".
fn in_parts(
    receiver: kos::Receiver<kos::state::ReceiverReady>,
    choices: &[bool],
    rng: &mut Csprng,
    part_rows: usize,
) -> (usize, kos::Receiver<kos::state::Extended>) {
    let choices = Zeroizing::new(choices.to_vec());
    let mut next = receiver.extend_in_parts(choices, rng).unwrap();
    let mut sent = 0;
    loop {
        let mut frame = vec![0];
        let step = next.next_part(part_rows, &mut frame);
        sent += frame.len() - 1;
        match step {
            kos::Extension::More(r) => next = r,
            kos::Extension::Done(r) => return (sent, r),
        }
    }
}

/// What the extension holds at its peak besides the frame (`frame_bytes`): the choices (1 B per
/// transfer), their packed words and padding draw (1/8 B per row each), the PRGs' per-column pads
/// and slack for allocation headers. No rows t_j: they are regenerated when needed.
fn extension_bound(count: usize, frame_bytes: usize) -> usize {
    let rows = (count + 256).div_ceil(128) * 128;
    frame_bytes + count + 2 * rows / 8 + (64 << 10)
}

/// The answer to the check without keeping the rows: the choices and packed words, one block of
/// regenerated columns and rows (256 KiB each) and slack.
fn check_bound(count: usize) -> usize {
    extension_bound(count, 512 << 10)
}

/// One metered measurement at a time (tests run on parallel threads; the meter counts them all).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Peaks at `n` choices: the old way (a matrix, then its frame), the whole frame in place, the
/// matrix in parts of `part_rows` (checking that all give the same matrix), and the check's
/// answer with regenerated rows.
fn measure(n: usize, part_rows: usize) -> [usize; 4] {
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
    let (whole, (new_frame, new_rx)) = peak_of(|| {
        in_place(
            ready(&mut Csprng::from_seed([2; 32])),
            &choices,
            &mut Csprng::from_seed([3; 32]),
        )
    });
    assert!(old_frame == new_frame, "the two ways give different frames");
    drop((old_frame, new_frame, new_rx));
    let (parts, (sent, rx)) = peak_of(|| {
        in_parts(
            ready(&mut Csprng::from_seed([2; 32])),
            &choices,
            &mut Csprng::from_seed([3; 32]),
            part_rows,
        )
    });
    let rows = (n + 256).div_ceil(128) * 128;
    assert_eq!(
        sent,
        16 * rows + 16 * rows.div_ceil(part_rows),
        "every row sent once"
    );
    let challenge = kos::CheckChallenge::from_bytes(&[9; 32]).unwrap();
    let (check, seeds) = peak_of(|| rx.receive_challenge_regenerating(challenge).1);
    assert_eq!(seeds.len(), n);
    [old, whole, parts, check]
}

const PART_ROWS: usize = 1 << 16;

#[test]
fn the_extension_holds_its_frame_and_the_check_no_rows() {
    let n = 1 << 18;
    let [old, whole, parts, check] = measure(n, PART_ROWS);
    let frame = 16 * ((n + 256).div_ceil(128) * 128);
    assert!(
        whole <= extension_bound(n, frame),
        "whole frame: peak {whole} B > bound {} B",
        extension_bound(n, frame)
    );
    let part = 16 * PART_ROWS + 16;
    assert!(
        parts <= extension_bound(n, part),
        "in parts: peak {parts} B > bound {} B",
        extension_bound(n, part)
    );
    assert!(
        check <= check_bound(n),
        "check: peak {check} B > bound {} B",
        check_bound(n)
    );
    assert!(whole < old, "in place {whole} B, via the matrix {old} B");
}

const N: usize = 2_064_384; // 86,016 ReLUs × 24 share bits

#[test]
#[ignore = "measurement printout (run with --release --ignored --nocapture)"]
fn extension_peak_at_two_million_choices() {
    let [old, whole, parts, check] = measure(N, PART_ROWS);
    let rows_bytes = 16 * (N + 256);
    for (how, peak) in [
        ("via ExtendMatrix", old),
        ("whole frame in place", whole),
        ("in parts of 2^16 rows", parts),
        ("check, rows regenerated", check),
    ] {
        eprintln!(
            "{N} choices, {how}: peak {peak} B = {:.3} × 16 B × rows",
            peak as f64 / rows_bytes as f64
        );
    }
    assert!(parts <= extension_bound(N, 16 * PART_ROWS + 16));
    assert!(check <= check_bound(N));
}
