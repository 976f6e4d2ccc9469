// The home page: the create form and the list of sessions.

import { ApiError, api, describeError } from '../api';
import type { ContainerInfo, Health, Images } from '../protocol';
import { clear, fmtAgo, h } from './dom';
import { toggleHelp } from './help';
import { toast } from './toast';

export interface HomeHooks {
  create(image: string, workspaceDir: string): void;
  open(sessionId: string): void;
}

const REFRESH_MS = 15_000;

export class Home {
  readonly el: HTMLElement;
  private readonly tbody: HTMLElement;
  private readonly listState: HTMLElement;
  private readonly imageInput: HTMLInputElement;
  private readonly workspaceInput: HTMLInputElement;
  private readonly datalist: HTMLDataListElement;
  private readonly imagesHint: HTMLElement;
  /** The server's default image, left out of a create that keeps it. */
  private defaultImage = '';
  private readonly healthEl: HTMLElement;
  private readonly createBtn: HTMLButtonElement;
  private timer: number | undefined;
  private confirming: string | null = null;
  private sessions: ContainerInfo[] = [];
  private loaded = false;
  private readonly onVisible = () => {
    if (document.visibilityState === 'visible') void this.refresh();
  };

  constructor(
    private readonly hooks: HomeHooks,
    health: Health | null,
  ) {
    this.imageInput = h('input', {
      id: 'image-input',
      'data-testid': 'image-input',
      className: 'input',
      type: 'text',
      name: 'image',
      list: 'image-options',
      spellcheck: 'false',
      autocomplete: 'off',
      placeholder: 'server default',
      'aria-describedby': 'images-hint',
    });
    this.datalist = h('datalist', { id: 'image-options' });
    this.workspaceInput = h('input', {
      id: 'workspace-input',
      'data-testid': 'workspace-input',
      className: 'input',
      type: 'text',
      name: 'workspaceDir',
      spellcheck: 'false',
      autocomplete: 'off',
      placeholder: 'optional, e.g. /srv/projects/app',
      'aria-describedby': 'workspace-hint',
    });
    this.imagesHint = h('p', { id: 'images-hint', className: 'hint' });
    this.createBtn = h('button', { id: 'create-button', 'data-testid': 'create-button', type: 'submit', className: 'btn btn-primary' }, 'Create session');
    const form = h('form', { className: 'card create-form', 'aria-labelledby': 'create-title' },
      h('h2', { id: 'create-title' }, 'New session'),
      h('div', { className: 'field' },
        h('label', { for: 'image-input' }, 'Image'),
        this.imageInput, this.datalist, this.imagesHint),
      h('div', { className: 'field' },
        h('label', { for: 'workspace-input' }, 'Workspace directory'),
        this.workspaceInput,
        h('p', { id: 'workspace-hint', className: 'hint' }, 'A directory on the server mounted at /workspace. Leave empty for a fresh, empty workspace.')),
      h('div', { className: 'form-actions' }, this.createBtn),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      // The default is left to the server, which falls back to its local
      // development image when the default cannot be pulled.
      const image = this.imageInput.value.trim();
      this.hooks.create(image === this.defaultImage ? '' : image, this.workspaceInput.value.trim());
    });

