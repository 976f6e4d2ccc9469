// The other runtimes: a standard WebSocket (Node's --experimental-websocket,
// as Node 22+ and browsers have it: the token goes as the subprotocol), and
// headless Chromium loading dist/ as an ES module from another origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { PACKAGE_DIR, serverFor } from './helpers.mjs';

const TOKEN = 'runtime-token-0123456789';

/** What the page (or script) does: REST and the terminal, with a token. */
const PROGRAM = (url) => `
const c = new ClaudeStudioClient(${JSON.stringify(url)}, { token: ${JSON.stringify(TOKEN)} });
const s = await c.createContainer();
const r = await c.executeCommand(s.id, 'echo rest-$((2*21))');
let text = '';
c.onOutput((d) => { text += d; }, s.id);
await c.sendInput(s.id, 'echo term-$((6*7))\\n');
const until = Date.now() + 10000;
while (!text.includes('term-42') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
// (Written by a command, not writeFile: the server's CORS preflight allows no PUT.)
await c.executeCommand(s.id, 'echo AAH/ | base64 -d > /workspace/b.bin');
const back = Array.from(await c.readFile(s.id, '/workspace/b.bin'));
const size = (await c.stat(s.id, '/workspace/b.bin')).size;
let typedError = '';
try { await c.getContainer('session-nope000000000000000000'); } catch (e) { typedError = e.name + ':' + (e instanceof ContainerNotFoundError); }
await c.removeContainer(s.id);
c.close();
result = { stdout: r.stdout, typed: text.includes('term-42'), size, back, typedError };
`;

const EXPECTED = { stdout: 'rest-42\n', typed: true, size: 3, back: [0, 1, 255], typedError: 'ContainerNotFoundError:true' };

function spawnCollect(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

test('a standard WebSocket (no ws package): the token as subprotocol', { timeout: 60_000 }, async (t) => {
  const server = await serverFor(t, { args: ['--api-token', TOKEN] });
  const script = `
if (typeof WebSocket !== 'function') throw new Error('no global WebSocket');
const { ClaudeStudioClient, ContainerNotFoundError } = await import(${JSON.stringify(join(PACKAGE_DIR, 'dist/index.js'))});
let result;
${PROGRAM(server.ws)}
console.log(JSON.stringify(result));`;
  const r = await spawnCollect(process.execPath, ['--experimental-websocket', '--no-warnings', '--input-type=module', '-e', script]);
  assert.equal(r.code, 0, r.out);
  assert.deepEqual(JSON.parse(r.out.trim().split('\n').at(-1)), EXPECTED);
});

const CHROMIUM = process.env.CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

test('in a browser (headless Chromium), from another origin', { timeout: 90_000, skip: CHROMIUM ? false : 'no Chromium here (set CHROMIUM)' }, async (t) => {
  // The page's own origin: serves dist/ and the page, and takes its result.
  let report;
  const got = new Promise((r) => (report = r));
  const pages = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/result') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        res.end('ok');
        report(body);
      });
      return;
    }
    if (req.url === '/') {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><meta charset="utf-8"><script type="module">
import { ClaudeStudioClient, ContainerNotFoundError } from '/dist/index.js';
let result;
try {
${PROGRAM(pages.serverWs)}
} catch (e) { result = { error: String(e && e.name) + ': ' + String(e && e.message) }; }
await fetch('/result', { method: 'POST', body: JSON.stringify(result) });
</script>`);
      return;
    }
    const m = /^\/dist\/([\w.-]+\.js)$/.exec(req.url ?? '');
    if (m && existsSync(join(PACKAGE_DIR, 'dist', m[1]))) {
      res.setHeader('content-type', 'text/javascript');
      res.end(readFileSync(join(PACKAGE_DIR, 'dist', m[1])));
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise((r) => pages.listen(0, '127.0.0.1', r));
  t.after(() => pages.close());
  const origin = `http://127.0.0.1:${pages.address().port}`;
  const server = await serverFor(t, { args: ['--api-token', TOKEN, '--allowed-origin', origin, '--cors-origin', origin] });
  pages.serverWs = server.ws;
  const profile = await mkdtemp(join(tmpdir(), 'studio-ts-chromium-'));
  const browser = spawn(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${profile}`, origin + '/'], { stdio: 'ignore' });
  const browserExit = new Promise((r) => browser.once('exit', r));
  t.after(async () => {
    browser.kill('SIGKILL');
    await browserExit;
    await rm(profile, { recursive: true, force: true });
  });
  let timer;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the page reported nothing in 60 s')), 60_000)));
  const result = JSON.parse(await Promise.race([got, timeout]).finally(() => clearTimeout(timer)));
  assert.deepEqual(result, EXPECTED);
});
