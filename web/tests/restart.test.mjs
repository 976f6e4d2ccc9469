// The server stops and starts again (same address, same state): the page
// shows that it is reconnecting, and comes back by itself to the same
// session, still interactive. This test runs the server itself: STUDIO_BIN,
// STUDIO_INSTANCE and STUDIO_STATE_DIR say how.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { IMAGE, lines, run, waitCreated, waitState, waitTerm, withPage } from './helpers.mjs';

const BIN = process.env.STUDIO_BIN;

/** A free loopback port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** Starts the server on `port`; resolves once it listens.
 * @param {number} port */
function start(port) {
  const child = spawn(BIN ?? '', [
    '--listen', `127.0.0.1:${port}`,
    '--instance', process.env.STUDIO_INSTANCE ?? 'web-restart',
    '--state-dir', process.env.STUDIO_STATE_DIR ?? '/tmp/studio-web-restart',
    '--default-image', IMAGE,
    '--rate-limit-ws', 'off',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`the server exited (${c}) before listening`)));
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('listening on')) resolve(child);
    });
  });
}

/** @param {import('node:child_process').ChildProcess} child */
function stop(child) {
  return new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
}

test('restart: the page reconnects by itself to the same session', { skip: !BIN && 'set STUDIO_BIN' }, async () => {
  const port = await freePort();
  let server = await start(port);
  try {
    await withPage({ width: 1200, height: 800 }, async (page) => {
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.locator('[data-testid=image-input][data-loaded]').waitFor();
      await page.getByTestId('image-input').fill(IMAGE);
      await page.getByTestId('create-button').click();
      const id = await waitCreated(page);
      await run(page, 'echo before-$((40+2))');
      await waitTerm(page, (t) => lines(t).includes('before-42'));

      await stop(server);
      await page.waitForFunction(() => window.__studio.states.includes('reconnecting'), null, { timeout: 20000 });
      server = await start(port);
      await waitState(page, 'running', 60000);
      assert.equal(await page.evaluate(() => window.__studio.sessionId), id, 'the same session');
      assert.equal(new URL(page.url()).pathname, `/s/${id}`);
      await run(page, 'echo after-$((40+3))');
      await waitTerm(page, (t) => lines(t).includes('after-43'), 20000);
      // Removed through the restarted server (the session survived it).
      const r = await page.evaluate(async (sid) => (await fetch(`/api/containers/${sid}`, { method: 'DELETE' })).status, id);
      assert.equal(r, 200);
    });
  } finally {
    await stop(server);
  }
});
