/**
 * The shapes the server speaks: REST answers and WebSocket messages, as the
 * Rust server (src/protocol, src/api) sends them.
 */

/** Options every call takes. */
export interface CallOptions {
  /** Cancels the call; it rejects with the signal's reason (an `AbortError` by default). */
  signal?: AbortSignal;
  /**
   * The longest the whole call may take, retries and rate-limit waits included;
   * then it rejects with a {@link TimeoutError}. `0` or `Infinity`: no limit.
   */
  timeoutMs?: number;
  /** How many times a retryable failure is retried (overrides the client's `retries`); `0` disables. */
  retries?: number;
}

/** `GET /api/health`. */
export interface Health {
  status: 'ok' | 'degraded';
  docker: 'connected' | 'disconnected';
  /** Seconds since the server started. */
  uptime: number;
  sessions?: number;
  warmPool?: number;
  authRequired?: boolean;
  [key: string]: unknown;
}

/** What `createContainer` takes (the REST body of `POST /api/containers`). */
export interface CreateContainerOptions {
  /** Image reference; the server's `--default-image` when absent. */
  image?: string;
  /** Host directory (inside a `--workspace-root`) mounted at `/workspace`. */
  workspaceDir?: string;
  /** Environment of the container's processes. */
  env?: Record<string, string>;
  /** The first shell's size. */
  cols?: number;
  rows?: number;
  /** An existing session of yours: it is returned instead of creating another. */
  sessionId?: string;
}

/** A session just created (`POST /api/containers`). `id` is `sessionId`. */
export interface Session {
  /** The same as `sessionId`: the id every other call takes. */
  id: string;
  sessionId: string;
  containerId: string;
  status: string;
  image: string;
}

/** `GET /api/containers/:id` and each item of `GET /api/containers`. */
export interface ContainerInfo {
  /** The same as `sessionId`. */
  id: string;
  sessionId: string;
  containerId: string;
  /** `running`, `stopped`, `paused`, `restarting`, `starting` or `removed`. */
  status: string;
  image: string;
  /** Unix seconds. */
  createdAt: number;
  /** The port the path-based preview forwards to, once there is one. */
  previewPort?: number;
  /** TCP ports something in the container listens on. */
  ports: number[];
}

/** `POST /api/preview/configure` (and the WebSocket `preview_configured`). */
export interface PreviewConfigured {
  sessionId: string;
  /** Path-based preview, relative to the server: `/preview/SESSION` (with `?token=` when auth is on). */
  previewUrl: string;
  /** `http://localhost:PORT`, as seen from inside the container. */
  targetUrl: string;
  /** The preview on an origin of its own: the URL to open in a browser. */
  hostPreviewUrl: string;
}

/** `GET /api/images`. */
export interface Images {
  defaultImage: string;
  allowed: string[];
  local: string[];
  fallbackImage: string | null;
}

/** A command: an argument vector, or a string run by `/bin/sh -c`. */
export type Command = string | string[];

/** How to run a command (`POST /api/containers/:id/exec` and the WebSocket `exec`). */
export interface CommandOptions {
  /** Working directory, absolute; `/workspace` by default. */
  cwd?: string;
  /** Environment on top of the container's. */
  env?: Record<string, string>;
  /** Written to stdin, which is then closed. Absent: stdin stays open (see `sendCommandInput`). */
  stdin?: string;
  /**
   * Server-side limit in **seconds** (up to 86400): then the whole process group
   * is killed with SIGKILL and the result says `timedOut: true` (exit code 137).
   */
  timeout?: number;
  /** Your id for the command (1–64 of `A-Za-z0-9_-`); the client makes one otherwise. */
  execId?: string;
}

/** What `executeCommand` resolves with. */
export interface CommandResult {
  execId: string;
  /**
   * The exit code: `128 + N` when the process was ended by signal N (as a
   * shell's `$?`), `127` for a program that does not exist, `126` for a
   * `cwd` that does not exist; `null` only if the server could not tell.
   */
  exitCode: number | null;
  /** The signal that ended it (`"SIGTERM"`), else `null`. */
  signal: string | null;
  /** Standard output as text (invalid UTF-8 decoded with U+FFFD; see `stdoutBytes`). */
  stdout: string;
  stderr: string;
  /** Exact bytes, present only when the output was not valid UTF-8. */
  stdoutBytes?: Uint8Array;
  stderrBytes?: Uint8Array;
  /** Output beyond what the server keeps (16 MiB per command, 64 MiB per session) was left out. */
  truncated: boolean;
  durationMs: number;
  /** The command's `timeout` ended it. */
  timedOut: boolean;
}

/** `GET /api/containers/:id/exec/:execId`: a command's result so far. */
export interface CommandState extends CommandResult {
  running: boolean;
}

/** One item of `GET /api/containers/:id/exec`. */
export interface CommandSummary {
  execId: string;
  cmd: string[];
  startedAt: number;
  running: boolean;
  [key: string]: unknown;
}

/** A piece of a streamed command's output. */
export interface CommandChunk {
  stream: 'stdout' | 'stderr';
  /** The piece as text (invalid UTF-8 decoded with U+FFFD). */
  data: string;
  /** The exact bytes. */
  bytes: Uint8Array;
}

export type FileType = 'file' | 'directory' | 'symlink' | 'other';

/** One entry of a directory listing. */
export interface FileEntry {
  /** The name (in a recursive listing: the path below the listed directory). */
  name: string;
  type: FileType;
  size: number;
  /** Permission bits in octal, `"0644"`. */
  mode: string;
  /** Unix seconds. */
  mtime: number;
  /** Where a symlink points (never followed). */
  target?: string;
}

