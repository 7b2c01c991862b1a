//! The kernel table of issue 20, old vs new in one run, on one thread, in **process CPU time**
//! (user + system, all threads, from `/proc/self/stat`; wall time on a shared machine measures the
//! neighbours): fixed-key AES blocks/s; garbling and evaluation AND gates/s on an AND-only circuit
//! (64 and 1024 instances) and on the Bristol Fashion AES-128 circuit (64 instances, and one);
//! ReLUs/s at k = 32.
//!
//! Variants: `aes-crate` is π on the `aes` crate with the allocating `garble`/`evaluate` (the
//! reference backend, i.e. the hash as shipped before the fused kernels, under the current
//! driver); `new-<backend>` is each fused kernel this CPU supports through `garble_into` /
//! `evaluate_into` with reused buffers. The same file builds against the engine as shipped
//! (`RUSTFLAGS="--cfg gc_main_api"` on a checkout of the old code) and then reports one variant,
//! `main`, so both engines can be measured back to back (see the README).
//!
//! `cargo bench -p cryptonas-gc --bench garble` (filters as usual: `-- bristol`).
#![allow(unexpected_cfgs)]

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use cryptonas_crypto::Csprng;
use cryptonas_gc::{
    from_bristol, ActiveLabels, BristolParties, Circuit, CircuitBuilder, Delta, Evaluator, Garbled,
    Garbler, ReluCircuit, ReluVariant, TweakDomain,
};
use std::hint::black_box;
use std::time::Duration;

const DOMAIN: TweakDomain = TweakDomain {
    session_id: 1,
    first_instance: 0,
};

/// Process CPU time in clock ticks (10 ms on Linux): fields 14 and 15 of `/proc/self/stat`.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux only)");
    let after = &stat[stat.rfind(')').expect("comm field") + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Criterion measurement: process CPU time (samples must be long against the 10 ms tick; the
/// benches use flat sampling with ≥ 0.3 s per sample).
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = Duration;
    fn start(&self) -> u64 {
        cpu_ticks()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_millis((cpu_ticks() - start) * 10)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

type Cr = Criterion<CpuTime>;

/// The engine under test: the current API, or the one shipped before issue 20.
#[cfg(not(gc_main_api))]
mod engine {
    use super::*;
    use cryptonas_crypto::{AesBackend, FixedKeyAes, FIXED_KEY};
    use cryptonas_gc::{GarbledTables, OutputLabels};

    pub(crate) struct Variant {
        pub(crate) name: String,
        pi: FixedKeyAes,
        reuse: bool,
    }

    pub(crate) fn variants() -> Vec<Variant> {
        let mut v = Vec::new();
        for b in AesBackend::ALL {
            // Natively the bitsliced and vector-permute backends run portable lanes, test
            // vehicles (their speed is measured in the browser, `tests/wasm_speed.rs`).
            if matches!(b, AesBackend::Bitsliced | AesBackend::VecPerm) {
                continue;
            }
            if let Some(pi) = FixedKeyAes::with_backend(FIXED_KEY, b) {
                let reuse = b != AesBackend::AesCrate;
                let name = if reuse {
                    format!("new-{b:?}")
                } else {
                    "aes-crate".into()
                };
                v.push(Variant { name, pi, reuse });
            }
        }
        v
    }

    pub(crate) fn permute(v: &Variant, blocks: &mut [cryptonas_crypto::Block]) {
        v.pi.permute_many(blocks)
    }

    /// A closure garbling `n` instances of `c` (fresh Δ each time).
    pub(crate) fn garbler<'c>(v: &Variant, c: &'c Circuit, n: usize) -> impl FnMut() + 'c {
        let g = Garbler::new(c, DOMAIN).with_pi(v.pi.clone());
        let reuse = v.reuse;
        let mut rng = Csprng::from_seed([1; 32]);
        let mut tables = GarbledTables::default();
        move || {
            let d = Delta::random(&mut rng);
            if reuse {
                black_box(
                    g.garble_into(d, n, &[], None, &mut rng, &mut tables)
                        .unwrap(),
                );
            } else {
                black_box(g.garble(d, n, &[], None, &mut rng).unwrap());
            }
        }
    }

    /// A closure evaluating `g`'s tables.
    pub(crate) fn evaluator<'a>(
        v: &Variant,
        c: &'a Circuit,
        g: &'a Garbled,
        ga: &'a ActiveLabels,
        ea: &'a ActiveLabels,
    ) -> impl FnMut() + 'a {
        let e = Evaluator::new(c, DOMAIN).with_pi(v.pi.clone());
        let reuse = v.reuse;
        let mut out = OutputLabels::default();
        move || {
            if reuse {
                e.evaluate_into(&g.tables, ga, ea, &mut out).unwrap();
                black_box(&out);
            } else {
                black_box(e.evaluate(&g.tables, ga, ea).unwrap());
            }
        }
    }
}

#[cfg(gc_main_api)]
mod engine {
    use super::*;
    use cryptonas_crypto::FixedKeyAes;

