// The npm package as a third-party site meets it: installs the packed tarball into a fresh folder
// (`npm install --offline <tarball>`: a local tarball without dependencies needs no registry), lays
// out examples/embed/ next to it, type-checks the example against the shipped declarations
// (`tsc -p`, and a misuse that must fail), serves the folder with the real server
// (`cryptonas-server --www <folder>`, bundled models), runs the example in headless Debian
// Chromium, classifies a bundled sample through its file input and checks class and logits
// against the server's plaintext fixed-point engine (`/api/plain/<model>`), bit for bit.
//
//   node tests/browser/embed.spec.mjs <tarball>    (scripts/build-npm.sh prints the tarball)
//
// Env: CRYPTONAS_SERVER_BIN (default: build it with cargo), CRYPTONAS_TEST_MODELS (default:
// models/), CRYPTONAS_EMBED_MODEL (default cnet1-c4, the cheapest bundled model), CARGO_TARGET_DIR.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { killGroup, launchChromium, waitFor } from './chromium.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target');
const model = process.env.CRYPTONAS_EMBED_MODEL || 'cnet1-c4';
const sample = join(root, 'www', 'samples', 'cat.jpg');
const tsc = join(root, 'tests', 'node_modules', 'typescript', 'bin', 'tsc');
let passed = 0;
let failed = 0;

function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok   ${name}${detail ? ' — ' + detail : ''}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? ' — ' + detail : ''}`); }
  return ok;
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: process.env });
  return { ok: r.status === 0, out: `${r.stdout || ''}${r.stderr || ''}${r.error ? r.error.message : ''}` };
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

function serverBin() {
  if (process.env.CRYPTONAS_SERVER_BIN) return process.env.CRYPTONAS_SERVER_BIN;
  const r = spawnSync('cargo', ['build', '-q', '-p', 'cryptonas-server'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('cargo build -p cryptonas-server failed');
  return join(targetDir, 'debug', 'cryptonas-server');
}

async function startServer(bin, www) {
  const port = await freePort();
  const log = [];
  const child = spawn(bin, ['--models', process.env.CRYPTONAS_TEST_MODELS || join(root, 'models'),
    '--www', www, '--bind', `127.0.0.1:${port}`, '--allow-plaintext'],
  { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}):\n${log.join('')}`);
    try {
      if ((await fetch(`${base}/api/health`)).ok) return { base, log, child };
    } catch (_) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  killGroup(child);
  throw new Error(`server did not come up in 120 s:\n${log.join('')}`);
}

