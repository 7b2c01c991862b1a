//! libtorch checks (feature `tch`): the trainer's network equals the exported model in the model
//! crate's f32 engine, training lowers the loss, checkpoints resume.
#![cfg(feature = "tch")]

use std::collections::HashMap;

use cryptonas_model::Model;
use cryptonas_search::data::{Dataset, DatasetKind, Images, Normalization};
use cryptonas_search::export::{model_spec, ExportInfo};
use cryptonas_search::train::{
    export_tensors, train, Net, NetConfig, Progress, Recipe, TrainOptions,
};
use cryptonas_search::{Arch, InputShape, Op, SearchMethod};
use rand::{Rng, SeedableRng};
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

fn net_config(arch: Arch, width: usize, input: InputShape) -> NetConfig {
    NetConfig {
        arch,
        width,
        input,
        classes: 10,
    }
}

/// Random BN statistics and affine parameters, so the comparison exercises BN folding.
fn randomise_bn(vs: &nn::VarStore) {
    let _g = tch::no_grad_guard();
    for (name, mut t) in vs.variables() {
        if name.ends_with("running_var") {
            t.copy_(&(Tensor::rand_like(&t) + 0.5));
        } else if name.ends_with("running_mean") || name.ends_with(".bias") {
            t.copy_(&(Tensor::randn_like(&t) * 0.2));
        } else if name.contains("bn.weight") {
            t.copy_(&(Tensor::rand_like(&t) + 0.5));
        }
    }
}

#[test]
fn tch_forward_equals_model_crate_f32_engine() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    tch::manual_seed(11);
    let shapes = [
        InputShape::CIFAR,
        InputShape::FASHION,
        InputShape {
            channels: 3,
            height: 15,
            width: 13,
        },
    ];
    for case in 0..4 {
        let depth = rng.random_range(3..9);
        let width = rng.random_range(1..4);
        let input = shapes[case % shapes.len()];
        let arch = Arch::random(&mut rng, depth, &[Op::Conv3, Op::Conv5], 0.5).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), net_config(arch.clone(), width, input), 0.5).unwrap();
        randomise_bn(&vs);
        let x = Tensor::randn(
            [
                2,
                input.channels as i64,
                input.height as i64,
                input.width as i64,
            ],
            (Kind::Float, Device::Cpu),
        );
        let want = net.forward(&x, false);
        let dataset = if input.channels == 1 {
            DatasetKind::FashionMnist
        } else {
            DatasetKind::Cifar10
        };
        let info = ExportInfo {
            name: format!("case{case}"),
            arch: arch.clone(),
            width,
            classes: 10,
            dataset,
            norm: Normalization {
                mean: vec![0.5; input.channels],
                std: vec![0.25; input.channels],
            },
            float_test_accuracy: None,
            val_accuracy: None,
            epochs: 0,
            recipe: "test".into(),
            train_seconds: None,
            dropout: 0.5,
        };
        let mut spec = model_spec(&info).unwrap();
        spec.input.height = input.height;
        spec.input.width = input.width;
        if let Some(cn) = spec.metadata.extra.get_mut("cryptonas") {
            cn["input"] = serde_json::json!([input.channels, input.height, input.width]);
        }
        let tensors = export_tensors(&vs).unwrap();
        let weights: HashMap<_, _> = cryptonas_search::export::spec_tensors(&spec, &tensors)
            .unwrap()
            .into_iter()
            .collect();
        let model = Model::new(spec, weights).unwrap();
        let xs: Vec<f32> = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
        let xa =
            ndarray::Array4::from_shape_vec((2, input.channels, input.height, input.width), xs)
                .unwrap();
        let got = model.forward(xa.view()).unwrap();
        let want: Vec<f32> = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
        let max_err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_err <= 1e-4,
            "case {case} ({} L={depth} C={width} {input:?}): max |tch − engine| = {max_err}",
            arch.to_arc()
        );
    }
}

fn synthetic(n: usize, seed: u64) -> Images {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(n * 3 * 1024);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 10) as u8;
        // Class-dependent brightness per channel plus noise: learnable in a few steps.
        for c in 0..3 {
            let base = 20.0 + 23.0 * f64::from(label) * (1.0 + c as f64) / 3.0;
            for _ in 0..1024 {
                pixels.push((base + rng.random_range(0.0..40.0)).min(255.0) as u8);
            }
        }
        labels.push(label);
    }
    Images { pixels, labels }
}

