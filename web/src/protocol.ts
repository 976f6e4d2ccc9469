// The wire protocol: the shapes of REST answers and WebSocket frames, as the
// server documents them. Nothing here does I/O.

export type ErrorName =
  | 'ValidationError'
  | 'AuthenticationError'
  | 'ContainerNotFoundError'
  | 'MessageTooLarge'
  | 'RateLimitError'
  | 'ContainerCreationError'
  | 'DockerDaemonError'
  | 'PreviewUnavailableError'
  | (string & {});

export interface ApiErrorBody {
  error: ErrorName;
  message: string;
  retryable: boolean;
  statusCode?: number;
}

export interface Health {
  status: 'ok' | 'degraded' | (string & {});
  docker: 'connected' | 'disconnected' | (string & {});
  uptime: number;
  sessions: number;
  warmPool?: number;
  /** Absent on servers older than the page: then 401s tell. */
  authRequired?: boolean;
}

export interface Images {
  defaultImage: string;
  /** Globs; empty means any image is allowed. */
  allowed: string[];
  /** Images on the engine that are allowed. */
  local: string[];
  /** What a create that names no image gets when the default cannot be pulled (when it is on the engine). */
  fallbackImage?: string | null;
}

export interface ContainerInfo {
  sessionId: string;
  containerId: string;
  status: string;
  image: string;
  createdAt: number;
  previewPort?: number | null;
  ports?: number[] | null;
}

// ---- client → server -------------------------------------------------------

export type ClientMessage =
  | { type: 'create'; image?: string; workspaceDir?: string; cols?: number; rows?: number }
  | { type: 'attach'; sessionId: string; since?: number }
  | { type: 'input'; sessionId: string; data: string }
  | { type: 'resize'; sessionId: string; cols: number; rows: number }
  | { type: 'configure_preview'; sessionId: string; port: number }
  | { type: 'ping' };

// ---- server → client -------------------------------------------------------

export interface ProgressMsg {
  type: 'progress';
  stage: string;
  message: string;
  current?: number | null;
  total?: number | null;
}
export interface ContainerCreatedMsg {
  type: 'container_created';
  sessionId: string;
  containerId: string;
  status: string;
}
export interface AttachedMsg {
  type: 'attached';
  sessionId: string;
  containerId: string;
  status: string;
}
export interface OutputMsg {
  type: 'output';
  sessionId: string;
  data: string;
  replay?: boolean;
}
export interface ExitMsg {
  type: 'exit';
  sessionId: string;
  code: number | null;
  signal: string | null;
}
export interface ErrorMsg {
  type: 'error';
  error: ErrorName;
  message: string;
  retryable: boolean;
  sessionId?: string;
  statusCode?: number;
}
export interface ReconnectMsg {
  type: 'reconnect';
  reason: 'Session expired' | 'Session removed' | 'Server restarting' | 'Client too slow' | (string & {});
  delay: number;
}
export type ConsoleLevel = 'log' | 'info' | 'warn' | 'error' | 'debug';
export interface ConsoleMsg {
  type: 'console';
  sessionId: string;
  level: ConsoleLevel;
  args: unknown[];
  url: string;
  timestamp: number;
  kind?: 'uncaught' | 'unhandledrejection';
  seq?: number;
}
export interface PreviewConfiguredMsg {
  type: 'preview_configured';
  sessionId: string;
  previewUrl: string;
  targetUrl: string;
  hostPreviewUrl?: string;
}
export interface PortOpenedMsg {
  type: 'port_opened';
  sessionId: string;
  port: number;
  previewUrl?: string;
  seq?: number;
}
export interface PortClosedMsg {
  type: 'port_closed';
  sessionId: string;
  port: number;
  seq?: number;
}
export interface PongMsg {
  type: 'pong';
}

export type ServerMessage =
  | ProgressMsg
  | ContainerCreatedMsg
  | AttachedMsg
  | OutputMsg
  | ExitMsg
  | ErrorMsg
  | ReconnectMsg
  | ConsoleMsg
  | PreviewConfiguredMsg
  | PortOpenedMsg
  | PortClosedMsg
  | PongMsg;

export type ServerMessageMap = { [M in ServerMessage as M['type']]: M };

const KNOWN = new Set<string>([
  'progress',
  'container_created',
  'attached',
  'output',
  'exit',
  'error',
  'reconnect',
  'console',
  'preview_configured',
  'port_opened',
  'port_closed',
  'pong',
]);

/** Parses one text frame; `null` for frames that are not a known message. */
export function parseServerMessage(text: string): ServerMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const t = (v as { type?: unknown }).type;
  if (typeof t !== 'string' || !KNOWN.has(t)) return null;
  return v as ServerMessage;
}

/** Reasons after which the session no longer exists. */
export function isSessionGone(reason: string): boolean {
  return reason === 'Session expired' || reason === 'Session removed';
}

/** base64url without padding of the UTF-8 bytes of `s`. */
export function base64url(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The WebSocket subprotocols that carry `token`. Without a token none are
 * asked for: a browser fails a handshake whose answer names no protocol when
 * it asked for some, and servers without auth need not answer one.
 */
export function wsProtocols(token: string | null): string[] | undefined {
  return token ? ['claude-studio', 'claude-studio.bearer.' + base64url(token)] : undefined;
}
