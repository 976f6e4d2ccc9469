// The studio page for one session: terminal on the left, Preview / Console
// on the right (tabs on narrow windows), a status bar, and the overlays for
// states a person must act on. It wires the socket's events to the views;
// the views never touch the socket.

import { ApiError, api, describeError } from './api';
import { getToken } from './auth';
import { StudioSocket, type ConnState, type Intent, type ProbeResult } from './connection';
import { isSessionGone, type ErrorMsg, type ExitMsg, type ProgressMsg } from './protocol';
import { TerminalView } from './terminal';
import { ConsolePane, type ConsoleCounts } from './ui/consolePane';
import { clear, fmtBytes, h } from './ui/dom';
import { toggleHelp } from './ui/help';
import { PreviewPane } from './ui/previewPane';
import { toast } from './ui/toast';
import { askToken } from './ui/tokenPrompt';

export type StudioState =
  | 'connecting'
  | 'pulling'
  | 'starting'
  | 'running'
  | 'exited'
  | 'reconnecting'
  | 'unauthorized'
  | 'gone'
  | 'failed';

type Pane = 'terminal' | 'preview' | 'console';

export interface StudioHooks {
  /** Called once the server made the session (URL → /s/ID). */
  onCreated(sessionId: string): void;
  /** Back to the session list. */
  goHome(): void;
}

const NARROW = '(max-width: 760px)';
const SPLIT_KEY = 'claude-studio.split';
const SIDE_KEY = 'claude-studio.side';

