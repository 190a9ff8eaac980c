// Tiny DOM helpers. Every piece of text goes through textContent / text nodes:
// the console never builds HTML from strings, so user data cannot inject markup.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'indeterminate', 'open', 'multiple']);

function apply(el, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** h('a', {href: '#/jobs', class: 'x'}, 'text', childNode, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The same for SVG elements (charts). */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.setAttribute('class', value);
      else el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Replace every child of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// ------------------------------------------------------------------ formatting

const numberFmt = new Intl.NumberFormat();
export const fmtNumber = (n) => (n === null || n === undefined ? '–' : numberFmt.format(n));

export function toMs(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return value;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

const formatters = new Map();
function dateFormatter(timeZone) {
  const key = timeZone || '';
  if (!formatters.has(key)) {
    let fmt;
    try {
      fmt = new Intl.DateTimeFormat(undefined, {
        year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
        hourCycle: 'h23', timeZone: timeZone || undefined, timeZoneName: timeZone ? 'short' : undefined,
      });
    } catch {
      fmt = dateFormatter('');
    }
    formatters.set(key, fmt);
  }
  return formatters.get(key);
}

/** "Dec 4, 2026, 21:15:03" in the browser's zone, or in timeZone (with its abbreviation). */
export function fmtTime(value, timeZone) {
  const ms = toMs(value);
  return ms === null ? '–' : dateFormatter(timeZone).format(new Date(ms));
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });

/** "in 3 sec." / "5 min. ago" */
export function fmtRelative(value, now = Date.now()) {
  const ms = toMs(value);
  if (ms === null) return '–';
  const diff = (ms - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 1) return 'now';
  if (abs < 60) return rtf.format(Math.round(diff), 'second');
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
  if (abs < 86400 * 60) return rtf.format(Math.round(diff / 86400), 'day');
  if (abs < 86400 * 730) return rtf.format(Math.round(diff / (86400 * 30.4)), 'month');
  return rtf.format(Math.round(diff / (86400 * 365.25)), 'year');
}

/** 12 ms, 1.25 s, 3 min 2 s */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const min = Math.floor(ms / 60000);
  const sec = Math.round((ms % 60000) / 1000);
  return min < 60 ? `${min} min ${sec} s` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** A <time> element: relative text, absolute title; refreshed by tickTimes(). */
export function timeEl(value, { relative = true, timeZone } = {}) {
  const ms = toMs(value);
  if (ms === null) return h('span', { class: 'muted' }, '–');
  const el = h('time', { datetime: new Date(ms).toISOString(), title: fmtTime(ms, timeZone) },
    relative ? fmtRelative(ms) : fmtTime(ms, timeZone));
  if (relative) el.dataset.rel = String(ms);
  return el;
}

export function tickTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time[data-rel]')) el.textContent = fmtRelative(Number(el.dataset.rel), now);
}

// ------------------------------------------------------------------ misc

export function debounce(fn, wait) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Run async tasks with at most `limit` in flight. */
export async function pool(items, limit, worker) {
  const queue = [...items];
  const runners = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await worker(queue.shift());
  });
  await Promise.all(runners);
}

export const FAILED = new Set(['error', 'timeout', 'memory', 'output-truncated', 'crashed']);

export function statusBadge(status) {
  const kind = status === 'success' ? 'ok' : FAILED.has(status) ? 'bad' : status === 'running' ? 'live' : 'idle';
  return h('span', { class: `badge status status-${kind}`, dataset: { status } }, status);
}

export function isTyping(event) {
  const t = event.target;
  return t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.closest('.cm-editor'));
}
