// The REST client. Every request but /api/health carries the bearer token
// when there is one; errors come back as ApiError with the server's fields.

import { getToken } from './auth';
import type { ApiErrorBody, ContainerInfo, Health, Images } from './protocol';

export class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly retryable: boolean;
  /** From `Retry-After` (or `X-RateLimit-Reset`) on a 429, in ms. */
  readonly retryAfterMs: number | null;

  constructor(status: number, body: Partial<ApiErrorBody>, retryAfterMs: number | null) {
    super(body.message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.error = body.error || (status === 0 ? 'NetworkError' : `HTTP ${status}`);
    this.retryable = body.retryable ?? (status === 0 || status >= 500 || status === 429);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Called on any 401 from an authenticated request (the app asks for a token). */
let onUnauthorized: ((e: ApiError) => void) | null = null;
export function setUnauthorizedHandler(fn: (e: ApiError) => void): void {
  onUnauthorized = fn;
}

export function retryAfterMs(headers: Headers): number | null {
  const ra = headers.get('retry-after');
  if (ra) {
    const secs = Number(ra);
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
    const when = Date.parse(ra);
    if (!Number.isNaN(when)) return Math.max(0, when - Date.now());
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (reset > 0) return Math.max(0, reset * 1000 - Date.now());
  return null;
}

async function request<T>(
  method: string,
  path: string,
  opts: { body?: unknown; auth?: boolean; quiet401?: boolean; token?: string | null } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = opts.token !== undefined ? opts.token : getToken();
  if (opts.auth !== false && token) headers.Authorization = 'Bearer ' + token;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, { message: 'The server cannot be reached (' + String((e as Error).message || e) + ')' }, null);
  }
  const text = await res.text();
  let json: unknown = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const b = (json && typeof json === 'object' ? json : {}) as Partial<ApiErrorBody>;
    const err = new ApiError(res.status, b, res.status === 429 ? retryAfterMs(res.headers) : null);
    if (res.status === 401 && opts.auth !== false && !opts.quiet401) onUnauthorized?.(err);
    throw err;
  }
  return json as T;
}

export const api = {
  health: () => request<Health>('GET', '/api/health', { auth: false }),
  /** `null` when the server has no /api/images (older servers). */
  images: async (): Promise<Images | null> => {
    try {
      return await request<Images>('GET', '/api/images');
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  },
  containers: () => request<ContainerInfo[]>('GET', '/api/containers'),
  /** Checks a token without touching the stored one or raising the prompt. */
  checkToken: (token: string | null) =>
    request<ContainerInfo[]>('GET', '/api/containers', { token, quiet401: true }),
  remove: (sessionId: string) =>
    request<{ message: string }>('DELETE', '/api/containers/' + encodeURIComponent(sessionId)),
};

/** Words for an error a person reads. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 429) {
      const s = e.retryAfterMs !== null ? ` Try again in ${Math.ceil(e.retryAfterMs / 1000)}s.` : '';
      return `Too many requests: ${e.message}.${s}`.replace('..', '.');
    }
    return e.status ? `${e.message} (${e.error})` : e.message;
  }
  return e instanceof Error ? e.message : String(e);
}
