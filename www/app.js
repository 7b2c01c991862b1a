// The demo page: model and image choice, the worker running the private inference, the result and
// the cost breakdown. No framework, no build step, no third-party requests.

const SAMPLES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const $ = (id) => document.getElementById(id);

const state = {
  models: [],
  image: null, // { bytes: ArrayBuffer, name }
  worker: null,
  nextId: 1,
  pending: new Map(),
  busy: false,
};
window.__demo = state; // for the page test and the curious

function showError(text) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = false;
}
function clearError() { $('banner').hidden = true; }

function fmtBytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(n < 10 && i ? 2 : n < 100 && i ? 1 : 0)} ${u[i]}`;
}
function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}
function fmtRate(r) {
  if (!r) return '–';
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)} M` : `${(r / 1e3).toFixed(0)} K`;
}

// ---------- worker ----------

function startWorker() {
  const w = new Worker('worker.js', { type: 'module' });
  w.onmessage = (e) => {
    const m = e.data;
    const p = state.pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') { p.onProgress && p.onProgress(m); return; }
    state.pending.delete(m.id);
    if (m.type === 'error') p.reject(new Error(m.message)); else p.resolve(m);
  };
  w.onerror = (e) => {
    const msg = `the worker failed: ${e.message || 'could not load the WebAssembly client (was scripts/build-wasm.sh run?)'}`;
    for (const p of state.pending.values()) p.reject(new Error(msg));
    state.pending.clear();
    showError(msg);
  };
  state.worker = w;
}

function call(msg, onProgress, transfer = []) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject, onProgress });
    state.worker.postMessage({ ...msg, id }, transfer);
  });
}

// ---------- models ----------

async function loadModels() {
  const sel = $('model');
  let list;
  try {
    const r = await fetch('/api/models');
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    list = await r.json();
  } catch (err) {
    sel.innerHTML = '<option>server unavailable</option>';
    showError(`Cannot reach the server (${err.message}). Is cryptonas-server running?`);
    return;
  }
  state.models = list;
  if (!list.length) {
    sel.innerHTML = '<option>no models hosted</option>';
    showError('The server hosts no models. Start it with --models pointing at a directory of exported models.');
    return;
  }
  sel.innerHTML = '';
  for (const m of list) {
    const o = document.createElement('option');
    o.value = m.name;
    const acc = m.accuracy != null ? `, ${(m.accuracy * 100).toFixed(1)} % accuracy` : '';
    o.textContent = `${m.name} — ${m.relus.toLocaleString('en')} ReLUs${acc}`;
    sel.appendChild(o);
  }
  // Start with the cheapest model: the fastest first private inference.
  sel.value = list.reduce((a, b) => (a.relus <= b.relus ? a : b)).name;
  sel.disabled = false;
  sel.onchange = showModelInfo;
  showModelInfo();
  updateButton();
}

function currentModel() { return state.models.find((m) => m.name === $('model').value); }

function showModelInfo() {
  const m = currentModel();
  if (!m) return;
  const [c, h, w] = m.input;
  $('model-info').textContent = `${m.relus.toLocaleString('en')} ReLUs · input ${c}×${h}×${w} · ` +
    `${m.classes.length} classes${m.description ? ' · ' + m.description : ''}`;
}

// ---------- images ----------

function buildSamples() {
  const box = $('samples');
  for (const name of SAMPLES) {
    const b = document.createElement('button');
    b.className = 'sample';
    b.dataset.sample = name;
    b.title = `CIFAR-10 test image: ${name}`;
    b.innerHTML = `<img src="samples/${name}.jpg" alt="${name}" width="32" height="32"><span>${name}</span>`;
    b.onclick = () => pickSample(name, b);
    box.appendChild(b);
  }
}

async function drawPreview(blob) {
  const bmp = await createImageBitmap(blob);
  const c = $('preview');
  const ctx = c.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.drawImage(bmp, 0, 0, c.width, c.height);
  bmp.close();
}

// Bundled samples are sent as their original JPEG bytes: the wasm client decodes them exactly as the
// native client does.
async function pickSample(name, button) {
  try {
    const r = await fetch(`samples/${name}.jpg`);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const bytes = await r.arrayBuffer();
    state.image = { bytes, name: `CIFAR-10 test image (${name})` };
    document.querySelectorAll('.sample').forEach((x) => x.classList.toggle('selected', x === button));
    await drawPreview(new Blob([bytes], { type: 'image/jpeg' }));
    $('chosen-name').textContent = state.image.name;
    clearError();
  } catch (err) {
    showError(`Cannot load the sample image: ${err.message}`);
  }
  updateButton();
}

