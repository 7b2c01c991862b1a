// The private inference runs here, in one dedicated worker, so the page never freezes. The worker
// owns the WebSockets; the wasm module (www/pkg, built by scripts/build-wasm.sh) owns the protocol.
// Garbled evaluation is delegated to a pool of evaluation workers (eval-worker.js, one wasm
// instance each, as many as navigator.hardwareConcurrency): every streamed chunk of garbled tables
// goes to one of them offline — the frame's buffer is transferred to it, so the tables never pass
// through this worker's wasm memory — and online each gets the server's labels for its chunks
// (when they cannot start, this worker evaluates the same jobs itself: localPool).
//
// A session is prepared before the image is known (the offline phase does not depend on it) and
// classifies one image later, so the user's click costs only the online phase.
//
// Messages in:  {type: 'prepare', id, wsUrl, evalWorkers} | {type: 'classify', id, handle, image
//               | normalised} | {type: 'release', handle} | {type: 'cancel', request} (a 'prepare'
//               under way) | {type: 'bench', id, ...} | {type: 'ping', id}
// Messages out: {type: 'progress', id, ...} | {type: 'prepared', id, handle, ...} | {type: 'done',
//               id, ...} | {type: 'lost', handle, code, message} (a prepared session the server
//               closed: expired, restarted) | {type: 'bench', id, ...} | {type: 'ready', id} |
//               {type: 'error', id, code, message}
import { loadWasm, PrivateInference, GcBench, wasmBuild } from './wasm.js';
import { runEvalMessage } from './eval-jobs.js';

