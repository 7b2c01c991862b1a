//! The compatibility and cost report: per ONNX node what it became (or why not), per model
//! layer the private-inference work, and whole-model estimates from measured per-ReLU costs.

use std::fmt::Write;

use cryptonas_model::count::node_comparisons;
use cryptonas_model::{FixedConfig, Model, ModelSpec, NormalForm, Op, StageKind};
use cryptonas_protocol::SessionEstimate;
use serde::Serialize;

use crate::import::{Analysis, NodeReport, SourceInfo, Status};

/// Measured per-ReLU costs of the private protocol, with where they come from.
#[derive(Clone, Debug, Serialize)]
pub struct CostConstants {
    /// Offline bytes per ReLU (both directions).
    pub offline_bytes_per_relu: f64,
    /// Online bytes per ReLU (both directions).
    pub online_bytes_per_relu: f64,
    /// Offline compute seconds per ReLU on loopback.
    pub offline_s_per_relu: f64,
    /// Online compute seconds per ReLU on loopback.
    pub online_s_per_relu: f64,
    /// Ring size the constants were measured at.
    pub k: u32,
    /// Provenance.
    pub source: &'static str,
}

/// The constants of the committed benchmark run of 2026-12-07 (`bench/results/results.md`,
/// protocol 7), the random-weight sweep at k = 32 (its least-squares slopes: 1,845 B and 516 B
/// per ReLU); the bundled models run narrow rings, so their per-ReLU figures are lower.
pub const MEASURED: CostConstants = CostConstants {
    offline_bytes_per_relu: 1887.0,
    online_bytes_per_relu: 517.0,
    offline_s_per_relu: 0.78 / 86016.0,
    online_s_per_relu: 0.063 / 49152.0,
    k: 32,
    source: "bench/results/results.md, the committed run of 2026-12-07 05:29 UTC (AMD EPYC, 2 \
             vCPUs, AES-NI and VAES, release build, load 1.58 at the start), protocol 7: offline \
             1,887 B/ReLU and online 517 B/ReLU (means of the k = 32 CNet1 sweep), online 1.28 \
             us/ReLU on loopback (sweep-c8: 0.063 s for 49,152 ReLUs), offline 9.1 us/ReLU on \
             loopback (sweep-c14: 0.78 s for 86,016 ReLUs)",
};

/// Simulated networks, as the bench harness defines them.
pub const NETWORKS: [(&str, f64, f64); 3] = [
    ("loopback", 0.0, 0.0),
    ("lan", 0.5, 1000.0),
    ("wan", 40.0, 100.0),
];

/// The server's default `--max-session-memory-mb`.
pub const DEFAULT_SESSION_LIMIT_BYTES: u64 = 2048 << 20;

/// One model layer's private-inference work.
#[derive(Clone, Debug, Serialize)]
pub struct LayerCost {
    /// Model node id.
    pub node: String,
    /// Model op.
    pub op: &'static str,
    /// Output C×H×W.
    pub output: String,
    /// Garbled ReLUs.
    pub relus: u64,
    /// Max-pool comparisons.
    pub comparisons: u64,
    /// AND gates: ReLUs k − 1 each (0 for a ReLU fused into a max pool); a max pool, its
    /// output elements times the garbled max-pool circuit's AND gates (ReLU fused when the model
    /// has one right before or after it); a clip, the clipped-ReLU circuit's with the bound at
    /// scale 0 (the real bound is c·2^F_Z: its constant bits move the count by a few gates).
    pub and_gates: u64,
    /// Multiply-accumulates.
    pub macs: u64,
}

/// Estimated time on one network.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Network name.
    pub network: &'static str,
    /// Round-trip time (ms).
    pub rtt_ms: f64,
    /// Bandwidth (Mbit/s; 0 = unlimited).
    pub mbit_per_s: f64,
    /// Offline phase (s).
    pub offline_s: f64,
    /// Online phase (s).
    pub online_s: f64,
}

