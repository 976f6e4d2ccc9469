import {
  AuthenticationError,
  ClaudeStudioError,
  ConnectionError,
  RateLimitError,
  ValidationError,
} from './errors.js';
import type { ConnectionEvent, ServerMessage } from './types.js';
import { Scope, backoff, base64UrlEncode, raceAbort, sleep, utf8Decode, utf8Encode } from './util.js';

/** What the client needs of a WebSocket: the browser API, which `ws` and Node 22+ also offer. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

/** A WebSocket class: the browser's (`globalThis.WebSocket`), or one with `ws`'s options argument. */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

/** How the API token travels on the WebSocket upgrade. */
export type TokenTransport = 'auto' | 'header' | 'subprotocol' | 'query';

export interface ReconnectOptions {
  /** Reconnect (and re-attach) by itself after a drop (default true). */
  enabled?: boolean;
  /** First backoff step when the server gave no `reconnect.delay` (default 500 ms). */
  initialDelayMs?: number;
  /** Largest backoff step (default 30 s). */
  maxDelayMs?: number;
  /** Attempts in a row before giving up (default: never give up while something is attached). */
  maxAttempts?: number;
}

export interface SocketOptions {
  url: string;
  token: string | undefined;
  tokenTransport: TokenTransport;
  WebSocket: WebSocketConstructor | undefined;
  reconnect: Required<ReconnectOptions>;
  /** Attempts to open a connection a call asked for, when nothing is to be restored. */
  connectRetries: number;
  /** JSON `ping` interval (0: none); a connection silent for two intervals is dropped. */
  heartbeatMs: number;
  onMessage(msg: ServerMessage): void;
  onConnection(ev: ConnectionEvent): void;
  /** Whether something depends on the connection (attached sessions, watches, streams). */
  needed(): boolean;
  /** Called after each reconnect to re-attach and re-watch. */
  restore(): void;
  /** Called when an open connection drops. */
  dropped(): void;
}

const OPEN = 1;

/** Why an attempt to connect failed. */
interface Failure {
  error: ClaudeStudioError;
  fatal: boolean;
  retryAfterMs?: number;
}

let wsModule: Promise<WebSocketConstructor> | undefined;

/** `globalThis.WebSocket` when there is one, else the `ws` package (imported only then). */
async function defaultWebSocket(): Promise<{ ctor: WebSocketConstructor; headers: boolean }> {
  const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof g === 'function') return { ctor: g, headers: false };
  if (!wsModule) {
    // A variable specifier: bundlers for browsers leave it alone, and it is
    // loaded only on a Node without a global WebSocket (Node 20, 21).
    const name = 'ws';
    wsModule = import(name).then(
      (m: { default?: WebSocketConstructor; WebSocket?: WebSocketConstructor }) => {
        const ctor = m.WebSocket ?? m.default;
        if (!ctor) throw new Error('the ws module has no WebSocket export');
        return ctor;
      },
      (err: unknown) => {
        wsModule = undefined;
        throw new ConnectionError(
          'No WebSocket implementation: this runtime has no global WebSocket and the `ws` package is not installed (npm install ws)',
          { cause: err },
        );
      },
    );
  }
  return { ctor: await wsModule, headers: true };
}

function isWsPackage(ctor: WebSocketConstructor): boolean {
  return typeof (ctor.prototype as { on?: unknown })?.on === 'function';
}

/**
 * The client's one WebSocket: opened when first needed, reopened after a
 * drop (honouring the server's `reconnect.delay`, then backing off), with a
 * heartbeat that notices a dead peer.
 */
export class Socket {
  private ws: WebSocketLike | undefined;
  private running: Promise<void> | undefined;
  private waiters = new Set<{ resolve: () => void; reject: (e: unknown) => void }>();
  private closed = false;
  private serverDelay: number | undefined;
  private wakeUp: AbortController | undefined;
  private opened = 0;

  constructor(private readonly o: SocketOptions) {}

  get isOpen(): boolean {
    return this.ws !== undefined && this.ws.readyState === OPEN;
  }

