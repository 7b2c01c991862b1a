//! Garbling and evaluation rates of the protocol's ReLU circuit, timed on the gc crate directly:
//! one layer's worth of ReLUs, on one thread and on every thread, every output checked.

use cryptonas_crypto::{Csprng, FixedKeyAes};
use cryptonas_gc::{Delta, Evaluator, ReluCircuit, ReluVariant, TweakDomain};
use serde::Serialize;
use std::time::Instant;

/// Rates for one thread count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateRate {
    /// Threads used.
    pub threads: usize,
    /// Best garbling time of the batch (seconds).
    pub garble_s: f64,
    /// Best evaluation time of the batch (seconds).
    pub evaluate_s: f64,
    /// AND gates garbled per second.
    pub garble_and_per_s: f64,
    /// AND gates evaluated per second.
    pub evaluate_and_per_s: f64,
    /// Garbling time per ReLU (µs).
    pub garble_us_per_relu: f64,
    /// Evaluation time per ReLU (µs).
    pub evaluate_us_per_relu: f64,
}

/// The ReLU circuit's size and its rates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateRates {
    /// Ring width.
    pub k: u32,
    /// Truncation (bits dropped after the ReLU; each saves one AND).
    pub t: u32,
    /// AND gates per ReLU.
    pub and_per_relu: usize,
    /// Garbled-table and arithmetic-output bytes per ReLU (offline).
    pub table_bytes_per_relu: usize,
    /// ReLUs per timed batch.
    pub relus: usize,
    /// Repetitions (the best is kept).
    pub repetitions: usize,
    /// One thread, then every thread (when there is more than one).
    pub rates: Vec<GateRate>,
}

/// Why the rates could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Building the circuit failed.
    #[error("ReLU circuit: {0}")]
    Circuit(#[from] cryptonas_gc::CircuitError),
    /// Garbling or evaluating failed.
    #[error("garbling: {0}")]
    Garble(#[from] cryptonas_gc::GarbleError),
    /// A garbled ReLU decoded to the wrong value.
    #[error("garbled ReLU {index} decoded to {got:#x}, expected {want:#x}")]
    WrongOutput {
        /// Which ReLU.
        index: usize,
        /// Decoded.
        got: u64,
        /// Plaintext reference.
        want: u64,
    },
    /// A thread pool could not be built.
    #[error("thread pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    /// Nothing to time.
    #[error("need at least one ReLU and one repetition")]
    Empty,
}

/// Garbles and evaluates `relus` ReLUs at ring width `k` and truncation `t` (take both from a
/// served model's plan), `repetitions` times per thread count, and checks every decoded output
/// against the plaintext reference.
pub fn measure(k: u32, t: u32, relus: usize, repetitions: usize) -> Result<GateRates, GateError> {
    if relus == 0 || repetitions == 0 {
        return Err(GateError::Empty);
    }
    let relu = ReluCircuit::new(k, t, ReluVariant::Relu)?;
    let circuit = relu.circuit();
    let ring = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    let mut rng = Csprng::from_entropy().unwrap_or_else(|_| Csprng::from_seed([7; 32]));
    let masks: Vec<u64> = (0..relus).map(|_| rng.u64() & ring).collect();
    let a: Vec<u64> = (0..relus).map(|_| rng.u64() & ring).collect();
    let b: Vec<u64> = (0..relus).map(|_| rng.u64() & ring).collect();
    let domain = TweakDomain {
        session_id: rng.u64(),
        first_instance: 0,
    };
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = vec![1];
    if all > 1 {
        threads.push(all);
    }
    let mut rates = Vec::new();
    for t in threads {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
        let (mut garble_s, mut evaluate_s) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..repetitions {
            let started = Instant::now();
            let g = pool
                .install(|| relu.garble(Delta::random(&mut rng), domain, &masks, None, &mut rng))?;
            garble_s = garble_s.min(started.elapsed().as_secs_f64());
            let ga = relu.encode_garbler(&g.encoder, &a)?;
            let ea = relu.encode_evaluator(&g.encoder, &b)?;
            // Evaluation includes reading the shares from the output labels (a hash per bit).
            let started = Instant::now();
            let out =
                pool.install(|| Evaluator::new(circuit, domain).evaluate(&g.tables, &ga, &ea))?;
            let got = relu.decode(&FixedKeyAes::default(), domain, &out, &g.decoding)?;
            evaluate_s = evaluate_s.min(started.elapsed().as_secs_f64());
            for (index, &v) in got.iter().enumerate() {
                let want = relu.reference(a[index], b[index], masks[index]);
                if v != want {
                    return Err(GateError::WrongOutput {
                        index,
                        got: v,
                        want,
                    });
                }
            }
        }
        let ands = (relus * circuit.and_count()) as f64;
        rates.push(GateRate {
            threads: t,
            garble_s,
            evaluate_s,
            garble_and_per_s: ands / garble_s,
            evaluate_and_per_s: ands / evaluate_s,
            garble_us_per_relu: garble_s * 1e6 / relus as f64,
            evaluate_us_per_relu: evaluate_s * 1e6 / relus as f64,
        });
    }
    Ok(GateRates {
        k,
        t,
        and_per_relu: circuit.and_count(),
        table_bytes_per_relu: circuit.table_bytes() + relu.output().decoding_len(1),
        relus,
        repetitions,
        rates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_measured_and_outputs_checked() {
        let r = measure(32, 8, 256, 1).unwrap();
        // The adder alone; the gated arithmetic output carries the rest: three 4-byte words
        // per result bit (31 − 8 of them) and a correction.
        assert_eq!(r.and_per_relu, 31);
        assert_eq!(r.table_bytes_per_relu, 32 * 31 + 4 * (3 * 23 + 1));
        assert!(!r.rates.is_empty());
        for rate in &r.rates {
            assert!(rate.garble_and_per_s > 0.0 && rate.evaluate_and_per_s > 0.0);
        }
        assert!(matches!(measure(32, 8, 0, 1), Err(GateError::Empty)));
    }
}