/// Whole-model private-inference estimates.
#[derive(Clone, Debug, Serialize)]
pub struct Costs {
    /// Per layer (every model node).
    pub layers: Vec<LayerCost>,
    /// Total ReLUs.
    pub relus: u64,
    /// Total max-pool comparisons.
    pub comparisons: u64,
    /// Elements through `clip` nodes (garbled clipped ReLUs, in the estimates).
    pub clip_elements: u64,
    /// Total AND gates.
    pub and_gates: u64,
    /// Total MACs.
    pub macs: u64,
    /// Layers with garbled circuits (ReLU or max-pool).
    pub nonlinear_layers: usize,
    /// Ring size assumed.
    pub k: u32,
    /// Estimated offline bytes.
    pub offline_bytes: f64,
    /// Estimated online bytes.
    pub online_bytes: f64,
    /// Estimated peak server memory of one session (bytes): the server's own estimate
    /// (`server_session`) once the model is calibrated, else an approximation from the
    /// architecture at ring k.
    pub server_memory_bytes: u64,
    /// The server's own estimate ([`SessionEstimate`], from the calibrated plan): the numbers it
    /// states when it refuses the model. None before calibration.
    pub server_session: Option<SessionEstimate>,
    /// Whether that fits the server's default per-session limit.
    pub fits_default_server_limit: bool,
    /// Estimated latency per network.
    pub latency: Vec<Latency>,
    /// The constants used.
    pub constants: CostConstants,
}

/// Fixed-point calibration outcome.
#[derive(Clone, Debug, Serialize)]
pub struct CalibrationReport {
    /// Images used.
    pub images: usize,
    /// Ring size chosen.
    pub k: u32,
    /// Smallest ring the calibrated ranges allow.
    pub smallest_k: Option<u32>,
    /// Fractional bits of the input and of activations.
    pub f_in: u32,
    /// Fractional bits of ReLU outputs.
    pub f_a: u32,
    /// Calibration images whose fixed-point argmax equals the float argmax.
    pub argmax_agreement: usize,
    /// Largest |fixed − float| logit over the calibration images.
    pub max_logit_error: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Model name.
    pub name: String,
    /// Facts about the file.
    pub source: SourceInfo,
    /// Whether the whole graph converted.
    pub imported: bool,
    /// Counts of node outcomes.
    pub summary: NodeSummary,
    /// Per ONNX node.
    pub nodes: Vec<NodeReport>,
    /// Whether private inference can run it, and what it runs or why not.
    pub private_inference: PrivateStatus,
    /// Estimates (None when the architecture could not be built).
    pub costs: Option<Costs>,
    /// Calibration (None when not run).
    pub calibration: Option<Result<CalibrationReport, String>>,
    /// Notes.
    pub notes: Vec<String>,
}

/// Whether private inference can run the model.
#[derive(Clone, Debug, Serialize)]
pub struct PrivateStatus {
    /// True when the normal form compiles.
    pub supported: bool,
    /// What it runs, or the reason (naming the node) it cannot.
    pub detail: String,
}

/// Counts of node outcomes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeSummary {
    /// Converted to model nodes.
    pub converted: usize,
    /// Folded at import.
    pub folded: usize,
    /// Dropped.
    pub dropped: usize,
    /// Unsupported.
    pub unsupported: usize,
    /// Not analysed.
    pub skipped: usize,
}

/// Per-stage truncation `t = F_Z − f_a` of each ReLU, clip and max-pool node under a
/// fixed-point configuration.
fn truncations(nf: &NormalForm, cfg: &FixedConfig) -> std::collections::HashMap<String, u32> {
    nf.stages
        .iter()
        .zip(&cfg.stages)
        .filter_map(|(st, sc)| match &st.kind {
            StageKind::Relu { node }
            | StageKind::Clip { node, .. }
            | StageKind::MaxPool { node, .. } => {
                Some((node.clone(), sc.f_z.saturating_sub(cfg.f_a)))
            }
            StageKind::Logits => None,
        })
        .collect()
}

