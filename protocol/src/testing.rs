//! Small CryptoNAS-shaped models with random weights, for tests, benchmarks and demos without
//! trained weights (feature `test-utils`).

use crate::ServerModel;
use cryptonas_arch::{cnet1, InputShape, Net};
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{Calibration, CalibrationParams, FixedModel, Model, ModelSpec, NormalForm};
use std::sync::Arc;

/// CNet1 ([`cryptonas_arch::cnet1`]: kernels 3,3,3,5,3,3; skips L2←{0,1}, L3←{1}, L4←{0,2},
/// L5←{2,3}) at width `channels` on `side`×`side` RGB inputs, random weights from `seed`,
/// calibrated at k = 32 with narrow ReLU rings ([`cryptonas_model::Calibration::narrow_config`])
/// on random normal images. Returns the model files (JSON, safetensors with
/// `metadata.fixed_point` set), the prepared model and 256 random normalised images.
pub fn tiny_model(
    channels: usize,
    side: usize,
    seed: u64,
) -> (Vec<u8>, Vec<u8>, Arc<ServerModel>, Vec<Vec<f32>>) {
    let net = Net {
        input: InputShape {
            channels: 3,
            height: side,
            width: side,
        },
        ..cnet1(channels)
    };
    let spec = model_spec(&net, "tiny").expect("valid spec");
    prepared(spec, seed, 256, Some("random weights (test model)"))
}

/// A test model's files and prepared server model: weights drawn from `seed`, `images` random
/// normal images (from the same seed), calibrated on the first 16 at k = 32 with narrow ReLU
/// rings (weights at 10 fractional bits, each ReLU layer in the narrowest ring that holds its
/// calibrated range, as the bundled models have).
fn prepared(
    mut spec: ModelSpec,
    seed: u64,
    images: usize,
    dataset: Option<&str>,
) -> (Vec<u8>, Vec<u8>, Arc<ServerModel>, Vec<Vec<f32>>) {
    let weights = random_init(&spec, seed).expect("random weights");
    let m = Model::from_bytes(spec.to_json().as_bytes(), &weights).expect("valid model");
    let nf = NormalForm::compile(&m).expect("normal form");
    let mut rng = SplitMix64::new(seed);
    let len = spec.input.channels * spec.input.height * spec.input.width;
    let images: Vec<Vec<f32>> = (0..images)
        .map(|_| (0..len).map(|_| rng.normal()).collect())
        .collect();
    let cal =
        Calibration::run(&nf, images[..16].iter().map(|v| v.as_slice())).expect("calibration");
    let cfg = cal
        .narrow_config(
            &nf,
            32,
            &CalibrationParams::default(),
            &vec![10; nf.stages.len()],
        )
        .expect("fits k = 32");
    spec.metadata.fixed_point = Some(cfg.clone());
    spec.metadata.dataset = dataset.map(String::from);
    let fixed = FixedModel::quantize(&nf, &cfg).expect("quantize");
    let sm = ServerModel::from_fixed(
        &spec.name,
        &m.spec.input,
        &m.spec.classes,
        fixed,
        None,
        String::new(),
    )
    .expect("servable");
    (spec.to_json().into_bytes(), weights, Arc::new(sm), images)
}

/// The small models with max pools and clips of [`pool_model`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolCase {
    /// conv → ReLU → 2×2/2 max pool (ReLU fused before) → conv → ReLU → linear.
    ReluBefore,
    /// conv → 3×3/2 max pool, padding 1 (overlapping windows) → ReLU (fused after) → linear.
    ReluAfter,
    /// conv → 3×3/1 max pool, padding 1 at the end only, no ReLU → conv → Clip(0, 6) → linear.
    NoReluThenClip,
    /// conv → ReLU, read by a 2×2/2 max pool (its own stage over the ReLU output) and by a
    /// strided conv; their sum → ReLU → linear.
    SharedRelu,
}

