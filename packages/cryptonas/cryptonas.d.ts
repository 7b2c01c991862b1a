// Type declarations of cryptonas.js, the package's only public module (written by hand from it;
// tests/browser/embed.spec.mjs type-checks examples/embed/ against this file with `tsc --noEmit`).

/** What a server hosts (`GET /api/models`). */
export interface ModelInfo {
  /** Model name, as `connect({ model })` takes it. */
  name: string;
  /** ReLUs in the network: the online cost grows with them. */
  relus: number;
  /** Test accuracy, when the server knows it. */
  accuracy: number | null;
  /** Input shape `[channels, height, width]`. */
  input: [number, number, number];
  /** Class names in logit order. */
  classes: string[];
  description: string;
  /** What a classification reveals, set by the server's operator: the logits, the `top-N` classes or the class only (the last two computed inside the garbled circuit). */
  output: 'logits' | 'class' | `top-${number}`;
  /** The same in words: "logits", "class only", "top-3 classes". */
  reveals: string;
}

/** Options of {@link PrivateClassifier.connect}. */
export interface ConnectOptions {
  /** The server's URL (default: this page's origin). Its `/api/*` endpoints must be reachable from the page (same origin, or CORS and CSP `connect-src` allowing it). */
  server?: string | URL;
  /** A model the server hosts (see {@link listModels}). */
  model: string;
  /** Evaluation workers for the garbled circuits (default: one per hardware thread, at most 8). */
  workers?: number;
  /** After each classification, prepare the next session in the background (default: true). */
  prepareAhead?: boolean;
}

/** The client's byte counts of one session, per phase and direction. */
export interface Traffic {
  offline_up: number;
  offline_down: number;
  online_up: number;
  online_down: number;
  /** HE bytes (part of the offline totals). */
  he_up: number;
  he_down: number;
  /** OT bytes (part of the offline totals). */
  ot_up: number;
  ot_down: number;
  /** Online round trips: one per ReLU layer plus the output. */
  online_rounds: number;
  /** Per garbled layer (ReLU layers, and the garbled arg-max of a class or top-k model with 0 ReLUs). */
  layers: Array<{ stage: number; relus: number; offline_down: number; online_down: number; online_up: number }>;
}

/** The public facts of the session's model, known after the server's first frame. */
export interface Plan {
  model: string;
  classes: string[];
  /** Ring bits. */
  k: number;
  relus: number;
  /** Garbled layers; `output` marks the arg-max of a class or top-k model. */
  layers: Array<{ stage: number; op: 'relu' | 'clip' | 'max_pool' | 'top_k'; relus: number; output: boolean; and_gates: number }>;
  /** What the model reveals, as {@link ModelInfo.output} and {@link ModelInfo.reveals}. */
  output: string;
  reveals: string;
  /** Frames the server sends in a complete session (for a progress bar). */
  expected_frames: number;
}

/** The offline phase's cost, as `prepare()` resolves it and the `ready` event carries it. */
export interface PreparedInfo {
  offlineMs: number;
  bytes: Traffic;
  plan: Plan;
  /** Each offline step until its last frame was handled, in order. */
  phases: Array<{ name: 'connect' | 'plan' | 'he' | 'ot' | 'garbled'; ms: number }>;
}

/** The detail of a `progress` event (and the argument of `onProgress`). */
export interface Progress {
  phase: 'offline' | 'ready' | 'online' | 'done';
  /** What just happened: the socket opened, or the kind of server frame handled. */
  event: 'connected' | 'plan' | 'he' | 'ot' | 'garbled' | 'labels' | 'output' | 'error' | 'unknown';
  stage?: number | null;
  /** 0..1 of the session's frames. */
  fraction: number;
  traffic?: Traffic;
  /** Only with `event: 'plan'`. */
  plan?: Plan;
  elapsedMs?: number;
}

/** One of the most probable classes. */
export interface TopClass {
  index: number;
  label: string;
  /** Softmax probability of the logits; null when the model reveals classes only. */
  p: number | null;
}

/** One garbled layer of a classification. */
export interface LayerResult {
  stage: number;
  /** What the layer computes (a max pool has a neighbouring ReLU fused in; `top_k` is the output's arg-max). */
  op: 'relu' | 'clip' | 'max_pool' | 'top_k';
  /** Garbled circuit instances: one per ReLU, or per max-pool output (0 for the arg-max). */
  relus: number;
  /** The garbled arg-max of a class or top-k model. */
  output: boolean;
  andGates: number;
  offlineBytes: number;
  /** Wall time from the server's labels to the reply, all workers together (null if unmeasured). */
  onlineMs: number | null;
}

export interface Timings {
  /** The offline phase (done before the call unless `reprepared`). */
  offlineMs: number;
  /** Image sent → logits. */
  onlineMs: number;
  /** Between the end of the offline phase and the image. */
  waitedMs: number;
  totalMs: number;
  /** This call, as the user waits for it: online, plus offline when nothing was prepared. */
  callMs: number;
}

