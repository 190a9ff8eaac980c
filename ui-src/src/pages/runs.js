// #/runs (every job, or ?job=ID) — run history with charts; #/runs/ID — one run.

import { h, replace, timeEl, fmtTime, fmtDuration, fmtNumber, statusBadge } from '../dom.js';
import { api, jobName } from '../api.js';
import { updateHashQuery } from '../nav.js';
import { errorText } from '../ui.js';
import { runsOverTime, durations, legend } from '../chart.js';

const STATUSES = ['success', 'error', 'timeout', 'memory', 'output-truncated', 'crashed', 'skipped', 'missed', 'running'];
const WINDOWS = [['15m', '15 minutes', 900], ['1h', '1 hour', 3600], ['6h', '6 hours', 21600], ['24h', '24 hours', 86400], ['7d', '7 days', 604800]];
const PAGE = 50;
const CHART_LIMIT = 500;

function jobLink(jobId, signal) {
  const link = h('a', { href: `#/jobs/${encodeURIComponent(jobId)}`, class: 'job-name' }, jobId.slice(0, 8));
  jobName(jobId, signal).then((name) => { link.textContent = name; }).catch(() => {});
  return link;
}

function firstLine(run) {
  const text = run.error || run.output || '';
  const line = text.split('\n').find((l) => l.trim()) || '';
  // Stored output lines start with "<RFC 3339> <level> ": show the message only.
  return line.replace(/^\S+Z (log|info|warn|error|debug) */, '').slice(0, 160);
}

