// Page open → terminal attached with its replay shown, in Chromium, next to
// a bare WebSocket `attach` made from the same browser in the same run.
//   STUDIO_URL=… STUDIO_SESSION=… STUDIO_MARKER=… [STUDIO_RUNS=30] node bench/open.mjs
// Prints one JSON line: {"page": [ms…], "bare": [ms…]}.
import { launch, newPage } from '../tests/helpers.mjs';

const BASE = (process.env.STUDIO_URL || '').replace(/\/$/, '');
const SESSION = process.env.STUDIO_SESSION || '';
const MARKER = process.env.STUDIO_MARKER || '';
const RUNS = Number(process.env.STUDIO_RUNS || 30);

const browser = await launch();
const { context, page } = await newPage(browser, { width: 1280, height: 800 });
/** @type {number[]} */
const pageTimes = [];
/** @type {number[]} */
const bareTimes = [];
// Warm the browser's cache and connections once, as a returning user has.
await page.goto(`${BASE}/s/${SESSION}`);
await page.waitForFunction((m) => window.__studio && window.__studio.term().includes(m), MARKER, { timeout: 30000 });
for (let i = 0; i < RUNS; i++) {
  // The page: navigation start to the replayed marker on screen.
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(`${BASE}/s/${SESSION}`);
  await page.waitForFunction((m) => window.__studio && window.__studio.term().includes(m), MARKER, { timeout: 30000, polling: 'raf' });
  pageTimes.push(Date.now() - t0);
  // The floor: a bare socket from the same page's origin, attach to replay.
  const bare = await page.evaluate(async ([sid]) => {
    const t = performance.now();
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws', ['claude-studio']);
    return await new Promise((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: 'attach', sessionId: sid }));
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.type === 'output' && m.replay) {
          resolve(performance.now() - t);
          ws.close();
        }
      };
      ws.onerror = () => reject(new Error('socket failed'));
    });
  }, [SESSION]);
  bareTimes.push(bare);
}
await context.close();
await browser.close();
console.log(JSON.stringify({ page: pageTimes, bare: bareTimes }));
