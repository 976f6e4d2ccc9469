// Boot: health and auth, then the router (`/` home, `/s/ID` studio), and the
// test hook `window.__studio`.

import './style.css';
import { ApiError, api, describeError, setUnauthorizedHandler } from './api';
import { getToken, setToken } from './auth';
import type { Health } from './protocol';
import { Studio, type StudioState } from './studio';
import { h } from './ui/dom';
import { closeHelp, toggleHelp } from './ui/help';
import { Home } from './ui/home';
import { toast } from './ui/toast';
import { askToken, isAsking } from './ui/tokenPrompt';

interface StudioHook {
  /** The visible terminal screen as text. */
  term(): string;
  readonly sessionId: string | null;
  readonly state: StudioState | 'home' | 'booting';
  readonly termSize: { cols: number; rows: number } | null;
  readonly previewUrl: string | null;
  readonly route: string;
  /** The states the studio view went through, oldest first. */
  readonly states: string[];
  /** The largest share of an image pull the progress bar showed (0–1). */
  readonly pulledMost: number;
}

declare global {
  interface Window {
    __studio: StudioHook;
  }
}

const root = document.getElementById('app')!;
let view: Home | Studio | null = null;
let health: Health | null = null;
let booted = false;

function sessionFromPath(path: string): string | null {
  const m = /^\/s\/([^/]+)\/?$/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

function setView(v: Home | Studio): void {
  view?.dispose();
  closeHelp();
  view = v;
  root.appendChild(v.el);
  v.mount();
}

function route(): void {
  const sid = sessionFromPath(location.pathname);
  if (sid) {
    document.title = `${sid} · Claude Studio`;
    setView(new Studio({ kind: 'attach', sessionId: sid }, studioHooks));
  } else {
    if (location.pathname !== '/') history.replaceState(null, '', '/');
    document.title = 'Claude Studio';
    setView(new Home(homeHooks, health));
  }
}

const studioHooks = {
  onCreated(sessionId: string) {
    history.pushState(null, '', '/s/' + encodeURIComponent(sessionId));
    document.title = `${sessionId} · Claude Studio`;
  },
  goHome() {
    history.pushState(null, '', '/');
    route();
  },
};

const homeHooks = {
  create(image: string, workspaceDir: string) {
    document.title = 'New session · Claude Studio';
    const intent: { kind: 'create'; image?: string; workspaceDir?: string } = { kind: 'create' };
    if (image) intent.image = image;
    if (workspaceDir) intent.workspaceDir = workspaceDir;
    setView(new Studio(intent, studioHooks));
  },
  open(sessionId: string) {
    history.pushState(null, '', '/s/' + encodeURIComponent(sessionId));
    route();
  },
};

window.addEventListener('popstate', () => route());

window.__studio = {
  term: () => (view instanceof Studio ? view.terminalText() : ''),
  get sessionId() {
    return view instanceof Studio ? view.id : null;
  },
  get state() {
    return view instanceof Studio ? view.state : booted ? 'home' : 'booting';
  },
  get termSize() {
    return view instanceof Studio ? view.termSize : null;
  },
  get previewUrl() {
    return view instanceof Studio ? view.previewUrl : null;
  },
  get route() {
    return location.pathname;
  },
  get states() {
    return view instanceof Studio ? [...view.stateHistory] : [];
  },
  get pulledMost() {
    return view instanceof Studio ? view.pulledMost : 0;
  },
};

// Any 401 from the REST API: the token is missing or wrong; ask (once).
setUnauthorizedHandler(() => {
  if (isAsking()) return;
  const had = getToken() !== null;
  setToken(null);
  void askToken(had ? 'The stored token is no longer accepted. Enter it again.' : undefined).then(() => {
    if (view instanceof Home) void view.refresh();
  });
});

// Page-wide help key outside the studio (the studio handles its own keys).
window.addEventListener('keydown', (e) => {
  if (view instanceof Studio) return;
  if (e.altKey && e.code === 'Slash') {
    e.preventDefault();
    toggleHelp();
  }
});

async function boot(): Promise<void> {
  try {
    health = await api.health();
  } catch (e) {
    const retry = h('button', { type: 'button', className: 'btn btn-primary' }, 'Try again');
    const card = h('div', { className: 'boot-error card', role: 'alert', 'data-testid': 'boot-error' },
      h('h2', null, 'The server cannot be reached'),
      h('p', null, describeError(e)),
      retry);
    retry.addEventListener('click', () => {
      card.remove();
      void boot();
    });
    root.appendChild(card);
    return;
  }
  if (health.authRequired) {
    const stored = getToken();
    let ok = false;
    if (stored) {
      try {
        await api.checkToken(stored);
        ok = true;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) {
          ok = true; // not a token problem: let the views say what it is
          toast(describeError(e), { level: 'error' });
        } else setToken(null);
      }
    }
    if (!ok) await askToken(stored ? 'The stored token is no longer accepted. Enter it again.' : undefined);
  }
  booted = true;
  route();
}

void boot();
