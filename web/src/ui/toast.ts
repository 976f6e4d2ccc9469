// Toasts: every server error is shown in words here (never swallowed).

import { h } from './dom';

export type ToastLevel = 'error' | 'warn' | 'info' | 'ok';

let region: HTMLElement | null = null;
const MAX_VISIBLE = 5;

function ensureRegion(): HTMLElement {
  if (region && region.isConnected) return region;
  region = h('div', { className: 'toasts', role: 'status', 'aria-live': 'polite', 'data-testid': 'toasts' });
  document.body.appendChild(region);
  return region;
}

export function toast(message: string, opts: { level?: ToastLevel; title?: string; timeout?: number } = {}): void {
  const level = opts.level ?? 'info';
  const r = ensureRegion();
  // The same message again: bump the existing one instead of stacking.
  for (const el of Array.from(r.children) as HTMLElement[]) {
    if (el.dataset.key === level + '|' + (opts.title ?? '') + '|' + message) {
      const n = Number(el.dataset.count ?? '1') + 1;
      el.dataset.count = String(n);
      const badge = el.querySelector('.toast-count');
      if (badge) badge.textContent = `×${n}`;
      return;
    }
  }
  const close = () => el.remove();
  const el = h(
    'div',
    { className: `toast toast-${level}`, role: level === 'error' ? 'alert' : null, 'data-testid': 'toast', 'data-level': level },
    h('div', { className: 'toast-body' },
      opts.title ? h('strong', null, opts.title) : null,
      h('span', { className: 'toast-msg' }, message),
      h('span', { className: 'toast-count' }),
    ),
    h('button', { className: 'icon-btn', type: 'button', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: close }, '×'),
  );
  el.dataset.key = level + '|' + (opts.title ?? '') + '|' + message;
  r.appendChild(el);
  while (r.children.length > MAX_VISIBLE) r.firstElementChild?.remove();
  const timeout = opts.timeout ?? (level === 'error' ? 12000 : 5000);
  if (timeout > 0) window.setTimeout(close, timeout);
}