// Own images are resized to the model's input size here and sent as PNG.
async function pickFile(file) {
  if (!file || !file.type.startsWith('image/')) {
    showError('Please choose an image file.');
    return;
  }
  try {
    const m = currentModel();
    const [, h, w] = m ? m.input : [3, 32, 32];
    const bmp = await createImageBitmap(file);
    const c = new OffscreenCanvas(w, h);
    const ctx = c.getContext('2d');
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bmp, 0, 0, w, h);
    bmp.close();
    const png = await c.convertToBlob({ type: 'image/png' });
    state.image = { bytes: await png.arrayBuffer(), name: `${file.name} (resized to ${w}×${h})` };
    document.querySelectorAll('.sample').forEach((x) => x.classList.remove('selected'));
    await drawPreview(png);
    $('chosen-name').textContent = state.image.name;
    clearError();
  } catch (err) {
    showError(`Cannot read that image: ${err.message}`);
  }
  updateButton();
}

function setupDrop() {
  const d = $('drop');
  $('file').onchange = (e) => pickFile(e.target.files[0]);
  d.addEventListener('dragover', (e) => { e.preventDefault(); d.classList.add('over'); });
  d.addEventListener('dragleave', () => d.classList.remove('over'));
  d.addEventListener('drop', (e) => {
    e.preventDefault();
    d.classList.remove('over');
    pickFile(e.dataTransfer.files[0]);
  });
}

function updateButton() {
  $('classify').disabled = state.busy || !state.image || !currentModel();
}

// ---------- result and breakdown ----------

// An element with properties (`style` as text, `dataset` merged) and children (strings become text
// nodes): the page never puts server data into markup.
function make(tag, props = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'style') e.style.cssText = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

