// Embedding private classification with the `cryptonas` package: connect, prepare while the user
// picks a file, classify it, show the answer. Served as-is (no bundler): the import is the path of
// the installed package relative to this page.
// @ts-check
import { PrivateClassifier, CryptoNasError, ImageRejected } from './node_modules/cryptonas/cryptonas.js';

const input = /** @type {HTMLInputElement} */ (document.getElementById('image'));
const result = /** @type {HTMLOutputElement} */ (document.getElementById('result'));
const model = new URLSearchParams(location.search).get('model') || 'cnet1-c4';

/** @param {string} text @param {string} state */
function show(text, state) {
  result.textContent = text;
  result.dataset.state = state;
}

try {
  const classifier = await PrivateClassifier.connect({ model });
  // The offline phase, before the image is known (after each classification the classifier
  // prepares the next session in the background; its `progress` events say how far it is).
  const prepared = await classifier.prepare({
    onProgress: (p) => show(`Preparing… ${Math.round(p.fraction * 100)} %`, 'preparing'),
  });
  show(`Ready (prepared in ${(prepared.offlineMs / 1000).toFixed(1)} s): pick a picture.`, 'ready');
  input.disabled = false;
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    show('Classifying…', 'classifying');
    try {
      const r = await classifier.classify(file);
      // A probability only when the model reveals its logits (`r.reveals`: "logits", "class only", …).
      const p = r.top[0].p;
      const how = p === null ? `this model reveals: ${r.reveals}` : `${(p * 100).toFixed(1)} %`;
      show(`${r.label} (${how}), in ${Math.round(r.timings.onlineMs)} ms`, 'done');
      // For scripts reading the page (the package's test compares these with the server's plaintext answer).
      result.dataset.class = String(r.class);
      result.dataset.logits = JSON.stringify(r.logits);
    } catch (err) {
      show(err instanceof ImageRejected ? `Not a usable picture: ${err.message}` : `Failed: ${String(err)}`, 'failed');
    }
  });
} catch (err) {
  show(err instanceof CryptoNasError ? `${err.name}: ${err.message}` : String(err), 'failed');
}
