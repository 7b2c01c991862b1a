//! The client shell against an in-process server session on a tiny model: natively and, with
//! `--target wasm32-unknown-unknown`, inside headless Chromium (both halves run in the browser).
//! The private logits must equal the plaintext fixed-point engine bit for bit.

use cryptonas_crypto::Csprng;
use cryptonas_protocol::testing::{pending_frames, tiny_model};
use cryptonas_protocol::{ChunkJob, ClientInput, EvalTask, LocalWorkers, ServerSession, Session};
use std::collections::VecDeque;
use wasm_client::{ClientError, PrivateInference};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Drives `client` against `server` through the shell's Rust API (what the page's session worker
/// does through its JavaScript twin; `cryptonas_protocol::run_local` drives the protocol session
/// itself); returns the events seen. Jobs cross the worker boundary as bytes and finish in reverse
/// order.
fn drive(client: &mut PrivateInference, server: &mut ServerSession) -> Vec<&'static str> {
    let mut up: VecDeque<Vec<u8>> = client.start_frames().unwrap().into();
    let mut events = Vec::new();
    let mut workers = LocalWorkers::default();
    loop {
        let mut down = VecDeque::new();
        while let Some(f) = up.pop_front() {
            server.handle(&f).unwrap();
            down.extend(pending_frames(server));
        }
        assert!(
            !down.is_empty(),
            "server went quiet before the client finished"
        );
        while let Some(f) = down.pop_front() {
            let step = client.handle_frame(&f).unwrap();
            events.push(step.event);
            up.extend(step.frames);
            let tasks = step
                .tasks
                .into_iter()
                .map(|t| match t {
                    EvalTask::Store(job) => {
                        EvalTask::Store(ChunkJob::from_bytes(&job.to_bytes()).unwrap())
                    }
                    t => t,
                })
                .collect();
            for (id, shares) in workers.run(tasks).unwrap().into_iter().rev() {
                up.extend(client.complete_job(id, &shares).unwrap());
            }
            if step.done {
                assert_eq!(step.phase, "done");
                assert_eq!(workers.stored(), 0, "every stored chunk was evaluated");
                return events;
            }
        }
    }
}

/// The page's path: a prepared session (no image until the offline phase is done), garbled chunks
/// whose tables go straight to the evaluator (the session reads only each chunk's head).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn prepared_session_with_tables_sent_to_the_evaluator_is_bit_exact() {
    let (_, _, model, images) = tiny_model(2, 8, 12);
    run_prepared_with_bulk(&model, &images[0]);
}

/// Max pools (ReLU fused before or after, overlapping windows with padding, none) and Clip(0, 6):
/// every job carries its layer's circuit, which the evaluation worker rebuilds from the job's
/// bytes alone; the plan shown counts one instance per pool output with the pool circuit's gates.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn max_pool_and_clip_layers_are_bit_exact_in_the_shell() {
    use cryptonas_protocol::testing::{pool_model, PoolCase};
    use cryptonas_protocol::StageOp;
    let cases = [
        PoolCase::ReluBefore,
        PoolCase::ReluAfter,
        PoolCase::NoReluThenClip,
        PoolCase::SharedRelu,
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let (_, _, model, images) = pool_model(case, 40 + i as u64);
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client =
            PrivateInference::with_input(ClientInput::Normalised(images[0].clone())).unwrap();
        drive(&mut client, &mut server);
        let out = client.outcome_rust().expect("finished").clone();
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap(),
            "{case:?}"
        );
        let plan = client.plan_info().expect("plan seen");
        let stages = &model.plan().stages;
        assert!(
            stages
                .iter()
                .any(|s| matches!(s.op, StageOp::MaxPool { .. }))
                || stages
                    .iter()
                    .any(|s| matches!(s.op, StageOp::Relu { clip: Some(_) })),
            "{case:?}"
        );
        for l in &plan.layers {
            let circuit = model.plan().circuit(l.stage).unwrap().unwrap();
            let op = match stages[l.stage].op {
                StageOp::Relu { clip: None } => "relu",
                StageOp::Relu { clip: Some(_) } => "clip",
                StageOp::MaxPool { .. } => "max_pool",
                StageOp::TopK { .. } => "top_k",
                StageOp::Logits => "logits",
            };
            assert_eq!(l.op, op, "{case:?}");
            assert_eq!(l.relus, stages[l.stage].relus(), "{case:?}");
            assert_eq!(
                l.and_gates,
                (stages[l.stage].instances() * circuit.circuit().and_count()) as u64,
                "{case:?}"
            );
        }
        // The page's path (tables cut from the frame) on the first image as well.
        run_prepared_with_bulk(&model, &images[1]);
    }
}

