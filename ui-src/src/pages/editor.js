// #/jobs/new and #/jobs/ID — create and edit timing and delay jobs: the script in
// CodeMirror with inline syntax errors, a cron field checked as you type against
// /api/v1/cron/preview, a date-time picker for delay jobs, limits and policies,
// the debug console, and the job's recent runs.

import { h, replace, timeEl, fmtTime, fmtRelative, fmtDuration, debounce, statusBadge } from '../dom.js';
import { api, ApiError, rememberJobName } from '../api.js';
import { navigate } from '../nav.js';
import { toast, errorText, confirmDialog, switchEl } from '../ui.js';
import { createCodeEditor } from '../code.js';
import { debugConsole } from '../console.js';

const DEFAULT_SCRIPT = `// This program runs on the job's schedule, in a fresh QuickJS context.
// console output is kept with each run; require('http') reaches the network.
console.log("hello from Traitor at", new Date().toISOString());
`;

const CRON_EXAMPLES = [
  ['* * * * * *', 'every second'],
  ['*/5 * * * *', 'every 5 minutes'],
  ['0 9 * * MON-FRI', 'weekdays 09:00'],
  ['0 0 8 ? * MON', 'Mondays 08:00:00'],
  ['@daily', 'daily'],
  ['@every 30s', 'every 30 s'],
];

let zones = null;
function zoneList() {
  if (!zones) {
    let names = [];
    try { names = Intl.supportedValuesOf('timeZone'); } catch { names = []; }
    zones = h('datalist', { id: 'tz-list' }, ['UTC', ...names].map((z) => h('option', { value: z })));
  }
  return zones;
}

function browserZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time'; } catch { return 'local time'; }
}

