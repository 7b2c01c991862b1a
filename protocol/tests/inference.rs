//! Private inference end to end, in process: the client's logits must equal the plaintext fixed-point
//! engine bit for bit.

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    run_local, ClientInput, ClientSession, FrameSession, Msg, ProtocolError, ServerModel,
    ServerSession,
};
use std::sync::Arc;

fn model(channels: usize, side: usize, seed: u64) -> (Arc<ServerModel>, Vec<Vec<f32>>) {
    let (_, _, model, images) = cryptonas_protocol::testing::tiny_model(channels, side, seed);
    (model, images)
}

fn infer(model: &Arc<ServerModel>, x: &[f32]) -> cryptonas_protocol::Outcome {
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(x.to_vec()),
        Csprng::from_entropy().unwrap(),
    );
    run_local(&mut client, &mut server).unwrap();
    client.outcome().unwrap().clone()
}

#[test]
fn private_logits_equal_fixed_point_logits_for_200_images() {
    let (model, images) = model(2, 8, 1);
    assert_eq!(model.plan().relu_count(), 6 * 2 * 64);
    for x in images.iter().take(200) {
        let out = infer(&model, x);
        let want = model.fixed().forward(&out.input_ring).unwrap();
        assert_eq!(out.logits_ring, want);
        assert_eq!(out.input_ring, model.fixed().quantize_input(x).unwrap());
    }
}

#[test]
fn cnet1_shape_at_32x32_is_bit_exact() {
    let (model, images) = model(1, 32, 2);
    assert_eq!(model.plan().relu_count(), 6 * 1024);
    for x in images.iter().take(2) {
        let out = infer(&model, x);
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap()
        );
    }
}

#[test]
fn fresh_material_per_inference() {
    let (model, images) = model(2, 8, 3);
    let transcript = |x: &[f32]| {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(x.to_vec()),
            Csprng::from_entropy().unwrap(),
        );
        let mut up = client.start().unwrap();
        let mut frames = Vec::new();
        // Drive by hand to keep every server frame.
        loop {
            let mut down = Vec::new();
            for f in up.drain(..) {
                match server.handle(&f).unwrap() {
                    cryptonas_protocol::Step::Continue(o)
                    | cryptonas_protocol::Step::Finished(o) => down.extend(o),
                }
                while let Some(f) = server.poll_frame().unwrap() {
                    down.push(f);
                }
            }
            if down.is_empty() {
                break;
            }
            for f in down {
                frames.push(f.clone());
                if let cryptonas_protocol::Step::Continue(o) = client.handle(&f).unwrap() {
                    up.extend(o);
                }
            }
        }
        frames
    };
    let a = transcript(&images[0]);
    let b = transcript(&images[0]);
    assert_eq!(a.len(), b.len());
    let garbled = |fs: &[Vec<u8>]| {
        fs.iter()
            .filter(|f| matches!(Msg::decode(f), Ok(Msg::ServerGarbled { .. })))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (ga, gb) = (garbled(&a), garbled(&b));
    assert!(!ga.is_empty());
    for (x, y) in ga.iter().zip(&gb) {
        assert_ne!(x, y, "garbled tables reused across inferences");
    }
}

