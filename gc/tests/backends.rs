//! Every AES backend this CPU supports (`AesBackend::supported()`: the `aes` crate reference, the
//! bitsliced and the vector-permute AES (`v128` in the browser, portable lanes natively), AES-NI,
//! VAES-256, VAES-512)
//! garbles and evaluates random circuits, the ReLU circuit and the Bristol Fashion AES-128 circuit
//! correctly against the plaintext oracle, and tables garbled on one backend evaluate on every
//! other (the deployment: native server, browser client).

use cryptonas_crypto::{AesBackend, Csprng, FixedKeyAes, FIXED_KEY};
use cryptonas_gc::{
    from_bristol, ActiveLabels, BristolParties, Circuit, CircuitBuilder, Delta, Evaluator,
    GarbledTables, Garbler, OutputLabels, ReluCircuit, ReluVariant, TweakDomain,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// The Bristol Fashion AES-128 circuit (6,400 AND gates), as distributed with emp-tool.
const AES128_BRISTOL: &str = include_str!("data/aes_128.txt");

fn backends() -> Vec<FixedKeyAes> {
    let v: Vec<FixedKeyAes> = AesBackend::supported()
        .into_iter()
        .map(|b| FixedKeyAes::with_backend(FIXED_KEY, b).unwrap())
        .collect();
    println!(
        "backends: {:?}",
        v.iter().map(|p| p.backend()).collect::<Vec<_>>()
    );
    v
}

fn random_circuit(rng: &mut Csprng, inputs: usize, gates: usize) -> Circuit {
    random_circuit_of([inputs, inputs, 0], rng, gates)
}

/// A random circuit on `[garbler, evaluator, private]` inputs.
fn random_circuit_of(inputs: [usize; 3], rng: &mut Csprng, gates: usize) -> Circuit {
    let mut b = CircuitBuilder::new();
    let mut w = b.garbler_input(inputs[0]);
    w.extend(b.evaluator_input(inputs[1]));
    // Garbler-private constants may only feed XOR/INV gates: each is XORed into a random wire.
    for p in b.private_input(inputs[2]) {
        let x = w[(rng.u64() as usize) % w.len()];
        let y = b.xor(x, p);
        w.push(y);
    }
    for _ in 0..gates {
        let x = w[(rng.u64() as usize) % w.len()];
        let y = w[w.len() - 1 - (rng.u64() as usize) % w.len().min(8)];
        let z = match rng.u64() % 4 {
            0 | 1 => b.and(x, y),
            2 => b.xor(x, y),
            _ => b.inv(x),
        };
        w.push(z);
    }
    let out: Vec<_> = w[w.len() - 16..].to_vec();
    b.output(&out);
    b.finish().unwrap()
}

/// Garbles `n` instances with `g`, evaluates with `e` on random inputs, checks every instance
/// against `Circuit::eval`.
fn check(c: &Circuit, n: usize, g: &FixedKeyAes, e: &FixedKeyAes, rng: &mut Csprng) {
    let domain = TweakDomain {
        session_id: rng.u64(),
        first_instance: u32::MAX - n as u32 - 3,
    };
    let (gi, ei, ri) = (c.garbler_inputs(), c.evaluator_inputs(), c.private_inputs());
    let rb: Vec<bool> = (0..n * ri).map(|_| rng.bool()).collect();
    let garbled = Garbler::new(c, domain)
        .with_pi(g.clone())
        .garble(Delta::random(rng), n, &rb, None, rng)
        .unwrap();
    let xb: Vec<bool> = (0..n * gi).map(|_| rng.bool()).collect();
    let yb: Vec<bool> = (0..n * ei).map(|_| rng.bool()).collect();
    let ga = garbled.encoder.encode_garbler(&xb).unwrap();
    let eb = garbled.encoder.encode_evaluator(&yb).unwrap();
    let out = Evaluator::new(c, domain)
        .with_pi(e.clone())
        .evaluate(&garbled.tables, &ga, &eb)
        .unwrap();
    let bits = out.decode(&garbled.decoding).unwrap();
    let o = c.outputs().len();
    for i in 0..n {
        let plain = c
            .eval(
                &xb[i * gi..][..gi],
                &yb[i * ei..][..ei],
                &rb[i * ri..][..ri],
            )
            .unwrap();
        assert_eq!(
            bits[i * o..][..o],
            plain[..],
            "garbled on {:?}, evaluated on {:?}, n={n}, instance {i}",
            g.backend(),
            e.backend()
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn random_circuits_on_every_backend_pair() {
    let mut rng = Csprng::from_seed([21; 32]);
    let all = backends();
    for round in 0..3 {
        let c = random_circuit(&mut rng, 6 + round, 300);
        assert!(c.and_count() > 50);
        for g in &all {
            for e in &all {
                for n in [1usize, 3, 5, 64, 67, 130] {
                    check(&c, n, g, e, &mut rng);
                }
            }
        }
    }
}

/// Inputs of one party only, and garbler-private ones, on the level path (n < 8) and the chunk
/// path: each party's inputs are copied into the chunk separately.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn random_circuits_with_every_mix_of_inputs() {
    let mut rng = Csprng::from_seed([23; 32]);
    let pi = FixedKeyAes::default();
    for inputs in [[0, 5, 0], [5, 0, 0], [3, 4, 2], [0, 3, 3], [1, 1, 7]] {
        let c = random_circuit_of(inputs, &mut rng, 200);
        assert_eq!(c.private_inputs(), inputs[2]);
        for n in [3usize, 64, 67, 130] {
            check(&c, n, &pi, &pi, &mut rng);
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn relu_on_every_backend() {
    let mut rng = Csprng::from_seed([22; 32]);
    let relu = ReluCircuit::new(32, 8, ReluVariant::Relu).unwrap();
    let n = 200;
    let mk = 0xffff_ffffu64;
    let a: Vec<u64> = (0..n).map(|_| rng.u64() & mk).collect();
    let b: Vec<u64> = (0..n).map(|_| rng.u64() & mk).collect();
    let m: Vec<u64> = (0..n).map(|_| rng.u64() & mk).collect();
    let domain = TweakDomain {
        session_id: 99,
        first_instance: 5,
    };
    let all = backends();
    for g in &all {
        let garbled = relu
            .garble_with_pi(g, Delta::random(&mut rng), domain, &m, None, &mut rng)
            .unwrap();
        let ga = relu.encode_garbler(&garbled.encoder, &a).unwrap();
        let eb = relu.encode_evaluator(&garbled.encoder, &b).unwrap();
        for e in &all {
            let out = Evaluator::new(relu.circuit(), domain)
                .with_pi(e.clone())
                .evaluate(&garbled.tables, &ga, &eb)
                .unwrap();
            let got = relu.decode(e, domain, &out, &garbled.decoding).unwrap();
            for i in 0..n {
                assert_eq!(
                    got[i],
                    relu.reference(a[i], b[i], m[i]),
                    "{:?}/{:?}",
                    g.backend(),
                    e.backend()
                );
            }
        }
    }
}

/// Bits of a 16-byte string in the order of the Bristol Fashion AES files: the value as a
/// big-endian integer, least significant bit on the first wire.
fn bristol_bits(bytes: &[u8; 16]) -> Vec<bool> {
    let v = u128::from_be_bytes(*bytes);
    (0..128).map(|i| (v >> i) & 1 == 1).collect()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn bristol_aes128_on_every_backend_matches_fips197() {
    let c = from_bristol(AES128_BRISTOL, BristolParties::default()).unwrap();
    assert_eq!(c.and_count(), 6400);
    // FIPS-197 C.1: key 00..0f, plaintext 00 11 .. ff.
    let key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let pt: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
    let ct = [
        0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5,
        0x5a,
    ];
    let plain = c
        .eval(&bristol_bits(&key), &bristol_bits(&pt), &[])
        .unwrap();
    assert_eq!(
        plain,
        bristol_bits(&ct),
        "the circuit file computes AES-128"
    );
    let mut rng = Csprng::from_seed([23; 32]);
    let all = backends();
    for g in &all {
        for e in &all {
            for n in [1usize, 9] {
                check(&c, n, g, e, &mut rng);
            }
        }
    }
}

/// `garble_into` / `evaluate_into` reuse the caller's buffers and give the same results as the
/// allocating calls (same randomness), whatever the buffers held before.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn garble_into_reuses_buffers_and_matches_garble() {
    let relu = ReluCircuit::new(16, 0, ReluVariant::Relu).unwrap();
    let c = relu.circuit();
    let domain = TweakDomain {
        session_id: 4,
        first_instance: 0,
    };
    let garbler = Garbler::new(c, domain);
    let evaluator = Evaluator::new(c, domain);
    let mut tables = GarbledTables::default();
    let mut out = OutputLabels::default();
    let mut buffer = std::ptr::null();
    for (round, n) in [130usize, 64, 130, 7].into_iter().enumerate() {
        let seed = [round as u8; 32];
        let m: Vec<bool> = Vec::new(); // the ReLU has no garbler-private inputs
        let mut r1 = Csprng::from_seed(seed);
        let fresh = garbler
            .garble(Delta::random(&mut r1), n, &m, None, &mut r1)
            .unwrap();
        let mut r2 = Csprng::from_seed(seed);
        let (dec, enc) = garbler
            .garble_into(Delta::random(&mut r2), n, &m, None, &mut r2, &mut tables)
            .unwrap();
        assert_eq!(tables, fresh.tables);
        assert_eq!(dec, fresh.decoding);
        let x: Vec<u64> = (0..n as u64).map(|i| (i * 977) & 0xffff).collect();
        let ga: ActiveLabels = relu.encode_garbler(&enc, &x).unwrap();
        let eb = relu.encode_evaluator(&enc, &x).unwrap();
        evaluator
            .evaluate_into(&tables, &ga, &eb, &mut out)
            .unwrap();
        assert_eq!(out, evaluator.evaluate(&tables, &ga, &eb).unwrap());
        // Decoded to bits (this is not how the protocol reads a ReLU: it takes shares).
        let bits = out.decode(&dec).unwrap();
        let w = relu.output().wires();
        for i in 0..n {
            let got = relu.output().word(&bits[i * w..(i + 1) * w]);
            assert_eq!(got, relu.reference(x[i], x[i], 0));
        }
        // 130 instances first, then never more: the first allocation is reused.
        if round == 0 {
            buffer = tables.as_bytes().as_ptr();
        } else {
            assert_eq!(
                tables.as_bytes().as_ptr(),
                buffer,
                "the table buffer was reused"
            );
        }
    }
}

/// Small batches run level by level (one instance at a time, the independent AND gates of a depth
/// hashed together), large ones gate by gate across a chunk: both must write the same tables, the
/// wire format. With only evaluator inputs, the labels are fixed by the caller, so garbling
/// instances 64..67 alone must reproduce the last chunk of a 67-instance garbling.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn level_path_writes_the_chunk_path_tables() {
    let mut rng = Csprng::from_seed([24; 32]);
    let mut b = CircuitBuilder::new();
    let mut w = b.evaluator_input(12);
    for _ in 0..400 {
        let x = w[(rng.u64() as usize) % w.len()];
        let y = w[w.len() - 1 - (rng.u64() as usize) % 8];
        let z = match rng.u64() % 3 {
            0 => b.xor(x, y),
            _ => b.and(x, y),
        };
        let z = if rng.bool() { b.inv(z) } else { z };
        w.push(z);
    }
    b.output(&w[w.len() - 10..]);
    let c = b.finish().unwrap();
    let e = c.evaluator_inputs();
    let zero = rng.blocks(67 * e);
    let delta = Delta::random(&mut rng);
    let domain = |first_instance| TweakDomain {
        session_id: 77,
        first_instance,
    };
    for pi in backends() {
        let all = Garbler::new(&c, domain(1000))
            .with_pi(pi.clone())
            .garble(delta.clone(), 67, &[], Some(&zero), &mut rng)
            .unwrap();
        let tail = Garbler::new(&c, domain(1064))
            .with_pi(pi.clone())
            .garble(delta.clone(), 3, &[], Some(&zero[64 * e..]), &mut rng)
            .unwrap();
        assert_eq!(
            all.tables.slice(64..67).unwrap(),
            tail.tables,
            "{:?}",
            pi.backend()
        );
    }
}

/// FIPS-197 C.1 through π on every backend, natively and in the browser (where π is the `aes`
/// crate's fixsliced software AES), and the garbling hash against its definition there too.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fips197_and_tccr_on_every_backend() {
    use cryptonas_crypto::Block;
    let key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let pt = Block(core::array::from_fn(|i| (i as u8) * 0x11));
    let ct = Block([
        0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5,
        0x5a,
    ]);
    let mut rng = Csprng::from_seed([25; 32]);
    for b in AesBackend::supported() {
        let pi = FixedKeyAes::with_backend(key, b).unwrap();
        assert_eq!(pi.permute(pt), ct);
        let mut v = vec![pt; 37];
        pi.permute_many(&mut v);
        assert!(v.iter().all(|x| *x == ct), "{b:?}");
        let xs = rng.blocks(9);
        let tw: Vec<u128> = rng.blocks(9).iter().map(|t| t.to_u128() & !1).collect();
        let a: Vec<u128> = xs.iter().map(|x| x.to_u128()).collect();
        let mut out = vec![0u128; 9];
        pi.eval_and_batch(&tw, &a, &a, &mut out, &[0u128; 18]);
        for i in 0..9 {
            // Zero tables and b = a: out = H(a, 0) ⊕ H(a, 1) ⊕ lsb(a)·a.
            let h = |half: u128| pi.tccr(Block::from_u128(tw[i] ^ half), xs[i]).to_u128();
            let sb = if xs[i].lsb() { a[i] } else { 0 };
            assert_eq!(out[i], h(0) ^ h(1) ^ sb, "{b:?}");
        }
    }
}