/** Unix seconds → the value of an <input type=datetime-local> in the browser's zone. */
function toLocalInput(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The picker's value (browser time) → Unix seconds, or null. */
function fromLocalInput(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

function numberOrNull(input) {
  const text = input.value.trim();
  return text === '' ? null : Number(text);
}

export function editorPage(root, { params, jobId, setTitle }) {
  const isNew = !jobId;
  const controller = new AbortController();
  const { signal } = controller;
  let job = null;
  let dirty = false;
  let saving = false;
  let runsTimer = null;
  let lastSeenRun;
  const page = { unmount, dirty: () => dirty };

  // ---------------------------------------------------------------- fields
  const field = (id, label, input, hint) => h('div', { class: 'field', id: `${id}-field` },
    h('label', { for: id }, label), input, hint || null, h('p', { class: 'field-error', id: `${id}-error`, hidden: true }));

  const name = h('input', { id: 'job-name', type: 'text', maxlength: 200, autocomplete: 'off', placeholder: 'e.g. Nightly report' });
  const description = h('textarea', { id: 'job-description', rows: 2, maxlength: 4000, placeholder: 'What it does, who to call when it fails' });
  const typeTiming = h('input', { type: 'radio', name: 'execType', value: '0', id: 'type-timing', checked: params.get('type') !== 'delay' });
  const typeDelay = h('input', { type: 'radio', name: 'execType', value: '1', id: 'type-delay', checked: params.get('type') === 'delay' });
  const enabledSwitch = switchEl({ checked: isNew, label: 'Enabled', id: 'job-enabled' });
  const enabled = enabledSwitch.querySelector('input');

  const cron = h('input', {
    id: 'job-cron', type: 'text', class: 'mono', autocomplete: 'off', spellcheck: 'false', value: '*/5 * * * *',
    'aria-describedby': 'cron-help cron-preview',
  });
  const timezone = h('input', { id: 'job-timezone', type: 'text', list: 'tz-list', autocomplete: 'off', spellcheck: 'false', placeholder: 'server default' });
  const execAt = h('input', { id: 'job-exec-at', type: 'datetime-local', step: 1, 'aria-describedby': 'exec-at-hint' });
  const execAtHint = h('p', { class: 'hint', id: 'exec-at-hint', 'aria-live': 'polite' });

  const cronDesc = h('p', { class: 'cron-desc', id: 'cron-desc' });
  const cronNext = h('ol', { class: 'cron-next', id: 'cron-next', 'aria-label': 'Next fire times' });
  const cronZone = h('p', { class: 'muted small', id: 'cron-zone' });
  const cronPreview = h('div', { class: 'cron-preview', id: 'cron-preview', 'aria-live': 'polite' }, cronDesc, cronZone, cronNext);

  const timeout = h('input', { id: 'job-timeout', type: 'number', min: 0.001, step: 'any', placeholder: 'server default (30)', inputmode: 'decimal' });
  const memory = h('input', { id: 'job-memory', type: 'number', min: 1, step: 1, placeholder: 'server default (64)', inputmode: 'numeric' });
  const retries = h('input', { id: 'job-retries', type: 'number', min: 0, step: 1, value: '0', inputmode: 'numeric' });
  const overlap = h('select', { id: 'job-overlap' },
    h('option', { value: 'allow' }, 'allow: start another run'),
    h('option', { value: 'skip' }, 'skip: drop the new fire'),
    h('option', { value: 'queue' }, 'queue: run it after'));
  const misfire = h('select', { id: 'job-misfire' },
    h('option', { value: 'once', selected: true }, 'once: run one catch-up'),
    h('option', { value: 'skip' }, 'skip: forget missed fires'),
    h('option', { value: 'all' }, 'all: replay every missed fire'));
  const grace = h('input', { id: 'job-grace', type: 'number', min: 0, step: 'any', placeholder: 'server default (60)', inputmode: 'decimal' });

  const timingSection = h('div', { class: 'timing-only' },
    field('job-cron', 'Cron expression', cron,
      h('p', { class: 'hint', id: 'cron-help' },
        '5 fields (min hour day month weekday), 6 with seconds first, 7 with a year; or @daily, @every 30s.')),
    h('div', { class: 'chips', role: 'group', 'aria-label': 'Cron examples' },
      CRON_EXAMPLES.map(([expr, text]) => h('button', {
        type: 'button', class: 'chip', title: expr, onclick: () => { cron.value = expr; cron.dispatchEvent(new Event('input', { bubbles: true })); cron.focus(); },
      }, text))),
    cronPreview);

  const quick = (label, fn) => h('button', { type: 'button', class: 'chip', onclick: () => {
    execAt.value = toLocalInput(fn());
    execAt.dispatchEvent(new Event('input', { bubbles: true }));
  } }, label);
  const nowS = () => Math.floor(Date.now() / 1000);
  const delaySection = h('div', { class: 'delay-only' },
    field('job-exec-at', `Run at (your browser's time, ${browserZone()})`, execAt, execAtHint),
    h('div', { class: 'chips', role: 'group', 'aria-label': 'Quick times' },
      quick('+1 min', () => nowS() + 60), quick('+10 min', () => nowS() + 600), quick('+1 h', () => nowS() + 3600),
      quick('tomorrow 09:00', () => { const d = new Date(); d.setDate(d.getDate() + 1); d.setHours(9, 0, 0, 0); return d.getTime() / 1000; })));

  const title = h('h1', { id: 'editor-title' }, isNew ? 'New job' : 'Loading…');
  const meta = h('div', { class: 'job-meta muted small', id: 'job-meta' });
  const formError = h('div', { class: 'alert', id: 'form-error', role: 'alert', hidden: true });
  const saveButton = h('button', { type: 'submit', class: 'button primary', id: 'save-job', title: 'Save (Ctrl/⌘ S)' }, isNew ? 'Create job' : 'Save');
  const runNowButton = isNew ? null : h('button', { type: 'button', class: 'button', id: 'run-now', onclick: runNow }, 'Run now');
  const deleteButton = isNew ? null : h('button', { type: 'button', class: 'button danger', id: 'delete-job', onclick: remove }, 'Delete');
  const dirtyMark = h('span', { class: 'dirty-mark', hidden: true }, '● unsaved');
  const syntaxStatus = h('p', { class: 'syntax-status ok', id: 'syntax-status', 'aria-live': 'polite' }, 'Syntax OK');

  const codeHost = h('div', { class: 'code-host' });
  const runsBody = h('tbody');
  const runsCard = isNew ? null : h('section', { class: 'card runs-card', 'aria-labelledby': 'recent-runs-title' },
    h('div', { class: 'card-head' },
      h('h2', { id: 'recent-runs-title' }, 'Recent runs'),
      h('a', { href: `#/runs?job=${encodeURIComponent(jobId)}`, class: 'button small', id: 'job-runs-link' }, 'All runs & charts →')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table runs-table compact' },
      h('thead', null, h('tr', null, ['When', 'Status', 'Duration', 'Lateness', 'Trigger'].map((t) => h('th', { scope: 'col' }, t)))),
      runsBody)));

  const form = h('form', { class: 'editor-grid', id: 'job-form', novalidate: true },
    h('div', { class: 'editor-side' },
      h('section', { class: 'card', 'aria-labelledby': 'job-card-title' },
        h('h2', { id: 'job-card-title' }, 'Job'),
        field('job-name', 'Name', name),
        field('job-description', 'Description', description),
        h('fieldset', { class: 'segmented' },
          h('legend', null, 'Type'),
          h('label', { for: 'type-timing' }, typeTiming, h('span', null, 'Timing (cron)')),
          h('label', { for: 'type-delay' }, typeDelay, h('span', null, 'Delay (once)'))),
        h('div', { class: 'field switch-field' }, enabledSwitch,
          h('label', { for: 'job-enabled' }, isNew ? 'Enabled: schedule it as soon as it is created' : 'Enabled (scheduled)'))),
      h('section', { class: 'card', 'aria-labelledby': 'schedule-title' },
        h('h2', { id: 'schedule-title' }, 'Schedule'),
        timingSection,
        delaySection,
        field('job-timezone', 'Time zone (IANA)', timezone, h('p', { class: 'hint' }, 'The zone the cron expression is read in; empty for the server’s.'))),
      h('section', { class: 'card', 'aria-labelledby': 'limits-title' },
        h('h2', { id: 'limits-title' }, 'Limits & policies'),
        h('div', { class: 'field-grid' },
          field('job-timeout', 'Timeout (s)', timeout),
          field('job-memory', 'Memory (MiB)', memory),
          field('job-retries', 'Retries', retries),
          field('job-grace', 'Misfire grace (s)', grace)),
        field('job-overlap', 'Overlap: a fire while the last run goes on', overlap),
        field('job-misfire', 'Misfire: fires missed while down', misfire))),
    h('div', { class: 'editor-main' },
      h('section', { class: 'card script-card', 'aria-labelledby': 'script-title' },
        h('div', { class: 'card-head' },
          h('h2', { id: 'script-title' }, 'Script'),
          h('span', { class: 'muted small' }, 'JavaScript · Ctrl/⌘ Enter runs it below')),
        codeHost,
        syntaxStatus)));

  root.append(zoneList(), h('section', { class: 'page editor-page' },
    h('header', { class: 'page-head' },
      h('div', null,
        h('a', { href: '#/jobs', class: 'back' }, '← Jobs'),
        title,
        meta),
      h('div', { class: 'actions' }, dirtyMark, runNowButton, deleteButton, h('button', {
        type: 'submit', form: 'job-form', class: 'button primary', id: 'save-job-top', title: 'Save (Ctrl/⌘ S)',
      }, isNew ? 'Create job' : 'Save'))),
    formError,
    form,
    runsCard));
  // The footer save button sits in the form (the last thing of the form for keyboard users).
  form.querySelector('.editor-side').append(h('div', { class: 'form-actions' }, saveButton));

  const editor = createCodeEditor(codeHost, {
    doc: isNew ? DEFAULT_SCRIPT : '',
    label: 'Job script',
    onChange: () => markDirty(),
    onRun: () => debug.run(),
    onSave: () => save(),
    onSyntax: (err) => {
      syntaxStatus.className = `syntax-status ${err ? 'bad' : 'ok'}`;
      syntaxStatus.textContent = err ? `Syntax error, line ${err.line}, column ${err.column}: ${err.message}` : 'Syntax OK';
    },
  });
  const debug = debugConsole({ getScript: () => editor.getValue(), getJobId: () => jobId });
  form.querySelector('.editor-main').append(debug.el);

  // ---------------------------------------------------------------- behaviour
  function markDirty() {
    if (!dirty) { dirty = true; dirtyMark.hidden = false; }
  }
  function markClean() {
    dirty = false;
    dirtyMark.hidden = true;
  }

  function isTiming() {
    return typeTiming.checked;
  }

  function showType() {
    timingSection.hidden = !isTiming();
    delaySection.hidden = isTiming();
    if (isNew) title.textContent = isTiming() ? 'New timing job' : 'New delay job';
    if (isTiming()) runPreview(); else execHint();
  }

  form.addEventListener('input', markDirty);
  form.addEventListener('change', markDirty);
  typeTiming.addEventListener('change', showType);
  typeDelay.addEventListener('change', showType);
  form.addEventListener('submit', (e) => { e.preventDefault(); save(); });
  const top = root.querySelector('#save-job-top');
  top.addEventListener('click', (e) => { e.preventDefault(); save(); });
  // Ctrl/⌘ S and Ctrl/⌘ Enter anywhere on the page (inside the code editor its own keymap handles them).
  const onKey = (e) => {
    if (e.defaultPrevented || !(e.ctrlKey || e.metaKey) || document.querySelector('dialog[open]')) return;
    if (e.key.toLowerCase() === 's') { e.preventDefault(); save(); }
    if (e.key === 'Enter') { e.preventDefault(); debug.run(); }
  };
  document.addEventListener('keydown', onKey);

  // Cron preview: debounced, and only the newest answer is shown.
  let previewSeq = 0;
  const runPreview = async () => {
    const seq = ++previewSeq;
    const expr = cron.value.trim();
    if (!expr) {
      setFieldError('job-cron', 'a timing job needs a cron expression');
      cronPreview.hidden = true;
      return;
    }
    cronPreview.classList.add('pending');
    try {
      const body = await api('/api/v1/cron/preview', {
        method: 'POST', signal, body: { cron: expr, timezone: timezone.value.trim() || null, count: 5 },
      });
      if (seq !== previewSeq) return;
      const data = body.data;
      setFieldError('job-cron', null);
      setFieldError('job-timezone', null);
      cronPreview.hidden = false;
      cronDesc.textContent = data.description;
      cronZone.textContent = `Next fires, in ${data.timezone}:`;
      replace(cronNext, data.next.length
        ? data.next.map((at) => h('li', null, h('time', { datetime: at }, fmtTime(at, data.timezone)), h('span', { class: 'muted' }, ` · ${fmtRelative(at)}`)))
        : h('li', { class: 'muted' }, 'never fires'));
    } catch (err) {
      if (err.name === 'AbortError' || seq !== previewSeq) return;
      const message = errorText(err);
      cronPreview.hidden = true;
      if (err instanceof ApiError && err.field === 'timezone') {
        setFieldError('job-timezone', message);
        // The time zone is wrong; the expression itself may be fine: check it alone.
        try {
          await api('/api/v1/cron/preview', { method: 'POST', signal, body: { cron: expr, count: 1 } });
          if (seq === previewSeq) setFieldError('job-cron', null);
        } catch (again) {
          if (again.name !== 'AbortError' && seq === previewSeq) setFieldError('job-cron', errorText(again));
        }
      } else {
        setFieldError('job-timezone', null);
        setFieldError('job-cron', message);
      }
    } finally {
      if (seq === previewSeq) cronPreview.classList.remove('pending');
    }
  };
  const preview = debounce(runPreview, 300);
  cron.addEventListener('input', preview);
  timezone.addEventListener('input', () => { if (isTiming()) preview(); else execHint(); });

  function execHint() {
    const seconds = fromLocalInput(execAt.value);
    if (seconds === null) {
      execAtHint.textContent = 'Pick a date and time.';
      return;
    }
    const zone = timezone.value.trim();
    const inZone = zone ? ` · ${fmtTime(seconds * 1000, zone)}` : '';
    execAtHint.textContent = `Unix ${seconds} · ${new Date(seconds * 1000).toISOString().replace('.000', '')}${inZone} · ${fmtRelative(seconds * 1000)}`;
    const ahead = seconds - Date.now() / 1000;
    setFieldError('job-exec-at', ahead < 5 && enabled.checked ? 'must be at least 5 seconds in the future to be scheduled' : null);
  }
  execAt.addEventListener('input', execHint);
  enabled.addEventListener('change', () => { if (!isTiming()) execHint(); });

  function setFieldError(id, message) {
    const box = root.querySelector(`#${id}-error`);
    const input = root.querySelector(`#${id}`);
    if (!box) return;
    box.hidden = !message;
    box.textContent = message || '';
    if (input) {
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  const FIELD_IDS = {
    cron: 'job-cron', execAt: 'job-exec-at', timezone: 'job-timezone', timeout: 'job-timeout', memoryLimit: 'job-memory',
    retries: 'job-retries', name: 'job-name', description: 'job-description', misfireGrace: 'job-grace',
    overlap: 'job-overlap', misfire: 'job-misfire',
  };

  function showError(err) {
    const message = errorText(err);
    const id = err instanceof ApiError ? FIELD_IDS[err.field] : null;
    if (id) {
      setFieldError(id, message);
      root.querySelector(`#${id}`)?.focus();
    }
    formError.hidden = false;
    replace(formError, h('strong', null, 'Not saved: '), message);
  }

  function collect() {
    const body = {
      name: name.value.trim(),
      description: description.value,
      execType: isTiming() ? 0 : 1,
      script: editor.getValue(),
      timezone: timezone.value.trim() || null,
      timeout: numberOrNull(timeout),
      memoryLimit: numberOrNull(memory),
      retries: numberOrNull(retries) ?? 0,
      overlap: overlap.value,
      misfire: misfire.value,
      misfireGrace: numberOrNull(grace),
    };
    if (isTiming()) body.cron = cron.value.trim();
    else body.execAt = fromLocalInput(execAt.value);
    return body;
  }

  /** Only what differs from the saved job: an unchanged past execAt must not be re-validated. */
  function changedFields(body) {
    const patch = {};
    for (const [key, value] of Object.entries(body)) {
      if ((value ?? null) !== (job[key] ?? null)) patch[key] = value;
    }
    if ('execType' in patch) {
      if (body.execType === 0) patch.cron = body.cron;
      else patch.execAt = body.execAt;
    }
    return patch;
  }

  async function save() {
    if (saving) return;
    formError.hidden = true;
    const body = collect();
    if (body.execType === 0 && !body.cron) { showError(new ApiError(400, 'cron: a timing job needs a cron expression')); return; }
    if (body.execType === 1 && body.execAt === null) { showError(new ApiError(400, 'execAt: pick when the job runs')); return; }
    saving = true;
    saveButton.disabled = top.disabled = true;
    try {
      if (isNew) {
        const created = await api('/api/v1/jobs', { method: 'POST', body: { ...body, enabled: enabled.checked }, signal });
        markClean();
        toast(`Created “${created.data.name || 'job'}”${enabled.checked ? ', scheduled' : ''}`, 'ok');
        navigate(`#/jobs/${encodeURIComponent(created.data.jobId)}`, { replace: true });
        return;
      }
      const path = `/api/v1/jobs/${encodeURIComponent(jobId)}`;
      const patch = changedFields(body);
      if (!enabled.checked && job.state === 1) await api(`${path}/disable`, { method: 'POST', signal });
      let result = { data: job };
      if (Object.keys(patch).length) result = await api(path, { method: 'PATCH', body: patch, signal });
      if (enabled.checked && result.data.state !== 1) result = await api(`${path}/enable`, { method: 'POST', signal });
      fill(result.data, { keepScript: true });
      markClean();
      toast('Saved', 'ok');
    } catch (err) {
      if (err.name === 'AbortError') return;
      showError(err);
      if (!isNew) refreshMeta();
    } finally {
      saving = false;
      saveButton.disabled = top.disabled = false;
    }
  }

  function fill(data, { keepScript = false } = {}) {
    job = data;
    rememberJobName(data.jobId, data.name);
    const label = data.name || '(unnamed)';
    title.textContent = label;
    setTitle(label);
    name.value = data.name || '';
    description.value = data.description || '';
    typeTiming.checked = data.execType === 0;
    typeDelay.checked = data.execType === 1;
    enabled.checked = data.state === 1;
    if (data.cron) cron.value = data.cron;
    execAt.value = toLocalInput(data.execAt);
    timezone.value = data.timezone || '';
    timeout.value = data.timeout ?? '';
    memory.value = data.memoryLimit ?? '';
    retries.value = data.retries ?? 0;
    overlap.value = data.overlap || 'allow';
    misfire.value = data.misfire || 'once';
    grace.value = data.misfireGrace ?? '';
    if (!keepScript && typeof data.script === 'string') editor.setValue(data.script);
    renderMeta();
    showType();
  }

  function renderMeta() {
    if (!job) return;
    replace(meta,
      h('span', { class: `badge ${job.state === 1 ? 'status-ok' : 'status-idle'}`, id: 'job-state' }, job.state === 1 ? 'enabled' : 'stopped'),
      ' ', h('span', null, 'next fire: '), job.nextExecTime ? timeEl(job.nextExecTime, { timeZone: job.timezone }) : '–',
      ' · ', h('span', null, 'last run: '), job.lastExecTime ? timeEl(job.lastExecTime) : 'never',
      ' · ', h('span', null, 'id '), h('code', { class: 'job-id' }, job.jobId));
  }

  async function refreshMeta() {
    try {
      const body = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
      job = body.data;
      if (!dirty) enabled.checked = job.state === 1;
      renderMeta();
    } catch { /* the next refresh tries again */ }
  }

  async function runNow() {
    try {
      const body = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}/trigger`, { method: 'POST', signal });
      toast('Triggered: it runs the saved script', 'ok', { href: `#/runs/${encodeURIComponent(body.data.runId)}`, text: 'See the run' });
      setTimeout(loadRuns, 1000);
    } catch (err) {
      if (err.name !== 'AbortError') toast(errorText(err), 'error');
    }
  }

  async function remove() {
    const label = job?.name || 'this job';
    const ok = await confirmDialog({
      title: `Delete “${label}”?`, message: 'The job, its schedule and its run history are deleted. This cannot be undone.',
      confirm: 'Delete', danger: true,
    });
    if (!ok) return;
    try {
      await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`, { method: 'DELETE', signal });
      markClean();
      toast(`Deleted “${label}”`, 'ok');
      navigate('#/jobs');
    } catch (err) {
      if (err.name !== 'AbortError') toast(errorText(err), 'error');
    }
  }

  async function loadRuns() {
    if (isNew || signal.aborted) return;
    try {
      const body = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}/runs`, { signal, query: { limit: 10 } });
      replace(runsBody, body.data.length ? body.data.map((run) => h('tr', null,
        h('td', { 'data-label': 'When' }, h('a', { href: `#/runs/${encodeURIComponent(run.runId)}` }, timeEl(run.startedAt || run.scheduledAt))),
        h('td', { 'data-label': 'Status' }, statusBadge(run.status)),
        h('td', { 'data-label': 'Duration' }, fmtDuration(run.durationMs)),
        h('td', { 'data-label': 'Lateness' }, fmtDuration(run.latenessMs)),
        h('td', { 'data-label': 'Trigger' }, run.trigger)))
        : h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'No runs yet.')));
      const newest = body.data[0] ? body.data[0].runId + body.data[0].status : null;
      if (newest !== lastSeenRun) {
        if (lastSeenRun !== undefined && !saving) refreshMeta();
        lastSeenRun = newest;
      }
    } catch (err) {
      if (err.name !== 'AbortError') replace(runsBody, h('tr', null, h('td', { colspan: 5, class: 'error-text' }, errorText(err))));
    }
  }

  function unmount() {
    document.removeEventListener('keydown', onKey);
    controller.abort();
    preview.cancel();
    clearInterval(runsTimer);
    debug.destroy();
    editor.destroy();
  }

  // ---------------------------------------------------------------- start
  if (isNew) {
    setTitle('New job');
    if (params.get('type') === 'delay') execAt.value = toLocalInput(Math.floor(Date.now() / 1000) + 3600);
    showType();
    name.focus();
  } else {
    api(`/api/v1/jobs/${encodeURIComponent(jobId)}`, { signal })
      .then((body) => {
        fill(body.data);
        markClean();
        loadRuns();
        runsTimer = setInterval(() => { if (!document.hidden) loadRuns(); }, 4000);
      })
      .catch((err) => {
        if (err.name === 'AbortError') return;
        title.textContent = err.status === 404 ? 'No such job' : 'Could not load the job';
        formError.hidden = false;
        replace(formError, errorText(err), ' · ', h('a', { href: '#/jobs' }, 'Back to the jobs'));
        form.hidden = true;
        if (runsCard) runsCard.hidden = true;
      });
  }
  return page;
}
