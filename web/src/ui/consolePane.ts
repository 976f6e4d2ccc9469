// The console pane: the previewed page's console, as it arrives. Level
// filters, a text filter, Clear, error/warning counts for the tab label, and
// a cap on kept entries.

import type { ConsoleLevel, ConsoleMsg } from '../protocol';
import { clear, fmtTime, h } from './dom';
import { renderValue, valueText } from './valueTree';

export const MAX_ENTRIES = 5000;

const LEVELS: { level: ConsoleLevel; label: string; icon: string }[] = [
  { level: 'error', label: 'Errors', icon: '✖' },
  { level: 'warn', label: 'Warnings', icon: '⚠' },
  { level: 'info', label: 'Info', icon: 'ℹ' },
  { level: 'log', label: 'Logs', icon: '•' },
  { level: 'debug', label: 'Debug', icon: '⋯' },
];
const ICON: Record<string, string> = Object.fromEntries(LEVELS.map((l) => [l.level, l.icon]));

interface Entry {
  el: HTMLElement;
  level: ConsoleLevel;
  text: string;
}

export interface ConsoleCounts {
  errors: number;
  warnings: number;
  total: number;
}

/** `uncaught` / `unhandledrejection`, from `kind` or (older servers) the text. */
export function consoleKind(m: ConsoleMsg): 'uncaught' | 'unhandledrejection' | null {
  if (m.kind === 'uncaught' || m.kind === 'unhandledrejection') return m.kind;
  const first = m.args[0];
  if (m.level === 'error' && typeof first === 'string') {
    if (first.startsWith('Uncaught')) return 'uncaught';
    if (first.startsWith('Unhandled promise rejection')) return 'unhandledrejection';
  }
  return null;
}

export function shortUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname + u.search;
    return path.length > 48 ? '…' + path.slice(-47) : path || '/';
  } catch {
    return url.length > 48 ? '…' + url.slice(-47) : url;
  }
}

export class ConsolePane {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly filterInput: HTMLInputElement;
  private readonly levelButtons = new Map<ConsoleLevel, HTMLButtonElement>();
  private readonly hidden = new Set<ConsoleLevel>();
  private entries: Entry[] = [];
  private queue: ConsoleMsg[] = [];
  private flushQueued = false;
  private counts: Record<ConsoleLevel, number> = { error: 0, warn: 0, info: 0, log: 0, debug: 0 };
  private dropped = 0;
  private filterText = '';

  constructor(private readonly onCounts: (c: ConsoleCounts) => void) {
    this.filterInput = h('input', {
      type: 'search',
      className: 'input input-sm',
      placeholder: 'Filter',
      'aria-label': 'Filter console messages',
      'data-testid': 'console-filter',
      id: 'console-filter',
    });
    this.filterInput.addEventListener('input', () => {
      this.filterText = this.filterInput.value.trim().toLowerCase();
      this.applyTextFilter();
    });
    const levelBar = h('div', { className: 'seg', role: 'group', 'aria-label': 'Levels shown' });
    for (const l of LEVELS) {
      const b = h(
        'button',
        {
          type: 'button',
          className: `seg-btn lvl-${l.level}`,
          'aria-pressed': 'true',
          'data-testid': `console-level-${l.level}`,
          title: `Show or hide ${l.label.toLowerCase()}`,
          'aria-label': l.label,
        },
        h('span', { className: 'lvl-icon', 'aria-hidden': 'true' }, l.icon),
        h('span', { className: 'seg-label' }, l.label),
        h('span', { className: 'seg-count' }),
      );
      b.addEventListener('click', () => this.toggleLevel(l.level));
      this.levelButtons.set(l.level, b);
      levelBar.appendChild(b);
    }
    const clearBtn = h('button', { type: 'button', className: 'btn btn-sm', 'data-testid': 'console-clear', title: 'Clear the console' }, 'Clear');
    clearBtn.addEventListener('click', () => this.clear());
    this.list = h('div', {
      className: 'console-list',
      role: 'log',
      'aria-label': 'Console messages of the previewed page',
      'data-testid': 'console-list',
      tabindex: '0',
    });
    this.empty = h('div', { className: 'pane-hint console-empty' },
      h('p', null, 'Console messages of the previewed page appear here: ',
        h('code', null, 'console.log'), ', warnings, errors, uncaught exceptions and unhandled promise rejections.'),
    );
    this.el = h('div', { className: 'console-pane', id: 'console-pane', 'data-testid': 'console-pane' },
      h('div', { className: 'toolbar' }, levelBar, this.filterInput, h('span', { className: 'spacer' }), clearBtn),
      this.empty,
      this.list,
    );
    this.renderCounts();
  }

