//! Offline HE cost of CNet1-shaped networks: per stage and whole network, client and server time
//! separated, bytes up and down, bytes per ReLU. Then criterion timings of one stage.
//!
//! Run: `cargo bench -p cryptonas-he --bench stage` (add `-- --report-only` to skip criterion).

use std::time::Instant;

use criterion::{Criterion, Throughput};
use cryptonas_crypto::Csprng;
use cryptonas_he::{
    ClientKeys, ClientStage, HeParams, IntConv, MasksMsg, PublicKey, ResponseMsg, ServerStage,
};
use rand_core::RngCore;

/// CNet1 (L = 6, kernels 3,3,3,5,3,3) in ReLU-separated normal form: one stage per ReLU input plus
/// the logits. Stage i's terms are the composite maps from every ReLU output a_j it depends on
/// (through the main path and the skips L2←{0,1}, L3←{1}, L4←{0,2}, L5←{2,3}); a map across a
/// 2×/4× reduction is a strided conv with the kernel grown accordingly, the head is an FC per source.
fn cnet1_stages(c: usize) -> Vec<Vec<IntConv>> {
    let kernels = [3usize, 3, 3, 5, 3, 3];
    let res = |l: usize| [32usize, 32, 16, 16, 8, 8][l];
    let ch = |l: usize| c * [1usize, 1, 4, 4, 16, 16][l];
    let skips: [&[usize]; 6] = [&[], &[], &[0, 1], &[1], &[0, 2], &[2, 3]];
    fn sources(m: usize, skips: &[&[usize]; 6], out: &mut Vec<usize>) {
        if !out.contains(&m) {
            out.push(m);
        }
        for &j in skips[m] {
            sources(j, skips, out);
        }
    }
    let term = |j: usize, out_c: usize, out_res: usize| {
        let f = res(j) / out_res;
        let k = kernels[j] + f - 1;
        IntConv {
            in_channels: ch(j),
            out_channels: out_c,
            in_height: res(j),
            in_width: res(j),
            kernel_h: k,
            kernel_w: k,
            stride: f,
            padding: (kernels[j] - 1) / 2,
        }
    };
    let mut stages = vec![vec![IntConv {
        in_channels: 3,
        out_channels: c,
        in_height: 32,
        in_width: 32,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    }]];
    for i in 1..6 {
        let mut src = Vec::new();
        sources(i - 1, &skips, &mut src);
        stages.push(src.iter().map(|&j| term(j, ch(i), res(i))).collect());
    }
    let mut src = Vec::new();
    sources(5, &skips, &mut src);
    stages.push(
        src.iter()
            .map(|&j| IntConv {
                in_channels: ch(j),
                out_channels: 10,
                in_height: res(j),
                in_width: res(j),
                kernel_h: res(j),
                kernel_w: res(j),
                stride: 1,
                padding: 0,
            })
            .collect(),
    );
    stages
}

fn weights(rng: &mut Csprng, conv: &IntConv) -> Vec<i64> {
    // Composite fixed-point kernels: ~8-bit magnitudes.
    (0..conv.weight_len())
        .map(|_| (rng.next_u64() % 511) as i64 - 255)
        .collect()
}

fn masks(rng: &mut Csprng, conv: &IntConv, mask: u64) -> Vec<u64> {
    (0..conv.input_len())
        .map(|_| rng.next_u64() & mask)
        .collect()
}

