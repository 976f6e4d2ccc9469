/**
 * One error class per error name the server documents, all extending
 * {@link ClaudeStudioError}. `name` is the server's name (`"ValidationError"`),
 * `retryable` what the server said (or the documented default), `statusCode`
 * the HTTP status (REST only).
 */

export interface ErrorDetails {
  retryable?: boolean;
  statusCode?: number;
  sessionId?: string;
  execId?: string;
  path?: string;
  cause?: unknown;
}

export class ClaudeStudioError extends Error {
  /** The server's error name (`ValidationError`, …); the same as `name`. */
  readonly error: string;
  /** Whether trying the same call again later may succeed. */
  readonly retryable: boolean;
  /** The HTTP status of a REST error; absent for WebSocket errors. */
  readonly statusCode?: number;
  /** The session the error is about, when the server names one. */
  readonly sessionId?: string;
  /** The command the error is about (WebSocket errors about an `exec`). */
  readonly execId?: string;
  /** The path the error is about (WebSocket errors about a `watch`). */
  readonly path?: string;

  constructor(message: string, details: ErrorDetails = {}, name = 'ClaudeStudioError') {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = name;
    this.error = name;
    this.retryable = details.retryable ?? false;
    if (details.statusCode !== undefined) this.statusCode = details.statusCode;
    if (details.sessionId !== undefined) this.sessionId = details.sessionId;
    if (details.execId !== undefined) this.execId = details.execId;
    if (details.path !== undefined) this.path = details.path;
  }
}

/** Bad input (400; also 403 permission denied, 405, 409 conflict, 416 bad range, and SSRF attempts). */
export class ValidationError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'ValidationError');
  }
}

/** A missing or wrong API token (401). */
export class AuthenticationError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'AuthenticationError');
  }
}

/** No such session, or another owner's (404). */
export class ContainerNotFoundError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'ContainerNotFoundError');
  }
}

/** No such file in the session (404). */
export class FileNotFoundError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'FileNotFoundError');
  }
}

/** No such command in the session (404). */
export class CommandNotFoundError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'CommandNotFoundError');
  }
}

/** A body or message over its limit (413, 431, or the WebSocket's 1 MiB). */
export class MessageTooLarge extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'MessageTooLarge');
  }
}

export interface RateLimitDetails extends ErrorDetails {
  retryAfterMs?: number;
  limit?: number;
  remaining?: number;
  /** Unix seconds when the limit's window ends (`X-RateLimit-Reset`). */
  reset?: number;
}

/** A rate limit or a cap (429): retry after `retryAfterMs`. */
export class RateLimitError extends ClaudeStudioError {
  /** How long to wait before trying again, from `Retry-After` or `X-RateLimit-Reset`. */
  readonly retryAfterMs?: number;
  readonly limit?: number;
  readonly remaining?: number;
  readonly reset?: number;

  constructor(message: string, details: RateLimitDetails = {}) {
    super(message, { retryable: true, ...details }, 'RateLimitError');
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    if (details.limit !== undefined) this.limit = details.limit;
    if (details.remaining !== undefined) this.remaining = details.remaining;
    if (details.reset !== undefined) this.reset = details.reset;
  }
}

/** The container could not be made: image missing, pull failed (500). */
export class ContainerCreationError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'ContainerCreationError');
  }
}

/** The container engine does not answer (503, retryable). */
export class DockerDaemonError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: true, ...details }, 'DockerDaemonError');
  }
}

/** A service the server needs, other than the engine, does not answer (503, retryable). */
export class ServiceUnavailableError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: true, ...details }, 'ServiceUnavailableError');
  }
}

/** Nothing answers on the preview's port, or it took too long (502/504, retryable). */
export class PreviewUnavailableError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: true, ...details }, 'PreviewUnavailableError');
  }
}

// ------------------------------------------------------------ client-side

/** The server could not be reached, or the connection broke (client-side; retryable). */
export class ConnectionError extends ClaudeStudioError {
  /** The request surely never reached the server (the connection was refused), so sending it again is safe. */
  readonly neverSent: boolean;

  constructor(message: string, details: ErrorDetails & { neverSent?: boolean } = {}) {
    super(message, { retryable: true, ...details }, 'ConnectionError');
    this.neverSent = details.neverSent ?? false;
  }
}

/** A call's `timeoutMs` passed (client-side). */
export class TimeoutError extends ClaudeStudioError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details }, 'TimeoutError');
  }
}

/** `executeCommand(…, { check: true })`: the command exited with a code other than 0 (client-side). */
export class CommandFailedError extends ClaudeStudioError {
  /** The command's whole result. */
  readonly result: import('./types.js').CommandResult;

  constructor(message: string, result: import('./types.js').CommandResult, details: ErrorDetails = {}) {
    super(message, { retryable: false, ...details, execId: result.execId }, 'CommandFailedError');
    this.result = result;
  }
}

type ErrorClass = new (message: string, details?: ErrorDetails) => ClaudeStudioError;

/** The class for each error name the server documents. */
export const errorClasses: Readonly<Record<string, ErrorClass>> = Object.freeze({
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
});

/** The name the server would give an error with this HTTP status, when its body names none. */
function nameForStatus(status: number): string | undefined {
  if (status === 400 || status === 403 || status === 405 || status === 409 || status === 416) {
    return 'ValidationError';
  }
  if (status === 401) return 'AuthenticationError';
  if (status === 413 || status === 431) return 'MessageTooLarge';
  if (status === 429) return 'RateLimitError';
  if (status === 502 || status === 504) return 'PreviewUnavailableError';
  if (status === 503) return 'ServiceUnavailableError';
  return undefined;
}

/**
 * The typed error for a server error body (`{error, message, retryable,
 * statusCode?}`); a name the client does not know becomes a plain
 * {@link ClaudeStudioError} with that name.
 */
export function errorFromBody(
  body: unknown,
  details: RateLimitDetails & { statusCode?: number } = {},
): ClaudeStudioError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const status = typeof b.statusCode === 'number' ? b.statusCode : details.statusCode;
  const name =
    typeof b.error === 'string' ? b.error : status !== undefined ? nameForStatus(status) : undefined;
  const message =
    typeof b.message === 'string'
      ? b.message
      : status !== undefined
        ? `The server answered ${status}`
        : 'The server reported an error';
  const d: RateLimitDetails = { ...details };
  if (status !== undefined) d.statusCode = status;
  if (typeof b.retryable === 'boolean') d.retryable = b.retryable;
  for (const k of ['sessionId', 'execId', 'path'] as const) {
    if (typeof b[k] === 'string') d[k] = b[k] as string;
  }
  if (name === 'RateLimitError') return new RateLimitError(message, d);
  const cls = name !== undefined ? errorClasses[name] : undefined;
  if (cls) return new cls(message, d);
  if (d.retryable === undefined && status !== undefined) d.retryable = status >= 500;
  return new ClaudeStudioError(message, d, name ?? 'ClaudeStudioError');
}
