// The preview must never drive the studio. With the studio page open (and
// holding its token), a previewed page, reached by its host and by the
// path-based URL, tries to open a terminal, call the API with the studio's
// credentials, create a session, and read the studio's storage. Each
// attempt is reported through the page's console, which the studio's own
// console pane shows: every one fails, and the studio keeps working.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BASE, TOKEN, createSession, lines, run, waitTerm, withPage, writeFile, previewPicks } from './helpers.mjs';

const ATTACK = `<!doctype html><html><head><title>attack</title></head><body><script>
const api = new URLSearchParams(location.search).get('api');
// Loaded without a target (the preview taking the port by itself): idle.
if (api) {
const victim = new URLSearchParams(location.search).get('victim');
const say = (m) => console.log('attack: ' + m);
fetch(api + '/api/containers', { credentials: 'include' }).then((r) => r.text())
  .then((t) => say('api read ' + t.length), () => say('api unreadable'));
fetch(api + '/api/containers', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{}' })
  .then(() => say('create sent'), () => say('create failed'));
const ws = new WebSocket(api.replace(/^http/, 'ws') + '/ws', ['claude-studio']);
ws.onopen = () => { ws.send(JSON.stringify({ type: 'input', sessionId: victim, data: 'echo PWNED-$((40+2))\\\\n' })); say('ws open'); };
ws.onerror = () => say('ws refused');
if (window.parent === window) say('parent none');
else try { say('parent storage ' + JSON.stringify(window.parent.sessionStorage)); } catch (e) { say('parent storage blocked'); }
try { say('own storage ' + Object.keys(sessionStorage).length + ' keys'); } catch (e) { say('own storage blocked'); }
const w = window.open(api + '/', '_blank');
setTimeout(() => { try { say('studio storage ' + JSON.stringify(w.sessionStorage)); } catch (e) { say('studio storage blocked'); } try { w.close(); } catch (e) {} }, 800);
}
</script></body></html>`;

const ATTEMPTS = ['api ', 'create ', 'ws ', 'parent ', 'studio storage '];

test('attacks: a previewed page, by host and by path, cannot drive the studio', async () => {
  await withPage({ width: 1400, height: 900 }, async (page) => {
    const id = await createSession(page);
    await run(page, 'mkdir -p /tmp/evil');
    await writeFile(page, '/tmp/evil/index.html', ATTACK);
    await run(page, 'httpd -f -p 8000 -h /tmp/evil & echo evil-$((4000+5))');
    await waitTerm(page, (t) => lines(t).includes('evil-4005'));
    const query = `?api=${encodeURIComponent(BASE)}&victim=${id}`;

    /** The attack's reports in the studio's console pane. */
    const reports = async () =>
      (await page.locator('[data-testid=console-entry]').allTextContents()).filter((t) => t.includes('attack: '));
    const finished = async () => {
      const r = await reports();
      return ATTEMPTS.every((a) => r.some((t) => t.includes('attack: ' + a)));
    };

    // 1. Embedded in the studio (the preview pane's iframe, its own origin).
    // The first port to open is previewed by itself.
    await previewPicks(page, 8000);
    const frameSrc = await page.waitForFunction(() => window.__studio.previewUrl, null, { timeout: 20000 });
    const hostUrl = new URL(/** @type {string} */ (await frameSrc.jsonValue()));
    await page.locator('#preview-frame').evaluate((f, q) => {
      const u = new URL(/** @type {HTMLIFrameElement} */ (f).src);
      /** @type {HTMLIFrameElement} */ (f).src = u.origin + '/' + q;
    }, query);
    const until = Date.now() + 20000;
    while (!(await finished()) && Date.now() < until) await page.waitForTimeout(200);
    let r = await reports();
    assert.ok(await finished(), `every attempt reported: ${r.join(' | ')}`);
    const expectFailed = () => {
      assert.ok(r.some((t) => t.includes('attack: api unreadable')), r.join(' | '));
      assert.ok(r.some((t) => t.includes('attack: ws refused')), r.join(' | '));
      assert.ok(r.some((t) => t.includes('attack: studio storage blocked')), r.join(' | '));
      assert.ok(!r.some((t) => /attack: (api read|ws open|studio storage \{|parent storage \{)/.test(t)), r.join(' | '));
    };
    expectFailed();
    assert.ok(r.some((t) => t.includes('attack: parent storage blocked')), r.join(' | '));
    await page.getByTestId('console-clear').click();

    // 2. By the path-based URL, in a tab of the same browser: sent to the
    // preview's own origin, where it fails the same way.
    // (Its link, as configure_preview gives it: with tokens on, nothing opens
    // a preview without one.)
    const link = await page.evaluate(async ([token, sid]) => {
      /** @type {Record<string, string>} */
      const headers = { 'content-type': 'application/json' };
      if (token) headers.Authorization = 'Bearer ' + token;
      const r = await fetch('/api/preview/configure', { method: 'POST', headers, body: JSON.stringify({ sessionId: sid, port: 8000 }) });
      return (await r.json()).previewUrl;
    }, [TOKEN, id]);
    const pathUrl = new URL(link, BASE);
    pathUrl.pathname += '/';
    pathUrl.searchParams.set('api', BASE);
    pathUrl.searchParams.set('victim', id);
    const tab = await page.context().newPage();
    await tab.goto(pathUrl.toString());
    assert.equal(new URL(tab.url()).host, hostUrl.host, `the path-based preview opens on its own origin: ${tab.url()}`);
    const until2 = Date.now() + 20000;
    while (!(await finished()) && Date.now() < until2) await page.waitForTimeout(200);
    r = await reports();
    assert.ok(await finished(), `every attempt reported: ${r.join(' | ')}`);
    expectFailed();
    await tab.close();

    // No session was made, nothing was typed, and the studio still works.
    const sessions = await page.evaluate(async (token) => {
      /** @type {Record<string, string>} */
      const headers = {};
      if (token) headers.Authorization = 'Bearer ' + token;
      return (await fetch('/api/containers', { headers })).json();
    }, TOKEN);
    assert.equal(sessions.length, 1, JSON.stringify(sessions));
    const screen = await page.evaluate(() => window.__studio.term());
    assert.ok(!screen.includes('PWNED-42'), screen);
    await run(page, 'echo studio-$((20+1))');
    await waitTerm(page, (t) => lines(t).includes('studio-21'));
  });
});
