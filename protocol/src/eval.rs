//! Garbled evaluation of one streamed chunk, as a self-contained job.
//!
//! The client session hands every chunk out as a job ([`crate::EvalTask`]): a browser gives each
//! chunk to one of several Web Workers, each with its own wasm instance; native transports run
//! them on [`LocalWorkers`]. A [`ChunkJob`] carries everything but the server's online labels and
//! crosses the worker boundary as bytes; the worker keeps the parsed [`ChunkEvaluator`] until the
//! labels arrive, evaluates, and returns the client's output shares.

use crate::plan::{CircuitSpec, StageCircuit, StageDecoding, CIRCUIT_SPEC_BYTES};
use crate::{ring_err, EvalTask, ProtocolError};
use cryptonas_crypto::FixedKeyAes;
use cryptonas_gc::{
    ActiveLabels, Evaluator, GarbleError, GarbledTables, OutputLabels, TweakDomain,
};
use cryptonas_ring::{RingVec, RingWidth};
use std::collections::HashMap;
use zeroize::Zeroizing;

/// One garbled chunk of a layer's circuit instances and the client's OT labels for it,
/// serialisable for a worker.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkJob {
    /// Job id within the session (the chunk's index in arrival order).
    pub id: u32,
    /// The layer's circuit (what the worker rebuilds it from).
    pub circuit: CircuitSpec,
    /// The session's π key (the garbling hash, [`crate::Msg::ServerPlan`]).
    pub pi_key: [u8; 16],
    /// The session's garbling tweak domain: session id …
    pub session_id: u64,
    /// … and the chunk's first circuit instance counted over the whole inference.
    pub first_instance: u32,
    /// Circuit instances in the chunk.
    pub count: u32,
    /// Garbled tables as sent by the server.
    pub tables: Vec<u8>,
    /// Output decoding as sent by the server.
    pub decoding: Vec<u8>,
    /// The client's active labels of its share bits (from the OT), `count · window · k` blocks;
    /// wiped on drop.
    pub client_labels: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChunkJob {
    /// Sizes only: the labels are secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChunkJob(id {}, {:?}, {} instances from {}, {} B of tables)",
            self.id,
            self.circuit,
            self.count,
            self.first_instance,
            self.tables.len()
        )
    }
}

const HEADER: usize = 4 + CIRCUIT_SPEC_BYTES + 16 + 8 + 4 + 4 + 8 + 8;
/// Where the fields after the circuit start.
const PI_AT: usize = 4 + CIRCUIT_SPEC_BYTES;

fn malformed(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        what: "evaluation job",
        reason: reason.into(),
    }
}

fn gc_err(what: &'static str) -> impl Fn(GarbleError) -> ProtocolError {
    move |e| ProtocolError::Malformed {
        what,
        reason: e.to_string(),
    }
}

impl ChunkJob {
    /// `[id: u32 LE][circuit: CircuitSpec][π key: 16][session first count: LE][tables len u64]`
    /// `[decoding len u64][tables][decoding][labels]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER + self.tables.len() + self.decoding.len() + self.client_labels.len(),
        );
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.circuit.to_bytes());
        out.extend_from_slice(&self.pi_key);
        out.extend_from_slice(&self.session_id.to_le_bytes());
        out.extend_from_slice(&self.first_instance.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&(self.tables.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.decoding.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.tables);
        out.extend_from_slice(&self.decoding);
        out.extend_from_slice(&self.client_labels);
        out
    }

    /// Parses [`ChunkJob::to_bytes`]; sizes are checked by [`ChunkEvaluator::new`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ChunkJob, ProtocolError> {
        if bytes.len() < HEADER {
            return Err(malformed(format!(
                "{} bytes, header needs {HEADER}",
                bytes.len()
            )));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let rest = &bytes[HEADER..];
        let mut pi_key = [0u8; 16];
        pi_key.copy_from_slice(&bytes[PI_AT..PI_AT + 16]);
        let circuit = CircuitSpec::from_bytes(bytes[4..PI_AT].try_into().expect("spec bytes"))
            .map_err(malformed)?;
        let tables_len = usize::try_from(u64_at(PI_AT + 32)).unwrap_or(usize::MAX);
        let decoding_len = usize::try_from(u64_at(PI_AT + 40)).unwrap_or(usize::MAX);
        if tables_len > rest.len() || decoding_len > rest.len() - tables_len {
            return Err(malformed("declared lengths exceed the job"));
        }
        let (tables, rest) = rest.split_at(tables_len);
        let (decoding, labels) = rest.split_at(decoding_len);
        Ok(ChunkJob {
            id: u32_at(0),
            circuit,
            pi_key,
            session_id: u64_at(PI_AT + 16),
            first_instance: u32_at(PI_AT + 24),
            count: u32_at(PI_AT + 28),
            tables: tables.to_vec(),
            decoding: decoding.to_vec(),
            client_labels: Zeroizing::new(labels.to_vec()),
        })
    }
}

/// A validated chunk, waiting for the server's labels.
pub struct ChunkEvaluator {
    circuit: StageCircuit,
    pi: FixedKeyAes,
    domain: TweakDomain,
    count: usize,
    tables: GarbledTables,
    decoding: StageDecoding,
    client: ActiveLabels,
}

impl std::fmt::Debug for ChunkEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkEvaluator({} instances)", self.count)
    }
}

impl ChunkEvaluator {
    /// Checks every size of `job` against its circuit.
    pub fn new(job: &ChunkJob) -> Result<ChunkEvaluator, ProtocolError> {
        Self::from_parts(job, &job.tables, &job.decoding)
    }

