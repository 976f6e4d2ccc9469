import { sessionPath, type Rest, type RequestSpec } from './http.js';
import type { CallOptions, FileEntry, FileInfo } from './types.js';
import { Scope, utf8Decode, utf8Encode } from './util.js';

/** A file's content to write. */
export type FileData = string | Uint8Array | ArrayBuffer | Blob;

const flag = (on: boolean | undefined) => (on ? 'true' : undefined);

/** A session's files over REST (`/api/containers/:id/files…`), as the session user sees them. */
export class Files {
  constructor(
    private readonly rest: Rest,
    private readonly timeoutMs: number,
  ) {}

  private call<T>(spec: Omit<RequestSpec, 'path'> & { sessionId: string; sub?: string }, o: CallOptions): Promise<T> {
    const { sessionId, sub, ...rest } = spec;
    return this.rest.call<T>({ ...rest, path: sessionPath(sessionId, `/files${sub ?? ''}`) }, o, this.timeoutMs);
  }

  read(sessionId: string, path: string, o: CallOptions & { range?: { start: number; end?: number } }): Promise<Uint8Array> {
    const headers: Record<string, string> = {};
    if (o.range) headers['range'] = `bytes=${o.range.start}-${o.range.end ?? ''}`;
    return this.call({ sessionId, sub: '/content', method: 'GET', query: { path }, headers, read: 'bytes', idempotent: true, what: 'readFile' }, o);
  }

  async readText(sessionId: string, path: string, o: CallOptions): Promise<string> {
    return utf8Decode(await this.read(sessionId, path, o));
  }

  async write(
    sessionId: string,
    path: string,
    data: FileData,
    o: CallOptions & { parents?: boolean },
  ): Promise<{ path: string; size: number; created: boolean }> {
    const body = typeof data === 'string' ? utf8Encode(data) : data;
    const r = await Scope.run('writeFile', o, this.timeoutMs, (scope) =>
      this.rest.request<{ path: string; size: number }>(
        {
          method: 'PUT',
          path: sessionPath(sessionId, '/files/content'),
          query: { path, parents: flag(o.parents) },
          body,
          read: 'json',
          // The write is atomic and whole: sending it again gives the same file.
          idempotent: true,
          what: 'writeFile',
        },
        scope,
        o.retries,
      ),
    );
    return { ...r.data, created: r.status === 201 };
  }

  stat(sessionId: string, path: string, o: CallOptions & { recursive?: boolean }): Promise<FileInfo> {
    return this.call({ sessionId, method: 'GET', query: { path, recursive: flag(o.recursive) }, read: 'json', idempotent: true, what: 'stat' }, o);
  }

  async list(sessionId: string, path: string, o: CallOptions & { recursive?: boolean }): Promise<FileEntry[]> {
    const info = await this.stat(sessionId, path, o);
    if (info.entries) return info.entries;
    const { path: _path, entries: _entries, truncated: _truncated, ...entry } = info;
    return [entry];
  }

  remove(sessionId: string, path: string, o: CallOptions & { recursive?: boolean }): Promise<{ path: string; removed: boolean }> {
    return this.call({ sessionId, method: 'DELETE', query: { path, recursive: flag(o.recursive) }, read: 'json', idempotent: true, what: 'removeFile' }, o);
  }

  mkdir(sessionId: string, path: string, o: CallOptions & { parents?: boolean }): Promise<{ path: string; created: boolean }> {
    return this.call(
      { sessionId, sub: '/mkdir', method: 'POST', query: { path, parents: flag(o.parents) }, read: 'json', idempotent: o.parents === true, what: 'mkdir' },
      o,
    );
  }

  move(sessionId: string, from: string, to: string, o: CallOptions): Promise<{ from: string; to: string }> {
    return this.call({ sessionId, sub: '/move', method: 'POST', json: { from, to }, read: 'json', idempotent: false, what: 'move' }, o);
  }

  downloadArchive(sessionId: string, path: string, o: CallOptions): Promise<Uint8Array> {
    return this.call({ sessionId, sub: '/archive', method: 'GET', query: { path }, read: 'bytes', idempotent: true, what: 'downloadArchive' }, o);
  }

  uploadArchive(sessionId: string, path: string, tar: Uint8Array | ArrayBuffer | Blob, o: CallOptions): Promise<{ path: string; entries: number }> {
    return this.call(
      {
        sessionId,
        sub: '/archive',
        method: 'PUT',
        query: { path },
        body: tar,
        contentType: 'application/x-tar',
        read: 'json',
        idempotent: true,
        what: 'uploadArchive',
      },
      o,
    );
  }
}
