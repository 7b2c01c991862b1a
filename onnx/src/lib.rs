#![doc = include_str!("../README.md")]

pub mod cli;
pub mod error;
pub mod export;
pub mod import;
pub mod proto;
pub mod report;
pub mod tensor;

use std::path::{Path, PathBuf};

pub use error::ImportError;
pub use export::export_onnx;
pub use import::{analyze, Analysis, ImportOptions, NodeReport, Status};
pub use report::{CalibrationReport, Costs, Report};

use cryptonas_model::{Calibration, CalibrationParams, FixedModel, Model, NormalForm};

/// Most calibration images read.
pub const MAX_CALIBRATION_IMAGES: usize = 1000;

/// Calibrates `model` for fixed point at ring size `k` on normalised CHW images (the model
/// crate's [`Calibration`] with default parameters, as the trainer's export does), stores the
/// configuration in `metadata.fixed_point` and reports the agreement with float.
pub fn calibrate(
    model: &mut Model,
    nf: &NormalForm,
    images: &[Vec<f32>],
    k: u32,
) -> Result<CalibrationReport, String> {
    let cal =
        Calibration::run(nf, images.iter().map(|v| v.as_slice())).map_err(|e| e.to_string())?;
    let p = CalibrationParams::default();
    let smallest_k = cal.smallest_k(nf, &p);
    let cfg = cal.config(nf, k, &p).map_err(|e| {
        format!(
            "{e} (smallest ring that fits: {})",
            smallest_k.map_or("none up to 64".into(), |v| format!("k = {v}"))
        )
    })?;
    let fm = FixedModel::quantize(nf, &cfg).map_err(|e| e.to_string())?;
    let argmax = |v: &[f64]| {
        v.iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |b, (i, &x)| if x > b.1 { (i, x) } else { b },
            )
            .0
    };
    let (mut agree, mut err) = (0, 0f64);
    for x in images {
        let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let want = nf.logits_f64(&xf).map_err(|e| e.to_string())?;
        let q = fm.quantize_input(x).map_err(|e| e.to_string())?;
        let got = fm.dequantize_logits(&fm.forward_checked(&q).map_err(|e| e.to_string())?);
        agree += usize::from(argmax(&got) == argmax(&want));
        err = got
            .iter()
            .zip(&want)
            .fold(err, |e, (a, b)| e.max((a - b).abs()));
    }
    let report = CalibrationReport {
        images: images.len(),
        k,
        smallest_k,
        f_in: cfg.f_in,
        f_a: cfg.f_a,
        argmax_agreement: agree,
        max_logit_error: err,
    };
    model.spec.metadata.fixed_point = Some(cfg);
    Ok(report)
}

/// Reads up to [`MAX_CALIBRATION_IMAGES`] PNG/JPEG files of `dir` (sorted by name), resized and
/// normalised as the model's input spec says.
pub fn load_images(dir: &Path, spec: &cryptonas_model::InputSpec) -> Result<Vec<Vec<f32>>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    files.truncate(MAX_CALIBRATION_IMAGES);
    if files.is_empty() {
        return Err(format!("{}: no .png/.jpg images", dir.display()));
    }
    files
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            cryptonas_model::image::load_input(&bytes, spec)
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// Writes `<out>.json` and `<out>.safetensors` so that neither appears unless both are complete:
/// each is written to a temporary name in the same directory and renamed (weights first, the
/// JSON the server scans for last).
pub fn write_model(model: &Model, out: &Path) -> Result<(PathBuf, PathBuf), ImportError> {
    let io = |path: &Path, source| ImportError::Io {
        path: path.display().to_string(),
        source,
    };
    let json = out.with_extension("json");
    let st = out.with_extension("safetensors");
    let weights = model.weights_bytes()?;
    let text = model.spec.to_json();
    // Round trip: what is written must load.
    Model::from_bytes(text.as_bytes(), &weights)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let tmp = |p: &Path| {
        let mut name = p.file_name().map(|s| s.to_os_string()).unwrap_or_default();
        name.push(format!(".tmp-{}", std::process::id()));
        p.with_file_name(name)
    };
    let (tj, ts) = (tmp(&json), tmp(&st));
    let result = (|| {
        std::fs::write(&ts, &weights).map_err(|e| io(&ts, e))?;
        std::fs::write(&tj, text.as_bytes()).map_err(|e| io(&tj, e))?;
        std::fs::rename(&ts, &st).map_err(|e| io(&st, e))?;
        std::fs::rename(&tj, &json).map_err(|e| io(&json, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&ts);
        let _ = std::fs::remove_file(&tj);
    }
    result.map(|()| (json, st))
}
