//! The evaluation-job format that crosses into the browser's evaluation workers: arbitrary bytes
//! must parse, validate and evaluate to results or errors, never a panic or a huge allocation.
#![no_main]
use cryptonas_protocol::{ChunkEvaluator, ChunkJob};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The last 16·k·count bytes (if any) serve as the server's labels.
    let Ok(job) = ChunkJob::from_bytes(data) else {
        return;
    };
    let Ok(evaluator) = ChunkEvaluator::new(&job) else {
        return;
    };
    let labels = &job.client_labels;
    let _ = evaluator.evaluate(labels);
    let _ = evaluator.evaluate(&data[data.len() / 2..]);
});
