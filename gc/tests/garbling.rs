//! Garbled evaluation against the plaintext oracle: ReLU circuits, Bristol circuits, tampering,
//! Δ freshness and wire formats. Runs natively and in headless Chromium (wasm-bindgen-test).

use cryptonas_crypto::{Block, Csprng, FixedKeyAes};
use cryptonas_gc::{
    from_bristol, to_bristol, ActiveLabels, BristolParties, Circuit, CircuitBuilder, DecodingBits,
    Delta, Evaluator, GarbleError, GarbledTables, Garbler, ReluCircuit, ReluVariant, ShareDecoding,
    TweakDomain, Wire,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// ReLUs per k: 100,000 natively (the must-show count); fewer in the browser, where AES is
/// bitsliced software (~50x slower).
#[cfg(not(target_arch = "wasm32"))]
const RELUS_PER_K: usize = 100_000;
#[cfg(target_arch = "wasm32")]
const RELUS_PER_K: usize = 4_000;

fn mask(k: u32) -> u64 {
    if k == 64 {
        u64::MAX
    } else {
        (1 << k) - 1
    }
}

/// Garbles `a.len()` ReLUs, evaluates them, returns the evaluator's decoded outputs.
/// With `via_ot`, the evaluator's zero-labels are supplied from outside (as a correlated OT would)
/// and its active labels computed from them, not by the encoder.
fn run_relu(
    relu: &ReluCircuit,
    a: &[u64],
    b: &[u64],
    m: &[u64],
    rng: &mut Csprng,
    via_ot: bool,
) -> Vec<u64> {
    let domain = TweakDomain {
        session_id: rng.u64(),
        first_instance: 0,
    };
    let delta = Delta::random(rng);
    let k = relu.k() as usize;
    let (garbled, eb) = if via_ot {
        let zero = rng.blocks(b.len() * k);
        let d = delta.as_block();
        let active: Vec<Block> = zero
            .iter()
            .enumerate()
            .map(|(j, z)| *z ^ d.select((b[j / k] >> (j % k)) & 1 == 1))
            .collect();
        let g = relu.garble(delta, domain, m, Some(&zero), rng).unwrap();
        assert_eq!(g.encoder.evaluator_zero_labels(), &zero[..]);
        (g, ActiveLabels::new(k, active).unwrap())
    } else {
        let g = relu.garble(delta, domain, m, None, rng).unwrap();
        let eb = relu.encode_evaluator(&g.encoder, b).unwrap();
        (g, eb)
    };
    let ga = relu.encode_garbler(&garbled.encoder, a).unwrap();
    // Bytes per ReLU on the wire: tables (ANDs x 32 B, after a 16-B header per batch) offline,
    // k x 16 B of labels online.
    assert_eq!(
        garbled.tables.as_bytes().len(),
        16 + a.len() * relu.circuit().and_count() * 32
    );
    assert_eq!(ga.as_bytes().len(), a.len() * k * 16);
    // And the arithmetic output: three k'-bit words per result bit (gated by the sign) and one
    // per ReLU.
    let words = 3 * relu.output().terms() + 1;
    assert_eq!(
        garbled.decoding.as_bytes().len(),
        a.len() * words * relu.k_out().div_ceil(8) as usize
    );
    let out = Evaluator::new(relu.circuit(), domain)
        .evaluate(&garbled.tables, &ga, &eb)
        .unwrap();
    let got = relu
        .decode(&FixedKeyAes::default(), domain, &out, &garbled.decoding)
        .unwrap();
    // The first 64 instances also against the plaintext interpreter (bit-sliced, one lane each).
    let lanes = |v: &[u64]| -> Vec<u64> {
        (0..k)
            .map(|bit| {
                v.iter()
                    .take(64)
                    .enumerate()
                    .map(|(lane, x)| ((x >> bit) & 1) << lane)
                    .sum()
            })
            .collect()
    };
    let plain = relu
        .circuit()
        .eval_lanes(&lanes(a), &lanes(b), &[])
        .unwrap();
    let mk = mask(relu.k_out());
    for (lane, g) in got.iter().take(64).enumerate() {
        let bits: Vec<bool> = plain.iter().map(|w| (w >> lane) & 1 == 1).collect();
        let p = relu.output().word(&bits).wrapping_sub(m[lane]) & mk;
        assert_eq!(*g, p, "garbled vs plaintext interpreter, instance {lane}");
    }
    got
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn garbled_relu_matches_plain_on_random_shares() {
    let mut rng = Csprng::from_seed([1; 32]);
    for k in [16u32, 32, 40] {
        // t = 0 and a typical truncation; the rounding term goes into a as in the protocol.
        for (batch, t) in [0, 8, 0, 8].into_iter().enumerate() {
            let relu = ReluCircuit::new(k, t, ReluVariant::Relu).unwrap();
            let n = RELUS_PER_K / 4;
            let mk = mask(k);
            let a: Vec<u64> = (0..n).map(|_| rng.u64() & mk).collect();
            let b: Vec<u64> = (0..n).map(|_| rng.u64() & mk).collect();
            let m: Vec<u64> = (0..n).map(|_| rng.u64() & mk).collect();
            let a_round: Vec<u64> = a
                .iter()
                .map(|&x| x.wrapping_add(relu.round_term()) & mk)
                .collect();
            let got = run_relu(&relu, &a_round, &b, &m, &mut rng, batch % 2 == 1);
            for i in 0..n {
                // docs/ring-spec.md: relu_trunc_t(Z) = relu_k(Z + 2^(t-1)) >> t, minus the mask.
                let z = a[i].wrapping_add(b[i]) & mk;
                let zr = z.wrapping_add(relu.round_term()) & mk;
                let relu_k = if zr >> (k - 1) == 1 { 0 } else { zr };
                let expect = ((relu_k >> t).wrapping_sub(m[i])) & mk;
                assert_eq!(
                    got[i], expect,
                    "k={k} t={t} a={:#x} b={:#x} m={:#x}",
                    a[i], b[i], m[i]
                );
                assert_eq!(got[i], relu.reference(a_round[i], b[i], m[i]));
            }
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn garbled_relu_edge_cases_and_variants() {
    let mut rng = Csprng::from_seed([2; 32]);
    for k in [2u32, 8, 16, 32, 40, 64] {
        let mk = mask(k);
        let (min, max) = (1u64 << (k - 1), (1u64 << (k - 1)) - 1);
        let specials = [0, 1, mk, min, max, min + 1, max - 1, 2, mk - 1];
        let mut a = Vec::new();
        let mut b = Vec::new();
        for &x in &specials {
            for &y in &specials {
                a.push(x & mk);
                b.push(y & mk);
            }
        }
        let ts: &[u32] = if k == 2 { &[0] } else { &[0, 1, k / 2, k - 2] };
        for &t in ts {
            let mut variants = vec![ReluVariant::Relu];
            if k >= 8 {
                variants.push(ReluVariant::Clipped { max: 6 << (k / 4) });
                variants.push(ReluVariant::Clipped { max });
            }
            for variant in variants {
                let relu = ReluCircuit::new(k, t, variant).unwrap();
                for m_kind in 0..3 {
                    let m: Vec<u64> = (0..a.len())
                        .map(|_| match m_kind {
                            0 => 0,
                            1 => mk,
                            _ => rng.u64() & mk,
                        })
                        .collect();
                    let got = run_relu(&relu, &a, &b, &m, &mut rng, false);
                    for i in 0..a.len() {
                        assert_eq!(
                            got[i],
                            relu.reference(a[i], b[i], m[i]),
                            "k={k} t={t} {variant:?} a={:#x} b={:#x}",
                            a[i],
                            b[i]
                        );
                    }
                }
            }
        }
    }
}

fn word_bits(v: u64) -> Vec<bool> {
    (0..64).map(|i| (v >> i) & 1 == 1).collect()
}
fn bits_word(b: &[bool]) -> u64 {
    b.iter().enumerate().map(|(i, &x)| (x as u64) << i).sum()
}

/// Garbles `c` for one instance per (x, y) pair with x the garbler's and y the evaluator's value.
fn garbled_eval(
    c: &Circuit,
    xs: &[Vec<bool>],
    ys: &[Vec<bool>],
    rng: &mut Csprng,
) -> Vec<Vec<bool>> {
    let n = xs.len();
    let domain = TweakDomain {
        session_id: 7,
        first_instance: 100,
    };
    let g = Garbler::new(c, domain)
        .garble(Delta::random(rng), n, &[], None, rng)
        .unwrap();
    let ga = g.encoder.encode_garbler(&xs.concat()).unwrap();
    let eb = g.encoder.encode_evaluator(&ys.concat()).unwrap();
    let out = Evaluator::new(c, domain)
        .evaluate(&g.tables, &ga, &eb)
        .unwrap();
    let bits = out.decode(&g.decoding).unwrap();
    bits.chunks(c.outputs().len()).map(|x| x.to_vec()).collect()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn bristol_adder_multiplier_comparator_round_trip_and_garble() {
    type Op = fn(&mut CircuitBuilder, &[Wire], &[Wire]) -> Vec<Wire>;
    type Reference = fn(u64, u64) -> u64;
    let cases: [(&str, Op, Reference); 3] = [
        ("adder64", |b, x, y| b.add(x, y), |x, y| x.wrapping_add(y)),
        ("mul64", |b, x, y| b.mul(x, y), |x, y| x.wrapping_mul(y)),
        (
            "lt64",
            |b, x, y| vec![b.lt_unsigned(x, y)],
            |x, y| (x < y) as u64,
        ),
    ];
    let mut rng = Csprng::from_seed([4; 32]);
    for (name, build, reference) in cases {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input(64);
        let y = b.evaluator_input(64);
        let z = build(&mut b, &x, &y);
        b.output(&z);
        let original = b.finish().unwrap();
        let text = to_bristol(&original);
        let back = from_bristol(&text, BristolParties::default()).unwrap();
        assert_eq!(back, original, "{name}: import(export(c)) == c");
        assert_eq!(to_bristol(&back), text, "{name}: export is stable");
        let mut xs = vec![0u64, u64::MAX, 1 << 63, 12345];
        let mut ys = vec![u64::MAX, 1, 1 << 63, 12345];
        for _ in 0..12 {
            xs.push(rng.u64());
            ys.push(rng.u64());
        }
        let xb: Vec<Vec<bool>> = xs.iter().map(|&v| word_bits(v)).collect();
        let yb: Vec<Vec<bool>> = ys.iter().map(|&v| word_bits(v)).collect();
        let garbled = garbled_eval(&back, &xb, &yb, &mut rng);
        for i in 0..xs.len() {
            let plain = back.eval(&xb[i], &yb[i], &[]).unwrap();
            assert_eq!(bits_word(&plain), reference(xs[i], ys[i]), "{name} plain");
            assert_eq!(garbled[i], plain, "{name} garbled");
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn bristol_with_private_constants_and_constant_gates() {
    // The ReLU circuit exports with its mask as a third input value and imports back unchanged.
    let relu = ReluCircuit::new(12, 3, ReluVariant::Relu).unwrap();
    let c = relu.circuit();
    let text = to_bristol(c);
    let back = from_bristol(&text, BristolParties::of(c)).unwrap();
    assert_eq!(&back, c);
    // A hand-written file with EQ constants, EQW copies and MAND.
    let text = "6 10\n2 2 2\n1 3\n\n1 1 1 4 EQ\n2 1 0 4 5 XOR\n1 1 5 6 EQW\n4 2 0 1 2 3 7 8 MAND\n2 1 7 6 9 XOR\n1 1 0 x EQ\n";
    assert!(from_bristol(text, BristolParties::default()).is_err());
    let text = "5 10\n2 2 2\n1 3\n\n1 1 1 4 EQ\n2 1 0 4 5 XOR\n1 1 5 7 EQW\n4 2 0 1 2 3 8 6 MAND\n2 1 6 7 9 XOR\n";
    let c = from_bristol(text, BristolParties::default()).unwrap();
    assert_eq!(c.and_count(), 2);
    let mut rng = Csprng::from_seed([5; 32]);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for v in 0..16u8 {
        xs.push(vec![v & 1 == 1, v & 2 == 2]);
        ys.push(vec![v & 4 == 4, v & 8 == 8]);
    }
    let garbled = garbled_eval(&c, &xs, &ys, &mut rng);
    for i in 0..16 {
        let (x0, x1, y0, y1) = (xs[i][0], xs[i][1], ys[i][0], ys[i][1]);
        // wire 7 = ¬x0, 8 = x0∧y0, 6 = x1∧y1, 9 = 6 ⊕ 7.
        let expect = vec![!x0, x0 & y0, (x1 & y1) ^ !x0];
        assert_eq!(c.eval(&xs[i], &ys[i], &[]).unwrap(), expect);
        assert_eq!(garbled[i], expect);
    }
}

fn small_batch(rng: &mut Csprng, n: usize) -> (ReluCircuit, Vec<u64>, Vec<u64>, Vec<u64>) {
    let relu = ReluCircuit::new(16, 0, ReluVariant::Relu).unwrap();
    let a = (0..n).map(|_| rng.u64() & 0xffff).collect();
    let b = (0..n).map(|_| rng.u64() & 0xffff).collect();
    let m = (0..n).map(|_| rng.u64() & 0xffff).collect();
    (relu, a, b, m)
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn tampered_tables_and_wrong_tweaks_give_wrong_outputs() {
    let mut rng = Csprng::from_seed([6; 32]);
    let n = 64;
    let (relu, a, b, m) = small_batch(&mut rng, n);
    let domain = TweakDomain {
        session_id: 11,
        first_instance: 0,
    };
    let g = relu
        .garble(Delta::random(&mut rng), domain, &m, None, &mut rng)
        .unwrap();
    let ga = relu.encode_garbler(&g.encoder, &a).unwrap();
    let eb = relu.encode_evaluator(&g.encoder, &b).unwrap();
    let eval = |tables: &GarbledTables, domain| {
        let out = Evaluator::new(relu.circuit(), domain)
            .evaluate(tables, &ga, &eb)
            .unwrap();
        relu.decode(&FixedKeyAes::default(), domain, &out, &g.decoding)
            .unwrap()
    };
    let honest = eval(&g.tables, domain);
    for i in 0..n {
        assert_eq!(honest[i], relu.reference(a[i], b[i], m[i]));
    }
    // Flip one bit in every table of instance 5: its output becomes garbage, the others stay.
    let mut bad = g.tables.clone();
    let per = relu.circuit().and_count() * 2;
    assert_eq!(
        n,
        cryptonas_gc::CHUNK,
        "one chunk: gate j of instance i is at 2(jn + i)"
    );
    for j in 0..per / 2 {
        for half in 0..2 {
            bad.blocks_mut()[2 * (j * n + 5) + half] ^= Block::from_u128(1 << 77);
        }
    }
    let got = eval(&bad, domain);
    assert_ne!(got[5], honest[5]);
    assert_eq!(got[..5], honest[..5]);
    assert_eq!(got[6..], honest[6..]);
    // A different session id or instance offset (wrong tweaks) breaks every instance.
    let wrong = eval(
        &g.tables,
        TweakDomain {
            session_id: 12,
            ..domain
        },
    );
    assert!(wrong.iter().zip(&honest).filter(|(x, y)| x != y).count() > n - 2);
    let wrong = eval(
        &g.tables,
        TweakDomain {
            first_instance: 1,
            ..domain
        },
    );
    assert!(wrong.iter().zip(&honest).filter(|(x, y)| x != y).count() > n - 2);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fresh_delta_per_garbling_and_hidden_debug() {
    let mut rng = Csprng::from_seed([7; 32]);
    let (relu, _, _, m) = small_batch(&mut rng, 4);
    let d1 = Delta::random(&mut rng);
    let d2 = Delta::random(&mut rng);
    assert_ne!(d1, d2);
    assert!(d1.as_block().lsb() && d2.as_block().lsb());
    assert!(Delta::new(Block::ZERO).as_block().lsb());
    assert_eq!(format!("{d1:?}"), "Delta(<secret>)");
    let domain = TweakDomain {
        session_id: 1,
        first_instance: 0,
    };
    let g1 = relu.garble(d1.clone(), domain, &m, None, &mut rng).unwrap();
    let g2 = relu.garble(d2.clone(), domain, &m, None, &mut rng).unwrap();
    assert_eq!(g1.encoder.delta(), &d1);
    assert_eq!(g2.encoder.delta(), &d2);
    assert_ne!(g1.tables, g2.tables);
    assert!(!format!("{:?}", g1.encoder).contains(&format!("{:x}", d1.as_block().to_u128())));
    // Garbler input labels are z and z ⊕ Δ.
    let z = g1.encoder.garbler_zero_label(0, 3).unwrap().0;
    let one = relu.encode_garbler(&g1.encoder, &[8, 0, 0, 0]).unwrap();
    assert_eq!(one.blocks()[3], z ^ d1.as_block());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn wire_formats_round_trip_and_check_lengths() {
    let mut rng = Csprng::from_seed([8; 32]);
    let n = 150; // more than two chunks, with a partial one
    let (relu, a, b, m) = small_batch(&mut rng, n);
    let c = relu.circuit();
    let domain = TweakDomain {
        session_id: 3,
        first_instance: 1000,
    };
    let g = relu
        .garble(Delta::random(&mut rng), domain, &m, None, &mut rng)
        .unwrap();
    let ga = relu.encode_garbler(&g.encoder, &a).unwrap();
    let eb = relu.encode_evaluator(&g.encoder, &b).unwrap();
    // Through bytes.
    let tables = GarbledTables::from_bytes(c, n, g.tables.as_bytes()).unwrap();
    let dec = ShareDecoding::from_bytes(relu.output(), n, g.decoding.as_bytes()).unwrap();
    let ga2 = ActiveLabels::from_bytes(16, n, ga.as_bytes()).unwrap();
    let eb2 = ActiveLabels::from_bytes(16, n, eb.as_bytes()).unwrap();
    let out = Evaluator::new(c, domain)
        .evaluate(&tables, &ga2, &eb2)
        .unwrap();
    let pi = FixedKeyAes::default();
    let got = relu.decode(&pi, domain, &out, &dec).unwrap();
    for i in 0..n {
        assert_eq!(got[i], relu.reference(a[i], b[i], m[i]));
    }
    // Wrong sizes are errors, not panics.
    let t = g.tables.as_bytes();
    assert!(matches!(
        GarbledTables::from_bytes(c, n, &t[..t.len() - 1]),
        Err(GarbleError::Length { .. })
    ));
    assert!(GarbledTables::from_bytes(c, n + 1, t).is_err());
    assert!(ShareDecoding::from_bytes(relu.output(), n, &g.decoding.as_bytes()[1..]).is_err());
    assert!(ActiveLabels::from_bytes(16, n, &ga.as_bytes()[16..]).is_err());
    let short = ActiveLabels::from_bytes(16, n - 1, &ga.as_bytes()[256..]).unwrap();
    assert!(Evaluator::new(c, domain)
        .evaluate(&tables, &short, &eb2)
        .is_err());
    assert!(relu
        .garble(Delta::random(&mut rng), domain, &[1 << 16], None, &mut rng)
        .is_err());
    assert!(relu
        .garble(
            Delta::random(&mut rng),
            domain,
            &m,
            Some(&[Block::ZERO; 3]),
            &mut rng
        )
        .is_err());
    let overflow = TweakDomain {
        session_id: 3,
        first_instance: u32::MAX,
    };
    assert!(matches!(
        relu.garble(Delta::random(&mut rng), overflow, &m, None, &mut rng),
        Err(GarbleError::InstanceRange { .. })
    ));
    assert!(g.encoder.encode_garbler(&[true; 3]).is_err());
    // A slice of instances evaluates on its own with the instance offset advanced (Web Workers).
    let part = tables.slice(64..150).unwrap();
    let ga_part = ActiveLabels::new(16, ga.blocks()[64 * 16..].to_vec()).unwrap();
    let eb_part = ActiveLabels::new(16, eb.blocks()[64 * 16..].to_vec()).unwrap();
    let sub = TweakDomain {
        first_instance: 1064,
        ..domain
    };
    let out = Evaluator::new(c, sub)
        .evaluate(&part, &ga_part, &eb_part)
        .unwrap();
    let dec_part = g.decoding.slice(64..150).unwrap();
    assert_eq!(
        relu.decode(&pi, sub, &out, &dec_part).unwrap(),
        got[64..].to_vec()
    );
    assert!(g.decoding.slice(64..151).is_err());
    assert!(tables.slice(10..151).is_err());
    assert!(tables.slice(10..64).is_err());
    assert!(tables.slice(0..100).is_err());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn private_masks_cost_nothing_online_and_do_not_change_the_shape() {
    // Same randomness, different masks: identical input labels and tables; only the arithmetic
    // output's corrections (which hide m) differ, and each garbling decodes to its own (relu − m).
    let relu = ReluCircuit::new(16, 2, ReluVariant::Relu).unwrap();
    let n = 40;
    let mut src = Csprng::from_seed([9; 32]);
    let a: Vec<u64> = (0..n).map(|_| src.u64() & 0xffff).collect();
    let b: Vec<u64> = (0..n).map(|_| src.u64() & 0xffff).collect();
    let m1: Vec<u64> = (0..n).map(|_| src.u64() & 0xffff).collect();
    let m2: Vec<u64> = m1.iter().map(|m| m ^ 0x8001).collect();
    let domain = TweakDomain {
        session_id: 5,
        first_instance: 0,
    };
    let garble = |m: &[u64]| {
        let mut rng = Csprng::from_seed([10; 32]);
        relu.garble(Delta::random(&mut rng), domain, m, None, &mut rng)
            .unwrap()
    };
    let (g1, g2) = (garble(&m1), garble(&m2));
    let (ga1, ga2) = (
        relu.encode_garbler(&g1.encoder, &a).unwrap(),
        relu.encode_garbler(&g2.encoder, &a).unwrap(),
    );
    assert_eq!(ga1, ga2, "the online message does not depend on m");
    assert_eq!(ga1.as_bytes().len(), n * 16 * 16, "nothing is sent for m");
    assert_eq!(g1.tables, g2.tables);
    assert_ne!(g1.decoding, g2.decoding);
    for (g, m) in [(&g1, &m1), (&g2, &m2)] {
        let ga = relu.encode_garbler(&g.encoder, &a).unwrap();
        let eb = relu.encode_evaluator(&g.encoder, &b).unwrap();
        let out = Evaluator::new(relu.circuit(), domain)
            .evaluate(&g.tables, &ga, &eb)
            .unwrap();
        let o = relu
            .decode(&FixedKeyAes::default(), domain, &out, &g.decoding)
            .unwrap();
        for i in 0..n {
            assert_eq!(o[i], relu.reference(a[i], b[i], m[i]));
        }
    }
}

/// Sizes a peer declares (instance counts) can be anything: the length checks saturate instead of
/// overflowing `usize` (32 bits in wasm), so they refuse rather than panic or wrap to a size that
/// matches.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn huge_declared_sizes_are_errors_not_overflows() {
    let relu = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
    let c = relu.circuit();
    for n in [
        usize::MAX,
        usize::MAX / 2,
        usize::MAX / 32 + 1,
        1 << (usize::BITS - 4),
    ] {
        assert!(GarbledTables::check_len(c, n, 0).is_err());
        assert!(GarbledTables::from_bytes(c, n, &[0; 64]).is_err());
        assert!(ActiveLabels::from_bytes(32, n, &[0; 16]).is_err());
        assert!(DecodingBits::from_bytes(c, n, &[0; 4]).is_err());
        assert!(ShareDecoding::from_bytes(relu.output(), n, &[0; 4]).is_err());
    }
}

/// Tables carry their circuit's fingerprint: another circuit of the same AND count (here the same
/// adder read with another truncation) refuses them instead of decoding garbage, and so does a
/// header that names another instance count.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn tables_of_another_circuit_are_refused() {
    let mut rng = Csprng::from_seed([12; 32]);
    let r0 = ReluCircuit::new(16, 0, ReluVariant::Relu).unwrap();
    let r2 = ReluCircuit::new(16, 2, ReluVariant::Relu).unwrap();
    assert_eq!(r0.circuit().and_count(), r2.circuit().and_count());
    assert_ne!(r0.circuit().fingerprint(), r2.circuit().fingerprint());
    let domain = TweakDomain {
        session_id: 8,
        first_instance: 0,
    };
    let n = 70;
    let m = vec![0u64; n];
    let g = r0
        .garble(Delta::random(&mut rng), domain, &m, None, &mut rng)
        .unwrap();
    let bytes = g.tables.as_bytes();
    assert!(GarbledTables::from_bytes(r0.circuit(), n, bytes).is_ok());
    assert!(matches!(
        GarbledTables::from_bytes(r2.circuit(), n, bytes),
        Err(GarbleError::CircuitMismatch { .. })
    ));
    let mut recounted = bytes.to_vec();
    recounted[8] ^= 1;
    assert!(matches!(
        GarbledTables::from_bytes(r0.circuit(), n, &recounted),
        Err(GarbleError::Length { .. })
    ));
    let x = vec![5u64; n];
    let ga = r0.encode_garbler(&g.encoder, &x).unwrap();
    let eb = r0.encode_evaluator(&g.encoder, &x).unwrap();
    assert!(matches!(
        Evaluator::new(r2.circuit(), domain).evaluate(&g.tables, &ga, &eb),
        Err(GarbleError::CircuitMismatch { .. })
    ));
    assert!(Evaluator::new(r0.circuit(), domain)
        .evaluate(&g.tables, &ga, &eb)
        .is_ok());
    // A slice gets its own header.
    let part = g.tables.slice(64..n).unwrap();
    assert!(GarbledTables::from_bytes(r0.circuit(), n - 64, part.as_bytes()).is_ok());
    assert!(GarbledTables::from_bytes(r2.circuit(), n - 64, part.as_bytes()).is_err());
}
