import { Commands, type CommandStream, type ExecuteOptions, type StartOptions } from './commands.js';
import { Emitter } from './emitter.js';
import { ConnectionError, type ClaudeStudioError } from './errors.js';
import { Events, type EventsOptions } from './events.js';
import { Files, type FileData } from './files.js';
import { Rest, sessionPath, type RateLimitInfo } from './http.js';
import { Live, type AttachOptions, type AttachResult, type Watch, type WatchOptions } from './live.js';
import { Socket, type ReconnectOptions, type TokenTransport, type WebSocketConstructor } from './socket.js';
import type {
  AttachedMessage,
  CallOptions,
  Command,
  CommandResult,
  CommandState,
  CommandSummary,
  ConnectionEvent,
  ConsoleMessage,
  ContainerCreatedMessage,
  ContainerInfo,
  CreateContainerOptions,
  EventsPage,
  ExecExitMessage,
  ExecOutputMessage,
  ExecStartedMessage,
  ExitMessage,
  FileEntry,
  FileInfo,
  FsEventMessage,
  Health,
  Images,
  LifecycleMessage,
  OutputMessage,
  PongMessage,
  PortClosedMessage,
  PortOpenedMessage,
  PreviewConfigured,
  PreviewConfiguredMessage,
  ProgressMessage,
  ReconnectMessage,
  ServerMessage,
  Session,
  SessionEvent,
  UnwatchedMessage,
  WatchingMessage,
} from './types.js';
import { deriveUrls } from './util.js';

/** How a client behaves: token, retries, timeouts, reconnects, transports. */
export interface ClientOptions {
  /** API token, when the server has `--api-token`s. */
  token?: string;
  /** Retries of retryable failures for every call (default 3); `0` disables. A call's own `retries` wins. */
  retries?: number;
  /** First backoff step between retries without a server-given delay (default 250 ms). */
  retryBaseDelayMs?: number;
  /** Longest server-asked wait (`Retry-After`) the client sits out before retrying (default 60 s); a longer one fails at once. */
  maxRetryDelayMs?: number;
  /**
   * Default `timeoutMs` of a call (default 120 s). `createContainer` defaults
   * to 10 minutes (image pulls); `executeCommand`, `startCommand` and `events()`
   * have no default limit; `getEvents` adds its `wait`.
   */
  timeoutMs?: number;
  /** Automatic reconnect of the WebSocket (default on). `false` turns it off. */
  reconnect?: boolean | ReconnectOptions;
  /** Interval of the client's WebSocket heartbeat (`ping`), default 30 s; `0` disables. */
  heartbeatMs?: number;
  /** A WebSocket class to use instead of `globalThis.WebSocket` / the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** A `fetch` to use instead of `globalThis.fetch`. */
  fetch?: typeof fetch;
  /**
   * How the token travels on the WebSocket upgrade: `auto` (default) sends an
   * `Authorization` header with the `ws` package and the
   * `claude-studio.bearer.<base64url>` subprotocol with a browser's WebSocket.
   */
  tokenTransport?: TokenTransport;
}

/** The client's events: one per server message type, plus `connection` and `message`. */
export interface ClientEvents {
  output: OutputMessage;
  exit: ExitMessage;
  console: ConsoleMessage;
  exec_started: ExecStartedMessage;
  exec_output: ExecOutputMessage;
  exec_exit: ExecExitMessage;
  port_opened: PortOpenedMessage;
  port_closed: PortClosedMessage;
  fs_event: FsEventMessage;
  lifecycle: LifecycleMessage;
  /** The server asked the client to reconnect (it does so by itself, after `delay`). */
  reconnect: ReconnectMessage;
  /** A WebSocket error no call was waiting for (typed, with `sessionId`/`execId`/`path`). */
  error: ClaudeStudioError;
  attached: AttachedMessage;
  container_created: ContainerCreatedMessage;
  progress: ProgressMessage;
  preview_configured: PreviewConfiguredMessage;
  watching: WatchingMessage;
  unwatched: UnwatchedMessage;
  pong: PongMessage;
  /** The WebSocket's state: open, closed, reconnecting, failed. */
  connection: ConnectionEvent;
  /** Every server message, as it comes. */
  message: ServerMessage;
}

const DEFAULT_TIMEOUT = 120_000;

