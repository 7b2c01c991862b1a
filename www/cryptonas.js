// Private image classification from a web page: the page's only interface to the protocol.
//
//   import { PrivateClassifier } from './cryptonas.js';
//   const c = await PrivateClassifier.connect({ model: 'cnet1-c4' });   // server: this page's origin
//   await c.prepare();                 // the offline phase, before the image is known (seconds)
//   const r = await c.classify(blob);  // the online phase only; r.label, r.top, r.timings, r.bytes
//   c.close();
//
// The protocol runs in a dedicated worker (worker.js, with its pool of evaluation workers), so
// the page never freezes. The image never leaves the browser in the clear: the server sees a
// masked image and learns nothing about it; the browser learns what the model's output policy
// reveals (`model.reveals`): the logits, the top k classes or the class only, the last two
// computed inside the garbled circuit.
// After each classification the next session is prepared in the background (`prepareAhead`).

/// Base class of every error this module throws; `code` says what happened.
export class CryptoNasError extends Error {
  constructor(code, message) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}
/// The server's prepared session expired (or the server restarted) before the image came.
export class SessionExpired extends CryptoNasError {}
/// The server refused: it is unreachable, busy (limits, rate limit), or does not host the model.
export class ServerRefused extends CryptoNasError {}
/// The server speaks another protocol version: reload the page (or update the package).
export class ProtocolVersion extends CryptoNasError {}
/// The image could not be used (not an image, undecodable, wrong tensor size); the prepared
/// session is kept, so another image can be tried.
export class ImageRejected extends CryptoNasError {}
/// The classifier was closed (or the model switched) while this call waited.
export class Cancelled extends CryptoNasError {}
/// A protocol failure: a malformed frame, a failed check, a worker that failed.
export class ProtocolFailure extends CryptoNasError {}

function typed(code, message) {
  switch (code) {
    case 'expired': case 'timeout': case 'lost': case 'closed':
      return new SessionExpired(code, message);
    case 'unreachable': case 'refused':
      return new ServerRefused(code, message);
    case 'version':
      return new ProtocolVersion(code, `${message} (reload the page)`);
    case 'image':
      return new ImageRejected(code, message);
    case 'cancelled':
      return new Cancelled(code, message);
    default:
      return new ProtocolFailure(code, message);
  }
}