#[test]
fn out_of_order_replayed_and_malformed_frames_end_the_session() {
    let (model, images) = model(2, 8, 4);
    let fresh = || ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    // Online input before the offline phase.
    let mut s = fresh();
    let err = s
        .handle(&Msg::ClientInput(vec![0; 4]).encode())
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Unexpected { .. }), "{err}");
    // A failed session stays closed.
    assert_eq!(
        s.handle(&Msg::ClientHello { version: 1 }.encode())
            .unwrap_err(),
        ProtocolError::Closed
    );
    // Replayed hello.
    let mut s = fresh();
    s.handle(&Msg::ClientHello { version: 1 }.encode()).unwrap();
    assert!(matches!(
        s.handle(&Msg::ClientHello { version: 1 }.encode()),
        Err(ProtocolError::Unexpected { .. })
    ));
    // Wrong version, truncated and garbage frames.
    let mut s = fresh();
    assert!(s
        .handle(&Msg::ClientHello { version: 99 }.encode())
        .is_err());
    for junk in [&[][..], &[0x01][..], &[0x42, 1, 2][..]] {
        let mut s = fresh();
        assert!(s.handle(junk).is_err());
    }
    // A garbage HE key.
    let mut s = fresh();
    s.handle(&Msg::ClientHello { version: 1 }.encode()).unwrap();
    assert!(s.handle(&Msg::ClientHeKey(vec![7; 100]).encode()).is_err());
    // A client fed a truncated server frame fails cleanly too.
    let mut c = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_entropy().unwrap(),
    );
    c.start().unwrap();
    let mut s = fresh();
    let plan = match s.handle(&Msg::ClientHello { version: 1 }.encode()).unwrap() {
        cryptonas_protocol::Step::Continue(v) => v[0].clone(),
        other => panic!("{other:?}"),
    };
    assert!(c.handle(&plan[..plan.len() / 2]).is_err());
}

/// Everything the server receives online is a ring element masked by a fresh uniform mask, so its
/// bytes are uniform whatever the image: a chi-square test on the byte histogram for an all-zero
/// image (the worst case if masking were broken).
#[test]
fn server_view_of_the_image_is_uniform() {
    let (model, _) = model(2, 8, 5);
    let zero = vec![0f32; 3 * 8 * 8];
    let mut histogram = [0u64; 256];
    let mut total = 0u64;
    for _ in 0..6 {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(zero.clone()),
            Csprng::from_entropy().unwrap(),
        );
        let mut up = client.start().unwrap();
        'run: loop {
            let mut down = Vec::new();
            for f in up.drain(..) {
                if let Ok(Msg::ClientInput(b) | Msg::ClientMasked { body: b, .. }) = Msg::decode(&f)
                {
                    for byte in b {
                        histogram[byte as usize] += 1;
                        total += 1;
                    }
                }
                match server.handle(&f).unwrap() {
                    cryptonas_protocol::Step::Continue(o)
                    | cryptonas_protocol::Step::Finished(o) => down.extend(o),
                }
                while let Some(f) = server.poll_frame().unwrap() {
                    down.push(f);
                }
            }
            for f in down {
                match client.handle(&f).unwrap() {
                    cryptonas_protocol::Step::Continue(o) => up.extend(o),
                    cryptonas_protocol::Step::Finished(_) => break 'run,
                }
            }
        }
    }
    let expected = total as f64 / 256.0;
    let chi2: f64 = histogram
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    // 255 degrees of freedom: mean 255, standard deviation ≈ 22.6; 6σ above the mean fails.
    assert!(total > 20_000, "{total} bytes observed");
    assert!(
        chi2 < 255.0 + 6.0 * 22.6,
        "chi2 = {chi2:.1} over {total} bytes"
    );
}

#[test]
fn per_layer_diff_harness_finds_no_divergence() {
    let (model, images) = model(2, 8, 6);
    let report =
        cryptonas_protocol::verify_local(&model, ClientInput::Normalised(images[0].clone()))
            .unwrap();
    assert_eq!(report.first_divergence, None);
    assert_eq!(report.stages_checked, model.plan().stages.len());
}