let wasm = null;
async function boot() {
  if (!wasm) {
    wasm = await loadWasm();
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

/// The evaluation workers: shared by the sessions that run at the same time, and replaced by fresh
/// ones once every session that used them has ended. The socket's frames (the garbled tables) that
/// a worker has copied from cannot be freed from JavaScript: they wait for the worker's garbage
/// collector, which at 86K ReLUs left up to a whole inference's tables uncollected when the next
/// prepared session's arrived. Ending the workers frees all of it at once.
let pool = null;
/// `size`: how many workers (default: one per hardware thread, at most 8; benchmarks vary it).
async function evalPool(size) {
  const n = Math.max(1, Math.min(8, size || navigator.hardwareConcurrency || 2));
  if (pool && pool.busy > 0) return pool; // sessions still use it (whatever size was asked)
  if (pool && pool.workers.length === n && !pool.used) return pool;
  if (pool) pool.workers.forEach((w) => w.terminate());
  pool = null;
  const workers = Array.from({ length: n }, () => new Worker(new URL('./eval-worker.js', import.meta.url), { type: 'module' }));
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
  pool = { workers, listeners, busy: 0, used: false };
  return pool;
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
  return { workers: [worker], listeners, busy: 0 };
}

const post = (msg, transfer = []) => self.postMessage(msg, transfer);

/// Frees a buffer made in this worker (a frame copied out of wasm memory) at once, not when the
/// garbage collector runs (ArrayBuffer.prototype.transfer: Chromium 114+, Firefox 122+, Safari
/// 17.4+; elsewhere the collector frees it as before). Not for a buffer that came from a socket or
/// another worker: the browser keeps its own reference to those, so detaching frees nothing and
/// only hides their size from the collector (measured: the peak grew by about 80 MB).
const release = (buffer) => {
  if (buffer && buffer.transfer && !buffer.detached) buffer.transfer(0);
};

/// The page's benchmark (garbled ReLUs/s and AND gates/s of evaluation, one thread) in a fresh
/// evaluation worker, terminated after: its tables (≈ 6 MB at 4,096 ReLUs, k = 32) would otherwise
/// stay in this worker's wasm memory for good (a wasm memory never shrinks).
function benchInFreshWorker({ relus = 4096, k = 32, reps = 3 }) {
  const w = new Worker(new URL('./eval-worker.js', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => {
      if (e.data.type === 'ready') return;
      w.terminate();
      if (e.data.type === 'bench') resolve(e.data.result);
      else reject(new Error(e.data.message || 'the benchmark worker failed'));
    };
    w.onerror = (e) => {
      w.terminate();
      reject(new Error(e.message || 'the benchmark worker failed to load'));
    };
    w.postMessage({ type: 'bench', relus, k, reps });
  });
}

const wasmBytes = () => (wasm ? wasm.memory.buffer.byteLength : 0);

/// An error the page can act on: `code` is the protocol's error code (`expired`, `version`,
/// `refused`…) or one of this worker's (`image`, `lost`, `unreachable`, `closed`).
class SessionError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/// Prepared (and preparing) sessions by handle.
const sessions = new Map();
let nextSession = 0;

self.onmessage = async (e) => {
  const msg = e.data;
  try {
    await boot();
    if (msg.type === 'prepare') {
      const s = new Session(msg.id, msg.wsUrl);
      sessions.set(s.handle, s);
      const info = await s.prepare(msg.evalWorkers);
      post({ type: 'prepared', id: msg.id, handle: s.handle, ...info });
    } else if (msg.type === 'classify') {
      const s = sessions.get(msg.handle);
      if (!s) throw new SessionError('closed', 'this prepared session was closed; prepare a new one');
      post({ type: 'done', id: msg.id, ...(await s.classify(msg.id, msg)) });
    } else if (msg.type === 'release') {
      const s = sessions.get(msg.handle);
      if (s) s.close(new SessionError('closed', 'released'));
    } else if (msg.type === 'cancel') {
      // A preparation the page no longer wants (the user picked another model).
      for (const s of sessions.values()) {
        if (s.requestId === msg.request) s.close(new SessionError('cancelled', 'preparation cancelled'));
      }
    } else if (msg.type === 'bench') {
      post({ type: 'bench', id: msg.id, ...(await benchInFreshWorker(msg)) });
    } else if (msg.type === 'ping') {
      post({ type: 'ready', id: msg.id });
    }
  } catch (err) {
    post({ type: 'error', id: msg.id, code: err.code || 'failed', message: String((err && err.message) || err) });
  }
};

/// One private inference: `prepare` runs the offline phase, `classify` the online phase.
class Session {
  constructor(requestId, wsUrl) {
    this.handle = ++nextSession;
    this.requestId = requestId; // progress messages go to the current request
    this.wsUrl = wsUrl;
    this.pi = null;
    this.ws = null;
    this.plan = null;
    this.phase = 'connecting';
    this.pending = null; // {resolve, reject, until: 'ready' | 'done'}
    this.failure = null;
    this.evalJobs = []; // {ms, andGates} of every evaluated chunk
    this.evalMemory = []; // largest wasm memory seen per evaluation worker
    this.layerEval = []; // {stage, ms} of each online ReLU layer (evaluation + masking)
    this.evaluating = null; // {stage, started}: the layer whose labels went to the workers
    this.t0 = performance.now();
    this.marks = new Map(); // event -> when its last frame was handled (ms after t0)
    this.tReady = null;
    this.tClick = null;
    this.onResult = (m) => this.workerResult(m);
  }

  async prepare(evalWorkers) {
    let workers;
    try {
      workers = await evalPool(evalWorkers);
    } catch (err) {
      // Without evaluation workers the session evaluates here, in this worker.
      console.warn('evaluation workers unavailable, evaluating in the session worker:', err);
      workers = localPool();
    }
    if (this.failure) throw this.failure; // cancelled while the workers started
    this.pool = workers;
    this.pool.busy++;
    this.pool.used = true;
    this.pool.listeners.add(this.onResult);
    this.pi = PrivateInference.prepare();
    const ready = this.wait('ready');
    this.open();
    await ready;
    this.tReady = performance.now();
    return { plan: this.plan, traffic: this.pi.traffic(), timing: { offlineMs: this.tReady - this.t0 },
      phases: this.phases() };
  }

  /// The offline phase, step by step: each step ends when its last frame was handled.
  phases() {
    const steps = [['connect', 'connected'], ['plan', 'plan'], ['he', 'he'], ['ot', 'ot'], ['garbled', 'garbled']];
    const out = [];
    let from = 0;
    for (const [name, event] of steps) {
      const at = this.marks.get(event);
      if (at === undefined) continue;
      out.push({ name, ms: at - from });
      from = at;
    }
    return out;
  }

  async classify(requestId, { image, normalised }) {
    if (this.failure) throw this.failure;
    if (this.phase !== 'ready') throw new SessionError('busy', 'this session is not prepared yet or already classified');
    this.requestId = requestId;
    let frames;
    try {
      frames = normalised ? this.pi.setNormalised(normalised) : this.pi.setImage(new Uint8Array(image));
    } catch (err) {
      // The session stays prepared: another image can be tried.
      throw new SessionError('image', String((err && err.message) || err));
    }
    this.tClick = performance.now();
    this.phase = 'online';
    const done = this.wait('done');
    for (const f of frames) this.send(f);
    await done;
    const result = this.result(performance.now());
    // Finished: release the socket, the wasm state and the evaluation workers now (see evalPool).
    this.close();
    return result;
  }

  wait(until) {
    return new Promise((resolve, reject) => { this.pending = { resolve, reject, until }; });
  }

  settle(until) {
    if (this.pending && this.pending.until === until) {
      const p = this.pending;
      this.pending = null;
      p.resolve();
    }
  }

  /// Ends the session: frees its chunks and its wasm state, and tells whoever waits.
  close(err) {
    if (this.phase === 'closed') return;
    const wasReady = this.phase === 'ready' && !this.pending;
    this.phase = 'closed';
    sessions.delete(this.handle);
    if (this.pool) {
      this.pool.busy--;
      this.pool.listeners.delete(this.onResult);
      for (const w of this.pool.workers) w.postMessage({ type: 'drop', session: this.handle });
    }
    try { this.ws.close(); } catch (_) { /* already closed */ }
    try { this.pi.free(); } catch (_) { /* freed */ }
    if (err) {
      this.failure = err;
      if (this.pending) {
        this.pending.reject(err);
        this.pending = null;
      } else if (wasReady && err.code !== 'closed') {
        // Nobody waits: tell the page its prepared session is gone (and why).
        post({ type: 'lost', handle: this.handle, code: err.code, message: err.message });
      }
    }
  }

  open() {
    const ws = new WebSocket(this.wsUrl);
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    let opened = false;
    ws.onopen = () => {
      opened = true;
      try {
        for (const f of this.pi.start()) this.send(f);
      } catch (err) {
        this.close(err);
        return;
      }
      this.marks.set('connected', performance.now() - this.t0);
      this.progress({ phase: 'offline', event: 'connected', fraction: 0.01 });
    };
    ws.onerror = () => {
      this.close(opened ? new SessionError('lost', 'the connection to the server was lost')
        : new SessionError('unreachable', 'cannot open a session: the server is unreachable or refused it'));
    };
    ws.onclose = (ev) => {
      // A class or top-k model's server is done after its last frame (the labels of the
      // garbled arg-max) and closes normally while this side still evaluates that layer: not a
      // failure, the jobs finish the session. Any other close before the end is.
      const allSent = this.plan && this.framesReceived >= this.plan.expected_frames;
      if (ev.code === 1000 && allSent && this.phase !== 'done') return;
      this.close(new SessionError(ev.code === 4008 ? 'timeout' : 'lost',
        `the server closed the session (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''})`));
    };
    ws.onmessage = (ev) => this.frame(ev.data);
  }

  /// Sends one frame (a copy out of wasm memory) and frees it at once (`release`): the socket
  /// keeps its own copy, and the OT matrix alone is 32 MB at 86K ReLUs.
  send(frame) {
    this.ws.send(frame);
    release(frame.buffer);
  }

  /// One server frame. Garbled chunks go to their worker with the frame's own buffer, and each
  /// chunk's online labels are cut from their frame for its worker: the session sees only the
  /// heads (and label corrections), so neither bulk enters its wasm memory.
  frame(data) {
    if (this.phase === 'closed') return;
    if (typeof data === 'string') {
      this.close(new SessionError('refused', 'server: ' + data));
      return;
    }
    const bytes = new Uint8Array(data);
    let step;
    let layout = null;
    let labelsHead = null;
    try {
      layout = PrivateInference.garbledLayout(bytes.subarray(0, 64), bytes.length);
      labelsHead = layout ? null : PrivateInference.labelsHead(bytes.subarray(0, 1));
      if (layout) {
        step = this.pi.handleGarbledHead(bytes.subarray(0, 64),
          bytes.subarray(layout.corrections[0], layout.corrections[1]), bytes.length);
      } else if (labelsHead) {
        step = this.pi.handleLabelsHead(bytes.subarray(0, labelsHead), bytes.length);
      } else {
        step = this.pi.handle(bytes);
      }
    } catch (err) {
      // Only now: the call copies the whole frame into wasm memory (a server's `Error` is small;
      // a labels frame is megabytes, and wasm memory never shrinks).
      const code = PrivateInference.errorCode(bytes);
      this.close(new SessionError(code || 'protocol', String((err && err.message) || err)));
      return;
    }
    const after = performance.now();
    try {
      for (const f of step.frames) this.send(f);
      if (step.jobs && step.jobs.length) {
        this.dispatch(step.jobs, step.stage, layout || labelsHead ? data : null, layout);
      }
    } catch (err) {
      this.close(err);
      return;
    }
    if (step.event === 'plan') this.plan = this.pi.plan();
    this.framesReceived = step.frames_received;
    if (step.phase !== 'online' && step.phase !== 'done') this.marks.set(step.event, after - this.t0);
    this.phase = step.phase === 'ready' ? 'ready' : this.phase;
    const fraction = this.plan ? Math.min(1, step.frames_received / this.plan.expected_frames) : 0.02;
    this.progress({
      phase: step.phase, event: step.event, stage: step.stage, fraction,
      traffic: this.pi.traffic(), plan: step.event === 'plan' ? this.plan : undefined,
      elapsedMs: after - (this.tClick ?? this.t0),
    });
    if (step.phase === 'ready') this.settle('ready');
    if (step.done) {
      this.phase = 'done';
      this.settle('done');
    }
  }

  progress(p) {
    post({ type: 'progress', id: this.requestId, ...p });
  }

  /// Hands a step's jobs to the workers: chunk `id` always lives on worker `id mod n`. A detached
  /// chunk's frame buffer is transferred with its job (no copy); an evaluation job without labels
  /// gets a copy of its span of the labels frame (`at`).
  dispatch(jobs, stage, frame, layout) {
    const workers = this.pool.workers;
    for (const job of jobs) {
      const w = workers[job.id % workers.length];
      if (job.kind === 'store') {
        const m = { type: 'store', session: this.handle, id: job.id, job: job.job };
        const transfer = [job.job.buffer];
        if (frame) {
          Object.assign(m, { frame, tables: layout.tables, decoding: layout.decoding });
          transfer.push(frame);
          frame = null; // one chunk per frame
        }
        w.postMessage(m, transfer);
      } else {
        if (this.evaluating === null) this.evaluating = { stage, started: performance.now() };
        const labels = job.labels || new Uint8Array(frame, job.at[0], job.at[1] - job.at[0]).slice();
        w.postMessage({ type: 'evaluate', session: this.handle, id: job.id, labels },
          [labels.buffer]);
      }
    }
  }

  /// A worker's shares for one chunk; the layer's reply goes out with its last chunk.
  workerResult(m) {
    if (this.phase === 'closed' || (m.session !== undefined && m.session !== this.handle)) return;
    if (m.type === 'error') {
      this.close(new SessionError('worker', `evaluation worker: ${m.message}`));
      return;
    }
    if (m.type !== 'result') return;
    this.evalJobs.push({ ms: m.ms, andGates: m.andGates });
    const wi = m.id % this.pool.workers.length;
    this.evalMemory[wi] = Math.max(this.evalMemory[wi] || 0, m.wasmBytes || 0);
    let frames;
    try {
      frames = this.pi.complete(m.id, m.shares);
      for (const f of frames) this.send(f);
    } catch (err) {
      this.close(err);
      return;
    }
    // A layer is done when its reply goes out, or (the garbled arg-max of a class or top-k
    // model) when the session finishes with it: then no frame follows.
    const done = this.pi.phase() === 'done';
    if ((frames.length > 0 || done) && this.evaluating !== null) {
      this.layerEval.push({ stage: this.evaluating.stage, ms: performance.now() - this.evaluating.started });
      this.evaluating = null;
    }
    if (done) {
      this.phase = 'done';
      this.settle('done');
    }
  }

  result(end) {
    const outcome = this.pi.outcome();
    const traffic = this.pi.traffic();
    const plan = this.plan;
    let ands = 0;
    let evalMs = 0;
    for (const l of this.layerEval) {
      const p = plan && plan.layers.find((x) => x.stage === l.stage);
      if (p) { ands += p.and_gates; evalMs += l.ms; }
    }
    // Per worker: AND gates over the time a worker spent on its chunks.
    const workerAnds = this.evalJobs.reduce((a, j) => a + j.andGates, 0);
    const workerMs = this.evalJobs.reduce((a, j) => a + j.ms, 0);
    const value = {
      outcome, traffic, plan, layerEval: this.layerEval, phases: this.phases(),
      timing: {
        offlineMs: this.tReady - this.t0, onlineMs: end - this.tClick,
        waitedMs: this.tClick - this.tReady, totalMs: end - this.t0,
      },
      // Layer wall time from the server's labels to the reply, all workers together.
      andPerSecOnline: evalMs > 0 ? ands / (evalMs / 1e3) : null,
      evalWorkers: this.pool.workers.length,
      andPerSecPerWorker: workerMs > 0 ? workerAnds / (workerMs / 1e3) : null,
      wasmMemoryBytes: wasmBytes(),
      wasmBuild,
      evalWorkersMemoryBytes: this.evalMemory.reduce((a, b) => a + b, 0),
      evalJobs: this.evalJobs, // {ms, andGates} per chunk, in completion order
    };
    this.close(null);
    return value;
  }
}

