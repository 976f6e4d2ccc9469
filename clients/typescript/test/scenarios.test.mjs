// Runs every scenario of clients/scenarios.json (shared by all clients)
// against a real server started for it, through the built client (dist/).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClaudeStudioClient, ClaudeStudioError } from '../dist/index.js';
import { PACKAGE_DIR, serverFor } from './helpers.mjs';

const SCENARIOS = process.env.STUDIO_SCENARIOS || join(PACKAGE_DIR, '..', 'scenarios.json');
const { scenarios } = JSON.parse(readFileSync(SCENARIOS, 'utf8'));

/** `$name` and `…$name…` replaced by saved values, deeply. */
function resolve(value, saved) {
  if (typeof value === 'string') {
    if (/^\$[A-Za-z_]\w*$/.test(value) && value.slice(1) in saved) return saved[value.slice(1)];
    return value.replace(/\$([A-Za-z_]\w*)/g, (m, name) => (name in saved ? saved[name] : m));
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, saved));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, saved)]));
  }
  return value;
}

/** Every key of `expected` has that value in `actual`. */
function assertSubset(actual, expected, where) {
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(actual?.[k], v, `${where}: ${k} is ${JSON.stringify(actual?.[k])}, expected ${JSON.stringify(v)}`);
  }
}

/** Text of what the step writes or expects (`content`, or `content_base64`). */
function bytesOf(step, key) {
  if (step[key] !== undefined) return new TextEncoder().encode(step[key]);
  if (step[`${key}_base64`] !== undefined) return new Uint8Array(Buffer.from(step[`${key}_base64`], 'base64'));
  return undefined;
}

