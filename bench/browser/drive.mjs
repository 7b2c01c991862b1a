// Browser mode of the benchmark harness: drives the REAL demo page (www/) in headless Debian
// Chromium over its DevTools protocol (bench/browser/cdp.mjs: one page, no worker attached, so the
// driver adds no per-frame cost to the page's WebSocket) and reports, as JSON lines on stdout, what
// the harness measures natively. Spawned by `cryptonas-bench --browser`:
//
//   node bench/browser/drive.mjs '<config JSON>'
//
// config: { url, model, samples: [name, ...] (files www/samples/<name>.jpg, clicked in the page),
//           n, chromium, workers: [1, 2, ...], benchRelus, k, timeoutMs,
//           network: null | { latencyMs, throughput (bytes/s, -1: none) } (CDP emulation) }
// Lines: {type:"ready", browser, hardwareConcurrency, crossOriginIsolated}
//        {type:"progress", index, phase, event, stage, fraction}
//        {type:"inference", index, sample, callMs (click → answer in the page), outcome, traffic, plan,
//         timing (offlineMs: the prepared session's offline phase; onlineMs), layerEval, layerWallMs, ...}
//        {type:"done", bench, memory}    or    {type:"error", message}
// Each run starts its own Chromium (fresh profile), so the renderer's peak memory is this model's.
// Diagnostics go to stderr. Exit code 0 only after "done".

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rendererPeakRss, sampleRendererPrivate, startChromium } from '../../tests/browser/chromium.mjs';
import { openPage } from './cdp.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
// playwright-core lives in tests/node_modules (scripts/setup.sh installs it there); only its
// bundled WebSocket client is used, on a Node without its own.
const modules = process.env.CRYPTONAS_NODE_MODULES || join(root, 'tests', 'node_modules');

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let chromiumRun = null;

function killChromium() {
  if (chromiumRun) chromiumRun.kill();
}

