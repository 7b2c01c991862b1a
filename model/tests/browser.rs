//! The fixed-point engine in the browser (wasm32) and natively: same ring results, same argmax
//! as the float normal form. Browser: `CHROMEDRIVER=/usr/bin/chromedriver cargo test --target
//! wasm32-unknown-unknown -p cryptonas-model --tests`.

use cryptonas_arch::cnet1;
use cryptonas_model::rng::SplitMix64;
use cryptonas_model::zoo::{model_spec, random_init};
use cryptonas_model::{
    conv_ring, Calibration, CalibrationParams, FixedModel, IntConv, Model, NormalForm,
};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test_configure!(run_in_browser);

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn ring_conv_wraps_the_same_everywhere() {
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
    // (2^31)·2 + (−1)·1 = 2^32 − 1 ≡ −1 (mod 2^32); at k = 40 it is 2^32 − 1.
    let w = [1i64 << 31, -1, 0, 0];
    let x = [2u64, 1, 0, 0];
    assert_eq!(conv_ring(&c, &w, &x, 32).unwrap(), vec![u32::MAX as u64]);
    assert_eq!(conv_ring(&c, &w, &x, 40).unwrap(), vec![(1u64 << 32) - 1]);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fixed_point_cnet1_matches_float() {
    let spec = model_spec(&cnet1(1), "t").unwrap();
    let w = random_init(&spec, 3).unwrap();
    let m = Model::from_bytes(spec.to_json().as_bytes(), &w).unwrap();
    let nf = NormalForm::compile(&m).unwrap();
    let mut rng = SplitMix64::new(4);
    let imgs: Vec<Vec<f32>> = (0..6)
        .map(|_| (0..3 * 32 * 32).map(|_| rng.normal()).collect())
        .collect();
    let cal = Calibration::run(&nf, imgs.iter().map(|v| v.as_slice())).unwrap();
    let fm = FixedModel::quantize(
        &nf,
        &cal.config(&nf, 32, &CalibrationParams::default()).unwrap(),
    )
    .unwrap();
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let mut agree = 0;
    for x in &imgs {
        let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let q = fm.quantize_input(x).unwrap();
        let ring = fm.forward_checked(&q).unwrap();
        assert_eq!(ring, fm.forward(&q).unwrap());
        agree += usize::from(
            argmax(&nf.logits_f64(&xf).unwrap()) == argmax(&fm.dequantize_logits(&ring)),
        );
    }
    assert!(agree >= 5, "{agree}/6");
}