/// Garbled layers larger than a chunk are streamed: nothing is garbled until the transport asks,
/// every layer arrives as in-order chunks of at most `GARBLE_CHUNK` ReLUs, and the result stays
/// bit-exact.
#[test]
fn garbled_layers_are_streamed_in_chunks() {
    use cryptonas_protocol::{Step, GARBLE_CHUNK};
    let (model, images) = model(3, 32, 5);
    let layer = 3 * 1024;
    assert!(layer > GARBLE_CHUNK);
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_entropy().unwrap(),
    );
    let mut up = client.start().unwrap();
    let mut chunks = Vec::new();
    loop {
        let mut down = Vec::new();
        for f in up.drain(..) {
            let was_ot_response = matches!(Msg::decode(&f), Ok(Msg::ClientOtResponse(_)));
            match server.handle(&f).unwrap() {
                Step::Continue(o) | Step::Finished(o) => {
                    if was_ot_response {
                        assert!(o.is_empty(), "garbling must wait for poll_frame");
                    }
                    down.extend(o)
                }
            }
            while let Some(f) = server.poll_frame().unwrap() {
                if let Ok(Msg::ServerGarbled {
                    stage,
                    first,
                    count,
                    ..
                }) = Msg::decode(&f)
                {
                    chunks.push((stage, first, count));
                }
                down.push(f);
            }
        }
        let mut done = false;
        for f in down {
            match client.handle(&f).unwrap() {
                Step::Continue(o) => up.extend(o),
                Step::Finished(_) => done = true,
            }
        }
        if done {
            break;
        }
    }
    let expected: Vec<(u32, u32, u32)> = (0..6)
        .flat_map(|s| {
            [
                (s, 0, GARBLE_CHUNK as u32),
                (s, GARBLE_CHUNK as u32, (layer - GARBLE_CHUNK) as u32),
            ]
        })
        .collect();
    assert_eq!(chunks, expected);
    let out = client.outcome().unwrap();
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    // The server's admission estimate no longer includes the layers' tables (93 ANDs × 32 B).
    let tables = (6 * layer * 93 * 32) as u64;
    let estimate = model.session_memory_bytes();
    eprintln!("server session estimate {estimate} B, all tables {tables} B");
    assert!(estimate < tables, "{estimate} B");
}

/// A client refuses garbled chunks that skip, overlap or overrun its layer, and (also when it
/// delegates evaluation) tables of the wrong length.
#[test]
fn client_rejects_out_of_order_chunks() {
    use cryptonas_protocol::Step;
    let (model, images) = model(3, 32, 6);
    for tamper in 0..5 {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(images[0].clone()),
            Csprng::from_entropy().unwrap(),
        );
        if tamper == 4 {
            client.delegate_evaluation();
        }
        let mut up = client.start().unwrap();
        let err = 'run: loop {
            let mut down = Vec::new();
            for f in up.drain(..) {
                if let Step::Continue(o) = server.handle(&f).unwrap() {
                    down.extend(o);
                }
                while let Some(f) = server.poll_frame().unwrap() {
                    down.push(f);
                }
            }
            assert!(!down.is_empty());
            for f in down {
                let f = match Msg::decode(&f) {
                    Ok(Msg::ServerGarbled {
                        stage,
                        first,
                        count,
                        mut tables,
                        decoding,
                        corrections,
                    }) if first > 0 => {
                        let (first, count) = match tamper {
                            0 => (first + 64, count), // skips ReLUs
                            1 => (first - 64, count), // overlaps
                            2 => (first, count + 64), // overruns the layer
                            _ => {
                                tables.pop(); // truncated tables
                                (first, count)
                            }
                        };
                        Msg::ServerGarbled {
                            stage,
                            first,
                            count,
                            tables,
                            decoding,
                            corrections,
                        }
                        .encode()
                    }
                    _ => f,
                };
                match client.handle(&f) {
                    Ok(Step::Continue(o)) => up.extend(o),
                    Ok(Step::Finished(_)) => panic!("finished despite a tampered chunk"),
                    Err(e) => break 'run e,
                }
            }
        };
        let want = if tamper < 3 {
            "ServerGarbled"
        } else {
            "tables"
        };
        assert!(
            matches!(err, ProtocolError::Malformed { what, .. } if what == want),
            "{err}"
        );
    }
}

