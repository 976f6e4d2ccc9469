// The preview pane: an iframe on the preview's own origin
// (http://PORT-SESSION.domain/), a port field, an address bar for the path,
// reload and open-in-new-tab, detected ports, and a hint before any port.

import type { PreviewConfiguredMsg } from '../protocol';
import { clear, h } from './dom';

declare const __DEV_PREVIEW_PORT__: string;

export interface PreviewActions {
  /** Asks the server to point the preview at `port`. */
  configure(port: number): void;
}

/** Link tokens in hostPreviewUrl live 5 minutes; reuse one for a bit less. */
const LINK_TOKEN_FRESH_MS = 4 * 60 * 1000;

export function fallbackHostUrl(sessionId: string, port: number): string {
  const devPort = typeof __DEV_PREVIEW_PORT__ === 'string' ? __DEV_PREVIEW_PORT__ : '';
  const p = devPort || location.port;
  return `http://${port}-${sessionId.toLowerCase()}.localhost${p ? ':' + p : ''}/`;
}

export class PreviewPane {
  readonly el: HTMLElement;
  private readonly portInput: HTMLInputElement;
  private readonly address: HTMLInputElement;
  private readonly body: HTMLElement;
  private readonly portsEl: HTMLElement;
  private readonly reloadBtn: HTMLButtonElement;
  private readonly openBtn: HTMLButtonElement;
  private iframe: HTMLIFrameElement | null = null;
  private origin: string | null = null;
  private linkToken: string | null = null;
  private linkTokenAt = 0;
  private _port: number | null = null;
  private requestedPort: number | null = null;
  private readonly openPorts = new Set<number>();
  /** Off until the session's saved preview port is known (see enableAutoPick). */
  private autoPick: boolean;

