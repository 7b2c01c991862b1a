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

/// Writes a tiny Fashion-MNIST-shaped dataset (random pixels and labels) into `dir`.
fn write_tiny_fashion(dir: &std::path::Path, train: usize, test: usize) {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let gz = |name: &str, bytes: &[u8]| {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    };
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut images = [0x803u32, n as u32, 28, 28]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        images.extend((0..n * 28 * 28).map(|_| rng.random::<u8>()));
        let mut labels = [0x801u32, n as u32]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        labels.extend((0..n).map(|_| rng.random_range(0..10u8)));
        gz(&format!("{prefix}-images-idx3-ubyte.gz"), &images);
        gz(&format!("{prefix}-labels-idx1-ubyte.gz"), &labels);
    }
}

/// Writes `<dir>/<name>.json` + `.safetensors`: a width-1 CNet1 with random weights, calibrated
/// at k = 32 when `calibrate`.
fn write_model(
    dir: &std::path::Path,
    name: &str,
    input: cryptonas_search::count::InputShape,
    calibrate: bool,
) {
    use cryptonas_model::Model;
    use cryptonas_search::{export, Arch};
    let arch = Arch::parse_any("cnet1").unwrap();
    let spec =
        cryptonas_model::zoo::model_spec(&export::final_net(&arch, 1, input, 10), name).unwrap();
    let weights = cryptonas_model::zoo::random_init(&spec, 5).unwrap();
    let mut model = Model::from_bytes(spec.to_json().as_bytes(), &weights).unwrap();
    if calibrate {
        let len = input.channels * input.height * input.width;
        let calib: Vec<Vec<f32>> = (0..4)
            .map(|i| {
                (0..len)
                    .map(|j| ((i * 31 + j * 7) % 13) as f32 / 6.0 - 1.0)
                    .collect()
            })
            .collect();
        export::fixed_point_check(&mut model, &calib, &[], 32, false).unwrap();
    }
    std::fs::write(dir.join(format!("{name}.json")), model.spec.to_json()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.safetensors")),
        model.weights_bytes().unwrap(),
    )
    .unwrap();
}

