// A small Chrome DevTools Protocol client for the benchmark driver: one page target, driven over
// Chromium's own DevTools WebSocket, with only the domains the measurement needs.
//
// Why not Playwright here: Playwright attaches to every dedicated worker and enables the Network
// domain in it, so Chromium reports each WebSocket frame of the session worker to the driver as
// base64 JSON. With ~200 MB of garbled tables per inference, the browser's DevTools thread then
// kept one of this machine's two cores busy for the whole run (measured from /proc: ~100 % of a
// core, also between inferences), and the evaluation workers shared the other. A user's tab has
// no DevTools attached, so the benchmark must not have that cost either. Under an emulated
// network (drive.mjs) the session worker does get a DevTools session with Network enabled: the
// emulation only reaches its WebSocket that way (its timers also depend on the machine: README,
// Results). The page test (tests/browser/demo.spec.mjs) keeps Playwright: it asserts behaviour,
// not speed.

import { createRequire } from 'node:module';

/// The WebSocket class: Node's own (Node ≥ 22), else the `ws` bundled in playwright-core.
function webSocketClass(modulesDir) {
  if (globalThis.WebSocket) return globalThis.WebSocket;
  return createRequire(`${modulesDir}/`)('playwright-core/lib/utilsBundle').ws;
}

/// Opens a new page in the browser at `browserWsUrl` (the "DevTools listening on" address) and
/// attaches to it. Returns the page object; `close()` closes the connection.
export async function openPage(browserWsUrl, { modulesDir }) {
  const WebSocketImpl = webSocketClass(modulesDir);
  const ws = new WebSocketImpl(browserWsUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (e) => reject(new Error(`cannot connect to Chromium's DevTools: ${e.message || e.type || e}`));
  });
  let nextId = 1;
  const pending = new Map(); // id -> {resolve, reject, method}
  const listeners = new Map(); // method -> [fn]
  let closed = null;
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    if (m.id !== undefined) {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error) p.reject(new Error(`${p.method}: ${m.error.message}`));
      else p.resolve(m.result);
    } else {
      for (const fn of listeners.get(m.method) || []) fn(m.params, m.sessionId);
    }
  };
  ws.onclose = () => {
    closed = new Error('the DevTools connection closed');
    for (const p of pending.values()) p.reject(closed);
    pending.clear();
  };
  const send = (method, params = {}, sessionId = undefined) => {
    if (closed) return Promise.reject(closed);
    const id = nextId++;
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
  };
  const browserVersion = (await send('Browser.getVersion')).product;
  const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  const pageSend = (method, params) => send(method, params, sessionId);
  const on = (method, fn) => {
    const l = listeners.get(method) || [];
    l.push((params, sid) => { if (sid === sessionId) fn(params); });
    listeners.set(method, l);
  };
  await pageSend('Page.enable');
  await pageSend('Runtime.enable');

  /// Runs `fn(arg)` in the page (fn must be self-contained, as with Playwright) and returns its
  /// JSON value, awaiting a promise.
  const evaluate = async (fn, arg = null) => {
    const expression = `(${fn.toString()})(${JSON.stringify(arg)})`;
    const r = await pageSend('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`in the page: ${(d.exception && d.exception.description) || d.text}`);
    }
    return r.result.value;
  };
  const waitUntil = async (fn, arg, { timeout = 30000, polling = 100, what = 'condition' } = {}) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      if (await evaluate(fn, arg)) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, polling));
    }
  };
  const page = {
    send: pageSend,
    /// Sends to another session of this connection (a worker attached through the page's
    /// `Target.setAutoAttach`).
    sendTo: (childSession, method, params) => send(method, params, childSession),
    on,
    evaluate,
    /// The browser's version (`156.0.8078.129`).
    version: () => browserVersion.split('/').pop(),
    /// Navigates and waits for the load event.
    async goto(url, { timeout = 60000 } = {}) {
      const r = await pageSend('Page.navigate', { url });
      if (r.errorText) throw new Error(`cannot load ${url}: ${r.errorText}`);
      await waitUntil(() => document.readyState === 'complete', null, { timeout, what: `${url} to load` });
    },
    /// Waits until `selector` matches an element.
    waitForSelector(selector, { timeout = 30000 } = {}) {
      return waitUntil((s) => !!document.querySelector(s), selector, { timeout, what: selector });
    },
    /// Waits until `fn(arg)` is truthy in the page.
    waitFor(fn, arg = null, opts = {}) {
      return waitUntil(fn, arg, opts);
    },
    /// Clicks the element (its click handlers run as for a user's click).
    async click(selector) {
      const found = await evaluate((s) => {
        const el = document.querySelector(s);
        if (!el) return false;
        el.click();
        return true;
      }, selector);
      if (!found) throw new Error(`no element matches ${selector}`);
    },
    /// Chooses `value` in a <select> and fires its input and change events.
    async selectOption(selector, value) {
      const ok = await evaluate(([s, v]) => {
        const el = document.querySelector(s);
        if (!el || ![...el.options].some((o) => o.value === v)) return false;
        el.value = v;
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
        return true;
      }, [selector, value]);
      if (!ok) throw new Error(`${selector} has no option ${value}`);
    },
    close() {
      try { ws.close(); } catch (_) { /* already closed */ }
    },
  };
  return page;
}
