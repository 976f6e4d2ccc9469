import { TimeoutError } from './errors.js';

/** The reason a signal gives, or a standard `AbortError`. */
export function abortReason(signal: AbortSignal | undefined): unknown {
  if (signal?.reason !== undefined) return signal.reason;
  return new DOMException('The operation was aborted', 'AbortError');
}

/**
 * One call's cancellation: the caller's signal and the call's deadline, as
 * one signal to hand to `fetch` and waits, and the error to reject with.
 */
export class Scope {
  readonly signal: AbortSignal;
  readonly deadline: number;
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly unlink: (() => void) | undefined;
  private timedOut = false;

  constructor(
    readonly what: string,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ) {
    this.signal = this.controller.signal;
    const ms = timeoutMs !== undefined && timeoutMs > 0 && Number.isFinite(timeoutMs) ? timeoutMs : undefined;
    this.deadline = ms === undefined ? Infinity : Date.now() + ms;
    if (signal) {
      if (signal.aborted) {
        this.controller.abort(abortReason(signal));
      } else {
        const onAbort = () => this.controller.abort(abortReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        this.unlink = () => signal.removeEventListener('abort', onAbort);
      }
    }
    if (ms !== undefined && !this.signal.aborted) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.controller.abort(new TimeoutError(`${what} timed out after ${ms} ms`));
      }, ms);
    }
  }

  /** The error to reject with now that the scope has ended. */
  reason(): unknown {
    if (this.timedOut) return this.signal.reason;
    return this.signal.reason ?? abortReason(undefined);
  }

  /** Milliseconds left before the deadline. */
  remaining(): number {
    return this.deadline - Date.now();
  }

  throwIfDone(): void {
    if (this.signal.aborted) throw this.reason();
  }

  /** Ends the scope: waits still tied to it (a reply that never came) stop listening. */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.unlink?.();
    if (!this.signal.aborted) this.controller.abort(new DOMException('The call has ended', 'AbortError'));
  }

  /** Runs `fn` in a new scope and always disposes of it. */
  static async run<T>(
    what: string,
    options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined },
    defaultTimeoutMs: number | undefined,
    fn: (scope: Scope) => Promise<T>,
  ): Promise<T> {
    const scope = new Scope(what, options.signal, options.timeoutMs ?? defaultTimeoutMs);
    try {
      return await raceAbort(fn(scope), scope);
    } finally {
      scope.dispose();
    }
  }
}

/** `promise`, or the scope's error as soon as it ends. */
export function raceAbort<T>(promise: Promise<T>, scope: Scope): Promise<T> {
  if (scope.signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(scope.reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(scope.reason());
    scope.signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        scope.signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        scope.signal.removeEventListener('abort', onAbort);
        reject(scope.signal.aborted ? scope.reason() : e);
      },
    );
  });
}

/** Waits `ms`, or rejects as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Exponential backoff with jitter: `base * 2^attempt`, at most `max`, then 50–100 % of it. */
export function backoff(attempt: number, base: number, max: number): number {
  const exp = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + (Math.random() * exp) / 2);
}

/** The HTTP and WebSocket base URLs for a `ws://`, `wss://`, `http://` or `https://` URL. */
export function deriveUrls(input: string): { http: string; ws: string } {
  const url = new URL(input);
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) {
    throw new TypeError(`Unsupported URL scheme '${url.protocol}': use ws://, wss://, http:// or https://`);
  }
  let path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith('/ws')) path = path.slice(0, -3);
  const host = url.host;
  return {
    http: `${secure ? 'https' : 'http'}://${host}${path}`,
    ws: `${secure ? 'wss' : 'ws'}://${host}${path}/`,
  };
}

/** A random id of `A-Za-z0-9_-`, as the server takes for `execId`. */
export function randomId(prefix: string): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return prefix + base64UrlEncode(bytes);
}

const encoder = new TextEncoder();

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

export function utf8Decode(bytes: Uint8Array): string {
  return new TextDecoder('utf-8').decode(bytes);
}

export function base64Encode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function base64Decode(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function base64UrlEncode(bytes: Uint8Array): string {
  return base64Encode(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
