//! Output policies: under `class` and `top-k` the client learns the ranked class indices from a
//! garbled top-k over the logits' shares, equal to the plaintext fixed-point engine's ranking
//! ([`rank_logits`]), and nothing on the wire carries the server's logit share.

use cryptonas_crypto::Csprng;
use cryptonas_model::rank_logits;
use cryptonas_protocol::testing::{pool_model, tiny_model, PoolCase};
use cryptonas_protocol::{
    run_local_with, verify_local, ClientInput, ClientSession, Msg, MsgKind, Outcome, OutputPolicy,
    Revealed, ServerModel, ServerSession, Side, StageOp, Tap,
};
use std::sync::Arc;

fn serve(model: Arc<ServerModel>, policy: OutputPolicy) -> Arc<ServerModel> {
    let mut m = Arc::into_inner(model).expect("a fresh model");
    m.set_output(policy).expect("the policy fits");
    Arc::new(m)
}

/// Kinds and sizes of every frame of a run, by direction.
#[derive(Default)]
struct Frames(Vec<(Side, MsgKind, usize)>);

impl Tap for Frames {
    fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
        let kind = Msg::decode(&frame).expect("a valid frame").kind();
        self.0.push((from, kind, frame.len()));
        frame
    }
}

fn infer(model: &Arc<ServerModel>, x: &[f32]) -> (Outcome, Frames) {
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    let mut client = ClientSession::new(
        ClientInput::Normalised(x.to_vec()),
        Csprng::from_entropy().unwrap(),
    );
    let mut frames = Frames::default();
    run_local_with(&mut client, &mut server, &mut frames).unwrap();
    (client.outcome().unwrap().clone(), frames)
}

/// The plaintext fixed-point ranking of the client's quantized image.
fn want(model: &ServerModel, out: &Outcome, top: usize) -> Vec<usize> {
    let logits = model.fixed().forward(&out.input_ring).unwrap();
    rank_logits(&logits, model.plan().k, top)
}

/// `model` served again (the same fixed-point model) under `policy`.
fn reserve(model: &ServerModel, policy: OutputPolicy) -> Arc<ServerModel> {
    let plan = model.plan();
    let m = ServerModel::from_fixed(
        &plan.model,
        &plan.input,
        &plan.classes,
        model.fixed().clone(),
        None,
        String::new(),
    )
    .unwrap();
    serve(Arc::new(m), policy)
}

#[test]
fn private_class_and_top_k_equal_the_fixed_point_ranking() {
    let (_, _, a, a_images) = tiny_model(2, 8, 3);
    let (_, _, b, b_images) = tiny_model(3, 8, 5);
    let (_, _, c, c_images) = pool_model(PoolCase::ReluBefore, 7);
    for (name, model, images) in [
        ("tiny C=2", a, a_images),
        ("tiny C=3", b, b_images),
        ("max pool", c, c_images),
    ] {
        let classes = model.plan().classes.len();
        for policy in [
            OutputPolicy::Class,
            OutputPolicy::TopK(3),
            OutputPolicy::TopK(classes as u32),
        ] {
            let m = reserve(&model, policy);
            assert_eq!(m.plan().output(), policy);
            let top = policy.revealed_classes(classes);
            for x in images.iter().take(3) {
                let (out, _) = infer(&m, x);
                assert_eq!(out.policy, policy);
                assert_eq!(out.ranked, want(&m, &out, top), "{name} {policy}");
                assert_eq!(out.class, out.ranked[0]);
                assert!(out.logits.is_empty() && out.logits_ring.is_empty());
                match (policy, out.revealed()) {
                    (OutputPolicy::Class, Revealed::Class(c)) => assert_eq!(c, out.ranked[0]),
                    (OutputPolicy::TopK(_), Revealed::TopK(r)) => assert_eq!(r.len(), top),
                    other => panic!("{other:?}"),
                }
            }
        }
        // Under `logits` the client ranks the revealed logits by the same rule.
        let (out, _) = infer(&model, &images[0]);
        assert_eq!(out.policy, OutputPolicy::Logits);
        assert_eq!(out.ranked, want(&model, &out, classes));
        assert_eq!(
            out.logits_ring,
            model.fixed().forward(&out.input_ring).unwrap()
        );
    }
}

