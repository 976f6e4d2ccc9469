import { ClaudeStudioError, CommandFailedError, ConnectionError, ValidationError, errorFromBody } from './errors.js';
import { sessionPath, type Rest } from './http.js';
import { wsError, type Live } from './live.js';
import { ChunkQueue, OutputCollector, decodeState, jsonLines, type OutputCallbacks } from './output.js';
import type {
  CallOptions,
  Command,
  CommandChunk,
  CommandOptions,
  CommandResult,
  CommandState,
  CommandSummary,
  ExecExitMessage,
  ExecOutputMessage,
} from './types.js';
import { Scope, backoff, base64Encode, randomId, sleep } from './util.js';

export interface ExecuteOptions extends CommandOptions, CallOptions, OutputCallbacks {
  /** Throw {@link CommandFailedError} when the exit code is not 0 (default false: resolve with any exit code). */
  check?: boolean;
}

export interface StartOptions extends CommandOptions, CallOptions, OutputCallbacks {}

/** What the server's parser refuses in an `exec` message, refused the same way before sending. */
function checkExec(cmd: Command, execId: string, o: CommandOptions): void {
  const bad = (m: string) => {
    throw new ValidationError(m, { execId });
  };
  if (typeof cmd === 'string') {
    if (cmd.trim() === '') bad('cmd is empty');
  } else if (Array.isArray(cmd)) {
    if (cmd.length === 0) bad('cmd is an empty array');
    cmd.forEach((a, i) => {
      if (typeof a !== 'string') bad(`cmd[${i}] must be a string, got ${typeof a}`);
    });
    if (cmd[0] === '') bad('cmd[0] (the program) is empty');
  } else {
    bad(`cmd must be an array of strings or a string, got ${typeof cmd}`);
  }
  if (o.cwd !== undefined && (typeof o.cwd !== 'string' || !o.cwd.startsWith('/'))) {
    bad(`cwd must be an absolute path in the container, got ${JSON.stringify(o.cwd)}`);
  }
  if (o.timeout !== undefined && !(typeof o.timeout === 'number' && o.timeout > 0 && o.timeout <= 86_400)) {
    bad(`timeout must be more than 0 and at most 86400 seconds, got ${o.timeout}`);
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(execId)) {
    bad(`execId must be 1 to 64 letters, digits, '-' or '_', got ${JSON.stringify(execId)}`);
  }
}

function execBody(cmd: Command, execId: string, o: CommandOptions): Record<string, unknown> {
  const body: Record<string, unknown> = { cmd, execId };
  if (o.cwd !== undefined) body.cwd = o.cwd;
  if (o.env !== undefined) body.env = o.env;
  if (o.stdin !== undefined) body.stdin = o.stdin;
  if (o.timeout !== undefined) body.timeout = o.timeout;
  return body;
}

/** Commands: run to the end over REST, streamed over the WebSocket, and controlled. */
export class Commands {
  constructor(
    private readonly rest: Rest,
    private readonly live: Live,
    private readonly timeoutMs: number,
  ) {}

  execute(sessionId: string, cmd: Command, options: ExecuteOptions): Promise<CommandResult> {
    const execId = options.execId ?? randomId('exec-');
    const body = execBody(cmd, execId, options);
    return Scope.run('executeCommand', options, undefined, async (scope) => {
      const collector = new OutputCollector(execId, options);
      let result: CommandResult | undefined;
      try {
        // JSON lines: the answer starts at once, so no client-side limit on
        // waiting for a response head applies to a long command.
        const { data: res } = await this.rest.request<globalThis.Response>(
          {
            method: 'POST',
            path: sessionPath(sessionId, '/exec'),
            json: body,
            headers: { accept: 'application/x-ndjson' },
            read: 'response',
            idempotent: false,
            what: 'executeCommand',
          },
          scope,
          options.retries,
        );
        if (!res.body) throw new ConnectionError('executeCommand: the answer has no body');
        for await (const msg of jsonLines(res.body)) {
          if (msg.type === 'exec_output') collector.push(msg as unknown as ExecOutputMessage);
          else if (msg.type === 'exec_exit') {
            result = collector.result(msg as unknown as ExecExitMessage);
            break;
          } else if (msg.type === 'error') throw errorFromBody(msg);
        }
      } catch (err) {
        if (scope.signal.aborted) {
          this.killQuietly(sessionId, execId);
          throw scope.reason();
        }
        // The stream broke (a dropped connection, an idle-body timeout): the
        // server keeps the command and its output; follow it there.
        if (!(err instanceof ConnectionError) && !(err instanceof SyntaxError)) throw err;
      }
      try {
        result ??= await this.follow(sessionId, execId, collector, scope);
      } catch (err) {
        if (scope.signal.aborted) {
          this.killQuietly(sessionId, execId);
          throw scope.reason();
        }
        throw err;
      }
      if (options.check && result.exitCode !== 0) {
        const why = `${result.exitCode}${result.signal ? ` (${result.signal})` : ''}${result.timedOut ? ', timed out' : ''}`;
        throw new CommandFailedError(`Command exited with ${why}`, result, { sessionId });
      }
      return result;
    });
  }

