//! Private inference end to end, in process: the client's logits must equal the plaintext fixed-point
//! engine bit for bit.

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    run_local, run_local_on, run_local_with, ChunkEvaluator, ClientInput, ClientSession, ErrorCode,
    EvalTask, GarbledLayout, LocalWorkers, Msg, MsgKind, Output, Phase, ProtocolError, ServerModel,
    ServerSession, Session, Side, Tap, LABELS_HEAD, PROTOCOL_VERSION,
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
fn prepared_session_takes_its_image_after_the_offline_phase() {
    let (model, images) = model(2, 8, 4);
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::prepare(Csprng::from_entropy().unwrap());
    let mut workers = LocalWorkers::default();
    let offline = run_local_on(&mut client, &mut server, &mut workers, &mut ()).unwrap();
    assert_eq!(client.phase(), Phase::Ready);
    assert_eq!(server.phase(), Phase::Ready);
    assert_eq!(client.traffic().online_up + client.traffic().online_down, 0);
    // A bad image is refused and the prepared session survives it.
    let err = client
        .set_input(ClientInput::Normalised(vec![0.0; 3]))
        .unwrap_err();
    assert!(err.to_string().contains("values for a"), "{err}");
    let err = client
        .set_input(ClientInput::ImageBytes(b"not an image".to_vec()))
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Malformed { .. }), "{err}");
    assert_eq!(client.phase(), Phase::Ready);
    client
        .set_input(ClientInput::Normalised(images[0].clone()))
        .unwrap();
    // One image per session.
    assert!(client
        .set_input(ClientInput::Normalised(images[1].clone()))
        .is_err());
    let online = run_local_on(&mut client, &mut server, &mut workers, &mut ()).unwrap();
    assert!(offline.bytes_down > online.bytes_down && online.bytes_up > 0);
    let out = client.outcome().unwrap();
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    assert_eq!(
        out.input_ring,
        model.fixed().quantize_input(&images[0]).unwrap()
    );
    // Same answer as a session given its image up front.
    assert_eq!(out.logits_ring, infer(&model, &images[0]).logits_ring);
}

#[test]
fn an_image_given_mid_offline_is_used_when_the_offline_phase_ends() {
    let (model, images) = model(2, 8, 5);
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::prepare(Csprng::from_entropy().unwrap());
    // The hello and the plan: the client now knows the input format.
    let hello = cryptonas_protocol::testing::pending_frames(&mut client);
    server.handle(&hello[0]).unwrap();
    let plan = server.poll_output().unwrap();
    let Some(Output::Frame(plan)) = plan else {
        panic!("no plan")
    };
    client.handle(&plan).unwrap();
    client
        .set_input(ClientInput::Normalised(images[2].clone()))
        .unwrap();
    run_local(&mut client, &mut server).unwrap();
    let out = client.outcome().expect("finished without waiting");
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
}

/// Drives a session as a browser does: the bulk of every garbled chunk goes straight to the
/// evaluator ([`ChunkEvaluator::with_bulk`]), and each chunk's server labels are cut from the
/// `ServerLabels` frame; the session sees only the heads (and label corrections). `tamper` sees
/// every server frame first.
fn infer_detached(
    model: &Arc<ServerModel>,
    server: &mut ServerSession,
    x: &[f32],
    tamper: impl Fn(&mut Vec<u8>),
) -> Result<ClientSession, ProtocolError> {
    use std::collections::HashMap;
    let mut client = ClientSession::new(
        ClientInput::Normalised(x.to_vec()),
        Csprng::from_entropy().unwrap(),
    );
    let _ = model;
    let mut bulk: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut labels: Vec<u8> = Vec::new();
    let mut stored: HashMap<u32, ChunkEvaluator> = HashMap::new();
    loop {
        while let Some(out) = client.poll_output()? {
            match out {
                Output::Frame(f) => server.handle(&f)?,
                Output::Job(EvalTask::Store(job)) => {
                    assert!(job.tables.is_empty() && job.decoding.is_empty());
                    let (tables, decoding) = bulk.take().expect("a chunk's bulk");
                    stored.insert(job.id, ChunkEvaluator::with_bulk(&job, &tables, &decoding)?);
                }
                Output::Job(EvalTask::Evaluate {
                    id,
                    garbler_labels,
                    labels_at,
                }) => {
                    assert!(garbler_labels.is_empty());
                    let shares = stored
                        .remove(&id)
                        .unwrap()
                        .evaluate_packed(&labels[labels_at])?;
                    client.complete_job(id, &shares)?;
                }
                Output::Finished => return Ok(client),
            }
        }
        let Some(Output::Frame(mut f)) = server.poll_output()? else {
            panic!("the server stopped first")
        };
        tamper(&mut f);
        if f[0] == MsgKind::ServerLabels.tag() {
            client.handle_labels_head(&f[..LABELS_HEAD.min(f.len())], f.len())?;
            labels = f;
        } else if f[0] == MsgKind::ServerGarbled.tag() {
            let at = GarbledLayout::read(&f, f.len())?;
            bulk = Some((
                f[at.tables.clone()].to_vec(),
                f[at.decoding.clone()].to_vec(),
            ));
            client.handle_garbled_head(&f[..GarbledLayout::HEAD], &f[at.corrections], f.len())?;
        } else {
            client.handle(&f)?;
        }
    }
}

