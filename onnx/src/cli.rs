//! The `import` and `export --onnx` commands: arguments (clap) and bodies, shared by the
//! `cryptonas` tool and the `cryptonas-import` / `cryptonas-export-onnx` aliases.

use std::path::{Path, PathBuf};

use crate::{analyze, calibrate, load_images, report, write_model, ImportOptions};

/// `import`: an ONNX model for private inference, with the compatibility and cost report.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The ONNX file.
    pub model: PathBuf,
    /// Output path without extension: writes `<out>.json` and `<out>.safetensors`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory of PNG/JPEG images to calibrate fixed point on (at most 1000 are read).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Class names, one per line.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Input normalisation of pixels in [0, 1]: "mean,std" for every channel, or C means then
    /// C stds ("0.49,0.48,0.45,0.25,0.24,0.26").
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub input_norm: Option<Vec<f32>>,
    /// Input C,H,W (needed when the ONNX input has symbolic dimensions).
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
    /// Ring size for fixed point.
    #[arg(long, default_value_t = 32)]
    pub k: u32,
    /// Report only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `import`: prints the report (text, or JSON with `--json`) and writes the model pair unless
/// `--dry-run` or no `--out`. `Ok(false)`: the model cannot be imported (the report says why).
pub fn run_import(args: &ImportArgs) -> Result<bool, String> {
    let size = std::fs::metadata(&args.model)
        .map_err(|e| format!("{}: {e}", args.model.display()))?
        .len();
    if size > crate::import::MAX_FILE_BYTES {
        return Err(format!(
            "{}: {size} bytes is larger than the {} byte limit",
            args.model.display(),
            crate::import::MAX_FILE_BYTES
        ));
    }
    let bytes = std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let name = args
        .out
        .as_ref()
        .unwrap_or(&args.model)
        .file_stem()
        .map_or_else(|| "imported".into(), |s| s.to_string_lossy().into_owned());
    let mut opts = ImportOptions::new(name);
    if let Some(s) = &args.input_shape {
        let s: [usize; 3] = s
            .as_slice()
            .try_into()
            .map_err(|_| "--input-shape takes C,H,W".to_string())?;
        opts.input_shape = Some(s);
    }
    if let Some(v) = &args.input_norm {
        if v.len() % 2 != 0 || v.is_empty() {
            return Err("--input-norm takes mean,std or C means followed by C stds".into());
        }
        let (m, s) = v.split_at(v.len() / 2);
        opts.mean = m.to_vec();
        opts.std = s.to_vec();
    }
    if let Some(p) = &args.classes {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        opts.classes = Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        );
    }
    let analysis = analyze(&bytes, &opts).map_err(|e| e.to_string())?;
    let mut model = analysis.model.clone();
    let mut calibration = None;
    let mut nf_cfg = None;
    let private = match &model {
        None => Err("the model did not import".to_string()),
        Some(m) => match report::private_check(m) {
            Ok((nf, d)) => {
                nf_cfg = Some(nf);
                Ok(d)
            }
            Err(e) => Err(e),
        },
    };
    if let (Some(dir), Some(m)) = (&args.calibration, model.as_mut()) {
        calibration = Some(match &nf_cfg {
            None => Err("private inference cannot run this model (see above)".to_string()),
            Some(nf) => {
                load_images(dir, &m.spec.input).and_then(|imgs| calibrate(m, nf, &imgs, args.k))
            }
        });
    }
    let cfg = model
        .as_ref()
        .and_then(|m| m.spec.metadata.fixed_point.clone());
    let uncalibrated = private.is_ok() && cfg.is_none();
    let mut rep = report::build(
        &analysis,
        private,
        calibration,
        nf_cfg.as_ref().zip(cfg.as_ref()),
    );
    if let Some(m) = model
        .as_ref()
        .filter(|m| m.spec.metadata.fixed_point.is_some())
    {
        match cryptonas_protocol::SessionEstimate::of(&m.spec.name, m) {
            Ok(e) => rep.set_server_session(e),
            Err(e) => rep
                .notes
                .push(format!("the server would not load this model: {e}")),
        }
    }
    if uncalibrated {
        rep.notes.push(
            "no fixed-point configuration: the server skips models without one; pass \
             --calibration DIR (a few hundred representative images)"
                .into(),
        );
    }
    if args.json {
        println!("{}", rep.to_json());
    } else {
        print!("{}", rep.to_text());
    }
    let Some(model) = model else {
        return Ok(false);
    };
    if args.dry_run {
        eprintln!("dry run: nothing written");
        return Ok(true);
    }
    match &args.out {
        None => {
            eprintln!("no --out: nothing written");
            Ok(true)
        }
        Some(out) => {
            let (j, s) = write_model(&model, out).map_err(|e| e.to_string())?;
            eprintln!("wrote {} and {}", j.display(), s.display());
            Ok(true)
        }
    }
}

/// `export --onnx`: writes the model pair `json` (weights beside it, `<name>.safetensors`, unless
/// given) as an ONNX file (opset 17) for onnxruntime and other tools.
pub fn export_onnx_file(json: &Path, weights: Option<&Path>, out: &Path) -> Result<(), String> {
    let weights = weights.map_or_else(|| json.with_extension("safetensors"), Path::to_path_buf);
    let model = cryptonas_model::Model::load(json, &weights).map_err(|e| e.to_string())?;
    let bytes = crate::export_onnx(&model)?;
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))
}
