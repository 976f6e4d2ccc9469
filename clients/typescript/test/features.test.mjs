// The API beyond the scenarios, against a real server: the terminal
// (attach with replay and since, resize), commands (streaming, stdin, kill,
// binary output, REST control), files (ranges, mkdir, move, stat, remove,
// archives), events (pages, long polls, the iterator), ports and watches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClaudeStudioClient, CommandFailedError, ValidationError } from '../dist/index.js';
import { serverFor, until, outputOf } from './helpers.mjs';

test('terminal, commands, files, events, ports and watches', { timeout: 90_000 }, async (t) => {
  const server = await serverFor(t, { args: ['--rate-limit-general', 'off'] });
  const client = new ClaudeStudioClient(server.ws);
  t.after(() => client.close());
  const s = await client.createContainer({ cols: 100, rows: 30, env: { GREETING: 'hi-there' } });
  assert.equal(s.id, s.sessionId);
  assert.match(s.id, /^session-/);

  await t.test('health, get, list, images', async () => {
    const h = await client.health();
    assert.equal(h.status, 'ok');
    assert.equal(typeof h.uptime, 'number');
    const info = await client.getContainer(s.id);
    assert.equal(info.id, s.id);
    assert.equal(info.status, 'running');
    assert.deepEqual(info.ports, []);
    assert.ok((await client.listContainers()).some((c) => c.id === s.id));
    const images = await client.listImages();
    assert.equal(typeof images.defaultImage, 'string');
  });

  await t.test('attach: replay, since, input, resize, exit', async () => {
    const out = outputOf(client, s.id);
    const exits = [];
    client.onExit((m) => exits.push(m), s.id);
    const lifecycle = [];
    client.on('lifecycle', (m) => lifecycle.push(m));
    const a = await client.attach(s.id, { since: 0 });
    assert.equal(a.sessionId, s.id);
    assert.equal(typeof a.replay, 'string');
    // since: 0 brings the whole log, which starts with the session's creation.
    await until(() => lifecycle.some((m) => m.state === 'created'), 5000, 'the created event');
    await client.resize(s.id, 123, 45);
    await client.sendInput(s.id, 'stty size; echo "$GREETING"\n');
    await until(() => out.text.includes('45 123') && out.text.includes('hi-there\r\n'), 10_000, 'stty size and the env');
    // A second client attaching later gets the replay with that output.
    const other = new ClaudeStudioClient(server.ws);
    try {
      const b = await other.attach(s.id);
      assert.ok(b.replay.includes('45 123'), b.replay);
    } finally {
      other.close();
    }
    await client.sendInput(s.id, 'exit 7\n');
    await until(() => exits.length > 0, 10_000, 'the exit event');
    assert.equal(exits[0].code, 7);
    assert.equal(exits[0].sessionId, s.id);
    // Typing again starts a fresh shell.
    await client.sendInput(s.id, 'echo again-$((1+2))\n');
    await until(() => out.text.includes('again-3'), 10_000, 'a new shell');
  });

  await t.test('executeCommand: results, binary output, stdin, env, cwd, check', async () => {
    const r = await client.executeCommand(s.id, 'echo out; echo err >&2; exit 3');
    assert.deepEqual(
      { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, signal: r.signal, timedOut: r.timedOut, truncated: r.truncated },
      { exitCode: 3, stdout: 'out\n', stderr: 'err\n', signal: null, timedOut: false, truncated: false },
    );
    assert.equal(typeof r.durationMs, 'number');
    assert.match(r.execId, /^exec-/);
    const bin = await client.executeCommand(s.id, "printf 'a\\377b'");
    assert.deepEqual([...bin.stdoutBytes], [0x61, 0xff, 0x62]);
    assert.equal(bin.stdout, 'a\ufffdb');
    const stdin = await client.executeCommand(s.id, ['cat'], { stdin: 'from stdin' });
    assert.equal(stdin.stdout, 'from stdin');
    const env = await client.executeCommand(s.id, 'echo "$A" && pwd', { env: { A: 'b' }, cwd: '/tmp' });
    assert.equal(env.stdout, 'b\n/tmp\n');
    assert.equal((await client.executeCommand(s.id, ['no-such-program'])).exitCode, 127);
    const seen = [];
    await client.executeCommand(s.id, 'echo one; echo two >&2', { onStdout: (x) => seen.push(['o', x]), onStderr: (x) => seen.push(['e', x]) });
    assert.deepEqual(seen.sort(), [['e', 'two\n'], ['o', 'one\n']]);
    await assert.rejects(client.executeCommand(s.id, 'exit 2', { check: true }), (err) => {
      assert.ok(err instanceof CommandFailedError);
      assert.equal(err.result.exitCode, 2);
      return true;
    });
    const big = await client.executeCommand(s.id, 'head -c 300000 /dev/zero | tr "\\0" x');
    assert.equal(big.stdout.length, 300000);
  });

  await t.test('startCommand: streaming, stdin, kill, REST control', async () => {
    const cat = await client.startCommand(s.id, ['cat'], { execId: 'cat-1' });
    assert.equal(cat.execId, 'cat-1');
    const running = await client.listCommands(s.id);
    assert.ok(running.some((c) => c.execId === 'cat-1' && c.running));
    await cat.write('hello ');
    await cat.write(new TextEncoder().encode('bytes'));
    await cat.end();
    const pieces = [];
    for await (const c of cat) pieces.push(c.data);
    const res = await cat.result;
    assert.equal(res.stdout, 'hello bytes');
    assert.equal(pieces.join(''), 'hello bytes');
    assert.equal(res.exitCode, 0);

    const sleeper = await client.startCommand(s.id, 'sleep 0.5; echo started; sleep 30');
    // Wait for its output, so the signal lands after the echo.
    for await (const c of sleeper) if (c.data.includes('started')) break;
    await sleeper.kill('SIGTERM');
    const killed = await sleeper.result;
    assert.equal(killed.exitCode, 143);
    assert.equal(killed.signal, 'SIGTERM');

    // REST control of a streamed command: input and state.
    const rev = await client.startCommand(s.id, ['sh', '-c', 'read x; echo "got $x"'], { execId: 'read-1' });
    await client.sendCommandInput(s.id, 'read-1', 'line\n', { eof: true });
    assert.equal((await rev.result).stdout, 'got line\n');
    const state = await client.getCommand(s.id, 'read-1');
    assert.equal(state.running, false);
    assert.equal(state.stdout, 'got line\n');
  });

  await t.test('files: write, read (ranges), stat, list, mkdir, move, remove, archives', async () => {
    const w = await client.writeFile(s.id, '/workspace/a/b/c.txt', 'héllo wörld', { parents: true });
    assert.deepEqual(w, { path: '/workspace/a/b/c.txt', size: 13, created: true });
    assert.equal((await client.writeFile(s.id, '/workspace/a/b/c.txt', 'héllo wörld')).created, false);
    assert.equal(await client.readText(s.id, '/workspace/a/b/c.txt'), 'héllo wörld');
    const part = await client.readFile(s.id, '/workspace/a/b/c.txt', { range: { start: 0, end: 5 } });
    assert.equal(new TextDecoder().decode(part), 'héllo');
    const st = await client.stat(s.id, '/workspace/a/b/c.txt');
    assert.equal(st.type, 'file');
    assert.equal(st.size, 13);
    assert.match(st.mode, /^0[0-7]{3}$/);
    assert.equal((await client.mkdir(s.id, '/workspace/a/new')).created, true);
    assert.equal((await client.mkdir(s.id, '/workspace/a/new', { parents: true })).created, false);
    await client.move(s.id, '/workspace/a/b/c.txt', '/workspace/a/new/d.txt');
    const names = (await client.listFiles(s.id, '/workspace/a', { recursive: true })).map((e) => e.name).sort();
    assert.deepEqual(names, ['b', 'new', 'new/d.txt']);
    const tar = await client.downloadArchive(s.id, '/workspace/a');
    assert.ok(tar.length >= 1024 && tar.length % 512 === 0);
    const up = await client.uploadArchive(s.id, '/tmp/copy', tar);
    assert.equal(up.path, '/tmp/copy');
    assert.ok(up.entries >= 3);
    assert.equal(await client.readText(s.id, '/tmp/copy/new/d.txt'), 'héllo wörld');
    await client.removeFile(s.id, '/workspace/a', { recursive: true });
    await assert.rejects(client.stat(s.id, '/workspace/a'), { name: 'FileNotFoundError' });
  });

  await t.test('watch: changes as events, unwatch', async () => {
    await client.mkdir(s.id, '/workspace/w', { parents: true });
    const watch = await client.watch(s.id, '/workspace/w', { recursive: true });
    assert.equal(watch.directories, 1);
    const seen = [];
    const off = watch.onChange((ev) => seen.push(ev));
    await client.writeFile(s.id, '/workspace/w/f.txt', 'x');
    await until(() => seen.some((e) => e.path === '/workspace/w/f.txt' && e.kind === 'created'), 10_000, 'a created event');
    await client.executeCommand(s.id, 'rm /workspace/w/f.txt');
    await until(() => seen.some((e) => e.path === '/workspace/w/f.txt' && e.kind === 'removed'), 10_000, 'a removed event');
    off();
    await watch.unwatch();
    await assert.rejects(client.watch(s.id, '/nope'), ValidationError);
  });

  await t.test('events: pages, long poll, iterator; ports: wait, events, preview', async () => {
    const page = await client.getEvents(s.id);
    assert.ok(page.events.length > 0);
    assert.equal(page.events[0].type, 'lifecycle');
    assert.ok(page.next >= page.events.at(-1).seq);
    // A long poll answers as soon as something happens.
    const t0 = Date.now();
    const waiting = client.getEvents(s.id, { since: page.next, wait: 20 });
    setTimeout(() => client.executeCommand(s.id, 'true').catch(() => {}), 300);
    const next = await waiting;
    assert.ok(Date.now() - t0 < 10_000);
    assert.equal(next.events[0].type, 'exec_exit');

    // Ports: wait for one to open, see it in getContainer and as events.
    const portEvents = [];
    client.onPort((m) => portEvents.push(m), s.id);
    const iterated = [];
    const ac = new AbortController();
    const iterating = (async () => {
      for await (const ev of client.events(s.id, { since: 'now', signal: ac.signal, wait: 5 })) iterated.push(ev);
    })().catch(() => {});
    const waitPort = client.waitForPort(s.id, 8080, { timeoutMs: 20_000 });
    const server8080 = await client.startCommand(s.id, 'httpd -f -p 8080 -h /tmp');
    const opened = await waitPort;
    assert.equal(opened.port, 8080);
    assert.deepEqual(await client.getPorts(s.id), [8080]);
    await until(() => portEvents.some((m) => m.type === 'port_opened' && m.port === 8080), 10_000, 'port_opened');
    const preview = await client.configurePreview(s.id, 8080);
    assert.equal(preview.previewUrl, `/preview/${s.id}`);
    assert.equal(preview.targetUrl, 'http://localhost:8080');
    assert.ok(preview.hostPreviewUrl.includes(`8080-${s.id}`));
    assert.equal((await client.getContainer(s.id)).previewPort, 8080);
    await server8080.kill();
    await until(() => portEvents.some((m) => m.type === 'port_closed' && m.port === 8080), 10_000, 'port_closed');
    await until(() => iterated.some((e) => e.type === 'port_opened') && iterated.some((e) => e.type === 'port_closed'), 10_000, 'the iterator to see the ports');
    ac.abort();
    await iterating;
  });

  await t.test('remove: the session ends for the iterator and the attached client', async () => {
    const gone = await client.createContainer();
    const lifecycle = [];
    const ended = (async () => {
      for await (const ev of client.events(gone.id, { since: 'now', wait: 5 })) lifecycle.push(ev);
    })();
    await client.attach(gone.id);
    assert.ok(client.attachedSessions.includes(gone.id));
    await client.removeContainer(gone.id);
    await ended;
    assert.equal(lifecycle.at(-1).state, 'removed');
    assert.ok(!client.attachedSessions.includes(gone.id));
    await assert.rejects(client.getContainer(gone.id), { name: 'ContainerNotFoundError' });
  });
});
