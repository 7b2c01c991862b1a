//! The JavaScript-facing API in headless Chromium: `Uint8Array` frames, step objects, the outcome
//! object, a JPEG decoded in wasm, and garbled-evaluation speed in the browser thread.
//! Run (from the repository root): `wasm-pack test --headless --chrome --chromedriver
//! /usr/bin/chromedriver --mode no-install wasm-client --lib --test '*'`
#![cfg(target_arch = "wasm32")]

use cryptonas_crypto::Csprng;
use cryptonas_protocol::testing::{pending_frames, tiny_model};
use cryptonas_protocol::{ServerSession, Session};
use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_client::{EvalChunk, GcBench, PrivateInference};

wasm_bindgen_test_configure!(run_in_browser);

const CAT: &[u8] = include_bytes!("../../www/samples/cat.jpg");

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn frames(a: &Array) -> Vec<Vec<u8>> {
    a.iter()
        .map(|f| f.dyn_into::<Uint8Array>().expect("Uint8Array").to_vec())
        .collect()
}

/// Runs a session through the JS API only, the jobs on `EvalChunk`s as the page's workers run
/// them, each layer's labels cut from their frame as the page cuts them; returns the outcome
/// object.
fn run_js(client: &mut PrivateInference, server: &mut ServerSession) -> JsValue {
    let mut up = frames(&client.start().unwrap());
    let mut chunks = std::collections::HashMap::new();
    let mut labels_frame = Vec::new();
    loop {
        let mut down = Vec::new();
        for f in up.drain(..) {
            server.handle(&f).unwrap();
            down.extend(pending_frames(server));
        }
        assert!(!down.is_empty());
        for f in down {
            // A layer's labels as the page hands them over: the session gets the head only.
            let step = match PrivateInference::labels_head(&f[..1]) {
                Some(head) => {
                    let step = client.handle_labels_head(&f[..head], f.len()).unwrap();
                    labels_frame = f;
                    step
                }
                None => client.handle(&f).unwrap(),
            };
            up.extend(frames(&get(&step, "frames").dyn_into::<Array>().unwrap()));
            for job in get(&step, "jobs").dyn_into::<Array>().unwrap().iter() {
                let id = get(&job, "id").as_f64().unwrap() as u32;
                let bytes = |key| get(&job, key).dyn_into::<Uint8Array>().unwrap().to_vec();
                if get(&job, "kind").as_string().unwrap() == "store" {
                    chunks.insert(id, EvalChunk::new(&bytes("job")).unwrap());
                } else {
                    let chunk = chunks.remove(&id).expect("stored before evaluated");
                    assert!(get(&job, "labels").is_null());
                    let at: Vec<usize> = get(&job, "at")
                        .dyn_into::<Array>()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as usize)
                        .collect();
                    let shares = chunk.evaluate(&labels_frame[at[0]..at[1]]).unwrap();
                    up.extend(frames(&client.complete(id, &shares).unwrap()));
                    // The garbled arg-max of a class or top-k model ends the session here.
                    if client.phase() == "done" {
                        return client.outcome().unwrap();
                    }
                }
            }
            if get(&step, "done").as_bool().unwrap() {
                assert_eq!(get(&step, "phase").as_string().unwrap(), "done");
                return client.outcome().unwrap();
            }
        }
    }
}

#[wasm_bindgen_test]
fn js_api_classifies_a_jpeg_bit_exactly() {
    let (_, _, model, _) = tiny_model(2, 8, 21);
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = PrivateInference::new(CAT).unwrap();
    assert!(client.outcome().unwrap().is_null());
    let t0 = js_sys::Date::now();
    let out = run_js(&mut client, &mut server);
    console_log!(
        "tiny model (768 ReLUs), both halves in this tab: {:.0} ms",
        js_sys::Date::now() - t0
    );

    // The decoded JPEG (resized to 8x8 in wasm) is what the plaintext engine gets.
    let x = cryptonas_model::image::load_input(CAT, &model.plan().input).unwrap();
    let q = model.fixed().quantize_input(&x).unwrap();
    let want = model.fixed().forward(&q).unwrap();
    let ring: Vec<u64> = get(&out, "logits_ring")
        .dyn_into::<Array>()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ring, want);
    let logits = get(&out, "logits").dyn_into::<Array>().unwrap();
    assert_eq!(logits.length() as usize, want.len());
    let class = get(&out, "class").as_f64().unwrap() as usize;
    let best = (0..logits.length())
        .map(|i| logits.get(i).as_f64().unwrap())
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, v)| if v > b.1 { (i, v) } else { b },
        )
        .0;
    assert_eq!(class, best);
    assert_eq!(
        get(&out, "label").as_string().unwrap(),
        model.plan().classes[class]
    );
    let plan = client.plan().unwrap();
    assert_eq!(get(&plan, "relus").as_f64().unwrap() as usize, 768);
    let traffic = client.traffic().unwrap();
    assert_eq!(get(&traffic, "online_rounds").as_f64().unwrap(), 7.0);
    assert_eq!(client.phase(), "done");
}

