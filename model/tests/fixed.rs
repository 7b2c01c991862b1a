//! Bit-exact ring arithmetic and fixed-point agreement with the float engine.
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_arch::cnet1;
use cryptonas_model::fixed::{from_signed, relu_trunc, to_signed};
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{
    conv_ring, Calibration, CalibrationParams, FixedConfig, FixedModel, IntConv, Model, ModelError,
    NormalForm,
};

/// Naive reference straight from docs/ring-spec.md, in i128 then reduced.
fn conv_ref(c: &IntConv, w: &[i64], x: &[u64], k: u32) -> Vec<u64> {
    let (oh, ow) = (c.out_height(), c.out_width());
    let m = (1i128 << k) - 1;
    let mut out = vec![0u64; c.out_channels * oh * ow];
    for o in 0..c.out_channels {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc: i128 = 0;
                for ch in 0..c.in_channels {
                    for u in 0..c.kernel_h {
                        for v in 0..c.kernel_w {
                            let y = (i * c.stride + u) as isize - c.padding as isize;
                            let xx = (j * c.stride + v) as isize - c.padding as isize;
                            if y < 0
                                || xx < 0
                                || y >= c.in_height as isize
                                || xx >= c.in_width as isize
                            {
                                continue;
                            }
                            let wv =
                                w[((o * c.in_channels + ch) * c.kernel_h + u) * c.kernel_w + v];
                            let xv = x[(ch * c.in_height + y as usize) * c.in_width + xx as usize];
                            acc = (acc + i128::from(wv) * i128::from(xv)) & m;
                        }
                    }
                }
                out[(o * oh + i) * ow + j] = (acc & m) as u64;
            }
        }
    }
    out
}

#[test]
fn conv_ring_matches_the_spec_reference() {
    let mut rng = SplitMix64::new(9);
    for trial in 0..60 {
        let k = [8, 16, 32, 37, 64][trial % 5];
        let kh = 1 + (rng.next_u64() % 4) as usize;
        let kw = 1 + (rng.next_u64() % 4) as usize;
        let c = IntConv {
            in_channels: 1 + (rng.next_u64() % 3) as usize,
            out_channels: 1 + (rng.next_u64() % 3) as usize,
            in_height: kh + (rng.next_u64() % 5) as usize,
            in_width: kw + (rng.next_u64() % 5) as usize,
            kernel_h: kh,
            kernel_w: kw,
            stride: 1 + (rng.next_u64() % 3) as usize,
            padding: (rng.next_u64() % 3) as usize,
        };
        let mask = if k == 64 { u64::MAX } else { (1 << k) - 1 };
        let w: Vec<i64> = (0..c.weight_len())
            .map(|_| rng.next_u64() as i64 >> (rng.next_u64() % 64))
            .collect();
        let x: Vec<u64> = (0..c.input_len()).map(|_| rng.next_u64() & mask).collect();
        assert_eq!(
            conv_ring(&c, &w, &x, k).unwrap(),
            conv_ref(&c, &w, &x, k),
            "{c:?} k={k}"
        );
    }
}

#[test]
fn conv_ring_hand_example_and_errors() {
    // 1x2x2 input [1, 2, 3, 4], 2x2 kernel [1, -1, 2, 0], pad 0: 1 - 2 + 6 = 5;
    // with x[0] = 2^8 - 1 (= -1 at k = 8): -1 - 2 + 6 = 3.
    let c = IntConv {
        in_channels: 1,
        out_channels: 1,
        in_height: 2,
        in_width: 2,
        kernel_h: 2,
        kernel_w: 2,
        stride: 1,
        padding: 0,
    };
    assert_eq!(
        conv_ring(&c, &[1, -1, 2, 0], &[1, 2, 3, 4], 8).unwrap(),
        vec![5]
    );
    assert_eq!(
        conv_ring(&c, &[1, -1, 2, 0], &[255, 2, 3, 4], 8).unwrap(),
        vec![3]
    );
    // Wrap-around: 200·2 = 400 = 144 mod 256.
    assert_eq!(
        conv_ring(&c, &[200, 0, 0, 0], &[2, 0, 0, 0], 8).unwrap(),
        vec![144]
    );
    assert!(matches!(
        conv_ring(&c, &[1, 2, 3], &[1, 2, 3, 4], 8),
        Err(cryptonas_model::intconv::ConvError::Length { .. })
    ));
    assert!(conv_ring(&c, &[1, 2, 3, 4], &[1, 2, 3, 4], 65).is_err());
    let bad = IntConv { kernel_h: 5, ..c };
    assert!(conv_ring(&bad, &[0; 10], &[1, 2, 3, 4], 8).is_err());
}