function withId<T extends { sessionId: string }>(v: T): T & { id: string } {
  return { id: v.sessionId, ...v };
}

/**
 * The Claude Studio client. REST for requests and answers; one WebSocket,
 * opened when first needed, for the terminal, streamed commands, watches and
 * live events. Every method takes a last `options` argument with `signal`,
 * `timeoutMs` and `retries`.
 *
 * ```ts
 * const client = new ClaudeStudioClient('ws://localhost:3333');
 * const session = await client.createContainer({ image: 'node:20-alpine' });
 * const { exitCode, stdout } = await client.executeCommand(session.id, 'npm install');
 * ```
 */
export class ClaudeStudioClient extends Emitter<ClientEvents> {
  /** The HTTP base URL (`http://host:port`). */
  readonly httpUrl: string;
  /** The WebSocket URL (`ws://host:port/`). */
  readonly wsUrl: string;
  private readonly rest: Rest;
  private readonly socket: Socket;
  private readonly live: Live;
  private readonly commands: Commands;
  private readonly files: Files;
  private readonly log: Events;
  private readonly timeoutMs: number;
  private closed = false;

  /**
   * @param url The server: `ws://localhost:3333` (as documented) or `http://localhost:3333`;
   *   the client derives the other.
   */
  constructor(url: string, options: ClientOptions = {}) {
    super();
    const urls = deriveUrls(url);
    this.httpUrl = urls.http;
    this.wsUrl = urls.ws;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT;
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof fetchImpl !== 'function') throw new TypeError('No fetch: pass options.fetch');
    this.rest = new Rest(this.httpUrl, options.token, fetchImpl, {
      retries: options.retries ?? 3,
      baseDelayMs: options.retryBaseDelayMs ?? 250,
      maxBackoffMs: 10_000,
      maxRetryDelayMs: options.maxRetryDelayMs ?? 60_000,
    });
    const rc = typeof options.reconnect === 'object' ? options.reconnect : {};
    this.socket = new Socket({
      url: this.wsUrl,
      token: options.token,
      tokenTransport: options.tokenTransport ?? 'auto',
      WebSocket: options.WebSocket,
      reconnect: {
        enabled: options.reconnect !== false && rc.enabled !== false,
        initialDelayMs: rc.initialDelayMs ?? 500,
        maxDelayMs: rc.maxDelayMs ?? 30_000,
        maxAttempts: rc.maxAttempts ?? Infinity,
      },
      connectRetries: options.retries ?? 3,
      heartbeatMs: options.heartbeatMs ?? 30_000,
      onMessage: (m) => this.live.dispatch(m),
      onConnection: (ev) => this.emit('connection', ev),
      needed: () => this.live.needed(),
      restore: () => this.live.restore(),
      dropped: () => this.live.dropped(),
    });
    this.live = new Live(this.socket, this.rest, this.timeoutMs, {
      emit: (type, payload) => this.emit(type as keyof ClientEvents, payload as never),
      onFsEvent: (listener) => this.on('fs_event', listener),
    });
    this.commands = new Commands(this.rest, this.live, this.timeoutMs);
    this.files = new Files(this.rest, this.timeoutMs);
    this.log = new Events(this.rest, this.timeoutMs, (id, o) => this.getContainer(id, o));
  }

  /** The `X-RateLimit-*` headers of the latest REST answer that carried them. */
  get rateLimit(): RateLimitInfo | undefined {
    return this.rest.lastRateLimit;
  }

  /** Whether the WebSocket is connected now. */
  get connected(): boolean {
    return this.socket.isOpen;
  }

  /** Sessions this client follows on its WebSocket (re-attached after a reconnect). */
  get attachedSessions(): string[] {
    return [...this.live.attached.keys()];
  }

  // -------------------------------------------------------------- sessions

  /** `GET /api/health`: `{status, docker, uptime, …}`. Never rate limited, needs no token. */
  health(options: CallOptions = {}): Promise<Health> {
    return this.rest.call({ method: 'GET', path: '/api/health', read: 'json', idempotent: true, what: 'health' }, options, this.timeoutMs);
  }

  /**
   * Creates a session: a hardened container with a terminal. Resolves with
   * `{id, sessionId, containerId, status, image}` (`id` is `sessionId`).
   * Its default `timeoutMs` is 10 minutes (the engine may pull the image).
   */
  async createContainer(options: CreateContainerOptions = {}, call: CallOptions = {}): Promise<Session> {
    const body: Record<string, unknown> = {};
    for (const k of ['image', 'workspaceDir', 'env', 'cols', 'rows', 'sessionId'] as const) {
      if (options[k] !== undefined) body[k] = options[k];
    }
    const r = await this.rest.call<Omit<Session, 'id'>>(
      { method: 'POST', path: '/api/containers', json: body, read: 'json', idempotent: false, what: 'createContainer' },
      call,
      600_000,
    );
    return withId(r);
  }

  /** `GET /api/containers/:id`: status, image, `createdAt`, `previewPort`, open `ports`. */
  async getContainer(sessionId: string, options: CallOptions = {}): Promise<ContainerInfo> {
    const r = await this.rest.call<Omit<ContainerInfo, 'id'>>(
      { method: 'GET', path: sessionPath(sessionId), read: 'json', idempotent: true, what: 'getContainer' },
      options,
      this.timeoutMs,
    );
    return withId(r);
  }

  /** `GET /api/containers`: your sessions. */
  async listContainers(options: CallOptions = {}): Promise<ContainerInfo[]> {
    const r = await this.rest.call<Omit<ContainerInfo, 'id'>[]>(
      { method: 'GET', path: '/api/containers', read: 'json', idempotent: true, what: 'listContainers' },
      options,
      this.timeoutMs,
    );
    return r.map(withId);
  }

  /** `DELETE /api/containers/:id`: removes the session and its container. */
  async removeContainer(sessionId: string, options: CallOptions = {}): Promise<{ message: string }> {
    const r = await this.rest.call<{ message: string }>(
      { method: 'DELETE', path: sessionPath(sessionId), read: 'json', idempotent: true, what: 'removeContainer' },
      options,
      this.timeoutMs,
    );
    this.live.forget(sessionId);
    return r;
  }

  /**
   * Points the session's preview at `port` of its own container. Resolves with
   * `{sessionId, previewUrl: "/preview/SESSION", targetUrl, hostPreviewUrl}`.
   */
  configurePreview(sessionId: string, port: number, options: CallOptions = {}): Promise<PreviewConfigured> {
    return this.rest.call(
      { method: 'POST', path: '/api/preview/configure', json: { sessionId, port }, read: 'json', idempotent: true, what: 'configurePreview' },
      options,
      this.timeoutMs,
    );
  }

  /** `GET /api/images`: the default image, the allowed patterns and the local images. */
  listImages(options: CallOptions = {}): Promise<Images> {
    return this.rest.call({ method: 'GET', path: '/api/images', read: 'json', idempotent: true, what: 'listImages' }, options, this.timeoutMs);
  }

  // -------------------------------------------------------------- commands

  /**
   * Runs a command in the session and resolves when it has ended, whatever
   * its exit code, with `{execId, exitCode, signal, stdout, stderr, truncated,
   * durationMs, timedOut}` (`check: true` rejects with `CommandFailedError`
   * instead when it is not 0). `cmd` is a string run by `/bin/sh -c`, or an
   * argument vector; `timeout` is the server's limit in seconds. Output also
   * streams to `onStdout`/`onStderr`/`onOutput`. Cancelling the call
   * (`signal`, `timeoutMs`; no default) kills the command.
   */
  executeCommand(sessionId: string, cmd: Command, options: ExecuteOptions = {}): Promise<CommandResult> {
    return this.commands.execute(sessionId, cmd, options);
  }

  /**
   * Starts a command over the WebSocket and resolves once it runs, with a
   * {@link CommandStream}: iterate it (`for await`) for the output, `await
   * stream.result` for the end, `write`/`end` its stdin, `kill` it. After a
   * dropped connection it follows the command over REST, without losing output.
   */
  startCommand(sessionId: string, cmd: Command, options: StartOptions = {}): Promise<CommandStream> {
    return this.commands.start(sessionId, cmd, options);
  }

  /** `GET /api/containers/:id/exec`: the running commands. */
  listCommands(sessionId: string, options: CallOptions = {}): Promise<CommandSummary[]> {
    return this.commands.list(sessionId, options);
  }

  /** `GET /api/containers/:id/exec/:execId`: a command's result so far (running or ended). */
  getCommand(sessionId: string, execId: string, options: CallOptions = {}): Promise<CommandState> {
    return this.commands.get(sessionId, execId, options);
  }

  /**
   * Signals a command's process group (`SIGKILL` by default; `SIGTERM`, `TERM`,
   * `15`…). Note: the server drops a signal sent before the engine reports the
   * command's process (its first ~300 ms); `CommandStream.kill()` repeats a
   * `SIGKILL` until the command ends.
   */
  killCommand(sessionId: string, execId: string, signal: string | number = 'SIGKILL', options: CallOptions = {}): Promise<{ execId: string; signal: string }> {
    return this.commands.kill(sessionId, execId, signal, options);
  }

  /** Writes to a running command's stdin (`eof: true` closes it after). */
  sendCommandInput(sessionId: string, execId: string, data: string | Uint8Array, options: CallOptions & { eof?: boolean } = {}): Promise<void> {
    return this.commands.input(sessionId, execId, data, options);
  }

  // ----------------------------------------------------------------- files

  /** A file's bytes. `range` reads part of it (`end` inclusive). */
  readFile(sessionId: string, path: string, options: CallOptions & { range?: { start: number; end?: number } } = {}): Promise<Uint8Array> {
    return this.files.read(sessionId, path, options);
  }

  /** A file's content as UTF-8 text. */
  readText(sessionId: string, path: string, options: CallOptions = {}): Promise<string> {
    return this.files.readText(sessionId, path, options);
  }

  /** Writes a file atomically (text as UTF-8); `parents: true` makes missing directories. Resolves with `{path, size, created}`. */
  writeFile(sessionId: string, path: string, data: FileData, options: CallOptions & { parents?: boolean } = {}): Promise<{ path: string; size: number; created: boolean }> {
    return this.files.write(sessionId, path, data, options);
  }

  /** A file's or directory's stat; a directory's comes with its `entries`. */
  stat(sessionId: string, path: string, options: CallOptions & { recursive?: boolean } = {}): Promise<FileInfo> {
    return this.files.stat(sessionId, path, options);
  }

  /** A directory's entries (`recursive`: every entry below it, names relative); a file lists as itself. */
  listFiles(sessionId: string, path: string, options: CallOptions & { recursive?: boolean } = {}): Promise<FileEntry[]> {
    return this.files.list(sessionId, path, options);
  }

  /** Removes a file, or a directory (`recursive: true` when it is not empty). */
  removeFile(sessionId: string, path: string, options: CallOptions & { recursive?: boolean } = {}): Promise<{ path: string; removed: boolean }> {
    return this.files.remove(sessionId, path, options);
  }

  /** Makes a directory (`parents: true`: with its parents, and an existing one is fine). */
  mkdir(sessionId: string, path: string, options: CallOptions & { parents?: boolean } = {}): Promise<{ path: string; created: boolean }> {
    return this.files.mkdir(sessionId, path, options);
  }

  /** Moves (renames) a file or directory. */
  move(sessionId: string, from: string, to: string, options: CallOptions = {}): Promise<{ from: string; to: string }> {
    return this.files.move(sessionId, from, to, options);
  }

  /** A directory as a tar archive. */
  downloadArchive(sessionId: string, path: string, options: CallOptions = {}): Promise<Uint8Array> {
    return this.files.downloadArchive(sessionId, path, options);
  }

  /** Unpacks a tar archive into a directory (made if missing): `{path, entries}`. */
  uploadArchive(sessionId: string, path: string, tar: Uint8Array | ArrayBuffer | Blob, options: CallOptions = {}): Promise<{ path: string; entries: number }> {
    return this.files.uploadArchive(sessionId, path, tar, options);
  }

  // ---------------------------------------------------------- events, ports

  /**
   * The session's logged events after `since` (`0`: all kept): console
   * messages, `port_opened`/`port_closed`, `exec_exit`, `exit`, `lifecycle`.
   * `wait` (seconds, at most 60) long-polls when there is none yet. Pass
   * `next` as the next `since`.
   */
  getEvents(sessionId: string, options: CallOptions & { since?: number; wait?: number } = {}): Promise<EventsPage> {
    return this.log.get(sessionId, options);
  }

  /**
   * The session's events as an async iterator that long-polls: each event
   * once, in order; it rides out server restarts, and ends when the session
   * is removed or expires, or when `signal` aborts.
   */
  events(sessionId: string, options: EventsOptions = {}): AsyncGenerator<SessionEvent, void, undefined> {
    return this.log.iterate(sessionId, options);
  }

  /** The TCP ports something in the session's container listens on now. */
  async getPorts(sessionId: string, options: CallOptions = {}): Promise<number[]> {
    return (await this.getContainer(sessionId, options)).ports;
  }

  /** Resolves once something in the session listens on `port` (at once if it does), with its `previewUrl` when reported. */
  waitForPort(sessionId: string, port: number, options: CallOptions = {}): Promise<{ port: number; previewUrl?: string }> {
    return this.log.waitForPort(sessionId, port, options);
  }

  // -------------------------------------------------------------- terminal

  /**
   * Attaches to a session's terminal over the WebSocket. Resolves with the
   * session and its recent output (`replay`, also emitted as an `output`
   * event with `replay: true`); then `output`, `exit`, `console`, port and
   * other session events arrive as events. With `since`, the logged events
   * after it come first. After a dropped connection the client re-attaches
   * by itself, with the replay and exactly the events it missed.
   */
  attach(sessionId: string, options: AttachOptions = {}): Promise<AttachResult> {
    return this.live.attach(sessionId, options);
  }

  /**
   * Stops following a session: it is not re-attached after a reconnect (the
   * server has no detach message: its output still arrives until the
   * connection closes).
   */
  detach(sessionId: string): void {
    this.live.attached.delete(sessionId);
  }

  /** Types into the session's terminal (attaching first when needed). */
  sendInput(sessionId: string, data: string, options: CallOptions = {}): Promise<void> {
    return this.live.sendInput(sessionId, data, options);
  }

  /** Resizes the session's terminal (1 to 1000 columns and rows); kept across reconnects. */
  resize(sessionId: string, cols: number, rows: number, options: CallOptions = {}): Promise<void> {
    return this.live.resize(sessionId, cols, rows, options);
  }

  /**
   * Watches a path of the session for changes (`fs_event` events, and the
   * watch's `onChange`). Watches are re-established after a reconnect, with
   * one `fs_event` `overflow: true` for the path: changes in between may have
   * been missed.
   */
  watch(sessionId: string, path: string, options: WatchOptions = {}): Promise<Watch> {
    return this.live.watch(sessionId, path, options);
  }

  /** Terminal output (of one session, or all): `listener(data, message)`. Returns an unsubscribe function. */
  onOutput(listener: (data: string, msg: OutputMessage) => void, sessionId?: string): () => void {
    return this.on('output', (m) => {
      if (sessionId === undefined || m.sessionId === sessionId) listener(m.data, m);
    });
  }

  /** The terminal's shell ended (`{code, signal}`); the container keeps running. */
  onExit(listener: (msg: ExitMessage) => void, sessionId?: string): () => void {
    return this.on('exit', (m) => {
      if (sessionId === undefined || m.sessionId === sessionId) listener(m);
    });
  }

  /** Console messages, uncaught errors and rejections of the session's preview pages. */
  onConsole(listener: (msg: ConsoleMessage) => void, sessionId?: string): () => void {
    return this.on('console', (m) => {
      if (sessionId === undefined || m.sessionId === sessionId) listener(m);
    });
  }

  /** WebSocket errors no call was waiting for (a refused `input`, a failed re-attach…). */
  onError(listener: (err: ClaudeStudioError) => void, sessionId?: string): () => void {
    return this.on('error', (e) => {
      if (sessionId === undefined || e.sessionId === sessionId) listener(e);
    });
  }

  /** Ports opening and closing in attached sessions. */
  onPort(listener: (msg: PortOpenedMessage | PortClosedMessage) => void, sessionId?: string): () => void {
    const opened = this.on('port_opened', (m) => {
      if (sessionId === undefined || m.sessionId === sessionId) listener(m);
    });
    const closed = this.on('port_closed', (m) => {
      if (sessionId === undefined || m.sessionId === sessionId) listener(m);
    });
    return () => {
      opened();
      closed();
    };
  }

  /** Closes the WebSocket for good and ends the streams, watches and waits that use it. REST calls still work. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.live.close(new ConnectionError('The client is closed'));
  }
}