  add(m: ConsoleMsg): void {
    this.queue.push(m);
    if (this.queue.length > MAX_ENTRIES) this.queue.splice(0, this.queue.length - MAX_ENTRIES);
    if (!this.flushQueued) {
      this.flushQueued = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  clear(): void {
    this.queue = [];
    this.entries = [];
    this.dropped = 0;
    clear(this.list);
    this.counts = { error: 0, warn: 0, info: 0, log: 0, debug: 0 };
    this.renderCounts();
  }

  focusFilter(): void {
    this.filterInput.focus();
  }

  get size(): number {
    return this.entries.length + this.queue.length;
  }

  private flush(): void {
    this.flushQueued = false;
    const list = this.list;
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 24;
    const frag = document.createDocumentFragment();
    for (const m of this.queue) {
      const e = this.build(m);
      this.entries.push(e);
      this.counts[e.level]++;
      frag.appendChild(e.el);
    }
    this.queue = [];
    list.appendChild(frag);
    if (this.entries.length > MAX_ENTRIES) {
      const extra = this.entries.splice(0, this.entries.length - MAX_ENTRIES);
      for (const e of extra) {
        e.el.remove();
        this.counts[e.level]--;
      }
      this.dropped += extra.length;
    }
    if (stick) list.scrollTop = list.scrollHeight;
    this.renderCounts();
  }

  private build(m: ConsoleMsg): Entry {
    const level: ConsoleLevel = (ICON[m.level] ? m.level : 'log') as ConsoleLevel;
    const kind = consoleKind(m);
    const args = Array.isArray(m.args) ? m.args : [m.args];
    const argsEl = h('div', { className: 'c-args' });
    args.forEach((a, i) => {
      if (i > 0) argsEl.appendChild(document.createTextNode(' '));
      argsEl.appendChild(renderValue(a));
    });
    const text = (args.map(valueText).join(' ') + ' ' + (m.url ?? '')).toLowerCase();
    const ts = typeof m.timestamp === 'number' ? m.timestamp : Date.now();
    const el = h(
      'div',
      {
        className: `c-entry lvl-${level}${kind ? ' c-' + kind : ''}`,
        'data-testid': 'console-entry',
        'data-level': level,
        'data-kind': kind,
      },
      h('span', { className: 'c-icon', 'aria-label': kind ? (kind === 'uncaught' ? 'uncaught error' : 'unhandled rejection') : level, title: kind ?? level },
        kind === 'uncaught' ? '⊗' : kind === 'unhandledrejection' ? '⊘' : ICON[level]),
      h('time', { className: 'c-time', datetime: new Date(ts).toISOString(), title: new Date(ts).toLocaleString() }, fmtTime(ts)),
      kind ? h('span', { className: 'c-badge' }, kind === 'uncaught' ? 'Uncaught' : 'Unhandled rejection') : null,
      argsEl,
      m.url ? h('span', { className: 'c-src', title: m.url }, shortUrl(m.url)) : null,
    );
    const entry: Entry = { el, level, text };
    if (this.hidden.has(level) || (this.filterText && !text.includes(this.filterText))) el.hidden = true;
    return entry;
  }

  private toggleLevel(level: ConsoleLevel): void {
    if (this.hidden.has(level)) this.hidden.delete(level);
    else this.hidden.add(level);
    this.levelButtons.get(level)?.setAttribute('aria-pressed', String(!this.hidden.has(level)));
    this.applyTextFilter();
  }

  private applyTextFilter(): void {
    const f = this.filterText;
    for (const e of this.entries) e.el.hidden = this.hidden.has(e.level) || (f !== '' && !e.text.includes(f));
  }

  private renderCounts(): void {
    for (const [level, b] of this.levelButtons) {
      const c = b.querySelector('.seg-count');
      if (c) c.textContent = this.counts[level] ? String(this.counts[level]) : '';
    }
    const total = this.entries.length;
    this.empty.hidden = total > 0;
    this.list.hidden = total === 0;
    this.list.dataset.dropped = String(this.dropped);
    this.onCounts({ errors: this.counts.error, warnings: this.counts.warn, total });
  }
}