#[test]
fn relu_trunc_rounds_to_nearest_like_the_circuit() {
    let k = 16;
    let s = |v: i64| from_signed(v, k);
    assert_eq!(relu_trunc(s(100), 0, k), 100);
    assert_eq!(relu_trunc(s(-100), 0, k), 0);
    assert_eq!(relu_trunc(s(5), 2, k), 1); // 5/4 = 1.25 -> 1
    assert_eq!(relu_trunc(s(6), 2, k), 2); // 1.5 -> 2 (half up)
    assert_eq!(relu_trunc(s(-2), 2, k), 0); // -2 + 2 = 0 -> 0
    assert_eq!(relu_trunc(s(-3), 2, k), 0);
    assert_eq!(relu_trunc(s(32767), 0, k), 32767);
    // 32766 + 2 wraps to the negative half: the circuit outputs 0 (the checked mode flags it).
    assert_eq!(relu_trunc(s(32766), 2, k), 0);
    assert_eq!(to_signed(s(-7), k), -7);
    assert_eq!(to_signed(u64::MAX, 64), -1);
    assert_eq!(to_signed(0x8000, 16), -32768);
}

fn setup(c: usize, seed: u64) -> (NormalForm, Vec<Vec<f32>>) {
    let spec = model_spec(&cnet1(c), "t").unwrap();
    let w = random_init(&spec, seed).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let nf = NormalForm::compile(&m).unwrap();
    let mut rng = SplitMix64::new(seed + 100);
    let imgs = (0..16)
        .map(|_| (0..3 * 32 * 32).map(|_| rng.normal()).collect())
        .collect();
    (nf, imgs)
}

#[test]
fn fixed_point_agrees_with_float_at_k32() {
    let (nf, cal_imgs) = setup(2, 21);
    let cal = Calibration::run(&nf, cal_imgs.iter().map(|v| v.as_slice())).unwrap();
    let cfg = cal.config(&nf, 32, &CalibrationParams::default()).unwrap();
    let fm = FixedModel::quantize(&nf, &cfg).unwrap();
    let mut rng = SplitMix64::new(77);
    let n = 200;
    let (mut agree, mut max_err, mut max_logit) = (0, 0f64, 0f64);
    for _ in 0..n {
        let x: Vec<f32> = (0..3 * 32 * 32).map(|_| rng.normal()).collect();
        let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let want = nf.logits_f64(&xf).unwrap();
        let q = fm.quantize_input(&x).unwrap();
        let ring = fm.forward(&q).unwrap();
        let got = fm.dequantize_logits(&ring);
        let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        agree += usize::from(argmax(&want) == argmax(&got));
        for (a, b) in want.iter().zip(&got) {
            max_err = max_err.max((a - b).abs());
            max_logit = max_logit.max(a.abs());
        }
    }
    println!(
        "k=32 f_in=f_a=8: argmax agreement {agree}/{n}, max |logit err| {max_err:.2e} \
         (|logits| up to {max_logit:.2}), stage scales {:?}",
        cfg.stages.iter().map(|s| s.f_z).collect::<Vec<_>>()
    );
    assert!(agree * 100 >= 99 * n, "agreement {agree}/{n}");
    assert!(max_err < 0.05 * max_logit.max(1.0), "max err {max_err}");
}