#[test]
fn tables_sent_straight_to_the_evaluator_are_bit_exact_and_checked() {
    let (model, images) = model(2, 8, 6);
    for (i, x) in images.iter().take(3).enumerate() {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let client = infer_detached(&model, &mut server, x, |_| {}).unwrap();
        let out = client.outcome().unwrap();
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap()
        );
        // Booked as the whole frames: the same traffic as the inline path.
        if i == 0 {
            let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
            let mut inline = ClientSession::new(
                ClientInput::Normalised(x.clone()),
                Csprng::from_entropy().unwrap(),
            );
            run_local(&mut inline, &mut server).unwrap();
            assert_eq!(inline.traffic(), client.traffic());
        }
    }
    // A declared table length that disagrees with the plan, and one past the frame's end, are
    // refused by the session.
    let garbled = MsgKind::ServerGarbled.tag();
    let lengthen = |f: &mut Vec<u8>| {
        if f[0] != garbled {
            return;
        }
        let n = u64::from_le_bytes(f[13..21].try_into().unwrap()) + 32;
        f[13..21].copy_from_slice(&n.to_le_bytes());
        f.extend_from_slice(&[0; 32]);
    };
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let Err(err) = infer_detached(&model, &mut server, &images[0], lengthen) else {
        panic!("accepted")
    };
    assert!(err.to_string().contains("tables"), "{err}");
    let cut = |f: &mut Vec<u8>| {
        if f[0] == garbled {
            f.truncate(GarbledLayout::HEAD + 5)
        }
    };
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let Err(err) = infer_detached(&model, &mut server, &images[0], cut) else {
        panic!("accepted")
    };
    assert!(err.to_string().contains("exceeds the frame"), "{err}");
    // Labels frames one label short, or cut inside their head, are refused too.
    for keep in [None, Some(3)] {
        let short = |f: &mut Vec<u8>| {
            if f[0] == MsgKind::ServerLabels.tag() {
                f.truncate(keep.unwrap_or(f.len() - 16));
            }
        };
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let Err(err) = infer_detached(&model, &mut server, &images[0], short) else {
            panic!("accepted")
        };
        assert!(err.to_string().contains("ServerLabels"), "{err}");
    }
}

/// Keeps every frame the server sends.
#[derive(Default)]
struct ServerFrames(Vec<Vec<u8>>);

