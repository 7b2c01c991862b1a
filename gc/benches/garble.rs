//! Garbling and evaluation throughput, old (the `aes` crate, allocating API) vs new (each fused
//! kernel this CPU supports, buffers reused) in one run: fixed-key AES blocks/s; AND gates/s on an
//! AND-only circuit (64 and 1024 instances) and on Bristol AES-128 (64 instances and one); ReLUs/s
//! at k = 32 on the detected backend (one thread and all rayon threads).
//!
//! `cargo bench -p cryptonas-gc --bench garble`

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use cryptonas_crypto::{AesBackend, Csprng, FixedKeyAes};
use cryptonas_gc::{
    from_bristol, ActiveLabels, BristolParties, Circuit, CircuitBuilder, Delta, Evaluator, Garbled,
    GarbledTables, Garbler, OutputLabels, ReluCircuit, ReluVariant, TweakDomain,
};
use std::hint::black_box;

const DOMAIN: TweakDomain = TweakDomain {
    session_id: 1,
    first_instance: 0,
};

/// 1024 AND gates over 64 + 64 inputs (each gate reads two earlier wires), no XORs: the AND rate.
fn and_circuit() -> Circuit {
    let mut b = CircuitBuilder::new();
    let mut w = b.garbler_input(64);
    w.extend(b.evaluator_input(64));
    for i in 0..1024 {
        let x = w[w.len() - 1 - (i % 7)];
        let y = w[w.len() - 64 + (i % 13)];
        let z = b.and(x, y);
        w.push(z);
    }
    let out = w[w.len() - 64..].to_vec();
    b.output(&out);
    b.finish().unwrap()
}

fn setup(c: &Circuit, n: usize, private: &[bool]) -> (Garbled, ActiveLabels, ActiveLabels) {
    let mut rng = Csprng::from_seed([9; 32]);
    let g = Garbler::new(c, DOMAIN)
        .garble(Delta::random(&mut rng), n, private, None, &mut rng)
        .unwrap();
    let gb: Vec<bool> = (0..n * c.garbler_inputs()).map(|_| rng.bool()).collect();
    let eb: Vec<bool> = (0..n * c.evaluator_inputs()).map(|_| rng.bool()).collect();
    let ga = g.encoder.encode_garbler(&gb).unwrap();
    let ea = g.encoder.encode_evaluator(&eb).unwrap();
    (g, ga, ea)
}

fn pools() -> Vec<(String, rayon::ThreadPool)> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut v = vec![(
        "1thread".to_string(),
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    )];
    if all > 1 {
        v.push((
            format!("{all}threads"),
            rayon::ThreadPoolBuilder::new()
                .num_threads(all)
                .build()
                .unwrap(),
        ));
    }
    v
}

/// π on `backend`, or `None` if this CPU lacks it.
fn pi(backend: AesBackend) -> Option<FixedKeyAes> {
    FixedKeyAes::with_backend(cryptonas_crypto::FIXED_KEY, backend)
}

/// "old" = the `aes` crate backend through the allocating `garble` (the code as shipped);
/// "new-<backend>" = a fused kernel through `garble_into` / `evaluate_into` with reused buffers.
fn variants() -> Vec<(String, FixedKeyAes, bool)> {
    let mut v = vec![("old".to_string(), pi(AesBackend::AesCrate).unwrap(), false)];
    for b in [AesBackend::AesNi, AesBackend::Vaes256, AesBackend::Vaes512] {
        if let Some(p) = pi(b) {
            v.push((format!("new-{b:?}"), p, true));
        }
    }
    v
}

/// Garbling and evaluation of `n` instances of `c` on one thread, old vs new.
fn bench_circuit(cr: &mut Criterion, group: &str, c: &Circuit, ns: &[usize]) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = cr.benchmark_group(group);
    for &n in ns {
        let (g, ga, ea) = setup(c, n, &[]);
        group.throughput(Throughput::Elements((n * c.and_count()) as u64));
        for (name, p, reuse) in variants() {
            let garbler = Garbler::new(c, DOMAIN).with_pi(p.clone());
            let evaluator = Evaluator::new(c, DOMAIN).with_pi(p);
            group.bench_function(BenchmarkId::new(format!("garble/{name}"), n), |bch| {
                let mut rng = Csprng::from_seed([1; 32]);
                let mut tables = GarbledTables::default();
                bch.iter(|| {
                    pool.install(|| {
                        let d = Delta::random(&mut rng);
                        if reuse {
                            black_box(
                                garbler
                                    .garble_into(d, n, &[], None, &mut rng, &mut tables)
                                    .unwrap(),
                            );
                        } else {
                            black_box(garbler.garble(d, n, &[], None, &mut rng).unwrap());
                        }
                    })
                })
            });
            group.bench_function(BenchmarkId::new(format!("evaluate/{name}"), n), |bch| {
                let mut out = OutputLabels::default();
                bch.iter(|| {
                    pool.install(|| {
                        if reuse {
                            evaluator
                                .evaluate_into(&g.tables, &ga, &ea, &mut out)
                                .unwrap();
                            black_box(&out);
                        } else {
                            black_box(evaluator.evaluate(&g.tables, &ga, &ea).unwrap());
                        }
                    })
                })
            });
        }
    }
    group.finish();
}

fn bench_and_gates(cr: &mut Criterion) {
    bench_circuit(cr, "and_gates_1thread", &and_circuit(), &[64, 1024]);
}