#[test]
fn two_sgd_steps_lower_the_loss() {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let arch = Arch::builtin("cnet1").unwrap();
    let net = Net::new(&vs.root(), net_config(arch, 2, InputShape::CIFAR), 0.0).unwrap();
    let images = synthetic(40, 5);
    let norm = Normalization::fit(&images, InputShape::CIFAR, &(0..40).collect::<Vec<_>>());
    let idx: Vec<usize> = (0..40).collect();
    let x = cryptonas_search::data::make_batch::<rand_chacha::ChaCha8Rng>(
        &images,
        InputShape::CIFAR,
        &idx,
        &norm,
        None,
    );
    let x = Tensor::from_slice(&x).view([40, 3, 32, 32]);
    let y = Tensor::from_slice(
        &images
            .labels
            .iter()
            .map(|&l| i64::from(l))
            .collect::<Vec<_>>(),
    );
    let r = Recipe::default();
    let mut opt = nn::Sgd {
        momentum: r.momentum,
        dampening: 0.0,
        wd: r.weight_decay,
        nesterov: true,
    }
    .build(&vs, r.lr_max)
    .unwrap();
    let loss0 = net.forward(&x, true).cross_entropy_for_logits(&y);
    let l0 = loss0.double_value(&[]);
    opt.backward_step(&loss0);
    let loss1 = net.forward(&x, true).cross_entropy_for_logits(&y);
    opt.backward_step(&loss1);
    let l2 = net
        .forward(&x, true)
        .cross_entropy_for_logits(&y)
        .double_value(&[]);
    assert!(l2 < l0, "loss went {l0} → {l2}");
}

