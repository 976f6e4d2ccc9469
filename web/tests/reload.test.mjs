// (3) Reloading /s/ID comes back to the same session and shows the replay.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSession, lines, passTokenPrompt, run, waitState, waitTerm, withPage } from './helpers.mjs';

test('reload: same session, output replayed, still interactive', async () => {
  await withPage({ width: 1200, height: 800 }, async (page) => {
    const id = await createSession(page);
    await run(page, 'echo reload-marker-$((6*7))');
    await waitTerm(page, (t) => lines(t).includes('reload-marker-42'));

    await page.reload();
    await passTokenPrompt(page);
    await waitState(page, 'running');
    assert.equal(new URL(page.url()).pathname, `/s/${id}`);
    assert.equal(await page.evaluate(() => window.__studio.sessionId), id);
    await waitTerm(page, (t) => lines(t).includes('reload-marker-42'), 10000);

    await run(page, 'echo after-reload-$((1+1))');
    await waitTerm(page, (t) => lines(t).includes('after-reload-2'));

    // A second tab on the same session sees the same terminal.
    const other = await page.context().newPage();
    await other.goto(page.url());
    await passTokenPrompt(other);
    await other.waitForFunction(() => window.__studio && window.__studio.state === 'running', null, { timeout: 30000 });
    await other.waitForFunction(() => window.__studio.term().includes('after-reload-2'), null, { timeout: 10000 });
    await other.close();
  });
});
