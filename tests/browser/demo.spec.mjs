// End-to-end test of the demo page in headless Debian Chromium (npm playwright-core over CDP).
//
//   node tests/browser/demo.spec.mjs        (after scripts/build-wasm.sh; `npm ci` in tests/)
//
// Starts the server binary on a free 127.0.0.1 port with a models directory (models/ if it holds
// models, else a tiny random-weight model written by `cargo run -p wasm-client --example tiny_model`),
// loads the page, waits until the selected model's session is prepared (the offline phase runs
// before the click), picks a bundled CIFAR-10 sample, classifies it privately in the page's worker
// and checks the shown class and logits against the server's plaintext fixed-point answer for the
// same image bytes (the "reveal" box); a second click uses the session prepared in the background;
// then classifies every bundled sample and checks class and ring logits against the native client
// (`cryptonas-client --json`, falling back to /api/plain if it cannot be built); restarts the server
// between preparation and click (the page must say it prepared again, and answer right). Saves
// screenshots and measured numbers to tests/output/.
// Env: CRYPTONAS_SERVER_BIN / CRYPTONAS_CLIENT_BIN (binaries; default: build them with cargo),
// CRYPTONAS_TEST_MODELS (models directory), CRYPTONAS_SAMPLE (sample name, default cat),
// CRYPTONAS_QUICK (skip the all-samples loop), CARGO_TARGET_DIR. Exit code 0 only if every check passed.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { killGroup, launchChromium, rendererPeakRss, waitFor } from './chromium.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'tests', 'output');
mkdirSync(out, { recursive: true });
const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target');
const sample = process.env.CRYPTONAS_SAMPLE || 'cat';
let passed = 0;
let failed = 0;
const children = [];

function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok   ${name}${detail ? ' — ' + detail : ''}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? ' — ' + detail : ''}`); }
  return ok;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cargo(args) {
  console.log(`$ cargo ${args.join(' ')}`);
  const r = spawnSync('cargo', args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) throw new Error(`cargo ${args.join(' ')} failed (${r.status})`);
}

function modelsDir() {
  if (process.env.CRYPTONAS_TEST_MODELS) return process.env.CRYPTONAS_TEST_MODELS;
  const bundled = join(root, 'models');
  if (existsSync(bundled) && readdirSync(bundled).some((f) => f.endsWith('.json'))) return bundled;
  const dir = join(out, 'models');
  if (!existsSync(join(dir, 'tiny.json'))) cargo(['run', '-q', '-p', 'wasm-client', '--example', 'tiny_model', '--', dir]);
  return dir;
}

function serverBin() {
  if (process.env.CRYPTONAS_SERVER_BIN) return process.env.CRYPTONAS_SERVER_BIN;
  cargo(['build', '-q', '-p', 'cryptonas-server']);
  return join(targetDir, 'debug', 'cryptonas-server');
}

const SAMPLES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

async function plainAnswer(base, model, file) {
  const r = await fetch(`${base}/api/plain/${model}`, { method: 'POST', body: readFileSync(file) });
  if (!r.ok) throw new Error(`/api/plain: HTTP ${r.status}`);
  return r.json();
}

/// The native client (`cryptonas-client`), or null if it cannot be built.
function clientBin() {
  if (process.env.CRYPTONAS_CLIENT_BIN) return process.env.CRYPTONAS_CLIENT_BIN;
  try {
    cargo(['build', '-q', '-p', 'cryptonas-client']);
    return join(targetDir, 'debug', 'cryptonas-client');
  } catch (e) {
    console.log(`native client unavailable (${e.message}); comparing with /api/plain instead`);
    return null;
  }
}

/// Class and ring logits (as decimal strings: they may exceed 2^53) from the native client.
function nativeClassify(bin, base, model, file) {
  const r = spawnSync(bin, ['--server', base, '--model', model, '--json', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native client failed: ${r.stderr}`);
  const ring = r.stdout.match(/"logits_ring":\s*\[([^\]]*)\]/);
  return { class: JSON.parse(r.stdout).class, ring: ring[1].split(',').map((x) => x.trim()) };
}

