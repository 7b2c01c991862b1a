//! The CI smoke test: the harness binary in `--short` mode runs private inferences over the real
//! server, checks them bit-exact, and writes JSON, Markdown and SVG plots.

use std::path::PathBuf;
use std::process::Command;

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cryptonas-bench-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn short_mode_measures_checks_and_writes_everything() {
    let out = fresh_dir("short");
    let run = Command::new(env!("CARGO_BIN_EXE_cryptonas-bench"))
        .args(["--short", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Per-run lines are progress: stderr (stdout is for results, `cryptonas bench --json`).
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("all bit-exact"), "{stderr}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let models: Vec<&str> = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["tiny", "sweep-c1"]);
    assert_eq!(json["models"][1]["relus"], 6144);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one loopback run per model");
    for r in runs {
        assert_eq!(r["network"]["name"], "loopback");
        assert_eq!(r["inferences"].as_array().unwrap().len(), 2);
        let relus = r["relus"].as_f64().unwrap();
        // Online: the server's labels are k_l × 16 B per ReLU (each layer's ring, 16 ≤ k_l ≤ 32),
        // plus small masked shares.
        let online = r["online_kb_per_relu"].as_f64().unwrap();
        assert!((0.25..0.6).contains(&online), "{online} KB/ReLU online");
        for i in r["inferences"].as_array().unwrap() {
            assert!(i["offline_s"].as_f64().unwrap() > 0.0);
            assert!(i["online_s"].as_f64().unwrap() > 0.0);
            assert_eq!(i["online_rounds"], 7);
            // The garbled tables alone are ≥ 32 B per AND gate of every ReLU: its adder has
            // k_l − 1 ≥ 15 of them.
            assert!(i["gc_down"].as_f64().unwrap() >= relus * 32.0 * 15.0);
        }
    }
    // Two budgets: a fit exists for every quantity, and DELPHI ratios are computed.
    let fits = json["fits"].as_array().unwrap();
    assert!(fits
        .iter()
        .any(|f| f["quantity"] == "online bytes"
            && (f["slope"].as_f64().unwrap() - 518.0).abs() < 20.0));
    assert!(json["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["offline_bytes_ratio"].as_f64().unwrap() > 1.0));
    assert!(
        json["gates"]["rates"][0]["garble_and_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(!json["machine"]["cpu"].as_str().unwrap().is_empty());

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("bit-exact") && md.contains("| sweep-c1 | 6144 | loopback |"),
        "{md}"
    );
    for svg in ["latency_vs_relus.svg", "bytes_vs_relus.svg"] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("DELPHI"), "{svg}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = fresh_dir("bad");
    for (args, expect) in [
        (vec!["--network", "moon"], "unknown network 'moon'"),
        (vec!["--inferences", "0"], "--inferences must be at least 1"),
        (vec!["--sweep", "0"], "--sweep widths"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_cryptonas-bench"))
            .args(["--short", "--out"])
            .arg(&out)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
    assert!(!out.exists(), "nothing written on bad arguments");
}
