//! Statistical check that noise flooding hides the weights (circuit privacy).
//!
//! The client's secret key lets it compute the full noise of what the server computed. We measure the
//! noise of every output coefficient at the top level (after re-randomisation and flooding, before the
//! modulus switch, which can only blur it further) for two very different weight sets and run a
//! two-sample Kolmogorov–Smirnov test, on the noise and on its 16 low bits. As a power check, the same
//! test without flooding must tell the weight sets apart at once.
//!
//! The second test covers the client's whole view, the full `respond` output: the top-level
//! ciphertext that the (public, deterministic) modulus switch turns into the response must already
//! encrypt the client's share `W·r − s` under flood-width noise that does not depend on the weights,
//! and the bottom-level noise the client can compute from what it receives must not either.

use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};

use crate::client::{ClientKeys, ClientStage};
use crate::conv::{conv_ring, IntConv};
use crate::params::{mul_mod, HeParams};
use crate::server::{PublicKey, ServerStage};
use crate::wire::ResponseMsg;
use cryptonas_crypto::Csprng;
use rand_core::RngCore;

/// Centred noise of every output coefficient of the stage (top level, 2 primes).
fn top_noise(
    params: &HeParams,
    keys: &ClientKeys,
    server: &ServerStage,
    masks: &[u64],
    expected: &[u64],
    rng: &mut Csprng,
    flood: bool,
) -> Vec<i128> {
    let client =
        ClientStage::new(params, &server.plan().terms().copied().collect::<Vec<_>>()).unwrap();
    let (_, msg) = client.encrypt_masks(keys, &[masks], rng).unwrap();
    let pk = PublicKey::from_msg(params, keys.public_key()).unwrap();
    let (c0s, c1s) = server.expand(&msg).unwrap();
    let m = params.moduli();
    assert_eq!(m.len(), 2, "test assumes a two-prime top level");
    let (q0, q1) = (m[0] as u128, m[1] as u128);
    let q = q0 * q1;
    let inv = {
        // q0^(q1−2) mod q1
        let (mut b, mut e, mut r) = (m[0] % m[1], m[1] - 2, 1u64);
        while e > 0 {
            if e & 1 == 1 {
                r = mul_mod(r, b, m[1]);
            }
            b = mul_mod(b, b, m[1]);
            e >>= 1;
        }
        r
    };
    let lift = |r0: u64, r1: u64| -> u128 {
        let h = mul_mod((r1 + m[1] - r0 % m[1]) % m[1], inv, m[1]);
        r0 as u128 + q0 * h as u128
    };
    let mask = params.mask();
    let mut out = Vec::new();
    for (oi, map) in server.plan().out_maps.iter().enumerate() {
        let (c0, mut c1) = server.product(&pk, &c0s, &c1s, oi, rng, flood).unwrap();
        c1.change_representation(Representation::Ntt);
        let mut phase: Poly = &c1 * &keys.s_top;
        phase.change_representation(Representation::PowerBasis);
        phase += &c0;
        let co = phase.coefficients();
        for &(coef, out_i) in map {
            let x = lift(co[[0, coef as usize]], co[[1, coef as usize]]);
            let v = expected[out_i as usize];
            let y = lift(
                params.enc_top.encode(v, 0, mask),
                params.enc_top.encode(v, 1, mask),
            );
            let d = (x + q - y) % q;
            out.push(if d > q / 2 {
                -((q - d) as i128)
            } else {
                d as i128
            });
        }
    }
    out
}