/// The Bristol Fashion AES-128 circuit (6,400 AND, 28,176 XOR, 2,087 INV): batched and one instance.
fn bench_bristol_aes(cr: &mut Criterion) {
    let text = include_str!("../tests/data/aes_128.txt");
    let c = from_bristol(text, BristolParties::default()).unwrap();
    bench_circuit(cr, "bristol_aes128_1thread", &c, &[1, 64]);
}

fn bench_relu(cr: &mut Criterion) {
    let relu = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
    let c = relu.circuit();
    let k = relu.k() as usize;
    println!(
        "ReLU k=32: {} AND gates; tables {} B/ReLU (offline), garbler labels {} B/ReLU (online), \
         evaluator labels by OT: {} OTs/ReLU",
        c.and_count(),
        c.table_bytes(),
        k * 16,
        k
    );
    let n = 8192;
    let mut rng = Csprng::from_seed([2; 32]);
    let masks: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
    let (g, ga, ea) = {
        let g = relu
            .garble(Delta::random(&mut rng), DOMAIN, &masks, None, &mut rng)
            .unwrap();
        let a: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
        let b: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
        let ga = relu.encode_garbler(&g.encoder, &a).unwrap();
        let ea = relu.encode_evaluator(&g.encoder, &b).unwrap();
        (g, ga, ea)
    };
    let mut group = cr.benchmark_group("relu_k32");
    group.throughput(Throughput::Elements(n as u64));
    for (name, pool) in pools() {
        group.bench_with_input(BenchmarkId::new("garble", &name), &pool, |bch, pool| {
            let mut rng = Csprng::from_seed([3; 32]);
            bch.iter(|| {
                pool.install(|| {
                    black_box(
                        relu.garble(Delta::random(&mut rng), DOMAIN, &masks, None, &mut rng)
                            .unwrap(),
                    )
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("evaluate", &name), &pool, |bch, pool| {
            bch.iter(|| {
                pool.install(|| {
                    black_box(
                        Evaluator::new(c, DOMAIN)
                            .evaluate(&g.tables, &ga, &ea)
                            .unwrap(),
                    )
                })
            })
        });
    }
    group.finish();
}

/// The bound: raw fixed-key AES throughput (TCCR = 2 AES; evaluating an AND = 2 TCCR, garbling = 4).
fn bench_aes(cr: &mut Criterion) {
    let mut blocks = Csprng::from_seed([4; 32]).blocks(4096);
    let mut group = cr.benchmark_group("fixed_key_aes_1thread");
    group.throughput(Throughput::Elements(blocks.len() as u64));
    for (name, aes, _) in variants() {
        group.bench_function(BenchmarkId::new("permute_many", name), |bch| {
            bch.iter(|| aes.permute_many(black_box(&mut blocks)))
        });
    }
    group.finish();
}

/// Fixed amounts of work for `perf stat -e cycles:u` (cycles per AND do not depend on machine
/// load, wall-clock rates do):
/// `GC_FIXED=aes|garble|evaluate|relu_garble|relu_evaluate cargo bench ... --bench garble`.
/// Prints the element count to divide by.
fn fixed_work(kind: &str) {
    let c = and_circuit();
    let n = 1024;
    let reps = 20;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (g, ga, ea) = setup(&c, n, &[]);
    let mut rng = Csprng::from_seed([1; 32]);
    let elements = match kind {
        "aes" => {
            let aes = cryptonas_crypto::FixedKeyAes::default();
            let mut blocks = rng.blocks(4096);
            for _ in 0..reps * 2000 {
                aes.permute_many(black_box(&mut blocks));
            }
            reps * 2000 * 4096
        }
        "relu_garble" | "relu_evaluate" => {
            let relu = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
            let n = 8192;
            let masks: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
            let g = relu
                .garble(Delta::random(&mut rng), DOMAIN, &masks, None, &mut rng)
                .unwrap();
            let ga = relu.encode_garbler(&g.encoder, &masks).unwrap();
            let ea = relu.encode_evaluator(&g.encoder, &masks).unwrap();
            for _ in 0..reps {
                pool.install(|| {
                    if kind == "relu_garble" {
                        let d = Delta::random(&mut rng);
                        black_box(relu.garble(d, DOMAIN, &masks, None, &mut rng).unwrap());
                    } else {
                        let e = Evaluator::new(relu.circuit(), DOMAIN);
                        black_box(e.evaluate(&g.tables, &ga, &ea).unwrap());
                    }
                });
            }
            reps * n
        }
        "garble" => {
            for _ in 0..reps {
                pool.install(|| {
                    black_box(
                        Garbler::new(&c, DOMAIN)
                            .garble(Delta::random(&mut rng), n, &[], None, &mut rng)
                            .unwrap(),
                    )
                });
            }
            reps * n * c.and_count()
        }
        _ => {
            for _ in 0..reps * 4 {
                pool.install(|| {
                    black_box(
                        Evaluator::new(&c, DOMAIN)
                            .evaluate(&g.tables, &ga, &ea)
                            .unwrap(),
                    )
                });
            }
            reps * 4 * n * c.and_count()
        }
    };
    println!("{kind}: {elements} elements");
}

/// Runs every benchmark of this file.
fn benches() {
    if let Ok(kind) = std::env::var("GC_FIXED") {
        fixed_work(&kind);
        return;
    }
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    bench_aes(&mut c);
    bench_and_gates(&mut c);
    bench_bristol_aes(&mut c);
    bench_relu(&mut c);
}

criterion_main!(benches);
