// One garbled-evaluation worker: its own wasm instance holds the chunks the session worker gives
// it offline (`store`) and evaluates them when the server's labels arrive (`evaluate`).
// Messages in:  {type: 'store', session, id, job, [frame, tables, decoding]} | {type: 'evaluate', session, id, labels} |
//               {type: 'drop', session} | {type: 'ping'}
// Messages out: {type: 'result', session, id, shares, ms, andGates, wasmBytes} | {type: 'ready'} |
//               {type: 'error', session, id, message}
import init, { GcBench } from './pkg/wasm_client.js';
import { runEvalMessage } from './eval-jobs.js';

let wasm = null;
const booted = init().then((w) => {
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
  const reply = runEvalMessage(chunks, m, () => wasm.memory.buffer.byteLength);
  if (reply) self.postMessage(reply, reply.shares ? [reply.shares.buffer] : []);
};
