// One garbled-evaluation worker: its own wasm instance holds the chunks the session worker gives
// it offline (`store`) and evaluates them when the server's labels arrive (`evaluate`).
// Messages in:  {type: 'store', session, id, job} | {type: 'evaluate', session, id, labels} |
//               {type: 'drop', session} | {type: 'ping'}
// Messages out: {type: 'result', session, id, shares, ms, andGates, wasmBytes} | {type: 'ready'} |
//               {type: 'error', session, id, message}
import init, { EvalChunk, GcBench } from './pkg/wasm_client.js';

let wasm = null;
const booted = init().then((w) => {
  wasm = w;
  // Get the evaluation code into V8's optimising tier before the online phase (see worker.js).
  try {
    const b = new GcBench(1024, 32);
    for (let i = 0; i < 4; i++) b.evaluate();
    b.free();
  } catch (_) { /* only an optimisation */ }
});

const chunks = new Map(); // `${session}:${id}` -> EvalChunk

self.onmessage = async (e) => {
  const m = e.data;
  const key = `${m.session}:${m.id}`;
  try {
    await booted;
    if (m.type === 'ping') {
      self.postMessage({ type: 'ready' });
    } else if (m.type === 'store') {
      chunks.set(key, new EvalChunk(m.job));
    } else if (m.type === 'evaluate') {
      const chunk = chunks.get(key);
      if (!chunk) throw new Error(`evaluation job ${m.id} was never stored`);
      chunks.delete(key);
      const t = performance.now();
      const shares = chunk.evaluate(m.labels);
      const ms = performance.now() - t;
      const andGates = chunk.andGates();
      chunk.free(); // material used once
      self.postMessage({ type: 'result', session: m.session, id: m.id, shares, ms, andGates,
        wasmBytes: wasm.memory.buffer.byteLength }, [shares.buffer]);
    } else if (m.type === 'drop') {
      for (const [k, c] of chunks) {
        if (k.startsWith(`${m.session}:`)) { c.free(); chunks.delete(k); }
      }
    }
  } catch (err) {
    self.postMessage({ type: 'error', session: m.session, id: m.id,
      message: String((err && err.message) || err) });
  }
};