    pub(crate) struct Variant {
        pub(crate) name: String,
        pi: FixedKeyAes,
    }

    pub(crate) fn variants() -> Vec<Variant> {
        vec![Variant {
            name: "main".into(),
            pi: FixedKeyAes::default(),
        }]
    }

    pub(crate) fn permute(v: &Variant, blocks: &mut [cryptonas_crypto::Block]) {
        v.pi.permute_many(blocks)
    }

    pub(crate) fn garbler<'c>(_: &Variant, c: &'c Circuit, n: usize) -> impl FnMut() + 'c {
        let mut rng = Csprng::from_seed([1; 32]);
        move || {
            let d = Delta::random(&mut rng);
            black_box(
                Garbler::new(c, DOMAIN)
                    .garble(d, n, &[], None, &mut rng)
                    .unwrap(),
            );
        }
    }

    pub(crate) fn evaluator<'a>(
        _: &Variant,
        c: &'a Circuit,
        g: &'a Garbled,
        ga: &'a ActiveLabels,
        ea: &'a ActiveLabels,
    ) -> impl FnMut() + 'a {
        move || {
            black_box(
                Evaluator::new(c, DOMAIN)
                    .evaluate(&g.tables, ga, ea)
                    .unwrap(),
            );
        }
    }
}

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

fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
}

/// Garbling and evaluation of `n` instances of `c` on one thread, every variant.
fn bench_circuit(cr: &mut Cr, group: &str, c: &Circuit, ns: &[usize]) {
    let pool = one_thread();
    let mut group = cr.benchmark_group(group);
    group.sampling_mode(SamplingMode::Flat);
    for &n in ns {
        let (g, ga, ea) = setup(c, n, &[]);
        group.throughput(Throughput::Elements((n * c.and_count()) as u64));
        for v in engine::variants() {
            let mut f = engine::garbler(&v, c, n);
            group.bench_function(BenchmarkId::new(format!("garble/{}", v.name), n), |b| {
                b.iter(|| pool.install(&mut f))
            });
            let mut f = engine::evaluator(&v, c, &g, &ga, &ea);
            group.bench_function(BenchmarkId::new(format!("evaluate/{}", v.name), n), |b| {
                b.iter(|| pool.install(&mut f))
            });
        }
    }
    group.finish();
}

/// Raw fixed-key AES throughput (TCCR = 2 AES; evaluating an AND = 4 AES calls, garbling = 8).
fn bench_aes(cr: &mut Cr) {
    let mut blocks = Csprng::from_seed([4; 32]).blocks(4096);
    let mut group = cr.benchmark_group("fixed_key_aes_1thread");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(blocks.len() as u64));
    for v in engine::variants() {
        group.bench_function(BenchmarkId::new("permute_many", &v.name), |b| {
            b.iter(|| engine::permute(&v, black_box(&mut blocks)))
        });
    }
    group.finish();
}

fn bench_and_gates(cr: &mut Cr) {
    bench_circuit(cr, "and_gates_1thread", &and_circuit(), &[64, 1024]);
}

/// The Bristol Fashion AES-128 circuit (6,400 AND, 28,176 XOR, 2,087 INV): batched and one
/// instance.
fn bench_bristol_aes(cr: &mut Cr) {
    let text = include_str!("../tests/data/aes_128.txt");
    let c = from_bristol(text, BristolParties::default()).unwrap();
    bench_circuit(cr, "bristol_aes128_1thread", &c, &[64, 1]);
}

/// ReLUs at k = 32 on the default backend, one thread, 8192 per call.
fn bench_relu(cr: &mut Cr) {
    let relu = ReluCircuit::new(32, 0, ReluVariant::Relu).unwrap();
    let c = relu.circuit();
    let n = 8192;
    let mut rng = Csprng::from_seed([2; 32]);
    let masks: Vec<u64> = (0..n).map(|_| rng.u64() & 0xffff_ffff).collect();
    let g = relu
        .garble(Delta::random(&mut rng), DOMAIN, &masks, None, &mut rng)
        .unwrap();
    let ga = relu.encode_garbler(&g.encoder, &masks).unwrap();
    let ea = relu.encode_evaluator(&g.encoder, &masks).unwrap();
    let pool = one_thread();
    let mut group = cr.benchmark_group("relu_k32_1thread");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("garble", |b| {
        let mut rng = Csprng::from_seed([3; 32]);
        b.iter(|| {
            pool.install(|| {
                let d = Delta::random(&mut rng);
                black_box(relu.garble(d, DOMAIN, &masks, None, &mut rng).unwrap())
            })
        })
    });
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            pool.install(|| {
                black_box(
                    Evaluator::new(c, DOMAIN)
                        .evaluate(&g.tables, &ga, &ea)
                        .unwrap(),
                )
            })
        })
    });
    group.finish();
}

/// Runs every benchmark of this file.
fn benches() {
    let mut c = Criterion::default()
        .with_measurement(CpuTime)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_aes(&mut c);
    bench_and_gates(&mut c);
    bench_bristol_aes(&mut c);
    bench_relu(&mut c);
}

criterion_main!(benches);
