// The whole private inference runs here, in one dedicated worker, so the page never freezes.
// The worker owns the WebSocket; the wasm module (www/pkg, built by scripts/build-wasm.sh) owns the
// protocol. Garbled evaluation is delegated to a pool of evaluation workers (eval-worker.js, one
// wasm instance each, as many as navigator.hardwareConcurrency): every streamed chunk of garbled
// tables goes to one of them offline, and online each gets the server's labels for its chunks
// (when they cannot start, this worker evaluates the same jobs itself: localPool).
// Messages to the page: {type: 'ready'|'progress'|'done'|'bench'|'error', id, ...}.
import init, { PrivateInference, GcBench } from './pkg/wasm_client.js';
import { runEvalMessage } from './eval-jobs.js';

let wasm = null;
async function boot() {
  if (!wasm) {
    wasm = await init();
    warmUp();
  }
  return wasm;
}

// V8 runs wasm first in its baseline tier and switches a function to optimised code only on a later
// call: one long garbled evaluation per layer would run (3x slower) in the baseline tier. A few short
// evaluations at start-up get the evaluation code optimised before the online phase.
function warmUp() {
  try {
    const b = new GcBench(256, 32);
    for (let i = 0; i < 8; i++) b.evaluate();
    b.free();
  } catch (_) { /* only an optimisation */ }
}

/// The evaluation workers, started once and reused by every session.
let pool = null;
/// `size`: how many workers (default: one per hardware thread, at most 8; benchmarks vary it).
async function evalPool(size) {
  const n = Math.max(1, Math.min(8, size || navigator.hardwareConcurrency || 2));
  if (pool && pool.workers.length === n) return pool;
  if (pool) pool.workers.forEach((w) => w.terminate());
  pool = null;
  const workers = Array.from({ length: n }, () => new Worker('eval-worker.js', { type: 'module' }));
  const listeners = new Set();
  for (const w of workers) {
    w.onmessage = (e) => { for (const l of listeners) l(e.data); };
    w.onerror = (e) => { for (const l of listeners) l({ type: 'error', message: e.message || 'evaluation worker failed to load' }); };
  }
  // Wait until every worker has its wasm instance (and has warmed it up).
  const ready = Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    const prev = w.onmessage;
    w.onmessage = (e) => {
      w.onmessage = prev;
      if (e.data.type === 'ready') resolve(); else reject(new Error(e.data.message));
    };
    w.onerror = (e) => reject(new Error(e.message || 'evaluation worker failed to load'));
    w.postMessage({ type: 'ping' });
  })));
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('evaluation workers did not start')), 30000));
  try {
    await Promise.race([ready, timeout]);
  } catch (err) {
    workers.forEach((w) => w.terminate());
    throw err;
  }
  for (const w of workers) {
    w.onerror = (e) => { for (const l of listeners) l({ type: 'error', message: e.message || 'evaluation worker failed' }); };
  }
  pool = { workers, listeners };
  return pool;
}

let sessions = 0;

const post = (msg) => self.postMessage(msg);
const wasmBytes = () => (wasm ? wasm.memory.buffer.byteLength : 0);

self.onmessage = async (e) => {
  const msg = e.data;
  try {
    await boot();
    if (msg.type === 'classify') {
      post({ type: 'done', id: msg.id, ...(await classify(msg)) });
    } else if (msg.type === 'bench') {
      post({ type: 'bench', id: msg.id, ...bench(msg) });
    } else if (msg.type === 'ping') {
      post({ type: 'ready', id: msg.id });
    }
  } catch (err) {
    post({ type: 'error', id: msg.id, message: String((err && err.message) || err) });
  }
};

/// Runs one session: start() frames up, every binary frame from the server through handle().
async function classify(msg) {
  let workers = null;
  try {
    workers = await evalPool(msg.evalWorkers);
  } catch (err) {
    // Without evaluation workers the session evaluates here, in this worker.
    console.warn('evaluation workers unavailable, evaluating in the session worker:', err);
    workers = localPool();
  }
  return run(msg, workers);
}

/// The jobs evaluated in this worker, through the same messages as eval-worker.js (for browsers
/// where the evaluation workers cannot start).
function localPool() {
  const listeners = new Set();
  const chunks = new Map(); // `${session}:${id}` -> EvalChunk
  const reply = (msg) => { for (const l of listeners) l(msg); };
  const worker = {
    postMessage(m) {
      // Asynchronous, like a worker's reply.
      setTimeout(() => {
        const r = runEvalMessage(chunks, m, wasmBytes);
        if (r) reply(r);
      }, 0);
    },
    terminate() {},
  };
  return { workers: [worker], listeners };
}

