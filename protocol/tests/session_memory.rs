//! The server's admission estimate ([`ServerModel::session_memory_bytes`]) against the heap a
//! server session really holds at its peak, measured by a metering allocator. The session runs
//! over the in-process transport ([`run_local`]), which calls one side at a time and hands frames
//! over one by one; metering is on only while the server runs. The server holds each incoming
//! frame as a transport would (a copy made while metered) and every frame it sends stays counted
//! until the client has consumed it.

use cryptonas_alloc_meter::Meter;
use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    run_local, ClientInput, ClientSession, Output, ProtocolError, ServerSession, Session,
};

#[global_allocator]
static HEAP: Meter = Meter::new();

/// The server half with every call metered.
struct Metered(ServerSession);

impl Session for Metered {
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError> {
        HEAP.metered(|| {
            let received = frame.to_vec();
            self.0.handle(&received)
        })
    }

    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError> {
        HEAP.metered(|| self.0.poll_output())
    }
}

/// Runs one private inference and returns the server session's peak heap in bytes.
fn server_peak(model: &std::sync::Arc<cryptonas_protocol::ServerModel>, x: &[f32]) -> usize {
    let before = HEAP.live();
    HEAP.reset_peak();
    let mut server = Metered(
        HEAP.metered(|| ServerSession::new(model.clone(), Csprng::from_entropy().unwrap())),
    );
    let mut client = ClientSession::new(
        ClientInput::Normalised(x.to_vec()),
        Csprng::from_entropy().unwrap(),
    );
    run_local(&mut client, &mut server).unwrap();
    let out = client.outcome().unwrap();
    assert_eq!(
        out.logits_ring,
        model.fixed().forward(&out.input_ring).unwrap()
    );
    drop(server);
    HEAP.peak() - before
}

#[test]
fn session_memory_estimate_bounds_the_measured_peak() {
    // A small model, then CNet1's sizes at C = 4 (24,576 ReLUs, like the bundled cnet1-c4). At a
    // real model's size the bound must also be tight enough that admission does not turn sessions
    // away for memory they would never use (small models are dominated by fixed-size
    // ciphertexts, which the estimate counts generously).
    for (channels, side, max_slack) in [(2, 16, f64::INFINITY), (4, 32, 2.0)] {
        let (_, _, model, images) = cryptonas_protocol::testing::tiny_model(channels, side, 11);
        let estimate = model.session_memory_bytes() as usize;
        let measured = server_peak(&model, &images[0]);
        let slack = estimate as f64 / measured as f64;
        eprintln!(
            "C = {channels}, {side}×{side}: {} ReLUs, measured peak {measured} B, estimate {estimate} B ({slack:.2}×)",
            model.plan().relu_count(),
        );
        assert!(measured <= estimate, "{measured} B > estimate {estimate} B");
        assert!(slack <= max_slack, "estimate {slack:.2}× the measured peak");
    }
}

#[test]
fn max_pool_sessions_stay_within_the_estimate() {
    use cryptonas_protocol::testing::{pool_model, PoolCase};
    // Overlapping windows OT every copy of a cell: the estimate counts share words, not ReLUs.
    for case in [PoolCase::ReluAfter, PoolCase::NoReluThenClip] {
        let (_, _, model, images) = pool_model(case, 11);
        let estimate = model.session_memory_bytes() as usize;
        let measured = server_peak(&model, &images[0]);
        eprintln!("{case:?}: measured peak {measured} B, estimate {estimate} B");
        assert!(
            measured <= estimate,
            "{case:?}: {measured} B > estimate {estimate} B"
        );
    }
}

#[test]
fn a_model_whose_session_exceeds_the_limit_is_refused_with_the_numbers() {
    let (json, weights, model, _) = cryptonas_protocol::testing::tiny_model(2, 16, 11);
    let m = cryptonas_model::Model::from_bytes(&json, &weights).unwrap();
    let need = model.session_memory_bytes();
    // The estimate from the plan alone (what the server checks before the HE precomputation)
    // is the prepared model's.
    assert_eq!(model.plan().session_memory_bytes().unwrap(), need);
    let estimate = cryptonas_protocol::SessionEstimate::of("tiny", &m).unwrap();
    assert_eq!(estimate.bytes, need);
    assert_eq!(estimate.instances, model.plan().relu_count());
    let limit = need - (1 << 20);
    let e = cryptonas_protocol::ServerModel::new_within("tiny", &m, limit)
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "needs an estimated {} MiB per session ({} garbled ReLUs",
            need.div_ceil(1 << 20),
            estimate.instances
        )) && msg.contains(&format!("limit of {} MiB", limit >> 20))
            && msg.contains("'tiny'"),
        "{msg}"
    );
    assert!(cryptonas_protocol::ServerModel::new_within("tiny", &m, need).is_ok());
}
