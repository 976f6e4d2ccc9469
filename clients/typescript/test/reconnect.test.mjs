// Reliability: the client reconnects by itself after a server restart and
// after a dropped connection, re-attaches with the replay and the events it
// missed, re-watches, and keeps streamed commands going over REST.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import { ClaudeStudioClient } from '../dist/index.js';
import { serverFor, startServer, until, outputOf } from './helpers.mjs';

test('after a server restart (SIGTERM) the client reconnects, re-attaches, and gets the replay and new output', { timeout: 60_000 }, async (t) => {
  const first = await startServer();
  let second;
  t.after(async () => {
    await first.cleanup({ keepState: true });
    if (second) await second.cleanup();
  });
  const client = new ClaudeStudioClient(first.ws);
  t.after(() => client.close());
  const events = [];
  const mark = (what) => events.push({ what, at: Date.now() });
  client.on('connection', (e) => mark(`connection:${e.state}${e.reconnected ? ':re' : ''}${e.delayMs !== undefined ? `:${e.delayMs}` : ''}`));
  const reconnects = [];
  client.on('reconnect', (m) => {
    reconnects.push(m);
    mark('reconnect');
  });
  const lifecycle = [];
  client.on('lifecycle', (m) => lifecycle.push(m));
  const errors = [];
  client.onError((e) => errors.push(e));

  const session = await client.createContainer();
  const out = outputOf(client, session.id);
  await client.attach(session.id);
  await client.sendInput(session.id, 'echo before-$((20+1))\n');
  await until(() => out.text.includes('before-21'), 10_000, 'output before the restart');

  // SIGTERM: connected clients get `reconnect` (with a delay), then the close.
  await first.stop();
  assert.equal(reconnects.length, 1);
  assert.equal(reconnects[0].reason, 'Server restarting');
  assert.ok(reconnects[0].delay > 0);
  // Same port, instance and state directory: the session is re-adopted.
  second = await startServer({ instance: first.instance, stateDir: first.stateDir, listen: first.addr });

  await until(() => client.connected && out.replays.length >= 2, 20_000, 're-attach with a replay');
  const reconnectAt = events.find((e) => e.what === 'reconnect').at;
  const reopenedAt = events.find((e) => e.what === 'connection:open:re').at;
  assert.ok(reopenedAt - reconnectAt >= reconnects[0].delay - 50, `reconnected after ${reopenedAt - reconnectAt} ms, before the server's delay of ${reconnects[0].delay} ms`);
  // The events logged while it was away came with the re-attach (`since`).
  await until(() => lifecycle.some((m) => m.sessionId === session.id && m.state === 'restored'), 10_000, 'the restored event');

  const before = out.text.length;
  await client.sendInput(session.id, 'echo after-$((40+2))\n');
  await until(() => out.text.slice(before).includes('after-42'), 10_000, 'new output after the restart');
  assert.deepEqual(client.attachedSessions, [session.id]);
  assert.deepEqual(errors, []);
  await client.removeContainer(session.id);
});

/** A TCP proxy whose connections the test can cut, and which can refuse new ones for a while. */
async function proxyTo(port) {
  const sockets = new Set();
  let refusing = false;
  const server = createServer((down) => {
    if (refusing) return down.destroy();
    const up = connect(port, '127.0.0.1');
    sockets.add(down);
    sockets.add(up);
    down.pipe(up);
    up.pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    /** Cuts every connection and refuses new ones until `resume()`. */
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    resume() {
      refusing = false;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

test('after a dropped connection: replay, missed events, re-watch, and a streamed command that loses no output', { timeout: 60_000 }, async (t) => {
  const server = await serverFor(t);
  const proxy = await proxyTo(server.port);
  t.after(() => proxy.close());
  const client = new ClaudeStudioClient(proxy.url, { reconnect: { initialDelayMs: 100 } });
  const direct = new ClaudeStudioClient(server.ws);
  t.after(() => client.close());
  const session = await client.createContainer();
  const out = outputOf(client, session.id);
  const exits = [];
  client.on('exec_exit', (m) => exits.push(m));
  const fsEvents = [];
  client.on('fs_event', (m) => fsEvents.push(m));
  const states = [];
  client.on('connection', (e) => states.push(e.state));

  await client.attach(session.id);
  await client.sendInput(session.id, 'echo before-$((1+1))\n');
  await until(() => out.text.includes('before-2'), 10_000, 'output before the drop');
  const watch = await client.watch(session.id, '/workspace', { recursive: true });
  assert.equal(watch.path, '/workspace');

  // A command streaming over the WebSocket while the connection drops.
  const stream = await client.startCommand(session.id, 'for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i; sleep 0.1; done; echo done >&2');
  const chunks = [];
  const reading = (async () => {
    for await (const c of stream) chunks.push(c);
  })();
  await until(() => chunks.length >= 2, 10_000, 'the first streamed lines');

  proxy.cut();
  await until(() => states.includes('closed'), 5000, 'the drop');
  // Something happens while the client is away: a command ends (an `exec_exit` event).
  const missed = await direct.executeCommand(session.id, 'echo while-away');
  await new Promise((r) => setTimeout(r, 300)); // stay away a little (the backoff is what is tested)
  proxy.resume();

  const result = await stream.result;
  await reading;
  assert.equal(result.exitCode, 0);
  assert.equal(result.stdout, Array.from({ length: 10 }, (_, i) => `line-${i + 1}\n`).join(''));
  assert.equal(result.stderr, 'done\n');
  assert.equal(chunks.filter((c) => c.stream === 'stdout').map((c) => c.data).join(''), result.stdout, 'the iterator saw every byte once');

  // The re-attach brought the replay (with what was printed before) and the missed event.
  await until(() => out.replays.some((r) => r.includes('before-2')), 10_000, 'a replay with the earlier output');
  await until(() => exits.some((e) => e.execId === missed.execId), 10_000, 'the exec_exit that happened while away');
  assert.equal(exits.filter((e) => e.execId === missed.execId).length, 1, 'no event twice');
  // The watch is back, and says changes may have been missed.
  await until(() => fsEvents.some((e) => e.overflow && e.path === '/workspace'), 10_000, 'the overflow after re-watching');
  await client.writeFile(session.id, '/workspace/new.txt', 'x');
  await until(() => fsEvents.some((e) => e.path === '/workspace/new.txt'), 10_000, 'a change seen by the re-established watch');

  const at = out.text.length;
  await client.sendInput(session.id, 'echo after-$((3+4))\n');
  await until(() => out.text.slice(at).includes('after-7'), 10_000, 'live output after the drop');
  assert.ok(states.filter((s) => s === 'open').length >= 2);
});

test('with reconnect off, a dropped connection stays down', { timeout: 30_000 }, async (t) => {
  const server = await serverFor(t);
  const proxy = await proxyTo(server.port);
  t.after(() => proxy.close());
  const client = new ClaudeStudioClient(proxy.url, { reconnect: false });
  t.after(() => client.close());
  const session = await client.createContainer();
  await client.attach(session.id);
  const states = [];
  client.on('connection', (e) => states.push(e.state));
  proxy.cut();
  proxy.resume();
  await until(() => states.includes('closed'), 5000, 'the drop');
  await new Promise((r) => setTimeout(r, 1200)); // the delay is what is tested: nothing may happen in it
  assert.deepEqual(states, ['closed']);
  assert.equal(client.connected, false);
});
