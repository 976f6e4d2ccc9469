// The one owner of the WebSocket: connecting (with the token in the
// subprotocol), reconnecting with backoff, parsing frames, re-attaching to
// the session, and typed send helpers. UI code listens to its events and
// calls its methods; it never sees the socket.

import { Emitter, type Unsubscribe } from './emitter';
import {
  isSessionGone,
  parseServerMessage,
  wsProtocols,
  type ClientMessage,
  type ServerMessage,
  type ServerMessageMap,
} from './protocol';

/** What the connection is for: make a new session, or join one. */
export type Intent =
  | { kind: 'create'; image?: string; workspaceDir?: string }
  | { kind: 'attach'; sessionId: string };

export type ConnState =
  | { kind: 'connecting'; attempt: number }
  /** Socket open, create/attach sent, waiting for the answer. */
  | { kind: 'opening' }
  | { kind: 'ready' }
  /** A reconnect is scheduled at `at` (ms since epoch). */
  | { kind: 'waiting'; at: number; reason: string }
  /** Stopped for good (until `restart`). */
  | { kind: 'stopped'; reason: StopReason; message: string };

export type StopReason = 'unauthorized' | 'gone' | 'create-failed' | 'closed';

/** What a failed handshake turned out to be (the browser hides the status). */
export type ProbeResult =
  | { kind: 'ok' }
  | { kind: 'unauthorized' }
  | { kind: 'rate-limited'; retryAfterMs: number | null }
  | { kind: 'unreachable'; message: string };

export interface SocketOptions {
  url: string;
  token: () => string | null;
  /** Asked after a connection that never opened: why did it fail? */
  probe: () => Promise<ProbeResult>;
  /** Backoff bounds, ms. */
  minDelay?: number;
  maxDelay?: number;
}

type Events = ServerMessageMap & {
  state: ConnState;
  /** Every frame, after parsing (for the test hook and debugging). */
  message: ServerMessage;
};

const PING_EVERY = 30_000;
const PONG_WITHIN = 15_000;

export class StudioSocket {
  private readonly events = new Emitter<Events>();
  private ws: WebSocket | null = null;
  private intent: Intent;
  private attempt = 0;
  private timer: number | undefined;
  private pingTimer: number | undefined;
  private lastHeard = 0;
  private nextDelay: number | null = null;
  private nextReason = '';
  private waitIsServerAsked = false;
  private stopped = false;
  private opened = false;
  private supportsSince = true;
  private lastSeq: number | null = null;
  private awaitingAttach = false;
  private size: { cols: number; rows: number } | null = null;
  private _state: ConnState = { kind: 'connecting', attempt: 0 };
  private readonly min: number;
  private readonly max: number;

