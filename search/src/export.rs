//! Export to the model crate's format: `<name>.json` (graph drawn by `cryptonas_model::zoo`, with
//! our input normalisation and measured metadata) + `<name>.safetensors` (BN kept; the model
//! crate folds it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cryptonas_model::format::{write_safetensors, Model, ModelSpec, Op, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{DatasetKind, Normalization};
use crate::SearchError;
use cryptonas_arch::{Arch, InputShape, Net};

/// What an export records besides the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportInfo {
    /// Model name (file stem).
    pub name: String,
    /// Architecture (densified on export).
    pub arch: Arch,
    /// Base width `C`.
    pub width: usize,
    /// Classes.
    pub classes: usize,
    /// Dataset trained on.
    pub dataset: DatasetKind,
    /// Input normalisation used in training.
    pub norm: Normalization,
    /// Float test accuracy measured by the trainer (fraction).
    pub float_test_accuracy: Option<f64>,
    /// Best validation accuracy (fraction).
    pub val_accuracy: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
    /// Recipe, free text.
    pub recipe: String,
    /// Training wall time in seconds.
    pub train_seconds: Option<f64>,
    /// Dropout probability before the classifier in training (the graph records it; it has no
    /// effect at inference).
    pub dropout: f64,
}

/// The deployed network of a searched architecture: densified (separable convs dense, pools
/// 3×3 convs) at `width`.
pub fn final_net(arch: &Arch, width: usize, input: InputShape, classes: usize) -> Net {
    Net {
        arch: arch.densified(),
        width,
        classes,
        input,
    }
}