/// Two-sample Kolmogorov–Smirnov statistic.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            i += 1;
        } else {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

fn low_bits(v: &[i128]) -> Vec<f64> {
    v.iter().map(|x| x.rem_euclid(1 << 16) as f64).collect()
}

fn as_f64(v: &[i128]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn flooding_hides_weight_change() {
    let params = HeParams::new(32).unwrap();
    let mut rng = Csprng::from_seed([42; 32]);
    let keys = ClientKeys::generate(&params, &mut rng).unwrap();
    let conv = IntConv {
        in_channels: 4,
        out_channels: 4,
        in_height: 16,
        in_width: 16,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let small: Vec<i64> = (0..conv.weight_len()).map(|i| (i % 3) as i64 - 1).collect();
    let large: Vec<i64> = (0..conv.weight_len())
        .map(|_| (rng.next_u64() % (1 << 17)) as i64 - (1 << 16))
        .collect();
    let masks: Vec<u64> = (0..conv.input_len())
        .map(|_| rng.next_u64() & params.mask())
        .collect();
    let mut samples = Vec::new();
    for flood in [true, false] {
        let mut pair = Vec::new();
        for w in [&small, &large] {
            let server = ServerStage::new(&params, &[(conv, w.clone())]).unwrap();
            let expected = conv_ring(&conv, w, &masks, params.k()).unwrap();
            let mut noise = Vec::new();
            for _ in 0..2 {
                noise.extend(top_noise(
                    &params, &keys, &server, &masks, &expected, &mut rng, flood,
                ));
            }
            pair.push(noise);
        }
        samples.push(pair);
    }
    let n = samples[0][0].len() as f64;
    // KS critical value at α = 0.001 for two samples of size n.
    let crit = 1.95 * (2.0 / n).sqrt();
    let d_flood = ks(&as_f64(&samples[0][0]), &as_f64(&samples[0][1]));
    let d_low = ks(&low_bits(&samples[0][0]), &low_bits(&samples[0][1]));
    // Magnitudes: two centred distributions of different widths differ most in |x|.
    let abs = |v: &[i128]| {
        v.iter()
            .map(|x| x.unsigned_abs() as f64)
            .collect::<Vec<_>>()
    };
    let d_abs = ks(&abs(&samples[0][0]), &abs(&samples[0][1]));
    let d_raw = ks(&abs(&samples[1][0]), &abs(&samples[1][1]));
    eprintln!(
        "KS over {n} coefficients: flooded D = {d_flood:.4}, low 16 bits D = {d_low:.4}, \
         |noise| D = {d_abs:.4}, unflooded |noise| D = {d_raw:.4}, critical (alpha = 0.001) {crit:.4}"
    );
    assert!(
        d_flood < crit,
        "flooded noise distinguishable: D = {d_flood} ≥ {crit}"
    );
    assert!(
        d_low < crit,
        "flooded low bits distinguishable: D = {d_low} ≥ {crit}"
    );
    assert!(
        d_abs < crit,
        "flooded magnitudes distinguishable: D = {d_abs} ≥ {crit}"
    );
    assert!(
        d_raw > 0.9,
        "power check: unflooded noise should differ, D = {d_raw}"
    );
    // Flooded noise spans the flooding width (uniform in [−2^F, 2^F): |x| mean 2^(F−1)).
    let mean_abs = samples[0][0]
        .iter()
        .map(|x| x.unsigned_abs() as f64)
        .sum::<f64>()
        / n;
    let f = params.flood_bits() as f64;
    assert!(
        (mean_abs.log2() - (f - 1.0)).abs() < 0.1,
        "mean |noise| 2^{}",
        mean_abs.log2()
    );
}

/// CRT lift of two residues to [0, q0·q1) and centring against an expected encoding.
struct Crt2 {
    q0: u64,
    q1: u64,
    inv: u64,
}

impl Crt2 {
    fn new(m: &[u64]) -> Self {
        let (mut b, mut e, mut r) = (m[0] % m[1], m[1] - 2, 1u64);
        while e > 0 {
            if e & 1 == 1 {
                r = mul_mod(r, b, m[1]);
            }
            b = mul_mod(b, b, m[1]);
            e >>= 1;
        }
        Crt2 {
            q0: m[0],
            q1: m[1],
            inv: r,
        }
    }
    fn lift(&self, r0: u64, r1: u64) -> u128 {
        let h = mul_mod((r1 + self.q1 - r0 % self.q1) % self.q1, self.inv, self.q1);
        r0 as u128 + self.q0 as u128 * h as u128
    }
    /// Centred `x − y` for residue pairs x and y.
    fn centred_diff(&self, x: (u64, u64), y: (u64, u64)) -> i128 {
        let q = self.q0 as u128 * self.q1 as u128;
        let d = (self.lift(x.0, x.1) + q - self.lift(y.0, y.1)) % q;
        if d > q / 2 {
            -((q - d) as i128)
        } else {
            d as i128
        }
    }
}

/// Runs `respond`'s two halves (top-level output, then switch and selection) for one weight set and
/// returns (top-level noise against the client's share, bottom-level noise the client can compute).
fn respond_view_noise(
    params: &HeParams,
    keys: &ClientKeys,
    server: &ServerStage,
    masks: &[u64],
    expected: &[u64],
    rng: &mut Csprng,
) -> (Vec<i128>, Vec<i128>) {
    let client =
        ClientStage::new(params, &server.plan().terms().copied().collect::<Vec<_>>()).unwrap();
    let (state, msg) = client.encrypt_masks(keys, &[masks], rng).unwrap();
    let pk = PublicKey::from_msg(params, keys.public_key()).unwrap();
    let (c0s, c1s) = server.expand(&msg).unwrap();
    let mask = params.mask();
    let mut tops = Vec::new();
    let mut cts = Vec::new();
    let mut server_share = vec![0u64; server.plan().output_len()];
    for oi in 0..server.plan().output_ciphertexts() {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let (shares, c0, c1) = server.top_output(&pk, &c0s, &c1s, oi, &seed).unwrap();
        for (&(_, out_i), s) in server.plan().out_maps[oi].iter().zip(shares.iter()) {
            server_share[out_i as usize] = *s;
        }
        cts.push(
            server
                .switch_and_select(c0.clone(), c1.clone(), oi)
                .unwrap(),
        );
        tops.push((c0, c1));
    }
    let resp = ResponseMsg { cts };
    let client_share = state.decrypt(keys, &resp).unwrap();
    for i in 0..expected.len() {
        assert_eq!(
            client_share[i].wrapping_add(server_share[i]) & mask,
            expected[i],
            "shares do not add up at {i}"
        );
    }
    // Top level: the ciphertext entering the switch, against the encoding of the client's share.
    let top = Crt2::new(params.moduli());
    let mut top_noise = Vec::new();
    for ((c0, c1), map) in tops.into_iter().zip(&server.plan().out_maps) {
        let mut c1 = c1;
        c1.change_representation(Representation::Ntt);
        let mut phase: Poly = &c1 * &keys.s_top;
        phase.change_representation(Representation::PowerBasis);
        phase += &c0;
        let co = phase.coefficients();
        for &(coef, out_i) in map {
            let y = client_share[out_i as usize];
            top_noise.push(top.centred_diff(
                (co[[0, coef as usize]], co[[1, coef as usize]]),
                (
                    params.enc_top.encode(y, 0, mask),
                    params.enc_top.encode(y, 1, mask),
                ),
            ));
        }
    }
    // Bottom level: what the client received, against the encoding of its share.
    assert_eq!(
        params.low_moduli().len(),
        1,
        "test assumes one bottom prime"
    );
    let q = params.low_moduli()[0];
    let mut low_noise = Vec::new();
    for (ct, map) in resp.cts.iter().zip(&server.plan().out_maps) {
        let c1 = Poly::try_convert_from(ct.c1.clone(), &params.ctx_low, false, Representation::Ntt)
            .unwrap();
        let mut phase = &c1 * &keys.s_low;
        phase.change_representation(Representation::PowerBasis);
        let co = phase.coefficients();
        for (idx, &(coef, out_i)) in map.iter().enumerate() {
            let x = (co[[0, coef as usize]] + ct.c0[idx]) % q;
            let y = params.enc_low.encode(client_share[out_i as usize], 0, mask);
            let d = (x + q - y) % q;
            low_noise.push(if d > q / 2 {
                -((q - d) as i128)
            } else {
                d as i128
            });
        }
    }
    (top_noise, low_noise)
}

#[test]
fn respond_output_is_simulatable_from_the_client_share() {
    let params = HeParams::new(32).unwrap();
    let mut rng = Csprng::from_seed([7; 32]);
    let keys = ClientKeys::generate(&params, &mut rng).unwrap();
    let conv = IntConv {
        in_channels: 4,
        out_channels: 4,
        in_height: 16,
        in_width: 16,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let small: Vec<i64> = (0..conv.weight_len()).map(|i| (i % 3) as i64 - 1).collect();
    let large: Vec<i64> = (0..conv.weight_len())
        .map(|_| (rng.next_u64() % (1 << 17)) as i64 - (1 << 16))
        .collect();
    let masks: Vec<u64> = (0..conv.input_len())
        .map(|_| rng.next_u64() & params.mask())
        .collect();
    let mut tops = Vec::new();
    let mut lows = Vec::new();
    for w in [&small, &large] {
        let server = ServerStage::new(&params, &[(conv, w.clone())]).unwrap();
        let expected = conv_ring(&conv, w, &masks, params.k()).unwrap();
        let (mut top, mut low) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let (t, l) = respond_view_noise(&params, &keys, &server, &masks, &expected, &mut rng);
            top.extend(t);
            low.extend(l);
        }
        tops.push(top);
        lows.push(low);
    }
    let n = tops[0].len() as f64;
    let crit = 1.95 * (2.0 / n).sqrt();
    let f = params.flood_bits() as f64;
    let abs = |v: &[i128]| {
        v.iter()
            .map(|x| x.unsigned_abs() as f64)
            .collect::<Vec<_>>()
    };
    // The switched ciphertext encrypts the client's share under the whole flood: its noise spans
    // 2^F (a ciphertext of W·r would sit ≈ Q/t·s away, i.e. be uniform over Z_Q, ≫ 2^F).
    for (i, top) in tops.iter().enumerate() {
        let max = top.iter().map(|x| x.unsigned_abs()).max().unwrap() as f64;
        assert!(
            max.log2() <= f + 0.01,
            "weights {i}: top-level noise 2^{} exceeds the flood 2^{f}: the switched ciphertext \
             does not encrypt the client's share",
            max.log2()
        );
        let mean = abs(top).iter().sum::<f64>() / n;
        assert!(
            (mean.log2() - (f - 1.0)).abs() < 0.1,
            "mean |noise| 2^{}",
            mean.log2()
        );
    }
    let d_top = ks(&as_f64(&tops[0]), &as_f64(&tops[1]));
    let d_top_low = ks(&low_bits(&tops[0]), &low_bits(&tops[1]));
    let d_low = ks(&as_f64(&lows[0]), &as_f64(&lows[1]));
    let d_low_abs = ks(&abs(&lows[0]), &abs(&lows[1]));
    eprintln!(
        "KS over {n} coefficients of the full response: top D = {d_top:.4}, top low 16 bits \
         D = {d_top_low:.4}, received noise D = {d_low:.4}, |received| D = {d_low_abs:.4}, \
         critical (alpha = 0.001) {crit:.4}"
    );
    for (what, d) in [
        ("top-level noise", d_top),
        ("top-level low bits", d_top_low),
        ("received noise", d_low),
        ("received |noise|", d_low_abs),
    ] {
        assert!(d < crit, "{what} distinguishable: D = {d} ≥ {crit}");
    }
    // The received noise is the flood scaled down by Q_hi (uniform, mean |x| = 2^(F−1)/Q_hi).
    let mean_low = abs(&lows[0]).iter().sum::<f64>() / n;
    let want = f - 1.0 - params.log2_q_hi();
    assert!(
        (mean_low.log2() - want).abs() < 0.2,
        "received mean |noise| 2^{} vs 2^{want}",
        mean_low.log2()
    );
}
