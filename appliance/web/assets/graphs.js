// The dashboard's charts: the last hour of GET /api/v1/metrics/history
// (sampled by the web service every 10 s) as small inline SVG lines, no
// chart library. Each chart says its title, current value and unit, and
// has a text alternative (role="img", aria-label with min, max and now).
// They refresh every 10 s while the dashboard is shown.

import { h, api } from './app.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 300, H = 48;
const NAMES = { web_requests: 'Web requests', dns_answers: 'DNS answers', vpn_rx: 'VPN received', vpn_tx: 'VPN sent', mail_queue: 'Mail queue', queue_depth: 'Queue depth', queue_dead: 'Dead letters', integrator_in_flight: 'Integrator in flight' };
// Charts of the node first, then CPU and memory of each service.
const ORDER = Object.keys(NAMES);
let timer = null;

function titleOf(key) {
  const [kind, svc] = key.split('/');
  if (kind === 'cpu') return `CPU ${svc}`;
  if (kind === 'rss') return `Memory ${svc}`;
  return NAMES[key] || key;
}

const rank = (key) => {
  const i = ORDER.indexOf(key);
  return i >= 0 ? `0${String(i).padStart(2, '0')}` : (key.startsWith('cpu/') ? `1${key}` : `2${key}`);
};

const num = (v) => (v >= 100 ? String(Math.round(v)) : String(Number(v.toFixed(v >= 10 ? 1 : 2))));

function fmt(v, unit) {
  if (v === null || v === undefined) return '—';
  if (unit === 'bytes' || unit === 'bytes/s') {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${num(v)} ${units[i]}${unit === 'bytes/s' ? '/s' : ''}`;
  }
  return unit === '%' ? `${num(v)} %` : `${num(v)} ${unit}`;
}

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// One chart: x spans the samples kept (at most the hour), y from 0 to
// the largest value; a gap in the values breaks the line.
function chart(times, s) {
  const title = titleOf(s.key);
  const start = times[0], end = times[times.length - 1];
  const vals = s.values.filter((v) => v !== null);
  const cur = s.values[s.values.length - 1] ?? null;
  const top = Math.max(...vals, 0) || 1;
  const x = (t) => ((t - start) / (end - start || 1)) * W;
  const y = (v) => H - 1 - (v / top) * (H - 2);
  let d = '';
  let pen = false;
  s.values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    d += `${pen ? 'L' : 'M'}${x(times[i]).toFixed(1)} ${y(v).toFixed(1)}`;
    pen = true;
  });
  const label = vals.length
    ? `${title} over the last ${Math.max(1, Math.round((end - start) / 60))} min, ${vals.length} points: now ${fmt(cur, s.unit)}, min ${fmt(Math.min(...vals), s.unit)}, max ${fmt(Math.max(...vals), s.unit)}`
    : `${title}: no points yet`;
  const pic = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label, 'data-points': vals.length });
  pic.append(svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis', 'vector-effect': 'non-scaling-stroke' }),
    svg('path', { d, class: 'line', 'vector-effect': 'non-scaling-stroke' }));
  return h('figure', { class: 'chart', 'data-key': s.key },
    h('figcaption', {}, h('div', { class: 'label' }, title), h('div', { class: 'now' }, fmt(cur, s.unit))), pic);
}

async function draw(box) {
  let hist;
  try { hist = await api('GET', '/metrics/history'); } catch (e) {
    box.replaceChildren(h('p', { class: 'muted' }, `Cannot read the history: ${e.message}`));
    return;
  }
  const series = [...hist.series].sort((a, b) => (rank(a.key) < rank(b.key) ? -1 : 1));
  box.replaceChildren(hist.times.length
    ? h('div', { class: 'charts' }, ...series.map((s) => chart(hist.times, s)))
    : h('p', { class: 'muted' }, 'No samples yet; the first comes within 10 s of the web service starting.'));
}

// The "Last hour" card; its charts redraw every 10 s until the card is
// no longer on the page.
export function graphsCard() {
  const box = h('div', { id: 'graphs' }, h('p', { class: 'muted' }, 'Loading…'));
  clearInterval(timer);
  timer = setInterval(() => {
    if (!box.isConnected) { clearInterval(timer); return; }
    if (document.visibilityState === 'visible') draw(box);
  }, 10000);
  draw(box);
  return h('div', { class: 'card' }, h('h2', {}, 'Last hour'), box);
}