/// Private-inference work and estimates for an architecture. `trunc` gives each ReLU node's
/// truncation (0 when unknown, an upper bound on the AND gates).
pub fn costs(
    spec: &ModelSpec,
    k: u32,
    trunc: &std::collections::HashMap<String, u32>,
) -> Option<Costs> {
    let g = spec.validate().ok()?;
    let ku = u64::from(k);
    let relu_ands = ku - 1;
    // ReLUs fused into a max pool (the normal form's rule: a ReLU whose only consumer is the
    // pool, or the pool's only consumer): they cost nothing of their own.
    let n = spec.nodes.len();
    let mut consumers = vec![Vec::new(); n];
    for (i, ins) in g.inputs.iter().enumerate() {
        for &j in ins {
            consumers[j].push(i);
        }
    }
    let sole = |i: usize| match consumers[i].as_slice() {
        [c] if i != g.output => Some(*c),
        _ => None,
    };
    let is = |i: usize, relu: bool| {
        if relu {
            spec.nodes[i].op == Op::Relu
        } else {
            matches!(spec.nodes[i].op, Op::MaxPool { .. })
        }
    };
    let mut fused_relu = vec![false; n];
    let mut pool_relu = vec![false; n];
    for &i in &g.order {
        if !is(i, false) {
            continue;
        }
        if let Some(&j) = g.inputs[i].first() {
            if is(j, true) && sole(j) == Some(i) {
                fused_relu[j] = true;
                pool_relu[i] = true;
            }
        }
        if let Some(c) = sole(i).filter(|&c| is(c, true)) {
            fused_relu[c] = true;
            pool_relu[i] = true;
        }
    }
    let mut layers = Vec::new();
    let (mut relus, mut comparisons, mut clip, mut ands, mut macs) = (0u64, 0u64, 0u64, 0u64, 0u64);
    // Words of the client's shares the garbled layers read (OT bits and labels: k each).
    let mut share_words = 0u64;
    let mut instances = 0u64;
    let mut nonlinear = 0;
    for &i in &g.order {
        let node = &spec.nodes[i];
        let out = g.shapes[i];
        let x = g.inputs[i].first().map(|&j| g.shapes[j]);
        let r = if node.op == Op::Relu {
            out.len() as u64
        } else {
            0
        };
        let c = x.map_or(0, |x| node_comparisons(&node.op, x, out));
        let t = trunc.get(&node.id).copied().unwrap_or(0);
        let mut a = if fused_relu[i] { 0 } else { r * relu_ands };
        let mut garbled = if fused_relu[i] { 0 } else { r };
        let mut words = garbled;
        match &node.op {
            Op::Clip { max, .. } => {
                clip += out.len() as u64;
                let bound = cryptonas_gc::ReluVariant::Clipped {
                    max: (f64::from(*max).max(0.0) as u64).min((1 << (k - 1)) - 1),
                };
                let per = cryptonas_gc::ReluCircuit::new(k, t.min(k - 2), bound)
                    .map_or(relu_ands, |c| c.circuit().and_count() as u64);
                a = out.len() as u64 * per;
                garbled = out.len() as u64;
                words = garbled;
            }
            Op::MaxPool { kernel, .. } => {
                let w = kernel * kernel;
                let per = cryptonas_gc::MaxPoolCircuit::new(k, k, t.min(k - 2), w, pool_relu[i])
                    .map_or(0, |c| c.circuit().and_count() as u64);
                a = out.len() as u64 * per;
                garbled = out.len() as u64;
                words = garbled * w as u64;
            }
            _ => {}
        }
        let m = match (&node.op, x) {
            (Op::Conv2d { kernel, groups, .. }, Some(x)) => {
                (out.len() * (x.c / groups) * kernel * kernel) as u64
            }
            (Op::FactorizedReduction { .. }, Some(x)) => (out.len() * x.c) as u64,
            (Op::Linear { out_features }, Some(x)) => (out_features * x.len()) as u64,
            _ => 0,
        };
        if garbled > 0 {
            nonlinear += 1;
        }
        relus += r;
        comparisons += c;
        ands += a;
        macs += m;
        share_words += words;
        instances += garbled;
        layers.push(LayerCost {
            node: node.id.clone(),
            op: node.op.name(),
            output: format!("{}x{}x{}", out.c, out.h, out.w),
            relus: r,
            comparisons: c,
            and_gates: a,
            macs: m,
        });
    }
    let cst = MEASURED;
    // ReLU-equivalents: the measured constants are per ReLU at ring k = 32 (31 AND gates); the
    // garbled layers count by their AND gates (tables dominate the bytes and the time).
    let units = ands as f64 / (f64::from(cst.k) - 1.0);
    let offline_bytes = units * cst.offline_bytes_per_relu;
    let online_bytes = units * cst.online_bytes_per_relu;
    let offline_rounds = nonlinear as f64 + 6.0;
    let online_rounds = nonlinear as f64 + 1.0;
    let latency = NETWORKS
        .iter()
        .map(|&(network, rtt_ms, mbit)| {
            let wire = |bytes: f64| {
                if mbit > 0.0 {
                    bytes * 8.0 / (mbit * 1e6)
                } else {
                    0.0
                }
            };
            Latency {
                network,
                rtt_ms,
                mbit_per_s: mbit,
                offline_s: units * cst.offline_s_per_relu
                    + wire(offline_bytes)
                    + offline_rounds * rtt_ms / 1e3,
                online_s: units * cst.online_s_per_relu
                    + wire(online_bytes)
                    + online_rounds * rtt_ms / 1e3,
            }
        })
        .collect();
    // Before calibration there is no plan: protocol::Plan::session_memory_bytes without the
    // HE-stage transient (`Report::set_server_session` replaces it by the server's own estimate):
    // held shares and masked tensors (16 B per element), OT labels (32·k B per share word a
    // garbled layer reads: one per ReLU, a window's per max-pool output), re-masks (8 B per
    // circuit instance), plus the KOS matrix (32·k B per share word).
    let input = g.shapes[g.input].len() as u64;
    let elements = share_words + instances + input + g.shapes[g.output].len() as u64;
    let server_memory_bytes =
        16 * elements + 32 * ku * share_words + 8 * instances + 32 * ku * share_words;
    Some(Costs {
        layers,
        relus,
        comparisons,
        clip_elements: clip,
        and_gates: ands,
        macs,
        nonlinear_layers: nonlinear,
        k,
        offline_bytes,
        online_bytes,
        server_memory_bytes,
        server_session: None,
        fits_default_server_limit: server_memory_bytes <= DEFAULT_SESSION_LIMIT_BYTES,
        latency,
        constants: cst,
    })
}