#[test]
fn checked_mode_equals_ring_mode_and_detects_overflow() {
    let (nf, imgs) = setup(2, 5);
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let p = CalibrationParams {
        f_in: 8,
        f_a: 8,
        guard: 2,
        min_f_w: 6,
        max_f_w: 16,
    };
    let k_min = cal.smallest_k(&nf, &p).unwrap();
    println!("smallest safe k (f_in = f_a = 8, f_w >= 6, 2 guard bits): {k_min}");
    assert!((12..32).contains(&k_min), "{k_min}");
    // At the smallest safe k the calibration images run without overflow and bit-exactly.
    let cfg = cal.config(&nf, k_min, &p).unwrap();
    let fm = FixedModel::quantize(&nf, &cfg).unwrap();
    for img in &imgs {
        let q = fm.quantize_input(img).unwrap();
        assert_eq!(fm.forward_checked(&q).unwrap(), fm.forward(&q).unwrap());
    }
    // Below it, calibration refuses to pick scales.
    assert!(matches!(
        cal.config(&nf, k_min - 1, &p),
        Err(ModelError::FixedConfig { .. })
    ));
    // Forcing the k = 32 scales into a 20-bit ring: the checked mode names the stage.
    let mut cfg32 = cal.config(&nf, 32, &p).unwrap();
    cfg32.k = 20;
    let small = FixedModel::quantize(&nf, &cfg32).unwrap();
    let q = small.quantize_input(&imgs[0]).unwrap();
    match small.forward_checked(&q).unwrap_err() {
        ModelError::Overflow { stage, k, .. } => {
            assert_eq!(k, 20);
            assert!(stage.starts_with('0'), "{stage}");
        }
        e => panic!("{e}"),
    }
    // Inputs outside the range are refused by the encoder.
    let mut big = imgs[0].clone();
    big[3] = 1e9;
    let err = fm.quantize_input(&big).unwrap_err();
    assert!(
        matches!(err, ModelError::InputRange { element: 3, .. }),
        "{err}"
    );
    // The client's pixel value is its secret: the error names the element, not the value.
    let text = err.to_string();
    assert!(
        text.contains("element 3") && !text.contains("value"),
        "{text}"
    );
}

#[test]
fn tuning_picks_the_most_accurate_activation_scale() {
    let (nf, imgs) = setup(2, 21);
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let few = || imgs.iter().take(4).map(|v| v.as_slice());
    let (cfg, err) = cal
        .tune(&nf, 32, &CalibrationParams::default(), 4..=14, few())
        .unwrap();
    for f in [4, 14] {
        let p = CalibrationParams {
            f_in: f,
            f_a: f,
            ..CalibrationParams::default()
        };
        let fm = FixedModel::quantize(&nf, &cal.config(&nf, 32, &p).unwrap()).unwrap();
        let mut e = 0f64;
        for x in few() {
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let want = nf.logits_f64(&xf).unwrap();
            let got = fm.logits(x).unwrap();
            e = want
                .iter()
                .zip(&got)
                .fold(e, |e, (a, b)| e.max((a - b).abs()));
        }
        assert!(err <= e, "tuned error {err} worse than f = {f}: {e}");
    }
    println!(
        "tuned f_a = {} at k = 32: max |logit err| {err:.2e}",
        cfg.f_a
    );
}

#[test]
fn bad_configs_are_rejected() {
    let (nf, imgs) = setup(2, 6);
    let cal = Calibration::run(&nf, imgs.iter().take(2).map(|v| v.as_slice())).unwrap();
    let good = cal.config(&nf, 32, &CalibrationParams::default()).unwrap();
    let mut c = good.clone();
    c.stages.pop();
    assert!(FixedModel::quantize(&nf, &c).is_err());
    let mut c = good.clone();
    c.stages[0].f_w[0] += 40;
    assert!(FixedModel::quantize(&nf, &c).is_err());
    let mut c: FixedConfig = good.clone();
    c.stages[1].f_z = 3; // below f_a
    assert!(FixedModel::quantize(&nf, &c).is_err());
    let c = FixedConfig { k: 65, ..good };
    assert!(FixedModel::quantize(&nf, &c).is_err());
    assert!(Calibration::run(&nf, std::iter::empty()).is_err());
}