fn model_err(path: &Path, e: impl std::fmt::Display) -> SearchError {
    SearchError::Model {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Builds the graph JSON with normalisation and metadata filled in.
pub fn model_spec(info: &ExportInfo) -> Result<ModelSpec, SearchError> {
    let input = info.dataset.shape();
    let net = final_net(&info.arch, info.width, input, info.classes);
    let mut spec = cryptonas_model::zoo::model_spec(&net, &info.name)
        .map_err(|e| model_err(Path::new(&info.name), e))?;
    for node in &mut spec.nodes {
        if let Op::Dropout { p } = &mut node.op {
            *p = info.dropout as f32;
        }
    }
    spec.input.mean = info.norm.mean.clone();
    spec.input.std = info.norm.std.clone();
    if info.dataset == DatasetKind::Cifar10 {
        spec.classes = crate::data::CIFAR_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect();
    } else {
        spec.classes = [
            "t-shirt",
            "trouser",
            "pullover",
            "dress",
            "coat",
            "sandal",
            "shirt",
            "sneaker",
            "bag",
            "ankle-boot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    let m = &mut spec.metadata;
    m.float_accuracy = info.float_test_accuracy;
    m.dataset = Some(info.dataset.label().to_string());
    m.training_recipe = Some(info.recipe.clone());
    m.epochs = u32::try_from(info.epochs).ok();
    m.extra
        .insert("arc".into(), info.arch.densified().to_arc().into());
    m.extra.insert("depth".into(), info.arch.depth().into());
    m.extra.insert("width".into(), info.width.into());
    if let Some(v) = info.val_accuracy {
        m.extra.insert("val_accuracy".into(), v.into());
    }
    if let Some(s) = info.train_seconds {
        m.extra.insert("train_seconds".into(), s.into());
    }
    m.extra
        .insert("exported_by".into(), "cryptonas-search".into());
    Ok(spec)
}

/// Writes `<dir>/<name>.json` and `<dir>/<name>.safetensors`, then reloads both through the
/// model crate's validator (every tensor present, shaped right, nothing extra).
pub fn write_model(
    dir: &Path,
    spec: &ModelSpec,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<(PathBuf, PathBuf, Model), SearchError> {
    std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
    let json = dir.join(format!("{}.json", spec.name));
    let st = dir.join(format!("{}.safetensors", spec.name));
    let tensors = spec_tensors(spec, tensors).map_err(|e| model_err(&json, e))?;
    let bytes = write_safetensors(&tensors).map_err(|e| model_err(&st, e))?;
    std::fs::write(&st, bytes).map_err(|e| SearchError::io(&st, e))?;
    std::fs::write(&json, spec.to_json()).map_err(|e| SearchError::io(&json, e))?;
    let model = Model::load(&json, &st).map_err(|e| model_err(&json, e))?;
    Ok((json, st, model))
}

/// The trained tensors `spec` uses. The trainer keeps a reduction for every node at each
/// reduction point; the spec has only those a later layer reads, so the others' (unused) tensors
/// are left out.
pub fn spec_tensors(
    spec: &ModelSpec,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, Tensor>, cryptonas_model::ModelError> {
    let graph = spec.validate()?;
    let expected: std::collections::HashSet<String> = spec
        .expected_tensors(&graph)
        .into_iter()
        .map(|(_, name, _)| name)
        .collect();
    Ok(tensors
        .iter()
        .filter(|(name, _)| expected.contains(name.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// Result of the fixed-point check run at export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedCheck {
    /// Test images used.
    pub images: usize,
    /// Ring bits.
    pub k: u32,
    /// Accuracy of the model crate's float normal form (BN folded) on those images.
    pub float_accuracy: f64,
    /// Accuracy of the bit-exact fixed-point engine on the same images.
    pub fixed_accuracy: f64,
    /// Images where float and fixed-point predictions differ.
    pub disagreements: usize,
    /// `|fixed − float| ≤ 0.3` points.
    pub within_0_3_points: bool,
    /// Ring width k_l of every ReLU layer, in stage order (k where the layer has no narrower
    /// ring of its own).
    #[serde(default)]
    pub relu_k: Vec<u32>,
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

/// Folds BN (model crate normal form), calibrates on `calib` (normalised CHW images), quantizes
/// at ring size `k` and compares fixed-point with float accuracy on `test`. Stores the fixed
/// config and the check in the model's metadata, and the fixed-point accuracy as
/// `test_accuracy` when `test` is the whole test set.
pub fn fixed_point_check(
    model: &mut Model,
    calib: &[Vec<f32>],
    test: &[(Vec<f32>, u8)],
    k: u32,
    whole_test_set: bool,
) -> Result<FixedCheck, SearchError> {
    use cryptonas_model::{Calibration, CalibrationParams, NormalForm};
    let name = model.spec.name.clone();
    let err = |e: cryptonas_model::ModelError| model_err(Path::new(&name), e);
    let nf = NormalForm::compile(model).map_err(err)?;
    let cal = Calibration::run(&nf, calib.iter().map(|v| v.as_slice())).map_err(err)?;
    let cfg = cal
        .config(&nf, k, &CalibrationParams::default())
        .map_err(err)?;
    model.spec.metadata.fixed_point = Some(cfg);
    check_compiled(model, &nf, test, whole_test_set, &|_| {})
}

/// Compares the fixed-point engine at the model's stored configuration (`metadata.fixed_point`,
/// set by the export's calibration) with the float normal form on `test`, on every core, and
/// records the check like [`fixed_point_check`]. Exports check a subset to stay quick; this
/// measures the whole test set afterwards. `progress` gets the number of images done so far.
pub fn recheck_fixed_point(
    model: &mut Model,
    test: &[(Vec<f32>, u8)],
    whole_test_set: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<FixedCheck, SearchError> {
    let nf = cryptonas_model::NormalForm::compile(model)
        .map_err(|e| model_err(Path::new(&model.spec.name), e))?;
    check_compiled(model, &nf, test, whole_test_set, progress)
}

/// [`recheck_fixed_point`] for a model whose normal form `nf` is already compiled (the export
/// has it from calibrating).
fn check_compiled(
    model: &mut Model,
    nf: &cryptonas_model::NormalForm,
    test: &[(Vec<f32>, u8)],
    whole_test_set: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<FixedCheck, SearchError> {
    use cryptonas_model::FixedModel;
    let name = model.spec.name.clone();
    let err = |e: cryptonas_model::ModelError| model_err(Path::new(&name), e);
    let cfg = model
        .spec
        .metadata
        .fixed_point
        .clone()
        .ok_or_else(|| SearchError::Invalid {
            what: format!("{name} has no fixed-point configuration (export it first)"),
        })?;
    let fm = FixedModel::quantize(nf, &cfg).map_err(err)?;
    let [ok_float, ok_fixed, differ] = tally(test, progress, |x, label| {
        let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let pf = argmax(&nf.logits_f64(&xf).map_err(err)?);
        let pq = argmax(&fm.logits(x).map_err(err)?);
        Ok([
            usize::from(pf == usize::from(label)),
            usize::from(pq == usize::from(label)),
            usize::from(pf != pq),
        ])
    })?;
    let n = test.len().max(1) as f64;
    let check = FixedCheck {
        images: test.len(),
        k: cfg.k,
        float_accuracy: ok_float as f64 / n,
        fixed_accuracy: ok_fixed as f64 / n,
        disagreements: differ,
        within_0_3_points: (ok_fixed as f64 - ok_float as f64).abs() / n * 100.0 <= 0.3,
        relu_k: fm
            .stages
            .iter()
            .filter(|s| matches!(s.kind, cryptonas_model::StageKind::Relu { .. }))
            .map(|s| s.k)
            .collect(),
    };
    let m = &mut model.spec.metadata;
    if whole_test_set {
        m.test_accuracy = Some(check.fixed_accuracy);
    }
    m.extra.insert(
        "fixed_point_check".into(),
        serde_json::to_value(&check).map_err(|e| SearchError::Invalid {
            what: e.to_string(),
        })?,
    );
    Ok(check)
}

/// Sums `count` over `test` on every core; `progress` gets the number of images done so far.
fn tally<const N: usize>(
    test: &[(Vec<f32>, u8)],
    progress: &(dyn Fn(usize) + Sync),
    count: impl Fn(&[f32], u8) -> Result<[usize; N], SearchError> + Sync,
) -> Result<[usize; N], SearchError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = AtomicUsize::new(0);
    let part = |part: &[(Vec<f32>, u8)]| -> Result<[usize; N], SearchError> {
        let mut t = [0usize; N];
        for (x, label) in part {
            for (t, c) in t.iter_mut().zip(count(x, *label)?) {
                *t += c;
            }
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
        }
        Ok(t)
    };
    let parts: Vec<Result<[usize; N], SearchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = test
            .chunks(test.len().div_ceil(threads).max(1))
            .map(|p| scope.spawn(move || part(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SearchError::Invalid {
                        what: "fixed-point check worker panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut sum = [0usize; N];
    for p in parts {
        for (s, t) in sum.iter_mut().zip(p?) {
            *s += t;
        }
    }
    Ok(sum)
}

/// Narrow rings: calibrates the ranges on `calib`, then lets [`cryptonas_model::Calibration::narrowest`]
/// pick, per ReLU layer, the narrowest ring (and least weight precision) whose fixed-point
/// accuracy on `search` stays within `tolerance_points` of float accuracy there; the linear
/// layers and the logits keep ring size `k`. Stores the configuration in the model's metadata
/// and returns it. `progress` gets (configurations tried, that configuration's accuracy gap in
/// points).
pub fn narrow_fixed_point(
    model: &mut Model,
    calib: &[Vec<f32>],
    search: &[(Vec<f32>, u8)],
    k: u32,
    tolerance_points: f64,
    progress: &dyn Fn(usize, f64),
) -> Result<cryptonas_model::FixedConfig, SearchError> {
    use cryptonas_model::{Calibration, CalibrationParams, FixedModel, NormalForm};
    let name = model.spec.name.clone();
    let err = |e: cryptonas_model::ModelError| model_err(Path::new(&name), e);
    if search.is_empty() {
        return Err(SearchError::Invalid {
            what: "narrowing the rings needs test images".into(),
        });
    }
    let nf = NormalForm::compile(model).map_err(err)?;
    let cal = Calibration::run(&nf, calib.iter().map(|v| v.as_slice())).map_err(err)?;
    let [ok_float] = tally(search, &|_| {}, |x, label| {
        let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let pf = argmax(&nf.logits_f64(&xf).map_err(err)?);
        Ok([usize::from(pf == usize::from(label))])
    })?;
    let n = search.len() as f64;
    let mut tried = 0;
    let cfg = cal
        .narrowest(&nf, k, &CalibrationParams::default(), |cfg| {
            let fm = FixedModel::quantize(&nf, cfg)?;
            let [ok_fixed] = tally(search, &|_| {}, |x, label| {
                let pq = argmax(&fm.logits(x).map_err(err)?);
                Ok([usize::from(pq == usize::from(label))])
            })
            .map_err(|e| cryptonas_model::ModelError::FixedConfig {
                detail: e.to_string(),
            })?;
            let gap = (ok_fixed as f64 - ok_float as f64) / n * 100.0;
            tried += 1;
            progress(tried, gap);
            Ok(gap.abs() <= tolerance_points)
        })
        .map_err(err)?;
    model.spec.metadata.fixed_point = Some(cfg.clone());
    Ok(cfg)
}

/// Narrow rings at one weight precision: calibrates the ranges on `calib` and gives every ReLU
/// layer `weight_bits` fractional weight bits and the narrowest ring that holds its range
/// ([`cryptonas_model::Calibration::narrow_config`]), without a search. Stores the configuration
/// in the model's metadata and returns it.
pub fn narrow_fixed_point_at(
    model: &mut Model,
    calib: &[Vec<f32>],
    k: u32,
    weight_bits: u32,
) -> Result<cryptonas_model::FixedConfig, SearchError> {
    use cryptonas_model::{Calibration, CalibrationParams, NormalForm};
    let name = model.spec.name.clone();
    let err = |e: cryptonas_model::ModelError| model_err(Path::new(&name), e);
    let nf = NormalForm::compile(model).map_err(err)?;
    let cal = Calibration::run(&nf, calib.iter().map(|v| v.as_slice())).map_err(err)?;
    let cfg = cal
        .narrow_config(
            &nf,
            k,
            &CalibrationParams::default(),
            &vec![weight_bits; nf.stages.len()],
        )
        .map_err(err)?;
    model.spec.metadata.fixed_point = Some(cfg.clone());
    Ok(cfg)
}

/// Rewrites a model's JSON (after metadata changes).
pub fn rewrite_json(dir: &Path, model: &Model) -> Result<PathBuf, SearchError> {
    let json = dir.join(format!("{}.json", model.spec.name));
    std::fs::write(&json, model.spec.to_json()).map_err(|e| SearchError::io(&json, e))?;
    Ok(json)
}

/// Reads the Pareto points (name, ReLUs, accuracy) of every exported model in `dir`.
pub fn collect_points(dir: &Path) -> Result<Vec<crate::pareto::Point>, SearchError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| SearchError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let Ok(spec) = ModelSpec::from_json(&bytes) else {
            continue;
        };
        let m = &spec.metadata;
        // The trainer's float accuracy covers the whole test set; prefer it.
        let acc = m.float_accuracy.or(m.test_accuracy);
        let relus = m
            .relu_count
            .or_else(|| cryptonas_model::relu_count(&spec).ok());
        if let (Some(acc), Some(relus)) = (acc, relus) {
            out.push(crate::pareto::Point {
                name: spec.name.clone(),
                relus,
                accuracy: 100.0 * acc,
                macs: m.macs,
                epochs: m.epochs.map(|e| e as usize),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A width-1 CNet1 on Fashion-MNIST-sized inputs with random weights, and random inputs.
    fn small_model_and_images(n: usize) -> (Model, Vec<Vec<f32>>) {
        use rand::{Rng, SeedableRng};
        let arch = Arch::parse_any("cnet1").unwrap();
        let net = final_net(&arch, 1, InputShape::FASHION, 10);
        let spec = cryptonas_model::zoo::model_spec(&net, "small").unwrap();
        let weights = cryptonas_model::zoo::random_init(&spec, 3).unwrap();
        let model = Model::from_bytes(spec.to_json().as_bytes(), &weights).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let images = (0..n)
            .map(|_| (0..28 * 28).map(|_| rng.random_range(-2.0..2.0)).collect())
            .collect();
        (model, images)
    }

    /// The multi-threaded check counts exactly what a sequential pass over the same images does,
    /// and stores the fixed-point accuracy only when it covers the whole test set.
    #[test]
    fn fixed_point_check_counts_like_a_sequential_pass() {
        use cryptonas_model::{FixedModel, NormalForm};
        let (mut model, images) = small_model_and_images(40);
        let e = recheck_fixed_point(&mut model, &[], true, &|_| {}).unwrap_err();
        assert!(
            e.to_string().contains("no fixed-point configuration"),
            "{e}"
        );

        let calib = images[..8].to_vec();
        // Labels: the float prediction for even images, another class for odd ones.
        let nf = NormalForm::compile(&model).unwrap();
        let float_pred = |x: &[f32]| {
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            argmax(&nf.logits_f64(&xf).unwrap())
        };
        let test: Vec<(Vec<f32>, u8)> = images
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let p = float_pred(x);
                let label = if i % 2 == 0 { p } else { (p + 1) % 10 };
                (x.clone(), label as u8)
            })
            .collect();
        let chk = fixed_point_check(&mut model, &calib, &test, 32, false).unwrap();
        assert_eq!(model.spec.metadata.test_accuracy, None);
        assert!(model.spec.metadata.extra.contains_key("fixed_point_check"));

        let fm =
            FixedModel::quantize(&nf, model.spec.metadata.fixed_point.as_ref().unwrap()).unwrap();
        let (mut ok_fixed, mut differ) = (0, 0);
        for (x, label) in &test {
            let pq = argmax(&fm.logits(x).unwrap());
            ok_fixed += usize::from(pq == usize::from(*label));
            differ += usize::from(pq != float_pred(x));
        }
        assert_eq!(chk.images, 40);
        assert_eq!(chk.k, 32);
        assert_eq!(chk.float_accuracy, 0.5);
        assert_eq!(chk.fixed_accuracy, ok_fixed as f64 / 40.0);
        assert_eq!(chk.disagreements, differ);

        let seen = std::sync::Mutex::new(Vec::new());
        let again = recheck_fixed_point(&mut model, &test, true, &|d| seen.lock().unwrap().push(d))
            .unwrap();
        assert_eq!(again, chk);
        assert_eq!(model.spec.metadata.test_accuracy, Some(chk.fixed_accuracy));
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    }

    /// Export and the zoo draw the same graph: the search's CNet1 arc (with its separable ops)
    /// exports exactly the zoo's CNet1 at several widths, and random arcs of depths 3..=12
    /// export the zoo's graph of their densified form, with the family's closed-form counts.
    #[test]
    fn export_draws_the_zoo_graph() {
        use rand::{Rng, SeedableRng};
        let info = |arch: Arch, width: usize, dataset: DatasetKind| ExportInfo {
            name: "t".into(),
            arch,
            width,
            classes: 10,
            dataset,
            norm: Normalization {
                mean: vec![0.5; dataset.shape().channels],
                std: vec![0.25; dataset.shape().channels],
            },
            float_test_accuracy: None,
            val_accuracy: None,
            epochs: 1,
            recipe: "test".into(),
            train_seconds: None,
            dropout: 0.5,
        };
        let search_cnet1 = Arch::from_arc(cryptonas_arch::CNET1_ARC).unwrap();
        for width in [1, 4, 8, 14] {
            let exported =
                model_spec(&info(search_cnet1.clone(), width, DatasetKind::Cifar10)).unwrap();
            let zoo = cryptonas_model::zoo::model_spec(&cryptonas_arch::cnet1(width), "t").unwrap();
            assert_eq!(exported.nodes, zoo.nodes, "width {width}");
            assert_eq!(exported.output, zoo.output);
            assert_eq!(exported.metadata.relu_count, zoo.metadata.relu_count);
            assert_eq!(exported.metadata.relu_count, Some(6 * 1024 * width as u64));
            assert_eq!(exported.metadata.macs, zoo.metadata.macs);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for depth in 3..=12 {
            let width = rng.random_range(1..6);
            let arch = Arch::random(&mut rng, depth, &crate::Op::ALL, 0.4).unwrap();
            let dataset = if rng.random_bool(0.5) {
                DatasetKind::Cifar10
            } else {
                DatasetKind::FashionMnist
            };
            let input = dataset.shape();
            let exported = model_spec(&info(arch.clone(), width, dataset)).unwrap();
            let net = final_net(&arch, width, input, 10);
            let zoo = cryptonas_model::zoo::model_spec(&net, "t").unwrap();
            assert_eq!(exported.nodes, zoo.nodes, "{}", arch.to_arc());
            let relus = crate::relu_count(depth, width, input).unwrap();
            assert_eq!(
                exported.metadata.relu_count,
                Some(relus),
                "{}",
                arch.to_arc()
            );
            let macs = net.macs().unwrap().total();
            assert_eq!(exported.metadata.macs, Some(macs), "{}", arch.to_arc());
        }
    }

    /// Random tensors named as the zoo expects round-trip through the model crate's validator.
    #[test]
    fn export_layout_matches_model_crate() {
        let arch = Arch::builtin("cnet1").unwrap();
        let info = ExportInfo {
            name: "t-cnet1-c4".into(),
            arch: arch.clone(),
            width: 4,
            classes: 10,
            dataset: DatasetKind::Cifar10,
            norm: Normalization {
                mean: vec![0.5; 3],
                std: vec![0.25; 3],
            },
            float_test_accuracy: Some(0.5),
            val_accuracy: None,
            epochs: 1,
            recipe: "test".into(),
            train_seconds: None,
            dropout: 0.3,
        };
        let spec = model_spec(&info).unwrap();
        // The graph records the recipe's dropout, not the zoo's default.
        let dropouts: Vec<f32> = spec
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Dropout { p } => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(dropouts, vec![0.3]);
        assert_eq!(spec.metadata.relu_count, Some(6 * 4 * 1024));
        let bytes = cryptonas_model::zoo::random_init(&spec, 1).unwrap();
        let tensors: BTreeMap<String, Tensor> = cryptonas_model::format::read_safetensors(&bytes)
            .unwrap()
            .into_iter()
            .collect();
        assert!(tensors.contains_key("reduce1.n4.path2.weight"));
        assert!(tensors.contains_key("layers.5.proj.weight"));
        let dir = std::env::temp_dir().join(format!("search-export-{}", std::process::id()));
        let (_, _, model) = write_model(&dir, &spec, &tensors).unwrap();
        assert_eq!(model.spec.input.mean, vec![0.5; 3]);
        let pts = collect_points(&dir).unwrap();
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].relus, 24_576);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
