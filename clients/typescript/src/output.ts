import type { CommandChunk, CommandResult, CommandState, ExecExitMessage, ExecOutputMessage } from './types.js';
import { base64Decode, concatBytes, utf8Decode, utf8Encode } from './util.js';

/** Callbacks for a command's output as it comes. */
export interface OutputCallbacks {
  /** Each piece of standard output, as text. */
  onStdout?: (text: string) => void;
  /** Each piece of standard error, as text. */
  onStderr?: (text: string) => void;
  /** Each piece, with its stream and exact bytes. */
  onOutput?: (chunk: CommandChunk) => void;
  /**
   * Keep the output for the result (default true). Off, `stdout`/`stderr`
   * of the result are empty: for commands whose output is only streamed.
   */
  collect?: boolean;
  /** Most output bytes kept for the result, both streams together (default 16 MiB, as the server). */
  maxOutputBytes?: number;
}

type Stream = 'stdout' | 'stderr';

/**
 * A command's output as it arrives (streamed pieces, or a result read
 * later), kept for its result, handed to callbacks, and counted so that a
 * stream picked up again after a drop delivers only what was not yet seen.
 */
export class OutputCollector {
  private readonly parts: Record<Stream, Uint8Array[]> = { stdout: [], stderr: [] };
  /** Bytes seen per stream (delivered to callbacks), kept or not. */
  readonly seen: Record<Stream, number> = { stdout: 0, stderr: 0 };
  private binary: Record<Stream, boolean> = { stdout: false, stderr: false };
  private kept = 0;
  private truncated = false;
  private readonly max: number;

  constructor(
    readonly execId: string,
    private readonly cb: OutputCallbacks,
    private readonly sink?: (chunk: CommandChunk) => void,
  ) {
    this.max = cb.maxOutputBytes ?? 16 * 1024 * 1024;
  }

  /** A streamed `exec_output`. */
  push(msg: Pick<ExecOutputMessage, 'stream' | 'data' | 'encoding'>): void {
    const stream: Stream = msg.stream === 'stderr' ? 'stderr' : 'stdout';
    if (msg.encoding === 'base64') {
      const bytes = base64Decode(msg.data);
      this.binary[stream] = true;
      this.deliver(stream, bytes, utf8Decode(bytes));
    } else {
      this.deliver(stream, utf8Encode(msg.data), msg.data);
    }
  }

  /** A command's state read over REST: delivers what was not seen yet. */
  catchUp(state: CommandState): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const enc = (state as unknown as Record<string, unknown>)[`${stream}Encoding`];
      const all = enc === 'base64' ? base64Decode(state[stream]) : utf8Encode(state[stream]);
      if (enc === 'base64') this.binary[stream] = true;
      if (all.length > this.seen[stream]) {
        const rest = all.subarray(this.seen[stream]);
        this.deliver(stream, rest, utf8Decode(rest));
      }
    }
    if (state.truncated) this.truncated = true;
  }

  private deliver(stream: Stream, bytes: Uint8Array, text: string): void {
    if (bytes.length === 0) return;
    this.seen[stream] += bytes.length;
    if (this.cb.collect !== false) {
      if (this.kept + bytes.length <= this.max) {
        this.parts[stream].push(bytes);
        this.kept += bytes.length;
      } else {
        this.truncated = true;
      }
    }
    const chunk: CommandChunk = { stream, data: text, bytes };
    if (stream === 'stdout') this.cb.onStdout?.(text);
    else this.cb.onStderr?.(text);
    this.cb.onOutput?.(chunk);
    this.sink?.(chunk);
  }

  /** The result, from the `exec_exit` message or a finished command's state. */
  result(end: ExecExitMessage | CommandState): CommandResult {
    const exitCode = 'code' in end ? end.code : end.exitCode;
    const out: CommandResult = {
      execId: this.execId,
      exitCode: exitCode ?? null,
      signal: end.signal ?? null,
      stdout: '',
      stderr: '',
      truncated: this.truncated || ('truncated' in end && end.truncated === true),
      durationMs: end.durationMs,
      timedOut: end.timedOut,
    };
    for (const stream of ['stdout', 'stderr'] as const) {
      const bytes = concatBytes(this.parts[stream]);
      out[stream] = utf8Decode(bytes);
      if (this.binary[stream]) out[`${stream}Bytes`] = bytes;
    }
    return out;
  }
}

/** A command's state as REST answers it, with base64 output decoded (`stdoutBytes` then holds the bytes). */
export function decodeState(raw: CommandState): CommandState {
  const out = { ...raw } as CommandState & Record<string, unknown>;
  for (const stream of ['stdout', 'stderr'] as const) {
    const key = `${stream}Encoding`;
    if (out[key] === 'base64') {
      const bytes = base64Decode(raw[stream]);
      out[stream] = utf8Decode(bytes);
      out[`${stream}Bytes`] = bytes;
    }
    delete out[key];
  }
  out.exitCode ??= null;
  out.signal ??= null;
  return out;
}

/**
 * A command's output as an async iterator: pieces queue until read; the
 * iteration ends when the command does (or throws its failure).
 */
export class ChunkQueue implements AsyncIterableIterator<CommandChunk> {
  private readonly queue: CommandChunk[] = [];
  private readonly pulls: { resolve: (r: IteratorResult<CommandChunk>) => void; reject: (e: unknown) => void }[] = [];
  private done = false;
  private failure: unknown;

  push(chunk: CommandChunk): void {
    if (this.done) return;
    const pull = this.pulls.shift();
    if (pull) pull.resolve({ value: chunk, done: false });
    else this.queue.push(chunk);
  }

  end(failure?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.failure = failure;
    for (const p of this.pulls.splice(0)) {
      if (failure !== undefined) p.reject(failure);
      else p.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<CommandChunk>> {
    const chunk = this.queue.shift();
    if (chunk) return Promise.resolve({ value: chunk, done: false });
    if (this.done) {
      if (this.failure !== undefined) {
        const f = this.failure;
        this.failure = undefined;
        return Promise.reject(f);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.pulls.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<CommandChunk>> {
    this.queue.length = 0;
    this.done = true;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<CommandChunk> {
    return this;
  }
}

/** The text of a newline-delimited JSON body, one parsed message at a time. */
export async function* jsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line) as Record<string, unknown>;
      }
    }
    buf += decoder.decode();
    if (buf.trim()) yield JSON.parse(buf) as Record<string, unknown>;
  } finally {
    reader.releaseLock();
    body.cancel().catch(() => {});
  }
}
