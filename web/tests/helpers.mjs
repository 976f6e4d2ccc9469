// Shared helpers for the browser tests: launching Debian's Chromium through
// playwright-core, driving the studio page, and cleaning up sessions.
//
// Environment:
//   STUDIO_URL    server (or dev server) serving the page, e.g. http://127.0.0.1:3399
//   STUDIO_IMAGE  image for sessions (default studio-test-busybox:latest)
//   STUDIO_TOKEN  API token, when the server requires one (the auth test needs it)
//   CHROMIUM      browser binary (default /usr/bin/chromium)

import { chromium } from 'playwright-core';

export const BASE = (process.env.STUDIO_URL || 'http://127.0.0.1:3399').replace(/\/$/, '');
export const IMAGE = process.env.STUDIO_IMAGE || 'studio-test-busybox:latest';
export const TOKEN = process.env.STUDIO_TOKEN || '';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** @returns {Promise<import('playwright-core').Browser>} */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

/**
 * A page with console output and page errors collected (shown when a test fails).
 * @param {import('playwright-core').Browser} browser
 * @param {{ width?: number, height?: number }} [size]
 */
export async function newPage(browser, size = {}) {
  const context = await browser.newContext({
    viewport: { width: size.width ?? 1280, height: size.height ?? 800 },
  });
  const page = await context.newPage();
  /** @type {string[]} */
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  return { context, page, log };
}

/** Sessions made by the tests, removed by `cleanup` whatever happened. */
const made = new Set();

/** @param {string} id */
export function track(id) {
  if (id) made.add(id);
}

/** @param {string} sessionId */
export async function deleteSession(sessionId) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (TOKEN) headers.Authorization = 'Bearer ' + TOKEN;
  try {
    const res = await fetch(`${BASE}/api/containers/${encodeURIComponent(sessionId)}`, { method: 'DELETE', headers });
    return res.status;
  } catch {
    return 0;
  }
}

export async function cleanup() {
  const ids = [...made];
  made.clear();
  await Promise.all(ids.map((id) => deleteSession(id)));
}

/** If the server asks for a token, give it STUDIO_TOKEN.
 * @param {import('playwright-core').Page} page */
export async function passTokenPrompt(page) {
  const prompt = page.getByTestId('token-prompt');
  const home = page.getByTestId('home').or(page.getByTestId('studio'));
  await prompt.or(home).first().waitFor({ timeout: 15000 });
  if (await prompt.isVisible()) {
    if (!TOKEN) throw new Error('The server requires a token: set STUDIO_TOKEN');
    await page.getByTestId('token-input').fill(TOKEN);
    await page.getByTestId('token-submit').click();
    await prompt.waitFor({ state: 'detached', timeout: 10000 });
  }
}

/**
 * Opens the home page and creates a session from the form; resolves once the
 * studio is running on /s/ID.
 * @param {import('playwright-core').Page} page
 */
export async function createSession(page, image = IMAGE) {
  await page.goto(BASE + '/');
  await passTokenPrompt(page);
  // Once /api/images has filled in its default, set ours.
  const input = page.locator('[data-testid=image-input][data-loaded]');
  await input.waitFor();
  await input.fill(image);
  await page.getByTestId('create-button').click();
  return await waitCreated(page);
}

/**
 * After "Create": resolves with the new session's id once the studio runs
 * on /s/ID; fails early (with the status text) when the create failed.
 * @param {import('playwright-core').Page} page
 */
export async function waitCreated(page, timeout = 120000) {
  await page.waitForFunction(
    () => /^\/s\/[^/]+$/.test(location.pathname) || ['failed', 'gone', 'unauthorized'].includes(window.__studio.state),
    null,
    { timeout },
  );
  const id = await page.evaluate(() => window.__studio.sessionId);
  if (id) track(id);
  if (!/^\/s\//.test(new URL(page.url()).pathname)) {
    const status = await page.getByTestId('status-text').textContent();
    throw new Error(`creating the session failed: ${status}`);
  }
  if (!id) throw new Error('no session id after create');
  await waitState(page, 'running');
  await waitTerm(page, (t) => /\$ ?$/m.test(t) || t.includes('$'), 20000);
  return id;
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} state
 */
export async function waitState(page, state, timeout = 30000) {
  await page.waitForFunction((s) => window.__studio && window.__studio.state === s, state, { timeout });
}

/**
 * Waits until the visible terminal text satisfies `test` (a substring or a predicate).
 * @param {import('playwright-core').Page} page
 * @param {string | ((text: string) => boolean)} test
 */