  constructor(
    private readonly opts: SocketOptions,
    intent: Intent,
  ) {
    this.intent = intent;
    this.min = opts.minDelay ?? 500;
    this.max = opts.maxDelay ?? 10_000;
    this.onOnline = this.onOnline.bind(this);
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onOnline);
  }

  get state(): ConnState {
    return this._state;
  }

  /** The session this connection is attached to (or will re-attach to). */
  get sessionId(): string | null {
    return this.intent.kind === 'attach' ? this.intent.sessionId : null;
  }

  on<K extends keyof Events>(type: K, fn: (payload: Events[K]) => void): Unsubscribe {
    return this.events.on(type, fn);
  }

  /** Opens the connection (once; later connections are made by reconnects). */
  start(initialSize?: { cols: number; rows: number }): void {
    if (initialSize) this.size = initialSize;
    this.connect();
  }

  /** Reconnects now (after a stop, e.g. once a token was entered). */
  restart(): void {
    this.stopped = false;
    this.attempt = 0;
    this.clearTimer();
    this.closeSocket();
    this.connect();
  }

  /** Closes for good. */
  dispose(): void {
    this.stopped = true;
    this.clearTimer();
    this.closeSocket();
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onOnline);
    this.events.clear();
  }

  // ---- send helpers ---------------------------------------------------------

  input(data: string): boolean {
    const sid = this.sessionId;
    return sid !== null && this.send({ type: 'input', sessionId: sid, data });
  }

  resize(cols: number, rows: number): void {
    cols = Math.max(1, Math.min(1000, Math.floor(cols)));
    rows = Math.max(1, Math.min(1000, Math.floor(rows)));
    if (this.size && this.size.cols === cols && this.size.rows === rows) return;
    this.size = { cols, rows };
    const sid = this.sessionId;
    if (sid && this._state.kind === 'ready') this.send({ type: 'resize', sessionId: sid, cols, rows });
  }

  configurePreview(port: number): boolean {
    const sid = this.sessionId;
    return sid !== null && this.send({ type: 'configure_preview', sessionId: sid, port });
  }

  /** Attaches again (starts a fresh shell when the last one exited). */
  reattach(): void {
    if (this._state.kind === 'ready' || this._state.kind === 'opening') this.sendAttach();
    else this.restart();
  }

  // ---- internals ------------------------------------------------------------

  private setState(s: ConnState): void {
    this._state = s;
    this.events.emit('state', s);
  }

  private send(msg: ClientMessage): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private connect(): void {
    if (this.stopped) return;
    this.clearTimer();
    this.opened = false;
    this.nextDelay = null;
    this.setState({ kind: 'connecting', attempt: this.attempt });
    let ws: WebSocket;
    try {
      const protocols = wsProtocols(this.opts.token());
      ws = protocols ? new WebSocket(this.opts.url, protocols) : new WebSocket(this.opts.url);
    } catch (e) {
      this.fail('The connection could not be opened: ' + String((e as Error).message || e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.opened = true;
      this.lastHeard = Date.now();
      this.setState({ kind: 'opening' });
      if (this.intent.kind === 'create') {
        const { image, workspaceDir } = this.intent;
        const msg: ClientMessage = { type: 'create' };
        if (image) msg.image = image;
        if (workspaceDir) msg.workspaceDir = workspaceDir;
        if (this.size) {
          msg.cols = this.size.cols;
          msg.rows = this.size.rows;
        }
        this.send(msg);
      } else {
        this.sendAttach();
      }
      this.schedulePing();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      this.lastHeard = Date.now();
      const msg = parseServerMessage(ev.data);
      if (msg) this.dispatch(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearPing();
      void this.afterClose(ev);
    };
    ws.onerror = () => {
      // The close event follows and carries what there is to know.
    };
  }

  private sendAttach(): void {
    const sid = this.sessionId;
    if (!sid) return;
    this.awaitingAttach = true;
    const msg: ClientMessage = { type: 'attach', sessionId: sid };
    if (this.supportsSince) msg.since = this.lastSeq ?? 0;
    this.send(msg);
  }

  private dispatch(msg: ServerMessage): void {
    // Events carry a sequence number; a replay after re-attaching may repeat
    // some we have: drop those.
    if ((msg.type === 'console' || msg.type === 'port_opened' || msg.type === 'port_closed') && typeof msg.seq === 'number') {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return;
      this.lastSeq = msg.seq;
    }
    switch (msg.type) {
      case 'container_created':
        this.intent = { kind: 'attach', sessionId: msg.sessionId };
        this.ready();
        break;
      case 'attached':
        this.awaitingAttach = false;
        this.ready();
        break;
      case 'error':
        if (
          this.awaitingAttach &&
          this.supportsSince &&
          msg.error === 'ValidationError' &&
          /since/.test(msg.message)
        ) {
          // A server without `since`: attach without it.
          this.supportsSince = false;
          this.sendAttach();
          return;
        }
        if (this.awaitingAttach && msg.error === 'ContainerNotFoundError') {
          this.awaitingAttach = false;
          this.events.emit('message', msg);
          this.events.emit('error', msg);
          this.stop('gone', msg.message);
          return;
        }
        if (this.intent.kind === 'create' && this._state.kind === 'opening') {
          this.events.emit('message', msg);
          this.events.emit('error', msg);
          this.stop('create-failed', msg.message);
          return;
        }
        break;
      case 'reconnect':
        if (isSessionGone(msg.reason)) {
          this.events.emit('message', msg);
          this.events.emit('reconnect', msg);
          this.stop('gone', msg.reason);
          return;
        }
        this.nextDelay = Math.max(0, Number(msg.delay) || 0);
        this.nextReason = msg.reason;
        break;
    }
    this.events.emit('message', msg);
    (this.events.emit as (t: string, p: ServerMessage) => void)(msg.type, msg);
  }

  private ready(): void {
    this.attempt = 0;
    this.setState({ kind: 'ready' });
    const sid = this.sessionId;
    if (sid && this.size) this.send({ type: 'resize', sessionId: sid, ...this.size });
  }

  private stop(reason: StopReason, message: string): void {
    this.stopped = true;
    this.clearTimer();
    this.closeSocket();
    this.setState({ kind: 'stopped', reason, message });
  }

  private fail(message: string): void {
    this.schedule(this.backoff(), message);
  }

  private async afterClose(ev: CloseEvent): Promise<void> {
    if (this.stopped) return;
    if (this.intent.kind === 'create' && this.opened) {
      // `create` was sent: sending it again could make a second container.
      this.stop('create-failed', 'The connection closed before the session was created' + (ev.reason ? `: ${ev.reason}` : '.'));
      return;
    }
    if (this.nextDelay !== null) {
      const d = this.nextDelay;
      this.nextDelay = null;
      this.schedule(d, this.nextReason || 'The server asked to reconnect', true);
      return;
    }
    if (!this.opened) {
      // The handshake failed; the browser does not say why. Ask over HTTP.
      const p = await this.opts.probe();
      if (this.stopped) return;
      if (p.kind === 'unauthorized') {
        this.stop('unauthorized', 'The API token was not accepted.');
        return;
      }
      if (p.kind === 'rate-limited') {
        this.schedule(Math.max(this.backoff(), p.retryAfterMs ?? 0), 'Too many connections (rate limited)', true);
        return;
      }
      this.schedule(this.backoff(), p.kind === 'unreachable' ? p.message : 'The connection could not be opened');
      return;
    }
    this.schedule(this.backoff(), ev.reason ? `Connection closed: ${ev.reason}` : 'Connection lost');
  }

  private backoff(): number {
    const base = Math.min(this.max, this.min * 2 ** this.attempt);
    this.attempt++;
    // ±20% jitter so many tabs do not come back at the same instant.
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private schedule(delay: number, reason: string, serverAsked = false): void {
    this.clearTimer();
    this.waitIsServerAsked = serverAsked;
    this.setState({ kind: 'waiting', at: Date.now() + delay, reason });
    this.timer = window.setTimeout(() => this.connect(), delay);
  }

  private onOnline(): void {
    // Back online or back to the tab: do not sit out a long backoff.
    if (document.visibilityState === 'hidden') return;
    if (this._state.kind === 'waiting' && this._state.at - Date.now() > 1000 && !this.waitIsServerAsked) {
      this.connect();
    }
  }

  private schedulePing(): void {
    this.clearPing();
    this.pingTimer = window.setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastHeard > PING_EVERY + PONG_WITHIN) {
        // Nothing heard, not even a pong: the connection is dead.
        ws.close();
        this.ws = null;
        this.clearPing();
        this.schedule(this.backoff(), 'The server stopped answering');
        return;
      }
      if (Date.now() - this.lastHeard >= PING_EVERY - 1000) this.send({ type: 'ping' });
    }, PONG_WITHIN);
  }

  private clearPing(): void {
    if (this.pingTimer !== undefined) window.clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private clearTimer(): void {
    if (this.timer !== undefined) window.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private closeSocket(): void {
    this.clearPing();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }
}