/// A model served under `class` (and `top-3`): the outcome object holds the revealed classes,
/// bit-exact with the plaintext fixed-point ranking, and no logits; the plan says what the model
/// reveals and marks the garbled arg-max layer.
#[wasm_bindgen_test]
fn js_api_class_model_reveals_the_class_only() {
    use cryptonas_protocol::OutputPolicy;
    for (policy, top) in [(OutputPolicy::Class, 1), (OutputPolicy::TopK(3), 3)] {
        let (_, _, model, _) = tiny_model(2, 8, 23);
        let mut m = std::sync::Arc::into_inner(model).unwrap();
        m.set_output(policy).unwrap();
        let model = std::sync::Arc::new(m);
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = PrivateInference::new(CAT).unwrap();
        let out = run_js(&mut client, &mut server);
        let x = cryptonas_model::image::load_input(CAT, &model.plan().input).unwrap();
        let q = model.fixed().quantize_input(&x).unwrap();
        let logits = model.fixed().forward(&q).unwrap();
        let want = cryptonas_model::rank_logits(&logits, model.plan().k, top);
        let ranked: Vec<usize> = get(&out, "ranked")
            .dyn_into::<Array>()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as usize)
            .collect();
        assert_eq!(ranked, want, "{policy}");
        assert_eq!(get(&out, "class").as_f64().unwrap() as usize, want[0]);
        assert_eq!(
            get(&out, "label").as_string().unwrap(),
            model.plan().classes[want[0]]
        );
        for key in ["logits", "logits_ring"] {
            assert_eq!(get(&out, key).dyn_into::<Array>().unwrap().length(), 0);
        }
        assert_eq!(get(&out, "output").as_string().unwrap(), policy.to_string());
        assert_eq!(get(&out, "reveals").as_string().unwrap(), policy.describe());
        let plan = client.plan().unwrap();
        assert_eq!(
            get(&plan, "reveals").as_string().unwrap(),
            policy.describe()
        );
        assert_eq!(get(&plan, "relus").as_f64().unwrap() as usize, 768);
        let layers = get(&plan, "layers").dyn_into::<Array>().unwrap();
        let last = layers.get(layers.length() - 1);
        assert_eq!(get(&last, "output").as_bool(), Some(true));
        assert_eq!(get(&last, "relus").as_f64().unwrap(), 0.0);
        assert_eq!(client.phase(), "done");
    }
}

#[wasm_bindgen_test]
fn js_api_errors_are_js_errors() {
    assert!(PrivateInference::new(&[]).is_err());
    let mut c = PrivateInference::new(b"not an image").unwrap();
    assert!(c.handle(&[0x81]).is_err(), "handle before start");
    c.start().unwrap();
    assert!(c.start().is_err());
    // An undecodable image fails when the plan arrives, as a JsError.
    let (_, _, model, _) = tiny_model(1, 8, 22);
    let mut server = ServerSession::new(model, Csprng::from_entropy().unwrap());
    let hello = PrivateInference::new(CAT).unwrap().start().unwrap();
    let hello = frames(&hello);
    server.handle(&hello[0]).unwrap();
    let plan = pending_frames(&mut server);
    assert!(c.handle(&plan[0]).is_err());
    assert!(GcBench::new(0, 32).is_err());
}

#[wasm_bindgen_test]
fn garbled_evaluation_speed_in_the_browser() {
    let b = GcBench::new(2048, 32).unwrap();
    // Warm-up as the page's workers do it (V8's optimising tier), then calls enough for the
    // browser's millisecond clock.
    for _ in 0..4 {
        b.evaluate().unwrap();
        b.evaluate_gates().unwrap();
    }
    let reps = 8;
    let t0 = js_sys::Date::now();
    for _ in 0..reps {
        b.evaluate().unwrap();
    }
    let t1 = js_sys::Date::now();
    for _ in 0..reps {
        b.evaluate_gates().unwrap();
    }
    let (s, gates_s) = ((t1 - t0) / 1e3, (js_sys::Date::now() - t1) / 1e3);
    assert!(b.and_gates() > 2048.0 * 30.0);
    console_log!(
        "GcBench in the browser test thread ({} profile): {:.2} M AND/s ({:.0} ReLU/s); the gates alone {:.2} M AND/s",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        f64::from(reps) * b.and_gates() / s.max(1e-6) / 1e6,
        f64::from(reps) * 2048.0 / s.max(1e-6),
        f64::from(reps) * b.and_gates() / gates_s.max(1e-6) / 1e6
    );
}
