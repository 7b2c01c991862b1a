//! OT throughput: Chou–Orlandi base OTs/s and KOS correlated-OT transfers/s, plus bytes per transfer.
//!
//! `cargo bench -p cryptonas-ot --bench ot`

use criterion::{BatchSize, Criterion, Throughput};
use cryptonas_crypto::{Block, Csprng};
use cryptonas_ot::{chou_orlandi, kos};

const BASE: usize = 128;
const EXTEND: usize = 1 << 20;

fn base_ot(c: &mut Criterion) {
    let mut g = c.benchmark_group("chou_orlandi");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BASE as u64));
    let mut rng = Csprng::from_seed([1; 32]);
    let choices: Vec<bool> = (0..BASE).map(|_| rng.bool()).collect();
    g.bench_function("base_ot_128", |b| {
        b.iter(|| {
            let (setup, sender) = chou_orlandi::Sender::new().setup(&mut rng);
            let (msg, keys) = chou_orlandi::Receiver::new()
                .receive_setup(setup)
                .choose(&choices, &mut rng);
            (sender.send(msg), keys)
        })
    });
    g.finish();
}

fn ready(
    rng: &mut Csprng,
) -> (
    kos::Sender<kos::state::Ready>,
    kos::Receiver<kos::state::ReceiverReady>,
) {
    let delta = Block::from_u128(rng.block().to_u128() | 1);
    let (setup, receiver) = kos::Receiver::new().setup(rng);
    let (choices, sender) = kos::Sender::new(delta)
        .unwrap()
        .receive_base_setup(setup, rng);
    (sender, receiver.receive_base_choices(choices).unwrap())
}

fn extension(c: &mut Criterion) {
    let mut rng = Csprng::from_seed([2; 32]);
    let choices: Vec<bool> = (0..EXTEND).map(|_| rng.bool()).collect();

    // Bytes on the wire for one batch.
    let (sender, receiver) = ready(&mut rng);
    let (matrix, receiver) = receiver.extend(&choices, &mut rng).unwrap();
    let matrix_bytes = matrix.to_bytes().len();
    let (challenge, sender) = sender.receive_extend(matrix, &mut rng).unwrap();
    let (response, r_out, _) = receiver.receive_challenge(challenge.clone());
    let (s_out, _) = sender.receive_check(response.clone()).unwrap();
    let total = matrix_bytes + challenge.to_bytes().len() + response.to_bytes().len();
    let chosen = s_out
        .send_chosen(&vec![[Block::ZERO; 2]; EXTEND])
        .unwrap()
        .to_bytes()
        .len();
    drop(r_out);
    println!(
        "KOS COT, {EXTEND} transfers: {total} bytes = {:.3} B/transfer (matrix {matrix_bytes} B); \
         chosen-OT payload +{:.3} B/transfer; base OTs once: {} B",
        total as f64 / EXTEND as f64,
        chosen as f64 / EXTEND as f64,
        32 + 128 * 32
    );

    let mut g = c.benchmark_group("kos");
    g.sample_size(10);
    g.throughput(Throughput::Elements(EXTEND as u64));
    g.bench_function("cot_extend_2^20_both_sides", |b| {
        b.iter_batched(
            || ready(&mut Csprng::from_seed([3; 32])),
            |(sender, receiver)| {
                let mut rng = Csprng::from_seed([4; 32]);
                let (matrix, receiver) = receiver.extend(&choices, &mut rng).unwrap();
                let (challenge, sender) = sender.receive_extend(matrix, &mut rng).unwrap();
                let (response, r_out, _) = receiver.receive_challenge(challenge);
                let (s_out, _) = sender.receive_check(response).unwrap();
                (s_out, r_out)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("random_ot_hash_2^20_sender", |b| {
        b.iter_batched(
            || {
                let mut rng = Csprng::from_seed([5; 32]);
                let (sender, receiver) = ready(&mut rng);
                let (matrix, receiver) = receiver.extend(&choices, &mut rng).unwrap();
                let (challenge, sender) = sender.receive_extend(matrix, &mut rng).unwrap();
                let (response, _, _) = receiver.receive_challenge(challenge);
                sender.receive_check(response).unwrap().0
            },
            |s_out| s_out.into_random_ot(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The kernels of one 2^20 batch, to see which one bounds the extension.
fn components(c: &mut Criterion) {
    let mut g = c.benchmark_group("kos_kernels");
    g.sample_size(10);
    g.throughput(Throughput::Elements(EXTEND as u64));
    let mut rng = Csprng::from_seed([6; 32]);
    let xs = rng.blocks(EXTEND);
    let ys = rng.blocks(EXTEND);
    g.bench_function("gf128_mul_2^20", |b| {
        b.iter(|| {
            xs.iter().zip(&ys).fold(Block::ZERO, |acc, (x, y)| {
                acc ^ cryptonas_ot::gf128::mul(*x, *y)
            })
        })
    });
    g.bench_function("transpose_2^20_rows", |b| {
        let mut tiles: Vec<[u128; 128]> = xs
            .chunks_exact(128)
            .map(|c| std::array::from_fn(|i| c[i].to_u128()))
            .collect();
        b.iter(|| {
            for t in tiles.iter_mut() {
                cryptonas_ot::transpose128(t);
            }
        })
    });
    g.bench_function("chacha12_prg_2^20_blocks", |b| {
        b.iter(|| rng.blocks(EXTEND))
    });
    g.finish();
}

// `criterion_main!` written out: the macro's generated `pub fn` would trip `missing_docs`.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    base_ot(&mut c);
    extension(&mut c);
    components(&mut c);
    c.final_summary();
}