/// Logits of class `to` made equal to those of `from` for every image (its weight rows and bias
/// copied), so the garbled top-k must break planted ties by the lower index.
fn planted_ties(model: &ServerModel, copies: &[(usize, usize)]) -> ServerModel {
    let mut fixed = model.fixed().clone();
    let last = fixed.stages.last_mut().unwrap();
    assert_eq!(last.bias.len(), model.plan().classes.len());
    for t in &mut last.terms {
        let per = t.conv.weight_len() / t.conv.out_channels;
        for &(from, to) in copies {
            let row = t.weights[from * per..(from + 1) * per].to_vec();
            t.weights[to * per..(to + 1) * per].copy_from_slice(&row);
        }
    }
    for &(from, to) in copies {
        last.bias[to] = last.bias[from];
    }
    let plan = model.plan();
    ServerModel::from_fixed(
        "tied",
        &plan.input,
        &plan.classes,
        fixed,
        None,
        String::new(),
    )
    .unwrap()
}

#[test]
fn planted_ties_rank_the_lower_index_first() {
    let (_, _, model, images) = tiny_model(2, 8, 9);
    // Three classes tie with class 2 and two with class 6.
    let tied = planted_ties(&model, &[(2, 0), (2, 5), (2, 9), (6, 1), (6, 7)]);
    let m = serve(Arc::new(tied), OutputPolicy::TopK(10));
    let mut tie_ranked = false;
    for x in images.iter().take(4) {
        let (out, _) = infer(&m, x);
        let logits = m.fixed().forward(&out.input_ring).unwrap();
        assert_eq!(logits[0], logits[2]);
        assert_eq!(logits[1], logits[6]);
        assert_eq!(out.ranked, want(&m, &out, 10));
        // Tied classes appear in index order.
        let pos = |c| out.ranked.iter().position(|&r| r == c).unwrap();
        assert!(pos(0) < pos(2) && pos(2) < pos(5) && pos(5) < pos(9));
        assert!(pos(1) < pos(6) && pos(6) < pos(7));
        tie_ranked = true;
    }
    assert!(tie_ranked);
    // All logits equal (zero weights and biases): the class is 0 and the order the index order.
    let mut fixed = model.fixed().clone();
    let last = fixed.stages.last_mut().unwrap();
    last.terms.iter_mut().for_each(|t| t.weights.fill(0));
    last.bias.fill(0);
    let plan = model.plan();
    let flat = ServerModel::from_fixed(
        "flat",
        &plan.input,
        &plan.classes,
        fixed,
        None,
        String::new(),
    )
    .unwrap();
    let m = serve(Arc::new(flat), OutputPolicy::TopK(4));
    let (out, _) = infer(&m, &images[0]);
    assert_eq!(out.ranked, vec![0, 1, 2, 3]);
}

#[test]
fn class_policy_sends_no_logit_share() {
    let (_, _, model, images) = tiny_model(2, 8, 4);
    let (_, plain) = infer(&model, &images[0]);
    let m = reserve(&model, OutputPolicy::Class);
    let (out, frames) = infer(&m, &images[0]);
    let down = |f: &Frames| {
        f.0.iter()
            .filter(|(side, ..)| *side == Side::Server)
            .map(|(_, kind, len)| (*kind, *len))
            .collect::<Vec<_>>()
    };
    // Under `logits` the last frame is the server's share of the logits.
    assert_eq!(down(&plain).last().unwrap().0, MsgKind::ServerOutput);
    let class = down(&frames);
    assert!(class.iter().all(|(kind, _)| *kind != MsgKind::ServerOutput));
    assert_eq!(class.len(), m.plan().server_frames());
    // The last frame: the labels of the server's share of the 10 logits (k bits each, 16 B per
    // label) and nothing else; the client answers nothing after it.
    let k = m.plan().k as usize;
    let (kind, len) = *class.last().unwrap();
    assert_eq!(kind, MsgKind::ServerLabels);
    let last_layer = down(&plain)
        .iter()
        .filter(|(kind, _)| *kind == MsgKind::ServerLabels)
        .count();
    assert_eq!(
        class
            .iter()
            .filter(|(kind, _)| *kind == MsgKind::ServerLabels)
            .count(),
        last_layer + 1
    );
    let header = len - 10 * k * 16;
    assert!(header < 16, "labels frame of {len} B");
    assert_eq!(frames.0.last().unwrap().0, Side::Server);
    assert_eq!(out.ranked.len(), 1);
    assert_eq!(out.ranked, want(&m, &out, 1));
}