export async function waitTerm(page, test, timeout = 15000) {
  const until = Date.now() + timeout;
  let text = '';
  while (Date.now() < until) {
    text = await page.evaluate(() => window.__studio.term());
    if (typeof test === 'string' ? text.includes(test) : test(text)) return text;
    await page.waitForTimeout(100);
  }
  throw new Error(`terminal never matched ${String(test)}; screen was:\n${text}`);
}

/**
 * Types a command line into the terminal (as a paste-like text insertion) and presses Enter.
 * @param {import('playwright-core').Page} page
 * @param {string} line
 */
export async function run(page, line) {
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.insertText(line);
  await page.keyboard.press('Enter');
}

/** The lines of the visible terminal, trimmed on the right.
 * @param {string} text */
export function lines(text) {
  return text.split('\n').map((l) => l.replace(/\s+$/, ''));
}

/**
 * Runs a test body with a fresh browser page; on failure prints the page's
 * console and the terminal screen; always removes the sessions it made.
 * @param {{ width?: number, height?: number }} size
 * @param {(page: import('playwright-core').Page) => Promise<void>} body
 */
export async function withPage(size, body) {
  const browser = await launch();
  const { page, log } = await newPage(browser, size);
  try {
    await body(page);
  } catch (e) {
    let screen = '';
    try {
      screen = await page.evaluate(() => (window.__studio ? `${window.__studio.state} ${window.__studio.route}\n${window.__studio.term()}` : ''));
    } catch {
      // the page may be gone
    }
    console.error('--- page console ---\n' + log.join('\n') + '\n--- studio ---\n' + screen);
    throw e;
  } finally {
    await cleanup();
    await browser.close();
  }
}

/** A page for the preview: console calls of each level, an uncaught error
 *  and an unhandled rejection. No single quotes (it is typed in `echo '…'`). */
export const PREVIEW_HTML =
  '<!doctype html><html><head><meta charset="utf-8"><title>studio preview test</title></head>' +
  '<body><h1 id="hello">Hello from the container</h1><p>Served by busybox httpd.</p><script>' +
  'console.log("studio-log", {n: 1, list: [1, 2, 3], nested: {ok: true}});' +
  'console.info("studio-info");' +
  'console.warn("studio-warn");' +
  'console.error("studio-error");' +
  'console.debug("studio-debug");' +
  'Promise.reject(new Error("studio-rejected"));' +
  'setTimeout(function () { throw new Error("studio-uncaught"); }, 100);' +
  '</script></body></html>';

/** Writes PREVIEW_HTML into /tmp/www in the container and starts httpd on `port`.
 * @param {import('playwright-core').Page} page */
export async function startHttpd(page, port = 8000) {
  await run(page, `mkdir -p /tmp/www && echo '${PREVIEW_HTML}' > /tmp/www/index.html && httpd -f -p ${port} -h /tmp/www & sleep 0.3; echo httpd-started-$((${port}+0))`);
  // The line may begin with the echo of a cursor-position report (ESC[6n,
  // asked by the shell's line editor on a wrapped line, answered by the
  // terminal while the command ran): the marker ends its line.
  await waitTerm(page, (t) => lines(t).some((l) => l.endsWith(`httpd-started-${port}`)), 15000);
}

/**
 * Writes `content` to `path` in the session through its terminal, in pieces
 * short enough for any shell's line editor (busybox ash takes 1024 bytes).
 * @param {import('playwright-core').Page} page
 * @param {string} path
 * @param {string} content
 */
export async function writeFile(page, path, content) {
  const b64 = Buffer.from(content).toString('base64');
  const tmp = `${path}.b64`;
  await run(page, `: > ${tmp}`);
  for (let i = 0; i < b64.length; i += 600) {
    await run(page, `printf '%s' ${b64.slice(i, i + 600)} >> ${tmp}`);
  }
  const mark = `written-${Math.floor(Math.random() * 1e6)}`;
  await run(page, `base64 -d ${tmp} > ${path} && rm ${tmp} && echo ${mark}-$((1+1))`);
  await waitTerm(page, (t) => lines(t).includes(`${mark}-2`));
}

/**
 * Waits for the preview pane to show `port` by itself: a new session with
 * no preview port takes the first port that opens in its container (the
 * server's `port_opened`), without the port field being touched.
 * @param {import('playwright-core').Page} page
 * @param {number} port
 */
export async function previewPicks(page, port) {
  await page.waitForFunction(
    (p) => {
      const u = window.__studio.previewUrl;
      return !!u && new URL(u).hostname.startsWith(`${p}-`);
    },
    port,
    { timeout: 20000 },
  );
  const input = page.getByTestId('preview-port');
  if ((await input.inputValue()) !== String(port)) throw new Error(`the port field shows ${await input.inputValue()}, not ${port}`);
}