async function main() {
  const cfg = JSON.parse(process.argv[2] || '{}');
  for (const k of ['url', 'model', 'samples', 'n']) {
    if (cfg[k] == null) throw new Error(`config is missing "${k}"`);
  }
  const timeoutMs = cfg.timeoutMs || 600000;
  chromiumRun = await startChromium({ bin: cfg.chromium || '/usr/bin/chromium', prefix: 'cryptonas-bench-chromium-' });
  const privateMemory = sampleRendererPrivate(chromiumRun.userDataDir);
  const page = await openPage(chromiumRun.wsUrl, { modulesDir: modules });
  const pageErrors = [];
  page.on('Runtime.exceptionThrown', (p) => pageErrors.push(
    (p.exceptionDetails.exception && p.exceptionDetails.exception.description) || p.exceptionDetails.text));
  page.on('Runtime.consoleAPICalled', (p) => {
    if (p.type === 'error') process.stderr.write(`page console: ${p.args.map((a) => a.value ?? a.description).join(' ')}\n`);
  });
  await page.send('Performance.enable');
  if (cfg.network) {
    // Chromium's own network emulation: added latency and a throughput cap in both directions
    // (bytes/s; -1: no cap). The page's WebSocket lives in its session worker, a target of its
    // own: the conditions are set there too, before the worker runs (it waits for the debugger
    // until then). On this 2-vCPU VM with the other vCPU idle the transfer took several times the
    // link's time (README, Results).
    const conditions = {
      offline: false, latency: cfg.network.latencyMs,
      downloadThroughput: cfg.network.throughput, uploadThroughput: cfg.network.throughput,
    };
    page.on('Target.attachedToTarget', ({ sessionId, targetInfo, waitingForDebugger }) => {
      const emulate = targetInfo.type === 'worker'
        ? page.sendTo(sessionId, 'Network.enable')
          .then(() => page.sendTo(sessionId, 'Network.emulateNetworkConditions', conditions))
        : Promise.resolve();
      emulate.catch((e) => process.stderr.write(`network emulation in a worker: ${e.message}\n`))
        .finally(() => { if (waitingForDebugger) page.sendTo(sessionId, 'Runtime.runIfWaitingForDebugger').catch(() => {}); });
    });
    await page.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: true });
    await page.send('Network.enable');
    await page.send('Network.emulateNetworkConditions', conditions);
  }
  let jsHeapPeak = 0;
  const sampleHeap = async () => {
    try {
      const { metrics } = await page.send('Performance.getMetrics');
      const m = metrics.find((x) => x.name === 'JSHeapUsedSize');
      if (m) jsHeapPeak = Math.max(jsHeapPeak, m.value);
    } catch (_) { /* page busy or gone */ }
  };

  await page.goto(`${cfg.url}/`);
  await page.waitForSelector('#model:not([disabled])', { timeout: 60000 });
  const info = await page.evaluate(() => ({
    crossOriginIsolated: self.crossOriginIsolated,
    hardwareConcurrency: navigator.hardwareConcurrency,
    models: window.__demo.models.map((m) => m.name),
  }));
  if (!info.models.includes(cfg.model)) {
    throw new Error(`the page does not list model "${cfg.model}" (it lists ${info.models.join(', ')})`);
  }
  await page.selectOption('#model', cfg.model);
  emit({ type: 'ready', browser: page.version(), ...info });

  // Every progress message of the page's classifier, next to the page's own handler.
  await page.evaluate(() => {
    window.__benchEvents = [];
    window.__demo.progressListeners.add((d) => {
      window.__benchEvents.push({ phase: d.phase, event: d.event, stage: d.stage ?? null,
        fraction: d.fraction, elapsedMs: d.elapsedMs ?? null });
    });
  });

  let wasmMemory = 0; // the session worker's wasm memory
  let evalWasmMemory = 0; // all evaluation workers' wasm memory together
  for (let i = 0; i < cfg.n; i++) {
    const sample = cfg.samples[i % cfg.samples.length];
    await page.evaluate(() => { window.__demo.lastRun = null; window.__benchEvents = []; document.getElementById('reveal').checked = false; });
    await page.click(`.sample[data-sample="${sample}"]`);
    await page.waitFor((n) => window.__demo.image && window.__demo.image.name.includes(`(${n})`), sample);
    await page.waitForSelector('#classify:not([disabled])', { timeout: 30000 });
    // The page prepares a session when the model is chosen and after each answer: click once it
    // is ready, as a user who looks at the page first would (the click then costs the online
    // phase only; the offline phase is reported from the prepared session).
    await page.waitFor(() => window.__demo.classifier && window.__demo.classifier.ready, null,
      { timeout: timeoutMs, polling: 250 });
    await page.evaluate(() => { window.__benchEvents = []; });
    await page.click('#classify');
    const t0 = Date.now();
    let seen = 0;
    for (;;) {
      const s = await page.evaluate((from) => ({
        done: window.__demo.lastRun !== null && window.__demo.lastRun !== undefined,
        banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent,
        events: window.__benchEvents.slice(from),
      }), seen);
      seen += s.events.length;
      const last = s.events[s.events.length - 1];
      if (last) emit({ type: 'progress', index: i, phase: last.phase, event: last.event, stage: last.stage, fraction: last.fraction });
      await sampleHeap();
      if (s.banner) throw new Error(`the page reports: ${s.banner.trim()}`);
      if (s.done) break;
      if (Date.now() - t0 > timeoutMs) throw new Error(`inference ${i + 1} did not finish in ${timeoutMs / 1000} s`);
      await sleep(250);
    }
    const run = await page.evaluate(() => window.__demo.lastRun);
    const events = await page.evaluate(() => window.__benchEvents);
    // Online wall time per ReLU layer, the native client's definition: from the request (masked
    // input, or the previous layer's shares) sent to this layer's labels evaluated. A progress event
    // is posted once the labels frame is handled (its elapsedMs counts from the image sent); with
    // evaluation workers (evalWorkers > 0) the evaluation runs after that, and the page's layerEval
    // (labels → reply) is added.
    const delegated = (run.evalWorkers || 0) > 0;
    const evalMs = new Map((run.layerEval || []).map((l) => [l.stage, l.ms]));
    const layerWallMs = [];
    let sent = 0;
    for (const e of events) {
      if (e.event !== 'labels' || e.elapsedMs == null) continue;
      const end = e.elapsedMs + (delegated ? (evalMs.get(e.stage) || 0) : 0);
      layerWallMs.push({ stage: e.stage, ms: end - sent });
      sent = end;
    }
    wasmMemory = Math.max(wasmMemory, run.wasmMemoryBytes || 0);
    evalWasmMemory = Math.max(evalWasmMemory, run.evalWorkersMemoryBytes || 0);
    emit({
      type: 'inference', index: i, sample, wallMs: Date.now() - t0, callMs: run.timings.callMs,
      outcome: run.outcome, traffic: run.traffic, plan: run.plan, timing: run.timing,
      layerEval: run.layerEval, layerWallMs, phases: run.phases, andPerSecOnline: run.andPerSecOnline,
      evalWorkers: run.evalWorkers || 0, andPerSecPerWorker: run.andPerSecPerWorker ?? null,
      wasmMemoryBytes: run.wasmMemoryBytes, evalWorkersMemoryBytes: run.evalWorkersMemoryBytes ?? null,
      wasmBuild: run.wasmBuild ?? null,
    });
  }

  // Memory first (the benchmark workers below would add their own).
  const rendererPeak = rendererPeakRss(chromiumRun.userDataDir);
  const rendererPrivatePeak = privateMemory.stop();
  await sampleHeap();
  const uaMemory = await page.evaluate(async () => {
    if (!performance.measureUserAgentSpecificMemory) return null;
    const m = await Promise.race([performance.measureUserAgentSpecificMemory(),
      new Promise((r) => setTimeout(() => r(null), 20000))]);
    return m && m.bytes;
  });

  // Garbled-evaluation speed: the page's benchmark button (one fresh worker), then W fresh workers
  // evaluating at the same time (AND gates/s per worker).
  await page.click('#bench');
  await page.waitFor(() => window.__demo.lastBench, null, { timeout: 300000 });
  const pageBench = await page.evaluate(() => window.__demo.lastBench);
  const parallel = [];
  for (const w of cfg.workers || [1]) {
    const r = await page.evaluate(async ({ w, relus, k }) => {
      const workers = Array.from({ length: w }, () => new Worker('worker.js', { type: 'module' }));
      const ask = (wk, msg) => new Promise((res, rej) => {
        wk.addEventListener('message', (e) => {
          if (e.data.id !== msg.id) return;
          if (e.data.type === 'error') rej(new Error(e.data.message)); else res(e.data);
        });
        wk.addEventListener('error', (e) => rej(new Error(e.message || 'worker failed')));
        wk.postMessage(msg);
      });
      try {
        await Promise.all(workers.map((wk) => ask(wk, { type: 'ping', id: 1 }))); // load wasm, warm up
        const t = performance.now();
        const rs = await Promise.all(workers.map((wk) => ask(wk, { type: 'bench', id: 2, relus, k, reps: 3 })));
        return { workers: w, wallS: (performance.now() - t) / 1e3, perWorker: rs.map((x) => x.andPerSec),
          andGates: rs.reduce((a, x) => a + x.andGates, 0) };
      } finally {
        workers.forEach((wk) => wk.terminate());
      }
    }, { w, relus: cfg.benchRelus || 4096, k: cfg.k || 32 });
    parallel.push(r);
  }
  if (pageErrors.length) throw new Error(`uncaught page errors: ${pageErrors.join(' | ')}`);
  emit({
    type: 'done',
    bench: { pageWorker: pageBench, parallel },
    memory: { rendererPeakRssBytes: rendererPeak, rendererPeakPrivateBytes: rendererPrivatePeak,
      jsHeapUsedPeakBytes: jsHeapPeak || null,
      wasmMemoryBytes: wasmMemory || null, evalWorkersWasmBytes: evalWasmMemory || null,
      uaSpecificBytes: uaMemory },
  });
  page.close();
}

// Spawned by the harness with a pipe on stdin: when the harness stops the run (a failed check,
// Ctrl-C) it closes the pipe, and the browser goes down with the driver.
if (process.env.CRYPTONAS_DRIVER_STDIN_WATCH) {
  process.stdin.on('end', () => { killChromium(); process.exit(2); });
  process.stdin.resume();
}

try {
  await main();
  killChromium();
  process.exit(0);
} catch (e) {
  emit({ type: 'error', message: String((e && e.stack) || e) });
  killChromium();
  process.exit(1);
}
