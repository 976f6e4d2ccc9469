// Typed errors: one class per documented error name, with name, message,
// retryable, statusCode (REST) and retryAfterMs (rate limits), from the real
// server over REST and over the WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from '../dist/index.js';
import { serverFor } from './helpers.mjs';

const {
  ClaudeStudioClient,
  ClaudeStudioError,
  ValidationError,
  AuthenticationError,
  ContainerNotFoundError,
  FileNotFoundError,
  CommandNotFoundError,
  MessageTooLarge,
  RateLimitError,
  ContainerCreationError,
  DockerDaemonError,
  ServiceUnavailableError,
  PreviewUnavailableError,
  errorClasses,
  errorFromBody,
} = lib;

/** Asserts `promise` rejects with an instance of `cls` named `name`, and returns the error. */
async function rejectsWith(promise, cls, fields = {}) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof cls, `${caught?.name}: ${caught?.message} is not a ${cls.name}`);
  assert.ok(caught instanceof ClaudeStudioError);
  assert.ok(caught instanceof Error);
  assert.equal(caught.name, cls.name);
  assert.equal(caught.error, cls.name);
  assert.equal(typeof caught.message, 'string');
  assert.ok(caught.message.length > 0);
  for (const [k, v] of Object.entries(fields)) assert.equal(caught[k], v, `${k} of ${caught.name}: ${caught.message}`);
  return caught;
}

test('every documented error name has its class, with the documented retryable default', () => {
  const documented = {
    ValidationError: [ValidationError, false, 400],
    AuthenticationError: [AuthenticationError, false, 401],
    ContainerNotFoundError: [ContainerNotFoundError, false, 404],
    FileNotFoundError: [FileNotFoundError, false, 404],
    CommandNotFoundError: [CommandNotFoundError, false, 404],
    MessageTooLarge: [MessageTooLarge, false, 413],
    RateLimitError: [RateLimitError, true, 429],
    ContainerCreationError: [ContainerCreationError, false, 500],
    DockerDaemonError: [DockerDaemonError, true, 503],
    ServiceUnavailableError: [ServiceUnavailableError, true, 503],
    PreviewUnavailableError: [PreviewUnavailableError, true, 502],
  };
  assert.deepEqual(Object.keys(errorClasses).sort(), Object.keys(documented).sort());
  for (const [name, [cls, retryable, status]] of Object.entries(documented)) {
    assert.equal(errorClasses[name], cls);
    // From a body with every field.
    const e = errorFromBody({ error: name, message: `m-${name}`, retryable: !retryable, statusCode: status });
    assert.ok(e instanceof cls && e instanceof ClaudeStudioError && e instanceof Error);
    assert.equal(e.name, name);
    assert.equal(e.message, `m-${name}`);
    assert.equal(e.retryable, !retryable, 'the server says best');
    assert.equal(e.statusCode, status);
    // Without `retryable`: the documented default.
    assert.equal(errorFromBody({ error: name, message: 'x' }).retryable, retryable, name);
    // With no body at all: from the status.
    if (![404, 500, 503].includes(status)) assert.equal(errorFromBody(undefined, { statusCode: status }).name, name, `status ${status}`);
  }
  const unknown = errorFromBody({ error: 'SomethingNewError', message: 'new', retryable: true });
  assert.ok(unknown instanceof ClaudeStudioError);
  assert.equal(unknown.name, 'SomethingNewError');
  assert.equal(unknown.retryable, true);
  const ws = errorFromBody({ type: 'error', error: 'ValidationError', message: 'bad', retryable: false, sessionId: 's', path: '/p' });
  assert.equal(ws.sessionId, 's');
  assert.equal(ws.path, '/p');
  assert.equal(ws.statusCode, undefined);
});