#[test]
fn check_fixed_measures_the_test_set_and_rejects_bad_models() {
    use cryptonas_search::count::InputShape;
    let dir = std::env::temp_dir().join(format!("search-cli-check-fixed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_tiny_fashion(&dir, 12, 30);
    let data = [
        "--dataset",
        "fashion-mnist",
        "--data",
        dir.to_str().unwrap(),
    ];
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let check = |extra: &[&str]| {
        let mut args = vec!["check-fixed"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&data);
        run(&args)
    };

    write_model(&dir, "good", InputShape::FASHION, true);
    let (ok, out, err) = check(&[&path("good.json"), "--images", "10"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("10 test images") && !out.contains("whole test set"),
        "{out}"
    );
    let meta = |name: &str| {
        let spec = std::fs::read(dir.join(name)).unwrap();
        cryptonas_model::ModelSpec::from_json(&spec)
            .unwrap()
            .metadata
    };
    assert_eq!(meta("good.json").test_accuracy, None);
    let (ok, out, err) = check(&[&path("good.json")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("30 test images") && out.contains("whole test set"),
        "{out}"
    );
    let m = meta("good.json");
    let stored = &m.extra["fixed_point_check"];
    assert_eq!(stored["images"], 30);
    assert_eq!(m.test_accuracy, stored["fixed_accuracy"].as_f64());
    assert!(out.contains("k_l = [32, "), "{out}");

    // Narrow rings: any gap accepted, so the least precision (6 weight bits) in every layer,
    // each layer in the smallest ring that holds it; reported per layer and stored.
    let (ok, out, err) = check(&[&path("good.json"), "--narrow", "--tolerance", "100"]);
    assert!(ok, "{err}");
    assert!(err.contains("narrowest rings per ReLU layer"), "{err}");
    let m = meta("good.json");
    let cfg = m.fixed_point.unwrap();
    let relu_k: Vec<u32> = cfg.stages.iter().filter_map(|s| s.k).collect();
    assert_eq!(relu_k.len(), cfg.stages.len() - 1);
    assert!(relu_k.iter().all(|&k| k < 32), "{relu_k:?}");
    assert!(out.contains(&format!("k_l = {relu_k:?}")), "{out}");
    assert_eq!(
        m.extra["fixed_point_check"]["relu_k"],
        serde_json::json!(relu_k)
    );
    // Nothing is accepted: refused, the file unchanged.
    let before = std::fs::read(dir.join("good.json")).unwrap();
    let (ok, _, err) = check(&[&path("good.json"), "--narrow", "--tolerance=-1"]);
    assert!(!ok && err.contains("no weight precision"), "{err}");
    assert_eq!(std::fs::read(dir.join("good.json")).unwrap(), before);

    write_model(&dir, "uncalibrated", InputShape::FASHION, false);
    let (ok, _, err) = check(&[&path("uncalibrated.json")]);
    assert!(!ok && err.contains("no fixed-point configuration"), "{err}");

    write_model(&dir, "cifar", InputShape::CIFAR, true);
    let (ok, _, err) = check(&[&path("cifar.json")]);
    assert!(!ok && err.contains("takes 3×32×32 inputs"), "{err}");

    std::fs::remove_file(dir.join("good.safetensors")).unwrap();
    let (ok, _, err) = check(&[&path("good.json")]);
    assert!(!ok && err.contains("good.safetensors"), "{err}");

    std::fs::write(dir.join("bad.json"), b"{ not json").unwrap();
    std::fs::write(dir.join("bad.safetensors"), b"").unwrap();
    let (ok, _, err) = check(&[&path("bad.json")]);
    assert!(!ok && err.contains("bad.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn study_bundle_names_the_search_and_refuses_another_arc() {
    let dir = std::env::temp_dir().join(format!("cryptonas-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    for ext in ["json", "safetensors"] {
        std::fs::copy(
            format!("{models}/cnet1-c4.{ext}"),
            dir.join(format!("searched-24576-s1.{ext}")),
        )
        .unwrap();
    }
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("searched-24576-s1.json")).unwrap())
            .unwrap();
    let arc = spec["metadata"]["arc"].as_str().unwrap().to_string();
    let result = |final_arc: &str| {
        serde_json::json!({
            "budget": 24576, "final_arc": final_arc, "best_val_acc": 0.565, "candidates": 400,
            "seconds": 1321.8, "supernet": {"epochs": 10.0, "seconds": 960.8},
            "options": {"proxy_width": 4, "clock": "cpu", "val_per_class": 200,
                        "population": 20, "seed": 1},
        })
        .to_string()
    };
    let result_path = dir.join("result.json");
    std::fs::write(&result_path, result(&arc)).unwrap();
    let out_dir = dir.join("models");
    let args = |result: &std::path::Path| {
        vec![
            "study".to_string(),
            "bundle".into(),
            "--model".into(),
            dir.join("searched-24576-s1.json").display().to_string(),
            "--name".into(),
            "searched-25k".into(),
            "--search-result".into(),
            result.display().to_string(),
            "--search-log".into(),
            "search/results/study-search-24576-log.jsonl".into(),
            "--out".into(),
            out_dir.display().to_string(),
        ]
    };
    let a = args(&result_path);
    let (ok, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let bundled: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("searched-25k.json")).unwrap())
            .unwrap();
    assert_eq!(bundled["name"], "searched-25k");
    let search = &bundled["metadata"]["search"];
    assert_eq!(search["log"], "search/results/study-search-24576-log.jsonl");
    assert_eq!(search["trained_as"], "searched-24576-s1");
    assert!(
        search["scorer"]
            .as_str()
            .unwrap()
            .contains("width 4, 10.0 epochs"),
        "{search}"
    );
    assert!(out_dir.join("searched-25k.safetensors").is_file());
    // A search that chose another architecture is not this model's.
    std::fs::write(
        &result_path,
        result("0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"),
    )
    .unwrap();
    let a = args(&result_path);
    let (ok, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok);
    assert!(err.contains("the search in"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