  /** Resolves once the connection is open (opening it if needed). */
  ready(scope: Scope): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionError('The client is closed'));
    if (this.isOpen) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => {
      const w = { resolve, reject };
      this.waiters.add(w);
      scope.signal.addEventListener('abort', () => this.waiters.delete(w), { once: true });
    });
    this.start();
    return raceAbort(p, scope);
  }

  /** Sends a message on the open connection. */
  send(msg: object): void {
    if (!this.ws || this.ws.readyState !== OPEN) {
      throw new ConnectionError('The WebSocket is not connected');
    }
    this.ws.send(JSON.stringify(msg));
  }

  /** Closes the connection for good. */
  close(): void {
    this.closed = true;
    this.wakeUp?.abort();
    const ws = this.ws;
    this.ws = undefined;
    try {
      ws?.close(1000, 'client closed');
    } catch {
      // already closing
    }
    this.failWaiters(new ConnectionError('The client is closed'));
  }

  private start(): void {
    if (this.running || this.closed) return;
    this.running = this.loop().finally(() => {
      this.running = undefined;
      // Someone asked for the connection while the loop was ending.
      if (this.waiters.size > 0 && !this.closed && !this.isOpen) this.start();
    });
  }

  private failWaiters(err: unknown): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w.reject(err);
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    let delay = 0;
    let reconnecting = this.opened > 0;
    while (!this.closed) {
      if (delay > 0) {
        this.o.onConnection({ state: 'reconnecting', attempt, delayMs: delay });
        this.wakeUp = new AbortController();
        await sleep(delay, this.wakeUp.signal).catch(() => {});
        this.wakeUp = undefined;
        if (this.closed) return;
      }
      let ws: WebSocketLike;
      try {
        ws = await this.openOnce();
      } catch (f) {
        const failure = f as Failure;
        attempt++;
        // After a drop, keep trying while something depends on the connection;
        // a first connection gets the call's retries.
        const keepTrying = this.o.reconnect.enabled && reconnecting && this.o.needed();
        const limit = keepTrying ? this.o.reconnect.maxAttempts : this.o.connectRetries + 1;
        if (failure.fatal || attempt >= limit || (!keepTrying && this.waiters.size === 0)) {
          this.o.onConnection({ state: 'failed', attempt, error: failure.error, reason: failure.error.message });
          this.failWaiters(failure.error);
          return;
        }
        delay = Math.max(
          failure.retryAfterMs ?? 0,
          this.serverDelay ?? 0,
          backoff(attempt - 1, this.o.reconnect.initialDelayMs, this.o.reconnect.maxDelayMs),
        );
        continue;
      }
      if (this.closed) {
        ws.close(1000, 'client closed');
        return;
      }
      // Open.
      this.ws = ws;
      this.opened++;
      attempt = 0;
      this.serverDelay = undefined;
      const done = this.watch(ws);
      this.o.onConnection({ state: 'open', reconnected: reconnecting });
      const waiting = [...this.waiters];
      this.waiters.clear();
      for (const w of waiting) w.resolve();
      if (reconnecting) this.o.restore();
      const end = await done;
      if (this.ws === ws) this.ws = undefined;
      this.o.onConnection({ state: 'closed', code: end.code, reason: end.reason });
      if (this.closed) return;
      this.o.dropped();
      reconnecting = true;
      if (!this.o.reconnect.enabled || (!this.o.needed() && this.waiters.size === 0)) return;
      // The server's `reconnect.delay` first (a restart, a slow client), else a short backoff.
      delay = this.serverDelay ?? backoff(0, this.o.reconnect.initialDelayMs, this.o.reconnect.maxDelayMs);
    }
  }

  /** Opens one connection; rejects with a {@link Failure}. */
  private async openOnce(): Promise<WebSocketLike> {
    let ctor: WebSocketConstructor;
    let headersOk: boolean;
    try {
      if (this.o.WebSocket) {
        ctor = this.o.WebSocket;
        headersOk = isWsPackage(ctor);
      } else {
        ({ ctor, headers: headersOk } = await defaultWebSocket());
      }
    } catch (err) {
      throw { error: err instanceof ClaudeStudioError ? err : new ConnectionError(String(err)), fatal: true } satisfies Failure;
    }
    let url = this.o.url;
    const protocols = ['claude-studio'];
    const headers: Record<string, string> = {};
    const token = this.o.token;
    if (token !== undefined) {
      let how = this.o.tokenTransport;
      if (how === 'auto') how = headersOk ? 'header' : 'subprotocol';
      if (how === 'header') headers['authorization'] = `Bearer ${token}`;
      else if (how === 'subprotocol') protocols.push('claude-studio.bearer.' + base64UrlEncode(utf8Encode(token)));
      else url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    }
    return new Promise<WebSocketLike>((resolve, reject) => {
      let ws: WebSocketLike;
      let status: number | undefined;
      let retryAfter: number | undefined;
      try {
        ws = headersOk ? new ctor(url, protocols, { headers }) : new ctor(url, protocols);
      } catch (err) {
        reject({ error: new ConnectionError(`Could not open a WebSocket to ${this.o.url}`, { cause: err }), fatal: true } satisfies Failure);
        return;
      }
      const on = (ws as { on?: (t: string, l: (...a: any[]) => void) => void }).on;
      if (typeof on === 'function') {
        // The `ws` package tells the status of a refused upgrade.
        on.call(ws, 'unexpected-response', (_req: unknown, res: { statusCode?: number; headers?: Record<string, string> }) => {
          status = res.statusCode;
          const ra = Number(res.headers?.['retry-after']);
          if (Number.isFinite(ra)) retryAfter = ra * 1000;
          (ws as { terminate?: () => void }).terminate?.();
        });
      }
      let settled = false;
      ws.addEventListener('open', () => {
        settled = true;
        resolve(ws);
      });
      ws.addEventListener('error', () => {
        // `close` follows and settles.
      });
      ws.addEventListener('close', (ev: { code?: number; reason?: string }) => {
        if (settled) return;
        settled = true;
        reject(this.refusal(status, retryAfter, ev));
      });
    });
  }

  private refusal(status: number | undefined, retryAfterMs: number | undefined, ev: { code?: number; reason?: string }): Failure {
    const where = this.o.url;
    if (status === 401) {
      return { error: new AuthenticationError(`The WebSocket upgrade to ${where} was refused: missing or wrong API token`, { statusCode: 401 }), fatal: true };
    }
    if (status === 400 || status === 403) {
      return { error: new ValidationError(`The WebSocket upgrade to ${where} was refused (${status}): check the URL, Host and Origin`, { statusCode: status }), fatal: true };
    }
    if (status === 429) {
      const details = retryAfterMs === undefined ? { statusCode: 429 } : { statusCode: 429, retryAfterMs };
      const f: Failure = { error: new RateLimitError(`The WebSocket upgrade to ${where} was rate limited`, details), fatal: false };
      if (retryAfterMs !== undefined) f.retryAfterMs = retryAfterMs;
      return f;
    }
    const why = status !== undefined ? `answered ${status}` : `failed${ev.code ? ` (close code ${ev.code})` : ''}`;
    return { error: new ConnectionError(`The WebSocket connection to ${where} ${why}`), fatal: false };
  }

  /** Follows an open connection until it ends; resolves with how it ended. */
  private watch(ws: WebSocketLike): Promise<{ code?: number; reason?: string }> {
    let last = Date.now();
    let beat: ReturnType<typeof setInterval> | undefined;
    if (this.o.heartbeatMs > 0) {
      beat = setInterval(() => {
        if (Date.now() - last > 2 * this.o.heartbeatMs) {
          // Two intervals without a word: the peer is gone.
          try {
            const t = (ws as { terminate?: () => void }).terminate;
            if (typeof t === 'function') t.call(ws);
            else ws.close(4000, 'heartbeat timeout');
          } catch {
            // ignore
          }
          return;
        }
        try {
          ws.send('{"type":"ping"}');
        } catch {
          // closing
        }
      }, this.o.heartbeatMs);
    }
    ws.addEventListener('message', (ev: { data: unknown }) => {
      last = Date.now();
      let text: string;
      if (typeof ev.data === 'string') text = ev.data;
      else if (ev.data instanceof ArrayBuffer) text = utf8Decode(new Uint8Array(ev.data));
      else if (ev.data instanceof Uint8Array) text = utf8Decode(ev.data);
      else return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(text) as ServerMessage;
      } catch {
        return;
      }
      if (msg.type === 'reconnect') this.serverDelay = Math.max(0, Number(msg.delay) || 0);
      this.o.onMessage(msg);
    });
    return new Promise((resolve) => {
      ws.addEventListener('close', (ev: { code?: number; reason?: string }) => {
        if (beat !== undefined) clearInterval(beat);
        const end: { code?: number; reason?: string } = {};
        if (ev.code !== undefined) end.code = ev.code;
        if (ev.reason) end.reason = ev.reason;
        resolve(end);
      });
    });
  }
}
