// The "?" overlay: keyboard shortcuts and a few hints.

import { h } from './dom';

let open: HTMLElement | null = null;

export function toggleHelp(): void {
  if (open) {
    closeHelp();
    return;
  }
  const previouslyFocused = document.activeElement as HTMLElement | null;
  const row = (keys: string[], what: string) =>
    h('tr', null, h('td', null, ...keys.flatMap((k, i) => [i ? ' ' : '', h('kbd', null, k)])), h('td', null, what));
  const closeBtn = h('button', { type: 'button', className: 'btn', 'data-testid': 'help-close' }, 'Close');
  const dialog = h(
    'div',
    { className: 'modal help', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'help-title', 'data-testid': 'help' },
    h('h2', { id: 'help-title' }, 'Keyboard shortcuts'),
    h('table', { className: 'keys' },
      h('tbody', null,
        row(['Alt', '1'], 'Terminal'),
        row(['Alt', '2'], 'Preview (focuses the port or address field)'),
        row(['Alt', '3'], 'Console (focuses the filter)'),
        row(['Alt', '/'], 'This help'),
        row(['Ctrl', 'Shift', 'C'], 'Copy the terminal selection'),
        row(['Ctrl', 'Shift', 'V'], 'Paste into the terminal (the browser’s paste works too)'),
        row(['Esc'], 'Close this help'),
      )),
    h('p', { className: 'muted' },
      'On macOS use ⌥ for Alt and ⌘ for Ctrl. Links in the terminal open with a click. ',
      'The preview shows the server on the chosen port in its own origin; the console lists what that page logs.'),
    h('div', { className: 'modal-actions' }, closeBtn),
  );
  const backdrop = h('div', { className: 'modal-backdrop' }, dialog);
  const close = () => {
    closeHelp();
    previouslyFocused?.focus?.();
  };
  closeBtn.addEventListener('click', close);
  backdrop.addEventListener('click', (e) => e.target === backdrop && close());
  backdrop.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      close();
    }
  });
  document.body.appendChild(backdrop);
  open = backdrop;
  closeBtn.focus();
}

export function closeHelp(): void {
  open?.remove();
  open = null;
}
