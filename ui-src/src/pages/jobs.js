// #/jobs — the job list: server-side pagination, search, filters and sort, with
// per-row enable switch, run now, edit and delete. Only the visible page is
// fetched; each row's last outcome is fetched lazily (one tiny request per row
// that has run, a few at a time, cached until its lastExecTime changes).

import { h, replace, timeEl, fmtNumber, fmtTime, debounce, pool, statusBadge } from '../dom.js';
import { api, rememberJobName } from '../api.js';
import { updateHashQuery } from '../nav.js';
import { toast, errorText, confirmDialog, switchEl } from '../ui.js';

const SIZES = [25, 50, 100, 200];
const SORTS = [
  ['created', 'Created'], ['name', 'Name'], ['next', 'Next fire'], ['last', 'Last run'], ['updated', 'Updated'],
];
/** jobId → {last: lastExecTime, run} so refreshes do not fetch outcomes again. */
const outcomes = new Map();
/** Jobs run by hand from this list whose run has not finished yet. */
const manual = new Set();

function readState(params) {
  const size = Number(params.get('size'));
  return {
    page: Math.max(1, Number.parseInt(params.get('page') || '1', 10) || 1),
    size: SIZES.includes(size) ? size : 50,
    q: params.get('q') || '',
    type: ['timing', 'delay'].includes(params.get('type')) ? params.get('type') : '',
    state: ['runnable', 'stopped'].includes(params.get('state')) ? params.get('state') : '',
    sort: SORTS.some(([v]) => v === params.get('sort')) ? params.get('sort') : 'created',
    order: params.get('order') === 'asc' ? 'asc' : params.get('order') === 'desc' ? 'desc' : '',
  };
}

function defaultOrder(sort) {
  return sort === 'name' || sort === 'next' ? 'asc' : 'desc';
}

