// The console's shell: hash router, theme toggle, token prompt, keyboard shortcuts.

import { h, isTyping, tickTimes } from './dom.js';
import { setTokenPrompt, requestToken, token } from './api.js';
import { confirmDialog, tokenDialog } from './ui.js';
import { nav } from './nav.js';
import { dashboardPage } from './pages/dashboard.js';
import { jobsPage } from './pages/jobs.js';
import { editorPage } from './pages/editor.js';
import { runsPage, runPage } from './pages/runs.js';
import { librariesPage, libraryPage } from './pages/libraries.js';

const routes = [
  { re: /^\/(dashboard)?$/, nav: 'dashboard', title: 'Dashboard', mount: dashboardPage },
  { re: /^\/jobs$/, nav: 'jobs', title: 'Jobs', mount: jobsPage },
  { re: /^\/jobs\/new$/, nav: 'jobs', title: 'New job', mount: (root, ctx) => editorPage(root, { ...ctx, jobId: null }) },
  { re: /^\/jobs\/([^/?]+)$/, nav: 'jobs', title: 'Job', mount: (root, ctx) => editorPage(root, { ...ctx, jobId: decodeURIComponent(ctx.match[1]) }) },
  { re: /^\/runs$/, nav: 'runs', title: 'Runs', mount: runsPage },
  { re: /^\/runs\/([^/?]+)$/, nav: 'runs', title: 'Run', mount: (root, ctx) => runPage(root, { ...ctx, runId: decodeURIComponent(ctx.match[1]) }) },
  { re: /^\/libraries$/, nav: 'libraries', title: 'Libraries', mount: librariesPage },
  { re: /^\/libraries\/new$/, nav: 'libraries', title: 'New library', mount: (root, ctx) => libraryPage(root, { ...ctx, name: null }) },
  { re: /^\/libraries\/([^/?]+)$/, nav: 'libraries', title: 'Library', mount: (root, ctx) => libraryPage(root, { ...ctx, name: decodeURIComponent(ctx.match[1]) }) },
];

const app = document.getElementById('app');

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/dashboard';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

async function route() {
  if (location.hash === nav.hash) return;
  if (nav.page && nav.page.dirty && nav.page.dirty()) {
    const leave = await confirmDialog({
      title: 'Discard unsaved changes?', message: 'This page has changes that are not saved yet.', confirm: 'Discard', danger: true,
    });
    if (!leave) {
      history.replaceState(null, '', nav.hash);
      return;
    }
  }
  if (nav.page && nav.page.unmount) nav.page.unmount();
  nav.page = null;
  nav.hash = location.hash;
  const { path, params } = parseHash();
  const found = routes.find((r) => r.re.test(path));
  for (const link of document.querySelectorAll('.nav a')) {
    if (found && link.dataset.nav === found.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  app.replaceChildren();
  if (!found) {
    document.title = 'Not found · Traitor';
    app.append(h('section', { class: 'page' }, h('h1', null, 'Not found'),
      h('p', null, 'No page at ', h('code', null, path), '. ', h('a', { href: '#/dashboard' }, 'Go to the dashboard'))));
    return;
  }
  document.title = `${found.title} · Traitor`;
  nav.page = found.mount(app, { params, match: found.re.exec(path), setTitle: (t) => { document.title = `${t} · Traitor`; } }) || {};
  window.scrollTo(0, 0);
}

// ------------------------------------------------------------------ theme

const THEME_KEY = 'traitor.theme';
const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');

function effectiveTheme() {
  return document.documentElement.dataset.theme || (darkQuery.matches ? 'dark' : 'light');
}

function renderThemeButton() {
  const button = document.getElementById('theme-toggle');
  if (!button) return;
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  button.setAttribute('aria-label', `Switch to the ${next} theme`);
  button.title = `Switch to the ${next} theme (t)`;
  button.dataset.next = next;
}

export function toggleTheme() {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem(THEME_KEY, next); } catch { /* private mode */ }
  renderThemeButton();
}

darkQuery.addEventListener('change', renderThemeButton);

// ------------------------------------------------------------------ token

function renderTokenButton() {
  const button = document.getElementById('token-button');
  if (!button) return;
  const has = Boolean(token.get());
  button.classList.toggle('has-token', has);
  button.title = has ? 'API token set for this tab: change or forget it' : 'Give an API token';
}

setTokenPrompt(async (reason) => {
  const value = await tokenDialog(reason);
  setTimeout(renderTokenButton);
  return value;
});

// ------------------------------------------------------------------ keys

let pendingG = false;

function showShortcuts() {
  const rows = [
    ['g d', 'Dashboard'], ['g j', 'Jobs'], ['g r', 'Runs'], ['g l', 'Libraries'], ['n', 'New job'], ['/', 'Search jobs'], ['t', 'Toggle theme'],
    ['Ctrl/⌘ S', 'Save the job (editor)'], ['Ctrl/⌘ Enter', 'Run the script in the debug console (editor)'],
    ['Esc, then Tab', 'Leave the code editor with the keyboard'], ['?', 'This help'],
  ];
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'keys-title' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'keys-title' }, 'Keyboard shortcuts'),
      h('dl', { class: 'keys' }, rows.map(([k, v]) => [h('dt', null, h('kbd', null, k)), h('dd', null, v)])),
      h('div', { class: 'dialog-actions' }, h('button', { type: 'submit', class: 'button primary', autofocus: true }, 'Close'))));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

document.addEventListener('keydown', (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event)) return;
  if (document.querySelector('dialog[open]')) return;
  const key = event.key;
  if (pendingG) {
    pendingG = false;
    const target = { d: '#/dashboard', j: '#/jobs', r: '#/runs', l: '#/libraries' }[key];
    if (target) { event.preventDefault(); location.hash = target; }
    return;
  }
  if (key === 'g') { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); return; }
  if (key === 'n') { event.preventDefault(); location.hash = '#/jobs/new'; return; }
  if (key === 't') { event.preventDefault(); toggleTheme(); return; }
  if (key === '?') { event.preventDefault(); showShortcuts(); return; }
  if (key === '/') {
    const search = document.querySelector('[data-search]');
    event.preventDefault();
    if (search) search.focus();
    else location.hash = '#/jobs';
  }
});

// ------------------------------------------------------------------ boot

document.getElementById('theme-toggle')?.addEventListener('click', toggleTheme);
document.getElementById('token-button')?.addEventListener('click', async () => {
  await requestToken(null);
  renderTokenButton();
  nav.hash = null;
  route();
});
document.getElementById('keys-button')?.addEventListener('click', showShortcuts);
renderThemeButton();
renderTokenButton();
window.addEventListener('hashchange', route);
window.addEventListener('beforeunload', (event) => {
  if (nav.page && nav.page.dirty && nav.page.dirty()) event.preventDefault();
});
setInterval(() => tickTimes(app), 5000);
nav.route = route;
route();
