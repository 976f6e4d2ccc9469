// The page against a scripted server (REST and WebSocket mocked in the
// browser): the parts of the contract that need no container. Only the page
// itself (index.html and assets) comes from STUDIO_URL.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BASE, launch, newPage, waitState, waitTerm } from './helpers.mjs';

const SID = 'session-Contract0123456789abcdef';
// base64 of this has '+' and '/', so base64url must differ from base64.
const GOOD = '>>>???';
const GOOD_B64URL = 'Pj4-Pz8_';
const HOST_PREVIEW = `http://8000-${SID.toLowerCase()}.localhost:9/?token=link-tok`;

test('contract: token, subprotocol, attach/since, ports, preview, errors, exit, reconnects', async () => {
  const browser = await launch();
  const { page, log } = await newPage(browser, { width: 1280, height: 800 });
  /** @type {any[]} */
  const sent = [];
  /** @type {import('playwright-core').WebSocketRoute[]} */
  const sockets = [];
  try {
    const json = (/** @type {any} */ body, status = 200) => ({ status, contentType: 'application/json', body: JSON.stringify(body) });
    await page.route('**/api/health', (r) => r.fulfill(json({ status: 'ok', docker: 'connected', uptime: 1, sessions: 1, warmPool: 0, authRequired: true })));
    await page.route('**/api/images', (r) => r.fulfill(json({ defaultImage: 'studio-test-busybox:latest', allowed: [], local: ['studio-test-busybox:latest'] })));
    await page.route('**/api/containers', (r) => {
      if (r.request().headers()['authorization'] !== 'Bearer ' + GOOD) {
        return r.fulfill(json({ error: 'AuthenticationError', message: 'Invalid API token', retryable: false, statusCode: 401 }, 401));
      }
      return r.fulfill(json([{ sessionId: SID, containerId: 'c0ffee', status: 'running', image: 'studio-test-busybox:latest', createdAt: Math.floor(Date.now() / 1000) }]));
    });
    let seq = 0;
    await page.routeWebSocket(/\/ws$/, (ws) => {
      sockets.push(ws);
      ws.onMessage((m) => {
        const msg = JSON.parse(String(m));
        sent.push(msg);
        const out = (/** @type {any} */ o) => ws.send(JSON.stringify(o));
        if (msg.type === 'attach') {
          out({ type: 'attached', sessionId: SID, containerId: 'c0ffee', status: 'running' });
          out({ type: 'output', sessionId: SID, data: `replayed-line-${sockets.length}\r\n/workspace $ `, replay: true });
          if (sockets.length === 1 && sent.filter((x) => x.type === 'attach').length === 1) {
            out({ type: 'port_opened', sessionId: SID, port: 8000, previewUrl: `/preview/${SID}`, seq: ++seq });
          }
        } else if (msg.type === 'configure_preview') {
          out({ type: 'preview_configured', sessionId: SID, previewUrl: `/preview/${SID}`, targetUrl: `http://localhost:${msg.port}`, hostPreviewUrl: HOST_PREVIEW });
        } else if (msg.type === 'input') {
          out({ type: 'output', sessionId: SID, data: msg.data === '\r' ? '\r\n' : msg.data });
        }
      });
    });

    // Records the subprotocols the page asks for (registered after routeWebSocket, so it wraps it).
    await page.addInitScript(() => {
      const W = window.WebSocket;
      /** @type {any} */ (window).__protocols = [];
      window.WebSocket = /** @type {any} */ (class extends W {
        /** @param {string | URL} url @param {string | string[]} [p] */
        constructor(url, p) {
          super(url, p);
          /** @type {any} */ (window).__protocols.push(p ?? null);
        }
      });
    });
    await page.goto(`${BASE}/s/${SID}`);
    await page.getByTestId('token-prompt').waitFor();
    await page.getByTestId('token-input').fill('wrong');
    await page.getByTestId('token-submit').click();
    await page.getByTestId('token-error').filter({ hasText: /wrong token/i }).waitFor();
    await page.getByTestId('token-input').fill(GOOD);
    await page.getByTestId('token-submit').click();
    await waitState(page, 'running');
    await waitTerm(page, 'replayed-line-1');

    assert.deepEqual(await page.evaluate(() => /** @type {any} */ (window).__protocols), [['claude-studio', 'claude-studio.bearer.' + GOOD_B64URL]]);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('claude-studio.token')), GOOD);
    assert.equal(await page.evaluate(() => localStorage.getItem('claude-studio.token')), null);
    const attach = sent.find((m) => m.type === 'attach');
    assert.deepEqual(attach, { type: 'attach', sessionId: SID, since: 0 });
    assert.ok(sent.some((m) => m.type === 'resize' && m.sessionId === SID && m.cols > 10 && m.rows > 5), 'the size is sent after attaching');

    // port_opened with no port chosen: the preview is configured and shown on hostPreviewUrl.
    await page.waitForFunction(() => window.__studio.previewUrl !== null);
    assert.deepEqual(sent.filter((m) => m.type === 'configure_preview'), [{ type: 'configure_preview', sessionId: SID, port: 8000 }]);
    const src = new URL(/** @type {string} */ (await page.evaluate(() => window.__studio.previewUrl)));
    assert.equal(src.origin, new URL(HOST_PREVIEW).origin);
    assert.equal(src.searchParams.get('token'), 'link-tok');
    assert.equal(await page.getByTestId('preview-port').inputValue(), '8000');

    const ws = sockets[0];
    const out = (/** @type {any} */ o) => ws.send(JSON.stringify(o));
    // Console messages, with kind; a seq to resume from.
    out({ type: 'console', sessionId: SID, level: 'warn', args: ['careful', { a: [1, 2] }], url: 'http://x/app.js', timestamp: Date.now(), seq: ++seq });
    out({ type: 'console', sessionId: SID, level: 'error', args: ['Uncaught TypeError: x is undefined'], url: 'http://x/', timestamp: Date.now(), kind: 'uncaught', seq: ++seq });
    await page.locator('[data-testid=console-entry][data-level=warn]', { hasText: 'careful' }).waitFor();
    await page.locator('[data-testid=console-entry][data-kind=uncaught]').waitFor();

    // Every error is shown in words.
    out({ type: 'error', error: 'DockerDaemonError', message: 'Docker daemon is not reachable', retryable: true });
    await page.getByTestId('toast').filter({ hasText: 'Docker daemon is not reachable' }).waitFor();

    // Shell exit → "Start a new shell" sends attach.
    out({ type: 'exit', sessionId: SID, code: 130, signal: null });
    await waitState(page, 'exited');
    assert.match((await page.getByTestId('status-text').textContent()) ?? '', /130/);
    const before = sent.filter((m) => m.type === 'attach').length;
    await page.getByTestId('new-shell').click();
    await waitState(page, 'running');
    assert.equal(sent.filter((m) => m.type === 'attach').length, before + 1);

    // "Client too slow": reconnect after the delay and re-attach from the last seq.
    out({ type: 'reconnect', reason: 'Client too slow', delay: 300 });
    await ws.close({ code: 1000, reason: 'reconnect' });
    await page.waitForFunction(() => window.__studio.state === 'reconnecting');
    await page.waitForFunction(() => window.__studio.term().includes('replayed-line-2'), null, { timeout: 10000 });
    assert.equal(sockets.length, 2);
    assert.deepEqual(sent.filter((m) => m.type === 'attach').at(-1), { type: 'attach', sessionId: SID, since: seq });

    // "Session expired": the session is gone; offer the way back.
    sockets[1].send(JSON.stringify({ type: 'reconnect', reason: 'Session expired', delay: 1000 }));
    await sockets[1].close();
    await waitState(page, 'gone');
    await page.waitForTimeout(1500);
    assert.equal(sockets.length, 2, 'no reconnect to a gone session');
    await page.getByTestId('back-to-list').click();
    await page.getByTestId('home').waitFor();
    assert.equal(new URL(page.url()).pathname, '/');
  } catch (e) {
    console.error('--- page console ---\n' + log.join('\n') + '\n--- sent ---\n' + sent.map((m) => JSON.stringify(m)).join('\n'));
    throw e;
  } finally {
    await browser.close();
  }
});
