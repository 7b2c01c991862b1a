// The wasm client this browser runs fastest, loaded once per worker: every module of a worker
// imports the client from here, so they share one instance.
//
// Two builds of the same code (scripts/build-wasm.sh): pkg/ with WebAssembly SIMD, and
// pkg-relaxed/ with relaxed SIMD too, whose constant-time vector-permute AES evaluates garbled
// gates about 1.4× faster (one `pshufb` per S-box lookup; gc/README.md, "Browser"). A module with
// relaxed instructions does not even validate where relaxed SIMD is missing (Firefox and Safari
// today), so the choice is made here, by validating a one-function probe, and pkg/ is the fallback
// (also when pkg-relaxed/ was not built or not served).

/// A module whose one function is `i8x16.relaxed_swizzle` of its two `v128` parameters.
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 123, 123, 1, 123, 3, 2, 1, 0, 10, 11, 1, 9, 0, 32,
  0, 32, 1, 253, 128, 2, 11,
]);

/// Whether this browser has relaxed SIMD.
export const relaxedSimd = (() => {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch (_) {
    return false;
  }
})();

/// Which build this worker runs (`relaxed-simd` or `simd128`) and the client's classes: set once
/// `loadWasm()` has resolved (live bindings, so importers see them then).
export let wasmBuild = null;
export let PrivateInference = null;
export let EvalChunk = null;
export let GcBench = null;

let loading = null;

/// Loads and instantiates the client (once per worker); resolves to the wasm instance's exports
/// (`memory` among them). No top-level await here: a module worker that awaits while loading
/// misses the messages posted to it meanwhile.
export function loadWasm() {
  const take = (module, exports, build) => {
    ({ PrivateInference, EvalChunk, GcBench } = module);
    wasmBuild = build;
    return exports;
  };
  loading ||= (async () => {
    if (relaxedSimd) {
      try {
        const module = await import('./pkg-relaxed/wasm_client.js');
        return take(module, await module.default(), 'relaxed-simd');
      } catch (_) { /* not built or not served: the SIMD build below */ }
    }
    const module = await import('./pkg/wasm_client.js');
    return take(module, await module.default(), 'simd128');
  })();
  return loading;
}