#[test]
fn other_ring_sizes_are_bit_exact_and_accurate() {
    let (nf, imgs) = setup(2, 8);
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    for k in [24, 40, 64] {
        let cfg = cal.config(&nf, k, &CalibrationParams::default()).unwrap();
        let fm = FixedModel::quantize(&nf, &cfg).unwrap();
        for x in imgs.iter().take(2) {
            let q = fm.quantize_input(x).unwrap();
            let ring = fm.forward_checked(&q).unwrap();
            assert_eq!(ring, fm.forward(&q).unwrap(), "k = {k}");
            assert!(ring.iter().all(|&v| k == 64 || v >> k == 0));
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let want = nf.logits_f64(&xf).unwrap();
            let got = fm.dequantize_logits(&ring);
            let err = want
                .iter()
                .zip(&got)
                .fold(0f64, |e, (a, b)| e.max((a - b).abs()));
            // k = 24 leaves only ~10 bits between ReLU rounding and weight precision.
            let bound = if k == 24 { 0.5 } else { 0.02 };
            assert!(err < bound, "k = {k}: max logit error {err}");
        }
    }
}

#[test]
fn fixed_config_round_trips_in_model_metadata() {
    let (nf, imgs) = setup(2, 4);
    let cal = Calibration::run(&nf, imgs.iter().take(2).map(|v| v.as_slice())).unwrap();
    let cfg = cal.config(&nf, 32, &CalibrationParams::default()).unwrap();
    let mut spec = model_spec(&cnet1(2), "t").unwrap();
    spec.metadata.fixed_point = Some(cfg.clone());
    let back = cryptonas_model::ModelSpec::from_json(spec.to_json().as_bytes()).unwrap();
    assert_eq!(back.metadata.fixed_point, Some(cfg));
    let bad = spec.to_json().replace("\"f_a\"", "\"f_b\"");
    assert!(cryptonas_model::ModelSpec::from_json(bad.as_bytes()).is_err());
}

#[test]
fn folded_normalisation_takes_raw_pixels_exactly() {
    use cryptonas_model::image::{load_input, load_raw_input};
    use cryptonas_model::InputEncoding;
    let spec = model_spec(&cnet1(2), "t").unwrap();
    let w = random_init(&spec, 12).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let nf = NormalForm::compile(&m).unwrap();
    let raw_nf = nf.fold_normalisation(&spec.input).unwrap();
    assert_eq!(raw_nf.encoding, InputEncoding::RawPixels);
    assert!(raw_nf.fold_normalisation(&spec.input).is_err());
    let mut raws = Vec::new();
    for bytes in [
        &include_bytes!("fixtures/cifar10-test-cat-0000.jpg")[..],
        &include_bytes!("fixtures/cifar10-test-ship-0000.jpg")[..],
    ] {
        let x = load_input(bytes, &spec.input).unwrap();
        let raw = load_raw_input(bytes, &spec.input).unwrap();
        assert!(raw
            .iter()
            .all(|&p| p == p.round() && (0.0..=255.0).contains(&p)));
        let a = nf
            .logits_f64(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())
            .unwrap();
        let b = raw_nf
            .logits_f64(&raw.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())
            .unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4 * p.abs().max(1.0), "{p} vs {q}");
        }
        raws.push((raw, b));
    }
    // Pixels enter the ring as exact integers (f_in = 0).
    let cal = Calibration::run(&raw_nf, raws.iter().map(|(r, _)| r.as_slice())).unwrap();
    let p = CalibrationParams {
        f_in: 0,
        ..CalibrationParams::default()
    };
    let fm = FixedModel::quantize(&raw_nf, &cal.config(&raw_nf, 32, &p).unwrap()).unwrap();
    for (raw, want) in &raws {
        let q = fm.quantize_input(raw).unwrap();
        assert!(q.iter().zip(raw).all(|(&a, &b)| a as f32 == b));
        let got = fm.dequantize_logits(&fm.forward_checked(&q).unwrap());
        let err = want
            .iter()
            .zip(&got)
            .fold(0f64, |e, (a, b)| e.max((a - b).abs()));
        assert!(err < 0.05, "max logit error {err}");
    }
}

/// Weight precision (fractional bits of the finest-scale source's weights) of each stage.
fn precisions(cfg: &FixedConfig) -> Vec<u32> {
    cfg.stages
        .iter()
        .map(|s| s.f_w.iter().copied().min().unwrap_or(0))
        .collect()
}

