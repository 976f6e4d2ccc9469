// The seed's documented example, run as a script against a real server on
// ws://localhost:3333, verbatim apart from the image and the workspaceDir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ClaudeStudioClient } from '../dist/index.js';
import { IMAGE, PACKAGE_DIR, serverFor } from './helpers.mjs';

function portFree(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function run(file) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [file], { cwd: PACKAGE_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, out });
    });
  });
}

test('the documented example, and the README\'s, run as scripts and exit by themselves', { timeout: 90_000 }, async (t) => {
  // The examples name ws://localhost:3333: serve there when it is free.
  const free = await portFree(3333);
  const server = await serverFor(t, free ? { listen: '127.0.0.1:3333' } : {});
  if (!free) t.diagnostic('port 3333 is taken here: the examples run against another port');
  const port = (text) => (free ? text : text.replaceAll('localhost:3333', `localhost:${server.port}`));
  const client = new ClaudeStudioClient(server.ws);

  await t.test('the seed documentation\'s example', async (t) => {
    const script = readFileSync(join(PACKAGE_DIR, 'test/fixtures/seed-example.mjs'), 'utf8')
      .replace("image: 'node:20-alpine'", `image: '${IMAGE}'`)
      .replace("  workspaceDir: '/opt/dev/my-project',\n", '');
    assert.ok(script.includes(`image: '${IMAGE}'`) && !script.includes("workspaceDir: '"));
    const r = await runScript(t, port(script));
    assert.equal(r.code, 0, `the example failed:\n${r.out}`);
    // It created a session and removed it again.
    assert.deepEqual(await client.listContainers(), []);
  });

  await t.test('the README\'s paste-and-run example', async (t) => {
    const readme = readFileSync(join(PACKAGE_DIR, 'README.md'), 'utf8');
    const script = /```js\n([\s\S]*?)```/.exec(readme)[1];
    assert.ok(script.includes("new ClaudeStudioClient('ws://localhost:3333')"));
    const r = await runScript(t, port(script));
    assert.equal(r.code, 0, `the README example failed:\n${r.out}`);
    assert.match(r.out, /^0 hello from /m);
    assert.match(r.out, /typed into the terminal/);
    assert.match(r.out, /preview at http:\/\/localhost:\d+\/preview\/session-/);
    assert.deepEqual(await client.listContainers(), []);
  });
});

/** Runs a script inside the package (so '@claude-studio/client' resolves to it) and checks it exits soon. */
async function runScript(t, text) {
  const file = join(PACKAGE_DIR, `test/fixtures/.example-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, text);
  t.after(() => rmSync(file, { force: true }));
  const started = Date.now();
  const r = await run(file);
  assert.ok(Date.now() - started < 40_000, 'the script took too long (did it hang on an open handle?)');
  return r;
}
