//! Garbling and evaluation speed inside the browser (one thread): prints the AES backend, fixed-key
//! AES blocks/s, and AND gates/s and ReLUs/s at k = 32, three times after a warm-up (V8 compiles a
//! function in its baseline tier first and has no on-stack replacement for wasm, so the first long
//! call of a function is not representative). Run with
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test --release --target wasm32-unknown-unknown -p cryptonas-gc --test wasm_speed -- --nocapture`.
#![cfg(target_arch = "wasm32")]

use cryptonas_crypto::{Csprng, FixedKeyAes};
use cryptonas_gc::{Delta, Evaluator, ReluCircuit, ReluVariant, TweakDomain};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Evaluations and decodings timed per garbling: each timing spans tens of milliseconds (the
/// browser's clock counts whole milliseconds; one evaluation of 2,048 ReLUs takes about 10).
const REPS: usize = 8;

/// Garbles, evaluates and decodes `n` ReLUs; returns the seconds to garble, to evaluate the AND
/// gates, and to decode the shares (the arithmetic output's hashes), the last two per repetition.
fn relus(relu: &ReluCircuit, n: usize, rng: &mut Csprng) -> (f64, f64, f64) {
    let masks: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
    let a: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
    let b: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
    let domain = TweakDomain {
        session_id: 1,
        first_instance: 0,
    };
    let t0 = js_sys::Date::now();
    let g = relu
        .garble(Delta::random(rng), domain, &masks, None, rng)
        .unwrap();
    let t1 = js_sys::Date::now();
    let ga = relu.encode_garbler(&g.encoder, &a).unwrap();
    let eb = relu.encode_evaluator(&g.encoder, &b).unwrap();
    let evaluator = Evaluator::new(relu.circuit(), domain);
    let t2 = js_sys::Date::now();
    let mut out = evaluator.evaluate(&g.tables, &ga, &eb).unwrap();
    for _ in 1..REPS {
        out = evaluator.evaluate(&g.tables, &ga, &eb).unwrap();
    }
    let t3 = js_sys::Date::now();
    let pi = FixedKeyAes::default();
    let mut o = Vec::new();
    for _ in 0..REPS {
        o = relu.decode(&pi, domain, &out, &g.decoding).unwrap();
    }
    let t4 = js_sys::Date::now();
    for i in 0..n {
        assert_eq!(o[i], relu.reference(a[i], b[i], masks[i]));
    }
    let reps = REPS as f64;
    (
        (t1 - t0) / 1e3,
        (t3 - t2) / 1e3 / reps,
        (t4 - t3) / 1e3 / reps,
    )
}

/// π calls of 4,096 blocks per AES timing (about 100 ms).
const AES_REPS: usize = 800;

#[wasm_bindgen_test]
fn relu_k32_speed_in_browser() {
    let relu = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
    let n = 2048;
    let mut rng = Csprng::from_seed([1; 32]);
    // The bound: fixed-key AES (evaluating an AND = 4 AES calls, garbling = 8).
    let aes = FixedKeyAes::default();
    let mut blocks = rng.blocks(4096);
    // Warm-up: every hot function is called many times, so V8 tiers it up.
    for _ in 0..20 {
        aes.permute_many(&mut blocks);
        relus(&relu, 16, &mut rng);
    }
    console_log!("browser, 1 thread: AES backend {:?}", aes.backend());
    for _ in 0..3 {
        let t4 = js_sys::Date::now();
        for _ in 0..AES_REPS {
            aes.permute_many(&mut blocks);
        }
        let t5 = js_sys::Date::now();
        let (tg, te, td) = relus(&relu, n, &mut rng);
        let ands = (n * relu.circuit().and_count()) as f64;
        let hashes = (n * 2 * relu.output().terms()) as f64;
        console_log!(
            "browser, 1 thread: fixed-key AES {:.2} M blocks/s; garble {:.2} M AND/s ({:.0} ReLU/s), evaluate {:.2} M AND/s, decode {:.2} M hashes/s ({:.0} ReLU/s, {:.1} us/ReLU both)",
            AES_REPS as f64 * 4096.0 / ((t5 - t4) / 1e3) / 1e6,
            ands / tg / 1e6,
            n as f64 / tg,
            ands / te / 1e6,
            hashes / td / 1e6,
            n as f64 / (te + td),
            (te + td) / n as f64 * 1e6
        );
    }
}