/// A small model (3 × 8 × 8 input, 4 channels) with a max pool or a clip ([`PoolCase`]), random
/// weights from `seed`, calibrated at k = 32 with narrow rings on random normal images. Returns
/// the model files (JSON, safetensors with `metadata.fixed_point`), the prepared model and 64
/// random normalised images.
pub fn pool_model(
    case: PoolCase,
    seed: u64,
) -> (Vec<u8>, Vec<u8>, Arc<ServerModel>, Vec<Vec<f32>>) {
    use cryptonas_model::format::FORMAT_VERSION;
    use cryptonas_model::{InputSpec, Metadata, Node, Op};
    let node = |id: &str, op: Op, inputs: &[&str]| Node {
        id: id.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
    };
    let conv = |stride: usize| Op::Conv2d {
        out_channels: 4,
        kernel: 3,
        stride,
        padding: 1,
        groups: 1,
        bias: true,
    };
    let pool = |kernel, stride, padding, padding_end| Op::MaxPool {
        kernel,
        stride,
        padding,
        padding_end,
    };
    let fc = Op::Linear { out_features: 10 };
    let mut nodes = vec![
        node("input", Op::Input, &[]),
        node("c1", conv(1), &["input"]),
    ];
    nodes.extend(match case {
        PoolCase::ReluBefore => vec![
            node("r1", Op::Relu, &["c1"]),
            node("mp", pool(2, 2, 0, 0), &["r1"]),
            node("c2", conv(1), &["mp"]),
            node("r2", Op::Relu, &["c2"]),
            node("fc", fc, &["r2"]),
        ],
        PoolCase::ReluAfter => vec![
            node("mp", pool(3, 2, 1, 1), &["c1"]),
            node("r1", Op::Relu, &["mp"]),
            node("fc", fc, &["r1"]),
        ],
        PoolCase::NoReluThenClip => vec![
            node("mp", pool(3, 1, 0, 2), &["c1"]),
            node("c2", conv(1), &["mp"]),
            node("r6", Op::Clip { min: 0.0, max: 6.0 }, &["c2"]),
            node("fc", fc, &["r6"]),
        ],
        PoolCase::SharedRelu => vec![
            node("r1", Op::Relu, &["c1"]),
            node("mp", pool(2, 2, 0, 0), &["r1"]),
            node("c2", conv(2), &["r1"]),
            node("sum", Op::Add, &["mp", "c2"]),
            node("r2", Op::Relu, &["sum"]),
            node("fc", fc, &["r2"]),
        ],
    });
    let spec = ModelSpec {
        format_version: FORMAT_VERSION,
        name: "pool".into(),
        input: InputSpec {
            channels: 3,
            height: 8,
            width: 8,
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        },
        classes: (0..10).map(|i| format!("class {i}")).collect(),
        nodes,
        output: "fc".into(),
        metadata: Metadata::default(),
    };
    prepared(spec, seed, 64, None)
}

/// SHA-256 (hex) of [`seeded_transcript`]'s frames. A deliberate change of what goes on the wire
/// updates it in the same commit and says why. 2026-12 (protocol version 2): `ServerPlan` carries
/// the session's π key and the tables are hashed under it; then HE-1 (the server subtracts its
/// share before the modulus switch) changed every `ServerHeResponse`. Protocol version 3: every
/// plan stage carries its ReLU ring width k_l, and the tiny model runs its ReLUs in narrow rings,
/// so the OT, the garbled tables and the online labels all changed size. Protocol version 4: the
/// plan's stages (`"op": {"relu": {}}` / `"logits"` in place of `"relu": true/false`); every
/// other frame is unchanged. Protocol version 5 (output policies) left the `logits` transcript
/// as it was: the hello, whose version changed, is not hashed. Then `ClientOtSetup` moved into
/// the client's first flight (with the HE masks): every frame in each direction is byte-for-byte
/// what it was, only that frame now precedes the server's HE responses in the interleaving.
/// Protocol version 6: `ClientOtExtend` is a part of the matrix and names its first word (8 more
/// bytes; the tiny model's matrix is one part); every other frame is unchanged.
/// Protocol version 7: the ReLU and max-pool circuits neither zero by the sign nor subtract the
/// mask, so their `ServerGarbled` tables are shorter and carry the arithmetic output's words in
/// place of the decoding bits, and every frame's tables begin with a 16-byte header (the
/// circuit's fingerprint and the instance count); every other frame is unchanged.
pub const SEEDED_TRANSCRIPT_SHA256: &str =
    "32d8c095b74881a0a703845138c128bc208ee22dbe8f2c0a48ad415d330f8fae";