/// Delegated evaluation (what the browser's Web Workers do): the session hands out every chunk as a
/// job, the "workers" here evaluate them from their serialised form and complete them out of order,
/// and the logits stay bit-exact. Unknown and repeated results are refused.
#[test]
fn delegated_evaluation_out_of_order_is_bit_exact() {
    use cryptonas_protocol::{ChunkEvaluator, ChunkJob, EvalTask, Step};
    use std::collections::HashMap;
    let (model, images) = model(3, 32, 7);
    for (n, x) in images.iter().take(2).enumerate() {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(x.clone()),
            Csprng::from_entropy().unwrap(),
        );
        client.delegate_evaluation();
        let mut workers: HashMap<u32, ChunkEvaluator> = HashMap::new();
        let mut up = client.start().unwrap();
        let mut finished = false;
        while !finished {
            let mut down = Vec::new();
            for f in up.drain(..) {
                let (Step::Continue(o) | Step::Finished(o)) = server.handle(&f).unwrap();
                down.extend(o);
                while let Some(f) = server.poll_frame().unwrap() {
                    down.push(f);
                }
            }
            assert!(!down.is_empty(), "server went quiet");
            for f in down {
                match client.handle(&f).unwrap() {
                    Step::Continue(o) => up.extend(o),
                    Step::Finished(_) => finished = true,
                }
                let mut results = Vec::new();
                for task in client.take_tasks() {
                    match task {
                        EvalTask::Store(job) => {
                            let job = ChunkJob::from_bytes(&job.to_bytes()).unwrap();
                            workers.insert(job.id, ChunkEvaluator::new(&job).unwrap());
                        }
                        EvalTask::Evaluate { id, garbler_labels } => {
                            let w = workers.remove(&id).expect("job stored offline");
                            results.push((id, w.evaluate_packed(&garbler_labels).unwrap()));
                        }
                    }
                }
                // Workers finish in any order.
                if n == 1 {
                    results.reverse();
                }
                let last = results.len().saturating_sub(1);
                for (i, (id, shares)) in results.iter().enumerate() {
                    let out = client.complete_job(*id, shares).unwrap();
                    assert_eq!(out.is_empty(), i != last, "reply only after the last chunk");
                    up.extend(out);
                }
            }
        }
        assert!(workers.is_empty(), "every stored job was evaluated");
        let out = client.outcome().unwrap();
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap()
        );
        assert!(client.complete_job(0, &[]).is_err(), "result after the end");
    }
}

/// Offline material garbled ahead of the client (a server's pool) gives the same bit-exact result;
/// its chunks carry label corrections (16 B per share bit), a fresh session id per material, and
/// material of another model is refused.
#[test]
fn pooled_offline_material_is_bit_exact() {
    let (model, images) = model(3, 32, 8);
    let mut rng = Csprng::from_entropy().unwrap();
    let mut traffic = Vec::new();
    for (i, x) in images.iter().take(3).enumerate() {
        let mut server = if i < 2 {
            let material = model.prepare_offline(&mut rng).unwrap();
            assert!(material.bytes() > 0);
            ServerSession::with_material(model.clone(), Csprng::from_entropy().unwrap(), material)
                .unwrap()
        } else {
            ServerSession::new(model.clone(), Csprng::from_entropy().unwrap())
        };
        let mut client = ClientSession::new(
            ClientInput::Normalised(x.clone()),
            Csprng::from_entropy().unwrap(),
        );
        let t = run_local(&mut client, &mut server).unwrap();
        let out = client.outcome().unwrap();
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap()
        );
        traffic.push(t.bytes_down);
    }
    // Pooled sessions send the corrections on top: 16·k bytes per ReLU.
    let extra = 16 * model.plan().k as u64 * model.plan().relu_count() as u64;
    assert_eq!(traffic[0] - traffic[2], extra);
    // Material of another model (other shapes) is refused.
    let (other, _) = self::model(2, 8, 9);
    let material = other.prepare_offline(&mut rng).unwrap();
    let refused =
        ServerSession::with_material(model.clone(), Csprng::from_entropy().unwrap(), material);
    assert!(matches!(refused, Err(ProtocolError::Check(_))));
}