export function jobsPage(root, { params }) {
  const st = readState(params);
  let controller = null;
  let outcomeController = null;
  let timer = null;
  let total = 0;
  let loading = false;
  let disposed = false;

  const select = (label, id, options, value, onchange) => h('div', { class: 'field inline' },
    h('label', { for: id }, label),
    h('select', { id, onchange }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));

  const search = h('input', {
    type: 'search', id: 'job-search', placeholder: 'Search by name…', value: st.q, 'data-search': true,
    'aria-label': 'Search jobs by name', autocomplete: 'off',
  });
  const onSearch = debounce(() => { st.q = search.value.trim(); st.page = 1; load(); }, 250);
  search.addEventListener('input', onSearch);
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { onSearch.cancel(); st.q = search.value.trim(); st.page = 1; load(); } });

  const orderButton = h('button', { type: 'button', class: 'button', id: 'job-order', onclick: () => {
    st.order = (st.order || defaultOrder(st.sort)) === 'asc' ? 'desc' : 'asc';
    load();
  } });
  const renderOrder = () => {
    const order = st.order || defaultOrder(st.sort);
    orderButton.textContent = order === 'asc' ? '↑ Asc' : '↓ Desc';
    orderButton.setAttribute('aria-label', `Order: ${order === 'asc' ? 'ascending' : 'descending'} (click to flip)`);
  };

  const toolbar = h('div', { class: 'toolbar' },
    h('div', { class: 'field grow' }, search),
    select('Type', 'job-type', [['', 'All types'], ['timing', 'Timing'], ['delay', 'Delay']], st.type,
      (e) => { st.type = e.target.value; st.page = 1; load(); }),
    select('State', 'job-state', [['', 'Any state'], ['runnable', 'Enabled'], ['stopped', 'Stopped']], st.state,
      (e) => { st.state = e.target.value; st.page = 1; load(); }),
    select('Sort', 'job-sort', SORTS, st.sort, (e) => { st.sort = e.target.value; st.order = ''; st.page = 1; load(); }),
    orderButton);

  const tbody = h('tbody');
  const summary = h('p', { class: 'muted', id: 'jobs-summary', 'aria-live': 'polite' }, 'Loading…');
  const pageInput = h('input', { type: 'number', min: 1, id: 'job-page', class: 'page-input', 'aria-label': 'Page number' });
  const pageCount = h('span', { class: 'muted' });
  const btn = (label, text, onclick) => h('button', { type: 'button', class: 'button', 'aria-label': label, onclick }, text);
  const first = btn('First page', '«', () => go(1));
  const prev = btn('Previous page', '‹ Prev', () => go(st.page - 1));
  const next = btn('Next page', 'Next ›', () => go(st.page + 1));
  const last = btn('Last page', '»', () => go(pages()));
  pageInput.addEventListener('change', () => go(Number(pageInput.value) || 1));
  const sizeSelect = h('select', { id: 'job-size', 'aria-label': 'Jobs per page', onchange: (e) => {
    st.size = Number(e.target.value); st.page = 1; load();
  } }, SIZES.map((n) => h('option', { value: n, selected: n === st.size }, `${n} / page`)));

  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of jobs' },
    first, prev, h('span', { class: 'page-of' }, 'Page ', pageInput, ' ', pageCount), next, last, sizeSelect);

  const table = h('table', { class: 'table jobs-table' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col', class: 'col-enabled' }, 'On'),
      h('th', { scope: 'col' }, 'Name'),
      h('th', { scope: 'col' }, 'Schedule'),
      h('th', { scope: 'col' }, 'Next fire'),
      h('th', { scope: 'col' }, 'Last run'),
      h('th', { scope: 'col', class: 'col-actions' }, h('span', { class: 'sr-only' }, 'Actions')))),
    tbody);

  root.append(h('section', { class: 'page' },
    h('header', { class: 'page-head' },
      h('h1', null, 'Jobs'),
      h('div', { class: 'actions' },
        h('a', { class: 'button', href: '#/jobs/new?type=delay' }, 'New delay job'),
        h('a', { class: 'button primary', href: '#/jobs/new', id: 'new-job' }, '+ New job'))),
    toolbar, summary, h('div', { class: 'table-wrap' }, table), pager));

  function pages() {
    return Math.max(1, Math.ceil(total / st.size));
  }

  function go(page) {
    st.page = Math.min(Math.max(1, page), pages());
    load();
  }

  function syncHash() {
    const p = new URLSearchParams();
    if (st.page > 1) p.set('page', st.page);
    if (st.size !== 50) p.set('size', st.size);
    if (st.q) p.set('q', st.q);
    if (st.type) p.set('type', st.type);
    if (st.state) p.set('state', st.state);
    if (st.sort !== 'created') p.set('sort', st.sort);
    if (st.order) p.set('order', st.order);
    updateHashQuery('/jobs', p);
  }

  async function load({ quiet = false } = {}) {
    if (disposed) return;
    controller?.abort();
    controller = new AbortController();
    const { signal } = controller;
    syncHash();
    renderOrder();
    loading = true;
    if (!quiet) table.setAttribute('aria-busy', 'true');
    try {
      const body = await api('/api/v1/jobs', {
        signal,
        query: {
          offset: (st.page - 1) * st.size, limit: st.size, search: st.q, type: st.type, state: st.state,
          sort: st.sort, order: st.order || defaultOrder(st.sort),
        },
      });
      total = body.total;
      if (body.data.length === 0 && total > 0 && st.page > pages()) {
        st.page = pages();
        return load();
      }
      render(body.data);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(summary, h('span', { class: 'error-text' }, `Could not load jobs: ${errorText(err)}`));
    } finally {
      if (!signal.aborted) { loading = false; table.removeAttribute('aria-busy'); }
    }
  }

  function render(jobs) {
    const from = total === 0 ? 0 : (st.page - 1) * st.size + 1;
    const to = (st.page - 1) * st.size + jobs.length;
    const filtered = st.q || st.type || st.state;
    summary.textContent = total === 0
      ? (filtered ? 'No job matches these filters.' : 'No jobs yet: create one with “New job”.')
      : `Showing ${fmtNumber(from)}–${fmtNumber(to)} of ${fmtNumber(total)} job${total === 1 ? '' : 's'}`;
    pageInput.value = String(st.page);
    pageInput.max = String(pages());
    pageCount.textContent = `of ${fmtNumber(pages())}`;
    first.disabled = prev.disabled = st.page <= 1;
    next.disabled = last.disabled = st.page >= pages();
    const focused = document.activeElement?.closest?.('tr')?.dataset.jobId;
    const focusKey = document.activeElement?.dataset?.key;
    replace(tbody, jobs.map(row));
    if (focused && focusKey) tbody.querySelector(`tr[data-job-id="${CSS.escape(focused)}"] [data-key="${focusKey}"]`)?.focus();
    fetchOutcomes(jobs);
  }

  function row(job) {
    rememberJobName(job.jobId, job.name);
    const name = job.name || '(unnamed)';
    const timing = job.execType === 0;
    const toggle = switchEl({
      checked: job.state === 1, label: `Enabled: ${name}`,
      onchange: async (e) => {
        const input = e.target;
        input.disabled = true;
        try {
          await api(`/api/v1/jobs/${encodeURIComponent(job.jobId)}/${input.checked ? 'enable' : 'disable'}`, { method: 'POST' });
          toast(`${name}: ${input.checked ? 'enabled' : 'stopped'}`, 'ok');
          load({ quiet: true });
        } catch (err) {
          input.checked = !input.checked;
          toast(`${name}: ${errorText(err)}`, 'error');
        } finally {
          input.disabled = false;
        }
      },
    });
    toggle.querySelector('input').dataset.key = 'switch';
    const schedule = timing
      ? h('code', { class: 'cron', title: job.timezone ? `in ${job.timezone}` : 'server time zone' }, job.cron)
      : h('span', null, 'once at ', timeEl(job.execAt === null ? null : job.execAt * 1000, { relative: false, timeZone: job.timezone }));
    const lastCell = h('td', { 'data-label': 'Last run', class: 'col-last' }, lastRun(job));
    const tr = h('tr', { dataset: { jobId: job.jobId } },
      h('td', { class: 'col-enabled', 'data-label': 'Enabled' }, toggle),
      h('td', { class: 'col-name', 'data-label': 'Name' },
        h('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}`, class: 'job-link', 'data-key': 'name' }, name),
        h('span', { class: `badge type-${timing ? 'timing' : 'delay'}` }, timing ? 'timing' : 'delay'),
        job.description ? h('div', { class: 'muted small ellipsis' }, job.description) : null),
      h('td', { 'data-label': 'Schedule', class: 'col-schedule' }, schedule),
      h('td', { 'data-label': 'Next fire', class: 'col-next' },
        job.nextExecTime ? timeEl(job.nextExecTime, { timeZone: job.timezone }) : h('span', { class: 'muted' }, job.state === 1 ? '–' : 'stopped')),
      lastCell,
      h('td', { class: 'col-actions' },
        h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'button small', 'data-key': 'run', onclick: () => runNow(job, name) }, 'Run now'),
          h('a', { class: 'button small', href: `#/jobs/${encodeURIComponent(job.jobId)}`, 'data-key': 'edit', 'aria-label': `Edit ${name}` }, 'Edit'),
          h('button', { type: 'button', class: 'button small danger', 'data-key': 'delete', 'aria-label': `Delete ${name}`, onclick: () => remove(job, name) }, 'Delete'))));
    tr.lastCell = lastCell;
    return tr;
  }

  function lastRun(job) {
    const cached = outcomes.get(job.jobId);
    if (cached && cached.run) {
      const run = cached.run;
      return h('a', { href: `#/runs/${encodeURIComponent(run.runId)}`, class: 'outcome', title: `${run.trigger} run, ${fmtTime(run.startedAt || run.scheduledAt)}` },
        statusBadge(run.status), ' ', timeEl(run.startedAt || run.scheduledAt));
    }
    if (!job.lastExecTime) return h('span', { class: 'muted' }, 'never');
    return h('span', { class: 'outcome' }, timeEl(job.lastExecTime));
  }

  async function fetchOutcomes(jobs) {
    outcomeController?.abort();
    outcomeController = new AbortController();
    const { signal } = outcomeController;
    // Fetch the newest run of rows whose lastExecTime moved, whose run was still going,
    // or that were just run by hand (manual runs leave lastExecTime alone).
    const stale = (job) => {
      const cached = outcomes.get(job.jobId);
      if (manual.has(job.jobId)) return true;
      if (!job.lastExecTime) return false;
      return !cached || cached.last !== job.lastExecTime || (cached.run && cached.run.status === 'running');
    };
    const todo = jobs.filter(stale);
    try {
      await pool(todo, 4, async (job) => {
        if (signal.aborted) return;
        const body = await api(`/api/v1/runs`, { signal, query: { jobId: job.jobId, limit: 1 } });
        const run = body.data[0] || null;
        outcomes.set(job.jobId, { last: job.lastExecTime, run });
        if (run && run.status !== 'running') manual.delete(job.jobId);
        const tr = tbody.querySelector(`tr[data-job-id="${CSS.escape(job.jobId)}"]`);
        if (tr?.lastCell) replace(tr.lastCell, lastRun(job));
      });
    } catch (err) {
      if (err.name !== 'AbortError') console.warn('last outcomes:', err);
    }
  }

  async function runNow(job, name) {
    try {
      const body = await api(`/api/v1/jobs/${encodeURIComponent(job.jobId)}/trigger`, { method: 'POST' });
      manual.add(job.jobId);
      toast(`${name}: triggered`, 'ok', { href: `#/runs/${encodeURIComponent(body.data.runId)}`, text: 'See the run' });
      for (const delay of [1000, 3000, 6000]) setTimeout(() => { if (!loading) load({ quiet: true }); }, delay);
    } catch (err) {
      toast(`${name}: ${errorText(err)}`, 'error');
    }
  }

  async function remove(job, name) {
    const ok = await confirmDialog({
      title: `Delete “${name}”?`,
      message: 'The job, its schedule and its run history are deleted. This cannot be undone.',
      confirm: 'Delete', danger: true,
    });
    if (!ok) return;
    try {
      await api(`/api/v1/jobs/${encodeURIComponent(job.jobId)}`, { method: 'DELETE' });
      outcomes.delete(job.jobId);
      toast(`Deleted “${name}”`, 'ok');
      load({ quiet: true });
    } catch (err) {
      toast(`${name}: ${errorText(err)}`, 'error');
    }
  }

  load();
  // Keep next fires and outcomes current while the tab is visible.
  timer = setInterval(() => {
    if (!document.hidden && !loading && !document.querySelector('dialog[open]')) load({ quiet: true });
  }, 10000);

  return {
    unmount() {
      disposed = true;
      clearInterval(timer);
      onSearch.cancel();
      controller?.abort();
      outcomeController?.abort();
    },
  };
}

