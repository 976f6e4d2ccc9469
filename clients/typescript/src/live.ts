import { ClaudeStudioError, ContainerNotFoundError, ValidationError, errorFromBody } from './errors.js';
import { sessionPath, type Rest } from './http.js';
import type { Socket } from './socket.js';
import type {
  AttachedMessage,
  CallOptions,
  ErrorMessage,
  EventsPage,
  FsEventMessage,
  ServerMessage,
  UnwatchedMessage,
  WatchingMessage,
} from './types.js';
import { Scope } from './util.js';

/** What the WebSocket side tells the client's listeners. */
export interface LiveEvents {
  emit(type: string, payload: unknown): void;
  /** Listens to `fs_event`s (for {@link Watch.onChange}). */
  onFsEvent(listener: (ev: FsEventMessage) => void): () => void;
}

/** Something that follows a command over the WebSocket (see `commands.ts`). */
export interface StreamHandle {
  output(msg: Extract<ServerMessage, { type: 'exec_output' }>): void;
  exited(msg: Extract<ServerMessage, { type: 'exec_exit' }>): void;
  connectionLost(): void;
  fail(err: unknown): void;
}

export interface AttachOptions extends CallOptions {
  /** Also deliver the session's logged events after this `seq` (`0`: all kept), before live ones. */
  since?: number;
}

/** What `attach` resolves with. */
export interface AttachResult {
  sessionId: string;
  containerId: string;
  status: string;
  /** The session's recent output (also emitted as an `output` event with `replay: true`). */
  replay: string;
}

export interface WatchOptions extends CallOptions {
  recursive?: boolean;
}

interface Waiter {
  match(msg: ServerMessage): unknown;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

interface AttachedSession {
  /** The latest event `seq` seen: a re-attach asks for the events after it. */
  lastSeq?: number;
  cols?: number;
  rows?: number;
  /** An attach was sent and its `attached` not yet seen. */
  restoring?: boolean;
}

interface WatchEntry {
  sessionId: string;
  path: string;
  recursive: boolean;
  restoring?: boolean;
}

const watchKey = (sessionId: string, path: string) => `${sessionId}\u0000${path}`;

/** The error an `error` WebSocket message stands for. */
export function wsError(msg: ErrorMessage): ClaudeStudioError {
  return errorFromBody(msg);
}

/**
 * The client's WebSocket side: the sessions it is attached to, its watches
 * and streamed commands, the calls waiting for a reply, and what it takes
 * to restore all of them after a reconnect.
 */
export class Live {
  readonly attached = new Map<string, AttachedSession>();
  readonly watches = new Map<string, WatchEntry>();
  readonly streams = new Map<string, StreamHandle>();
  private readonly waiters = new Set<Waiter>();

  constructor(
    readonly socket: Socket,
    private readonly rest: Rest,
    private readonly timeoutMs: number,
    private readonly events: LiveEvents,
  ) {}

  /** Whether something depends on the connection (it is then reopened after a drop). */
  needed(): boolean {
    return this.attached.size > 0 || this.watches.size > 0 || this.streams.size > 0 || this.waiters.size > 0;
  }

  /** Waits for the first message `match` returns a value for (or throws on), within `scope`. */
  expect<T>(match: (m: ServerMessage) => T | undefined, scope: Scope): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = {
        match,
        resolve: (v) => {
          cleanup();
          resolve(v as T);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = () => w.reject(scope.reason());
      const cleanup = () => {
        this.waiters.delete(w);
        scope.signal.removeEventListener('abort', onAbort);
      };
      if (scope.signal.aborted) return reject(scope.reason());
      scope.signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(w);
    });
  }

