//! The browser mode end to end: `--short --browser` drives the real page in headless Chromium for
//! the tiny model and CNet1 C = 1 (about 20 s), checks every inference bit-exact and writes the
//! native-vs-browser report. Needs node + playwright-core (scripts/setup.sh), /usr/bin/chromium and
//! the built wasm client (scripts/build-wasm.sh), hence ignored by default:
//!
//! ```text
//! cargo test -p cryptonas-bench --test browser_mode -- --ignored
//! CRYPTONAS_BENCH_WWW=/path/to/www cargo test ...   # a page directory other than www/
//! ```
//! The always-on tests of the same logic (verification against the plaintext engine on a real
//! private inference of the sample bytes, driver-line parsing, missing-prerequisite errors) are
//! the unit tests in `src/browser.rs`.

use std::process::Command;

#[test]
#[ignore = "needs Chromium, node + playwright-core and www/pkg (scripts/setup.sh, scripts/build-wasm.sh)"]
fn short_browser_mode_checks_every_page_inference_and_reports_both_columns() {
    let out = std::env::temp_dir().join(format!("cryptonas-bench-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cryptonas-bench"));
    cmd.args(["--short", "--browser", "--out"]).arg(&out);
    if let Some(www) = std::env::var_os("CRYPTONAS_BENCH_WWW") {
        cmd.arg("--www").arg(www);
    }
    let run = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Per-run lines are progress: stderr (stdout is for results, `cryptonas bench --json`).
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("browser loopback: offline"), "{stderr}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let browser = json["browser"].as_array().unwrap();
    let names: Vec<&str> = browser
        .iter()
        .map(|b| b["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tiny", "sweep-c1"]);
    for b in browser {
        let run = &b["run"];
        assert_eq!(run["inferences"].as_array().unwrap().len(), 2);
        assert_eq!(run["online_rounds"], 7);
        assert!(
            run["online_s"].as_f64().unwrap() > 0.0 && run["offline_s"].as_f64().unwrap() > 0.0
        );
        // Same protocol, same bytes as the native client (the traffic does not depend on the image).
        let native = json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == b["model"] && r["network"]["name"] == "loopback")
            .unwrap();
        for k in ["offline_up", "offline_down", "online_up", "online_down"] {
            assert_eq!(run[k], native[k], "{k}");
        }
        assert_eq!(b["layers"].as_array().unwrap().len(), 6);
        assert!(b["page_worker_and_per_s"].as_f64().unwrap() > 1e4);
        assert!(b["workers"][0]["and_per_s_per_worker"].as_f64().unwrap() > 1e4);
        assert!(b["memory"]["renderer_peak_rss_bytes"].as_f64().unwrap() > 1e6);
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("## Browser (headless Chromium) vs native"),
        "{md}"
    );
    assert!(md.contains("| sweep-c1 | 6144 |"), "{md}");
    let svg = std::fs::read_to_string(out.join("native_vs_browser_latency.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("browser"));
    let _ = std::fs::remove_dir_all(&out);
}
