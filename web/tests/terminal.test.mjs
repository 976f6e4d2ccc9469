// (1) A session created from the page: UTF-8 round trip through the shell,
// and the shell's idea of the terminal size follows the window.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSession, lines, run, waitTerm, withPage } from './helpers.mjs';

/** @param {import('playwright-core').Page} page */
async function termSize(page) {
  const s = await page.evaluate(() => window.__studio.termSize);
  assert.ok(s, 'the studio reports a terminal size');
  return s;
}

/** Runs `stty size` until the shell reports `rows cols` (the resize may still be on its way).
 * @param {import('playwright-core').Page} page @param {{cols:number, rows:number}} size */
async function expectStty(page, size) {
  const want = `${size.rows} ${size.cols}`;
  let last = '';
  for (let i = 0; i < 4; i++) {
    await run(page, 'clear; stty size');
    try {
      await waitTerm(page, (t) => lines(t).some((l) => /^\d+ \d+$/.test(l)), 5000);
    } catch {
      continue;
    }
    last = (await page.evaluate(() => window.__studio.term())).split('\n').map((l) => l.trim()).find((l) => /^\d+ \d+$/.test(l)) ?? '';
    if (last === want) return;
    await page.waitForTimeout(300);
  }
  assert.equal(last, want, 'stty size in the shell matches the terminal');
}

test('terminal: create from the page, UTF-8 echo, resize reaches the shell', async () => {
  await withPage({ width: 1280, height: 800 }, async (page) => {
    const id = await createSession(page);
    assert.match(id, /^session-/);
    assert.equal(new URL(page.url()).pathname, `/s/${id}`);
    assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('xterm-helper-textarea')), true, 'the terminal has the focus');

    await run(page, 'echo héllo-wörld');
    await waitTerm(page, (t) => lines(t).includes('héllo-wörld'));

    await expectStty(page, await termSize(page));

    for (const vp of [{ width: 1000, height: 560 }, { width: 600, height: 700 }, { width: 1440, height: 900 }]) {
      const before = await termSize(page);
      await page.setViewportSize(vp);
      await page.waitForFunction((b) => {
        const s = window.__studio.termSize;
        return s && (s.cols !== b.cols || s.rows !== b.rows);
      }, before, { timeout: 10000 });
      await page.waitForTimeout(150); // let the fit settle
      await expectStty(page, await termSize(page));
    }
    // 600px wide: panes are stacked behind tabs, the terminal tab is shown.
  });
});
