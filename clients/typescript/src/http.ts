import {
  ClaudeStudioError,
  ConnectionError,
  RateLimitError,
  errorFromBody,
  type RateLimitDetails,
} from './errors.js';
import type { CallOptions } from './types.js';
import { Scope, backoff, sleep } from './util.js';

/** The `X-RateLimit-*` headers of the latest REST answer that had them. */
export interface RateLimitInfo {
  limit: number;
  remaining: number;
  /** Unix seconds when the window ends. */
  reset: number;
}

export interface RetryPolicy {
  /** Retries of a retryable failure (default 3); `0` disables. */
  retries: number;
  /** First backoff step for failures without a server-given delay (default 250 ms). */
  baseDelayMs: number;
  /** Largest backoff step (default 10 s). */
  maxBackoffMs: number;
  /**
   * Longest wait the client accepts before a retry (default 60 s): a
   * `Retry-After` longer than this (say, the 15-minute authentication lock-out)
   * is not waited for; the `RateLimitError` is thrown at once.
   */
  maxRetryDelayMs: number;
}

export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: Uint8Array | string | Blob | ArrayBuffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** What to read from a successful answer. */
  read: 'json' | 'bytes' | 'none' | 'response';
  /**
   * Whether the request may be sent again after a failure that may have
   * reached the server (a dropped connection). Errors the server marks
   * retryable, and connections that were refused, are retried either way.
   */
  idempotent: boolean;
  what: string;
}

export interface Response<T> {
  status: number;
  headers: Headers;
  data: T;
}

const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'EPIPE']);