  attach(sessionId: string, options: AttachOptions): Promise<AttachResult> {
    return Scope.run('attach', options, this.timeoutMs, async (scope) => {
      let entry = this.attached.get(sessionId);
      const fresh = entry === undefined;
      if (!entry) {
        entry = {};
        if (options.since !== undefined) entry.lastSeq = options.since;
        else {
          // The event cursor now, so that a re-attach after a drop asks for
          // exactly the events it missed (and this checks the session first).
          const page = await this.rest.call<EventsPage>(
            { method: 'GET', path: sessionPath(sessionId, '/events'), query: { since: 0 }, read: 'json', idempotent: true, what: 'attach' },
            { signal: scope.signal, retries: options.retries },
            undefined,
          );
          entry.lastSeq = page.next;
        }
        const raced = this.attached.get(sessionId);
        if (raced) entry = raced;
        else this.attached.set(sessionId, entry);
      }
      try {
        await this.socket.ready(scope);
        let head: AttachedMessage | undefined;
        const done = this.expect<AttachResult>((m) => {
          if (m.type === 'attached' && m.sessionId === sessionId) {
            head = m;
            return undefined;
          }
          if (head && m.type === 'output' && m.sessionId === sessionId && m.replay) {
            return { sessionId, containerId: head.containerId, status: head.status, replay: m.data };
          }
          if (m.type === 'error' && m.sessionId === sessionId && m.execId === undefined && m.path === undefined) {
            throw wsError(m);
          }
          return undefined;
        }, scope);
        const msg: Record<string, unknown> = { type: 'attach', sessionId };
        const since = options.since ?? (fresh ? entry.lastSeq : undefined);
        if (since !== undefined) msg.since = since;
        entry.restoring = true;
        this.socket.send(msg);
        return await done;
      } catch (err) {
        if (fresh && this.attached.get(sessionId) === entry) this.attached.delete(sessionId);
        throw err;
      }
    });
  }

  sendInput(sessionId: string, data: string, options: CallOptions): Promise<void> {
    return Scope.run('sendInput', options, this.timeoutMs, async (scope) => {
      if (!this.attached.has(sessionId)) await this.attach(sessionId, { signal: scope.signal, retries: options.retries });
      await this.socket.ready(scope);
      this.socket.send({ type: 'input', sessionId, data });
    });
  }

  resize(sessionId: string, cols: number, rows: number, options: CallOptions): Promise<void> {
    for (const [k, v] of [['cols', cols], ['rows', rows]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 1000) {
        return Promise.reject(new ValidationError(`${k} must be an integer between 1 and 1000, got ${v}`, { sessionId }));
      }
    }
    return Scope.run('resize', options, this.timeoutMs, async (scope) => {
      const entry = this.attached.get(sessionId);
      if (entry) {
        entry.cols = cols;
        entry.rows = rows;
      }
      await this.socket.ready(scope);
      this.socket.send({ type: 'resize', sessionId, cols, rows });
    });
  }

  watch(sessionId: string, path: string, options: WatchOptions): Promise<Watch> {
    const key = watchKey(sessionId, path);
    return Scope.run('watch', options, this.timeoutMs, async (scope) => {
      await this.socket.ready(scope);
      const entry: WatchEntry = { sessionId, path, recursive: options.recursive === true };
      const had = this.watches.has(key);
      this.watches.set(key, entry);
      const done = this.expect<WatchingMessage>((m) => {
        if (m.type === 'watching' && m.sessionId === sessionId && m.path === path) return m;
        if (m.type === 'error' && m.sessionId === sessionId && m.path === path) throw wsError(m);
        return undefined;
      }, scope);
      this.socket.send({ type: 'watch', sessionId, path, recursive: entry.recursive });
      try {
        const w = await done;
        return new Watch(this, sessionId, path, w.directories, w.truncated);
      } catch (err) {
        if (!had) this.watches.delete(key);
        throw err;
      }
    });
  }

  unwatch(sessionId: string, path: string, options: CallOptions): Promise<void> {
    if (!this.watches.delete(watchKey(sessionId, path)) || !this.socket.isOpen) return Promise.resolve();
    return Scope.run('unwatch', options, this.timeoutMs, async (scope) => {
      const done = this.expect<UnwatchedMessage>((m) => {
        if (m.type === 'unwatched' && m.sessionId === sessionId && m.path === path) return m;
        if (m.type === 'error' && m.sessionId === sessionId && m.path === path) throw wsError(m);
        return undefined;
      }, scope);
      this.socket.send({ type: 'unwatch', sessionId, path });
      await done;
    });
  }