impl Tap for ServerFrames {
    fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
        if from == Side::Server {
            self.0.push(frame.clone());
        }
        frame
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
        let mut frames = ServerFrames::default();
        run_local_with(&mut client, &mut server, &mut frames).unwrap();
        frames.0
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

const HELLO: Msg = Msg::ClientHello {
    version: PROTOCOL_VERSION,
};

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
    assert_eq!(err.code(), ErrorCode::Unexpected);
    // A failed session stays closed and says nothing more.
    assert_eq!(
        s.handle(&HELLO.encode()).unwrap_err(),
        ProtocolError::Closed
    );
    assert_eq!(s.poll_output().unwrap(), None);
    // Replayed hello.
    let mut s = fresh();
    s.handle(&HELLO.encode()).unwrap();
    assert!(matches!(
        s.handle(&HELLO.encode()),
        Err(ProtocolError::Unexpected { .. })
    ));
    // Another protocol version gets a version error (an old client learns why).
    let mut s = fresh();
    let err = s
        .handle(&Msg::ClientHello { version: 1 }.encode())
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::Version {
            ours: PROTOCOL_VERSION,
            theirs: 1
        }
    );
    let Msg::Error { code, message } = Msg::decode(&err.to_frame()).unwrap() else {
        panic!("an error travels as an Error frame");
    };
    assert_eq!(code, ErrorCode::Version);
    assert!(message.contains("protocol version"), "{message}");
    // Truncated and garbage frames.
    for junk in [&[][..], &[0x01][..], &[0x42, 1, 2][..]] {
        let mut s = fresh();
        assert_eq!(s.handle(junk).unwrap_err().code(), ErrorCode::Malformed);
    }
    // A garbage HE key.
    let mut s = fresh();
    s.handle(&HELLO.encode()).unwrap();
    assert!(s.handle(&Msg::ClientHeKey(vec![7; 100]).encode()).is_err());
    // A client fed a truncated server frame fails cleanly too, and a peer's error ends it.
    let mut s = fresh();
    s.handle(&HELLO.encode()).unwrap();
    let Some(Output::Frame(plan)) = s.poll_output().unwrap() else {
        panic!("the server answers the hello with its plan");
    };
    let client = || {
        ClientSession::new(
            ClientInput::Normalised(images[0].clone()),
            Csprng::from_entropy().unwrap(),
        )
    };
    let mut c = client();
    assert!(c.handle(&plan[..plan.len() / 2]).is_err());
    // A plan with an empty layer (which would leave the client nothing to wait for) is refused.
    let mut plan = model.plan().clone();
    plan.stages[0].len = 0;
    assert!(plan.validate().is_err());
    let mut c = client();
    let refused = Msg::Error {
        code: ErrorCode::Refused,
        message: "busy".into(),
    };
    assert!(matches!(
        c.handle(&refused.encode()),
        Err(ProtocolError::Peer {
            code: ErrorCode::Refused,
            ..
        })
    ));
}

/// Everything the server receives online is a ring element masked by a fresh uniform mask, so its
/// bytes are uniform whatever the image: a chi-square test on the byte histogram for an all-zero
/// image (the worst case if masking were broken).
#[test]
fn server_view_of_the_image_is_uniform() {
    /// Counts the bytes of every masked tensor the client sends.
    struct Histogram([u64; 256], u64);
    impl Tap for Histogram {
        fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
            if from == Side::Client {
                if let Ok(Msg::ClientInput(b) | Msg::ClientMasked { body: b, .. }) =
                    Msg::decode(&frame)
                {
                    for byte in b {
                        self.0[byte as usize] += 1;
                        self.1 += 1;
                    }
                }
            }
            frame
        }
    }
    let (model, _) = model(2, 8, 5);
    let zero = vec![0f32; 3 * 8 * 8];
    let mut h = Histogram([0; 256], 0);
    for _ in 0..6 {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(zero.clone()),
            Csprng::from_entropy().unwrap(),
        );
        run_local_with(&mut client, &mut server, &mut h).unwrap();
    }
    let Histogram(histogram, total) = h;
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

