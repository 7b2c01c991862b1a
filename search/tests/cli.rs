//! The command line: useful output, and clear errors for bad flags and a missing dataset.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptonas-search"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn count_prints_exact_relus_and_budget_pairs() {
    let (ok, out, _) = run(&["count", "--arch", "cnet2", "--width", "28"]);
    assert!(ok);
    assert!(out.contains("ReLUs  344064"), "{out}");
    let (ok, out, _) = run(&["count", "--budget", "86016", "--top", "3"]);
    assert!(ok);
    let first = out.lines().nth(2).unwrap();
    let cols: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(&cols[..3], ["6", "14", "86016"], "{out}");
}

#[test]
fn bad_flags_are_clear_errors() {
    let (ok, _, err) = run(&["count", "--widht", "3"]);
    assert!(!ok);
    assert!(err.contains("unexpected argument '--widht'"), "{err}");
    let (ok, _, err) = run(&["count", "--arch", "0 1 0 9 1 1"]);
    assert!(!ok);
    assert!(err.contains("layer 2 has op id 9"), "{err}");
    let (ok, _, err) = run(&["count", "--budget", "100"]);
    assert!(!ok);
    assert!(err.contains("below the smallest network"), "{err}");
    let (ok, _, err) = run(&[
        "train",
        "--width",
        "4",
        "--out",
        "/tmp/x",
        "--dataset",
        "imagenet",
    ]);
    assert!(!ok);
    assert!(err.contains("invalid value 'imagenet'"), "{err}");
}

#[test]
fn missing_dataset_is_a_clear_error() {
    let (ok, _, err) = run(&[
        "train",
        "--width",
        "4",
        "--epochs",
        "1",
        "--out",
        "/tmp/cryptonas-search-cli-test",
        "--data",
        "/nonexistent/cifar10-jpeg.tar.gz",
    ]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/cifar10-jpeg.tar.gz"), "{err}");
    assert!(
        err.contains("not found") || err.contains("cannot open"),
        "{err}"
    );
}

#[test]
fn pareto_without_models_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("search-cli-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, _, err) = run(&["pareto", "--models", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("no exported model"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
