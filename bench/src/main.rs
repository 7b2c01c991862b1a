//! Benchmark harness: latency, traffic and accuracy against the ReLU budget.

fn main() {}