fn report(c: usize) {
    let params = HeParams::new(32).unwrap();
    let mut rng = Csprng::from_seed([c as u8; 32]);
    let t = Instant::now();
    let keys = ClientKeys::generate(&params, &mut rng).unwrap();
    let keygen = t.elapsed().as_secs_f64();
    let pk_bytes = keys.public_key().to_bytes(&params);
    let pk = PublicKey::from_msg(&params, keys.public_key()).unwrap();
    let relus = 6 * c * 1024;
    println!(
        "\nCNet1 C = {c} (k = 32, N = {}, {relus} ReLUs), keygen {keygen:.3} s, public key {} B",
        params.degree(),
        pk_bytes.len()
    );
    println!(
        "stage terms  cts in/out  precompute  client enc  server  client dec  up B       down B"
    );
    let (mut tot_pre, mut tot_enc, mut tot_srv, mut tot_dec, mut tot_up, mut tot_down) =
        (0f64, 0f64, 0f64, 0f64, 0usize, 0usize);
    let mut tot_mem = 0usize;
    for (i, terms) in cnet1_stages(c).iter().enumerate() {
        let wts: Vec<(IntConv, Vec<i64>)> =
            terms.iter().map(|t| (*t, weights(&mut rng, t))).collect();
        let ms: Vec<Vec<u64>> = terms
            .iter()
            .map(|t| masks(&mut rng, t, params.mask()))
            .collect();
        let refs: Vec<&[u64]> = ms.iter().map(|m| m.as_slice()).collect();
        let t = Instant::now();
        let server = ServerStage::new(&params, &wts).unwrap();
        let pre = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let client = ClientStage::new(&params, terms).unwrap();
        let (state, msg) = client.encrypt_masks(&keys, &refs, &mut rng).unwrap();
        let up = msg.to_bytes(&params);
        let enc = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let msg = MasksMsg::from_bytes(&params, &up).unwrap();
        let (_s, resp) = server.respond(&pk, &msg, &mut rng).unwrap();
        let down = resp.to_bytes(&params);
        let srv = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let resp = ResponseMsg::from_bytes(&params, &down).unwrap();
        let _share = state.decrypt(&keys, &resp).unwrap();
        let dec = t.elapsed().as_secs_f64();
        println!(
            "{i:>5} {:>5}  {:>4}/{:<4}   {pre:>9.3}s  {enc:>9.3}s  {srv:>5.3}s  {dec:>9.3}s  {:>9}  {:>9}   (stat. sec. {:.0} bits)",
            terms.len(),
            client.plan().input_ciphertexts(),
            client.plan().output_ciphertexts(),
            up.len(),
            down.len(),
            server.noise().stat_security_bits,
        );
        tot_mem += server.weight_bytes();
        tot_pre += pre;
        tot_enc += enc;
        tot_srv += srv;
        tot_dec += dec;
        tot_up += up.len();
        tot_down += down.len();
    }
    let total = tot_enc + tot_srv + tot_dec;
    println!(
        "total: online-path offline HE {total:.3} s (client enc {tot_enc:.3} + server {tot_srv:.3} + client dec {tot_dec:.3}); \
         weight precompute {tot_pre:.3} s once per model ({:.0} MB of NTT weights)",
        tot_mem as f64 / 1e6
    );
    println!(
        "bytes: up {tot_up} + down {tot_down} + pk {} = {} B = {:.1} B/ReLU",
        pk_bytes.len(),
        tot_up + tot_down + pk_bytes.len(),
        (tot_up + tot_down + pk_bytes.len()) as f64 / relus as f64
    );
}

fn bench_stage(cr: &mut Criterion) {
    let params = HeParams::new(32).unwrap();
    let mut rng = Csprng::from_seed([1; 32]);
    let keys = ClientKeys::generate(&params, &mut rng).unwrap();
    let pk = PublicKey::from_msg(&params, keys.public_key()).unwrap();
    let c = 8;
    // Stage 1 of CNet1@8: 8×32×32 → 8×32×32 3×3 (8192 ReLU inputs).
    let terms = cnet1_stages(c)[1].clone();
    let wts: Vec<(IntConv, Vec<i64>)> = terms.iter().map(|t| (*t, weights(&mut rng, t))).collect();
    let ms: Vec<Vec<u64>> = terms
        .iter()
        .map(|t| masks(&mut rng, t, params.mask()))
        .collect();
    let refs: Vec<&[u64]> = ms.iter().map(|m| m.as_slice()).collect();
    let server = ServerStage::new(&params, &wts).unwrap();
    let client = ClientStage::new(&params, &terms).unwrap();
    let (state, msg) = client.encrypt_masks(&keys, &refs, &mut rng).unwrap();
    let (_, resp) = server.respond(&pk, &msg, &mut rng).unwrap();
    let mut g = cr.benchmark_group("cnet1_c8_stage1");
    g.sample_size(10);
    g.throughput(Throughput::Elements((c * 1024) as u64));
    g.bench_function("client_encrypt", |b| {
        b.iter(|| client.encrypt_masks(&keys, &refs, &mut rng).unwrap())
    });
    g.bench_function("server_respond", |b| {
        b.iter(|| server.respond(&pk, &msg, &mut rng).unwrap())
    });
    g.bench_function("client_decrypt", |b| {
        b.iter(|| state.decrypt(&keys, &resp).unwrap())
    });
    g.finish();
}

fn main() {
    report(8);
    report(14);
    if !std::env::args().any(|a| a == "--report-only") {
        let mut c = Criterion::default().configure_from_args();
        bench_stage(&mut c);
        c.final_summary();
    }
}
