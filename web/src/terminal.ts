// The one owner of xterm.js: addons loaded once, fit on every size change,
// output written with a bounded backlog, copy/paste keys. It knows nothing
// of the socket: it reports input and size through callbacks.

import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { WebLinksAddon } from '@xterm/addon-web-links';
import '@xterm/xterm/css/xterm.css';

export interface TerminalCallbacks {
  onInput(data: string): void;
  onResize(cols: number, rows: number): void;
  /** Keys the page handles itself (pane switching): return true to take them. */
  onShortcut?(e: KeyboardEvent): boolean;
}

const THEME: ITheme = {
  background: '#11141a',
  foreground: '#d7dae0',
  cursor: '#f0c674',
  cursorAccent: '#11141a',
  selectionBackground: '#3a4a66',
  black: '#1d2027',
  red: '#f07178',
  green: '#a8d672',
  yellow: '#f0c674',
  blue: '#6cb6ff',
  magenta: '#d4a6ff',
  cyan: '#5fd7d7',
  white: '#d7dae0',
  brightBlack: '#6b7280',
  brightRed: '#ff8d94',
  brightGreen: '#c3e88d',
  brightYellow: '#ffd98a',
  brightBlue: '#8fcaff',
  brightMagenta: '#e2c2ff',
  brightCyan: '#89ecec',
  brightWhite: '#ffffff',
};

/** Data handed to xterm whose parsing has not finished yet (bytes of UTF-16). */
const HIGH_WATER = 512 * 1024;
const LOW_WATER = 128 * 1024;
/** Held back beyond that; past this the oldest held output is dropped. */
const MAX_HELD = 8 * 1024 * 1024;

export class TerminalView {
  readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly observer: ResizeObserver;
  private inFlight = 0;
  private held: string[] = [];
  private heldSize = 0;
  private dropped = 0;
  private fitQueued = false;
  private disposed = false;

  constructor(
    private readonly host: HTMLElement,
    private readonly cb: TerminalCallbacks,
  ) {
    this.term = new Terminal({
      theme: THEME,
      fontFamily: '"JetBrains Mono", "Fira Code", "Cascadia Code", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace',
      fontSize: 13,
      lineHeight: 1.15,
      cursorBlink: true,
      cursorStyle: 'block',
      scrollback: 5000,
      allowProposedApi: false,
      macOptionIsMeta: false,
      rightClickSelectsWord: true,
      convertEol: false,
      screenReaderMode: false,
    });
    this.term.loadAddon(this.fit);
    this.term.loadAddon(
      new WebLinksAddon((event, uri) => {
        event.preventDefault();
        window.open(uri, '_blank', 'noopener,noreferrer');
      }),
    );
    this.term.open(host);
    this.term.textarea?.setAttribute('aria-label', 'Terminal input');
    this.term.attachCustomKeyEventHandler((e) => this.onKey(e));
    this.term.onData((d) => this.cb.onInput(d));
    this.term.onResize(({ cols, rows }) => this.cb.onResize(cols, rows));
    this.observer = new ResizeObserver(() => this.scheduleFit());
    this.observer.observe(host);
    this.scheduleFit();
  }

  get cols(): number {
    return this.term.cols;
  }
  get rows(): number {
    return this.term.rows;
  }

  /** Writes output. A backlog beyond the high-water mark is held here, and
   *  beyond MAX_HELD the oldest held output is dropped (with a notice), so a
   *  flood cannot grow memory without bound. */
  write(data: string): void {
    if (this.disposed || !data) return;
    if (this.inFlight < HIGH_WATER && this.held.length === 0) {
      this.push(data);
      return;
    }
    this.held.push(data);
    this.heldSize += data.length;
    while (this.heldSize > MAX_HELD && this.held.length > 1) {
      const old = this.held.shift()!;
      this.heldSize -= old.length;
      this.dropped += old.length;
    }
  }

  /** Clears everything (before a replay rewrites the screen). */
  reset(): void {
    this.held = [];
    this.heldSize = 0;
    this.dropped = 0;
    this.term.reset();
  }

  focus(): void {
    this.term.focus();
  }

  /** The visible screen as text, one line per row (for tests and debugging). */
  visibleText(): string {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < this.term.rows; i++) {
      lines.push(buf.getLine(buf.viewportY + i)?.translateToString(true) ?? '');
    }
    return lines.join('\n');
  }

  /** Fits now (after the layout changed in a way no ResizeObserver sees). */
  refit(): void {
    if (this.disposed) return;
    const el = this.host;
    if (el.clientWidth < 20 || el.clientHeight < 20) return; // hidden pane
    try {
      this.fit.fit();
    } catch {
      // Not measurable yet (fonts loading, hidden): the next resize fits.
    }
  }

  dispose(): void {
    this.disposed = true;
    this.observer.disconnect();
    this.term.dispose();
  }

  private push(data: string): void {
    this.inFlight += data.length;
    this.term.write(data, () => {
      this.inFlight -= data.length;
      if (this.inFlight < LOW_WATER) this.drain();
    });
  }

  private drain(): void {
    if (this.dropped > 0) {
      const kb = Math.ceil(this.dropped / 1024);
      this.dropped = 0;
      this.push(`\r\n\x1b[0;33m[studio: ${kb} KB of output skipped, the terminal fell behind]\x1b[0m\r\n`);
    }
    while (this.held.length && this.inFlight < HIGH_WATER) {
      // Write held chunks together: fewer, larger writes parse faster.
      let chunk = '';
      while (this.held.length && chunk.length < 64 * 1024) chunk += this.held.shift();
      this.heldSize -= chunk.length;
      this.push(chunk);
    }
  }

  private scheduleFit(): void {
    if (this.fitQueued) return;
    this.fitQueued = true;
    requestAnimationFrame(() => {
      this.fitQueued = false;
      this.refit();
    });
  }

  private onKey(e: KeyboardEvent): boolean {
    if (e.type !== 'keydown') return true;
    if (this.cb.onShortcut?.(e)) return false;
    const mod = e.ctrlKey || e.metaKey;
    // Ctrl/Cmd+Shift+C copies the selection, Ctrl/Cmd+Shift+V pastes.
    if (mod && e.shiftKey && !e.altKey && e.code === 'KeyC') {
      const sel = this.term.getSelection();
      if (sel) void navigator.clipboard?.writeText(sel).catch(() => undefined);
      e.preventDefault();
      return false;
    }
    if (mod && e.shiftKey && !e.altKey && e.code === 'KeyV') {
      // Let the browser paste into xterm's textarea (its paste event is
      // handled by xterm, bracketed paste included); xterm must not send ^V.
      return false;
    }
    // Cmd+C with a selection (macOS) copies; the browser's copy event does it.
    if (e.metaKey && !e.ctrlKey && e.code === 'KeyC' && this.term.hasSelection()) return false;
    return true;
  }
}