function run({ id, image, wsUrl }, evalWorkers) {
  return new Promise((resolve, reject) => {
    let pi;
    try {
      pi = new PrivateInference(new Uint8Array(image));
    } catch (err) {
      reject(err);
      return;
    }
    const session = ++sessions;
    const workers = evalWorkers.workers;
    const evalJobs = []; // {ms, andGates} of every evaluated chunk
    let evaluating = null; // {stage, started}: the layer whose labels went to the workers
    const evalMemory = []; // largest wasm memory seen per evaluation worker
    const t0 = performance.now();
    let tOnline = null;
    let opened = false;
    let settled = false;
    let plan = null;
    const layerEval = []; // {stage, ms} of each online ReLU layer (garbled evaluation + masking)
    const ws = new WebSocket(wsUrl);
    ws.binaryType = 'arraybuffer';

    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      evalWorkers.listeners.delete(onResult);
      for (const w of workers) w.postMessage({ type: 'drop', session });
      try { ws.close(); } catch (_) { /* already closed */ }
      try { pi.free(); } catch (_) { /* freed */ }
      if (err) reject(err); else resolve(value);
    };

    // A worker's shares for one chunk; the layer's reply goes out with its last chunk.
    const onResult = (m) => {
      if (settled || (m.session !== undefined && m.session !== session)) return;
      if (m.type === 'error') {
        finish(new Error(`evaluation worker: ${m.message}`));
        return;
      }
      if (m.type !== 'result') return;
      evalJobs.push({ ms: m.ms, andGates: m.andGates });
      const wi = m.id % workers.length;
      evalMemory[wi] = Math.max(evalMemory[wi] || 0, m.wasmBytes || 0);
      let frames;
      try {
        frames = pi.complete(m.id, m.shares);
        for (const f of frames) ws.send(f);
      } catch (err) {
        finish(err);
        return;
      }
      if (frames.length > 0 && evaluating !== null) {
        layerEval.push({ stage: evaluating.stage, ms: performance.now() - evaluating.started });
        evaluating = null;
      }
    };
    evalWorkers.listeners.add(onResult);

    /// Hands a step's jobs to the workers: chunk `id` always lives on worker `id mod n`.
    const dispatch = (jobs, stage) => {
      for (const job of jobs) {
        const w = workers[job.id % workers.length];
        if (job.kind === 'store') {
          w.postMessage({ type: 'store', session, id: job.id, job: job.job }, [job.job.buffer]);
        } else {
          if (evaluating === null) {
            evaluating = { stage, started: performance.now() };
          }
          w.postMessage({ type: 'evaluate', session, id: job.id, labels: job.labels },
            [job.labels.buffer]);
        }
      }
    };

    ws.onopen = () => {
      opened = true;
      try {
        for (const f of pi.start()) ws.send(f);
      } catch (err) {
        finish(err);
        return;
      }
      post({ type: 'progress', id, phase: 'offline', event: 'connected', fraction: 0.01 });
    };
    ws.onerror = () => {
      finish(new Error(opened ? 'connection to the server was lost'
        : 'cannot open a session: the server is unreachable or refused it'));
    };
    ws.onclose = (ev) => {
      if (!settled) {
        finish(new Error(`the server closed the session early (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''})`));
      }
    };
    ws.onmessage = (ev) => {
      if (settled) return;
      if (typeof ev.data === 'string') {
        finish(new Error('server: ' + ev.data));
        return;
      }
      let step;
      try {
        step = pi.handle(new Uint8Array(ev.data));
      } catch (err) {
        finish(err);
        return;
      }
      const after = performance.now();
      try {
        for (const f of step.frames) ws.send(f);
        if (step.jobs && step.jobs.length) dispatch(step.jobs, step.stage);
      } catch (err) {
        finish(err);
        return;
      }
      if (step.event === 'plan') plan = pi.plan();
      if (tOnline === null && step.phase !== 'offline') tOnline = after;
      const traffic = pi.traffic();
      const fraction = plan ? Math.min(1, step.frames_received / plan.expected_frames) : 0.02;
      post({
        type: 'progress', id, phase: step.phase, event: step.event, stage: step.stage,
        fraction, traffic, plan: step.event === 'plan' ? plan : undefined,
        elapsedMs: after - t0, offlineMs: tOnline === null ? after - t0 : tOnline - t0,
      });
      if (step.done) {
        const end = performance.now();
        const outcome = pi.outcome();
        let ands = 0;
        let evalMs = 0;
        for (const l of layerEval) {
          const p = plan && plan.layers.find((x) => x.stage === l.stage);
          if (p) { ands += p.and_gates; evalMs += l.ms; }
        }
        // Per worker: AND gates over the time a worker spent on its chunks.
        const workerAnds = evalJobs.reduce((a, j) => a + j.andGates, 0);
        const workerMs = evalJobs.reduce((a, j) => a + j.ms, 0);
        finish(null, {
          outcome, traffic, plan, layerEval,
          timing: { offlineMs: tOnline - t0, onlineMs: end - tOnline, totalMs: end - t0 },
          // Layer wall time from the server's labels to the reply, all workers together.
          andPerSecOnline: evalMs > 0 ? ands / (evalMs / 1e3) : null,
          evalWorkers: workers.length,
          andPerSecPerWorker: workerMs > 0 ? workerAnds / (workerMs / 1e3) : null,
          wasmMemoryBytes: wasmBytes(),
          evalWorkersMemoryBytes: evalMemory.reduce((a, b) => a + b, 0),
          evalJobs, // {ms, andGates} per chunk, in completion order
        });
      }
    };
  });
}

/// AND gates/s of garbled evaluation in this worker (software AES, one thread).
function bench({ relus = 4096, k = 32, reps = 3 }) {
  const b = new GcBench(relus, k);
  try {
    const w = performance.now();
    b.evaluate(); // the first call may run in V8's baseline tier
    const firstSeconds = (performance.now() - w) / 1e3;
    const t = performance.now();
    for (let i = 0; i < reps; i++) b.evaluate();
    const s = (performance.now() - t) / 1e3;
    return {
      relus, k, andGates: b.and_gates() * reps, seconds: s, andPerSec: (b.and_gates() * reps) / s,
      firstCallAndPerSec: b.and_gates() / firstSeconds, wasmMemoryBytes: wasmBytes(),
    };
  } finally {
    b.free();
  }
}
