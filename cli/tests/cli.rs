//! The `cryptonas` binary as a user meets it: help and examples everywhere, completions, JSON
//! output, the documented exit statuses, and the numbers: the plaintext engine on an image and on
//! the same input as a raw f32 tensor, and private inference against a real server (127.0.0.1),
//! all bit-identical.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const SUBCOMMANDS: [&str; 12] = [
    "serve",
    "classify",
    "plain",
    "count",
    "search",
    "train",
    "export",
    "check-fixed",
    "pareto",
    "import",
    "bench",
    "completions",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> PathBuf {
    repo().join("models/cnet1-c4.json")
}

fn image() -> PathBuf {
    repo().join("www/samples/cat.jpg")
}

fn cryptonas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cryptonas"))
        .args(args)
        // Help is wrapped at the terminal's width, at most 100 columns: the README's width.
        .env("COLUMNS", "100")
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The cat image, decoded and normalised as the client does, written as little-endian f32.
fn raw_f32_file(dir: &Path) -> PathBuf {
    let spec = cryptonas_model::ModelSpec::from_json(&std::fs::read(model()).unwrap()).unwrap();
    let x =
        cryptonas_model::image::load_input(&std::fs::read(image()).unwrap(), &spec.input).unwrap();
    let path = dir.join("cat.f32");
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cryptonas-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn help_lists_every_command_with_examples_and_exit_statuses() {
    let out = cryptonas(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in SUBCOMMANDS {
        assert!(
            help.contains(&format!("  {cmd} ")),
            "{cmd} missing:\n{help}"
        );
    }
    assert!(
        help.contains("Examples:") && help.contains("Exit status:"),
        "{help}"
    );
    for cmd in SUBCOMMANDS {
        let out = cryptonas(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help: {}", text(&out.stderr));
        let help = text(&out.stdout);
        assert!(help.contains(&format!("Usage: cryptonas {cmd}")), "{help}");
        assert!(help.contains("Examples:\n  cryptonas "), "{cmd}: {help}");
    }
}

#[test]
fn completions_are_generated() {
    let out = cryptonas(&["completions", "bash"]);
    assert!(out.status.success());
    let script = text(&out.stdout);
    assert!(script.contains("_cryptonas()") && script.contains("check-fixed"));
    assert!(script.contains("--raw-f32"));
}

#[test]
fn plain_gives_the_same_numbers_for_an_image_and_its_raw_tensor() {
    let dir = temp_dir("plain");
    let raw = raw_f32_file(&dir);
    let from_image = json(&cryptonas(&["plain", s(&model()), s(&image()), "--json"]));
    let from_raw = json(&cryptonas(&[
        "plain",
        s(&model()),
        "--raw-f32",
        s(&raw),
        "--json",
    ]));
    assert_eq!(from_image["model"], "cnet1-c4");
    assert_eq!(from_image["relus"], 24576);
    assert_eq!(from_image["calibrated_on_input"], false);
    assert_eq!(from_image["fixed_ring"].as_array().unwrap().len(), 10);
    for field in ["fixed_ring", "f32_logits", "fixed_class", "k"] {
        assert_eq!(from_image[field], from_raw[field], "{field}");
    }
    // A tensor of the wrong size is refused with the shape, not misread.
    std::fs::write(dir.join("short.f32"), [0u8; 40]).unwrap();
    let out = cryptonas(&["plain", s(&model()), "--raw-f32", s(&dir.join("short.f32"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("3×32×32"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn count_reports_json() {
    let v = json(&cryptonas(&["count", s(&model()), "--json"]));
    assert_eq!(v["relus"], 24576);
    assert_eq!(v["input"], serde_json::json!([3, 32, 32]));
    let v = json(&cryptonas(&[
        "count", "--budget", "86016", "--top", "1", "--json",
    ]));
    assert_eq!(
        v["pairs"][0],
        serde_json::json!({"depth": 6, "width": 14, "relus": 86016})
    );
}

#[test]
fn bad_input_is_a_clear_error_with_its_exit_status() {
    let out = cryptonas(&["plain", s(&model()), "/nonexistent/cat.png"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/cat.png"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = cryptonas(&["count", "/nonexistent/model.json", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/model.json"));
    // Usage errors: clap's status 2.
    assert_eq!(cryptonas(&["plain"]).status.code(), Some(2));
    assert_eq!(cryptonas(&["count", "--widht", "3"]).status.code(), Some(2));
    assert_eq!(
        cryptonas(&["plain", s(&model()), s(&image()), "--raw-f32", "x"])
            .status
            .code(),
        Some(2)
    );
}

#[cfg(not(feature = "tch"))]
#[test]
fn training_without_libtorch_says_how_to_rebuild() {
    let out = cryptonas(&[
        "train",
        "--width",
        "4",
        "--out",
        "/tmp/unused",
        "--data",
        ".",
    ]);
    assert_eq!(out.status.code(), Some(6));
    let err = text(&out.stderr);
    assert!(
        err.contains("cargo install --path cli --features tch"),
        "{err}"
    );
    assert!(err.contains("LIBTORCH"), "{err}");
}

/// `cryptonas serve` on 127.0.0.1 with one model; killed on drop.
struct Server(Child, String);

impl Server {
    fn start(models: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cryptonas"))
            .args(["serve", "--bind", "127.0.0.1:0", "--allow-plaintext"])
            .args(extra)
            .args(["--models", s(models), "--www", s(&repo().join("www"))])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("CryptoNAS server ready: ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server(child, url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn private_classification_matches_the_plaintext_engine_bit_for_bit() {
    let dir = temp_dir("classify");
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for name in ["cnet1-c4", "top3"] {
        for ext in ["json", "safetensors"] {
            std::fs::copy(
                model().with_extension(ext),
                models.join(format!("{name}.{ext}")),
            )
            .unwrap();
        }
    }
    let raw = raw_f32_file(&dir);
    let server = Server::start(&models, &["--output", "top3=top-3"]);
    let plain = json(&cryptonas(&["plain", s(&model()), s(&image()), "--json"]));
    let base = [
        "classify", "--server", &server.1, "--model", "cnet1-c4", "--json",
    ];
    let private = json(&cryptonas(
        &[&base[..], &["--reveal", s(&image())]].concat(),
    ));
    assert_eq!(private["outcome"]["logits_ring"], plain["fixed_ring"]);
    assert_eq!(private["class"], plain["fixed_class"]);
    assert_eq!(private["revealed"]["class"], plain["fixed_class"]);
    let private_raw = json(&cryptonas(&[&base[..], &["--raw-f32", s(&raw)]].concat()));
    assert_eq!(private_raw["outcome"]["logits_ring"], plain["fixed_ring"]);
    // A top-3 model: the terminal says what it reveals and shows no logits; `--reveal` checks
    // the ranking against the server's plaintext engine under the same policy.
    let out = cryptonas(&[
        "classify",
        "--server",
        &server.1,
        "--model",
        "top3",
        "--reveal",
        s(&image()),
    ]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}{}", text(&out.stderr));
    assert!(
        printed.contains("this model reveals: top-3 classes"),
        "{printed}"
    );
    assert!(printed.contains("top 3: "), "{printed}");
    assert!(!printed.contains("logits"), "{printed}");
    let fixed_class = plain["fixed_class"].as_u64().unwrap();
    assert!(printed.contains(&format!("({fixed_class})")), "{printed}");
    // An unknown model: the server's refusal, status 3.
    let out = cryptonas(&[
        "classify",
        "--server",
        &server.1,
        "--model",
        "nope",
        s(&image()),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("HTTP 404"),
        "{}",
        text(&out.stderr)
    );
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The help texts the README shows (`<!-- help: ARGS -->` then a text block starting with
/// `$ cryptonas ARGS`) are what the binary prints, trailing spaces aside.
#[test]
fn readme_shows_the_current_help() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut shown = 0;
    for part in readme.split("<!-- help: ").skip(1) {
        let (args, rest) = part.split_once(" -->").unwrap();
        let block = rest.split("```text\n").nth(1).unwrap();
        let block = block.split("\n```").next().unwrap();
        let (prompt, body) = block.split_once('\n').unwrap();
        assert_eq!(prompt, format!("$ cryptonas {args}"));
        let out = cryptonas(&args.split_whitespace().collect::<Vec<_>>());
        let printed: Vec<String> = text(&out.stdout)
            .trim_end()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        assert_eq!(
            body.lines().collect::<Vec<_>>(),
            printed,
            "README's `cryptonas {args}` is stale: regenerate it"
        );
        shown += 1;
    }
    assert!(shown >= 3, "{shown} help blocks in the README");
}

/// `bench --json`: stdout is one JSON document (per-run progress lines go to stderr).
#[test]
fn bench_json_is_one_document() {
    let dir = temp_dir("bench");
    let out = cryptonas(&["bench", "--short", "--no-sweep", "--json", "--out", s(&dir)]);
    let v = json(&out);
    assert_eq!(v["settings"]["short"], true);
    assert_eq!(v["models"][0]["name"], "tiny");
    assert!(text(&out.stderr).contains("all bit-exact"));
    assert!(dir.join("results.json").is_file());
    std::fs::remove_dir_all(dir).unwrap();
}