  /** One message from the server: to the calls waiting for it, the session state, the listeners. */
  dispatch(msg: ServerMessage): void {
    const sessionId = (msg as { sessionId?: unknown }).sessionId;
    const seq = (msg as { seq?: unknown }).seq;
    if (typeof sessionId === 'string' && typeof seq === 'number') {
      const entry = this.attached.get(sessionId);
      if (entry && (entry.lastSeq === undefined || seq > entry.lastSeq)) entry.lastSeq = seq;
    }
    let consumed = false;
    for (const w of [...this.waiters]) {
      try {
        const v = w.match(msg);
        if (v !== undefined) {
          w.resolve(v);
          consumed = true;
        }
      } catch (err) {
        w.reject(err);
        consumed = true;
      }
    }
    this.events.emit('message', msg);
    switch (msg.type) {
      case 'attached': {
        const entry = this.attached.get(msg.sessionId);
        if (entry) entry.restoring = false;
        break;
      }
      case 'watching': {
        const w = this.watches.get(watchKey(msg.sessionId, msg.path));
        if (w?.restoring) {
          w.restoring = false;
          // Changes while disconnected were not seen: say so, as the server says it.
          this.events.emit('fs_event', { type: 'fs_event', sessionId: msg.sessionId, path: msg.path, kind: 'modified', overflow: true });
        }
        break;
      }
      case 'exec_output':
        this.streams.get(msg.execId)?.output(msg);
        break;
      case 'exec_exit':
        this.streams.get(msg.execId)?.exited(msg);
        break;
      case 'lifecycle':
        if (msg.state === 'removed' || msg.state === 'expired') this.forget(msg.sessionId);
        break;
      case 'error': {
        const err = wsError(msg);
        if (msg.sessionId !== undefined && msg.path === undefined && msg.execId === undefined) {
          // A re-attach after a reconnect that finds the session gone.
          if (this.attached.get(msg.sessionId)?.restoring && err instanceof ContainerNotFoundError) this.attached.delete(msg.sessionId);
        }
        if (msg.sessionId !== undefined && msg.path !== undefined) {
          const key = watchKey(msg.sessionId, msg.path);
          if (this.watches.get(key)?.restoring) this.watches.delete(key);
        }
        if (!consumed) this.events.emit('error', err);
        return;
      }
    }
    this.events.emit(msg.type, msg);
  }

  /** After a reconnect: re-attach (with the events missed), re-size, re-watch. */
  restore(): void {
    try {
      for (const [sessionId, entry] of this.attached) {
        const msg: Record<string, unknown> = { type: 'attach', sessionId };
        if (entry.lastSeq !== undefined) msg.since = entry.lastSeq;
        entry.restoring = true;
        this.socket.send(msg);
        if (entry.cols !== undefined && entry.rows !== undefined) {
          this.socket.send({ type: 'resize', sessionId, cols: entry.cols, rows: entry.rows });
        }
      }
      for (const w of this.watches.values()) {
        w.restoring = true;
        this.socket.send({ type: 'watch', sessionId: w.sessionId, path: w.path, recursive: w.recursive });
      }
    } catch {
      // The connection broke again; the next reconnect restores.
    }
  }

  /** The connection dropped: streamed commands go on over REST. */
  dropped(): void {
    for (const s of [...this.streams.values()]) s.connectionLost();
  }

  /** A session that is gone: nothing to re-attach or re-watch. */
  forget(sessionId: string): void {
    this.attached.delete(sessionId);
    for (const [k, w] of this.watches) if (w.sessionId === sessionId) this.watches.delete(k);
  }

  /** Ends everything that waits on the connection. */
  close(err: unknown): void {
    for (const w of [...this.waiters]) w.reject(err);
    this.waiters.clear();
    for (const s of [...this.streams.values()]) s.fail(err);
    this.streams.clear();
    this.attached.clear();
    this.watches.clear();
  }

  /** @internal */
  onFsEvent(listener: (ev: FsEventMessage) => void): () => void {
    return this.events.onFsEvent(listener);
  }
}

/** A watch made by `ClaudeStudioClient.watch`. */
export class Watch {
  constructor(
    private readonly live: Live,
    readonly sessionId: string,
    readonly path: string,
    /** Directories the watch covers (0 for a file). */
    readonly directories: number,
    /** More directories were below than a watch covers (1000). */
    readonly truncated: boolean,
  ) {}

  /** Changes under this watch's path. Returns an unsubscribe function. */
  onChange(listener: (ev: FsEventMessage) => void): () => void {
    const prefix = this.path.endsWith('/') ? this.path : this.path + '/';
    return this.live.onFsEvent((ev) => {
      if (ev.sessionId === this.sessionId && (ev.path === this.path || ev.path.startsWith(prefix))) listener(ev);
    });
  }

  /** Ends the watch. */
  unwatch(options: CallOptions = {}): Promise<void> {
    return this.live.unwatch(this.sessionId, this.path, options);
  }
}