export function runsPage(root, { params, setTitle }) {
  const st = {
    job: params.get('job') || '',
    status: STATUSES.includes(params.get('status')) ? params.get('status') : '',
    window: WINDOWS.some(([k]) => k === params.get('window')) ? params.get('window') : '1h',
    page: Math.max(1, Number.parseInt(params.get('page') || '1', 10) || 1),
    live: params.get('live') !== '0',
  };
  const controller = new AbortController();
  let inflight = null;
  let timer = null;
  let total = 0;

  const heading = h('h1', { id: 'runs-title' }, st.job ? 'Runs of a job' : 'Runs');
  const jobChip = st.job ? h('p', { class: 'filter-chip' }, 'Job: ', jobLink(st.job, controller.signal), ' ',
    h('a', { href: '#/runs', class: 'button small', 'aria-label': 'Show the runs of every job' }, 'All jobs ×')) : null;
  if (st.job) jobName(st.job, controller.signal).then((name) => { heading.textContent = `Runs of ${name}`; setTitle(`Runs of ${name}`); }).catch(() => {});

  const statusSelect = h('select', { id: 'runs-status', onchange: (e) => { st.status = e.target.value; st.page = 1; load(); } },
    h('option', { value: '' }, 'Any status'), STATUSES.map((v) => h('option', { value: v, selected: v === st.status }, v)));
  const windowSelect = h('select', { id: 'runs-window', onchange: (e) => { st.window = e.target.value; st.page = 1; load(); } },
    WINDOWS.map(([k, text]) => h('option', { value: k, selected: k === st.window }, `last ${text}`)));
  const live = h('input', { type: 'checkbox', id: 'runs-live', checked: st.live, onchange: (e) => { st.live = e.target.checked; syncHash(); schedule(); } });

  const chartRuns = h('div', { class: 'chart-box', id: 'chart-runs' });
  const chartDurations = h('div', { class: 'chart-box', id: 'chart-durations' });
  const chartNote = h('p', { class: 'muted small', id: 'chart-note' });
  const summary = h('p', { class: 'muted', id: 'runs-summary', 'aria-live': 'polite' }, 'Loading…');
  const tbody = h('tbody');
  const prev = h('button', { type: 'button', class: 'button', onclick: () => { st.page -= 1; load(); } }, '‹ Newer');
  const next = h('button', { type: 'button', class: 'button', onclick: () => { st.page += 1; load(); } }, 'Older ›');
  const pageLabel = h('span', { class: 'muted' });

  root.append(h('section', { class: 'page' },
    h('header', { class: 'page-head' }, h('div', null, heading, jobChip)),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field inline' }, h('label', { for: 'runs-status' }, 'Status'), statusSelect),
      h('div', { class: 'field inline' }, h('label', { for: 'runs-window' }, 'Window'), windowSelect),
      h('label', { class: 'check', for: 'runs-live' }, live, ' Live (refresh every 3 s)')),
    h('div', { class: 'chart-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'chart-runs-title' },
        h('h2', { id: 'chart-runs-title' }, 'Runs and failures'),
        chartRuns,
        legend([['bar-ok', 'succeeded'], ['bar-bad', 'failed'], ['bar-other', 'skipped, missed or running']])),
      h('section', { class: 'card', 'aria-labelledby': 'chart-durations-title' },
        h('h2', { id: 'chart-durations-title' }, 'Durations'),
        chartDurations,
        legend([['bar-ok', 'succeeded'], ['bar-bad', 'failed']]))),
    chartNote,
    summary,
    h('div', { class: 'table-wrap' }, h('table', { class: 'table runs-table', id: 'runs-table' },
      h('thead', null, h('tr', null, ['When', 'Job', 'Status', 'Duration', 'Lateness', 'Trigger', 'Node', 'Output'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    h('nav', { class: 'pager', 'aria-label': 'Pages of runs' }, prev, pageLabel, next)));

  function windowSeconds() {
    return WINDOWS.find(([k]) => k === st.window)[2];
  }

  function syncHash() {
    const p = new URLSearchParams();
    if (st.job) p.set('job', st.job);
    if (st.status) p.set('status', st.status);
    if (st.window !== '1h') p.set('window', st.window);
    if (st.page > 1) p.set('page', st.page);
    if (!st.live) p.set('live', '0');
    updateHashQuery('/runs', p);
  }

  async function load() {
    if (inflight) inflight.abort();
    const local = new AbortController();
    inflight = local;
    const signal = AbortSignal.any ? AbortSignal.any([controller.signal, local.signal]) : local.signal;
    syncHash();
    const to = Date.now();
    const from = to - windowSeconds() * 1000;
    const since = Math.floor(from / 1000);
    try {
      const [page, recent] = await Promise.all([
        api('/api/v1/runs', { signal, query: { jobId: st.job, status: st.status, since, offset: (st.page - 1) * PAGE, limit: PAGE } }),
        api('/api/v1/runs', { signal, query: { jobId: st.job, since, limit: CHART_LIMIT } }),
      ]);
      total = page.total;
      replace(chartRuns, runsOverTime(recent.data, from, to, { buckets: 40, width: chartRuns.clientWidth }));
      replace(chartDurations, durations(recent.data, from, to, { width: chartDurations.clientWidth }));
      chartNote.textContent = recent.total > recent.data.length
        ? `Charts show the newest ${fmtNumber(recent.data.length)} of ${fmtNumber(recent.total)} runs in the window.`
        : `Charts show all ${fmtNumber(recent.total)} runs in the window.`;
      renderTable(page.data, signal);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(summary, h('span', { class: 'error-text' }, `Could not load runs: ${errorText(err)}`));
    } finally {
      if (inflight === local) inflight = null;
    }
  }

  function renderTable(runs, signal) {
    const pages = Math.max(1, Math.ceil(total / PAGE));
    summary.textContent = total
      ? `${fmtNumber(total)} run${total === 1 ? '' : 's'}${st.status ? ` with status ${st.status}` : ''} in the last ${WINDOWS.find(([k]) => k === st.window)[1]}`
      : `No runs${st.status ? ` with status ${st.status}` : ''} in the last ${WINDOWS.find(([k]) => k === st.window)[1]}.`;
    pageLabel.textContent = `page ${st.page} of ${pages}`;
    prev.disabled = st.page <= 1;
    next.disabled = st.page >= pages;
    replace(tbody, runs.map((run) => h('tr', { dataset: { runId: run.runId, status: run.status } },
      h('td', { 'data-label': 'When' }, h('a', { href: `#/runs/${encodeURIComponent(run.runId)}`, class: 'run-link' }, timeEl(run.startedAt || run.scheduledAt))),
      h('td', { 'data-label': 'Job' }, jobLink(run.jobId, signal)),
      h('td', { 'data-label': 'Status' }, statusBadge(run.status)),
      h('td', { 'data-label': 'Duration' }, fmtDuration(run.durationMs)),
      h('td', { 'data-label': 'Lateness' }, fmtDuration(run.latenessMs)),
      h('td', { 'data-label': 'Trigger' }, run.attempt ? `${run.trigger} #${run.attempt}` : run.trigger),
      h('td', { 'data-label': 'Node', class: 'ellipsis' }, run.node || '–'),
      h('td', { 'data-label': 'Output', class: 'output-cell' }, h('span', { class: run.error ? 'error-text' : 'muted' }, firstLine(run))))));
  }

  function schedule() {
    clearInterval(timer);
    if (st.live) timer = setInterval(() => { if (!document.hidden && !inflight) load(); }, 3000);
  }

  load();
  schedule();
  return {
    unmount() {
      clearInterval(timer);
      controller.abort();
      inflight?.abort();
    },
  };
}

// ------------------------------------------------------------------ one run

const LINE = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (log|info|warn|error|debug)/;

/** A run's stored output as coloured lines: each line is "<RFC 3339> <level padded to 5> <text>". */
function outputLines(text) {
  const items = [];
  for (const raw of text.split('\n')) {
    const m = LINE.exec(raw);
    if (m) {
      const start = m[1].length + 1 + Math.max(5, m[2].length) + 1;
      items.push({ ts: m[1], level: m[2], text: raw.slice(start) });
    } else if (items.length) items[items.length - 1].text += `\n${raw}`;
    else if (raw) items.push({ ts: null, level: 'log', text: raw });
  }
  return items.map((l) => h('li', { class: `line lvl-${l.level}` },
    h('span', { class: 'ts' }, l.ts ? new Date(l.ts).toLocaleTimeString(undefined, { hourCycle: 'h23' }) : ''),
    h('span', { class: 'lvl' }, l.level),
    h('span', { class: 'msg' }, l.text)));
}

export function runPage(root, { runId, setTitle }) {
  const controller = new AbortController();
  let timer = null;
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('section', { class: 'page' }, h('a', { href: '#/runs', class: 'back' }, '← Runs'), body));

  async function load() {
    try {
      const { data: run } = await api(`/api/v1/runs/${encodeURIComponent(runId)}`, { signal: controller.signal });
      setTitle(`Run ${run.status}`);
      const rows = [
        ['Job', jobLink(run.jobId, controller.signal)],
        ['Status', statusBadge(run.status)],
        ['Trigger', run.attempt ? `${run.trigger} (attempt ${run.attempt})` : run.trigger],
        ['Scheduled', fmtTime(run.scheduledAt)],
        ['Started', fmtTime(run.startedAt)],
        ['Finished', fmtTime(run.finishedAt)],
        ['Duration', fmtDuration(run.durationMs)],
        ['Lateness', fmtDuration(run.latenessMs)],
        ['Node', run.node || '–'],
        ['Run id', h('code', null, run.runId)],
      ];
      const output = run.output ? outputLines(run.output) : [];
      replace(body,
        h('header', { class: 'page-head' }, h('h1', null, 'Run ', statusBadge(run.status)),
          h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/runs?job=${encodeURIComponent(run.jobId)}` }, 'Runs of this job'))),
        h('div', { class: 'run-grid' },
          h('section', { class: 'card' }, h('h2', null, 'Details'),
            h('dl', { class: 'details' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))),
          h('section', { class: 'card' }, h('h2', null, 'Output'),
            output.length ? h('ol', { class: 'console', id: 'run-output' }, output) : h('p', { class: 'muted' }, 'No console output.'),
            run.error ? [h('h2', null, 'Error'), h('pre', { class: 'error-text error-box', id: 'run-error' }, run.error)] : null)));
      clearTimeout(timer);
      if (run.status === 'running') timer = setTimeout(load, 1000);
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(body, h('h1', null, err.status === 404 ? 'No such run' : 'Could not load the run'), h('p', { class: 'error-text' }, errorText(err)));
    }
  }

  load();
  return { unmount() { clearTimeout(timer); controller.abort(); } };
}

