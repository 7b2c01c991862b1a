//! Garbling and evaluation throughput: AND gates/s per core and ReLUs/s at k = 32 (one thread and
//! all rayon threads), plus the bytes per ReLU.
//!
//! `cargo bench -p cryptonas-gc --bench garble`

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use cryptonas_crypto::Csprng;
use cryptonas_gc::{
    ActiveLabels, Circuit, CircuitBuilder, Delta, Evaluator, Garbled, Garbler, ReluCircuit,
    ReluVariant, TweakDomain,
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

fn bench_and_gates(cr: &mut Criterion) {
    let c = and_circuit();
    let n = 1024;
    let (g, ga, ea) = setup(&c, n, &[]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = cr.benchmark_group("and_gates_1thread");
    group.throughput(Throughput::Elements((n * c.and_count()) as u64));
    group.bench_function("garble", |bch| {
        let mut rng = Csprng::from_seed([1; 32]);
        bch.iter(|| {
            pool.install(|| {
                black_box(
                    Garbler::new(&c, DOMAIN)
                        .garble(Delta::random(&mut rng), n, &[], None, &mut rng)
                        .unwrap(),
                )
            })
        })
    });
    group.bench_function("evaluate", |bch| {
        bch.iter(|| {
            pool.install(|| {
                black_box(
                    Evaluator::new(&c, DOMAIN)
                        .evaluate(&g.tables, &ga, &ea)
                        .unwrap(),
                )
            })
        })
    });
    group.finish();
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
    let aes = cryptonas_crypto::FixedKeyAes::default();
    let mut blocks = Csprng::from_seed([4; 32]).blocks(4096);
    let mut group = cr.benchmark_group("fixed_key_aes_1thread");
    group.throughput(Throughput::Elements(blocks.len() as u64));
    group.bench_function("permute_many", |bch| {
        bch.iter(|| aes.permute_many(black_box(&mut blocks)))
    });
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
    let mut c = Criterion::default().sample_size(20).configure_from_args();
    bench_aes(&mut c);
    bench_and_gates(&mut c);
    bench_relu(&mut c);
}

criterion_main!(benches);
