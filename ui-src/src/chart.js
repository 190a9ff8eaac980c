// Hand-written SVG charts: runs and failures over time (stacked bars) and run
// durations (dots). Colours come from CSS classes, so both themes apply.

import { h, s, toMs, fmtDuration, FAILED } from './dom.js';

/** Default width; callers pass the width of their box so text keeps its size. */
const DEFAULT_W = 640;
const H = 170;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

function niceMax(value) {
  if (value <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * exp >= value) return step * exp;
  return 10 * exp;
}

/** 2, 4, 10, 20, 40, 100, …: a top whose half is a whole number, for counts. */
function niceCount(value) {
  let top = 2;
  const steps = [2, 2.5, 2];
  for (let i = 0; top < value; i++) top *= steps[i % 3];
  return top;
}

function timeLabel(ms, span) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  if (span > 2 * 86400000) return `${d.getMonth() + 1}/${d.getDate()} ${pad(d.getHours())}h`;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function frame(W, ariaLabel, yMax, yFormat, from, to) {
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': ariaLabel, preserveAspectRatio: 'xMidYMid meet',
  });
  const plotH = H - PAD.top - PAD.bottom;
  for (const frac of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - frac);
    svg.append(
      s('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'chart-grid' }),
      s('text', { x: PAD.left - 6, y: y + 4, class: 'chart-label', 'text-anchor': 'end' }, yFormat(yMax * frac)),
    );
  }
  const span = to - from;
  for (const frac of [0, 0.5, 1]) {
    const x = PAD.left + (W - PAD.left - PAD.right) * frac;
    const anchor = frac === 0 ? 'start' : frac === 1 ? 'end' : 'middle';
    svg.append(s('text', { x, y: H - 6, class: 'chart-label', 'text-anchor': anchor }, timeLabel(from + span * frac, span)));
  }
  return svg;
}

function runTime(run) {
  return toMs(run.startedAt) ?? toMs(run.scheduledAt);
}

/** Stacked bars of runs per time bucket: succeeded, failed, other (skipped, missed, running). */
export function runsOverTime(runs, from, to, { buckets = 40, width = DEFAULT_W } = {}) {
  const W = Math.max(280, Math.round(width));
  const size = (to - from) / buckets;
  const counts = Array.from({ length: buckets }, () => ({ ok: 0, bad: 0, other: 0 }));
  for (const run of runs) {
    const at = runTime(run);
    if (at === null || at < from || at > to) continue;
    const slot = counts[Math.min(buckets - 1, Math.floor((at - from) / size))];
    if (run.status === 'success') slot.ok += 1;
    else if (FAILED.has(run.status)) slot.bad += 1;
    else slot.other += 1;
  }
  const max = niceCount(Math.max(...counts.map((c) => c.ok + c.bad + c.other)));
  const total = counts.reduce((sum, c) => sum + c.ok + c.bad + c.other, 0);
  const failed = counts.reduce((sum, c) => sum + c.bad, 0);
  const svg = frame(W, `Runs over time: ${total} runs, ${failed} failed`, max, (v) => String(Math.round(v)), from, to);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const barW = plotW / buckets;
  counts.forEach((c, i) => {
    const x = PAD.left + i * barW + barW * 0.12;
    let y = PAD.top + plotH;
    const label = `${timeLabel(from + i * size, to - from)}: ${c.ok} succeeded, ${c.bad} failed, ${c.other} other`;
    const group = s('g', null, s('title', null, label));
    for (const [key, cls] of [['ok', 'bar-ok'], ['bad', 'bar-bad'], ['other', 'bar-other']]) {
      if (!c[key]) continue;
      const barH = (c[key] / max) * plotH;
      y -= barH;
      group.append(s('rect', { x, y, width: Math.max(1, barW * 0.76), height: barH, class: cls }));
    }
    svg.append(group);
  });
  return svg;
}

/** One dot per finished run: x its start, y its duration. */
export function durations(runs, from, to, { width = DEFAULT_W } = {}) {
  const W = Math.max(280, Math.round(width));
  const points = runs
    .map((run) => ({ at: runTime(run), ms: run.durationMs, status: run.status }))
    .filter((p) => p.at !== null && p.ms !== null && p.ms !== undefined && p.at >= from && p.at <= to);
  const max = niceMax(Math.max(10, ...points.map((p) => p.ms)));
  const svg = frame(W, `Durations of ${points.length} runs, longest ${fmtDuration(Math.max(0, ...points.map((p) => p.ms)))}`,
    max, fmtDuration, from, to);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  for (const p of points) {
    const cx = PAD.left + ((p.at - from) / (to - from)) * plotW;
    const cy = PAD.top + plotH * (1 - p.ms / max);
    const cls = p.status === 'success' ? 'dot-ok' : FAILED.has(p.status) ? 'dot-bad' : 'dot-other';
    svg.append(s('circle', { cx, cy, r: 3, class: cls }, s('title', null, `${fmtDuration(p.ms)} (${p.status})`)));
  }
  return svg;
}

export function legend(items) {
  return h('ul', { class: 'legend' }, items.map(([cls, text]) => h('li', null, h('span', { class: `swatch ${cls}` }), text)));
}
