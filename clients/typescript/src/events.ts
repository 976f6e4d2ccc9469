import { ClaudeStudioError, ContainerNotFoundError } from './errors.js';
import { sessionPath, type Rest } from './http.js';
import type { CallOptions, ContainerInfo, EventsPage, SessionEvent } from './types.js';
import { Scope, backoff, sleep } from './util.js';

export interface EventsOptions extends CallOptions {
  /** Events after this `seq`; `0` (default): all kept; `'now'`: only new ones. */
  since?: number | 'now';
  /** Seconds each long poll waits for an event (default 30, at most 60). */
  wait?: number;
}

/** A session's event log over REST: pages, long polls, an iterator; and ports, which it reports. */
export class Events {
  constructor(
    private readonly rest: Rest,
    private readonly timeoutMs: number,
    private readonly getContainer: (sessionId: string, o: CallOptions) => Promise<ContainerInfo>,
  ) {}

  get(sessionId: string, o: CallOptions & { since?: number; wait?: number }): Promise<EventsPage> {
    return this.rest.call(
      {
        method: 'GET',
        path: sessionPath(sessionId, '/events'),
        query: { since: o.since ?? 0, wait: o.wait },
        read: 'json',
        idempotent: true,
        what: 'getEvents',
      },
      o,
      this.timeoutMs + (o.wait ?? 0) * 1000,
    );
  }

  async *iterate(sessionId: string, o: EventsOptions): AsyncGenerator<SessionEvent, void, undefined> {
    const wait = Math.min(o.wait ?? 30, 60);
    const scope = new Scope('events', o.signal, o.timeoutMs);
    try {
      let since = 0;
      if (o.since === 'now') since = (await this.get(sessionId, { signal: scope.signal })).next;
      else if (o.since !== undefined) since = o.since;
      let failures = 0;
      for (;;) {
        let page: EventsPage;
        try {
          page = await this.get(sessionId, { since, wait, signal: scope.signal, retries: o.retries });
          failures = 0;
        } catch (err) {
          if (scope.signal.aborted) throw scope.reason();
          // A server restarting, a rate limit: wait, and ask again from the same place.
          if (err instanceof ClaudeStudioError && err.retryable) {
            await sleep(backoff(failures++, 250, 10_000), scope.signal).catch(() => {
              throw scope.reason();
            });
            continue;
          }
          throw err;
        }
        for (const ev of page.events) {
          yield ev;
          if (ev.type === 'lifecycle' && (ev.state === 'removed' || ev.state === 'expired')) return;
        }
        if (page.next > since) since = page.next;
      }
    } finally {
      scope.dispose();
    }
  }

  waitForPort(sessionId: string, port: number, o: CallOptions): Promise<{ port: number; previewUrl?: string }> {
    return Scope.run('waitForPort', o, this.timeoutMs, async (scope) => {
      // The cursor first, then the ports now: a port that opens in between is an event after the cursor.
      const cursor = (await this.get(sessionId, { signal: scope.signal, retries: o.retries })).next;
      const info = await this.getContainer(sessionId, { signal: scope.signal, retries: o.retries });
      if (info.ports.includes(port)) return { port };
      for await (const ev of this.iterate(sessionId, { since: cursor, signal: scope.signal, wait: 30 })) {
        if (ev.type === 'port_opened' && ev.port === port) return { port, previewUrl: ev.previewUrl };
      }
      throw new ContainerNotFoundError(`Session '${sessionId}' ended before port ${port} opened`, { sessionId });
    });
  }
}