    /// The evaluator of a job handed out without its tables and output decoding
    /// ([`crate::ClientSession::handle_garbled_head`]), which the transport delivered here
    /// separately (the frame's [`crate::GarbledLayout::tables`] and `decoding` ranges).
    pub fn with_bulk(
        job: &ChunkJob,
        tables: &[u8],
        decoding: &[u8],
    ) -> Result<ChunkEvaluator, ProtocolError> {
        if !job.tables.is_empty() || !job.decoding.is_empty() {
            return Err(malformed(
                "a job with its own tables was given tables again",
            ));
        }
        Self::from_parts(job, tables, decoding)
    }

    fn from_parts(
        job: &ChunkJob,
        tables: &[u8],
        decoding: &[u8],
    ) -> Result<ChunkEvaluator, ProtocolError> {
        let circuit = job.circuit.build().map_err(|e| malformed(e.to_string()))?;
        let count = job.count as usize;
        let tables = GarbledTables::from_bytes(circuit.circuit(), count, tables)
            .map_err(gc_err("tables"))?;
        let decoding = circuit
            .decoding_from_bytes(count, decoding)
            .map_err(gc_err("output decoding"))?;
        let bits = circuit.k() as usize * circuit.window();
        let client = ActiveLabels::from_bytes(bits, count, &job.client_labels)
            .map_err(gc_err("OT labels"))?;
        let domain = TweakDomain {
            session_id: job.session_id,
            first_instance: job.first_instance,
        };
        Ok(ChunkEvaluator {
            circuit,
            pi: FixedKeyAes::new(job.pi_key),
            domain,
            count,
            tables,
            decoding,
            client,
        })
    }

    /// Circuit instances in the chunk.
    pub fn count(&self) -> usize {
        self.count
    }

    /// AND gates of the chunk.
    pub fn and_gates(&self) -> usize {
        self.count * self.circuit.circuit().and_count()
    }

    /// Evaluates the chunk on the server's active labels of its shares (`count · window · k`
    /// blocks as sent in `ServerLabels`) and returns the client's output shares o. Never inlined: benchmarks and
    /// warm-ups must run this very function (see `wasm-client`'s `GcBench`).
    #[inline(never)]
    pub fn evaluate(&self, garbler_labels: &[u8]) -> Result<Vec<u64>, ProtocolError> {
        let out = self.evaluate_gates(garbler_labels)?;
        self.circuit
            .decode(&self.pi, self.domain, &out, &self.decoding)
            .map_err(gc_err("decoding"))
    }

    /// The first part of [`ChunkEvaluator::evaluate`]: the garbled gates alone, to the output
    /// labels it then decodes (benchmarks time the two kernels apart).
    #[inline(never)]
    pub fn evaluate_gates(&self, garbler_labels: &[u8]) -> Result<OutputLabels, ProtocolError> {
        let bits = self.circuit.k() as usize * self.circuit.window();
        let server =
            ActiveLabels::from_bytes(bits, self.count, garbler_labels).map_err(gc_err("labels"))?;
        Evaluator::new(self.circuit.circuit(), self.domain)
            .with_pi(self.pi.clone())
            .evaluate(&self.tables, &server, &self.client)
            .map_err(gc_err("evaluation"))
    }

    /// [`ChunkEvaluator::evaluate`] with the shares packed as the ring's wire format (what a
    /// worker posts back to [`crate::ClientSession::complete_job`]).
    pub fn evaluate_packed(&self, garbler_labels: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let k = RingWidth::new(self.circuit.k_out()).map_err(ring_err("evaluation job"))?;
        let shares = RingVec::from_values(k, self.evaluate(garbler_labels)?)
            .map_err(ring_err("evaluated shares"))?;
        Ok(shares.pack())
    }
}

/// In-process evaluation workers: what native transports use where a browser uses Web Workers.
/// Stored chunks wait here for their labels; a layer's chunks are evaluated in parallel (one rayon
/// pass per layer: evaluating chunk after chunk synchronised the threads at every chunk and halved
/// the throughput). In wasm they run one after another.
#[derive(Debug, Default)]
pub struct LocalWorkers {
    stored: HashMap<u32, ChunkEvaluator>,
}

impl LocalWorkers {
    /// Runs a batch of tasks: stores every `Store`, then evaluates every `Evaluate`, returning
    /// `(job id, packed shares)` for [`crate::ClientSession::complete_job`] in task order.
    pub fn run(&mut self, tasks: Vec<EvalTask>) -> Result<Vec<(u32, Vec<u8>)>, ProtocolError> {
        let mut evaluate = Vec::new();
        for task in tasks {
            match task {
                EvalTask::Store(job) => {
                    let evaluator = ChunkEvaluator::new(&job)?;
                    if self.stored.insert(job.id, evaluator).is_some() {
                        return Err(ProtocolError::Internal("a job id was handed out twice"));
                    }
                }
                EvalTask::Evaluate {
                    id, garbler_labels, ..
                } => {
                    let evaluator = self
                        .stored
                        .remove(&id)
                        .ok_or(ProtocolError::Internal("evaluation of a job never stored"))?;
                    evaluate.push((id, evaluator, garbler_labels));
                }
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            evaluate
                .par_iter()
                .map(|(id, e, labels)| Ok((*id, e.evaluate_packed(labels)?)))
                .collect()
        }
        #[cfg(target_arch = "wasm32")]
        evaluate
            .iter()
            .map(|(id, e, labels)| Ok((*id, e.evaluate_packed(labels)?)))
            .collect()
    }

    /// Chunks stored and not yet evaluated.
    pub fn stored(&self) -> usize {
        self.stored.len()
    }
}