  async start(sessionId: string, cmd: Command, options: StartOptions): Promise<CommandStream> {
    const execId = options.execId ?? randomId('exec-');
    // The server checks these while parsing, and its error then names no
    // command: checked here first, so that the error reaches this call.
    checkExec(cmd, execId, options);
    const body = { type: 'exec', sessionId, ...execBody(cmd, execId, options) };
    const stream = new CommandStream(this, sessionId, execId, options);
    this.live.streams.set(execId, stream);
    let sent = false;
    try {
      const startTimeout = Math.min(options.timeoutMs || Infinity, this.timeoutMs || Infinity);
      await Scope.run('startCommand', { signal: options.signal, timeoutMs: startTimeout }, undefined, async (scope) => {
        await this.live.socket.ready(scope);
        const started = this.live.expect((m) => {
          if (m.type === 'exec_started' && m.execId === execId) return m;
          if (m.type === 'error' && m.execId === execId) throw wsError(m);
          return undefined;
        }, scope);
        // A drop before `exec_started` leaves it unknown whether the command started.
        const lost = new Promise<never>((_, reject) => {
          stream.onLostBeforeStart = () =>
            reject(new ConnectionError('startCommand: the connection dropped before the command was confirmed started'));
        });
        lost.catch(() => {});
        this.live.socket.send(body);
        sent = true;
        try {
          await Promise.race([started, lost]);
        } finally {
          stream.onLostBeforeStart = undefined;
        }
      });
    } catch (err) {
      this.live.streams.delete(execId);
      stream.fail(err);
      // Started or not, it must not run on unseen.
      if (sent) this.killQuietly(sessionId, execId);
      throw err;
    }
    stream.started(options);
    return stream;
  }

  /** Follows a command over REST until it ends, delivering the output not seen yet. */
  async follow(sessionId: string, execId: string, collector: OutputCollector, scope: Scope): Promise<CommandResult> {
    let pause = 100;
    let failures = 0;
    for (;;) {
      let state: CommandState;
      try {
        state = (
          await this.rest.request<CommandState>(
            { method: 'GET', path: sessionPath(sessionId, `/exec/${encodeURIComponent(execId)}`), read: 'json', idempotent: true, what: 'getCommand' },
            scope,
            0,
          )
        ).data;
        failures = 0;
      } catch (err) {
        if (scope.signal.aborted) throw scope.reason();
        if (!(err instanceof ClaudeStudioError) || !err.retryable) throw err;
        // The server is away (restarting, say): wait for it.
        await sleep(backoff(failures++, 250, 5000), scope.signal);
        continue;
      }
      collector.catchUp(state);
      if (!state.running) return collector.result(state);
      await sleep(pause, scope.signal);
      pause = Math.min(pause * 2, 2000);
    }
  }

  /**
   * Kills a command and makes sure it died: the server answers a signal sent
   * in a command's first moments (before the engine reports its process)
   * with success but signals nothing, so the kill is repeated until the
   * command is seen ended (for up to ~15 s).
   */
  killQuietly(sessionId: string, execId: string, ended?: () => boolean): void {
    void (async () => {
      const o = { timeoutMs: 5000, retries: 1 };
      let pause = 100;
      for (let i = 0; i < 12; i++) {
        if (ended?.()) return;
        try {
          await this.kill(sessionId, execId, 'SIGKILL', o);
        } catch (err) {
          // Ended already (ValidationError), unknown, or the session is gone.
          if (err instanceof ClaudeStudioError && !err.retryable) return;
        }
        await sleep(pause);
        pause = Math.min(pause * 2, 1500);
        try {
          if (!(await this.get(sessionId, execId, o)).running) return;
        } catch (err) {
          if (err instanceof ClaudeStudioError && !err.retryable) return;
        }
      }
    })();
  }

  async list(sessionId: string, options: CallOptions): Promise<CommandSummary[]> {
    const r = await this.rest.call<{ commands: CommandSummary[] }>(
      { method: 'GET', path: sessionPath(sessionId, '/exec'), read: 'json', idempotent: true, what: 'listCommands' },
      options,
      this.timeoutMs,
    );
    return r.commands;
  }

  async get(sessionId: string, execId: string, options: CallOptions): Promise<CommandState> {
    const state = await this.rest.call<CommandState>(
      { method: 'GET', path: sessionPath(sessionId, `/exec/${encodeURIComponent(execId)}`), read: 'json', idempotent: true, what: 'getCommand' },
      options,
      this.timeoutMs,
    );
    return decodeState(state);
  }

  kill(sessionId: string, execId: string, signal: string | number, options: CallOptions): Promise<{ execId: string; signal: string }> {
    return this.rest.call(
      {
        method: 'DELETE',
        path: sessionPath(sessionId, `/exec/${encodeURIComponent(execId)}`),
        query: { signal: String(signal) },
        read: 'json',
        idempotent: true,
        what: 'killCommand',
      },
      options,
      this.timeoutMs,
    );
  }