async function startServer(bin, models, port, extra = []) {
  const log = [];
  // The test compares with the server's plaintext answer: that endpoint is off unless enabled (it
  // reveals what the model's output policy reveals: the logits by default).
  const child = spawn(bin, ['--models', models, '--www', join(root, 'www'), '--bind', `127.0.0.1:${port}`,
    '--allow-plaintext', ...extra],
    { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}):\n${log.join('')}`);
    try {
      const r = await fetch(`${base}/api/health`);
      if (r.ok) return { base, log, child };
    } catch (_) { /* not up yet */ }
    await sleep(200);
  }
  throw new Error(`server did not come up in 120 s:\n${log.join('')}`);
}

/// A second server whose models reveal the class only (`--output class`): the page says so, shows
/// the class without probabilities, and the class equals the plaintext fixed-point class.
async function classOnlyPage(context, bin, models, modelName) {
  const port = await freePort();
  const server = await startServer(bin, models, port, ['--output', 'class']);
  const page = await context.newPage();
  try {
    await page.goto(`${server.base}/`);
    await page.waitForSelector('#model:not([disabled])', { timeout: 30000 });
    await page.selectOption('#model', modelName);
    const info = await page.locator('#model-info').textContent();
    check('class-only model: the page says what it reveals before the click', /this model reveals: class only/.test(info), info);
    await waitFor(page, () => ['ready', 'failed'].includes(document.getElementById('status').dataset.state),
      null, { timeout: 570000, polling: 200 });
    await page.click(`.sample[data-sample="${sample}"]`);
    await waitFor(page, () => window.__demo.image !== null);
    await page.click('#classify');
    await waitFor(page, () => window.__demo.lastRun || !document.getElementById('banner').hidden,
      null, { timeout: 570000, polling: 200 });
    const r = await page.evaluate(() => window.__demo.lastRun);
    const plain = await plainAnswer(server.base, modelName, join(root, 'www', 'samples', `${sample}.jpg`));
    const shown = Number(await page.locator('#result-class').getAttribute('data-class'));
    check('class-only model: shown class = plaintext fixed-point class, no logits anywhere',
      r && shown === plain.class && r.outcome.logits.length === 0 && r.outcome.logits_ring.length === 0 &&
      plain.output === 'class' && plain.logits === undefined && r.top.every((t) => t.p === null),
      `private ${shown}, plaintext ${plain.class} (${JSON.stringify(plain)})`);
    const reveals = await page.locator('#reveals').textContent();
    check('class-only model: the answer says "this model reveals: class only", no probability bars',
      /reveals: class only/.test(reveals) && (await page.locator('#top5 li').count()) === 0 &&
      (await page.locator('.layer').last().textContent()).startsWith('Arg-max'), reveals);
    await page.screenshot({ path: join(out, 'demo-class-only.png'), fullPage: true });
  } finally {
    await page.close().catch(() => {});
    killGroup(server.child);
  }
}

async function main() {
  if (!existsSync(join(root, 'www', 'pkg', 'wasm_client.js'))) {
    throw new Error('www/pkg/ is missing: run scripts/build-wasm.sh first');
  }
  const models = modelsDir();
  const bin = serverBin();
  const port = await freePort();
  let server = await startServer(bin, models, port);
  const { base, log } = server;
  console.log(`server on ${base} with models from ${models}`);
  const list = await (await fetch(`${base}/api/models`)).json();
  if (!check('server lists models', Array.isArray(list) && list.length > 0, `${list.length} model(s)`)) {
    console.log(log.join(''));
    return;
  }
  // The cheapest model keeps the test short (ten samples classified privately in the page).
  const model = list.reduce((a, b) => (a.relus <= b.relus ? a : b));

  const run = await launchChromium(chromium, { timeoutMs: 30000 });
  children.push(run.child);
  const { browser, userDataDir } = run;
  try {
    const context = browser.contexts()[0] || await browser.newContext();
    const page = await context.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${base}/`);
    await page.waitForSelector('#model:not([disabled])', { timeout: 30000 });
    check('page lists the models', (await page.locator('#model option').count()) === list.length);
    check('page is cross-origin isolated (COOP/COEP)', await page.evaluate(() => self.crossOriginIsolated));
    await page.selectOption('#model', model.name);
    // Selecting a model prepares a session: the page says when it is ready, and what it cost.
    const prepStart = Date.now();
    await waitFor(page, () => ['ready', 'failed'].includes(document.getElementById('status').dataset.state),
      null, { timeout: 570000, polling: 200 });
    const readyText = await page.locator('#status').textContent();
    check('page prepares the session on model selection and says so',
      /^Ready: the offline phase took/.test(readyText), `${readyText} (${Date.now() - prepStart} ms)`);

    await page.click(`.sample[data-sample="${sample}"]`);
    await waitFor(page, () => window.__demo.image !== null);
    await page.check('#reveal');
    await page.click('#classify');
    const t0 = Date.now();
    await waitFor(page, () => {
      const r = document.getElementById('result-class');
      return (r && r.dataset.class !== '') || !document.getElementById('banner').hidden;
    }, null, { timeout: 570000, polling: 200 });
    const wallMs = Date.now() - t0;
    const banner = await page.locator('#banner').evaluate((b) => (b.hidden ? '' : b.textContent));
    if (!check('private inference finished without error', banner === '', banner)) {
      console.log(consoleLines.join('\n'));
      console.log(log.join(''));
      return;
    }
    const shown = Number(await page.locator('#result-class').getAttribute('data-class'));
    const run = await page.evaluate(() => window.__demo.lastRun);

    // The server's plaintext fixed-point answer for the very same bytes the page sent.
    const plain = await plainAnswer(base, model.name, join(root, 'www', 'samples', `${sample}.jpg`));
    const onlineTimes = [];
    check('shown class equals the plaintext fixed-point class', shown === plain.class,
      `private ${shown} (${model.classes[shown]}), plaintext ${plain.class} (${model.classes[plain.class]})`);
    const maxDiff = Math.max(...plain.logits.map((v, i) => Math.abs(v - run.outcome.logits[i])));
    check('private logits equal the plaintext fixed-point logits', maxDiff < 1e-9, `max |diff| = ${maxDiff}`);
    await page.waitForSelector('#plain-class', { timeout: 60000 });
    check('"reveal" box shows the matching plaintext answer',
      Number(await page.locator('#plain-class').getAttribute('data-class')) === plain.class);
    check('the click cost only the online phase', run.timing.waitedMs > 0 && run.reprepared === null,
      `click → answer ${wallMs} ms seen by the test, ${run.timings.callMs.toFixed(0)} ms in the page (online ${run.timing.onlineMs.toFixed(0)} ms; offline ` +
      `${run.timing.offlineMs.toFixed(0)} ms done before the click)`);
    const t = run.traffic;
    check('breakdown: rounds and per-layer bars', t.online_rounds === run.plan.layers.length + 1 &&
      (await page.locator('.layer').count()) === run.plan.layers.length, `${t.online_rounds} rounds`);
    check('garbled evaluation ran in the evaluation workers', run.evalWorkers >= 1 && run.andPerSecPerWorker > 0 &&
      run.layerEval.length === run.plan.layers.length,
      `${run.evalWorkers} worker(s), ${(run.andPerSecPerWorker / 1e6).toFixed(2)} M AND/s each`);

    await page.screenshot({ path: join(out, 'demo.png'), fullPage: true });

    // Garbled-evaluation speed in the worker, and the tab's memory.
    await page.click('#bench');
    await waitFor(page, () => window.__demo.lastBench, null, { timeout: 120000 });
    const bench = await page.evaluate(() => window.__demo.lastBench);
    check('worker benchmark ran', bench.andPerSec > 0, `${(bench.andPerSec / 1e6).toFixed(2)} M AND/s`);
    const memory = await page.evaluate(async () => {
      if (!performance.measureUserAgentSpecificMemory) return null;
      const m = await Promise.race([performance.measureUserAgentSpecificMemory(),
        new Promise((r) => setTimeout(() => r(null), 20000))]);
      return m && m.bytes;
    });

    // A second click uses the session prepared in the background after the first answer.
    await waitFor(page, () => window.__demo.classifier && window.__demo.classifier.ready, null, { timeout: 570000, polling: 200 });
    await page.evaluate(() => { window.__demo.lastRun = null; document.getElementById('reveal').checked = false; });
    const t1 = Date.now();
    await page.click('#classify');
    await waitFor(page, () => window.__demo.lastRun || !document.getElementById('banner').hidden,
      null, { timeout: 300000, polling: 100 });
    const second = await page.evaluate(() => window.__demo.lastRun);
    check('second click: answered from the session prepared in the background',
      second && second.class === shown && second.timing.waitedMs > 0 && second.reprepared === null,
      second ? `click → answer ${Date.now() - t1} ms seen by the test, ${second.timings.callMs.toFixed(0)} ms in the page (online ${second.timing.onlineMs.toFixed(0)} ms)` : 'no result');

    // Every bundled sample: the page's private answer equals the native client's (bit for bit).
    const loop = process.env.CRYPTONAS_QUICK ? [] : SAMPLES;
    const nativeBin = loop.length ? clientBin() : null;
    let agree = 0;
    const mismatches = [];
    for (const name of loop) {
      await page.evaluate(() => { window.__demo.lastRun = null; document.getElementById('reveal').checked = false; });
      await page.click(`.sample[data-sample="${name}"]`);
      await waitFor(page, (n) => window.__demo.image && window.__demo.image.name.includes(`(${n})`), name);
      await page.click('#classify');
      await waitFor(page, () => window.__demo.lastRun || !document.getElementById('banner').hidden,
        null, { timeout: 300000, polling: 100 });
      const r = await page.evaluate(() => window.__demo.lastRun);
      const file = join(root, 'www', 'samples', `${name}.jpg`);
      const native = nativeBin ? nativeClassify(nativeBin, base, model.name, file) : null;
      const want = native || { class: (await plainAnswer(base, model.name, file)).class, ring: null };
      const ok = r && r.outcome.class === want.class &&
        (!want.ring || want.ring.join(',') === r.outcome.logits_ring.join(','));
      if (ok) agree++; else mismatches.push(`${name}: page ${r && r.outcome.class}, reference ${want.class}`);
      if (r) onlineTimes.push(r.timing.onlineMs);
    }
    if (loop.length) {
      check(`all ${loop.length} samples: page = ${nativeBin ? 'native client (class and ring logits)' : 'plaintext class'}`,
        agree === loop.length, mismatches.join('; ') || `${agree}/${loop.length} agree`);
    }

    const rendererPeak = rendererPeakRss(userDataDir);

    // The server restarts between preparation and click: the page prepares again, says so, and
    // answers right.
    await page.click(`.sample[data-sample="${sample}"]`);
    await waitFor(page, (n) => window.__demo.image && window.__demo.image.name.includes(`(${n})`), sample);
    await waitFor(page, () => window.__demo.classifier && window.__demo.classifier.ready, null, { timeout: 570000, polling: 200 });
    killGroup(server.child);
    await new Promise((r) => (server.child.exitCode !== null ? r() : server.child.once('exit', r)));
    server = await startServer(bin, models, port);
    await waitFor(page, () => document.getElementById('status').dataset.state === 'lost', null, { timeout: 30000 });
    await page.evaluate(() => { window.__demo.lastRun = null; });
    await page.click('#classify');
    await waitFor(page, () => window.__demo.lastRun || !document.getElementById('banner').hidden,
      null, { timeout: 570000, polling: 200 });
    const again = await page.evaluate(() => window.__demo.lastRun);
    const againStatus = await page.locator('#status').textContent();
    check('server restarted after preparation: the page prepares again, says so, answers right',
      again && again.class === shown && again.reprepared !== null && /prepared first/.test(againStatus),
      `${againStatus} (reprepared: ${again && again.reprepared}; class ${again && again.class})`);

    // A missing model is a clear error, not a hang.
    await page.evaluate(() => {
      const o = document.createElement('option');
      o.value = 'no-such-model';
      o.textContent = 'missing';
      document.getElementById('model').appendChild(o);
      window.__demo.models.push({ ...window.__demo.models[0], name: 'no-such-model' });
      document.getElementById('model').value = 'no-such-model';
      document.getElementById('reveal').checked = false;
    });
    await page.click('#classify');
    await waitFor(page, () => !document.getElementById('banner').hidden, null, { timeout: 30000 });
    const err = await page.locator('#banner').textContent();
    check('missing model shows a clear error', /does not host model/.test(err), err.trim());

    await classOnlyPage(context, bin, models, model.name);

    await page.setViewportSize({ width: 390, height: 844 });
    const phoneWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    check('phone viewport: no horizontal scrolling', phoneWidth <= 390, `${phoneWidth} px wide at 390 px`);
    await page.screenshot({ path: join(out, 'demo-phone.png'), fullPage: true });

    const metrics = {
      browser: `headless Chromium (Debian), a session worker and ${run.evalWorkers || 0} evaluation worker(s)`,
      model: model.name, relus: model.relus, sample,
      offline_ms: run.timing.offlineMs, online_ms: run.timing.onlineMs,
      online_client_layer_ms: run.layerEval.reduce((a, l) => a + l.ms, 0), total_ms: run.timing.totalMs, wall_ms: wallMs,
      bytes_up: t.offline_up + t.online_up, bytes_down: t.offline_down + t.online_down,
      offline_down: t.offline_down, online_down: t.online_down, online_rounds: t.online_rounds,
      and_per_sec_online: run.andPerSecOnline, and_per_sec_bench: bench.andPerSec,
      eval_workers: run.evalWorkers, and_per_sec_per_worker: run.andPerSecPerWorker,
      // The session worker's wasm memory after the first inference; the benchmark button runs
      // in a fresh evaluation worker of its own (terminated after).
      worker_wasm_memory_bytes: run.wasmMemoryBytes,
      bench_worker_wasm_memory_bytes: bench.wasmMemoryBytes,
      eval_workers_wasm_memory_bytes: run.evalWorkersMemoryBytes,
      online_ms_all_samples: onlineTimes,
      tab_memory_bytes: memory,
      renderer_peak_rss_bytes: rendererPeak,
    };
    writeFileSync(join(out, 'demo-metrics.json'), JSON.stringify(metrics, null, 2));
    console.log(JSON.stringify(metrics));
    // The only expected console error is the missing model's refused WebSocket (no favicon 404: the
    // page declares none).
    const errors = consoleLines.filter((l) => l.startsWith('pageerror') || (l.startsWith('error') && !/no-such-model/.test(l)));
    check('no uncaught page errors', errors.length === 0, errors.join(' | '));
    await browser.close().catch(() => {});
  } finally {
    run.kill();
  }
}

try {
  await main();
} catch (e) {
  check('test ran', false, e.stack || String(e));
} finally {
  for (const c of children) killGroup(c);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}
