// A newcomer's path on a machine without registry access: the page's
// default image (the server falls back to its local development image),
// a Node.js server started in the terminal, its page in the preview and its
// console in the console pane. Needs the server's default image to be
// absent and the development image built (scripts/test does both).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BASE, passTokenPrompt, run, waitCreated, waitTerm, withPage, writeFile, previewPicks } from './helpers.mjs';

const APP = `require('http').createServer((q, r) => {
  r.setHeader('content-type', 'text/html');
  r.end('<!doctype html><html><head><title>app</title></head><body><h1 id="hello">Hello, newcomer</h1>' +
    '<script>console.log("newcomer-log", {node: process.version}); console.error("newcomer-error")</script></body></html>'
    .replace('process.version', JSON.stringify(process.version)));
}).listen(8000, () => console.log('listening-' + (4000 * 2)));
`;

test('newcomer: default image, a node server from the terminal, its page and console', async () => {
  await withPage({ width: 1400, height: 900 }, async (page) => {
    await page.goto(BASE + '/');
    await passTokenPrompt(page);
    await page.locator('[data-testid=image-input][data-loaded]').waitFor();
    // The default image, as a newcomer leaves it.
    await page.getByTestId('create-button').click();
    const id = await waitCreated(page, 180000);

    await writeFile(page, '/tmp/app.js', APP);
    await run(page, 'node /tmp/app.js &');
    await waitTerm(page, 'listening-8000', 20000);

    // The first port to open is previewed by itself.
    await previewPicks(page, 8000);
    const frame = page.frameLocator('#preview-frame');
    await frame.locator('#hello').waitFor({ timeout: 20000 });
    assert.equal(await frame.locator('#hello').textContent(), 'Hello, newcomer');

    const entry = (/** @type {string} */ level, /** @type {string} */ text) =>
      page.locator(`[data-testid=console-entry][data-level=${level}]`, { hasText: text }).first();
    await entry('log', 'newcomer-log').waitFor({ timeout: 15000 });
    await entry('error', 'newcomer-error').waitFor({ timeout: 15000 });

    // The session runs the development image: the default could not be had.
    const list = await page.evaluate(async () => (await fetch('/api/containers')).json());
    const mine = list.find((/** @type {{sessionId: string}} */ s) => s.sessionId === id);
    assert.ok(mine, 'the session is listed');
    assert.equal(mine.image, process.env.STUDIO_FALLBACK_IMAGE || 'claude-studio-dev:latest');
  });
});
