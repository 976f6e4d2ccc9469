// (2) A server started in the terminal shows in the preview iframe (on its own
// origin), and its console reaches the console pane with the right levels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSession, startHttpd, withPage, previewPicks } from './helpers.mjs';

test('preview: httpd in the container, iframe on its own origin, console entries by level', async () => {
  await withPage({ width: 1400, height: 900 }, async (page) => {
    const id = await createSession(page);
    await startHttpd(page, 8000);

    // The first port to open is previewed by itself.
    await previewPicks(page, 8000);

    const frame = page.frameLocator('#preview-frame');
    await frame.locator('#hello').waitFor({ timeout: 20000 });
    assert.equal(await frame.locator('#hello').textContent(), 'Hello from the container');
    const src = await page.evaluate(() => window.__studio.previewUrl);
    assert.ok(src, 'the iframe has a source');
    const u = new URL(src);
    assert.equal(u.hostname.split('.')[0], `8000-${id.toLowerCase()}`, 'the preview runs on its own origin');
    assert.notEqual(u.origin, new URL(page.url()).origin);

    /** @param {string} level @param {string} text */
    const entry = (level, text) => page.locator(`[data-testid=console-entry][data-level=${level}]`, { hasText: text });
    for (const [level, text] of [['log', 'studio-log'], ['info', 'studio-info'], ['warn', 'studio-warn'], ['error', 'studio-error'], ['debug', 'studio-debug']]) {
      await entry(level, text).first().waitFor({ timeout: 15000 });
    }
    const uncaught = entry('error', 'studio-uncaught').first();
    await uncaught.waitFor({ timeout: 15000 });
    assert.equal(await uncaught.getAttribute('data-kind'), 'uncaught');
    assert.match((await uncaught.getAttribute('class')) ?? '', /c-uncaught/, 'uncaught errors stand out');
    const rejected = entry('error', 'studio-rejected').first();
    await rejected.waitFor({ timeout: 15000 });
    assert.equal(await rejected.getAttribute('data-kind'), 'unhandledrejection');
    assert.equal(await entry('error', 'studio-error').first().getAttribute('data-kind'), null, 'a plain console.error is not marked uncaught');

    // The tab label counts errors (error, uncaught, rejection) and warnings.
    const count = await page.getByTestId('console-tab-count').textContent();
    assert.match(count ?? '', /✖\s*3/);
    assert.match(count ?? '', /⚠\s*1/);

    // Level filter and text filter.
    await page.getByTestId('console-level-log').click();
    assert.equal(await entry('log', 'studio-log').first().isVisible(), false, 'logs can be hidden');
    await page.getByTestId('console-level-log').click();
    await page.getByTestId('console-filter').fill('studio-warn');
    assert.deepEqual(await page.locator('[data-testid=console-entry]:visible').allTextContents().then((a) => a.length === 1 ? 1 : a), 1);
    await page.getByTestId('console-filter').fill('');

    // The object argument is an expandable tree.
    const tree = entry('log', 'studio-log').first().locator('details.v-tree').first();
    await tree.locator('summary').click();
    await tree.locator('.v-children').getByText('nested').waitFor();

    await page.getByTestId('console-clear').click();
    assert.equal(await page.locator('[data-testid=console-entry]').count(), 0);
  });
});
