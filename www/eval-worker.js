// One garbled-evaluation worker: its own wasm instance holds the chunks the session worker gives
// it offline (`store`) and evaluates them when the server's labels arrive (`evaluate`).
// Messages in:  {type: 'store', session, id, job, [frame, tables, decoding]} | {type: 'evaluate', session, id, labels} |
//               {type: 'drop', session} | {type: 'ping'} | {type: 'bench', relus, k, reps}
// Messages out: {type: 'result', session, id, shares, ms, andGates, wasmBytes} | {type: 'ready'} |
//               {type: 'bench', result} | {type: 'error', session, id, message}
import { loadWasm, GcBench, wasmBuild } from './wasm.js';
import { runEvalMessage } from './eval-jobs.js';

let wasm = null;
const booted = loadWasm().then((w) => {
  wasm = w;
  // Get the evaluation code into V8's optimising tier before the online phase (see worker.js).
  // Small on purpose: a wasm memory never shrinks, so the warm-up's size stays allocated (1,024
  // ReLUs at k = 32 grew each worker to 15 MB before its first chunk).
  try {
    const b = new GcBench(256, 32);
    for (let i = 0; i < 8; i++) b.evaluate();
    b.free();
  } catch (_) { /* only an optimisation */ }
});

const chunks = new Map(); // `${session}:${id}` -> EvalChunk

/// Garbled ReLUs/s evaluated and decoded to shares in this worker (software AES, one thread), the
/// circuits' AND gates/s over the same time (the arithmetic output's hashes included, so below
/// the AND kernel's rate), and AND gates/s of the gates alone (no decoding): the page's
/// benchmark, run by the session worker in a fresh evaluation worker that it terminates after.
function bench({ relus = 4096, k = 32, reps = 3 }) {
  const b = new GcBench(relus, k);
  try {
    const w = performance.now();
    b.evaluate(); // the first call may run in V8's baseline tier
    const firstSeconds = (performance.now() - w) / 1e3;
    b.evaluate(); // (a fresh worker: give the optimising tier one more call)
    b.evaluate_gates();
    b.evaluate_gates();
    const t = performance.now();
    for (let i = 0; i < reps; i++) b.evaluate();
    const s = (performance.now() - t) / 1e3;
    const g = performance.now();
    for (let i = 0; i < reps; i++) b.evaluate_gates();
    const gateSeconds = (performance.now() - g) / 1e3;
    return {
      relus, k, andGates: b.and_gates() * reps, seconds: s, andPerSec: (b.and_gates() * reps) / s,
      relusPerSec: (relus * reps) / s, gateAndPerSec: (b.and_gates() * reps) / gateSeconds,
      firstCallAndPerSec: b.and_gates() / firstSeconds, wasmMemoryBytes: wasm.memory.buffer.byteLength,
      wasmBuild,
    };
  } finally {
    b.free();
  }
}

self.onmessage = async (e) => {
  const m = e.data;
  try {
    await booted;
  } catch (err) {
    self.postMessage({ type: 'error', session: m.session, id: m.id,
      message: String((err && err.message) || err) });
    return;
  }
  if (m.type === 'ping') {
    self.postMessage({ type: 'ready' });
    return;
  }
  if (m.type === 'bench') {
    try {
      self.postMessage({ type: 'bench', result: bench(m) });
    } catch (err) {
      self.postMessage({ type: 'error', message: String((err && err.message) || err) });
    }
    return;
  }
  const reply = runEvalMessage(chunks, m, () => wasm.memory.buffer.byteLength);
  if (reply) self.postMessage(reply, reply.shares ? [reply.shares.buffer] : []);
};