/** What `classify()` resolves with. */
export interface ClassifyResult {
  /** The predicted class index. */
  class: number;
  label: string;
  /** What the model reveals, in words ("logits", "class only", "top-3 classes"). */
  reveals: string;
  /** With logits: the five most probable classes, most probable first. Otherwise the revealed classes, most likely first, with `p: null` (one under "class only"). */
  top: TopClass[];
  /** Logits (fixed-point values as numbers), in class order; empty unless the model reveals them. */
  logits: number[];
  timings: Timings;
  bytes: Traffic;
  layers: LayerResult[];
  /** Why the session had to be prepared again during this call (it expired, the server restarted), else null. */
  reprepared: string | null;
  /** The raw outcome; `logits_ring` holds the ring values as decimal strings (they may exceed 2^53). */
  outcome: {
    output: string;
    reveals: string;
    class: number;
    label: string | null;
    /** The revealed classes, most likely first (every class when the logits are revealed). */
    ranked: number[];
    logits: number[];
    logits_ring: string[];
  };
  plan: Plan;
  phases: Array<{ name: string; ms: number }>;
  /** Garbled AND gates per second online, and per evaluation worker (null if unmeasured). */
  andPerSecOnline: number | null;
  andPerSecPerWorker: number | null;
  evalWorkers: number;
  /** WebAssembly memory of the session worker and of the evaluation workers, in bytes. */
  wasmMemoryBytes: number;
  evalWorkersMemoryBytes: number;
}

/** `PrivateClassifier.bench()`: `relus` garbled ReLUs at ring width `k`, evaluated and decoded to
 * shares in one fresh evaluation worker (software AES, one thread), timed over `seconds`. */
export interface BenchResult {
  relus: number;
  k: number;
  /** ReLUs per second, evaluated and decoded to shares. */
  relusPerSec: number;
  /** The circuits' AND gates per second over the same time (the output decoding included). */
  andPerSec: number;
  /** AND gates per second of the garbled gates alone, without decoding their output to shares. */
  gateAndPerSec: number;
  /** The same for the first call, which V8 may run before optimising. */
  firstCallAndPerSec: number;
  andGates: number;
  seconds: number;
  wasmMemoryBytes: number;
  /** Which wasm build the worker loaded (`simd128` or `relaxed-simd`). */
  wasmBuild: string;
}

/** What `classify()` takes: encoded PNG/JPEG bytes, pixels, or an already normalised CHW tensor of the model's input size. */
export type ImageInput =
  | Blob
  | ArrayBuffer
  | Uint8Array
  | ImageBitmap
  | ImageData
  | HTMLCanvasElement
  | OffscreenCanvas
  | HTMLImageElement
  | Float32Array;

export interface CallOptions {
  onProgress?: (p: Progress) => void;
}

/** Why a call failed; `code` is the machine-readable reason. */
export type ErrorCode =
  | 'expired' | 'timeout' | 'lost' | 'closed'
  | 'unreachable' | 'refused'
  | 'version'
  | 'image'
  | 'cancelled'
  | 'worker' | 'failed'
  | 'unsupported'
  | (string & {});

/** Base class of every error the module throws. */
export class CryptoNasError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly code: ErrorCode;
}
/** The server's prepared session expired (or the server restarted) before the image came. */
export class SessionExpired extends CryptoNasError {}
/** The server refused: unreachable, busy (limits, rate limit), or it does not host the model. */
export class ServerRefused extends CryptoNasError {}
/** The server speaks another protocol version: reload the page (or update the package). */
export class ProtocolVersion extends CryptoNasError {}
/** The image could not be used; the prepared session is kept, so another image can be tried. */
export class ImageRejected extends CryptoNasError {}
/** The classifier was closed (or the model switched) while this call waited. */
export class Cancelled extends CryptoNasError {}
/** A protocol failure: a malformed frame, a failed check, a worker that failed. */
export class ProtocolFailure extends CryptoNasError {}

/** The models a server hosts (default: this page's origin). Rejects with {@link ServerRefused}. */
export function listModels(server?: string | URL): Promise<ModelInfo[]>;

/** Whether this browser can run the client: WebAssembly with SIMD and module workers. */
export function supported(): boolean;

export interface PrivateClassifierEventMap {
  progress: CustomEvent<Progress>;
  ready: CustomEvent<PreparedInfo>;
  /** The prepared session was lost (expired, server restarted); the next `classify` prepares again. */
  lost: CustomEvent<CryptoNasError>;
}

/** Private classification with one model of one server. */
export class PrivateClassifier extends EventTarget {
  /** Connects to `server` for `model` (reads its model list; nothing is prepared yet). */
  static connect(options: ConnectOptions): Promise<PrivateClassifier>;
  /** Garbled ReLUs evaluated per second in one fresh evaluation worker (a quick speed check). */
  static bench(options?: { relus?: number; k?: number }): Promise<BenchResult>;

  private constructor();

  /** The model, as the server describes it. */
  readonly model: ModelInfo;
  /** Whether a prepared session waits for an image (a classification then costs only the online phase). */
  readonly ready: boolean;

  /** Runs the offline phase now; idempotent (returns the preparation under way or done). */
  prepare(options?: CallOptions): Promise<PreparedInfo>;
  /** Classifies `image` privately; prepares first if nothing is prepared. */
  classify(image: ImageInput, options?: CallOptions): Promise<ClassifyResult>;
  /** Releases the prepared session and stops a preparation under way (its `prepare()` rejects with {@link Cancelled}). */
  close(): void;

  addEventListener<K extends keyof PrivateClassifierEventMap>(
    type: K,
    listener: (this: PrivateClassifier, ev: PrivateClassifierEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof PrivateClassifierEventMap>(
    type: K,
    listener: (this: PrivateClassifier, ev: PrivateClassifierEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