#[test]
fn diff_harness_checks_the_revealed_ranking() {
    let (_, _, model, images) = tiny_model(2, 8, 6);
    let m = serve(model, OutputPolicy::TopK(3));
    let report = verify_local(&m, ClientInput::Normalised(images[1].clone())).unwrap();
    assert_eq!(report.first_divergence, None);
    assert_eq!(report.stages_checked, m.plan().stages.len());
    assert_eq!(report.outcome.ranked.len(), 3);
}

#[test]
fn policies_parse_display_and_fit_the_model() {
    for (s, p) in [
        ("logits", OutputPolicy::Logits),
        ("class", OutputPolicy::Class),
        ("top-1", OutputPolicy::Class),
        ("top-3", OutputPolicy::TopK(3)),
    ] {
        assert_eq!(s.parse::<OutputPolicy>().unwrap(), p);
    }
    assert_eq!(OutputPolicy::TopK(3).to_string(), "top-3");
    assert_eq!(
        serde_json::to_string(&OutputPolicy::TopK(3)).unwrap(),
        "\"top-3\""
    );
    assert_eq!(
        serde_json::from_str::<OutputPolicy>("\"class\"").unwrap(),
        OutputPolicy::Class
    );
    assert_eq!(OutputPolicy::Class.describe(), "class only");
    for bad in ["top-0", "top-", "top-x", "argmax", ""] {
        assert!(bad.parse::<OutputPolicy>().is_err(), "{bad}");
    }
    let (_, _, model, _) = tiny_model(2, 8, 2);
    let mut m = Arc::into_inner(model).unwrap();
    let before = m.plan().clone();
    assert!(m.set_output(OutputPolicy::TopK(11)).is_err());
    assert_eq!(
        m.plan(),
        &before,
        "a refused policy leaves the model as it was"
    );
    m.set_output(OutputPolicy::TopK(10)).unwrap();
    assert_eq!(
        m.plan().stages.last().unwrap().op,
        StageOp::TopK { top: 10 }
    );
    assert_eq!(m.plan().relu_count(), before.relu_count());
    m.set_output(OutputPolicy::Logits).unwrap();
    assert_eq!(m.plan(), &before);
    // A plan (or a worker's job) asking for a huge top-k is refused before anything is built.
    let huge = cryptonas_protocol::CircuitSpec {
        k: 32,
        k_out: 32,
        t: 0,
        kind: cryptonas_protocol::CircuitKind::TopK {
            classes: 1 << 16,
            top: 1 << 16,
        },
    };
    let started = std::time::Instant::now();
    assert!(huge.build().is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

/// A pool's pre-garbled material includes the top-k (fresh Δ per inference, like the ReLUs).
#[test]
fn pooled_material_of_a_class_model_is_bit_exact() {
    let (_, _, model, images) = tiny_model(2, 8, 12);
    let m = serve(model, OutputPolicy::TopK(3));
    let mut rng = Csprng::from_entropy().unwrap();
    for x in images.iter().take(2) {
        let material = m.prepare_offline(&mut rng).unwrap();
        let mut server =
            ServerSession::with_material(m.clone(), Csprng::from_entropy().unwrap(), material)
                .unwrap();
        let mut client = ClientSession::new(
            ClientInput::Normalised(x.clone()),
            Csprng::from_entropy().unwrap(),
        );
        cryptonas_protocol::run_local(&mut client, &mut server).unwrap();
        let out = client.outcome().unwrap();
        assert_eq!(out.ranked, want(&m, out, 3));
    }
}
