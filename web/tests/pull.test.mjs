// Creating a session whose image must first be pulled shows the pull: the
// page goes through its "pulling" state with a progress bar, then runs.
// STUDIO_PULL_IMAGE names an image in a local registry the engine has not
// seen (the Rust test sets one up).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSession, lines, run, waitTerm, withPage } from './helpers.mjs';

const IMAGE = process.env.STUDIO_PULL_IMAGE;

test('pull: a missing image is pulled with visible progress', { skip: !IMAGE && 'set STUDIO_PULL_IMAGE' }, async () => {
  await withPage({ width: 1200, height: 800 }, async (page) => {
    await createSession(page, IMAGE);
    const states = await page.evaluate(() => window.__studio.states);
    assert.ok(states.includes('pulling'), `went through pulling: ${states.join(' → ')}`);
    const most = await page.evaluate(() => window.__studio.pulledMost);
    assert.ok(most > 0, `the progress bar moved (${most})`);
    await run(page, 'echo pulled-$((2+3))');
    await waitTerm(page, (t) => lines(t).includes('pulled-5'));
  });
});
