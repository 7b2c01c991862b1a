//! A user's model with max pools and a ReLU6, end to end: the ONNX file
//! (`tests/data/maxpool_cnn.onnx`, written by `tests/data/maxpool_cnn.py` with the `onnx` package)
//! is imported and calibrated as `cryptonas import` does, loaded by the server's model loader,
//! served on 127.0.0.1 and classified privately by the native client, bit-exact against the
//! plaintext fixed-point engine.

use cryptonas_client::{classify, NetworkProfile};
use cryptonas_model::StageKind;
use cryptonas_protocol::{ClientInput, ServerModel, StageOp};
use std::path::Path;

mod common;
use common::serve_hosted;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_max_pool_model_is_classified_privately_bit_exactly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("cryptonas-onnx-maxpool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // `cryptonas import tests/data/maxpool_cnn.onnx --out DIR/maxpool_cnn --calibration www/samples`
    let args = cryptonas_onnx::cli::ImportArgs {
        model: root.join("tests/data/maxpool_cnn.onnx"),
        out: Some(dir.join("maxpool_cnn")),
        calibration: Some(root.join("www/samples")),
        classes: None,
        input_norm: None,
        input_shape: None,
        k: 32,
        dry_run: false,
        json: false,
    };
    assert!(cryptonas_onnx::cli::run_import(&args).unwrap());

    // The normal form: ReLU fused into the first pool, the clip its own garbled layer, the
    // second pool (overlapping windows, padding) without a ReLU.
    let model = cryptonas_model::Model::load(
        dir.join("maxpool_cnn.json"),
        dir.join("maxpool_cnn.safetensors"),
    )
    .unwrap();
    let nf = cryptonas_model::NormalForm::compile(&model).unwrap();
    let kinds: Vec<String> = nf
        .stages
        .iter()
        .map(|s| match &s.kind {
            StageKind::MaxPool { relu, .. } => format!("maxpool(relu {relu})"),
            StageKind::Clip { max, .. } => format!("clip({max})"),
            StageKind::Relu { .. } => "relu".into(),
            StageKind::Logits => "logits".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "maxpool(relu true)",
            "clip(6)",
            "maxpool(relu false)",
            "logits"
        ]
    );
    let reference = ServerModel::new("maxpool_cnn", &model).unwrap();
    let ops: Vec<&StageOp> = reference.plan().stages.iter().map(|s| &s.op).collect();
    assert!(matches!(ops[0], StageOp::MaxPool { .. }));
    assert!(matches!(ops[1], StageOp::Relu { clip: Some(_) }));
    assert!(matches!(ops[2], StageOp::MaxPool { .. }));
    // 8×16×16 pool outputs, 8×16×16 clipped ReLUs, 8×8×8 pool outputs.
    assert_eq!(reference.plan().relu_count(), 2048 + 2048 + 512);

    // The server's own loader, as `cryptonas serve --models DIR` runs it.
    let hosted = cryptonas_server::load_models(&dir, 0, &Default::default(), 2 << 30).unwrap();
    assert_eq!(hosted.len(), 1);
    let url = serve_hosted(hosted[0].clone()).await;
    for sample in ["cat", "ship", "frog"] {
        let bytes = std::fs::read(root.join(format!("www/samples/{sample}.jpg"))).unwrap();
        let r = classify(
            &url,
            "maxpool_cnn",
            ClientInput::ImageBytes(bytes.clone()),
            NetworkProfile::LOOPBACK,
        )
        .await
        .unwrap();
        let x = cryptonas_model::image::load_input(&bytes, &model.spec.input).unwrap();
        let want_input = reference.fixed().quantize_input(&x).unwrap();
        assert_eq!(r.outcome.input_ring, want_input, "{sample}");
        let want = reference.fixed().forward(&want_input).unwrap();
        assert_eq!(
            r.outcome.logits_ring, want,
            "{sample}: private != fixed point"
        );
        assert_eq!(r.relus, 2048 + 2048 + 512);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