/// The session worker, shared by every classifier of the page (its evaluation workers too).
const rpc = {
  worker: null,
  nextId: 1,
  pending: new Map(), // id -> {resolve, reject, onProgress}
  owners: new Map(), // session handle -> classifier (for 'lost')
  start() {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    w.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'lost') {
        const owner = this.owners.get(m.handle);
        if (owner) owner._lost(m.handle, typed(m.code, m.message));
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') { if (p.onProgress) p.onProgress(m); return; }
      this.pending.delete(m.id);
      if (m.type === 'error') p.reject(typed(m.code, m.message)); else p.resolve(m);
    };
    w.onerror = (e) => {
      const err = new ProtocolFailure('worker', `the worker failed: ${e.message || 'could not load the WebAssembly client'}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker = w;
    return w;
  },
  call(msg, onProgress, transfer = []) {
    return this.request(msg, onProgress, transfer).done;
  },
  /// A call and its id (to cancel it).
  request(msg, onProgress, transfer = []) {
    const w = this.start();
    const id = this.nextId++;
    const done = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      w.postMessage({ ...msg, id }, transfer);
    });
    return { id, done };
  },
  post(msg) {
    if (this.worker) this.worker.postMessage(msg);
  },
};

/// Whether this browser can run the client: WebAssembly with SIMD (Chrome/Edge 91+, Firefox 89+,
/// Safari 16.4+; the garbled-circuit AES is bitsliced on 128-bit vectors) and module workers.
export function supported() {
  // A module whose one function uses i8x16.splat and i8x16.popcnt (wasm-feature-detect's probe).
  const simd = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10,
    10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  return typeof WebAssembly === 'object' && typeof Worker === 'function' && WebAssembly.validate(simd);
}

/// The models a server hosts: `[{ name, relus, accuracy, input: [c, h, w], classes, description,
/// output, reveals }]` (`output`: `"logits"`, `"class"` or `"top-N"`; `reveals`: the same in words).
export async function listModels(server) {
  const base = new URL(server || location.href, location.href);
  let r;
  try {
    r = await fetch(new URL('/api/models', base));
  } catch (err) {
    throw new ServerRefused('unreachable', `cannot reach the server at ${base.origin}: ${err.message}`);
  }
  if (!r.ok) throw new ServerRefused('refused', `the server answers HTTP ${r.status} for its model list`);
  return r.json();
}

function softmax(v) {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/// Private classification with one model of one server. Events: `progress` (detail: the
/// worker's progress: phase, event, stage, fraction, traffic), `ready` (detail: the offline
/// phase's cost), `lost` (detail: the error; the next `classify` prepares again).
export class PrivateClassifier extends EventTarget {
  /// Connects to `server` (default: this page's origin) for `model`; `workers` evaluation
  /// workers (default: one per hardware thread, at most 8). Nothing is prepared yet.
  static async connect({ server, model, workers, prepareAhead = true } = {}) {
    if (!supported()) {
      throw new CryptoNasError('unsupported', 'this browser cannot run private inference: it needs WebAssembly with SIMD ' +
        '(Chrome or Edge 91+, Firefox 89+, Safari 16.4+) and module workers');
    }
    const models = await listModels(server);
    const info = models.find((m) => m.name === model);
    if (!info) {
      throw new ServerRefused('refused', `the server does not host model "${model}" (it hosts ${models.map((m) => m.name).join(', ') || 'none'})`);
    }
    return new PrivateClassifier(server, info, workers, prepareAhead);
  }

  constructor(server, info, workers, prepareAhead) {
    super();
    const base = new URL(server || location.href, location.href);
    const ws = base.protocol === 'https:' ? 'wss:' : 'ws:';
    this.wsUrl = `${ws}//${base.host}/api/session/${encodeURIComponent(info.name)}`;
    /// The model: `{ name, relus, accuracy, input, classes, description, output, reveals }`.
    this.model = info;
    this.workers = workers;
    this.prepareAhead = prepareAhead;
    this.prepared = null; // {handle, info}
    this.preparing = null; // Promise of the preparation under way
    this.lostReason = null; // why the last prepared session was lost
    this.closed = false;
  }

  /// Whether a prepared session waits for an image (a click costs only the online phase).
  get ready() {
    return this.prepared !== null;
  }

  /// Runs the offline phase now (idempotent: returns the preparation under way or done).
  /// Resolves with `{ offlineMs, bytes, plan, phases: [{ name, ms }] }` (`connect`, `plan`,
  /// `he`, `ot`, `garbled`: each step until its last frame was handled).
  prepare({ onProgress } = {}) {
    if (this.closed) return Promise.reject(new Cancelled('cancelled', 'the classifier is closed'));
    if (this.prepared) return Promise.resolve(this.prepared.info);
    if (!this.preparing) {
      const req = rpc.request({ type: 'prepare', wsUrl: this.wsUrl, evalWorkers: this.workers },
        this.progressTo(onProgress));
      this.preparingId = req.id;
      this.preparing = req.done
        .then((m) => {
          const info = { offlineMs: m.timing.offlineMs, bytes: m.traffic, plan: m.plan, phases: m.phases };
          if (this.closed) {
            rpc.post({ type: 'release', handle: m.handle });
            throw new Cancelled('cancelled', 'the classifier was closed while preparing');
          }
          rpc.owners.set(m.handle, this);
          this.prepared = { handle: m.handle, info };
          this.lostReason = null;
          this.dispatchEvent(new CustomEvent('ready', { detail: info }));
          return info;
        })
        .finally(() => { this.preparing = null; this.preparingId = null; });
    }
    return this.preparing;
  }

  /// Classifies `image`: encoded bytes (Blob, File, ArrayBuffer, Uint8Array: PNG or JPEG, decoded
  /// and resized in the worker exactly as the native client does), pixels (ImageBitmap,
  /// ImageData, a canvas: drawn at the model's input size), or an already normalised CHW
  /// Float32Array. Prepares first if nothing is prepared (`reprepared` then says why).
  /// Resolves with `{ class, label, reveals, top: [{ index, label, p }], logits, timings: {
  /// offlineMs, onlineMs, callMs }, bytes, layers, reprepared, ... }`. `p` (softmax
  /// probability) and `logits` only when the model reveals its logits; otherwise `top` holds the
  /// revealed classes, most likely first, with `p: null`, and `logits` is empty.
  async classify(image, { onProgress } = {}) {
    if (this.closed) throw new Cancelled('cancelled', 'the classifier is closed');
    const called = performance.now();
    const input = await toInput(image, this.model.input);
    let reprepared = null;
    for (let attempt = 0; ; attempt++) {
      if (!this.prepared) {
        if (this.lostReason && !reprepared) reprepared = this.lostReason.message;
        await this.prepare({ onProgress });
      }
      const { handle, info } = this.prepared;
      this.prepared = null; // one image per session
      rpc.owners.delete(handle);
      const progress = this.progressTo(onProgress);
      const payload = input.normalised ? { normalised: input.normalised.slice() } : { image: input.bytes.slice(0) };
      const transfer = [payload.normalised ? payload.normalised.buffer : payload.image];
      let m;
      try {
        m = await rpc.call({ type: 'classify', handle, ...payload }, progress, transfer);
      } catch (err) {
        if (err instanceof ImageRejected) {
          // The session is still prepared: keep it for the next image.
          this.prepared = { handle, info };
          rpc.owners.set(handle, this);
          throw err;
        }
        if (err instanceof SessionExpired && attempt === 0) {
          reprepared = err.message;
          continue;
        }
        throw err;
      }
      if (this.prepareAhead && !this.closed) {
        this.prepare().catch((err) => this.dispatchEvent(new CustomEvent('lost', { detail: err })));
      }
      return this.result(m, reprepared, performance.now() - called);
    }
  }

  /// A progress handler: the `progress` event, then the caller's `onProgress`.
  progressTo(onProgress) {
    return (p) => {
      this.dispatchEvent(new CustomEvent('progress', { detail: p }));
      if (onProgress) onProgress(p);
    };
  }

  result(m, reprepared, callMs) {
    const classes = this.model.classes;
    const o = m.outcome;
    const named = (i, p) => ({ index: i, label: classes[i] ?? String(i), p });
    // Probabilities only from revealed logits; a class or top-k answer is the ranking alone.
    const top = o.logits.length
      ? softmax(o.logits).map((p, i) => named(i, p)).sort((a, b) => b.p - a.p).slice(0, 5)
      : o.ranked.map((i) => named(i, null));
    const evalMs = new Map((m.layerEval || []).map((l) => [l.stage, l.ms]));
    const cost = new Map(m.traffic.layers.map((l) => [l.stage, l]));
    return {
      ...m,
      class: m.outcome.class,
      label: classes[m.outcome.class] ?? String(m.outcome.class),
      reveals: o.reveals,
      top,
      logits: m.outcome.logits,
      // offlineMs (done before the call unless `reprepared`), onlineMs (image sent → logits),
      // callMs (this call, as the user waits for it: online, plus offline when not prepared).
      timings: { ...m.timing, callMs },
      bytes: m.traffic,
      layers: (m.plan ? m.plan.layers : []).map((l) => ({
        stage: l.stage, op: l.op, relus: l.relus, output: l.output, andGates: l.and_gates,
        offlineBytes: (cost.get(l.stage) || {}).offline_down || 0,
        onlineMs: evalMs.get(l.stage) ?? null,
      })),
      reprepared,
    };
  }

  _lost(handle, err) {
    if (!this.prepared || this.prepared.handle !== handle) return;
    this.prepared = null;
    this.lostReason = err;
    rpc.owners.delete(handle);
    this.dispatchEvent(new CustomEvent('lost', { detail: err }));
  }

  /// Releases the prepared session (the server frees it at once) and stops a preparation under
  /// way (its `prepare()` rejects with `Cancelled`); a classification already under way finishes.
  close() {
    this.closed = true;
    // A preparation under way stops now (its socket closes; the server frees its session).
    if (this.preparingId) rpc.post({ type: 'cancel', request: this.preparingId });
    if (this.prepared) {
      rpc.owners.delete(this.prepared.handle);
      rpc.post({ type: 'release', handle: this.prepared.handle });
      this.prepared = null;
    }
  }

  /// Garbled ReLUs (and AND gates) per second evaluated in one fresh evaluation worker (a quick
  /// speed check).
  static bench({ relus = 4096, k = 32 } = {}) {
    return rpc.call({ type: 'bench', relus, k });
  }
}

async function toInput(image, [c, h, w]) {
  if (image instanceof Float32Array) {
    if (image.length !== c * h * w) {
      throw new ImageRejected('image', `a normalised image needs ${c}×${h}×${w} = ${c * h * w} values, not ${image.length}`);
    }
    return { normalised: image };
  }
  if (image instanceof ArrayBuffer) return { bytes: image };
  if (image instanceof Uint8Array) return { bytes: image.slice().buffer };
  if (typeof Blob !== 'undefined' && image instanceof Blob) return { bytes: await image.arrayBuffer() };
  const pixels = typeof ImageData !== 'undefined' && image instanceof ImageData ? await createImageBitmap(image) : image;
  if (pixels && typeof pixels.width === 'number' && typeof OffscreenCanvas !== 'undefined') {
    const canvas = new OffscreenCanvas(w, h);
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(pixels, 0, 0, w, h);
    const png = await canvas.convertToBlob({ type: 'image/png' });
    return { bytes: await png.arrayBuffer() };
  }
  throw new ImageRejected('image', 'classify() takes a Blob, ArrayBuffer, Uint8Array, ImageBitmap, ImageData, canvas or Float32Array');
}