/// Why private inference cannot run this model, naming the node (or Ok with what it runs).
pub fn private_check(model: &Model) -> Result<(NormalForm, String), String> {
    let nf = NormalForm::compile(model).map_err(|e| e.to_string())?;
    let pools = nf
        .stages
        .iter()
        .filter(|s| matches!(s.kind, StageKind::MaxPool { .. }))
        .count();
    let d = format!(
        "supported: {} ReLU stages ({pools} of them max pools), {} garbled ReLUs and pool \
         outputs, {} composed MACs",
        nf.stages.len() - 1,
        nf.relu_count(),
        nf.macs()
    );
    Ok((nf, d))
}

/// Builds the report for an analysis (with the normal form's truncations when calibrated).
pub fn build(
    analysis: &Analysis,
    private: Result<String, String>,
    calibration: Option<Result<CalibrationReport, String>>,
    trunc_from: Option<(&NormalForm, &FixedConfig)>,
) -> Report {
    let mut summary = NodeSummary::default();
    for n in &analysis.nodes {
        match n.status {
            Status::Converted => summary.converted += 1,
            Status::Folded => summary.folded += 1,
            Status::Dropped => summary.dropped += 1,
            Status::Unsupported => summary.unsupported += 1,
            Status::Skipped => summary.skipped += 1,
        }
    }
    let spec = analysis
        .model
        .as_ref()
        .map(|m| &m.spec)
        .or(analysis.partial_spec.as_ref());
    let (k, trunc) = match trunc_from {
        Some((nf, cfg)) => (cfg.k, truncations(nf, cfg)),
        None => (32, Default::default()),
    };
    let mut notes = analysis.notes.clone();
    if analysis.model.is_none() && analysis.partial_spec.is_some() {
        notes
            .push("costs are for the graph with the unsupported element-wise nodes removed".into());
    }
    Report {
        name: spec.map_or_else(String::new, |s| s.name.clone()),
        source: analysis.source.clone(),
        imported: analysis.model.is_some(),
        summary,
        nodes: analysis.nodes.clone(),
        private_inference: match private {
            Ok(detail) => PrivateStatus {
                supported: true,
                detail,
            },
            Err(detail) => PrivateStatus {
                supported: false,
                detail,
            },
        },
        costs: spec.and_then(|s| costs(s, k, &trunc)),
        calibration,
        notes,
    }
}