async function main() {
  const tarball = process.argv[2] && resolve(process.argv[2]);
  if (!tarball || !existsSync(tarball)) throw new Error(`usage: embed.spec.mjs <tarball> (got ${tarball})`);
  const site = mkdtempSync(join(tmpdir(), 'cryptonas-embed-'));
  let server = null;
  let browser = null;
  try {
    // 1. A fresh folder installs the tarball, as a web developer would.
    writeFileSync(join(site, 'package.json'), JSON.stringify({ name: 'embed-site', private: true, type: 'module' }));
    // An empty npm cache: the install must need nothing but the tarball.
    const inst = run('npm', ['install', '--offline', '--cache', join(site, '.npm-cache'), '--no-audit', '--no-fund',
      '--ignore-scripts', tarball], site);
    if (!check('npm install <tarball> (offline) in a fresh folder', inst.ok, inst.ok ? '' : inst.out)) return;
    const pkg = join(site, 'node_modules', 'cryptonas');
    const files = ['package.json', 'cryptonas.js', 'cryptonas.d.ts', 'README.md', 'worker.js', 'eval-worker.js',
      'eval-jobs.js', 'wasm.js', 'pkg/wasm_client.js', 'pkg/wasm_client_bg.wasm', 'pkg-relaxed/wasm_client.js',
      'pkg-relaxed/wasm_client_bg.wasm'];
    const missing = files.filter((f) => !existsSync(join(pkg, f)));
    check('the package holds the module, its workers, the glue and the .wasm', missing.length === 0,
      missing.length ? `missing: ${missing.join(', ')}` : `${files.length} files`);
    for (const f of ['index.html', 'embed.js', 'tsconfig.json']) copyFileSync(join(root, 'examples', 'embed', f), join(site, f));

    // 2. The example type-checks against the shipped declarations, and a misuse does not.
    const ok = run(process.execPath, [tsc, '-p', join(site, 'tsconfig.json')], site);
    check('tsc --noEmit: examples/embed/embed.js against cryptonas.d.ts', ok.ok, ok.ok ? '' : ok.out);
    writeFileSync(join(site, 'misuse.ts'), "import { PrivateClassifier } from 'cryptonas';\n"
      + "const c = await PrivateClassifier.connect({ modle: 'cnet1-c4' });\nconst n: number = (await c.classify(new Blob())).label;\n");
    writeFileSync(join(site, 'tsconfig.misuse.json'), JSON.stringify({
      extends: './tsconfig.json', compilerOptions: { module: 'es2022', moduleResolution: 'bundler' }, files: ['misuse.ts'],
    }));
    const bad = run(process.execPath, [tsc, '-p', join(site, 'tsconfig.misuse.json')], site);
    check('tsc rejects a misuse through the package name (declarations are really used)',
      !bad.ok && /modle/.test(bad.out) && /TS2322/.test(bad.out), bad.ok ? 'it passed' : bad.out.split('\n').filter(Boolean).length + ' diagnostic lines');

    // 3. The real server serves the folder; the example runs in headless Chromium.
    server = await startServer(serverBin(), site);
    console.log(`server on ${server.base}, www = ${site}`);
    const launched = await launchChromium(chromium, { prefix: 'cryptonas-embed-' });
    browser = launched;
    const page = await (await launched.browser.newContext()).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`); });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
      if (process.env.CRYPTONAS_VERBOSE) console.log(`page: ${m.text()}`);
    });
    await page.goto(`${server.base}/index.html?model=${model}`);
    const state = () => document.getElementById('result').dataset.state;
    // Waits until the result line reaches one of `states`; on a timeout, says where it stands.
    const settle = async (states) => {
      try {
        await waitFor(page, (s) => s.includes(document.getElementById('result').dataset.state), states, { timeout: 300000 });
      } catch (e) {
        throw new Error(`${e.message}; the page says "${await page.locator('#result').textContent()}"; errors: ${errors.join(' | ')}`);
      }
    };
    const t0 = Date.now();
    await settle(['ready', 'failed']);
    const readyText = await page.locator('#result').textContent();
    if (!check('the example prepares a session', (await page.evaluate(state)) === 'ready', `${readyText} (${Date.now() - t0} ms)`)) return;

    await page.setInputFiles('#image', sample);
    const t1 = Date.now();
    await settle(['done', 'failed']);
    const text = await page.locator('#result').textContent();
    if (!check('the example classifies the file', (await page.evaluate(state)) === 'done', `"${text}" (${Date.now() - t1} ms)`)) return;
    const shown = await page.evaluate(() => {
      const d = document.getElementById('result').dataset;
      return { cls: Number(d.class), logits: JSON.parse(d.logits) };
    });

    // 4. Bit-exact with the plaintext fixed-point engine on the same bytes.
    const r = await fetch(`${server.base}/api/plain/${model}`, { method: 'POST', body: readFileSync(sample) });
    const plain = await r.json();
    check('class equals the plaintext fixed-point class', shown.cls === plain.class, `private ${shown.cls}, plaintext ${plain.class}`);
    const same = Array.isArray(plain.logits) && plain.logits.length === shown.logits.length
      && plain.logits.every((v, i) => Object.is(v, shown.logits[i]));
    check('logits equal the plaintext fixed-point logits bit for bit', same,
      `${shown.logits.length} logits${same ? '' : `: private ${shown.logits}, plaintext ${plain.logits}`}`);
    check('no errors in the page', errors.length === 0, errors.join(' | '));
  } finally {
    if (browser) browser.kill();
    if (server) killGroup(server.child);
    rmSync(site, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  check('embed test ran', false, e.stack || String(e));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
