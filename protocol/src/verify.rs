//! The per-layer diff harness: runs both halves in process, reconstructs every stage from the two
//! parties' shares, and reports the first element that differs from the plaintext fixed-point engine.
//! For developers holding the model files; a deployed server never records its shares.

use crate::{
    run_local, ClientInput, ClientSession, Outcome, ProtocolError, ServerModel, ServerSession,
};
use cryptonas_crypto::Csprng;
use cryptonas_model::intconv::ring_mask;
use cryptonas_model::rank_logits;
use serde::Serialize;
use std::sync::Arc;

/// The first mismatch between the protocol and the plaintext engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// Stage index.
    pub stage: usize,
    /// "stage output" (a ReLU input or the logits), "garbled layer output" (a ReLU, clip or max
    /// pool output) or "revealed class index" (the output's top-k; values are class indices).
    pub what: &'static str,
    /// Element index within the stage.
    pub index: usize,
    /// Reconstructed from the shares.
    pub got: u64,
    /// The fixed-point engine's value.
    pub expected: u64,
}

/// What [`verify_local`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Stages compared (all of them unless a divergence stopped the comparison).
    pub stages_checked: usize,
    /// `None` when every stage matched bit for bit.
    pub first_divergence: Option<Divergence>,
    /// The client's result.
    pub outcome: Outcome,
}

/// Runs one inference in process with share recording and compares every layer.
pub fn verify_local(
    model: &Arc<ServerModel>,
    input: ClientInput,
) -> Result<VerifyReport, ProtocolError> {
    let rng = || Csprng::from_entropy().map_err(|e| ProtocolError::Check(e.to_string()));
    let mut server = ServerSession::new(model.clone(), rng()?);
    let mut client = ClientSession::new(input, rng()?);
    server.record();
    client.record();
    run_local(&mut client, &mut server).map_err(|(_, e)| e)?;
    let outcome = client
        .outcome()
        .cloned()
        .ok_or(ProtocolError::Internal("a finished run without an outcome"))?;
    let (c, s) = match (client.recorded(), server.recorded()) {
        (Some(c), Some(s)) => (c, s),
        _ => return Err(ProtocolError::Internal("recording was not on")),
    };
    let fixed = model.fixed();
    let expected = fixed
        .forward_stages(&outcome.input_ring)
        .map_err(|e| ProtocolError::Check(e.to_string()))?;
    let k = model.plan().k;
    let mask = ring_mask(k);
    let mut relu_index = 0;
    for (i, want) in expected.iter().enumerate() {
        let got: Vec<u64> = s.stage_shares[i]
            .iter()
            .zip(&c.stage_shares[i])
            .map(|(a, b)| a.wrapping_add(*b) & mask)
            .collect();
        let diff = |what, got: &[u64], want: &[u64]| {
            got.iter()
                .zip(want)
                .position(|(g, w)| g != w)
                .or((got.len() != want.len()).then(|| got.len().min(want.len())))
                .map(|index| Divergence {
                    stage: i,
                    what,
                    index,
                    got: got.get(index).copied().unwrap_or(0),
                    expected: want.get(index).copied().unwrap_or(0),
                })
        };
        if let Some(d) = diff("stage output", &got, want) {
            return Ok(VerifyReport {
                stages_checked: i,
                first_divergence: Some(d),
                outcome,
            });
        }
        let st = &model.plan().stages[i];
        if let crate::StageOp::TopK { top } = st.op {
            // The garbled top-k: the revealed ranking against the plaintext logits'.
            let want_ranked = rank_logits(want, k, top as usize);
            if outcome.ranked != want_ranked {
                let index = outcome
                    .ranked
                    .iter()
                    .zip(&want_ranked)
                    .position(|(g, w)| g != w)
                    .unwrap_or(0);
                let at = |r: &[usize]| r.get(index).map_or(u64::MAX, |&c| c as u64);
                return Ok(VerifyReport {
                    stages_checked: i,
                    first_divergence: Some(Divergence {
                        stage: i,
                        what: "revealed class index",
                        index,
                        got: at(&outcome.ranked),
                        expected: at(&want_ranked),
                    }),
                    outcome,
                });
            }
        } else if st.garbled() {
            // The stage's layer as the plaintext engine computes it (in its own ring k_l).
            let want_y = fixed.stages[i].activate(want, k);
            let got_y: Vec<u64> = c.relu_shares[relu_index]
                .iter()
                .zip(&s.remasks[relu_index])
                .map(|(o, m)| o.wrapping_add(*m) & mask)
                .collect();
            relu_index += 1;
            if let Some(d) = diff("garbled layer output", &got_y, &want_y) {
                return Ok(VerifyReport {
                    stages_checked: i,
                    first_divergence: Some(d),
                    outcome,
                });
            }
        }
    }
    Ok(VerifyReport {
        stages_checked: expected.len(),
        first_divergence: None,
        outcome,
    })
}