#[test]
fn narrow_rings_are_the_smallest_that_hold_each_layer_and_change_nothing_in_range() {
    let (nf, imgs) = setup(2, 31);
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let p = CalibrationParams::default();
    let n = nf.stages.len();
    let narrow = cal.narrow_config(&nf, 32, &p, &vec![9; n]).unwrap();
    let relus = n - 1;
    for (j, sc) in narrow.stages.iter().enumerate().take(relus) {
        let kj = sc.k.unwrap();
        let t = sc.f_z - p.f_a;
        assert_eq!(sc.f_z, p.f_a + 9, "stage {j}");
        // Fits with the guard bits, and one bit less would not (or would leave the ReLU no bit).
        let fits = |k: u32| cal.stage_max[j] * f64::from(sc.f_z).exp2() < 2f64.powi(k as i32 - 3);
        assert!(fits(kj) && kj >= t + 2, "stage {j}: k = {kj}");
        assert!(
            !fits(kj - 1) || kj - 1 < t + 2,
            "stage {j}: k = {kj} is not the smallest"
        );
        assert!(kj < 32, "stage {j}: k = {kj}");
    }
    assert_eq!(narrow.stages[relus].k, None, "the logits keep k");
    // Same scales in a full-width ring: inside the calibrated range the narrow rings give the
    // same logits, and the checked mode sees no overflow.
    let mut wide = narrow.clone();
    wide.stages.iter_mut().for_each(|s| s.k = None);
    let (fn_, fw) = (
        FixedModel::quantize(&nf, &narrow).unwrap(),
        FixedModel::quantize(&nf, &wide).unwrap(),
    );
    for x in &imgs {
        let q = fn_.quantize_input(x).unwrap();
        let out = fn_.forward_checked(&q).unwrap();
        assert_eq!(out, fn_.forward(&q).unwrap());
        assert_eq!(out, fw.forward(&q).unwrap());
    }
    // A ring narrower than the range wraps: the checked mode names the stage and its width, and
    // the ring mode computes the wrapped ReLU exactly as the spec says.
    let mut tight = narrow.clone();
    let k1 = tight.stages[1].k.unwrap() - 4;
    tight.stages[1].k = Some(k1);
    let ft = FixedModel::quantize(&nf, &tight).unwrap();
    let q = ft.quantize_input(&imgs[0]).unwrap();
    match ft.forward_checked(&q).unwrap_err() {
        ModelError::Overflow { stage, k, .. } => {
            assert_eq!(k, k1);
            assert!(stage.starts_with('1'), "{stage}");
        }
        e => panic!("{e}"),
    }
    let zs = ft.forward_stages(&q).unwrap();
    let z_wide = fw.forward_stages(&q).unwrap();
    assert_eq!(
        zs[1], z_wide[1],
        "the stage's Z is computed mod 2^k as before"
    );
    let st = &ft.stages[1];
    let a: Vec<u64> = zs[1].iter().map(|&z| relu_trunc(z, st.trunc, k1)).collect();
    let a_wide: Vec<u64> = zs[1].iter().map(|&z| relu_trunc(z, st.trunc, 32)).collect();
    assert_ne!(a, a_wide, "a 4-bit narrower ring must wrap somewhere");
    // Widths the circuit cannot have are refused.
    for bad in [1, 33, st.trunc + 1] {
        let mut c = narrow.clone();
        c.stages[1].k = Some(bad);
        assert!(
            matches!(
                FixedModel::quantize(&nf, &c),
                Err(ModelError::FixedConfig { .. })
            ),
            "k = {bad}"
        );
    }
    let mut c = narrow.clone();
    c.stages[relus].k = Some(20);
    assert!(FixedModel::quantize(&nf, &c).is_err(), "logits width");
    // Old configurations (no per-stage width) still parse, and a width round-trips.
    let json = serde_json::to_string(&narrow).unwrap();
    assert_eq!(serde_json::from_str::<FixedConfig>(&json).unwrap(), narrow);
    let old = serde_json::to_string(&cal.config(&nf, 32, &p).unwrap()).unwrap();
    assert!(!old.contains("\"k\":null"), "{old}");
}