function softmax(v) {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function showResult(outcome, classes) {
  const probs = softmax(outcome.logits);
  const el = $('result-class');
  el.textContent = classes[outcome.class] ?? `class ${outcome.class}`;
  el.dataset.class = String(outcome.class);
  const top = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  // Class names come from the server: text nodes only, never markup.
  $('top5').replaceChildren(...top.map(([p, i]) => make('li', {}, [
    make('span', { className: 'name' }, [String(classes[i] ?? i)]),
    make('span', { className: 'pbar' }, [make('span', { style: `width:${(p * 100).toFixed(1)}%` })]),
    make('span', { className: 'pct' }, [`${(p * 100).toFixed(1)} %`]),
  ])));
  $('result').hidden = false;
}

function showTraffic(t, timing, plan, layerEval) {
  if (!t) return;
  $('s-up').textContent = fmtBytes(t.offline_up + t.online_up);
  $('s-down').textContent = fmtBytes(t.offline_down + t.online_down);
  $('s-up-d').textContent = `offline ${fmtBytes(t.offline_up)} (HE ${fmtBytes(t.he_up)}, OT ${fmtBytes(t.ot_up)}) · online ${fmtBytes(t.online_up)}`;
  $('s-down-d').textContent = `offline ${fmtBytes(t.offline_down)} (HE ${fmtBytes(t.he_down)}, OT ${fmtBytes(t.ot_down)}) · online ${fmtBytes(t.online_down)}`;
  $('s-rounds').textContent = String(t.online_rounds);
  if (timing) {
    $('s-offline').textContent = fmtMs(timing.offlineMs);
    $('s-online').textContent = timing.onlineMs != null ? fmtMs(timing.onlineMs) : '…';
  }
  drawLayers(t, plan, layerEval);
}

function drawLayers(t, plan, layerEval = []) {
  const layers = plan ? plan.layers : [];
  if (!layers.length) return;
  const cost = new Map(t.layers.map((l) => [l.stage, l]));
  const evalMs = new Map(layerEval.map((l) => [l.stage, l.ms]));
  const maxBytes = Math.max(1, ...t.layers.map((l) => l.offline_down));
  const maxMs = Math.max(1e-9, ...layerEval.map((l) => l.ms));
  // The plan comes from the server: built as elements, numbers coerced.
  $('layers').replaceChildren(...layers.map((l, i) => {
    const c = cost.get(l.stage) || { offline_down: 0 };
    const ms = evalMs.get(l.stage);
    return make('div', { className: 'layer' }, [
      make('span', { className: 'lname' }, [`ReLU ${i + 1}`, make('small', {}, [`${Number(l.relus).toLocaleString('en')} ReLUs`])]),
      make('span', { className: 'lbar off' }, [
        make('span', { style: `width:${(100 * c.offline_down / maxBytes).toFixed(1)}%` }),
        make('em', {}, [fmtBytes(c.offline_down)]),
      ]),
      make('span', { className: 'lbar on' }, [
        make('span', { style: `width:${ms != null ? (100 * ms / maxMs).toFixed(1) : 0}%` }),
        make('em', {}, [ms != null ? fmtMs(ms) : '']),
      ]),
    ]);
  }));
}

// ---------- run ----------

async function classify() {
  const model = currentModel();
  if (!model || !state.image || state.busy) return;
  state.busy = true;
  updateButton();
  clearError();
  $('result').hidden = true;
  $('plain').hidden = true;
  $('bar').style.width = '0%';
  $('status').textContent = 'Connecting…';
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const wsUrl = `${proto}://${location.host}/api/session/${encodeURIComponent(model.name)}`;
  const bytes = state.image.bytes.slice(0); // keep ours; the copy is transferred
  let plan = null;
  const labels = { connected: 'Connected', plan: 'Received the public plan', he: 'Homomorphic preprocessing',
    ot: 'Oblivious transfer', garbled: 'Receiving garbled ReLU layers', labels: 'Evaluating ReLU layer',
    output: 'Decoding the logits' };
  try {
    const res = await call({ type: 'classify', image: bytes, wsUrl }, (p) => {
      if (p.plan) plan = p.plan;
      $('bar').style.width = `${(p.fraction * 100).toFixed(1)}%`;
      const stage = p.event === 'labels' && plan ? ` ${plan.layers.findIndex((l) => l.stage === p.stage) + 1} of ${plan.layers.length}` : '';
      $('status').textContent = `${p.phase === 'offline' ? 'Offline' : 'Online'}: ${labels[p.event] || p.event}${stage}…`;
      if (p.traffic) showTraffic(p.traffic, { offlineMs: p.offlineMs, onlineMs: null }, plan);
    }, [bytes]);
    $('bar').style.width = '100%';
    state.lastRun = res;
    showResult(res.outcome, model.classes);
    showTraffic(res.traffic, res.timing, res.plan, res.layerEval);
    $('s-gates').textContent = res.andPerSecOnline ? `${fmtRate(res.andPerSecOnline)}/s` : '–';
    $('s-gates-d').textContent = res.evalWorkers
      ? `AND gates/s online, ${res.evalWorkers} worker${res.evalWorkers > 1 ? 's' : ''}` +
        (res.andPerSecPerWorker ? ` (${fmtRate(res.andPerSecPerWorker)}/s each)` : '')
      : 'AND gates/s in the worker';
    $('status').textContent = `Done in ${fmtMs(res.timing.totalMs)} (offline ${fmtMs(res.timing.offlineMs)}, online ${fmtMs(res.timing.onlineMs)}).`;
    if ($('reveal').checked) await revealPlain(model, res.outcome);
  } catch (err) {
    $('status').textContent = 'Failed.';
    showError(`Private inference failed: ${await explain(err, model)}`);
  } finally {
    state.busy = false;
    updateButton();
  }
}

// A WebSocket cannot see HTTP statuses: ask the API whether the server is up and hosts the model.
async function explain(err, model) {
  if (!/unreachable|closed the session/.test(err.message)) return err.message;
  try {
    const r = await fetch('/api/models');
    if (!r.ok) return `${err.message} (the server answers HTTP ${r.status})`;
    const list = await r.json();
    if (!list.some((m) => m.name === model.name)) return `the server does not host model "${model.name}" (any more); reload the page`;
    return `${err.message} (the server may be busy: too many sessions or the rate limit; try again shortly)`;
  } catch (_) {
    return 'the server is down or unreachable';
  }
}

async function revealPlain(model, outcome) {
  const p = $('plain');
  p.hidden = false;
  p.textContent = 'Asking the server for its plaintext answer…';
  try {
    const r = await fetch(`/api/plain/${encodeURIComponent(model.name)}`, { method: 'POST', body: state.image.bytes });
    if (!r.ok) {
      const reason = await r.json().then((b) => b.error, () => `HTTP ${r.status}`);
      throw new Error(r.status === 404 ? `${reason} (start it with --allow-plaintext to compare)` : reason);
    }
    const plain = await r.json();
    state.lastPlain = plain;
    const cls = Number(plain.class);
    const same = cls === outcome.class;
    p.replaceChildren('Plaintext answer (image revealed to the server): ',
      make('strong', { id: 'plain-class', dataset: { class: String(cls) } }, [String(model.classes[cls] ?? cls)]),
      ` — ${same ? 'matches the private answer' : 'differs from the private answer'}.`);
    p.className = `plain ${same ? 'ok' : 'bad'}`;
  } catch (err) {
    p.textContent = `Plaintext comparison failed: ${err.message}`;
  }
}

async function runBench() {
  $('bench-out').textContent = 'measuring…';
  try {
    const r = await call({ type: 'bench', relus: 4096, k: 32 });
    state.lastBench = r;
    $('bench-out').textContent = `${fmtRate(r.andPerSec)} AND gates/s (${r.relus} ReLUs at k = ${r.k}, one worker)`;
  } catch (err) {
    $('bench-out').textContent = `failed: ${err.message}`;
  }
}

function main() {
  if (typeof WebAssembly !== 'object' || typeof Worker !== 'function') {
    showError('This browser has no WebAssembly or Web Workers: private inference cannot run here.');
    return;
  }
  buildSamples();
  setupDrop();
  startWorker();
  $('classify').onclick = classify;
  $('bench').onclick = runBench;
  loadModels();
}

main();
