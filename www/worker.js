// The whole private inference runs here, in one dedicated worker, so the page never freezes.
// The worker owns the WebSocket; the wasm module (www/pkg, built by scripts/build-wasm.sh) owns the
// protocol. Messages to the page: {type: 'ready'|'progress'|'done'|'bench'|'error', id, ...}.
import init, { PrivateInference, GcBench } from './pkg/wasm_client.js';

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
function classify({ id, image, wsUrl }) {
  return new Promise((resolve, reject) => {
    let pi;
    try {
      pi = new PrivateInference(new Uint8Array(image));
    } catch (err) {
      reject(err);
      return;
    }
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
      try { ws.close(); } catch (_) { /* already closed */ }
      try { pi.free(); } catch (_) { /* freed */ }
      if (err) reject(err); else resolve(value);
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
      const before = performance.now();
      try {
        step = pi.handle(new Uint8Array(ev.data));
      } catch (err) {
        finish(err);
        return;
      }
      const after = performance.now();
      try {
        for (const f of step.frames) ws.send(f);
      } catch (err) {
        finish(err);
        return;
      }
      if (step.event === 'labels') layerEval.push({ stage: step.stage, ms: after - before });
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
        finish(null, {
          outcome, traffic, plan, layerEval,
          timing: { offlineMs: tOnline - t0, onlineMs: end - tOnline, totalMs: end - t0 },
          andPerSecOnline: evalMs > 0 ? ands / (evalMs / 1e3) : null,
          wasmMemoryBytes: wasmBytes(),
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
