// #/libraries — script libraries: the list; #/libraries/new and #/libraries/NAME — the
// editor (CodeMirror with inline syntax errors), the version history, who uses the
// library, and delete (a library still used answers 409 with its users: shown, with
// "Delete anyway").

import { h, replace, timeEl, fmtNumber, debounce } from '../dom.js';
import { api, ApiError } from '../api.js';
import { navigate, updateHashQuery } from '../nav.js';
import { toast, errorText, confirmDialog } from '../ui.js';
import { createCodeEditor } from '../code.js';

const NAME_RE = /^[a-z][a-z0-9_-]{0,63}$/;

const DEFAULT_SOURCE = `// A library: jobs load it with require('lib/NAME') (the latest version),
// require('lib/NAME@3') (version 3), or import { greet } from 'lib/NAME'.
// Other libraries can be required from here the same way.

exports.greet = function greet(who) {
  return \`hello \${who}\`;
};
`;

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
}

const libPath = (name) => `/api/v1/libraries/${encodeURIComponent(name)}`;

// ------------------------------------------------------------------ the list

export function librariesPage(root, { params }) {
  const controller = new AbortController();
  const { signal } = controller;
  let all = [];
  const search = h('input', {
    type: 'search', id: 'library-search', placeholder: 'Filter by name…', value: params.get('q') || '',
    'data-search': true, 'aria-label': 'Filter libraries by name', autocomplete: 'off',
  });
  const summary = h('p', { class: 'muted', id: 'libraries-summary', 'aria-live': 'polite' }, 'Loading…');
  const tbody = h('tbody');
  const table = h('table', { class: 'table libraries-table', id: 'libraries-table' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Name'),
      h('th', { scope: 'col' }, 'Latest'),
      h('th', { scope: 'col' }, 'Size'),
      h('th', { scope: 'col' }, 'Updated'),
      h('th', { scope: 'col' }, 'Use it with'))),
    tbody);

  root.append(h('section', { class: 'page' },
    h('header', { class: 'page-head' },
      h('div', null,
        h('h1', null, 'Libraries'),
        h('p', { class: 'muted small' }, 'JavaScript modules shared by jobs, with a version history.')),
      h('div', { class: 'actions' }, h('a', { class: 'button primary', href: '#/libraries/new', id: 'new-library' }, '+ New library'))),
    h('div', { class: 'toolbar' }, h('div', { class: 'field grow' }, search)),
    summary,
    h('div', { class: 'table-wrap' }, table)));

  function render() {
    const q = search.value.trim().toLowerCase();
    const shown = q ? all.filter((lib) => lib.name.includes(q)) : all;
    summary.textContent = all.length === 0
      ? 'No libraries yet: create one with “New library”.'
      : `${fmtNumber(shown.length)} of ${fmtNumber(all.length)} librar${all.length === 1 ? 'y' : 'ies'}`;
    replace(tbody, shown.map((lib) => h('tr', { dataset: { library: lib.name } },
      h('td', { 'data-label': 'Name' }, h('a', { href: `#/libraries/${encodeURIComponent(lib.name)}`, class: 'library-link' }, lib.name)),
      h('td', { 'data-label': 'Latest' }, h('span', { class: 'badge' }, `v${lib.version}`)),
      h('td', { 'data-label': 'Size' }, fmtBytes(lib.size)),
      h('td', { 'data-label': 'Updated' }, timeEl(lib.updatedAt)),
      h('td', { 'data-label': 'Use it with' }, h('code', null, `require('lib/${lib.name}')`)))));
  }

  const onSearch = debounce(() => {
    const p = new URLSearchParams();
    if (search.value.trim()) p.set('q', search.value.trim());
    updateHashQuery('/libraries', p);
    render();
  }, 150);
  search.addEventListener('input', onSearch);

  api('/api/v1/libraries', { signal })
    .then((body) => { all = body.data; render(); })
    .catch((err) => {
      if (err.name !== 'AbortError') replace(summary, h('span', { class: 'error-text' }, `Could not load libraries: ${errorText(err)}`));
    });

  return { unmount() { controller.abort(); onSearch.cancel(); } };
}

