// (4) With API tokens on: the token prompt, a wrong token is refused in words,
// the right one works for REST and for the WebSocket (subprotocol), and it is
// kept in sessionStorage only, never in a URL.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BASE, IMAGE, TOKEN, waitCreated, waitState, withPage } from './helpers.mjs';

test('auth: token prompt, wrong token, right token', { skip: TOKEN ? false : 'set STUDIO_TOKEN (server started with --api-token)' }, async () => {
  await withPage({ width: 1200, height: 800 }, async (page) => {
    await page.goto(BASE + '/');
    const prompt = page.getByTestId('token-prompt');
    await prompt.waitFor({ timeout: 15000 });

    await page.getByTestId('token-input').fill('definitely-not-the-token');
    await page.getByTestId('token-submit').click();
    await page.getByTestId('token-error').filter({ hasText: /wrong token/i }).waitFor({ timeout: 10000 });
    assert.equal(await prompt.isVisible(), true, 'still asking');

    await page.getByTestId('token-input').fill(TOKEN);
    await page.getByTestId('token-submit').click();
    await prompt.waitFor({ state: 'detached', timeout: 10000 });
    await page.getByTestId('home').waitFor();
    await page.getByTestId('sessions-state').filter({ hasNotText: /waiting|loading|could not/i }).or(page.locator('[data-testid=sessions-table] tbody tr').first()).first().waitFor({ timeout: 10000 });

    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('claude-studio.token'),
      local: Object.keys(localStorage).filter((k) => localStorage.getItem(k) === sessionStorage.getItem('claude-studio.token')),
      url: location.href,
    }));
    assert.equal(stored.session, TOKEN);
    assert.deepEqual(stored.local, []);
    assert.ok(!stored.url.includes(TOKEN));

    // The WebSocket authenticates with the subprotocol: create a session.
    await page.locator('[data-testid=image-input][data-loaded]').fill(IMAGE);
    await page.getByTestId('create-button').click();
    await waitCreated(page, 60000);
    await waitState(page, 'running');
    assert.ok(!page.url().includes(TOKEN));

    // A reload keeps the token for the tab: no prompt.
    await page.reload();
    await waitState(page, 'running');
    assert.equal(await prompt.count(), 0);
  });
});