/** `GET /api/containers/:id/files?path=`: a file's stat, or a directory's with its entries. */
export interface FileInfo extends FileEntry {
  path: string;
  /** Present for a directory. */
  entries?: FileEntry[];
  /** A listing stopped at its limit (10 000 entries). */
  truncated?: boolean;
}

/** The session's events (`GET /api/containers/:id/events`, and the WebSocket's). */
export interface EventsPage {
  events: SessionEvent[];
  /** Pass it as the next `since`. */
  next: number;
  /** Events after `since` were dropped from the server's bounded log before being read. */
  missed?: boolean;
}

// ---------------------------------------------------------------- WebSocket

export interface ContainerCreatedMessage {
  type: 'container_created';
  sessionId: string;
  containerId: string;
  status: string;
}

export interface AttachedMessage {
  type: 'attached';
  sessionId: string;
  containerId: string;
  status: string;
}

export interface OutputMessage {
  type: 'output';
  sessionId: string;
  data: string;
  /**
   * The session's recent output (the last 64 KiB or more), sent on attach and
   * on every re-attach after a reconnect: a terminal should be reset before
   * writing it.
   */
  replay?: boolean;
}

export interface ExitMessage {
  type: 'exit';
  seq?: number;
  sessionId: string;
  code: number | null;
  signal: string | null;
}

export interface ProgressMessage {
  type: 'progress';
  stage: string;
  message: string;
  current: number | null;
  total: number | null;
}

export interface ReconnectMessage {
  type: 'reconnect';
  reason: string;
  /** Milliseconds the server asks the client to wait before reconnecting. */
  delay: number;
}

export interface PreviewConfiguredMessage extends PreviewConfigured {
  type: 'preview_configured';
}

export interface ConsoleMessage {
  type: 'console';
  seq?: number;
  sessionId: string;
  level: 'log' | 'info' | 'warn' | 'error' | 'debug' | string;
  args: unknown[];
  url: string;
  timestamp: number;
  /** `uncaught` or `unhandledrejection`; absent for console calls. */
  kind?: string;
}

export interface ExecStartedMessage {
  type: 'exec_started';
  sessionId: string;
  execId: string;
}

export interface ExecOutputMessage {
  type: 'exec_output';
  sessionId: string;
  execId: string;
  stream: 'stdout' | 'stderr';
  data: string;
  /** `base64` when the bytes are not UTF-8. */
  encoding?: 'base64';
}

export interface ExecExitMessage {
  type: 'exec_exit';
  seq?: number;
  sessionId: string;
  execId: string;
  code: number | null;
  signal: string | null;
  durationMs: number;
  timedOut: boolean;
}

export interface PortOpenedMessage {
  type: 'port_opened';
  seq?: number;
  sessionId: string;
  port: number;
  previewUrl: string;
}

export interface PortClosedMessage {
  type: 'port_closed';
  seq?: number;
  sessionId: string;
  port: number;
}

export interface FsEventMessage {
  type: 'fs_event';
  sessionId: string;
  path: string;
  kind: 'created' | 'modified' | 'removed' | 'renamed' | string;
  /** Changes were left out: read the directory again. */
  overflow?: boolean;
}

export interface WatchingMessage {
  type: 'watching';
  sessionId: string;
  path: string;
  directories: number;
  truncated: boolean;
}

export interface UnwatchedMessage {
  type: 'unwatched';
  sessionId: string;
  path: string;
}

export interface LifecycleMessage {
  type: 'lifecycle';
  seq?: number;
  sessionId: string;
  /** `created`, `restored`, `restarted`, `removed`, `expired`. */
  state: string;
  reason: string;
}

export interface PongMessage {
  type: 'pong';
}

export interface ErrorMessage {
  type: 'error';
  error: string;
  message: string;
  retryable: boolean;
  sessionId?: string;
  execId?: string;
  path?: string;
}

/** Every message the server sends over the WebSocket. */
export type ServerMessage =
  | ContainerCreatedMessage
  | AttachedMessage
  | OutputMessage
  | ExitMessage
  | ProgressMessage
  | ReconnectMessage
  | PreviewConfiguredMessage
  | ConsoleMessage
  | ExecStartedMessage
  | ExecOutputMessage
  | ExecExitMessage
  | PortOpenedMessage
  | PortClosedMessage
  | FsEventMessage
  | WatchingMessage
  | UnwatchedMessage
  | LifecycleMessage
  | PongMessage
  | ErrorMessage;

/** The events kept in a session's log (they carry `seq`). */
export type SessionEvent =
  | (ConsoleMessage & { seq: number })
  | (PortOpenedMessage & { seq: number })
  | (PortClosedMessage & { seq: number })
  | (ExecExitMessage & { seq: number })
  | (ExitMessage & { seq: number })
  | (LifecycleMessage & { seq: number });

/** The state of the client's WebSocket, as `connection` events report it. */
export interface ConnectionEvent {
  /**
   * `open`: connected (`reconnected` true after a drop); `closed`: the
   * connection ended; `reconnecting`: a new attempt follows in `delayMs`;
   * `failed`: the client gave up (auth refused, attempts exhausted).
   */
  state: 'open' | 'closed' | 'reconnecting' | 'failed';
  reconnected?: boolean;
  attempt?: number;
  delayMs?: number;
  /** Why it closed or failed. */
  reason?: string;
  code?: number;
  error?: Error;
}