/// One prepared session where each garbled chunk's tables go to the evaluator straight from the
/// frame (the page's path); asserts the logits equal the fixed-point engine's.
fn run_prepared_with_bulk(model: &std::sync::Arc<cryptonas_protocol::ServerModel>, x: &[f32]) {
    use cryptonas_protocol::{ChunkEvaluator, GarbledLayout, MsgKind};
    use std::collections::HashMap;
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = PrivateInference::prepared().unwrap();
    let mut up: VecDeque<Vec<u8>> = client.start_frames().unwrap().into();
    let mut stored: HashMap<u32, ChunkEvaluator> = HashMap::new();
    let mut image_given = false;
    'run: loop {
        let mut down = VecDeque::new();
        while let Some(f) = up.pop_front() {
            server.handle(&f).unwrap();
            down.extend(pending_frames(&mut server));
        }
        if down.is_empty() && !image_given {
            // Prepared: the server waits for the image, and so does the client.
            assert_eq!(server.phase(), cryptonas_protocol::Phase::Ready);
            assert!(client
                .set_input(ClientInput::Normalised(vec![1.0; 3]))
                .is_err());
            up.extend(
                client
                    .set_input(ClientInput::Normalised(x.to_vec()))
                    .unwrap(),
            );
            image_given = true;
            continue;
        }
        assert!(!down.is_empty(), "server went quiet");
        while let Some(f) = down.pop_front() {
            let mut bulk = None;
            let step = if f[0] == MsgKind::ServerGarbled.tag() {
                let at = GarbledLayout::read(&f[..64.min(f.len())], f.len()).unwrap();
                bulk = Some((
                    f[at.tables.clone()].to_vec(),
                    f[at.decoding.clone()].to_vec(),
                ));
                client
                    .handle_garbled_head_frame(&f[..64], &f[at.corrections], f.len())
                    .unwrap()
            } else {
                client.handle_frame(&f).unwrap()
            };
            up.extend(step.frames);
            for task in step.tasks {
                match task {
                    EvalTask::Store(job) => {
                        let job = ChunkJob::from_bytes(&job.to_bytes()).unwrap();
                        let (tables, decoding) = bulk.take().expect("one chunk per frame");
                        let chunk = ChunkEvaluator::with_bulk(&job, &tables, &decoding).unwrap();
                        stored.insert(job.id, chunk);
                    }
                    EvalTask::Evaluate {
                        id, garbler_labels, ..
                    } => {
                        let shares = stored
                            .remove(&id)
                            .unwrap()
                            .evaluate_packed(&garbler_labels)
                            .unwrap();
                        up.extend(client.complete_job(id, &shares).unwrap());
                    }
                }
            }
            if step.done {
                break 'run;
            }
        }
    }
    assert!(image_given && stored.is_empty());
    let out = client.outcome_rust().expect("finished");
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn private_logits_equal_fixed_point_engine_and_plan_predicts_frames() {
    let (_, _, model, images) = tiny_model(2, 8, 11);
    for x in images.iter().take(3) {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = PrivateInference::with_input(ClientInput::Normalised(x.clone())).unwrap();
        let events = drive(&mut client, &mut server);
        let out = client.outcome_rust().expect("finished").clone();
        assert_eq!(out.input_ring, model.fixed().quantize_input(x).unwrap());
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap()
        );

        let plan = client.plan_info().expect("plan seen");
        assert_eq!(plan.relus, model.plan().relu_count());
        assert_eq!(plan.layers.len(), 6);
        assert!(plan
            .layers
            .iter()
            .all(|l| l.op == "relu" && l.relus == 2 * 64 && l.and_gates > 0));
        assert_eq!(plan.expected_frames as usize, events.len());
        assert_eq!(events.first(), Some(&"plan"));
        assert_eq!(events.last(), Some(&"output"));
        assert_eq!(events.iter().filter(|e| **e == "labels").count(), 6);

        let t = client.traffic_rust();
        assert_eq!(t.online_rounds, 7);
        // One cost entry per stage (HE traffic included), ReLU layers and the logits stage.
        assert_eq!(t.layers.len(), model.plan().stages.len());
        assert!(t.offline_down > t.online_down && t.he_up > 0 && t.ot_up > 0);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn misuse_and_bad_frames_are_errors_not_panics() {
    let (_, _, model, images) = tiny_model(1, 8, 12);
    let mut c = PrivateInference::with_input(ClientInput::Normalised(images[0].clone())).unwrap();
    assert!(matches!(
        c.handle_frame(&[0x81]),
        Err(ClientError::NotStarted)
    ));
    c.start_frames().unwrap();
    assert!(matches!(c.start_frames(), Err(ClientError::AlreadyStarted)));
    // Garbage, then a valid plan after the failure: the session stays closed.
    assert!(matches!(
        c.handle_frame(&[0x42, 1, 2]),
        Err(ClientError::Protocol(_))
    ));
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let hello = PrivateInference::with_input(ClientInput::Normalised(images[0].clone()))
        .unwrap()
        .start_frames()
        .unwrap();
    server.handle(&hello[0]).unwrap();
    let plan = pending_frames(&mut server);
    assert!(matches!(
        c.handle_frame(&plan[0]),
        Err(ClientError::Protocol(_))
    ));

    // A wrong-sized image is reported when the plan arrives.
    let mut c = PrivateInference::with_input(ClientInput::Normalised(vec![0.0; 5])).unwrap();
    c.start_frames().unwrap();
    let err = c.handle_frame(&plan[0]).unwrap_err();
    assert!(err.to_string().contains("5 values"), "{err}");
}

/// A chunk of 64 garbled ReLUs (k = 32) made natively from fixed seeds, as a job plus the server's
/// labels and the shares they must decode to: `[u32 LE len][job][u32 LE len][labels][shares]`.
/// Natively the test checks it is still what the native garbler makes from those seeds; in
/// headless Chromium it evaluates it (tables garbled on AES-NI/VAES, evaluated on software AES:
/// the deployment).
const NATIVE_CHUNK: &[u8] = include_bytes!("data/native-chunk.bin");

/// The fixture's parts.
fn native_chunk_parts(bytes: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let take = |at: usize| {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        (bytes[at + 4..at + 4 + n].to_vec(), at + 4 + n)
    };
    let (job, at) = take(0);
    let (labels, at) = take(at);
    (job, labels, bytes[at..].to_vec())
}

/// A chunk of `n` ReLUs (k = 32) garbled on this target from the seed `[seed; 32]`: the fixture's
/// bytes `[u32 LE len][job][u32 LE len][server labels][shares]`, where the shares are this
/// target's evaluation, checked here against the plaintext ReLU.
fn garbled_fixture(seed: u8, n: usize) -> Vec<u8> {
    use cryptonas_crypto::FixedKeyAes;
    use cryptonas_gc::{Delta, ReluCircuit, ReluVariant, TweakDomain};
    use cryptonas_protocol::ChunkEvaluator;
    let relu = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
    let mut rng = Csprng::from_seed([seed; 32]);
    let pi_key = rng.block().0;
    let word = |rng: &mut Csprng| (0..n).map(|_| rng.u64() & 0xffff_ffff).collect::<Vec<_>>();
    let (masks, a, b) = (word(&mut rng), word(&mut rng), word(&mut rng));
    let domain = TweakDomain {
        session_id: 99,
        first_instance: 128,
    };
    let delta = Delta::random(&mut rng);
    let g = relu
        .garble_with_pi(
            &FixedKeyAes::new(pi_key),
            delta,
            domain,
            &masks,
            None,
            &mut rng,
        )
        .unwrap();
    let garbler = relu.encode_garbler(&g.encoder, &a).unwrap();
    let evaluator = relu.encode_evaluator(&g.encoder, &b).unwrap();
    let job = ChunkJob {
        id: 3,
        circuit: cryptonas_protocol::StageCircuit::Relu(relu.clone()).spec(),
        pi_key,
        session_id: domain.session_id,
        first_instance: domain.first_instance,
        count: n as u32,
        tables: g.tables.as_bytes().to_vec(),
        decoding: g.decoding.as_bytes().to_vec(),
        client_labels: evaluator.as_bytes().to_vec().into(),
    };
    let chunk = ChunkEvaluator::new(&job).unwrap();
    let plain: Vec<u64> = (0..n)
        .map(|i| relu.reference(a[i], b[i], masks[i]))
        .collect();
    assert_eq!(chunk.evaluate(garbler.as_bytes()).unwrap(), plain);
    let shares = chunk.evaluate_packed(garbler.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    for part in [job.to_bytes(), garbler.as_bytes().to_vec()] {
        bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&part);
    }
    bytes.extend_from_slice(&shares);
    bytes
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn native_chunk_fixture_is_what_the_native_garbler_makes() {
    let bytes = garbled_fixture(7, 64);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/native-chunk.bin");
    if std::env::var_os("REGENERATE_FIXTURES").is_some() {
        std::fs::write(path, &bytes).unwrap();
    }
    assert!(
        bytes == NATIVE_CHUNK,
        "the native garbler changed its output; rerun with REGENERATE_FIXTURES=1 if deliberate"
    );
}

/// The reverse direction: 16 ReLUs garbled in headless Chromium (wasm's garbler: ChaCha12 labels,
/// the bitsliced `v128` AES), in the same layout as [`NATIVE_CHUNK`], with the shares the browser
/// evaluated and checked against the plaintext ReLU. Natively the test evaluates it on
/// AES-NI/VAES; in the browser it checks the fixture is still what the wasm garbler makes. To
/// regenerate after a deliberate change (the browser cannot write files, so it prints the bytes):
/// `CHROMEDRIVER=/usr/bin/chromedriver cargo test --release --target wasm32-unknown-unknown -p
/// wasm-client --test session -- --nocapture wasm_chunk 2>&1 | sed -n 's/.*WASM_CHUNK_HEX //p' |
/// xxd -r -p > wasm-client/tests/data/wasm-chunk.bin`.
const WASM_CHUNK: &[u8] = include_bytes!("data/wasm-chunk.bin");

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test]
fn wasm_chunk_fixture_is_what_the_wasm_garbler_makes() {
    let bytes = garbled_fixture(8, 16);
    if bytes != WASM_CHUNK {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        wasm_bindgen_test::console_log!("WASM_CHUNK_HEX {hex}");
        panic!("the wasm garbler changed its output; regenerate the fixture if deliberate (see WASM_CHUNK)");
    }
}

/// Tables garbled in the browser evaluate natively to the shares the browser got (which equal
/// the plaintext ReLU).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn wasm_garbled_chunk_evaluates_natively_to_the_same_shares() {
    let (job, labels, shares) = native_chunk_parts(WASM_CHUNK);
    let chunk = wasm_client::EvalChunk::new(&job).unwrap();
    assert_eq!(chunk.evaluate(&labels).unwrap(), shares);
    // And it is not the native garbler's output from the same seeds (labels are drawn differently
    // on the two targets), so this is a chunk only the browser made.
    assert!(garbled_fixture(8, 16) != WASM_CHUNK);
}

/// Tables garbled natively evaluate here to the shares the native evaluator gets.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn natively_garbled_chunk_evaluates_to_the_same_shares() {
    let (job, labels, shares) = native_chunk_parts(NATIVE_CHUNK);
    let chunk = wasm_client::EvalChunk::new(&job).unwrap();
    assert_eq!(chunk.evaluate(&labels).unwrap(), shares);
}