fn si(v: f64, unit: &str) -> String {
    let (d, p) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    format!("{:.2} {p}{unit}", v / d)
}

impl Report {
    /// Replaces the architecture's memory approximation by the server's own estimate for the
    /// calibrated model (what a server checks when it loads it).
    pub fn set_server_session(&mut self, estimate: SessionEstimate) {
        if let Some(c) = self.costs.as_mut() {
            c.server_memory_bytes = estimate.bytes;
            c.server_session = Some(estimate);
            c.fits_default_server_limit = estimate.bytes <= DEFAULT_SESSION_LIMIT_BYTES;
        }
    }

    /// JSON for tools.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Text for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let src = &self.source;
        let _ = writeln!(
            s,
            "ONNX model: opset {}, IR {}, producer '{}', {} nodes, {} initializers",
            src.opset, src.ir_version, src.producer, src.node_count, src.initializers
        );
        let _ = writeln!(s, "input {}, output {}", src.input, src.output);
        let sm = &self.summary;
        let _ = writeln!(
            s,
            "\nnodes: {} converted, {} folded, {} dropped, {} unsupported, {} skipped -> {}",
            sm.converted,
            sm.folded,
            sm.dropped,
            sm.unsupported,
            sm.skipped,
            if self.imported {
                "IMPORTED"
            } else {
                "NOT IMPORTED"
            }
        );
        let _ = writeln!(
            s,
            "{:<5} {:<28} {:<20} {:<11} detail",
            "#", "node", "op", "status"
        );
        for n in &self.nodes {
            if matches!(n.status, Status::Folded) && self.nodes.len() > 60 {
                continue;
            }
            let st = match n.status {
                Status::Converted => "ok",
                Status::Folded => "folded",
                Status::Dropped => "dropped",
                Status::Unsupported => "UNSUPPORTED",
                Status::Skipped => "skipped",
            };
            let mut name = n.name.clone();
            if name.chars().count() > 28 {
                name = name.chars().take(27).collect::<String>() + "…";
            }
            let _ = writeln!(
                s,
                "{:<5} {:<28} {:<20} {:<11} {}",
                n.index, name, n.op_type, st, n.detail
            );
            if let Some(h) = &n.hint {
                let _ = writeln!(s, "{:<66} hint: {h}", "");
            }
        }
        if self.nodes.len() > 60 {
            let _ = writeln!(s, "({} folded constant nodes not listed)", sm.folded);
        }
        let _ = writeln!(
            s,
            "\nprivate inference: {}{}",
            if self.private_inference.supported {
                ""
            } else {
                "NOT SUPPORTED: "
            },
            self.private_inference.detail
        );
        if let Some(c) = &self.costs {
            let _ = writeln!(s, "\nper layer (ring k = {}):", c.k);
            let _ = writeln!(
                s,
                "{:<28} {:<16} {:>12} {:>10} {:>11} {:>13} {:>14}",
                "layer", "op", "output", "ReLUs", "max-cmps", "AND gates", "MACs"
            );
            for l in c
                .layers
                .iter()
                .filter(|l| l.relus + l.comparisons + l.and_gates + l.macs > 0)
            {
                let mut name = l.node.clone();
                if name.chars().count() > 28 {
                    name = name.chars().take(27).collect::<String>() + "…";
                }
                let _ = writeln!(
                    s,
                    "{:<28} {:<16} {:>12} {:>10} {:>11} {:>13} {:>14}",
                    name, l.op, l.output, l.relus, l.comparisons, l.and_gates, l.macs
                );
            }
            let _ = writeln!(
                s,
                "{:<28} {:<16} {:>12} {:>10} {:>11} {:>13} {:>14}",
                "total", "", "", c.relus, c.comparisons, c.and_gates, c.macs
            );
            if c.clip_elements > 0 {
                let _ = writeln!(
                    s,
                    "clip: {} elements (garbled clipped ReLUs: in the AND gates and the estimates)",
                    c.clip_elements
                );
            }
            let _ = writeln!(
                s,
                "\nestimated private-inference cost per image ({} garbled layers):",
                c.nonlinear_layers
            );
            let _ = writeln!(
                s,
                "  offline traffic {}   online traffic {}",
                si(c.offline_bytes, "B"),
                si(c.online_bytes, "B")
            );
            let verdict = if c.fits_default_server_limit {
                "fits"
            } else {
                "the server would REFUSE it"
            };
            let limit = DEFAULT_SESSION_LIMIT_BYTES >> 20;
            let _ = match &c.server_session {
                Some(e) => writeln!(
                    s,
                    "  server memory: {e}, as the server checks at load; default per-session \
                     limit {limit} MiB: {verdict}"
                ),
                None => writeln!(
                    s,
                    "  server memory per session ~{} (approximate until calibrated; default \
                     per-session limit {limit} MiB: {verdict})",
                    si(c.server_memory_bytes as f64, "B"),
                ),
            };
            for l in &c.latency {
                let net = if l.mbit_per_s > 0.0 {
                    format!(
                        "{} ({} ms RTT, {} Mbit/s)",
                        l.network, l.rtt_ms, l.mbit_per_s
                    )
                } else {
                    l.network.to_string()
                };
                let _ = writeln!(
                    s,
                    "  {net:<32} offline {:>10.2} s   online {:>9.3} s",
                    l.offline_s, l.online_s
                );
            }
            let _ = writeln!(s, "  constants: {}", c.constants.source);
            let _ = writeln!(s, "  model: time = per-ReLU loopback time + bytes / bandwidth + round trips x RTT (offline: garbled layers + 6 round trips, online: garbled layers + 1); ReLU AND gates k-1; a max pool costs its garbled circuit's AND gates per output (a ReLU before or after it fused, free), a clip the clipped-ReLU circuit's per element; memory: the server's own estimate once calibrated");
        }
        match &self.calibration {
            None => {}
            Some(Ok(c)) => {
                let _ = writeln!(s, "\nfixed point: k = {} (smallest safe k {}), f_in = {}, f_a = {}; argmax agrees with float on {}/{} calibration images, max logit error {:.3e}",
                    c.k, c.smallest_k.map_or("none".into(), |v| v.to_string()), c.f_in, c.f_a, c.argmax_agreement, c.images, c.max_logit_error);
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "\nfixed point: not calibrated: {e}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}