async function runStep(step, ctx) {
  const client = ctx.clientFor(step.as);
  const call = step.retries !== undefined ? { retries: step.retries } : {};
  const s = step.session;
  switch (step.do) {
    case 'health':
      return client.health(call);
    case 'create': {
      const o = {};
      for (const k of ['image', 'workspaceDir', 'env', 'cols', 'rows']) if (step[k] !== undefined) o[k] = step[k];
      const session = await client.createContainer(o, call);
      assert.equal(session.id, session.sessionId);
      return session;
    }
    case 'get':
      return client.getContainer(s, call);
    case 'list':
      return client.listContainers(call);
    case 'type':
      ctx.watchOutput(client, s);
      return client.sendInput(s, step.data, call);
    case 'read_output': {
      const out = ctx.watchOutput(client, s);
      const until = step.until;
      const deadline = Date.now() + (step.timeout ?? 15) * 1000;
      while (!out.text.includes(until)) {
        if (Date.now() > deadline) assert.fail(`output never contained ${JSON.stringify(until)}; got ${JSON.stringify(out.text)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return out.text;
    }
    case 'exec': {
      const o = { ...call };
      for (const k of ['cwd', 'env', 'stdin', 'timeout']) if (step[k] !== undefined) o[k] = step[k];
      return client.executeCommand(s, step.cmd, o);
    }
    case 'write_file':
      return client.writeFile(s, step.path, bytesOf(step, 'content'), { ...call, parents: true });
    case 'read_file':
      return client.readFile(s, step.path, call);
    case 'list_files':
      return client.listFiles(s, step.path, call);
    case 'configure_preview':
      return client.configurePreview(s, step.port, call);
    case 'remove':
      return client.removeContainer(s, call);
    default:
      throw new Error(`unknown step '${step.do}'`);
  }
}

function check(step, result) {
  const where = `step ${JSON.stringify(step.do)}`;
  if (step.expect) assertSubset(result, step.expect, where);
  if (step.expect_contains !== undefined) {
    const ids = result.map((x) => x.sessionId);
    assert.ok(ids.includes(step.expect_contains), `${where}: ${JSON.stringify(ids)} lacks ${step.expect_contains}`);
  }
  const content = bytesOf(step, 'expect_content');
  if (content) assert.deepEqual(Buffer.from(result), Buffer.from(content), `${where}: content differs`);
  if (step.expect_names) {
    assert.deepEqual(result.map((e) => e.name).sort(), [...step.expect_names].sort(), `${where}: names differ`);
  }
  if (step.expect_url_contains !== undefined) {
    assert.ok(result.previewUrl.includes(step.expect_url_contains), `${where}: ${result.previewUrl} lacks ${step.expect_url_contains}`);
  }
}

/** The longest window of the rate limits a scenario's server is given (`N/DURATION`), in ms. */
function rateWindowMs(args) {
  let max = 0;
  for (let i = 0; i < args.length; i++) {
    const a = String(args[i]);
    if (!a.startsWith('--rate-limit')) continue;
    const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : String(args[i + 1] ?? '');
    const m = /^\d+\/(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
    if (m) max = Math.max(max, Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']);
  }
  return max;
}

/** Thrown when a run could not test what the scenario means (see below). */
class Inconclusive extends Error {}

/** One run of a scenario on a server of its own; its clients are closed and the server removed after. */
async function runScenario(t, scenario) {
  const server = await serverFor(t, { args: scenario.server ?? [] });
  const tokens = scenario.tokens ?? {};
  const names = Object.keys(tokens);
  const clients = new Map();
  const outputs = new Map();
  const ctx = {
    clientFor(as) {
      const name = as ?? names[0] ?? '';
      if (!clients.has(name)) {
        const token = name === '' ? undefined : tokens[name];
        assert.ok(name === '' || token !== undefined, `unknown token '${name}'`);
        clients.set(name, new ClaudeStudioClient(server.ws, token === undefined ? {} : { token }));
      }
      return clients.get(name);
    },
    watchOutput(client, sessionId) {
      const key = `${sessionId}`;
      if (!outputs.has(key)) {
        const o = { text: '' };
        client.onOutput((data) => {
          o.text += data;
        }, sessionId);
        outputs.set(key, o);
      }
      return outputs.get(key);
    },
  };
  const windowMs = rateWindowMs(scenario.server ?? []);
  const started = Date.now();
  try {
    const saved = {};
    for (const [i, raw] of scenario.steps.entries()) {
      const step = resolve(raw, saved);
      const label = `step ${i + 1} (${step.do}${step.as ? ` as ${step.as}` : ''})`;
      if (step.expect_error) {
        const at = Date.now();
        let outcome;
        try {
          outcome = { value: await runStep(step, ctx) };
        } catch (err) {
          outcome = { err };
        }
        if (!('err' in outcome)) {
          // A limit of N per window passes again once the window has ended:
          // if this machine took longer than the window to get here, the
          // run proves nothing either way.
          if (step.expect_error.error === 'RateLimitError' && windowMs > 0 && at - started >= windowMs) {
            throw new Inconclusive(`${label} came ${at - started} ms after the start, past the ${windowMs} ms window`);
          }
          assert.fail(`${label}: expected ${step.expect_error.error}, but it succeeded`);
        }
        const err = outcome.err;
        assert.ok(err instanceof ClaudeStudioError, `${label}: not a ClaudeStudioError: ${err}`);
        assert.equal(err.name, step.expect_error.error, `${label}: ${err.name}: ${err.message}`);
        if (step.expect_error.retryable !== undefined) assert.equal(err.retryable, step.expect_error.retryable, label);
        continue;
      }
      let result;
      try {
        result = await runStep(step, ctx);
      } catch (err) {
        assert.fail(`${label} failed: ${err?.name}: ${err?.message}`);
      }
      check(step, result);
      if (step.save) saved[step.save] = result.sessionId;
    }
  } finally {
    for (const c of clients.values()) c.close();
    await server.cleanup();
  }
}

/** One scenario as a test; a run a slow machine made inconclusive is tried again, on a new server. */
function scenarioTest(scenario) {
  test(`scenario: ${scenario.name}`, { timeout: 180_000 }, async (t) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await runScenario(t, scenario);
      } catch (err) {
        if (!(err instanceof Inconclusive) || attempt === 3) throw err;
        t.diagnostic(`attempt ${attempt} inconclusive (${err.message}); trying again`);
      }
    }
  });
}

// Scenarios whose server has a rate limit measure time (`2/3s`: two creates
// must land in three seconds): they run first and alone; the others, each
// with its own server, side by side.
const timed = scenarios.filter((s) => {
  const args = (s.server ?? []).map(String);
  return args.some((a, i) => a.startsWith('--rate-limit') && !/=off$/.test(a) && args[i + 1] !== 'off');
});
const others = scenarios.filter((s) => !timed.includes(s));
describe('scenarios.json', () => {
  describe('timing-sensitive, one at a time', { concurrency: 1 }, () => timed.forEach(scenarioTest));
  describe('the others, side by side', { concurrency: 3 }, () => others.forEach(scenarioTest));
});
