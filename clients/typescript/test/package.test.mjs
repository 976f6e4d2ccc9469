// `npm pack` makes a tarball that installs in a clean folder and runs there:
// an ESM script importing '@claude-studio/client' drives a real server
// (REST and the WebSocket, which on Node 20 needs the optional `ws`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_DIR, serverFor } from './helpers.mjs';

const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const SCRIPT = `
import { ClaudeStudioClient, ContainerNotFoundError } from '@claude-studio/client';
const client = new ClaudeStudioClient(process.argv[2]);
const session = await client.createContainer();
const result = await client.executeCommand(session.id, 'echo packaged-$((6*7))');
let output = '';
client.onOutput((data) => { output += data; }, session.id);
await client.sendInput(session.id, 'echo typed-$((7*6))\\n');
const deadline = Date.now() + 10000;
while (!output.includes('typed-42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
await client.removeContainer(session.id);
let gone = false;
try { await client.getContainer(session.id); } catch (e) { gone = e instanceof ContainerNotFoundError; }
client.close();
console.log(JSON.stringify({ stdout: result.stdout, exitCode: result.exitCode, typed: output.includes('typed-42'), gone }));
`;

test('npm pack, install the tarball in a clean folder, and run it', { timeout: 120_000 }, async (t) => {
  const server = await serverFor(t);
  const dir = await mkdtemp(join(tmpdir(), 'studio-ts-pack-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // dist/ is built by the test command before the tests run.
  const { stdout } = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: PACKAGE_DIR });
  const [packed] = JSON.parse(stdout);
  const files = packed.files.map((f) => f.path).sort();
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), files.join(', '));
  assert.ok(files.includes('README.md') && files.includes('package.json'));
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/')), files.join(', '));

  const app = join(dir, 'app');
  await run('mkdir', ['-p', app]);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // The registry is reachable here; the npm cache makes it quick (and works offline once warm).
  await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, packed.filename)], { cwd: app, timeout: 90_000 });
  const installed = JSON.parse(await readFile(join(app, 'node_modules/@claude-studio/client/package.json'), 'utf8'));
  assert.equal(installed.name, '@claude-studio/client');
  assert.ok((await readdir(join(app, 'node_modules'))).includes('ws'), 'the optional ws dependency is installed for Node 20');
  await writeFile(join(app, 'main.mjs'), SCRIPT);
  const out = await run(process.execPath, ['main.mjs', server.ws], { cwd: app, timeout: 60_000 });
  const r = JSON.parse(out.stdout.trim().split('\n').at(-1));
  assert.deepEqual(r, { stdout: 'packaged-42\n', exitCode: 0, typed: true, gone: true });
});
