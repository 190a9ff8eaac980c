// #/dashboard — jobs by state, runs per minute, failures, the next fires and the
// live nodes of the cluster. Refreshed every 5 seconds.

import { h, replace, timeEl, fmtNumber, FAILED } from '../dom.js';
import { api, rememberJobName } from '../api.js';
import { errorText } from '../ui.js';
import { runsOverTime, legend } from '../chart.js';

function stat(label, value, { id, detail, tone, href } = {}) {
  const inner = [h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value', id }, value), detail ? h('span', { class: 'stat-detail muted' }, detail) : null];
  return href
    ? h('a', { class: `stat ${tone || ''}`, href }, inner)
    : h('div', { class: `stat ${tone || ''}` }, inner);
}

export function dashboardPage(root) {
  const controller = new AbortController();
  let timer = null;
  let busy = false;

  const stats = h('div', { class: 'stats', id: 'dash-stats', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const chart = h('div', { class: 'chart-box', id: 'dash-chart' });
  const chartNote = h('p', { class: 'muted small' });
  const nextList = h('ol', { class: 'next-list', id: 'dash-next' });
  const nodes = h('div', { id: 'dash-nodes' });
  const error = h('p', { class: 'alert', role: 'alert', hidden: true });

  root.append(h('section', { class: 'page' },
    h('header', { class: 'page-head' }, h('h1', null, 'Dashboard'),
      h('div', { class: 'actions' }, h('a', { class: 'button primary', href: '#/jobs/new' }, '+ New job'))),
    error,
    stats,
    h('div', { class: 'dash-grid' },
      h('section', { class: 'card wide', 'aria-labelledby': 'dash-chart-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'dash-chart-title' }, 'Runs per minute, last hour'),
          h('a', { href: '#/runs', class: 'button small' }, 'All runs →')),
        chart, legend([['bar-ok', 'succeeded'], ['bar-bad', 'failed'], ['bar-other', 'skipped, missed or running']]), chartNote),
      h('section', { class: 'card', 'aria-labelledby': 'dash-next-title' },
        h('h2', { id: 'dash-next-title' }, 'Next fires'), nextList),
      h('section', { class: 'card', 'aria-labelledby': 'dash-nodes-title' },
        h('h2', { id: 'dash-nodes-title' }, 'Nodes'), nodes))));

  async function load() {
    if (busy) return;
    busy = true;
    const { signal } = controller;
    const to = Date.now();
    const from = to - 3600000;
    try {
      const [statsBody, runsBody, nextBody] = await Promise.all([
        api('/api/v1/stats', { signal }),
        api('/api/v1/runs', { signal, query: { since: Math.floor(from / 1000), limit: 1000 } }),
        api('/api/v1/jobs', { signal, query: { state: 'runnable', sort: 'next', order: 'asc', limit: 100 } }),
      ]);
      error.hidden = true;
      renderStats(statsBody.data);
      replace(chart, runsOverTime(runsBody.data, from, to, { buckets: 60, width: chart.clientWidth }));
      chartNote.textContent = runsBody.total > runsBody.data.length
        ? `The chart shows the newest ${fmtNumber(runsBody.data.length)} of ${fmtNumber(runsBody.total)} runs of the hour.` : '';
      renderNext(nextBody.data);
      renderNodes(statsBody.data);
    } catch (err) {
      if (err.name === 'AbortError') return;
      error.hidden = false;
      error.textContent = `Could not load the dashboard: ${errorText(err)}`;
    } finally {
      busy = false;
    }
  }

  function renderStats(data) {
    const jobs = data.jobs || {};
    const runs = data.runsLastHour || {};
    const totalRuns = Object.values(runs).reduce((a, b) => a + b, 0);
    const failed = Object.entries(runs).filter(([k]) => FAILED.has(k)).reduce((a, [, v]) => a + v, 0);
    const perMinute = totalRuns / 60;
    replace(stats,
      stat('Jobs', fmtNumber(jobs.total ?? 0), { id: 'stat-jobs', href: '#/jobs', detail: `${fmtNumber(jobs.timing ?? 0)} timing · ${fmtNumber(jobs.delay ?? 0)} delay` }),
      stat('Enabled', fmtNumber(jobs.runnable ?? 0), { id: 'stat-enabled', href: '#/jobs?state=runnable', tone: 'tone-ok', detail: `${fmtNumber(data.armed)} armed in the wheel` }),
      stat('Stopped', fmtNumber(jobs.stopped ?? 0), { id: 'stat-stopped', href: '#/jobs?state=stopped' }),
      stat('Running now', fmtNumber(data.running), { id: 'stat-running', tone: data.running ? 'tone-live' : '', detail: `${fmtNumber(data.queued)} queued${data.workers ? ` · ${fmtNumber(data.workers)} workers` : ''}` }),
      stat('Runs / minute', perMinute < 10 ? perMinute.toFixed(1) : fmtNumber(Math.round(perMinute)), { id: 'stat-rpm', detail: `${fmtNumber(totalRuns)} in the last hour` }),
      stat('Failures, last hour', fmtNumber(failed), { id: 'stat-failed', href: '#/runs?status=error', tone: failed ? 'tone-bad' : '', detail: Object.entries(runs).filter(([k]) => FAILED.has(k)).map(([k, v]) => `${v} ${k}`).join(' · ') || 'none' }),
    );
    if (data.paused) stats.append(stat('Scheduler', 'paused', { tone: 'tone-bad' }));
  }

  function renderNext(jobs) {
    const upcoming = jobs.filter((j) => j.nextExecTime).sort((a, b) => (a.nextExecTime < b.nextExecTime ? -1 : 1)).slice(0, 8);
    replace(nextList, upcoming.length ? upcoming.map((job) => {
      rememberJobName(job.jobId, job.name);
      return h('li', null,
        h('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, job.name || '(unnamed)'),
        h('span', { class: 'muted' }, ' · '), timeEl(job.nextExecTime, { timeZone: job.timezone }),
        job.cron ? h('code', { class: 'cron small' }, job.cron) : h('span', { class: 'badge type-delay' }, 'delay'));
    }) : h('li', { class: 'muted' }, 'Nothing scheduled.'));
  }

  function renderNodes(data) {
    const list = data.nodes && data.nodes.length ? data.nodes : [data.node];
    replace(nodes,
      h('p', { class: 'muted small' }, data.mode === 'multi' ? `Cluster mode: ${list.length} live node${list.length === 1 ? '' : 's'}` : 'Standalone mode (one node)'),
      h('ul', { class: 'node-list' }, list.map((name) => h('li', null,
        h('span', { class: 'dot-live', 'aria-hidden': 'true' }), h('code', null, name), name === data.node ? h('span', { class: 'muted' }, ' (this node)') : null))));
  }

  load();
  timer = setInterval(() => { if (!document.hidden) load(); }, 5000);
  return { unmount() { clearInterval(timer); controller.abort(); } };
}
