// One evaluation message, as every evaluation worker handles it (eval-worker.js, and worker.js's
// in-place pool when workers cannot start): `store` keeps a chunk's garbled tables (an EvalChunk of
// this worker's wasm instance; with `frame`, the tables and decoding bits are cut from the server's
// frame, transferred here untouched), `evaluate` evaluates it on the server's labels and frees it
// (material used once), `drop` frees what a session left behind.
// Returns the reply to post ({type: 'result'|'error', ...}) or null.
import { EvalChunk } from './pkg/wasm_client.js';

export function runEvalMessage(chunks, m, wasmBytes) {
  const key = `${m.session}:${m.id}`;
  try {
    if (m.type === 'store') {
      const span = ([start, end]) => new Uint8Array(m.frame, start, end - start);
      chunks.set(key, m.frame ? EvalChunk.withBulk(m.job, span(m.tables), span(m.decoding))
        : new EvalChunk(m.job));
    } else if (m.type === 'evaluate') {
      const chunk = chunks.get(key);
      if (!chunk) throw new Error(`evaluation job ${m.id} was never stored`);
      chunks.delete(key);
      const t = performance.now();
      const shares = chunk.evaluate(m.labels);
      const ms = performance.now() - t;
      const andGates = chunk.andGates();
      chunk.free();
      return { type: 'result', session: m.session, id: m.id, shares, ms, andGates,
        wasmBytes: wasmBytes() };
    } else if (m.type === 'drop') {
      for (const [k, c] of chunks) {
        if (k.startsWith(`${m.session}:`)) { c.free(); chunks.delete(k); }
      }
    }
  } catch (err) {
    return { type: 'error', session: m.session, id: m.id, message: String((err && err.message) || err) };
  }
  return null;
}
