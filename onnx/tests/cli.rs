//! The two binaries end to end: export a bundled model, import it back with a report, write the
//! pair only on success, and exit 2 with nothing written when a node is unsupported.

use std::process::Command;

use cryptonas_onnx::proto::ModelProto;
use prost::Message;

#[test]
fn export_then_import_with_the_command_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("cryptonas-onnx-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let onnx = dir.join("c4.onnx");
    let st = Command::new(env!("CARGO_BIN_EXE_cryptonas-export-onnx"))
        .arg(root.join("models/cnet1-c4.json"))
        .arg(root.join("models/cnet1-c4.safetensors"))
        .arg(&onnx)
        .status()
        .unwrap();
    assert!(st.success());
    // Dry run: a report, nothing written.
    let out = Command::new(env!("CARGO_BIN_EXE_cryptonas-import"))
        .arg(&onnx)
        .args([
            "--out",
            dir.join("models/c4").to_str().unwrap(),
            "--dry-run",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["imported"], true);
    assert_eq!(rep["costs"]["relus"], 24576);
    assert_eq!(rep["private_inference"]["supported"], true);
    assert!(!dir.join("models").exists());
    // Real import: both files, loadable, same logits as the original.
    let out = Command::new(env!("CARGO_BIN_EXE_cryptonas-import"))
        .arg(&onnx)
        .args(["--out", dir.join("models/c4").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("IMPORTED") && text.contains("private inference: supported"),
        "{text}"
    );
    let m = cryptonas_model::Model::load(
        dir.join("models/c4.json"),
        dir.join("models/c4.safetensors"),
    )
    .unwrap();
    assert_eq!(m.spec.classes.len(), 10);
    // An unsupported node: exit status 2, the report names it, nothing written.
    let mut p = ModelProto::decode(std::fs::read(&onnx).unwrap().as_slice()).unwrap();
    let g = p.graph.as_mut().unwrap();
    let relu = g.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    relu.op_type = "Sigmoid".into();
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, p.encode_to_vec()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cryptonas-import"))
        .arg(&bad)
        .args(["--out", dir.join("models/bad").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("UNSUPPORTED") && text.contains("replace it with ReLU"),
        "{text}"
    );
    assert!(!dir.join("models/bad.json").exists() && !dir.join("models/bad.safetensors").exists());
    // A malformed file: exit status 1 and a message.
    std::fs::write(&bad, b"not a model").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cryptonas-import"))
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid ONNX model"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `import` states the server's own per-session memory estimate for a calibrated model, and the
/// server, given a lower limit, refuses the imported model with the very same numbers.
#[test]
fn the_report_and_the_servers_refusal_state_the_same_numbers() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("cryptonas-onnx-session-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let onnx = root.join("tests/data/maxpool_cnn.onnx");
    let calibration = root.join("www/samples");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cryptonas-import"))
            .arg(&onnx)
            .arg("--calibration")
            .arg(&calibration)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let rep: serde_json::Value = serde_json::from_str(&run(&["--dry-run", "--json"])).unwrap();
    let session = &rep["costs"]["server_session"];
    let estimate = cryptonas_protocol::SessionEstimate {
        bytes: session["bytes"].as_u64().unwrap(),
        instances: session["instances"].as_u64().unwrap() as usize,
    };
    assert_eq!(rep["costs"]["server_memory_bytes"], estimate.bytes);
    assert_eq!(estimate.instances, 2048 + 2048 + 512);
    let out = dir.join("maxpool_cnn");
    let text = run(&["--out", out.to_str().unwrap()]);
    assert!(
        text.contains(&format!(
            "server memory: {estimate}, as the server checks at load"
        )),
        "{text}"
    );
    let m = cryptonas_model::Model::load(
        out.with_extension("json"),
        out.with_extension("safetensors"),
    )
    .unwrap();
    let refused =
        cryptonas_protocol::ServerModel::new_within("maxpool_cnn", &m, estimate.bytes - 1)
            .err()
            .expect("refused")
            .to_string();
    assert!(
        refused.contains(&format!("'maxpool_cnn' needs {estimate}")),
        "{refused}"
    );
    assert!(cryptonas_protocol::ServerModel::new_within("maxpool_cnn", &m, estimate.bytes).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
