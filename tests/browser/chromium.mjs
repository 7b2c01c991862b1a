// Launching Debian's headless Chromium for the page test (tests/browser/demo.spec.mjs) and the
// benchmark's browser mode (bench/browser/drive.mjs): one set of flags, one way to find the
// renderer's memory, one way to take the browser down with its whole process group.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/// No GPU, no network besides the page's own, no throttling of background timers or renderers
/// (the evaluation workers must run at full speed in a headless tab), and measurable memory.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--enable-blink-features=ForceEagerMeasureMemory'];

/// SIGKILLs a detached child's whole process group (Chromium's zygote, renderers, GPU process).
export function killGroup(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(-child.pid, 'SIGKILL'); } catch (_) { try { child.kill('SIGKILL'); } catch (_) { /* gone */ } }
}

/// Starts `bin` headless with a fresh profile and DevTools on a free port. Returns
/// `{ child, userDataDir, wsUrl, kill }`; `kill()` ends the process group and removes the profile,
/// and is safe to call more than once.
export async function startChromium({ bin = '/usr/bin/chromium', prefix = 'cryptonas-chromium-', timeoutMs = 60000 } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), prefix));
  const child = spawn(bin, [...CHROMIUM_ARGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-port=0',
    'about:blank'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const kill = () => {
    killGroup(child);
    rmSync(userDataDir, { recursive: true, force: true });
  };
  try {
    const wsUrl = await new Promise((res, rej) => {
      let buf = '';
      const t = setTimeout(() => rej(new Error(`chromium did not start in ${timeoutMs / 1000} s:\n${buf}`)), timeoutMs);
      const onData = (d) => {
        buf += String(d);
        const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) {
          clearTimeout(t);
          // Found: keep draining stderr (a full pipe would block Chromium) without keeping it.
          child.stderr.off('data', onData);
          child.stderr.resume();
          res(m[1]);
        }
      };
      child.stderr.on('data', onData);
      child.once('error', (e) => { clearTimeout(t); rej(new Error(`cannot run ${bin}: ${e.message}`)); });
      child.once('exit', (c) => { clearTimeout(t); rej(new Error(`chromium exited (${c}):\n${buf}`)); });
    });
    return { child, userDataDir, wsUrl, kill };
  } catch (e) {
    kill();
    throw e;
  }
}

/// [`startChromium`] and Playwright connected over CDP (`chromium` from playwright-core). Returns
/// `{ browser, child, userDataDir, kill }`.
export async function launchChromium(chromium, opts = {}) {
  const run = await startChromium(opts);
  try {
    const browser = await chromium.connectOverCDP(run.wsUrl);
    return { browser, child: run.child, userDataDir: run.userDataDir, kill: run.kill };
  } catch (e) {
    run.kill();
    throw e;
  }
}

/// Peak resident memory (VmHWM) of the renderer processes of the browser using `userDataDir`:
/// the page and its dedicated workers share one renderer process.
export function rendererPeakRss(userDataDir) {
  return largestStatusBytes(rendererPids(userDataDir), ['VmHWM']) || null;
}

/// Polls `fn(arg)` in the page until it is truthy. page.waitForFunction compiles its predicate
/// inside the page, which the page's Content-Security-Policy (no 'unsafe-eval') forbids;
/// page.evaluate runs over CDP and is allowed.
export async function waitFor(page, fn, arg = null, { timeout = 30000, polling = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > deadline) throw new Error(`waitFor: timed out after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, polling));
  }
}

/// The renderer processes of the browser using `userDataDir`.
function rendererPids(userDataDir) {
  const pids = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('--type=renderer') && cmd.includes(userDataDir)) pids.push(pid);
    } catch (_) { /* process gone */ }
  }
  return pids;
}

/// The largest, over the processes `pids`, of the sum of the `keys` fields (kB) of
/// /proc/<pid>/status, in bytes; 0 if none could be read.
function largestStatusBytes(pids, keys) {
  let largest = 0;
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = keys.reduce((sum, k) => sum + Number((st.match(new RegExp(`${k}:\\s+(\\d+) kB`)) || [0, 0])[1]), 0);
      largest = Math.max(largest, kb * 1024);
    } catch (_) { /* process gone */ }
  }
  return largest;
}

/// Samples the renderers' private resident memory (RssAnon + RssShmem: the heaps, wasm memories
/// and buffers, without the pages of Chromium's binary and data files that every one of its
/// processes maps and shares) every `intervalMs`; `stop()` returns the largest sample of one
/// renderer in bytes (null if none was seen). VmHWM ([`rendererPeakRss`]) also counts those
/// shared file pages (about 120 MB here), and no peak of the private part alone is kept by the
/// kernel, hence the sampling: a peak shorter than the interval can be missed.
export function sampleRendererPrivate(userDataDir, intervalMs = 50) {
  let peak = 0;
  let pids = [];
  let ticks = 0;
  const tick = () => {
    if (ticks++ % 20 === 0) pids = rendererPids(userDataDir); // new renderers appear rarely
    peak = Math.max(peak, largestStatusBytes(pids, ['RssAnon', 'RssShmem']));
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return peak || null;
    },
  };
}
