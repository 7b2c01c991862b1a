//! OT throughput inside headless Chromium (`std::time::Instant` does not exist there, so the clock
//! is `Date.now()`). Meaningful in release builds:
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test --release --target wasm32-unknown-unknown \
//!  -p cryptonas-ot --test browser_throughput`
#![cfg(target_arch = "wasm32")]

use cryptonas_crypto::{Block, Csprng};
use cryptonas_ot::{chou_orlandi, kos};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen_test]
fn cot_throughput_per_side_in_browser() {
    const N: usize = 1 << 20;
    let mut rng = Csprng::from_seed([7; 32]);
    let delta = Block::from_u128(rng.block().to_u128() | 1);

    let t0 = now_ms();
    let (setup, receiver) = kos::Receiver::new().setup(&mut rng);
    let (choices, sender) = kos::Sender::new(delta)
        .unwrap()
        .receive_base_setup(setup, &mut rng);
    let t1 = now_ms();
    let receiver = receiver.receive_base_choices(choices).unwrap();
    let t2 = now_ms();
    console_log!(
        "base OTs (128): extension sender {:.1} ms, extension receiver {:.1} ms",
        t1 - t0,
        t2 - t1
    );

    let bits: Vec<bool> = (0..N).map(|_| rng.bool()).collect();
    let t0 = now_ms();
    let (matrix, receiver) = receiver.extend(&bits, &mut rng).unwrap();
    let t1 = now_ms();
    let (challenge, sender) = sender.receive_extend(matrix, &mut rng).unwrap();
    let t2 = now_ms();
    let (response, r_out, _) = receiver.receive_challenge(challenge);
    let t3 = now_ms();
    let (s_out, _) = sender.receive_check(response).unwrap();
    let t4 = now_ms();
    let receiver_ms = (t1 - t0) + (t3 - t2);
    let sender_ms = (t2 - t1) + (t4 - t3);
    console_log!(
        "KOS COT 2^20 in wasm (1 thread): receiver {:.0} ms = {:.2} M/s, sender {:.0} ms = {:.2} M/s",
        receiver_ms,
        N as f64 / receiver_ms / 1e3,
        sender_ms,
        N as f64 / sender_ms / 1e3
    );
    assert_eq!(
        r_out.labels()[5],
        s_out.zero_labels()[5] ^ delta.select(bits[5])
    );

    // Kernels of the extension.
    let xs = rng.blocks(N);
    let t0 = now_ms();
    let acc = xs.iter().fold(Block::ZERO, |acc, x| {
        acc ^ cryptonas_ot::gf128::mul(*x, delta)
    });
    let t1 = now_ms();
    let mut tile = [0u128; 128];
    for (w, x) in tile.iter_mut().zip(&xs) {
        *w = x.to_u128();
    }
    for _ in 0..N / 128 {
        cryptonas_ot::transpose128(&mut tile);
    }
    let t2 = now_ms();
    let prg = rng.blocks(N);
    let t3 = now_ms();
    console_log!(
        "kernels per 2^20 in wasm: gf128 mul {:.0} ms, transpose {:.0} ms, ChaCha12 16 MiB {:.0} ms ({})",
        t1 - t0,
        t2 - t1,
        t3 - t2,
        (acc ^ Block::from_u128(tile[3]) ^ prg[9]).lsb()
    );

    let t0 = now_ms();
    let (setup, base_sender) = chou_orlandi::Sender::new().setup(&mut rng);
    let (msg, _) = chou_orlandi::Receiver::new()
        .receive_setup(setup)
        .choose(&bits[..128], &mut rng);
    let t1 = now_ms();
    let _ = base_sender.send(msg);
    let t2 = now_ms();
    console_log!(
        "Chou-Orlandi 128 OTs in wasm: receiver {:.1} ms, sender {:.1} ms",
        t1 - t0,
        t2 - t1
    );
}
