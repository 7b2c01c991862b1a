// One evaluation message, as every evaluation worker handles it (eval-worker.js, and worker.js's
// in-place pool when workers cannot start): `store` keeps a chunk until its labels arrive,
// `evaluate` evaluates it on the server's labels and frees it (material used once), `drop` frees
// what a session left behind.
//
// A chunk stored with its server `frame` (the tables and output decoding cut from it, transferred
// here untouched) is kept as copies of those two spans until its labels arrive: they are copied
// into this worker's wasm memory only to be evaluated, and freed right after. A wasm memory never
// shrinks, so holding every stored chunk there made the evaluation workers' memory the size of all
// the garbled tables of an inference (233 MB at 86K ReLUs); now it is the size of one chunk. The
// copies (not the frame) are kept because a buffer this worker made can be freed at once
// (`release`), while the socket's frame is freed only by the garbage collector: holding the frames
// left an inference's tables (~150 MB at 86K) as garbage just when the next prepared session's
// arrived, and the tab peaked with both (bench, cnet1-c14: 559–597 → 496–525 MB resident, 435 →
// 372 MB private). A chunk without a frame (tables inside the job) is parsed at once.
// Returns the reply to post ({type: 'result'|'error', ...}) or null.
import { EvalChunk } from './wasm.js';

/// Wipes a buffer that held the client's OT labels (the JavaScript copy; wasm wipes its own).
const wipe = (bytes) => { if (bytes && bytes.buffer) new Uint8Array(bytes.buffer).fill(0); };

/// Frees a buffer made in this worker (a copy, or a frame copied out of wasm memory) at once, not
/// when the garbage collector runs (ArrayBuffer.prototype.transfer: Chromium 114+, Firefox 122+,
/// Safari 17.4+; elsewhere the collector frees it as before). Not for a buffer that came from a socket or another worker:
/// the browser keeps its own reference to those, so detaching frees nothing and only hides their
/// size from the collector (measured: the peak grew by about 80 MB).
export const release = (buffer) => {
  if (buffer && buffer.transfer && !buffer.detached) buffer.transfer(0);
};

export function runEvalMessage(chunks, m, wasmBytes) {
  const key = `${m.session}:${m.id}`;
  try {
    if (m.type === 'store') {
      if (m.frame) {
        // Copies this worker owns (see `release`); the socket's frame is dropped now.
        const [t0, t1] = m.tables;
        const [d0, d1] = m.decoding;
        chunks.set(key, { job: m.job, tables: m.frame.slice(t0, t1), decoding: m.frame.slice(d0, d1) });
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
        try {
          chunk = EvalChunk.withBulk(stored.job, new Uint8Array(stored.tables), new Uint8Array(stored.decoding));
        } finally {
          wipe(stored.job);
          release(stored.tables);
          release(stored.decoding);
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
          if (c.chunk) c.chunk.free(); else { wipe(c.job); release(c.tables); release(c.decoding); }
          chunks.delete(k);
        }
      }
    }
  } catch (err) {
    return { type: 'error', session: m.session, id: m.id, message: String((err && err.message) || err) };
  }
  return null;
}