test('the server errors arrive typed, over REST and over the WebSocket', { timeout: 60_000 }, async (t) => {
  const server = await serverFor(t, { args: ['--max-file-size', '1k', '--rate-limit-preview', '3/1m'] });
  const client = new ClaudeStudioClient(server.ws, { retries: 0 });
  t.after(() => client.close());
  const s = await client.createContainer();

  await rejectsWith(client.configurePreview(s.id, 0), ValidationError, { statusCode: 400, retryable: false });
  await rejectsWith(client.configurePreview(s.id, 70000), ValidationError, { statusCode: 400 });
  await rejectsWith(client.getContainer('session-doesnotexist0000000000'), ContainerNotFoundError, { statusCode: 404, retryable: false });
  await rejectsWith(client.readFile(s.id, '/workspace/missing.txt'), FileNotFoundError, { statusCode: 404 });
  await rejectsWith(client.readFile(s.id, '/etc/passwd'), ValidationError, { statusCode: 400 });
  await rejectsWith(client.getCommand(s.id, 'no-such-command'), CommandNotFoundError, { statusCode: 404 });
  await rejectsWith(client.writeFile(s.id, '/workspace/big.bin', new Uint8Array(4096)), MessageTooLarge, { statusCode: 413, retryable: false });
  await rejectsWith(client.executeCommand(s.id, ''), ValidationError, { statusCode: 400 });
  await rejectsWith(client.createContainer({ image: 'localhost:1/nope:latest' }), ContainerCreationError, { statusCode: 500, retryable: false });
  // A conflict is a ValidationError with 409.
  await client.mkdir(s.id, '/workspace/d/e', { parents: true });
  await rejectsWith(client.removeFile(s.id, '/workspace/d'), ValidationError, { statusCode: 409 });

  // Rate limits: retryable, with the wait the server asks for.
  await client.configurePreview(s.id, 3000);
  const limited = await rejectsWith(
    (async () => {
      for (let i = 0; i < 5; i++) await client.configurePreview(s.id, 3000);
    })(),
    RateLimitError,
    { statusCode: 429, retryable: true },
  );
  assert.ok(limited.retryAfterMs > 0 && limited.retryAfterMs <= 60_000, `retryAfterMs ${limited.retryAfterMs}`);
  assert.equal(limited.limit, 3);
  assert.equal(limited.remaining, 0);
  assert.ok(client.rateLimit && client.rateLimit.limit > 0);
  // A wait longer than maxRetryDelayMs is not sat out: it fails at once, retries or not.
  const impatient = new ClaudeStudioClient(server.ws, { retries: 5, maxRetryDelayMs: 100 });
  const t0 = Date.now();
  await rejectsWith(impatient.configurePreview(s.id, 3000), RateLimitError);
  assert.ok(Date.now() - t0 < 2000);

  // Over the WebSocket: no statusCode, but the session and path they are about.
  const wsErr = await rejectsWith(client.watch(s.id, '/etc'), ValidationError, { retryable: false, statusCode: undefined });
  assert.equal(wsErr.sessionId, s.id);
  assert.equal(wsErr.path, '/etc');
  const cmdErr = await rejectsWith(client.startCommand(s.id, 'true', { cwd: 'relative' }), ValidationError);
  assert.ok(cmdErr.message.includes('cwd'), cmdErr.message);
  // Errors no call waits for go to onError, typed.
  const unsolicited = [];
  client.onError((e) => unsolicited.push(e));
  await client.resize(s.id, 80, 24);
  await rejectsWith(client.resize(s.id, 0, 24), ValidationError);
  // A message the server refuses with no call waiting (resize has no answer) is an `error` event.
  const bogus = 'session-doesnotexist0000000000';
  await client.resize(bogus, 80, 24);
  const deadline = Date.now() + 5000;
  while (!unsolicited.some((e) => e.sessionId === bogus) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const ev = unsolicited.find((e) => e.sessionId === bogus);
  assert.ok(ev instanceof ContainerNotFoundError, JSON.stringify(unsolicited.map((e) => e.name)));
  assert.equal(ev.statusCode, undefined);
  // A session removed elsewhere: the attached client hears of it (lifecycle), and typing into it fails typed.
  const gone = await client.createContainer();
  await client.attach(gone.id);
  await direct(server).removeContainer(gone.id);
  await rejectsWith(client.sendInput(gone.id, 'echo x\n'), ContainerNotFoundError);
});

function direct(server) {
  return new ClaudeStudioClient(server.ws);
}

test('a wrong token is an AuthenticationError (REST and WebSocket); a foreign session is not found', { timeout: 60_000 }, async (t) => {
  const server = await serverFor(t, { args: ['--api-token', 'token-one-0123456789', '--api-token', 'token-two-0123456789', '--rate-limit-auth', 'off'] });
  const wrong = new ClaudeStudioClient(server.ws, { token: 'not-a-token', retries: 0 });
  const none = new ClaudeStudioClient(server.ws, { retries: 0 });
  const one = new ClaudeStudioClient(server.ws, { token: 'token-one-0123456789' });
  const two = new ClaudeStudioClient(server.ws, { token: 'token-two-0123456789' });
  t.after(() => [wrong, none, one, two].forEach((c) => c.close()));
  await rejectsWith(wrong.listContainers(), AuthenticationError, { statusCode: 401, retryable: false });
  await rejectsWith(none.listContainers(), AuthenticationError, { statusCode: 401 });
  assert.equal((await none.health()).authRequired, true, 'health needs no token');
  const s = await one.createContainer();
  // The WebSocket upgrade is refused too, and the client gives up instead of looping.
  await rejectsWith(wrong.attach(s.id, { since: 0 }), AuthenticationError);
  await rejectsWith(two.getContainer(s.id), ContainerNotFoundError, { statusCode: 404 });
  await rejectsWith(two.attach(s.id), ContainerNotFoundError);
  // The right token works on both doors: the header (Node, `ws`) and the subprotocol (browsers).
  const out = [];
  one.onOutput((d) => out.push(d), s.id);
  await one.sendInput(s.id, 'echo tok-$((5*5))\n');
  const viaProtocol = new ClaudeStudioClient(server.ws, { token: 'token-one-0123456789', tokenTransport: 'subprotocol' });
  const viaQuery = new ClaudeStudioClient(server.ws, { token: 'token-one-0123456789', tokenTransport: 'query' });
  t.after(() => [viaProtocol, viaQuery].forEach((c) => c.close()));
  assert.equal((await viaProtocol.attach(s.id)).sessionId, s.id);
  assert.equal((await viaQuery.attach(s.id)).sessionId, s.id);
  const deadline = Date.now() + 10_000;
  while (!out.join('').includes('tok-25') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(out.join('').includes('tok-25'));
  await one.removeContainer(s.id);
});

test('an engine that does not answer is a retryable DockerDaemonError', { timeout: 30_000 }, async (t) => {
  const server = await serverFor(t, { args: ['--docker-host', 'unix:///nonexistent/docker.sock'] });
  const client = new ClaudeStudioClient(server.ws, { retries: 0 });
  const health = await client.health();
  assert.equal(health.status, 'degraded');
  assert.equal(health.docker, 'disconnected');
  await rejectsWith(client.createContainer(), DockerDaemonError, { statusCode: 503, retryable: true });
});