    this.tbody = h('tbody');
    this.listState = h('div', { className: 'list-state', 'data-testid': 'sessions-state' }, 'Loading sessions…');
    const refreshBtn = h('button', { type: 'button', className: 'btn btn-sm', 'data-testid': 'refresh-sessions' }, 'Refresh');
    refreshBtn.addEventListener('click', () => void this.refresh());
    const table = h('table', { className: 'sessions', 'data-testid': 'sessions-table' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Session'),
        h('th', { scope: 'col' }, 'Image'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, 'Preview'),
        h('th', { scope: 'col' }, h('span', { className: 'sr-only' }, 'Actions')))),
      this.tbody);
    const list = h('section', { className: 'card sessions-card', 'aria-labelledby': 'sessions-title' },
      h('div', { className: 'card-head' }, h('h2', { id: 'sessions-title' }, 'Sessions'), h('span', { className: 'spacer' }), refreshBtn),
      h('div', { className: 'table-wrap' }, table),
      this.listState);

    this.healthEl = h('span', { className: 'health', 'data-testid': 'health' });
    const helpBtn = h('button', { type: 'button', className: 'icon-btn', 'aria-label': 'Keyboard shortcuts and help', title: 'Help (Alt+/)' }, '?');
    helpBtn.addEventListener('click', () => toggleHelp());
    this.el = h('div', { className: 'home', 'data-testid': 'home' },
      h('header', { className: 'topbar' },
        h('span', { className: 'brand' }, h('span', { className: 'brand-mark', 'aria-hidden': 'true' }, '◆'), ' Claude Studio'),
        h('span', { className: 'spacer' }), this.healthEl, helpBtn),
      h('main', { className: 'home-main' }, form, list),
    );
    this.renderHealth(health);
  }

  mount(): void {
    void this.loadImages();
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
    document.addEventListener('visibilitychange', this.onVisible);
    this.imageInput.focus();
  }

  dispose(): void {
    window.clearInterval(this.timer);
    document.removeEventListener('visibilitychange', this.onVisible);
    this.el.remove();
  }

  renderHealth(health: Health | null): void {
    clear(this.healthEl);
    if (!health) return;
    const ok = health.status === 'ok' && health.docker === 'connected';
    this.healthEl.appendChild(h('span', { className: 'dot ' + (ok ? 'dot-running' : 'dot-failed'), 'aria-hidden': 'true' }));
    this.healthEl.appendChild(document.createTextNode(ok ? 'Docker connected' : `Server ${health.status}, Docker ${health.docker}`));
  }

  private async loadImages(): Promise<void> {
    try {
      await this.fillImages();
    } finally {
      this.imageInput.dataset.loaded = 'true';
    }
  }

  private async fillImages(): Promise<void> {
    let images: Images | null = null;
    try {
      images = await api.images();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) this.imagesHint.textContent = 'Could not list images: ' + describeError(e);
      return;
    }
    clear(this.datalist);
    if (!images) {
      this.imagesHint.textContent = 'Empty: the server’s default image.';
      return;
    }
    const seen = new Set<string>();
    for (const img of [images.defaultImage, ...images.local]) {
      if (!img || seen.has(img)) continue;
      seen.add(img);
      this.datalist.appendChild(h('option', { value: img }, img === images.defaultImage ? 'default' : null));
    }
    this.defaultImage = images.defaultImage;
    if (!this.imageInput.value) this.imageInput.value = images.defaultImage;
    this.imageInput.placeholder = images.defaultImage;
    const fallback = images.fallbackImage && !images.local.includes(images.defaultImage)
      ? ` The default ${images.defaultImage} is not on the server; if it cannot be pulled, sessions get ${images.fallbackImage}.`
      : '';
    this.imagesHint.textContent = (images.allowed.length
      ? `Allowed: ${images.allowed.join(', ')}. Images not on the server are pulled first.`
      : 'Any image; images not on the server are pulled first.') + fallback;
  }

  async refresh(): Promise<void> {
    try {
      this.sessions = await api.containers();
      this.loaded = true;
      this.renderList();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.listState.textContent = 'Waiting for the API token…';
        return;
      }
      this.listState.hidden = false;
      this.listState.textContent = 'Could not load the sessions: ' + describeError(e);
    }
  }

  private renderList(): void {
    clear(this.tbody);
    const rows = [...this.sessions].sort((a, b) => b.createdAt - a.createdAt);
    this.listState.hidden = rows.length > 0;
    this.listState.textContent = this.loaded ? 'No sessions yet. Create one above.' : 'Loading sessions…';
    for (const s of rows) this.tbody.appendChild(this.row(s));
  }

  private row(s: ContainerInfo): HTMLElement {
    const link = h('a', { href: '/s/' + encodeURIComponent(s.sessionId), className: 'sid', 'data-testid': 'session-link' }, s.sessionId);
    link.addEventListener('click', (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      this.hooks.open(s.sessionId);
    });
    const actions = h('td', { className: 'actions' });
    if (this.confirming === s.sessionId) {
      const yes = h('button', { type: 'button', className: 'btn btn-danger btn-sm', 'data-testid': 'confirm-remove' }, 'Remove');
      const no = h('button', { type: 'button', className: 'btn btn-sm' }, 'Cancel');
      yes.addEventListener('click', () => void this.remove(s.sessionId, yes));
      no.addEventListener('click', () => {
        this.confirming = null;
        this.renderList();
      });
      actions.append(h('span', { className: 'confirm-text' }, 'Remove this session and its container?'), yes, no);
      queueMicrotask(() => no.focus());
    } else {
      const open = h('button', { type: 'button', className: 'btn btn-sm', 'aria-label': `Open ${s.sessionId}` }, 'Open');
      open.addEventListener('click', () => this.hooks.open(s.sessionId));
      const rm = h('button', { type: 'button', className: 'btn btn-sm btn-ghost-danger', 'aria-label': `Remove ${s.sessionId}`, 'data-testid': 'remove-session' }, 'Remove');
      rm.addEventListener('click', () => {
        this.confirming = s.sessionId;
        this.renderList();
      });
      actions.append(open, rm);
    }
    const created = new Date(s.createdAt * 1000);
    return h('tr', { 'data-session': s.sessionId },
      h('td', null, link),
      h('td', { className: 'mono' }, s.image),
      h('td', null, h('span', { className: `status status-${s.status}` }, s.status)),
      h('td', null, h('time', { datetime: created.toISOString(), title: created.toLocaleString() }, fmtAgo(s.createdAt))),
      h('td', { className: 'mono' }, s.previewPort ? String(s.previewPort) : s.ports?.length ? s.ports.join(', ') : '—'),
      actions);
  }

  private async remove(sessionId: string, btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    btn.textContent = 'Removing…';
    try {
      await api.remove(sessionId);
      toast(`Session ${sessionId} removed.`, { level: 'ok' });
    } catch (e) {
      toast(describeError(e), { level: 'error', title: 'Could not remove the session' });
    }
    this.confirming = null;
    await this.refresh();
  }
}