  constructor(
    private readonly sessionId: string,
    private readonly actions: PreviewActions,
    autoPick = true,
  ) {
    this.autoPick = autoPick;
    this.portInput = h('input', {
      id: 'preview-port',
      'data-testid': 'preview-port',
      className: 'input input-sm port-input',
      type: 'number',
      min: '1',
      max: '65535',
      inputmode: 'numeric',
      placeholder: 'Port',
      'aria-label': 'Preview port',
      title: 'Port of the server in the container (Enter to apply)',
    });
    this.portInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        this.applyPortInput(true);
      }
    });
    // Leaving the field (or the spinner arrows) applies a changed port.
    this.portInput.addEventListener('change', () => this.applyPortInput(false));

    this.address = h('input', {
      id: 'preview-address',
      'data-testid': 'preview-address',
      className: 'input input-sm address-input',
      type: 'text',
      spellcheck: 'false',
      value: '/',
      'aria-label': 'Preview path',
      placeholder: '/path',
      disabled: true,
    });
    this.address.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        this.navigate(this.address.value);
      }
    });
    this.reloadBtn = h('button', { type: 'button', className: 'icon-btn', 'aria-label': 'Reload preview', title: 'Reload preview', 'data-testid': 'preview-reload', disabled: true }, '↻');
    this.reloadBtn.addEventListener('click', () => this.reload());
    this.openBtn = h('button', { type: 'button', className: 'icon-btn', 'aria-label': 'Open preview in a new tab', title: 'Open in a new tab', 'data-testid': 'preview-open', disabled: true }, '↗');
    this.openBtn.addEventListener('click', () => this.openInTab());
    this.portsEl = h('div', { className: 'ports', 'data-testid': 'preview-ports', 'aria-label': 'Listening ports', hidden: true });
    this.body = h('div', { className: 'preview-body' });
    this.el = h('div', { className: 'preview-pane', id: 'preview-pane', 'data-testid': 'preview-pane' },
      h('div', { className: 'toolbar' },
        h('label', { className: 'toolbar-label', for: 'preview-port' }, 'Port'),
        this.portInput,
        h('span', { className: 'address-wrap' },
          h('span', { className: 'address-origin', 'aria-hidden': 'true' }),
          this.address),
        this.reloadBtn,
        this.openBtn,
      ),
      this.portsEl,
      this.body,
    );
    this.showHint();
  }

  get port(): number | null {
    return this._port ?? this.requestedPort;
  }

  get url(): string | null {
    return this.iframe?.src ?? null;
  }

  focus(): void {
    (this._port ? this.address : this.portInput).focus();
  }

  /** Asks for `port` (from the field, a detected port, or the session's last). */
  request(port: number): void {
    if (!Number.isInteger(port) || port < 1 || port > 65535) return;
    this.requestedPort = port;
    this.portInput.value = String(port);
    this.setBodyMessage(`Connecting the preview to port ${port}…`);
    this.actions.configure(port);
  }

  /** The server pointed the preview somewhere. */
  configured(m: PreviewConfiguredMsg): void {
    let port = this.requestedPort;
    try {
      const t = new URL(m.targetUrl);
      if (t.port) port = Number(t.port);
    } catch {
      // keep the requested port
    }
    if (!port) return;
    this._port = port;
    this.requestedPort = null;
    this.portInput.value = String(port);
    let url: URL;
    try {
      url = new URL(m.hostPreviewUrl || fallbackHostUrl(this.sessionId, port), location.href);
    } catch {
      url = new URL(fallbackHostUrl(this.sessionId, port));
    }
    this.origin = url.origin;
    this.linkToken = url.searchParams.get('token');
    this.linkTokenAt = Date.now();
    (this.el.querySelector('.address-origin') as HTMLElement).textContent = url.host;
    this.address.disabled = false;
    this.reloadBtn.disabled = false;
    this.openBtn.disabled = false;
    this.el.dataset.origin = url.origin;
    const path = this.currentPath();
    this.load(this.withToken(path));
    this.renderPorts();
  }

  /** The configure failed (the error itself is shown as a toast too). */
  failed(message: string): void {
    this.requestedPort = null;
    if (!this._port) this.showHint(message);
  }

  portOpened(port: number): void {
    this.openPorts.add(port);
    this.renderPorts();
    // Nothing chosen yet: take the first port that opens.
    if (this._port === null && this.requestedPort === null) {
      if (this.autoPick) this.request(port);
    }
    // The chosen port came (back) up: show it.
    else if (port === this._port) this.reload();
  }

  /** From now on a port that opens is previewed if none is chosen; one
   *  that is already open is taken now. */
  enableAutoPick(): void {
    this.autoPick = true;
    const first = this.openPorts.values().next();
    if (!first.done && this._port === null && this.requestedPort === null) this.request(first.value);
  }

    portClosed(port: number): void {
    this.openPorts.delete(port);
    this.renderPorts();
  }

  setPorts(ports: number[]): void {
    for (const p of ports) this.openPorts.add(p);
    this.renderPorts();
  }

  reload(): void {
    if (!this.origin) return;
    this.load(this.withToken(this.currentPath()));
  }

  navigate(path: string): void {
    if (!this.origin) return;
    path = path.trim() || '/';
    if (!path.startsWith('/')) path = '/' + path;
    this.address.value = path;
    this.load(this.withToken(path));
  }

  openInTab(): void {
    if (!this.origin) return;
    window.open(this.withToken(this.currentPath()), '_blank', 'noopener');
  }

  private currentPath(): string {
    const v = this.address.value.trim() || '/';
    return v.startsWith('/') ? v : '/' + v;
  }

  /** origin + path, with the link token while it is fresh (it buys the
   *  preview cookie; after that the cookie is enough). */
  private withToken(path: string): string {
    const u = new URL(path, this.origin!);
    if (this.linkToken && Date.now() - this.linkTokenAt < LINK_TOKEN_FRESH_MS) u.searchParams.set('token', this.linkToken);
    return u.href;
  }

  private load(src: string): void {
    if (!this.iframe) {
      clear(this.body);
      this.iframe = h('iframe', {
        className: 'preview-frame',
        id: 'preview-frame',
        'data-testid': 'preview-frame',
        title: 'Preview of the app running in the container',
        sandbox: 'allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads',
        allow: 'clipboard-read; clipboard-write; fullscreen',
        referrerpolicy: 'no-referrer',
      });
      this.body.appendChild(this.iframe);
    }
    // Setting the same src again reloads a cross-origin frame too.
    this.iframe.src = src;
  }

  /** `explicit`: Enter was pressed (the same port again reloads). */
  private applyPortInput(explicit: boolean): void {
    const v = Number(this.portInput.value);
    if (!this.portInput.value) return;
    if (!Number.isInteger(v) || v < 1 || v > 65535) {
      this.portInput.setCustomValidity('A port is a number from 1 to 65535');
      this.portInput.reportValidity();
      return;
    }
    this.portInput.setCustomValidity('');
    if (v === this._port && this.iframe) {
      if (explicit) this.reload();
      return;
    }
    if (v !== this.requestedPort) this.request(v);
  }

  private renderPorts(): void {
    clear(this.portsEl);
    const ports = [...this.openPorts].sort((a, b) => a - b);
    this.portsEl.hidden = ports.length === 0;
    if (!ports.length) return;
    this.portsEl.appendChild(h('span', { className: 'muted' }, 'Listening:'));
    for (const p of ports) {
      const b = h('button', {
        type: 'button',
        className: 'chip' + (p === this._port ? ' chip-active' : ''),
        'data-port': String(p),
        'aria-pressed': String(p === this._port),
        title: `Preview port ${p}`,
      }, String(p));
      b.addEventListener('click', () => (p === this._port ? this.reload() : this.request(p)));
      this.portsEl.appendChild(b);
    }
  }

  private setBodyMessage(text: string): void {
    if (this.iframe) return; // the frame shows the server's own waiting page
    clear(this.body);
    this.body.appendChild(h('div', { className: 'pane-hint' }, h('p', null, text)));
  }

  private showHint(error?: string): void {
    this.iframe = null;
    clear(this.body);
    this.body.appendChild(
      h('div', { className: 'pane-hint', 'data-testid': 'preview-hint' },
        error ? h('p', { className: 'form-error' }, error) : null,
        h('p', null, 'Nothing to preview yet.'),
        h('p', null, 'Start a server in the terminal, for example ',
          h('code', null, 'python3 -m http.server 8000'), ' or ', h('code', null, 'npm run dev'),
          ', then enter its port above. A port that starts listening in the container is picked up by itself.'),
      ),
    );
  }
}