  async input(sessionId: string, execId: string, data: string | Uint8Array, options: CallOptions & { eof?: boolean }): Promise<void> {
    const body: Record<string, unknown> = typeof data === 'string' ? { data } : { data: base64Encode(data), encoding: 'base64' };
    if (options.eof) body.eof = true;
    await this.rest.call(
      {
        method: 'POST',
        path: sessionPath(sessionId, `/exec/${encodeURIComponent(execId)}/input`),
        json: body,
        read: 'none',
        idempotent: false,
        what: 'sendCommandInput',
      },
      options,
      this.timeoutMs,
    );
  }

  /** @internal */
  ended(execId: string): void {
    this.live.streams.delete(execId);
  }
}

/**
 * A command started with `ClaudeStudioClient.startCommand`: an async iterator
 * of its output pieces, its `result`, its stdin and `kill`. Pieces not yet
 * read are held in memory until the iterator takes them.
 */
export class CommandStream implements AsyncIterable<CommandChunk> {
  /** Resolves when the command ends, as `executeCommand` does. */
  readonly result: Promise<CommandResult>;
  private resolveResult!: (r: CommandResult) => void;
  private rejectResult!: (e: unknown) => void;
  private readonly queue = new ChunkQueue();
  private readonly collector: OutputCollector;
  private isDone = false;
  private isStarted = false;
  private following = false;
  private scope: Scope | undefined;
  /** @internal */
  onLostBeforeStart: (() => void) | undefined;

  constructor(
    private readonly commands: Commands,
    readonly sessionId: string,
    readonly execId: string,
    options: OutputCallbacks,
  ) {
    this.result = new Promise((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // Whoever awaits `result` sees its failure; the iterator sees it too.
    this.result.catch(() => {});
    this.collector = new OutputCollector(execId, options, (chunk) => this.queue.push(chunk));
  }

  /** @internal The command runs: from now on `signal` and `timeoutMs` kill it. */
  started(options: CallOptions): void {
    this.isStarted = true;
    const scope = new Scope('startCommand', options.signal, options.timeoutMs);
    this.scope = scope;
    scope.signal.addEventListener(
      'abort',
      () => {
        if (this.isDone) return;
        this.commands.killQuietly(this.sessionId, this.execId);
        this.fail(scope.reason());
      },
      { once: true },
    );
  }

  /** @internal */
  output(msg: ExecOutputMessage): void {
    if (!this.isDone && !this.following) this.collector.push(msg);
  }

  /** @internal */
  exited(msg: ExecExitMessage): void {
    if (!this.isDone && !this.following) this.finish(this.collector.result(msg));
  }

  /** @internal The WebSocket dropped: follow the command over REST, without losing output. */
  connectionLost(): void {
    if (this.isDone || this.following) return;
    if (!this.isStarted) {
      this.onLostBeforeStart?.();
      return;
    }
    this.following = true;
    const scope = this.scope ?? new Scope('startCommand', undefined, undefined);
    this.commands.follow(this.sessionId, this.execId, this.collector, scope).then(
      (r) => this.finish(r),
      (e) => this.fail(e),
    );
  }

  private finish(r: CommandResult): void {
    if (this.isDone) return;
    this.isDone = true;
    this.scope?.dispose();
    this.commands.ended(this.execId);
    this.queue.end();
    this.resolveResult(r);
  }

  /** @internal */
  fail(err: unknown): void {
    if (this.isDone) return;
    this.isDone = true;
    this.scope?.dispose();
    this.commands.ended(this.execId);
    this.queue.end(err);
    this.rejectResult(err);
  }

  /** Whether the command has ended (or failed). */
  get done(): boolean {
    return this.isDone;
  }

  /** Writes to the command's stdin (text, or bytes); `eof: true` closes it after. */
  write(data: string | Uint8Array, options: CallOptions & { eof?: boolean } = {}): Promise<void> {
    // Over REST: it answers (typed errors included), where the WebSocket's `exec_input` does not.
    return this.commands.input(this.sessionId, this.execId, data, options);
  }

  /** Closes the command's stdin. */
  end(options: CallOptions = {}): Promise<void> {
    return this.write('', { ...options, eof: true });
  }

  /**
   * Signals the command's process group (`SIGKILL` by default). A `SIGKILL`
   * is repeated until the command is seen to end: the server drops a signal
   * sent in a command's first moments.
   */
  async kill(signal: string | number = 'SIGKILL', options: CallOptions = {}): Promise<void> {
    await this.commands.kill(this.sessionId, this.execId, signal, options);
    if (/^(SIG)?KILL$|^9$/i.test(String(signal))) this.commands.killQuietly(this.sessionId, this.execId, () => this.isDone);
  }

  [Symbol.asyncIterator](): AsyncIterator<CommandChunk> {
    return this.queue;
  }
}