function wsUrl(): string {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

async function probe(): Promise<ProbeResult> {
  try {
    await api.checkToken(getToken());
    return { kind: 'ok' };
  } catch (e) {
    if (e instanceof ApiError) {
      if (e.status === 401) return { kind: 'unauthorized' };
      if (e.status === 429) return { kind: 'rate-limited', retryAfterMs: e.retryAfterMs };
      if (e.status === 0) return { kind: 'unreachable', message: 'The server cannot be reached' };
    }
    return { kind: 'ok' };
  }
}

export class Studio {
  readonly el: HTMLElement;
  private readonly socket: StudioSocket;
  private readonly terminal: TerminalView;
  private readonly consolePane: ConsolePane;
  private readonly statusText: HTMLElement;
  private readonly statusDot: HTMLElement;
  private readonly progress: HTMLProgressElement;
  private readonly sizeText: HTMLElement;
  private readonly overlay: HTMLElement;
  private readonly sideTabs: Record<Pane, HTMLButtonElement>;
  private readonly consoleBadge: HTMLElement;
  private readonly titleSid: HTMLElement;
  private readonly titleImage: HTMLElement;
  private readonly mq = window.matchMedia(NARROW);
  private sessionId: string | null;
  private _state: StudioState = 'connecting';
  /** The states this view went through, oldest first (the last 100; for tests). */
  readonly stateHistory: StudioState[] = ['connecting'];
  /** The largest share of an image pull seen (0–1; for tests). */
  pulledMost = 0;
  private active: Pane = 'terminal';
  private side: 'preview' | 'console' = 'preview';
  /** Wide windows: preview above console instead of tabs. */
  private sideSplit = true;
  private readonly sideModeBtn: HTMLButtonElement;
  private countdown: number | undefined;
  private lastExit: ExitMsg | null = null;
  private everReady = false;
  private readonly cleanups: (() => void)[] = [];
  private previewSlot: HTMLElement;
  private imageName: string;

  constructor(
    intent: Intent,
    private readonly hooks: StudioHooks,
  ) {
    this.sessionId = intent.kind === 'attach' ? intent.sessionId : null;
    this.imageName = intent.kind === 'create' ? intent.image ?? '' : '';

    // ---- layout -------------------------------------------------------------
    const termHost = h('div', { className: 'term-host', id: 'terminal', 'data-testid': 'terminal' });
    this.overlay = h('div', { className: 'overlay', 'data-testid': 'overlay', hidden: true });
    const termPane = h('section', { className: 'pane pane-terminal', 'aria-label': 'Terminal', 'data-pane': 'terminal' }, termHost, this.overlay);

    this.consoleBadge = h('span', { className: 'tab-badge', 'data-testid': 'console-tab-count' });
    const tab = (pane: Pane, label: string, key: string, extra?: HTMLElement) => {
      const b = h('button', {
        type: 'button',
        role: 'tab',
        className: `tab tab-${pane}`,
        id: `tab-${pane}`,
        'data-testid': `tab-${pane}`,
        'aria-controls': `pane-${pane}`,
        title: `${label} (${key})`,
      }, label, extra ?? null);
      b.addEventListener('click', () => this.show(pane, true));
      return b;
    };
    this.sideTabs = {
      terminal: tab('terminal', 'Terminal', 'Alt+1'),
      preview: tab('preview', 'Preview', 'Alt+2'),
      console: tab('console', 'Console', 'Alt+3', this.consoleBadge),
    };
    this.sideModeBtn = h('button', {
      type: 'button',
      className: 'icon-btn side-mode',
      'data-testid': 'side-mode',
      'aria-label': 'Show preview and console together',
      title: 'Preview and console together / in tabs',
    }, '⬓');
    this.sideModeBtn.addEventListener('click', () => {
      this.sideSplit = !this.sideSplit;
      try {
        localStorage.setItem(SIDE_KEY, this.sideSplit ? 'split' : 'tabs');
      } catch {
        // no storage
      }
      this.layout();
    });
    const tabs = h('div', { className: 'pane-tabs', role: 'tablist', 'aria-label': 'Panes' },
      this.sideTabs.terminal, this.sideTabs.preview, this.sideTabs.console, this.sideModeBtn);

    this.consolePane = new ConsolePane((c) => this.renderCounts(c));
    this.previewSlot = h('div', { className: 'pane-slot' });
    const previewPane = h('section', { className: 'pane pane-preview', id: 'pane-preview', role: 'tabpanel', 'aria-labelledby': 'tab-preview', 'data-pane': 'preview' }, this.previewSlot);
    const consolePane = h('section', { className: 'pane pane-console', id: 'pane-console', role: 'tabpanel', 'aria-labelledby': 'tab-console', 'data-pane': 'console' }, this.consolePane.el);
    termPane.id = 'pane-terminal';

    const splitter = h('div', {
      className: 'splitter',
      role: 'separator',
      'aria-orientation': 'vertical',
      'aria-label': 'Resize terminal and side panes',
      tabindex: '0',
    });
    this.setupSplitter(splitter);

    this.statusDot = h('span', { className: 'dot', 'aria-hidden': 'true' });
    this.statusText = h('span', { id: 'status-text', 'data-testid': 'status-text', className: 'status-text' }, 'Connecting…');
    this.progress = h('progress', { className: 'status-progress', max: '1', hidden: true, 'aria-label': 'Image pull progress', 'data-testid': 'pull-progress' });
    this.sizeText = h('span', { className: 'muted', 'data-testid': 'term-size', title: 'Terminal size (columns × rows)' });
    const status = h('footer', { className: 'statusbar', role: 'status', 'aria-live': 'polite' },
      this.statusDot, this.statusText, this.progress, h('span', { className: 'spacer' }), this.sizeText);

    this.titleSid = h('span', { className: 'crumb-sid', 'data-testid': 'session-id' }, this.sessionId ?? 'new session');
    this.titleImage = h('span', { className: 'crumb-image muted' }, this.imageName);
    const helpBtn = h('button', { type: 'button', className: 'icon-btn', 'aria-label': 'Keyboard shortcuts and help', title: 'Help (Alt+/)', 'data-testid': 'help-button' }, '?');
    helpBtn.addEventListener('click', () => toggleHelp());
    const home = h('a', { href: '/', className: 'brand', title: 'All sessions' }, h('span', { className: 'brand-mark', 'aria-hidden': 'true' }, '◆'), ' Claude Studio');
    home.addEventListener('click', (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      this.hooks.goHome();
    });
    const header = h('header', { className: 'topbar' },
      home, h('span', { className: 'crumb-sep', 'aria-hidden': 'true' }, '/'), this.titleSid, this.titleImage,
      h('span', { className: 'spacer' }), helpBtn);

    const main = h('main', { className: 'panes' }, termPane, splitter, tabs, previewPane, consolePane);
    this.el = h('div', { className: 'studio', 'data-testid': 'studio' }, header, main, status);
    try {
      const split = Number(localStorage.getItem(SPLIT_KEY));
      if (split >= 20 && split <= 80) this.el.style.setProperty('--split', split + '%');
      this.sideSplit = localStorage.getItem(SIDE_KEY) !== 'tabs';
    } catch {
      // no storage
    }

    // ---- terminal -----------------------------------------------------------
    this.terminal = new TerminalView(termHost, {
      onInput: (d) => {
        if (!this.socket.input(d) && this._state !== 'gone') this.flashStatus();
        if (this._state === 'exited') this.setState('running'); // input starts a new shell
      },
      onResize: (cols, rows) => {
        this.sizeText.textContent = `${cols}×${rows}`;
        this.socket.resize(cols, rows);
      },
      onShortcut: (e) => this.shortcut(e),
    });

    // ---- socket -------------------------------------------------------------
    this.socket = new StudioSocket({ url: wsUrl(), token: getToken, probe }, intent);
    if (this.sessionId) this.makePreview(this.sessionId, false);
    else this.previewSlot.appendChild(h('div', { className: 'pane-hint' }, h('p', null, 'The preview is available once the session runs.')));
    this.wire();

    const onMq = () => this.layout();
    this.mq.addEventListener('change', onMq);
    this.cleanups.push(() => this.mq.removeEventListener('change', onMq));
    const onKey = (e: KeyboardEvent) => {
      if (this.shortcut(e)) {
        e.preventDefault();
        e.stopPropagation();
      }
    };
    window.addEventListener('keydown', onKey, true);
    this.cleanups.push(() => window.removeEventListener('keydown', onKey, true));
    this.layout();
  }

  /** Call once the element is in the document. */
  mount(): void {
    this.terminal.refit();
    this.sizeText.textContent = `${this.terminal.cols}×${this.terminal.rows}`;
    this.socket.start({ cols: this.terminal.cols, rows: this.terminal.rows });
    this.terminal.focus();
    if (this.sessionId) void this.loadInfo(this.sessionId);
    this.renderState();
  }

  dispose(): void {
    window.clearInterval(this.countdown);
    this.socket.dispose();
    this.terminal.dispose();
    for (const c of this.cleanups) c();
    this.el.remove();
  }

  get state(): StudioState {
    return this._state;
  }
  get id(): string | null {
    return this.sessionId;
  }
  terminalText(): string {
    return this.terminal.visibleText();
  }
  get termSize(): { cols: number; rows: number } {
    return { cols: this.terminal.cols, rows: this.terminal.rows };
  }
  get previewUrl(): string | null {
    return this._preview?.url ?? null;
  }
  get consoleCount(): number {
    return this.consolePane.size;
  }

  // ---- wiring ---------------------------------------------------------------

  private _preview: PreviewPane | null = null;

  private makePreview(sessionId: string, autoPick: boolean): PreviewPane {
    const p = new PreviewPane(sessionId, {
      configure: (port) => {
        if (!this.socket.configurePreview(port)) toast('Not connected: the preview port is set once the connection is back.', { level: 'warn' });
      },
    }, autoPick);
    clear(this.previewSlot);
    this.previewSlot.appendChild(p.el);
    this._preview = p;
    return p;
  }

  private wire(): void {
    const s = this.socket;
    s.on('state', (st) => this.onConnState(st));
    s.on('progress', (m) => this.onProgress(m));
    s.on('container_created', (m) => {
      this.sessionId = m.sessionId;
      this.titleSid.textContent = m.sessionId;
      this.makePreview(m.sessionId, true);
      this.everReady = true;
      this.setState('running');
      this.hooks.onCreated(m.sessionId);
    });
    s.on('attached', () => {
      this.everReady = true;
      this.lastExit = null;
      this.setState('running');
    });
    s.on('output', (m) => {
      if (m.sessionId && this.sessionId && m.sessionId !== this.sessionId) return;
      if (m.replay) this.terminal.reset();
      this.terminal.write(m.data);
      if (this._state === 'exited' && !m.replay) this.setState('running');
    });
    s.on('exit', (m) => {
      if (m.sessionId && this.sessionId && m.sessionId !== this.sessionId) return;
      this.lastExit = m;
      this.setState('exited');
    });
    s.on('error', (m) => this.onError(m));
    s.on('reconnect', (m) => {
      if (isSessionGone(m.reason)) return; // the overlay says it
      toast(m.reason + (m.delay && this.socket.state.kind !== 'stopped' ? `, reconnecting in ${Math.ceil(m.delay / 1000)}s` : ''), { level: 'warn', title: 'Server' });
    });
    s.on('console', (m) => {
      if (m.sessionId && this.sessionId && m.sessionId !== this.sessionId) return;
      this.consolePane.add(m);
    });
    s.on('preview_configured', (m) => this._preview?.configured(m));
    s.on('port_opened', (m) => this._preview?.portOpened(m.port));
    s.on('port_closed', (m) => this._preview?.portClosed(m.port));
  }

  private async loadInfo(sessionId: string): Promise<void> {
    let saved = false;
    try {
      const list = await api.containers();
      const info = list.find((c) => c.sessionId === sessionId) ?? null;
      if (!info) return; // the attach says what is wrong
      this.imageName = info.image;
      this.titleImage.textContent = info.image;
      if (info.ports?.length) this._preview?.setPorts(info.ports);
      // The preview chosen before (another tab, a reload): show it again.
      if (info.previewPort && this._preview && this._preview.port === null) {
        saved = true;
        const port = info.previewPort;
        const go = () => this._preview?.port === null && this._preview.request(port);
        if (this.socket.state.kind === 'ready') go();
        else {
          const off = this.socket.on('state', (st) => {
            if (st.kind === 'ready') {
              off();
              go();
            }
          });
        }
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        toast('Could not read the session details: ' + describeError(e), { level: 'warn' });
      }
    } finally {
      if (!saved) this._preview?.enableAutoPick();
    }
  }

  private onConnState(st: ConnState): void {
    window.clearInterval(this.countdown);
    this.countdown = undefined;
    switch (st.kind) {
      case 'connecting':
      case 'opening':
        if (this._state === 'gone' || this._state === 'failed') return;
        if (this._state !== 'pulling') this.setState(this.sessionId && this.everReady ? 'reconnecting' : this.sessionId ? 'connecting' : 'starting');
        break;
      case 'ready':
        if (this._state !== 'exited') this.setState('running');
        break;
      case 'waiting': {
        this.setState('reconnecting');
        const tick = () => this.renderState();
        this.countdown = window.setInterval(tick, 250);
        break;
      }
      case 'stopped':
        if (st.reason === 'unauthorized') {
          this.setState('unauthorized');
          void askToken('The API token was not accepted. Enter it again.').then(() => this.socket.restart());
        } else if (st.reason === 'gone') {
          this.goneMessage = st.message;
          this.setState('gone');
        } else if (st.reason === 'create-failed') {
          this.failMessage = st.message;
          this.setState('failed');
        }
        break;
    }
    this.renderState();
  }

  private goneMessage = '';
  private failMessage = '';
  private pull: ProgressMsg | null = null;

  private onProgress(m: ProgressMsg): void {
    this.pull = m;
    this.setState(m.stage === 'pull' ? 'pulling' : 'starting');
  }

  private onError(m: ErrorMsg): void {
    toast(m.message, { level: 'error', title: friendlyErrorName(m.error) });
    if (m.error === 'PreviewUnavailableError' || (m.error === 'ValidationError' && /port/i.test(m.message))) {
      this._preview?.failed(m.message);
    }
    if (m.error === 'RateLimitError' && this._preview && this._preview.port === null) this._preview.failed(m.message);
  }

  private setState(s: StudioState): void {
    if (this._state === s && s !== 'pulling') return;
    if (this._state !== s) {
      this.stateHistory.push(s);
      if (this.stateHistory.length > 100) this.stateHistory.shift();
    }
    this._state = s;
    this.renderState();
  }

  private renderState(): void {
    const s = this._state;
    this.el.dataset.state = s;
    this.statusDot.className = 'dot dot-' + s;
    let text = '';
    this.progress.hidden = true;
    switch (s) {
      case 'connecting':
        text = 'Connecting…';
        break;
      case 'pulling': {
        const p = this.pull;
        text = 'Pulling image' + (this.imageName ? ' ' + this.imageName : '') + (p?.message ? `: ${p.message}` : '…');
        if (p && typeof p.current === 'number' && typeof p.total === 'number' && p.total > 0) {
          this.progress.hidden = false;
          this.progress.value = Math.min(1, p.current / p.total);
          this.pulledMost = Math.max(this.pulledMost, this.progress.value);
          text += ` (${fmtBytes(p.current)} of ${fmtBytes(p.total)})`;
        }
        break;
      }
      case 'starting':
        text = this.sessionId ? 'Starting…' : 'Creating the session…';
        break;
      case 'running':
        text = 'Running';
        break;
      case 'exited':
        text = 'Shell exited' + exitWords(this.lastExit);
        break;
      case 'reconnecting': {
        const st = this.socket.state;
        if (st.kind === 'waiting') {
          const secs = Math.max(0, Math.ceil((st.at - Date.now()) / 1000));
          text = `${st.reason}. Reconnecting in ${secs}s…`;
        } else text = 'Reconnecting…';
        break;
      }
      case 'unauthorized':
        text = 'Waiting for a valid API token';
        break;
      case 'gone':
        text = /^Session (expired|removed)$/.test(this.goneMessage) ? this.goneMessage : `Session gone: ${this.goneMessage || 'not found'}`;
        break;
      case 'failed':
        text = 'Could not create the session';
        break;
    }
    this.statusText.textContent = text;
    this.renderOverlay();
  }

  private overlayFor: StudioState | null = null;

  private renderOverlay(): void {
    const s = this._state;
    const o = this.overlay;
    if (this.overlayFor === s && s !== 'pulling') {
      // Same state (a countdown tick): update the words, keep the buttons.
      for (const el of o.querySelectorAll('.live-text')) el.textContent = this.statusText.textContent;
      return;
    }
    this.overlayFor = s;
    clear(o);
    o.className = 'overlay overlay-' + s;
    o.hidden = false;
    const backBtn = () => {
      const b = h('button', { type: 'button', className: 'btn', 'data-testid': 'back-to-list' }, 'Back to sessions');
      b.addEventListener('click', () => this.hooks.goHome());
      return b;
    };
    if (s === 'connecting' || s === 'starting') {
      o.classList.add('overlay-soft');
      o.appendChild(h('div', { className: 'overlay-card' }, h('span', { className: 'spinner', 'aria-hidden': 'true' }), h('span', { className: 'live-text' }, this.statusText.textContent)));
    } else if (s === 'reconnecting' && !this.everReady) {
      // Never connected: say why, and offer the way back.
      o.classList.add('overlay-soft');
      const now = h('button', { type: 'button', className: 'btn btn-sm' }, 'Try now');
      now.addEventListener('click', () => this.socket.restart());
      o.appendChild(h('div', { className: 'overlay-card overlay-col' },
        h('span', null, h('span', { className: 'spinner inline', 'aria-hidden': 'true' }), ' ', h('span', { className: 'live-text' }, this.statusText.textContent)),
        h('span', { className: 'overlay-actions' }, now, backBtn())));
    } else if (s === 'pulling') {
      o.classList.add('overlay-soft');
      const p = this.pull;
      const bar = h('progress', { max: '1', className: 'big-progress', 'aria-label': 'Image pull progress' });
      if (p && typeof p.current === 'number' && typeof p.total === 'number' && p.total > 0) bar.value = Math.min(1, p.current / p.total);
      o.appendChild(h('div', { className: 'overlay-card' },
        h('strong', null, 'Pulling image' + (this.imageName ? ' ' + this.imageName : '')),
        bar,
        h('span', { className: 'muted' }, p?.message ?? '')));
    } else if (s === 'reconnecting') {
      o.classList.add('overlay-banner');
      const now = h('button', { type: 'button', className: 'btn btn-sm' }, 'Reconnect now');
      now.addEventListener('click', () => this.socket.restart());
      o.appendChild(h('div', { className: 'banner' }, h('span', { className: 'spinner', 'aria-hidden': 'true' }), h('span', { className: 'live-text' }, this.statusText.textContent), now));
    } else if (s === 'exited') {
      o.classList.add('overlay-banner');
      const b = h('button', { type: 'button', className: 'btn btn-primary btn-sm', 'data-testid': 'new-shell' }, 'Start a new shell');
      b.addEventListener('click', () => {
        this.socket.reattach();
        this.terminal.focus();
      });
      o.appendChild(h('div', { className: 'banner' }, h('span', null, 'The shell exited' + exitWords(this.lastExit) + '. The container is still running.'), b));
    } else if (s === 'gone') {
      const expired = /expired/i.test(this.goneMessage);
      o.appendChild(h('div', { className: 'overlay-card', role: 'alert' },
        h('strong', null, expired ? 'This session has expired' : 'This session is gone'),
        h('span', null, expired
          ? 'It was removed after a period without activity. Its container and files no longer exist.'
          : this.goneMessage && !/^Session removed$/.test(this.goneMessage) ? this.goneMessage : 'It was removed, or never existed on this server.'),
        backBtn()));
    } else if (s === 'failed') {
      o.appendChild(h('div', { className: 'overlay-card', role: 'alert' },
        h('strong', null, 'The session could not be created'),
        h('span', null, this.failMessage),
        backBtn()));
    } else {
      o.hidden = true;
    }
  }

  private flashStatus(): void {
    this.statusText.classList.remove('flash');
    void this.statusText.offsetWidth;
    this.statusText.classList.add('flash');
  }

  private renderCounts(c: ConsoleCounts): void {
    const parts: string[] = [];
    clear(this.consoleBadge);
    if (c.errors) {
      this.consoleBadge.appendChild(h('span', { className: 'badge badge-error', title: `${c.errors} errors` }, `✖ ${c.errors}`));
      parts.push(`${c.errors} errors`);
    }
    if (c.warnings) {
      this.consoleBadge.appendChild(h('span', { className: 'badge badge-warn', title: `${c.warnings} warnings` }, `⚠ ${c.warnings}`));
      parts.push(`${c.warnings} warnings`);
    }
    this.sideTabs.console.setAttribute('aria-label', 'Console' + (parts.length ? ', ' + parts.join(', ') : ''));
  }

  // ---- panes & keys -----------------------------------------------------------

  /** Shows a pane (and focuses it when `focus`). */
  show(p: Pane, focus: boolean): void {
    this.active = p;
    if (p !== 'terminal') this.side = p;
    this.layout();
    if (!focus) return;
    if (p === 'terminal') this.terminal.focus();
    else if (p === 'preview') this._preview?.focus();
    else this.consolePane.focusFilter();
  }

  private layout(): void {
    const narrow = this.mq.matches;
    this.el.dataset.layout = narrow ? 'narrow' : 'wide';
    const split = !narrow && this.sideSplit;
    this.el.dataset.side = split ? 'split' : 'tabs';
    this.sideModeBtn.setAttribute('aria-pressed', String(split));
    const visible: Record<Pane, boolean> = narrow
      ? { terminal: this.active === 'terminal', preview: this.active === 'preview', console: this.active === 'console' }
      : split
        ? { terminal: true, preview: true, console: true }
        : { terminal: true, preview: this.side === 'preview', console: this.side === 'console' };
    for (const p of ['terminal', 'preview', 'console'] as Pane[]) {
      const pane = this.el.querySelector<HTMLElement>(`.pane-${p}`);
      if (pane) pane.classList.toggle('is-hidden', !visible[p]);
      const selected = narrow ? this.active === p : p !== 'terminal' && this.side === p;
      this.sideTabs[p].setAttribute('aria-selected', String(selected));
      this.sideTabs[p].tabIndex = selected ? 0 : -1;
    }
  }

  /** Page-wide shortcuts; true when taken. */
  private shortcut(e: KeyboardEvent): boolean {
    if (e.type !== 'keydown' || !e.altKey || e.ctrlKey || e.metaKey) return false;
    const map: Record<string, Pane> = { Digit1: 'terminal', Digit2: 'preview', Digit3: 'console' };
    const pane = map[e.code];
    if (pane) {
      this.show(pane, true);
      return true;
    }
    if (e.code === 'Slash') {
      toggleHelp();
      return true;
    }
    return false;
  }

  private setupSplitter(sp: HTMLElement): void {
    const set = (pct: number) => {
      pct = Math.max(20, Math.min(80, pct));
      this.el.style.setProperty('--split', pct.toFixed(1) + '%');
      sp.setAttribute('aria-valuenow', String(Math.round(pct)));
      try {
        localStorage.setItem(SPLIT_KEY, pct.toFixed(1));
      } catch {
        // no storage
      }
    };
    sp.setAttribute('aria-valuemin', '20');
    sp.setAttribute('aria-valuemax', '80');
    sp.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      sp.setPointerCapture(e.pointerId);
      this.el.classList.add('dragging');
      const rect = (sp.parentElement as HTMLElement).getBoundingClientRect();
      const move = (ev: PointerEvent) => set(((ev.clientX - rect.left) / rect.width) * 100);
      const up = () => {
        this.el.classList.remove('dragging');
        sp.removeEventListener('pointermove', move);
        sp.removeEventListener('pointerup', up);
        sp.removeEventListener('pointercancel', up);
      };
      sp.addEventListener('pointermove', move);
      sp.addEventListener('pointerup', up);
      sp.addEventListener('pointercancel', up);
    });
    sp.addEventListener('keydown', (e) => {
      const cur = parseFloat(getComputedStyle(this.el).getPropertyValue('--split')) || 55;
      if (e.key === 'ArrowLeft') set(cur - 2);
      else if (e.key === 'ArrowRight') set(cur + 2);
      else return;
      e.preventDefault();
    });
  }
}

function exitWords(m: ExitMsg | null): string {
  if (!m) return '';
  if (m.signal) return ` (signal ${m.signal})`;
  if (m.code !== null && m.code !== undefined) return ` (exit code ${m.code})`;
  return '';
}

export function friendlyErrorName(name: string): string {
  switch (name) {
    case 'ValidationError':
      return 'Invalid request';
    case 'AuthenticationError':
      return 'Not authorised';
    case 'ContainerNotFoundError':
      return 'Session not found';
    case 'MessageTooLarge':
      return 'Message too large';
    case 'RateLimitError':
      return 'Rate limited';
    case 'ContainerCreationError':
      return 'Container could not be created';
    case 'DockerDaemonError':
      return 'Docker is unavailable';
    case 'PreviewUnavailableError':
      return 'Preview unavailable';
    default:
      return name;
  }
}

