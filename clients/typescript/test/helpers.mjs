// Test helpers: start real claude-studio servers on free loopback ports,
// each with its own --instance and --state-dir, and clean up after them
// (the process, its containers, its state) even when a test fails.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The server: STUDIO_BIN, else the debug build of the repository this package lives in. */
export const BIN = process.env.STUDIO_BIN || join(PACKAGE_DIR, '..', '..', 'target', 'debug', 'claude-studio');
/** The sessions' image: STUDIO_IMAGE (or scripts/test's STUDIO_TEST_IMAGE), else the test image. */
export const IMAGE = process.env.STUDIO_IMAGE || process.env.STUDIO_TEST_IMAGE || 'studio-test-busybox:latest';

let counter = 0;
const running = new Set();

// A test process that ends without its cleanups (killed, crashed) must not
// leave servers behind: kill them as it exits...
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const p of running) p.kill('SIGKILL');
    process.exit(130);
  });
}

// ...and the containers of test processes that are gone are removed by the
// next run (instances are named ts-PID-…; only dead PIDs' are touched).
let swept;
export function sweepStale() {
  swept ??= (async () => {
    try {
      const { stdout } = await exec('docker', ['ps', '-a', '--filter', 'label=studio.instance', '--format', '{{.Label "studio.instance"}}']);
      const stale = new Set();
      for (const inst of stdout.split('\n')) {
        const m = /^ts-(\d+)-\d+-[a-z0-9]+$/.exec(inst.trim());
        if (!m || Number(m[1]) === process.pid) continue;
        try {
          process.kill(Number(m[1]), 0);
        } catch {
          stale.add(inst.trim());
        }
      }
      await Promise.all([...stale].map(removeContainers));
    } catch {
      // no docker: the tests will say so
    }
  })();
  return swept;
}

export function uniqueInstance(tag = 'ts') {
  return `${tag}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Starts a server and resolves once it prints its address.
 * @param {{args?: string[], instance?: string, stateDir?: string, listen?: string}} [o]
 */
export async function startServer(o = {}) {
  const instance = o.instance ?? uniqueInstance();
  const stateDir = o.stateDir ?? (await mkdtemp(join(tmpdir(), 'studio-ts-state-')));
  const args = [
    '--listen', o.listen ?? '127.0.0.1:0',
    '--instance', instance,
    '--state-dir', stateDir,
    '--default-image', IMAGE,
    ...(o.args ?? []),
  ];
  await sweepStale();
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  const log = [];
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    log.push(d);
    if (log.length > 200) log.shift();
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const addr = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${log.join('')}`)), 60_000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /claude-studio listening on http:\/\/(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${log.join('')}`));
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  proc.stdout.resume();
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const server = {
    instance,
    stateDir,
    addr,
    port,
    proc,
    http: `http://${addr}`,
    ws: `ws://${addr}`,
    log: () => log.join(''),
    exited,
    /** Stops the process (SIGTERM, then SIGKILL after `graceMs`). */
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    /** Stops it, removes its containers, and (unless kept for a restart) its state. */
    async cleanup({ keepState = false } = {}) {
      await server.stop(3000).catch(() => {});
      await removeContainers(instance);
      if (!keepState) await rm(stateDir, { recursive: true, force: true }).catch(() => {});
    },
  };
  return server;
}

/** Removes every container labelled with this instance. */
export async function removeContainers(instance) {
  try {
    const { stdout } = await exec('docker', ['ps', '-aq', '--filter', `label=studio.instance=${instance}`]);
    const ids = stdout.split(/\s+/).filter(Boolean);
    if (ids.length) await exec('docker', ['rm', '-f', ...ids]);
  } catch {
    // docker missing or nothing to remove
  }
}

/**
 * Starts a server for a test and registers its cleanup with the test
 * context (`t.after`), so it runs whether the test passes or fails.
 */
export async function serverFor(t, o = {}) {
  const s = await startServer(o);
  t.after(() => s.cleanup());
  return s;
}

/**
 * Waits until `check()` is truthy, polling every `every` ms (keep it slow for
 * checks that call the API: the general rate limit is 100 a minute), or
 * fails after `ms`.
 */
export async function until(check, ms = 10_000, what = 'condition', every = 25) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Collects a session's terminal output from a client. */
export function outputOf(client, sessionId) {
  const o = { text: '', replays: [] };
  client.onOutput((data, msg) => {
    if (msg.replay) o.replays.push(data);
    else o.text += data;
  }, sessionId);
  return o;
}