/// [`SEEDED_TRANSCRIPT_SHA256`] of the same model served under the `class` output policy
/// (protocol version 5): the plan's last stage is `{"top_k": {"top": 1}}`, the OT and the
/// garbled layers take the logits' share bits and the top-k circuit, the last `ServerLabels`
/// carries the labels of the server's logit share, and there is no `ServerOutput`. Re-pinned
/// with the other when `ClientOtSetup` joined the first flight (same frames, new interleaving),
/// when `ClientOtExtend` became a part (protocol version 6), and with the arithmetic output
/// (protocol version 7: the ReLU layers' frames change, and the top-k's by its tables' header).
pub const SEEDED_CLASS_TRANSCRIPT_SHA256: &str =
    "4cbb83a229460d7a1658e9163e3a3c9cef08909860e8057af90d233a85633035";

/// One whole inference with seeded generators on both sides (tiny model, C = 2, 8×8, served
/// under `policy`): SHA-256 over
/// `[direction: 0 up, 1 down][len u64 LE][frame]` for every frame after the client's hello (whose
/// version field changes with the protocol version), and the number of frames. Panics if the
/// run fails or its answer (logits, or ranked classes) differs from the plaintext fixed-point
/// engine's. Natively every AES
/// backend gives the same digest; wasm draws the garbler's random labels differently (ChaCha12
/// instead of AES in counter mode), so its transcript differs from the garbling on.
pub fn seeded_transcript(policy: crate::OutputPolicy) -> (String, usize) {
    use crate::{run_local_with, ClientInput, ClientSession, ServerSession, Side, Tap};
    use cryptonas_crypto::Csprng;
    use sha2::{Digest, Sha256};

    /// Hashes every frame with its direction.
    struct Transcript(Sha256, usize);
    impl Tap for Transcript {
        fn frame(&mut self, from: Side, frame: Vec<u8>) -> Vec<u8> {
            self.1 += 1;
            if self.1 > 1 {
                self.0.update([u8::from(from == Side::Server)]);
                self.0.update((frame.len() as u64).to_le_bytes());
                self.0.update(&frame);
            }
            frame
        }
    }
    let (_, _, model, images) = tiny_model(2, 8, 11);
    let mut model = Arc::into_inner(model).expect("a fresh model");
    model.set_output(policy).expect("the policy fits the model");
    let model = Arc::new(model);
    let mut server = ServerSession::new(model.clone(), Csprng::from_seed([1; 32]));
    let mut client = ClientSession::new(
        ClientInput::Normalised(images[0].clone()),
        Csprng::from_seed([2; 32]),
    );
    let mut t = Transcript(Sha256::new(), 0);
    run_local_with(&mut client, &mut server, &mut t).expect("a seeded inference runs");
    let out = client.outcome().expect("finished");
    let logits = model.fixed().forward(&out.input_ring).expect("fixed point");
    match policy {
        crate::OutputPolicy::Logits => assert_eq!(
            out.logits_ring, logits,
            "private logits equal the plaintext fixed-point engine's"
        ),
        crate::OutputPolicy::Class | crate::OutputPolicy::TopK(_) => assert_eq!(
            out.ranked,
            cryptonas_model::rank_logits(&logits, model.plan().k, policy.revealed_classes(10)),
            "the private ranking equals the plaintext fixed-point engine's"
        ),
    }
    let digest = t.0.finalize().iter().map(|b| format!("{b:02x}")).collect();
    (digest, t.1)
}

/// Every frame `session` has to send now (what a transport sends before it reads again), for tests
/// that drive a session through another API than [`crate::run_local`] (the browser shell's).
/// Panics on an error or a job: server sessions hand out none.
pub fn pending_frames(session: &mut dyn crate::Session) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(o) = session.poll_output().expect("the session has output") {
        match o {
            crate::Output::Frame(f) => out.push(f),
            crate::Output::Finished => break,
            crate::Output::Job(_) => panic!("a server session handed out a job"),
        }
    }
    out
}
