// Type-checked (never run) by `npm run typecheck` and test/typecheck.test.mjs,
// against the built declarations, as a Node project (tsconfig.json) and as a
// browser project (tsconfig.browser.json) would see them.
import {
  ClaudeStudioClient,
  ClaudeStudioError,
  ContainerNotFoundError,
  RateLimitError,
  type CommandResult,
  type ContainerInfo,
  type OutputMessage,
  type PreviewConfigured,
  type Session,
  type SessionEvent,
} from '@claude-studio/client';

export async function documentedExample(): Promise<void> {
  const client = new ClaudeStudioClient('ws://localhost:3333');
  const session: Session = await client.createContainer({
    image: 'node:20-alpine',
    workspaceDir: '/opt/dev/my-project',
  });
  const result: CommandResult = await client.executeCommand(session.id, 'npm install');
  const code: number | null = result.exitCode;
  const out: string = result.stdout;
  const preview: PreviewConfigured = await client.configurePreview(session.id, 3000);
  const url: string = preview.previewUrl;
  await client.removeContainer(session.id);
  void code, out, url;
}

export async function beyond(client: ClaudeStudioClient, signal: AbortSignal): Promise<void> {
  const info: ContainerInfo = await client.getContainer('session-x', { signal, timeoutMs: 1000, retries: 0 });
  const ports: number[] = info.ports;
  const off = client.on('output', (m: OutputMessage) => {
    const replay: boolean | undefined = m.replay;
    void replay;
  });
  off();
  client.on('exec_exit', (m) => {
    const timedOut: boolean = m.timedOut;
    void timedOut;
  });
  client.on('error', (e) => {
    const retryable: boolean = e.retryable;
    void retryable;
  });
  client.on('connection', (e) => {
    if (e.state === 'reconnecting') {
      const delay: number | undefined = e.delayMs;
      void delay;
    }
  });
  client.onOutput((data: string) => void data, 'session-x');
  const attached = await client.attach('session-x', { since: 0 });
  const replay: string = attached.replay;
  await client.sendInput('session-x', 'ls\n');
  await client.resize('session-x', 120, 40);
  const stream = await client.startCommand('session-x', ['npm', 'test'], { timeout: 600, onStdout: (s: string) => void s });
  for await (const chunk of stream) {
    const which: 'stdout' | 'stderr' = chunk.stream;
    const bytes: Uint8Array = chunk.bytes;
    void which, bytes;
  }
  const r: CommandResult = await stream.result;
  const bytes: Uint8Array = await client.readFile('session-x', '/workspace/a');
  const text: string = await client.readText('session-x', '/workspace/a');
  await client.writeFile('session-x', '/workspace/a', new Uint8Array([1, 2]), { parents: true });
  const watch = await client.watch('session-x', '/workspace', { recursive: true });
  watch.onChange((ev) => void ev.kind);
  for await (const ev of client.events('session-x', { since: 'now', signal })) {
    const e: SessionEvent = ev;
    if (e.type === 'port_opened') {
      const p: number = e.port;
      void p;
    }
  }
  try {
    await client.health();
  } catch (err) {
    if (err instanceof RateLimitError) {
      const wait: number | undefined = err.retryAfterMs;
      void wait;
    } else if (err instanceof ContainerNotFoundError) {
      const status: number | undefined = err.statusCode;
      void status;
    } else if (err instanceof ClaudeStudioError) {
      const name: string = err.name;
      void name;
    }
  }
  void ports, replay, r, bytes, text;
}

export async function mistakes(client: ClaudeStudioClient): Promise<void> {
  // @ts-expect-error: a misspelt option is refused
  await client.createContainer({ imgae: 'node:20-alpine' });
  // @ts-expect-error: the port is a number
  await client.configurePreview('session-x', '3000');
  // @ts-expect-error: no such event
  client.on('outputs', () => {});
  // @ts-expect-error: exitCode may be null
  const code: number = (await client.executeCommand('session-x', 'true')).exitCode;
  void code;
}
