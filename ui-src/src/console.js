// The debug console: runs the editor's current text (saved or not) through
// WS /api/v1/debug and shows each console line as it arrives, then the status.

import { h, replace, fmtDuration, statusBadge } from './dom.js';
import { wsUrl, requestToken, WS_UNAUTHORIZED } from './api.js';

const MAX_LINES = 5000;

export function debugConsole({ getScript, getJobId }) {
  let socket = null;
  let started = 0;
  let lineCount = 0;
  let finished = false;

  const output = h('ol', { class: 'console', id: 'debug-output', role: 'log', 'aria-live': 'polite', 'aria-label': 'Debug console output' });
  const status = h('div', { class: 'console-status', id: 'debug-status', 'aria-live': 'polite' });
  const runButton = h('button', { type: 'button', class: 'button primary', id: 'debug-run', title: 'Run the script as it is in the editor (Ctrl/⌘ Enter)', onclick: () => run() }, '▶ Run script');
  const stopButton = h('button', { type: 'button', class: 'button', id: 'debug-stop', disabled: true, onclick: () => stop() }, '■ Stop');
  const clearButton = h('button', { type: 'button', class: 'button', onclick: () => clear() }, 'Clear');

  const placeholder = () => h('li', { class: 'console-empty' },
    'Run the script as it is in the editor, saved or not: its console appears here live. Nothing is stored and the schedule is untouched.');

  const el = h('section', { class: 'card debug-card', 'aria-labelledby': 'debug-title' },
    h('div', { class: 'card-head' },
      h('h2', { id: 'debug-title' }, 'Debug console'),
      h('div', { class: 'actions' }, runButton, stopButton, clearButton)),
    output,
    status);

  function clear() {
    replace(output, placeholder());
    lineCount = 0;
  }

  function setRunning(running) {
    runButton.disabled = running;
    stopButton.disabled = !running;
  }

  function addLine(frame) {
    if (lineCount === 0) output.replaceChildren();
    lineCount += 1;
    if (lineCount > MAX_LINES) {
      if (lineCount === MAX_LINES + 1) output.append(h('li', { class: 'line lvl-warn' }, `… more than ${MAX_LINES} lines: the rest is not shown`));
      return;
    }
    const level = ['log', 'info', 'warn', 'error', 'debug'].includes(frame.level) ? frame.level : 'log';
    const offset = typeof frame.ts === 'number' && started ? `+${fmtDuration(Math.max(0, frame.ts - started))}` : '';
    output.append(h('li', { class: `line lvl-${level}` },
      h('span', { class: 'ts' }, offset),
      h('span', { class: 'lvl' }, level),
      h('span', { class: 'msg' }, String(frame.text ?? ''))));
    output.scrollTop = output.scrollHeight;
  }

  function showStatus(frame) {
    finished = true;
    replace(status,
      statusBadge(frame.status),
      h('span', { class: 'muted' }, ` in ${fmtDuration(frame.durationMs)}`),
      typeof frame.lines === 'number' ? h('span', { class: 'muted' }, ` · ${frame.lines} line${frame.lines === 1 ? '' : 's'}`) : null,
      frame.error ? h('pre', { class: 'error-text' }, frame.error) : null);
  }

  function run(retried = false) {
    stop();
    clear();
    finished = false;
    started = Date.now();
    setRunning(true);
    replace(status, h('span', { class: 'badge status status-live' }, 'running'), h('span', { class: 'muted' }, ' connecting…'));
    const ws = new WebSocket(wsUrl('/api/v1/debug'));
    socket = ws;
    ws.addEventListener('open', () => {
      const message = { script: getScript() };
      const jobId = getJobId();
      if (jobId) message.jobId = jobId;
      ws.send(JSON.stringify(message));
      started = Date.now();
      replace(status, h('span', { class: 'badge status status-live' }, 'running'), h('span', { class: 'muted' }, ' …'));
    });
    ws.addEventListener('message', (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { frame = { type: 'line', level: 'log', text: String(event.data) }; }
      if (frame.type === 'line') addLine(frame);
      else if (frame.type === 'status') showStatus(frame);
    });
    ws.addEventListener('close', async (event) => {
      if (socket !== ws) return;
      socket = null;
      setRunning(false);
      if (finished) return;
      if (event.code === WS_UNAUTHORIZED && !retried) {
        const given = await requestToken('The debug console needs an API token.');
        if (given) { run(true); return; }
      }
      const reason = event.reason || (event.code === 1006 ? 'the connection was lost' : 'no status received');
      replace(status, h('span', { class: 'badge status status-bad' }, 'disconnected'),
        h('span', { class: 'error-text' }, ` ${reason} (code ${event.code})`));
    });
  }

  function stop() {
    if (!socket) return;
    const ws = socket;
    socket = null;
    setRunning(false);
    if (!finished) replace(status, h('span', { class: 'badge status status-idle' }, 'stopped'), h('span', { class: 'muted' }, ' by you'));
    finished = true;
    try { ws.close(1000, 'stopped'); } catch { /* already closed */ }
  }

  clear();
  return { el, run, stop, destroy: stop };
}