#[test]
fn train_checkpoints_and_resumes() {
    let data = Dataset {
        kind: DatasetKind::Cifar10,
        shape: InputShape::CIFAR,
        classes: 10,
        train: synthetic(120, 1),
        test: synthetic(20, 2),
    };
    let dir = std::env::temp_dir().join(format!("search-tch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = TrainOptions {
        net: net_config(Arch::builtin("cnet1").unwrap(), 2, InputShape::CIFAR),
        recipe: Recipe {
            epochs: 1,
            batch_size: 50,
            ..Recipe::default()
        },
        val_per_class: 2,
        train_per_class: None,
        seed: 4,
        test: true,
        warm_start: None,
    };
    let t = train(
        &data,
        opts.clone(),
        Some(&dir),
        false,
        Progress::Quiet,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(t.state.history.len(), 1);
    assert!(t.state.test_acc.is_some());
    opts.recipe.epochs = 2;
    let t2 = train(
        &data,
        opts.clone(),
        Some(&dir),
        true,
        Progress::Quiet,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(t2.state.history.len(), 2, "resume continues at epoch 2");
    assert_eq!(t2.state.history[0].epoch, 1);
    assert_eq!(t2.state.history[0].loss, t.state.history[0].loss);
    // A warm start takes the weights and normalisation, not the history: with no epochs of its
    // own it scores exactly what it started from.
    let fine = dir.join("fine");
    let mut warm = opts.clone();
    warm.warm_start = Some(dir.clone());
    warm.recipe.epochs = 0;
    let t3 = train(
        &data,
        warm.clone(),
        Some(&fine),
        false,
        Progress::Quiet,
        Device::Cpu,
    )
    .unwrap();
    assert!(t3.state.history.is_empty());
    assert_eq!(t3.state.norm, t2.state.norm);
    assert_eq!(t3.state.test_acc, t2.state.test_acc);
    let prior = t3.state.prior.as_ref().unwrap();
    assert_eq!(prior.epochs, 2.0);
    assert_eq!(prior.test_acc, t2.state.test_acc);
    warm.recipe.epochs = 1;
    let t4 = train(
        &data,
        warm.clone(),
        Some(&fine),
        true,
        Progress::Quiet,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(t4.state.history.len(), 1);
    assert_eq!(
        t4.state.total_epochs(),
        3.0,
        "prior epochs count towards the total"
    );
    // Warm-starting a different network is refused.
    warm.net.width = 3;
    let e = train(&data, warm, None, false, Progress::Quiet, Device::Cpu)
        .err()
        .unwrap();
    assert!(e.to_string().contains("different network"), "{e}");
    // A checkpoint of another network is refused.
    opts.net.width = 3;
    let e = train(&data, opts, Some(&dir), true, Progress::Quiet, Device::Cpu)
        .err()
        .unwrap();
    assert!(e.to_string().contains("different network"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The supernet with one architecture sampled is that architecture: copying its shared weights
/// (the chosen op's block, the projection restricted to the chosen skips) into a standalone `Net`
/// gives the same logits.
#[test]
fn supernet_computes_exactly_the_sampled_child() {
    use cryptonas_search::supernet::SuperNet;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    tch::manual_seed(21);
    let (depth, width, input) = (6, 2, InputShape::CIFAR);
    let svs = nn::VarStore::new(Device::Cpu);
    let sup = SuperNet::new(&svs.root(), depth, width, input, 10, &Op::ALL).unwrap();
    let shared = svs.variables();
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    for _ in 0..4 {
        let arch = Arch::random(&mut rng, depth, &Op::ALL, 0.5).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), net_config(arch.clone(), width, input), 0.0).unwrap();
        let _g = tch::no_grad_guard();
        for (name, mut t) in vs.variables() {
            let parts: Vec<&str> = name.split('.').collect();
            let layer = || parts[1].parse::<usize>().unwrap();
            let src = match (parts[0], parts.get(2).copied()) {
                ("layers", Some("conv" | "dw" | "pw" | "bn")) => {
                    let op = arch.layers[layer()].op.name();
                    shared[&format!("layers.{}.{op}.{}", layer(), parts[2..].join("."))]
                        .shallow_clone()
                }
                ("layers", Some("proj")) => {
                    let i = layer();
                    let c = t.size()[0];
                    let idx: Vec<i64> = arch.layers[i]
                        .skips
                        .iter()
                        .copied()
                        .chain([i])
                        .flat_map(|b| (b as i64 * c)..(b as i64 + 1) * c)
                        .collect();
                    shared[&name].index_select(1, &Tensor::from_slice(&idx))
                }
                _ => shared[&name].shallow_clone(),
            };
            t.copy_(&src);
        }
        // Batch-statistics BN on both sides (the supernet always uses them); dropout is 0.
        let want = net.forward(&x, true);
        let got = sup.forward(&x, &arch).unwrap();
        let err = (want - got).abs().max().double_value(&[]);
        assert!(err < 1e-5, "arc {}: max error {err}", arch.to_arc());
    }
    // A child of another depth is refused, not mis-evaluated.
    let short = Arch::random(&mut rng, 5, &Op::ALL, 0.5).unwrap();
    assert!(sup.forward(&x, &short).is_err());
}

#[test]
fn search_logs_every_candidate_and_meets_the_budget() {
    for method in [SearchMethod::Proxy, SearchMethod::Supernet] {
        search_with(method);
    }
}

fn search_with(method: SearchMethod) {
    use cryptonas_search::search::{search, SearchOptions};
    let data = Dataset {
        kind: DatasetKind::Cifar10,
        shape: InputShape::CIFAR,
        classes: 10,
        train: synthetic(100, 7),
        test: synthetic(10, 8),
    };
    let pair = cryptonas_search::solve_budget(3 * 2 * 1024, InputShape::CIFAR, 3).unwrap()[0];
    assert_eq!((pair.depth, pair.width), (3, 2));
    let opts = SearchOptions {
        method,
        supernet_epochs: 2,
        supernet_fraction: 0.5,
        depth: 3,
        proxy_width: 1,
        proxy_epochs: 1,
        proxy_per_class: 5,
        val_per_class: 2,
        ops: Op::ALL.to_vec(),
        population: 2,
        tournament: 2,
        time_limit_s: 600.0,
        clock: cryptonas_search::clock::Clock::Wall,
        max_candidates: 4,
        seed: 9,
        supernet_dir: None,
    };
    let log = std::env::temp_dir().join(format!(
        "search-log-{}-{method:?}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let res = search(&data, &opts, pair, &log, Device::Cpu).unwrap();
    assert_eq!(res.candidates.len(), 4);
    assert_eq!(res.supernet.is_some(), method == SearchMethod::Supernet);
    if let Some(s) = &res.supernet {
        assert_eq!(s.epochs, 2.0);
        assert!(s.final_loss.is_finite());
    }
    assert!(
        res.candidates[2].parent.is_some(),
        "after the population, candidates are mutants"
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 4);
    for l in lines.lines() {
        let c: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(c["val_acc"].as_f64().is_some() && c["arc"].as_str().is_some());
    }
    // The final net is dense and has exactly the budget's ReLUs.
    assert!(res
        .final_arch
        .layers
        .iter()
        .all(|l| matches!(l.op, Op::Conv3 | Op::Conv5)));
    assert_eq!(
        cryptonas_search::relu_count(res.final_arch.depth(), pair.width, InputShape::CIFAR)
            .unwrap(),
        6144
    );
    std::fs::remove_file(&log).unwrap();
}

#[test]
fn a_saved_supernet_is_reloaded_and_scores_the_same() {
    use cryptonas_search::search::{search, SearchOptions};
    let data = Dataset {
        kind: DatasetKind::Cifar10,
        shape: InputShape::CIFAR,
        classes: 10,
        train: synthetic(100, 7),
        test: synthetic(10, 8),
    };
    let pair = cryptonas_search::solve_budget(3 * 2 * 1024, InputShape::CIFAR, 3).unwrap()[0];
    let dir = std::env::temp_dir().join(format!("supernet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = SearchOptions {
        method: SearchMethod::Supernet,
        supernet_epochs: 1,
        supernet_fraction: 0.5,
        depth: 3,
        proxy_width: 1,
        proxy_epochs: 1,
        proxy_per_class: 5,
        val_per_class: 2,
        ops: Op::ALL.to_vec(),
        population: 2,
        tournament: 2,
        time_limit_s: 600.0,
        clock: cryptonas_search::clock::Clock::Cpu,
        max_candidates: 5,
        seed: 3,
        supernet_dir: Some(dir.clone()),
    };
    let log = dir.join("log.jsonl");
    let first = search(&data, &opts, pair, &log, Device::Cpu).unwrap();
    assert!(cryptonas_search::supernet::TrainedSupernet::saved_in(&dir));
    // The rerun loads the supernet (no training) and evolves the same candidates to the same
    // scores: the evolution's random stream does not depend on the supernet's.
    let again = search(&data, &opts, pair, &dir.join("log2.jsonl"), Device::Cpu).unwrap();
    let key = |r: &cryptonas_search::search::SearchResult| -> Vec<(String, f64)> {
        r.candidates
            .iter()
            .map(|c| (c.arc.clone(), c.val_acc))
            .collect()
    };
    assert_eq!(key(&first), key(&again));
    // Equal up to the JSON round trip (serde_json's default float parsing may be one ulp off:
    // 0.11000000000000001 came back as 0.11).
    let (a, b) = (
        first.supernet.as_ref().unwrap().seconds,
        again.supernet.as_ref().unwrap().seconds,
    );
    assert!(
        (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        "the report names the saved supernet's training: {a} vs {b}"
    );
    let loaded =
        cryptonas_search::supernet::TrainedSupernet::load(&dir, &data, Device::Cpu).unwrap();
    let arch = Arch::from_arc(&first.candidates[0].arc).unwrap();
    assert_eq!(
        loaded.score(&data, &arch).unwrap(),
        first.candidates[0].val_acc
    );
    // An interrupted evolution (3 of 5 candidates logged, the 4th torn mid-write) resumes: the
    // replay proposes the logged candidates, the rest are scored, the log ends complete.
    let log4 = dir.join("log4.jsonl");
    let text = std::fs::read_to_string(dir.join("log2.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let torn = &lines[3][..lines[3].len() / 2];
    std::fs::write(
        &log4,
        format!("{}\n{}\n{}\n{torn}", lines[0], lines[1], lines[2]),
    )
    .unwrap();
    let resumed =
        cryptonas_search::search::search_resumable(&data, &opts, pair, &log4, Device::Cpu, true)
            .unwrap();
    assert_eq!(key(&resumed), key(&first));
    let text4 = std::fs::read_to_string(&log4).unwrap();
    assert_eq!(text4.lines().count(), 5);
    assert_eq!(text4.lines().take(3).collect::<Vec<_>>(), lines[..3]);
    // A log of another search (another seed proposes other candidates) is refused before
    // anything is scored.
    let mut other_seed = opts.clone();
    other_seed.seed = 4;
    other_seed.method = SearchMethod::Proxy;
    other_seed.supernet_dir = None;
    let resume = |o: &SearchOptions| {
        cryptonas_search::search::search_resumable(&data, o, pair, &log4, Device::Cpu, true)
            .err()
            .unwrap()
            .to_string()
    };
    let err = resume(&other_seed);
    assert!(err.contains("another seed"), "{err}");
    // Supernet scores without the saved supernet that produced them are refused too.
    let mut unsaved = opts.clone();
    unsaved.supernet_dir = Some(dir.join("elsewhere"));
    let err = resume(&unsaved);
    assert!(err.contains("not saved"), "{err}");
    // A saved supernet trained with other options is refused, not silently reused.
    opts.supernet_epochs = 2;
    let err = search(&data, &opts, pair, &dir.join("log3.jsonl"), Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("other options"), "{err}");
    // Other data: the recorded normalisation does not match.
    let other = Dataset {
        train: synthetic(100, 99),
        ..data
    };
    assert!(cryptonas_search::supernet::TrainedSupernet::load(&dir, &other, Device::Cpu).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sgdr_schedule_restarts_and_ends_annealed() {
    let r = Recipe {
        epochs: 30,
        ..Recipe::default()
    };
    assert!((r.lr_at(0.0) - 0.05).abs() < 1e-12);
    assert!(
        (r.lr_at(9.999) - 0.001).abs() < 1e-4,
        "end of the first 10-epoch cycle"
    );
    assert!((r.lr_at(10.0) - 0.05).abs() < 1e-12, "warm restart");
    assert!(
        (r.lr_at(20.0) - 0.0255).abs() < 1e-9,
        "middle of the 20-epoch cycle"
    );
    assert!((r.lr_at(30.0) - 0.001).abs() < 1e-12);
    // 25 epochs: a second cycle (10 → 30) would not finish, so the first one stretches to 25
    // and the run still ends at lr_min.
    let short = Recipe {
        epochs: 25,
        ..Recipe::default()
    };
    assert!((short.lr_at(25.0) - 0.001).abs() < 1e-12);
    assert!((short.lr_at(12.5) - 0.0255).abs() < 1e-9);
    // The paper's 310 epochs are exactly 10 + 20 + 40 + 80 + 160.
    let full = Recipe::default();
    assert!((full.lr_at(150.0) - 0.05).abs() < 1e-12);
    assert!((full.lr_at(309.999) - 0.001).abs() < 1e-6);
}

#[test]
fn supernet_training_resumes_from_its_checkpoint() {
    use cryptonas_search::supernet::{
        train_supernet_checkpointed, SupernetOptions, SupernetProgress, PROGRESS_STATE,
    };
    let data = Dataset {
        kind: DatasetKind::Cifar10,
        shape: InputShape::CIFAR,
        classes: 10,
        train: synthetic(400, 7),
        test: synthetic(10, 8),
    };
    let dir = std::env::temp_dir().join(format!("supernet-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = SupernetOptions {
        depth: 3,
        width: 1,
        ops: vec![Op::Conv3, Op::Conv5],
        epochs: 2,
        time_limit_s: 600.0,
        clock: cryptonas_search::clock::Clock::Cpu,
        train_per_class: None,
        val_per_class: 2,
        seed: 4,
        progress: false,
    };
    // 380 training images, batch 100: 4 steps per epoch, a checkpoint after every step.
    let stopped = train_supernet_checkpointed(&data, &opts, Device::Cpu, &dir, Some(3)).unwrap();
    assert!(stopped.is_none(), "stopped after 3 of 8 steps");
    let p: SupernetProgress =
        serde_json::from_str(&std::fs::read_to_string(dir.join(PROGRESS_STATE)).unwrap()).unwrap();
    assert_eq!((p.done_steps, p.seen), (3, 300));
    // Resuming continues at step 3 (the rest of epoch 1, then epoch 2), not from scratch.
    let done = train_supernet_checkpointed(&data, &opts, Device::Cpu, &dir, None)
        .unwrap()
        .unwrap();
    assert_eq!(done.epochs, 2.0);
    assert!(done.seconds >= p.seconds && done.final_loss.is_finite());
    let p: SupernetProgress =
        serde_json::from_str(&std::fs::read_to_string(dir.join(PROGRESS_STATE)).unwrap()).unwrap();
    assert_eq!((p.done_steps, p.seen), (8, 760));
    let arch = Arch::random(
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
        3,
        &opts.ops,
        0.4,
    )
    .unwrap();
    assert!((0.0..=1.0).contains(&done.score(&data, &arch).unwrap()));
    // A checkpoint of other options is refused.
    let other = SupernetOptions {
        width: 2,
        ..opts.clone()
    };
    let err = train_supernet_checkpointed(&data, &other, Device::Cpu, &dir, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("other options"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
