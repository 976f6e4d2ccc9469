// Saves a PNG of a real session with terminal, preview and console visible.
//   STUDIO_URL=http://127.0.0.1:3333 STUDIO_SCREENSHOT=/tmp/studio.png node tests/screenshot.mjs
import { createSession, run, startHttpd, waitTerm, withPage, previewPicks } from './helpers.mjs';

const out = process.env.STUDIO_SCREENSHOT || 'studio.png';
const width = Number(process.env.STUDIO_SCREENSHOT_WIDTH || 1440);
const height = Number(process.env.STUDIO_SCREENSHOT_HEIGHT || 900);

await withPage({ width, height }, async (page) => {
  await createSession(page);
  await run(page, 'printf "\\033[1;32m%s\\033[0m %s\\n" "héllo" "wörld from $(uname -s)"; ls -la /');
  await waitTerm(page, 'wörld from');
  await startHttpd(page, 8000);
  await previewPicks(page, 8000);
  await page.frameLocator('#preview-frame').locator('#hello').waitFor({ timeout: 20000 });
  await page.locator('[data-testid=console-entry][data-kind=uncaught]').first().waitFor({ timeout: 15000 });
  await page.locator('[data-testid=console-entry][data-level=log] details summary').first().click();
  await page.locator('.xterm-helper-textarea').focus();
  await page.waitForTimeout(300);
  await page.screenshot({ path: out });
  console.log(`screenshot saved to ${out}`);
});