/// Garbled layers larger than a chunk are streamed: every layer arrives as in-order chunks of at
/// most `GARBLE_CHUNK` ReLUs, the plan announces the server's frame count, and the result stays
/// bit-exact.
#[test]
fn garbled_layers_are_streamed_in_chunks() {
    use cryptonas_protocol::GARBLE_CHUNK;
    // 5 channels at 24×24: 2,880 ReLUs per layer, more than two chunks and a partial last one.
    let (model, images) = model(5, 24, 5);
    let layers: Vec<usize> = (model.plan().stages.iter())
        .filter(|s| s.garbled())
        .map(|s| s.instances())
        .collect();
    assert_eq!(layers.len(), 6);
    assert!(layers[0] > 2 * GARBLE_CHUNK && !layers[0].is_multiple_of(GARBLE_CHUNK));
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_entropy().unwrap(),
    );
    let mut frames = ServerFrames::default();
    run_local_with(&mut client, &mut server, &mut frames).unwrap();
    let chunks: Vec<(u32, u32, u32)> = frames
        .0
        .iter()
        .filter_map(|f| match Msg::decode(f) {
            Ok(Msg::ServerGarbled {
                stage,
                first,
                count,
                ..
            }) => Some((stage, first, count)),
            _ => None,
        })
        .collect();
    let expected: Vec<(u32, u32, u32)> = (layers.iter().enumerate())
        .flat_map(|(s, &layer)| {
            (0..layer).step_by(GARBLE_CHUNK).map(move |first| {
                (
                    s as u32,
                    first as u32,
                    GARBLE_CHUNK.min(layer - first) as u32,
                )
            })
        })
        .collect();
    assert_eq!(chunks, expected);
    assert_eq!(frames.0.len(), model.plan().server_frames());
    let out = client.outcome().unwrap();
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    // The server's admission estimate counts a streamed chunk of tables and output words (built,
    // then copied into its frame), not the layers' (`tests/session_memory.rs` checks it against
    // measured peaks).
    let sizes: Vec<u64> = frames
        .0
        .iter()
        .filter_map(|f| match Msg::decode(f) {
            Ok(Msg::ServerGarbled {
                tables, decoding, ..
            }) => Some((tables.len() + decoding.len()) as u64),
            _ => None,
        })
        .collect();
    let (tables, chunk) = (
        sizes.iter().sum::<u64>(),
        sizes.iter().max().copied().unwrap_or(0),
    );
    let estimate = model.session_memory_bytes();
    eprintln!(
        "server session estimate {estimate} B, all tables {tables} B, largest chunk {chunk} B"
    );
    assert!(estimate >= 2 * chunk, "{estimate} B");
}

/// A client refuses garbled chunks that skip, overlap or overrun its layer, and tables of the
/// wrong length.
#[test]
fn client_rejects_out_of_order_chunks() {
    /// Tampers with the last garbled chunk of every layer (of 3,072 ReLUs: several chunks).
    struct Tamper(u8);
    const LAYER: u32 = 3 * 1024;
    assert!(cryptonas_protocol::GARBLE_CHUNK < LAYER as usize);
    impl Tap for Tamper {
        fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
            let Ok(Msg::ServerGarbled {
                stage,
                first,
                count,
                mut tables,
                decoding,
                corrections,
            }) = Msg::decode(&frame)
            else {
                return frame;
            };
            if from != Side::Server || first + count != LAYER {
                return frame;
            }
            let (first, count) = match self.0 {
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
    }
    let (model, images) = model(3, 32, 6);
    for tamper in 0..4 {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(images[0].clone()),
            Csprng::from_entropy().unwrap(),
        );
        let (side, err) =
            run_local_with(&mut client, &mut server, &mut Tamper(tamper)).unwrap_err();
        assert_eq!(side, Side::Client);
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

/// Evaluation is handed out as jobs (what the browser's Web Workers do): results coming back in
/// any order give bit-exact logits, every chunk is evaluated exactly once, and results after the
/// end are refused.
#[test]
fn evaluation_jobs_completed_out_of_order_are_bit_exact() {
    /// Reverses every layer's results and keeps their ids.
    #[derive(Default)]
    struct Reorder(Vec<u32>, usize);
    impl Tap for Reorder {
        fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
            if from == Side::Server && frame.first() == Some(&MsgKind::ServerGarbled.tag()) {
                self.1 += 1;
            }
            frame
        }
        fn job_results(&mut self, results: &mut Vec<(u32, Vec<u8>)>) {
            results.reverse();
            self.0.extend(results.iter().map(|(id, _)| *id));
        }
    }
    let (model, images) = model(3, 32, 7);
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_entropy().unwrap(),
    );
    let mut tap = Reorder::default();
    run_local_with(&mut client, &mut server, &mut tap).unwrap();
    let mut ids = tap.0.clone();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..tap.1 as u32).collect::<Vec<_>>(),
        "each chunk once"
    );
    assert!(
        tap.0.windows(2).any(|w| w[0] > w[1]),
        "results were reordered"
    );
    let out = client.outcome().unwrap();
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    assert!(client.complete_job(0, &[]).is_err(), "result after the end");
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
    // Pooled sessions send the corrections on top: 16·k_l bytes per ReLU (one per share bit).
    let extra = 16 * model.plan().ot_bits() as u64;
    assert!(
        model.plan().ot_bits() < 32 * model.plan().relu_count(),
        "narrow rings"
    );
    assert_eq!(traffic[0] - traffic[2], extra);
    // Material of another model (other shapes) is refused.
    let (other, _) = self::model(2, 8, 9);
    let material = other.prepare_offline(&mut rng).unwrap();
    let refused =
        ServerSession::with_material(model.clone(), Csprng::from_entropy().unwrap(), material);
    assert!(matches!(refused, Err(ProtocolError::Check(_))));
}