// ------------------------------------------------------------------ the editor

export function libraryPage(root, { name: libName, setTitle }) {
  const isNew = !libName;
  const controller = new AbortController();
  const { signal } = controller;
  let lib = null; // the latest version, as loaded or saved
  let dirty = false;
  let saving = false;
  const page = { unmount, dirty: () => dirty };

  const title = h('h1', { id: 'library-title' }, isNew ? 'New library' : libName);
  const meta = h('div', { class: 'muted small', id: 'library-meta' });
  const formError = h('div', { class: 'alert', id: 'library-error', role: 'alert', hidden: true });
  const nameInput = h('input', {
    id: 'library-name', type: 'text', maxlength: 64, autocomplete: 'off', spellcheck: 'false', class: 'mono',
    placeholder: 'e.g. dates', value: libName || '', disabled: !isNew, 'aria-describedby': 'library-name-hint',
  });
  const nameHint = h('p', { class: 'hint', id: 'library-name-hint' }, 'Lower-case letters, digits, “_” and “-”, starting with a letter.');
  const nameError = h('p', { class: 'field-error', id: 'library-name-error', hidden: true });
  const usageHint = h('p', { class: 'hint', id: 'library-usage-hint' });
  const saveButton = h('button', { type: 'button', class: 'button primary', id: 'save-library', title: 'Save (Ctrl/⌘ S)', onclick: () => save() },
    isNew ? 'Create library' : 'Save new version');
  const deleteButton = isNew ? null : h('button', { type: 'button', class: 'button danger', id: 'delete-library', onclick: () => remove(false) }, 'Delete');
  const dirtyMark = h('span', { class: 'dirty-mark', hidden: true }, '● unsaved');
  const syntaxStatus = h('p', { class: 'syntax-status ok', id: 'library-syntax', 'aria-live': 'polite' }, 'Syntax OK');
  const serverSyntax = h('p', { class: 'syntax-status bad', id: 'library-server-syntax', hidden: true });
  const loadedNote = h('p', { class: 'hint', id: 'library-loaded', hidden: true });
  const versionsList = h('ol', { class: 'version-list', id: 'library-versions', 'aria-label': 'Versions' });
  const usersBox = h('div', { id: 'library-users' });
  const codeHost = h('div', { class: 'code-host' });

  const side = h('div', { class: 'editor-side' },
    h('section', { class: 'card', 'aria-labelledby': 'library-card-title' },
      h('h2', { id: 'library-card-title' }, 'Library'),
      h('div', { class: 'field' }, h('label', { for: 'library-name' }, 'Name'), nameInput, nameHint, nameError),
      usageHint),
    isNew ? null : h('section', { class: 'card', 'aria-labelledby': 'versions-title' },
      h('h2', { id: 'versions-title' }, 'Versions'),
      h('p', { class: 'hint' }, 'Every save stores a new version; old ones stay readable. Open one to see it, save it to restore it.'),
      versionsList),
    isNew ? null : h('section', { class: 'card', 'aria-labelledby': 'users-title' },
      h('h2', { id: 'users-title' }, 'Used by'),
      usersBox));

  root.append(h('section', { class: 'page editor-page library-page' },
    h('header', { class: 'page-head' },
      h('div', null, h('a', { href: '#/libraries', class: 'back' }, '← Libraries'), title, meta),
      h('div', { class: 'actions' }, dirtyMark, deleteButton, saveButton)),
    formError,
    h('div', { class: 'editor-grid' },
      side,
      h('div', { class: 'editor-main' },
        h('section', { class: 'card script-card', 'aria-labelledby': 'source-title' },
          h('div', { class: 'card-head' },
            h('h2', { id: 'source-title' }, 'Source'),
            h('span', { class: 'muted small' }, 'CommonJS (exports, module.exports) or ES modules (export)')),
          loadedNote,
          codeHost,
          syntaxStatus,
          serverSyntax)))));

  const editor = createCodeEditor(codeHost, {
    doc: isNew ? DEFAULT_SOURCE : '',
    label: 'Library source',
    onChange: () => markDirty(),
    onSave: () => save(),
    onSyntax: (err) => {
      syntaxStatus.className = `syntax-status ${err ? 'bad' : 'ok'}`;
      syntaxStatus.textContent = err ? `Syntax error, line ${err.line}, column ${err.column}: ${err.message}` : 'Syntax OK';
    },
  });

  function markDirty() {
    if (!dirty) { dirty = true; dirtyMark.hidden = false; }
  }
  function markClean() {
    dirty = false;
    dirtyMark.hidden = true;
  }

  function renderUsageHint(name) {
    const valid = NAME_RE.test(name);
    replace(usageHint, valid
      ? ['Jobs use it with ', h('code', null, `require('lib/${name}')`), ' or ', h('code', null, `import … from 'lib/${name}'`), '.']
      : '');
    return valid;
  }

  nameInput.addEventListener('input', () => {
    markDirty();
    const name = nameInput.value.trim();
    const valid = renderUsageHint(name);
    nameError.hidden = valid || !name;
    nameError.textContent = valid || !name ? '' : 'Not a valid library name.';
  });

  const onKey = (e) => {
    if (e.defaultPrevented || !(e.ctrlKey || e.metaKey) || document.querySelector('dialog[open]')) return;
    if (e.key.toLowerCase() === 's') { e.preventDefault(); save(); }
  };
  document.addEventListener('keydown', onKey);

  function showServerSyntax(data) {
    const err = data.syntaxError;
    serverSyntax.hidden = !err;
    serverSyntax.textContent = err
      ? `Version ${data.version} does not compile (line ${err.line}, column ${err.column}: ${err.message}); runs that load it fail.`
      : '';
  }

  function showError(err) {
    formError.hidden = false;
    replace(formError, h('strong', null, 'Not saved: '), errorText(err));
    if (err instanceof ApiError && err.field === 'name') {
      nameError.hidden = false;
      nameError.textContent = errorText(err);
      nameInput.focus();
    }
  }

  function fill(data) {
    lib = data;
    title.textContent = data.name;
    setTitle(`Library ${data.name}`);
    renderUsageHint(data.name);
    replace(meta, h('span', { class: 'badge', id: 'library-version' }, `v${data.version}`), ' · ',
      fmtBytes(data.size), ' · saved ', timeEl(data.createdAt),
      data.requires.length ? [' · requires ', data.requires.map((r, i) => [i ? ', ' : '', h('code', null, r)])] : null);
    showServerSyntax(data);
  }

  async function save() {
    if (saving) return;
    formError.hidden = true;
    const source = editor.getValue();
    saving = true;
    saveButton.disabled = true;
    try {
      if (isNew) {
        const name = nameInput.value.trim();
        const body = await api('/api/v1/libraries', { method: 'POST', body: { name, source }, signal });
        markClean();
        toast(`Created library “${body.data.name}”`, 'ok');
        navigate(`#/libraries/${encodeURIComponent(body.data.name)}`, { replace: true });
        return;
      }
      const body = await api(libPath(libName), { method: 'PUT', body: { source }, signal });
      fill(body.data);
      loadedNote.hidden = true;
      markClean();
      toast(`Saved version ${body.data.version}`, 'ok');
      loadVersions();
    } catch (err) {
      if (err.name !== 'AbortError') showError(err);
    } finally {
      saving = false;
      saveButton.disabled = false;
    }
  }

  async function loadVersions() {
    try {
      const body = await api(`${libPath(libName)}/versions`, { signal });
      replace(versionsList, body.data.map((v) => h('li', { dataset: { version: v.version } },
        h('button', {
          type: 'button', class: 'link-button', onclick: () => openVersion(v.version),
          'aria-label': `Open version ${v.version}`,
        }, `v${v.version}`),
        lib && v.version === lib.version ? h('span', { class: 'badge status-ok' }, 'latest') : null,
        ' ', h('span', { class: 'muted small' }, timeEl(v.createdAt), ` · ${fmtBytes(v.size)}`))));
    } catch (err) {
      if (err.name !== 'AbortError') replace(versionsList, h('li', { class: 'error-text' }, errorText(err)));
    }
  }

  async function openVersion(version) {
    if (dirty && !(await confirmDialog({ title: 'Discard unsaved changes?', message: 'The editor has changes that are not saved yet.', confirm: 'Discard', danger: true }))) return;
    try {
      const body = await api(libPath(libName), { query: { version }, signal });
      editor.setValue(body.data.source);
      markClean();
      const latest = body.data.latest;
      loadedNote.hidden = latest;
      loadedNote.textContent = latest ? '' : `Showing version ${version}. Saving stores it again as the newest version.`;
      showServerSyntax(body.data);
    } catch (err) {
      if (err.name !== 'AbortError') toast(errorText(err), 'error');
    }
  }

  function usersList(usage) {
    const items = [
      ...usage.jobs.map((j) => h('li', null, 'job ', h('a', { href: `#/jobs/${encodeURIComponent(j.jobId)}` }, j.name || j.jobId))),
      ...usage.libraries.map((n) => h('li', null, 'library ', h('a', { href: `#/libraries/${encodeURIComponent(n)}` }, n))),
    ];
    return items.length ? h('ul', { class: 'users-list' }, items) : h('p', { class: 'muted' }, 'No job or library uses it.');
  }

  async function loadUsers() {
    try {
      const body = await api(`${libPath(libName)}/usage`, { signal });
      replace(usersBox, usersList(body.data));
    } catch (err) {
      if (err.name !== 'AbortError') replace(usersBox, h('p', { class: 'error-text' }, errorText(err)));
    }
  }

  function inUseDialog(message, usage) {
    return new Promise((resolve) => {
      const dialog = h('dialog', { class: 'dialog', id: 'library-in-use', 'aria-labelledby': 'in-use-title' });
      const form = h('form', { method: 'dialog' },
        h('h2', { id: 'in-use-title' }, `“${libName}” is still used`),
        h('p', null, message),
        usersList(usage),
        h('p', { class: 'muted small' }, 'Deleting it anyway makes their runs fail with “Cannot find library”.'),
        h('div', { class: 'dialog-actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'button', autofocus: true }, 'Keep it'),
          h('button', { type: 'submit', value: 'force', class: 'button danger', id: 'delete-anyway' }, 'Delete anyway')));
      dialog.append(form);
      dialog.addEventListener('close', () => { resolve(dialog.returnValue === 'force'); dialog.remove(); });
      document.body.append(dialog);
      dialog.showModal();
    });
  }

  async function remove(force) {
    if (!force) {
      const ok = await confirmDialog({
        title: `Delete library “${libName}”?`, message: 'Every version is deleted. This cannot be undone.', confirm: 'Delete', danger: true,
      });
      if (!ok) return;
    }
    try {
      await api(libPath(libName), { method: 'DELETE', query: force ? { force: 'true' } : undefined, signal });
      markClean();
      toast(`Deleted library “${libName}”`, 'ok');
      navigate('#/libraries');
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (err.status === 409 && err.body) {
        if (await inUseDialog(err.message, err.body)) remove(true);
        return;
      }
      toast(errorText(err), 'error');
    }
  }

  function unmount() {
    document.removeEventListener('keydown', onKey);
    controller.abort();
    editor.destroy();
  }

  if (isNew) {
    setTitle('New library');
    renderUsageHint('');
    nameInput.focus();
  } else {
    api(libPath(libName), { signal })
      .then((body) => {
        fill(body.data);
        editor.setValue(body.data.source);
        markClean();
        loadVersions();
        loadUsers();
      })
      .catch((err) => {
        if (err.name === 'AbortError') return;
        title.textContent = err.status === 404 ? 'No such library' : 'Could not load the library';
        formError.hidden = false;
        replace(formError, errorText(err), ' · ', h('a', { href: '#/libraries' }, 'Back to the libraries'));
        saveButton.hidden = true;
        if (deleteButton) deleteButton.hidden = true;
      });
  }
  return page;
}
