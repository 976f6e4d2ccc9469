// The token prompt: asks once, checks the token with GET /api/containers
// (401 → "not accepted", ask again), and keeps it for this tab only.

import { ApiError, api, describeError } from '../api';
import { setToken } from '../auth';
import { h } from './dom';

let pending: Promise<string> | null = null;

/** Resolves with a token the server accepted. Concurrent calls share one prompt. */
export function askToken(reason?: string): Promise<string> {
  if (pending) return pending;
  pending = new Promise<string>((resolve) => {
    const previouslyFocused = document.activeElement as HTMLElement | null;
    const input = h('input', {
      id: 'token-input',
      'data-testid': 'token-input',
      className: 'input',
      type: 'password',
      name: 'token',
      autocomplete: 'current-password',
      spellcheck: 'false',
      required: true,
      'aria-describedby': 'token-error token-help',
      placeholder: 'API token',
    });
    const error = h('p', { id: 'token-error', className: 'form-error', 'data-testid': 'token-error', role: 'alert' }, reason ?? '');
    const submit = h('button', { id: 'token-submit', 'data-testid': 'token-submit', type: 'submit', className: 'btn btn-primary' }, 'Continue');
    const form = h(
      'form',
      { className: 'modal', 'aria-labelledby': 'token-title' },
      h('h2', { id: 'token-title' }, 'This server needs an API token'),
      h('p', { id: 'token-help', className: 'muted' },
        'It is kept for this browser tab only (session storage) and sent as a bearer token; it never goes into a URL.'),
      // For password managers: a token form with a (hidden) user name.
      h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'claude-studio', hidden: true, tabindex: '-1', 'aria-hidden': 'true' }),
      h('label', { for: 'token-input' }, 'API token'),
      input,
      error,
      h('div', { className: 'modal-actions' }, submit),
    );
    const backdrop = h('div', { className: 'modal-backdrop', role: 'dialog', 'aria-modal': 'true', 'data-testid': 'token-prompt' }, form);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) {
        error.textContent = 'Enter the token.';
        input.focus();
        return;
      }
      submit.disabled = true;
      submit.textContent = 'Checking…';
      error.textContent = '';
      try {
        await api.checkToken(token);
        setToken(token);
        backdrop.remove();
        pending = null;
        previouslyFocused?.focus?.();
        resolve(token);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          error.textContent = 'Wrong token: the server did not accept it. Check it and try again.';
        } else {
          error.textContent = 'Could not check the token: ' + describeError(err);
        }
        input.select();
        input.focus();
      } finally {
        submit.disabled = false;
        submit.textContent = 'Continue';
      }
    });
    document.body.appendChild(backdrop);
    input.focus();
  });
  return pending;
}

export function isAsking(): boolean {
  return pending !== null;
}
