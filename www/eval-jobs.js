// One evaluation message, as every evaluation worker handles it (eval-worker.js, and worker.js's
// in-place pool when workers cannot start): `store` keeps a chunk until its labels arrive,
// `evaluate` evaluates it on the server's labels and frees it (material used once), `drop` frees
// what a session left behind.
//
// A chunk stored with its server `frame` (transferred here untouched) keeps the frame until its
// labels arrive: its tables and output decoding are copied into this worker's wasm memory only to
// be evaluated, and freed right after. A wasm memory never shrinks, so holding every stored chunk
// there made the evaluation workers' memory the size of all the garbled tables of an inference
// (233 MB at 86K ReLUs); now it is the size of one chunk. The socket's frame can be freed only by
// the garbage collector; the evaluation workers are therefore replaced by fresh ones once their
// sessions have ended (worker.js, `evalPool`), which frees every frame at once. Copying the two
// spans out of each frame instead (each freed at once after evaluation) doubled the tables while
// the frames waited for the collector: the tab peaked at 386–404 MB resident at 86K ReLUs, 359–360
// MB without the copies. A chunk without a frame (tables inside the job) is parsed at once.
// Returns the reply to post ({type: 'result'|'error', ...}) or null.
import { EvalChunk } from './wasm.js';

/// Wipes a buffer that held the client's OT labels (the JavaScript copy; wasm wipes its own).
const wipe = (bytes) => { if (bytes && bytes.buffer) new Uint8Array(bytes.buffer).fill(0); };

export function runEvalMessage(chunks, m, wasmBytes) {
  const key = `${m.session}:${m.id}`;
  try {
    if (m.type === 'store') {
      if (m.frame) {
        chunks.set(key, { job: m.job, frame: m.frame, tables: m.tables, decoding: m.decoding });
      } else {
        const chunk = new EvalChunk(m.job);
        wipe(m.job);
        chunks.set(key, { chunk });
      }
    } else if (m.type === 'evaluate') {
      const stored = chunks.get(key);
      if (!stored) throw new Error(`evaluation job ${m.id} was never stored`);
      chunks.delete(key);
      const t = performance.now();
      let chunk = stored.chunk;
      if (!chunk) {
        const span = ([start, end]) => new Uint8Array(stored.frame, start, end - start);
        try {
          chunk = EvalChunk.withBulk(stored.job, span(stored.tables), span(stored.decoding));
        } finally {
          wipe(stored.job);
        }
      }
      try {
        const shares = chunk.evaluate(m.labels);
        const ms = performance.now() - t;
        return { type: 'result', session: m.session, id: m.id, shares, ms, andGates: chunk.andGates(),
          wasmBytes: wasmBytes() };
      } finally {
        chunk.free();
      }
    } else if (m.type === 'drop') {
      for (const [k, c] of chunks) {
        if (k.startsWith(`${m.session}:`)) {
          if (c.chunk) c.chunk.free(); else wipe(c.job);
          chunks.delete(k);
        }
      }
    }
  } catch (err) {
    return { type: 'error', session: m.session, id: m.id, message: String((err && err.message) || err) };
  }
  return null;
}
