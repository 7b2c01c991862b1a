// The demo page: model and image choice, the result and the cost breakdown, on top of the public
// API in cryptonas.js only. Choosing a model prepares a session at once (the offline phase does
// not depend on the image), so the click costs only the online phase; after each answer the next
// session is prepared in the background. No framework, no build step, no third-party requests.
import { listModels, PrivateClassifier, SessionExpired, ImageRejected, Cancelled, supported } from './cryptonas.js';

const SAMPLES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const $ = (id) => document.getElementById(id);

const state = {
  models: [],
  image: null, // { bytes: ArrayBuffer, name }
  classifier: null, // the selected model's PrivateClassifier
  prepared: null, // the last preparation's cost ({ offlineMs, bytes }) while a session is ready
  answered: false, // an answer is shown for the selected model
  busy: false,
  progressListeners: new Set(), // (progress) => void, for the benchmark harness
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

// ---------- models ----------

async function loadModels() {
  const sel = $('model');
  let list;
  try {
    list = await listModels();
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
  sel.onchange = () => { showModelInfo(); prepareModel(); };
  showModelInfo();
  updateButton();
  prepareModel();
}

function currentModel() { return state.models.find((m) => m.name === $('model').value); }

function showModelInfo() {
  const m = currentModel();
  if (!m) return;
  const [c, h, w] = m.input;
  $('model-info').textContent = `${m.relus.toLocaleString('en')} ReLUs · input ${c}×${h}×${w} · ` +
    `${m.classes.length} classes · this model reveals: ${m.reveals || 'logits'}` +
    `${m.description ? ' · ' + m.description : ''}`;
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

function showResult(res) {
  const el = $('result-class');
  el.textContent = res.label;
  el.dataset.class = String(res.class);
  $('reveals').textContent = `This model reveals: ${res.reveals}.`;
  // Class names come from the server: text nodes only, never markup. Without logits there are
  // no probabilities to show: the revealed classes, ranked (none beyond the answer for `class`).
  const ranked = res.top.length > 1 ? res.top : [];
  $('top5').replaceChildren(...ranked.map(({ index, label, p }) => make('li', { dataset: { class: String(index) } }, p == null
    ? [make('span', { className: 'name' }, [label])]
    : [
      make('span', { className: 'name' }, [label]),
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
    $('s-offline-d').textContent = timing.phases ? phasesText(timing.phases) : 'preprocessing, image-independent, done before the click';
    $('s-online').textContent = timing.onlineMs != null ? fmtMs(timing.onlineMs) : '…';
  }
  drawLayers(t, plan, layerEval);
}

/// What each garbled layer computes, as the plan names it.
const LAYER_NAMES = { relu: 'ReLU', clip: 'Clipped ReLU', max_pool: 'Max pool' };

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
      make('span', { className: 'lname' }, l.output
        ? ['Arg-max', make('small', {}, ['garbled top-k'])]
        : [`${LAYER_NAMES[l.op] || 'Layer'} ${i + 1}`,
          make('small', {}, [`${Number(l.relus).toLocaleString('en')} ${l.op === 'max_pool' ? 'outputs' : 'ReLUs'}`])]),
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

// ---------- prepare and run ----------

const STEPS = { connected: 'Connected', plan: 'Received the public plan', he: 'Homomorphic preprocessing',
  ot: 'Oblivious transfer', garbled: 'Receiving garbled layers', labels: 'Evaluating garbled layer',
  output: 'Decoding the logits' };
// The last layer of a class or top-k model is the garbled arg-max, not a ReLU layer.
const isOutputStage = (plan, stage) => !!plan && plan.layers.some((l) => l.stage === stage && l.output);

function setStatus(text, kind = '') {
  $('status').textContent = text;
  $('status').dataset.state = kind;
}

function readyText(info, prefix = '') {
  return `${prefix}Ready: the offline phase took ${fmtMs(info.offlineMs)} and ` +
    `${fmtBytes(info.bytes.offline_down + info.bytes.offline_up)}; a classification now costs only the online phase.`;
}

const PHASE_NAMES = { connect: 'connect', plan: 'plan', he: 'HE', ot: 'OT', garbled: 'garbled tables' };
function phasesText(phases) {
  return (phases || []).map((p) => `${PHASE_NAMES[p.name] || p.name} ${fmtMs(p.ms)}`).join(' · ');
}

/// The selected model's classifier, connected (a model switch closes the old one, which cancels
/// its preparation).
async function classifierFor(model) {
  if (state.classifier && state.classifier.model.name === model.name && !state.classifier.closed) return state.classifier;
  if (state.classifier) state.classifier.close();
  state.classifier = null;
  state.prepared = null;
  state.answered = false;
  const c = await PrivateClassifier.connect({ model: model.name });
  c.addEventListener('progress', (e) => {
    for (const l of state.progressListeners) l(e.detail);
  });
  c.addEventListener('ready', (e) => {
    if (state.classifier !== c) return;
    state.prepared = e.detail;
    $('s-next').textContent = `ready (${fmtMs(e.detail.offlineMs)})`;
    // Once an answer is shown, its status line stays; the stats say the next session is ready.
    if (!state.busy && !state.answered) setStatus(readyText(e.detail), 'ready');
  });
  c.addEventListener('lost', (e) => {
    if (state.classifier !== c) return;
    state.prepared = null;
    $('s-next').textContent = 'lost';
    if (!state.busy) {
      setStatus(`The prepared session was closed (${e.detail.message}); a new one is prepared when you classify.`, 'lost');
    }
  });
  state.classifier = c;
  return c;
}

/// Starts the offline phase for the selected model (errors are shown, not thrown).
async function prepareModel() {
  const model = currentModel();
  if (!model) return;
  clearError();
  try {
    const c = await classifierFor(model);
    if (c.ready || state.busy) return;
    setStatus('Preparing (offline phase: homomorphic encryption, oblivious transfer, garbled tables)…', 'preparing');
    $('bar').style.width = '0%';
    await c.prepare({
      onProgress: (p) => {
        if (state.busy || state.classifier !== c) return;
        $('bar').style.width = `${(p.fraction * 100).toFixed(1)}%`;
        setStatus(`Preparing: ${STEPS[p.event] || p.event}…`, 'preparing');
      },
    });
  } catch (err) {
    if (err instanceof Cancelled) return; // another model was chosen meanwhile
    setStatus('Not prepared.', 'failed');
    showError(`Cannot prepare a private session: ${await explain(err, model)}`);
  }
}

async function classify() {
  const model = currentModel();
  if (!model || !state.image || state.busy) return;
  state.busy = true;
  updateButton();
  clearError();
  $('result').hidden = true;
  $('plain').hidden = true;
  $('bar').style.width = '0%';
  let plan = null;
  try {
    const c = await classifierFor(model);
    const wasReady = c.ready;
    setStatus(wasReady ? 'Online: sending the masked image…' : 'Preparing first (offline phase)…', 'online');
    const res = await c.classify(state.image.bytes, {
      onProgress: (p) => {
        if (p.plan) plan = p.plan;
        $('bar').style.width = `${(p.fraction * 100).toFixed(1)}%`;
        const argmax = p.event === 'labels' && isOutputStage(plan, p.stage);
        const stage = p.event === 'labels' && plan && !argmax ? ` ${plan.layers.findIndex((l) => l.stage === p.stage) + 1} of ${plan.layers.length}` : '';
        const step = argmax ? 'Evaluating the garbled arg-max' : STEPS[p.event] || p.event;
        setStatus(`${p.phase === 'online' ? 'Online' : 'Offline'}: ${step}${stage}…`, p.phase);
        if (p.traffic) showTraffic(p.traffic, null, plan);
      },
    });
    $('bar').style.width = '100%';
    state.lastRun = res;
    showResult(res);
    showTraffic(res.traffic, { ...res.timing, phases: res.phases }, res.plan, res.layerEval);
    $('s-gates').textContent = res.andPerSecOnline ? `${fmtRate(res.andPerSecOnline)}/s` : '–';
    $('s-gates-d').textContent = res.evalWorkers
      ? `AND gates/s online, ${res.evalWorkers} worker${res.evalWorkers > 1 ? 's' : ''}` +
        (res.andPerSecPerWorker ? ` (${fmtRate(res.andPerSecPerWorker)}/s each)` : '')
      : 'AND gates/s in the worker';
    const t = res.timing;
    const how = res.reprepared
      ? `The prepared session was gone (${res.reprepared}), so a new one was prepared first (${fmtMs(t.offlineMs)}). `
      : wasReady ? `Prepared in advance (${fmtMs(t.offlineMs)} offline). ` : `Prepared first (${fmtMs(t.offlineMs)} offline). `;
    setStatus(`${how}Answered ${fmtMs(t.onlineMs)} after the image was sent (online phase).`, 'done');
    state.answered = true;
    if ($('reveal').checked) await revealPlain(model, res.outcome);
  } catch (err) {
    setStatus('Failed.', 'failed');
    const what = err instanceof ImageRejected ? 'This image cannot be used' : 'Private inference failed';
    showError(`${what}: ${await explain(err, model)}`);
  } finally {
    state.busy = false;
    updateButton();
  }
  // The next session is being prepared in the background (prepareAhead); its 'ready' event says
  // when it is.
  if (state.classifier && !state.classifier.ready) $('s-next').textContent = 'preparing…';
}

// Explain a refusal a WebSocket cannot see: ask the API whether the server is up and hosts the model.
async function explain(err, model) {
  if (!(err instanceof SessionExpired) && !/unreachable|closed the session|refused/.test(err.message)) return err.message;
  try {
    const list = await listModels();
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
    const r = await PrivateClassifier.bench({ relus: 4096, k: 32 });
    state.lastBench = r;
    $('bench-out').textContent = `${fmtRate(r.relusPerSec)} ReLUs/s, ${fmtRate(r.andPerSec)} AND gates/s; the gates alone ${fmtRate(r.gateAndPerSec)} AND gates/s (${r.relus} ReLUs at k = ${r.k}, one worker)`;
  } catch (err) {
    $('bench-out').textContent = `failed: ${err.message}`;
  }
}

function main() {
  if (!supported()) {
    showError('This browser cannot run private inference here: it needs WebAssembly with SIMD ' +
      '(Chrome or Edge 91+, Firefox 89+, Safari 16.4+) and module workers.');
    return;
  }
  buildSamples();
  setupDrop();
  $('classify').onclick = classify;
  $('bench').onclick = runBench;
  loadModels();
}

main();
