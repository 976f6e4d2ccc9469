// `tsc --noEmit` on a TypeScript usage example, against the built
// declarations, as a Node project and as a browser project would see them
// (its @ts-expect-error lines prove the types are strict). The sources
// themselves are type-checked (strict) by the build `npm test` runs first,
// and `npm run typecheck` runs all three checks.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_DIR } from './helpers.mjs';

const run = promisify(execFile);
const TSC = join(PACKAGE_DIR, 'node_modules', 'typescript', 'bin', 'tsc');

describe('type-check the usage example', { concurrency: 2 }, () => {
  for (const project of ['test/types/tsconfig.json', 'test/types/tsconfig.browser.json']) {
    test(`tsc --noEmit -p ${project}`, { timeout: 90_000 }, async () => {
      try {
        await run(process.execPath, [TSC, '--noEmit', '-p', project], { cwd: PACKAGE_DIR });
      } catch (err) {
        assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
      }
    });
  }
});