/// Max pools (ReLU fused before or after, none; overlapping windows; padding at both ends or at
/// the end only; a pool over a ReLU output that another layer reads too) and a Clip(0, 6):
/// private logits equal the fixed-point engine's bit for bit, every garbled layer's output too
/// (the per-layer diff harness), and the fixed-point logits stay near the float ones.
#[test]
fn max_pool_and_clip_models_are_bit_exact() {
    use cryptonas_model::StageKind;
    use cryptonas_protocol::testing::{pool_model, PoolCase};
    use cryptonas_protocol::{verify_local, StageOp};
    for (case, want_ops) in [
        (PoolCase::ReluBefore, vec!["pool+relu", "relu"]),
        (PoolCase::ReluAfter, vec!["pool+relu"]),
        (PoolCase::NoReluThenClip, vec!["pool", "clip"]),
        (PoolCase::SharedRelu, vec!["relu", "pool", "relu"]),
    ] {
        let (json, weights, model, images) = pool_model(case, 11);
        let ops: Vec<&str> = model
            .plan()
            .stages
            .iter()
            .filter_map(|s| match s.op {
                StageOp::Relu { clip: None } => Some("relu"),
                StageOp::Relu { clip: Some(_) } => Some("clip"),
                StageOp::MaxPool { relu: true, .. } => Some("pool+relu"),
                StageOp::MaxPool { relu: false, .. } => Some("pool"),
                StageOp::Logits | StageOp::TopK { .. } => None,
            })
            .collect();
        assert_eq!(ops, want_ops, "{case:?}");
        let m = cryptonas_model::Model::from_bytes(&json, &weights).unwrap();
        let nf = cryptonas_model::NormalForm::compile(&m).unwrap();
        for x in images.iter().take(3) {
            let out = infer(&model, x);
            assert_eq!(
                out.logits_ring,
                model.fixed().forward(&out.input_ring).unwrap(),
                "{case:?}"
            );
            // The float engine agrees with the normal form (the pools and clips over the reals)…
            let xv = ndarray::ArrayView4::from_shape((1, 3, 8, 8), x.as_slice()).unwrap();
            let engine: Vec<f32> = m.forward(xv).unwrap().iter().copied().collect();
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let float = nf.logits_f64(&xf).unwrap();
            for (a, b) in engine.iter().zip(&float) {
                assert!((f64::from(*a) - b).abs() < 1e-3, "{case:?}: {a} vs {b}");
            }
            // … and fixed point stays close to it (10-bit weights, 8-bit activations).
            let fixed = model.fixed().logits(x).unwrap();
            for (a, b) in fixed.iter().zip(&float) {
                assert!((a - b).abs() < 0.1, "{case:?}: fixed {a} vs float {b}");
            }
        }
        let report = verify_local(&model, ClientInput::Normalised(images[5].clone())).unwrap();
        assert!(report.first_divergence.is_none(), "{case:?}: {report:?}");
        // The clip bites on some images (else the test would not test it).
        if case == PoolCase::NoReluThenClip {
            let st = &model.fixed().stages[1];
            assert!(matches!(st.kind, StageKind::Clip { .. }));
            let clip = st.clip.unwrap();
            let clipped = images.iter().take(16).any(|x| {
                let q = model.fixed().quantize_input(x).unwrap();
                let z = &model.fixed().forward_stages(&q).unwrap()[1];
                z.iter()
                    .any(|&v| cryptonas_model::fixed::to_signed(v, 32) > clip as i64)
            });
            assert!(clipped, "no element reached the clip bound {clip}");
        }
    }
}

