// Timeouts and AbortSignal on every kind of call: REST, long polls,
// commands (which are then killed), rate-limit waits, the WebSocket, and a
// server that accepts connections but never answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ClaudeStudioClient, TimeoutError, ConnectionError, RateLimitError } from '../dist/index.js';
import { serverFor, until } from './helpers.mjs';

/** Asserts `p` rejects as an abort (the signal's reason, or an AbortError) within `ms`. */
async function abortsWithin(p, ms, reason) {
  const t0 = Date.now();
  await assert.rejects(p, (err) => {
    if (reason !== undefined) assert.equal(err, reason);
    else assert.equal(err?.name, 'AbortError', `${err?.name}: ${err?.message}`);
    return true;
  });
  assert.ok(Date.now() - t0 < ms, `took ${Date.now() - t0} ms`);
}

async function timesOutWithin(p, ms) {
  const t0 = Date.now();
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof TimeoutError, `${err?.name}: ${err?.message}`);
    assert.equal(err.name, 'TimeoutError');
    return true;
  });
  assert.ok(Date.now() - t0 < ms, `took ${Date.now() - t0} ms`);
}

test('a server that never answers: timeouts end the call, an abort ends it at once', { timeout: 20_000 }, async (t) => {
  // Accepts connections and reads nothing back: every request hangs.
  const held = new Set();
  const blackhole = createServer((s) => {
    held.add(s);
    s.on('error', () => {});
  });
  await new Promise((r) => blackhole.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of held) s.destroy();
    blackhole.close();
  });
  const url = `ws://127.0.0.1:${blackhole.address().port}`;
  const client = new ClaudeStudioClient(url, { timeoutMs: 400 });
  t.after(() => client.close());
  await timesOutWithin(client.health(), 2000);
  await timesOutWithin(client.listContainers({ timeoutMs: 200 }), 1500);
  await timesOutWithin(client.attach('session-x', { since: 0, timeoutMs: 300 }), 1500);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 150);
  await abortsWithin(client.createContainer({}, { signal: ac.signal }), 1500);
  // The signal's own reason is what the call rejects with.
  const why = new Error('changed my mind');
  const ac2 = new AbortController();
  setTimeout(() => ac2.abort(why), 100);
  await abortsWithin(client.getContainer('session-x', { signal: ac2.signal, timeoutMs: 0 }), 1500, why);
  // Already aborted: rejects without trying.
  await abortsWithin(client.health({ signal: AbortSignal.abort() }), 100);
});

test('nothing listening: a ConnectionError after the retries, quickly', { timeout: 20_000 }, async () => {
  const probe = createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const client = new ClaudeStudioClient(`http://127.0.0.1:${port}`, { retries: 2, retryBaseDelayMs: 20 });
  const t0 = Date.now();
  await assert.rejects(client.health(), (err) => {
    assert.ok(err instanceof ConnectionError, `${err?.name}: ${err?.message}`);
    assert.equal(err.retryable, true);
    return true;
  });
  await assert.rejects(client.attach('session-x', { since: 0 }), ConnectionError);
  assert.ok(Date.now() - t0 < 5000);
  client.close();
});

test('commands: a timeout or an abort ends the call and kills the command', { timeout: 60_000 }, async (t) => {
  const server = await serverFor(t, { args: ['--rate-limit-container', '1/1m'] });
  const client = new ClaudeStudioClient(server.ws);
  t.after(() => client.close());
  const s = await client.createContainer();

  await timesOutWithin(client.executeCommand(s.id, 'sleep 30', { execId: 'slow-1', timeoutMs: 500 }), 3000);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 300);
  await abortsWithin(client.executeCommand(s.id, 'sleep 30', { execId: 'slow-2', signal: ac.signal }), 3000);
  // Both were killed, not left running.
  await until(async () => (await client.listCommands(s.id)).length === 0, 10_000, 'the commands to be killed', 250);
  const killed = await client.getCommand(s.id, 'slow-2');
  assert.equal(killed.running, false);
  assert.equal(killed.signal, 'SIGKILL');

  // A streamed command: the same.
  const ac3 = new AbortController();
  const stream = await client.startCommand(s.id, 'sleep 30', { execId: 'slow-3', signal: ac3.signal });
  ac3.abort();
  await abortsWithin(stream.result, 1000);
  await until(async () => !(await client.getCommand(s.id, 'slow-3')).running, 10_000, 'the streamed command to be killed', 250);
  const stream2 = await client.startCommand(s.id, 'sleep 30', { execId: 'slow-4', timeoutMs: 400 });
  await timesOutWithin(stream2.result, 3000);
  await until(async () => !(await client.getCommand(s.id, 'slow-4')).running, 10_000, 'the timed-out stream to be killed', 250);

  // The server's own `timeout` (seconds) is not the client's: it ends the command, not the call.
  const r = await client.executeCommand(s.id, 'sleep 30', { timeout: 0.3 });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, 137);

  // Long polls: the call's timeout is its own.
  await timesOutWithin(client.getEvents(s.id, { since: 1e15 * 9, wait: 10, timeoutMs: 300 }), 2000);
  const ac4 = new AbortController();
  const seen = [];
  const iterating = (async () => {
    for await (const ev of client.events(s.id, { since: 'now', signal: ac4.signal, wait: 10 })) seen.push(ev);
  })();
  setTimeout(() => ac4.abort(), 300);
  await abortsWithin(iterating, 2000);

  // A rate-limit wait is cancellable too (the container limit here is 1 a minute).
  const t0 = Date.now();
  const ac5 = new AbortController();
  setTimeout(() => ac5.abort(), 300);
  await abortsWithin(client.createContainer({}, { signal: ac5.signal }), 2000);
  assert.ok(Date.now() - t0 < 2000);
  // And a timeout shorter than the wait fails at once with the RateLimitError rather than waiting for nothing.
  await assert.rejects(client.createContainer({}, { timeoutMs: 1000 }), RateLimitError);
});