/** Whether a fetch failure surely happened before the server took the request. */
function neverSent(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function failureCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && REFUSED.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Milliseconds to wait before retrying a 429, from `Retry-After`, else `X-RateLimit-Reset`. */
export function retryAfterMs(headers: Headers): number | undefined {
  const ra = headers.get('retry-after');
  if (ra !== null && ra.trim() !== '') {
    const secs = Number(ra);
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
    const at = Date.parse(ra);
    if (!Number.isNaN(at)) return Math.max(0, at - Date.now());
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (headers.has('x-ratelimit-reset') && Number.isFinite(reset)) {
    return Math.max(0, reset * 1000 - Date.now());
  }
  return undefined;
}

function rateLimitInfo(headers: Headers): RateLimitInfo | undefined {
  const limit = headers.get('x-ratelimit-limit');
  const remaining = headers.get('x-ratelimit-remaining');
  const reset = headers.get('x-ratelimit-reset');
  if (limit === null || remaining === null || reset === null) return undefined;
  return { limit: Number(limit), remaining: Number(remaining), reset: Number(reset) };
}

/** A session's REST path: `/api/containers/ID` and what follows. */
export function sessionPath(sessionId: string, rest = ''): string {
  return `/api/containers/${encodeURIComponent(sessionId)}${rest}`;
}

/** REST calls with the token, typed errors, timeouts, cancellation and retries. */
export class Rest {
  /** The `X-RateLimit-*` of the latest answer that carried them. */
  lastRateLimit: RateLimitInfo | undefined;

  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly fetchImpl: typeof fetch,
    private readonly policy: RetryPolicy,
  ) {}

  /** Sends `spec`, retrying as the policy says, within `scope`. */
  async request<T>(spec: RequestSpec, scope: Scope, retries?: number): Promise<Response<T>> {
    const allowed = retries ?? this.policy.retries;
    for (let attempt = 0; ; attempt++) {
      scope.throwIfDone();
      let failure: ClaudeStudioError;
      try {
        return await this.once<T>(spec, scope);
      } catch (err) {
        if (scope.signal.aborted) throw scope.reason();
        if (!(err instanceof ClaudeStudioError)) throw err;
        failure = err;
      }
      const retry =
        attempt < allowed &&
        failure.retryable &&
        (spec.idempotent || !(failure instanceof ConnectionError) || failure.neverSent);
      if (!retry) throw failure;
      let delay = backoff(attempt, this.policy.baseDelayMs, this.policy.maxBackoffMs);
      if (failure instanceof RateLimitError && failure.retryAfterMs !== undefined) {
        // The seed's recipe: wait until the limit resets, then back off
        // exponentially when it fails again.
        if (failure.retryAfterMs > this.policy.maxRetryDelayMs) throw failure;
        delay = failure.retryAfterMs + (attempt === 0 ? Math.round(Math.random() * 100) : delay);
      }
      // A wait that would outlast the call's deadline only delays the failure.
      if (Date.now() + delay >= scope.deadline) throw failure;
      await sleep(delay, scope.signal).catch(() => {
        throw scope.reason();
      });
    }
  }

  /** One call: `spec` within the caller's signal and deadline, retried as the policy says; resolves with the answer's data. */
  call<T>(spec: RequestSpec, o: CallOptions, defaultTimeoutMs: number | undefined): Promise<T> {
    return Scope.run(spec.what, o, defaultTimeoutMs, async (scope) => (await this.request<T>(spec, scope, o.retries)).data);
  }

  url(path: string, query?: RequestSpec['query']): string {
    let url = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
      const s = q.toString();
      if (s) url += '?' + s;
    }
    return url;
  }

  private async once<T>(spec: RequestSpec, scope: Scope): Promise<Response<T>> {
    const headers: Record<string, string> = { ...spec.headers };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    let body: BodyInit | undefined;
    if (spec.json !== undefined) {
      body = JSON.stringify(spec.json);
      headers['content-type'] = 'application/json';
    } else if (spec.body !== undefined) {
      body = spec.body as BodyInit;
      headers['content-type'] = spec.contentType ?? 'application/octet-stream';
    }
    if (spec.read === 'json' && headers['accept'] === undefined) headers['accept'] = 'application/json';
    let res: globalThis.Response;
    try {
      res = await this.fetchImpl(this.url(spec.path, spec.query), {
        method: spec.method,
        headers,
        body: body ?? null,
        signal: scope.signal,
      });
    } catch (err) {
      if (scope.signal.aborted) throw scope.reason();
      const code = failureCode(err);
      throw new ConnectionError(
        `${spec.what}: the server at ${this.baseUrl} could not be reached${code ? ` (${code})` : ''}`,
        { cause: err, neverSent: neverSent(err) },
      );
    }
    const info = rateLimitInfo(res.headers);
    if (info) this.lastRateLimit = info;
    if (!res.ok) throw await this.failure(res, spec);
    let data: unknown;
    try {
      if (spec.read === 'json') {
        const text = await res.text();
        data = text === '' ? undefined : JSON.parse(text);
      } else if (spec.read === 'bytes') {
        data = new Uint8Array(await res.arrayBuffer());
      } else if (spec.read === 'response') {
        data = res;
      } else {
        await res.body?.cancel().catch(() => {});
      }
    } catch (err) {
      if (scope.signal.aborted) throw scope.reason();
      throw new ConnectionError(`${spec.what}: the answer could not be read`, { cause: err });
    }
    return { status: res.status, headers: res.headers, data: data as T };
  }

  private async failure(res: globalThis.Response, spec: RequestSpec): Promise<ClaudeStudioError> {
    let body: unknown;
    try {
      const text = await res.text();
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    const details: RateLimitDetails & { statusCode: number } = { statusCode: res.status };
    if (res.status === 429) {
      const wait = retryAfterMs(res.headers);
      if (wait !== undefined) details.retryAfterMs = wait;
      const info = rateLimitInfo(res.headers);
      if (info) Object.assign(details, info);
    }
    const err = errorFromBody(body, details);
    if (body === undefined && err.message.startsWith('The server answered')) {
      return errorFromBody({ error: err.name, message: `${spec.what}: the server answered ${res.status}` }, details);
    }
    return err;
  }
}