/// The OT matrix goes in `OT_PART_ROWS`-row parts, one per poll; a server refuses a part out of
/// order, a repeated one, and one larger than its frame bound, with a clear error.
#[test]
fn ot_matrix_parts_are_checked_by_the_server() {
    use cryptonas_protocol::OT_PART_ROWS;
    // C = 4 at 32×32: tens of thousands of share bits, so the matrix has several parts.
    let (model, images) = model(4, 32, 8);
    // Runs a session until the client has sent its OT parts through `mangle`; returns the
    // server's verdict on them and how many there were.
    let run = |mangle: &dyn Fn(Vec<Vec<u8>>) -> Vec<Vec<u8>>| {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(images[0].clone()),
            Csprng::from_entropy().unwrap(),
        );
        loop {
            let up = cryptonas_protocol::testing::pending_frames(&mut client);
            let (parts, other): (Vec<_>, Vec<_>) = up
                .into_iter()
                .partition(|f| f[0] == MsgKind::ClientOtExtend.tag());
            for f in other {
                server.handle(&f).unwrap();
            }
            if !parts.is_empty() {
                let n = parts.len();
                let bound = server.max_frame_bytes();
                assert!(
                    parts.iter().all(|p| p.len() <= bound),
                    "a part over the bound"
                );
                let verdict = mangle(parts).iter().try_for_each(|p| server.handle(p));
                return (verdict, n);
            }
            for f in cryptonas_protocol::testing::pending_frames(&mut server) {
                client.handle(&f).unwrap();
            }
        }
    };
    let (ok, n) = run(&|parts| parts);
    ok.unwrap();
    assert!(n >= 3, "{n} parts");
    let (swapped, _) = run(&|mut parts| {
        parts.swap(0, 1);
        parts
    });
    let err = swapped.unwrap_err().to_string();
    assert!(err.contains("part starts at row"), "{err}");
    let (repeated, _) = run(&|mut parts| {
        parts.insert(1, parts[0].clone());
        parts
    });
    let err = repeated.unwrap_err().to_string();
    assert!(err.contains("part starts at row"), "{err}");
    // Two parts glued into one frame: over the server's frame bound (a transport refuses it
    // before the session sees it) and, given to the session anyway, not a part it accepts.
    let (glued, _) = run(&|parts| {
        let mut big = parts[0].clone();
        big.extend_from_slice(&parts[1][17..]);
        assert!(big.len() > 16 * OT_PART_ROWS + 17);
        vec![big]
    });
    let err = glued.unwrap_err().to_string();
    assert!(err.contains("ClientOtExtend part rows"), "{err}");
}

/// The client makes its HE masks a stage per poll: a `ServerHeResponse` handed to it before it
/// made that stage's masks (a transport that does not poll in between, or a server that answers
/// early) is an error, never a panic.
#[test]
fn an_he_response_before_its_masks_is_refused() {
    let (model, images) = model(2, 8, 9);
    let mut server = ServerSession::new(model, Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_entropy().unwrap(),
    );
    for f in cryptonas_protocol::testing::pending_frames(&mut client) {
        server.handle(&f).unwrap();
    }
    let plan = cryptonas_protocol::testing::pending_frames(&mut server);
    client.handle(&plan[0]).unwrap();
    let early = Msg::ServerHeResponse {
        stage: 0,
        body: vec![0; 64],
    };
    let err = client.handle(&early.encode()).unwrap_err().to_string();
    assert!(err.contains("before its stage's masks"), "{err}");
}
