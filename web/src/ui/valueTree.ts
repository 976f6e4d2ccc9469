// Renders console arguments (JSON values): strings plain, objects and arrays
// as expandable trees whose children are built when first opened.

import { h } from './dom';

const PREVIEW_ITEMS = 5;

function isObj(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === 'object' && v !== null;
}

function scalar(v: unknown, nested: boolean): HTMLElement {
  if (typeof v === 'string') {
    return nested ? h('span', { className: 'v-str' }, JSON.stringify(v)) : h('span', { className: 'v-text' }, v);
  }
  if (typeof v === 'number') return h('span', { className: 'v-num' }, String(v));
  if (typeof v === 'boolean') return h('span', { className: 'v-bool' }, String(v));
  if (v === null) return h('span', { className: 'v-null' }, 'null');
  return h('span', { className: 'v-null' }, String(v));
}

function preview(v: Record<string, unknown> | unknown[]): string {
  const short = (x: unknown): string => {
    if (typeof x === 'string') return JSON.stringify(x.length > 40 ? x.slice(0, 40) + '…' : x);
    if (Array.isArray(x)) return `Array(${x.length})`;
    if (isObj(x)) return '{…}';
    return String(x);
  };
  if (Array.isArray(v)) {
    const items = v.slice(0, PREVIEW_ITEMS).map(short);
    if (v.length > PREVIEW_ITEMS) items.push('…');
    return `(${v.length}) [${items.join(', ')}]`;
  }
  const keys = Object.keys(v);
  const items = keys.slice(0, PREVIEW_ITEMS).map((k) => `${k}: ${short(v[k])}`);
  if (keys.length > PREVIEW_ITEMS) items.push('…');
  return `{${items.join(', ')}}`;
}

function tree(v: Record<string, unknown> | unknown[], label: string | null): HTMLElement {
  const summary = h('summary', null,
    label !== null ? h('span', { className: 'v-key' }, label + ': ') : null,
    h('span', { className: 'v-preview' }, preview(v)),
  );
  const details = h('details', { className: 'v-tree' }, summary);
  let built = false;
  details.addEventListener('toggle', () => {
    if (built || !details.open) return;
    built = true;
    const body = h('div', { className: 'v-children' });
    const entries: [string, unknown][] = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    for (const [k, x] of entries) {
      body.appendChild(isObj(x) ? tree(x, k) : h('div', { className: 'v-row' }, h('span', { className: 'v-key' }, k + ': '), scalar(x, true)));
    }
    if (entries.length === 0) body.appendChild(h('div', { className: 'v-row v-null' }, Array.isArray(v) ? '(empty array)' : '(no properties)'));
    details.appendChild(body);
  });
  return details;
}

export function renderValue(v: unknown): HTMLElement {
  return isObj(v) ? tree(v, null) : scalar(v, false);
}

/** The text of an argument, for the text filter. */
export function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