#[test]
fn narrowest_picks_the_least_accepted_precision_of_each_layer() {
    let (nf, imgs) = setup(2, 32);
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let p = CalibrationParams::default();
    let n = nf.stages.len();
    // An acceptance rule with a known answer: layer j needs `need[j]` weight bits.
    let need: Vec<u32> = (0..n).map(|j| [9, 7, 11, 8, 6, 10, 12][j % 7]).collect();
    let mut calls = 0;
    let cfg = cal
        .narrowest(&nf, 32, &p, |c| {
            calls += 1;
            Ok(precisions(c)
                .iter()
                .zip(&need)
                .take(n - 1)
                .all(|(have, need)| have >= need))
        })
        .unwrap();
    let got = precisions(&cfg);
    assert_eq!(&got[..n - 1], &need[..n - 1]);
    // Its widths are narrow_config's for those precisions.
    let mut again = got.clone();
    again[n - 1] = 0;
    assert_eq!(cal.narrow_config(&nf, 32, &p, &again).unwrap(), cfg);
    // Uniform scan up to the largest need, then one refusal per layer plus each bit dropped.
    let uniform = (need[..n - 1].iter().max().unwrap() - p.min_f_w + 1) as usize;
    let dropped: u32 = need[..n - 1]
        .iter()
        .map(|&w| need[..n - 1].iter().max().unwrap() - w)
        .sum();
    let floor = need[..n - 1].iter().filter(|&&w| w == p.min_f_w).count();
    assert_eq!(calls, uniform + dropped as usize + (n - 1) - floor);

    // A real rule: the fixed point predicts as float does on the calibration images.
    let want: Vec<usize> = imgs
        .iter()
        .map(|x| {
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            argmax(&nf.logits_f64(&xf).unwrap())
        })
        .collect();
    let cfg = cal
        .narrowest(&nf, 32, &p, |c| {
            let fm = FixedModel::quantize(&nf, c)?;
            Ok(imgs
                .iter()
                .zip(&want)
                .all(|(x, &w)| argmax(&fm.logits(x).unwrap()) == w))
        })
        .unwrap();
    let fm = FixedModel::quantize(&nf, &cfg).unwrap();
    for x in &imgs {
        let q = fm.quantize_input(x).unwrap();
        assert_eq!(fm.forward_checked(&q).unwrap(), fm.forward(&q).unwrap());
    }
    println!(
        "narrowest widths {:?}, weight bits {:?}",
        cfg.stages.iter().map(|s| s.k).collect::<Vec<_>>(),
        precisions(&cfg)
    );
    assert!(cfg.stages[..n - 1].iter().all(|s| s.k.unwrap() < 32));
}

#[test]
fn narrowest_refuses_when_nothing_fits() {
    let (nf, imgs) = setup(2, 33);
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let p = CalibrationParams::default();
    // Nothing accepted.
    let mut calls = 0;
    let e = cal
        .narrowest(&nf, 32, &p, |_| {
            calls += 1;
            Ok(false)
        })
        .unwrap_err();
    assert!(matches!(e, ModelError::FixedConfig { .. }), "{e}");
    assert!(calls as u32 <= p.max_f_w - p.min_f_w + 1);
    // Accepted only beyond what the ring holds: the error says which stage does not fit.
    let e = cal
        .narrowest(&nf, 32, &p, |c| Ok(precisions(c)[0] >= 40))
        .unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
    // A ring too small for the input or any stage.
    assert!(cal.narrowest(&nf, 12, &p, |_| Ok(true)).is_err());
    // The acceptance rule's own error is passed on.
    let e = cal
        .narrowest(&nf, 32, &p, |_| {
            Err(ModelError::FixedConfig {
                detail: "judge failed".into(),
            })
        })
        .unwrap_err();
    assert!(e.to_string().contains("judge failed"), "{e}");
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0)
}

#[test]
fn rank_logits_orders_signed_values_and_breaks_ties_by_lower_index() {
    use cryptonas_model::fixed::{from_signed, rank_logits};
    let k = 16;
    let v: Vec<u64> = [-3i64, 7, 7, -32768, 32767, 7]
        .iter()
        .map(|&x| from_signed(x, k))
        .collect();
    assert_eq!(rank_logits(&v, k, 6), vec![4, 1, 2, 5, 0, 3]);
    assert_eq!(rank_logits(&v, k, 1), vec![4]);
    assert_eq!(rank_logits(&v[..4], k, 2), vec![1, 2]);
    assert_eq!(rank_logits(&v, k, 99).len(), 6);
    assert!(rank_logits(&[], k, 1).is_empty());
}
