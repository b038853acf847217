// The console's Integrator page (its Services tab here; Jobs, Queues and
// KV in integrator-data.js, Packages in integrator-packages.js, Channels,
// Security and Outgoing in integrator-config.js): the deployed service
// files, deploying one or a project zip from this computer by the file
// chooser or by dropping it on the services table (its bytes go to POST
// /integrator/services/FILE, as curl --data-binary would send them), a
// refused file's traceback, each file's source and versions with rollback
// and undeploy, and the Invoke panel with the call's log lines.

import { h, api, page, toast, fail, isAdmin, when, redraw, table } from './app.js';
import { jobsCard, queuesCard, kvCard } from './integrator-data.js';
import { packagesCard } from './integrator-packages.js';
import { addCard, configCard } from './integrator-config.js';

const enc = encodeURIComponent;

// The answer to a refused deploy: the message (each problem on its own
// line when the check found several), and the Python traceback when the
// worker gave one.
function refusal(box, e, id = 'deploy') {
  const d = e.details || {};
  const problems = d.problems || [];
  const text = problems.length > 1
    ? h('ul', { id: `${id}-problems` }, problems.map((p) => h('li', {}, `${p.line ? `line ${p.line}: ` : ''}${p.message}`)))
    : '';
  box.replaceChildren(h('div', { class: 'problems', id: `${id}-error` },
    h('p', {}, problems.length > 1 ? `${d.file}: ${problems.length} problems; nothing was deployed.` : e.message),
    text,
    d.traceback ? h('pre', { class: 'log', id: `${id}-traceback` }, d.traceback) : ''));
}

// Deploys one file from this computer; says so in `box` (`id`-ok), or
// shows why not (`id`-error, `id`-traceback).
async function deployFile(file, box, id) {
  box.replaceChildren(h('p', { class: 'muted' }, `Deploying ${file.name}…`));
  try {
    const out = await api('POST', `/integrator/services/${enc(file.name)}`, file);
    toast(`Deployed ${out.file} version ${out.version}`);
    await integratorView();
    document.getElementById(`${id}-result`).replaceChildren(h('p', { id: `${id}-ok` },
      `Deployed ${out.file} version ${out.version}: ${out.services.map((s) => s.name).join(', ')}.`));
  } catch (e) { refusal(box, e, id); }
}

// The services card takes a .py or .zip dropped on it (the file chooser
// below does the same from the keyboard).
function dropZone(card) {
  const box = h('div', { id: 'drop-result', role: 'status', 'aria-live': 'polite' });
  card.append(h('p', { class: 'muted' }, 'Drop a .py or .zip file here to deploy it.'), box);
  card.addEventListener('dragover', (ev) => { ev.preventDefault(); card.classList.add('dropping'); });
  card.addEventListener('dragleave', () => card.classList.remove('dropping'));
  card.addEventListener('drop', (ev) => {
    ev.preventDefault();
    card.classList.remove('dropping');
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (file) deployFile(file, box, 'drop');
  });
  return card;
}

function deployForm() {
  const result = h('div', { id: 'deploy-result', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { id: 'deploy-form' }, h('h2', {}, 'Deploy a service file'),
    h('p', { class: 'muted' }, 'A .py file as for Zato, or a .zip of a project (services with their helper modules and packages, deployed as one unit). It is loaded in a fresh worker first; if that fails, the version serving now keeps serving.'),
    h('div', { class: 'grid' },
      h('div', {}, h('label', { for: 'deploy-file' }, 'File'), h('input', { id: 'deploy-file', type: 'file', accept: '.py,.zip,text/x-python', required: true }))),
    h('div', { class: 'row' }, h('button', {}, 'Deploy')), result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = form.querySelector('#deploy-file').files[0];
    if (file) await deployFile(file, result, 'deploy');
  });
  return form;
}

// One file: its versions (rollback to any), its source, undeploy.
async function fileCard(file) {
  const [versions, src] = await Promise.all([
    api('GET', `/integrator/services/${enc(file)}/versions`),
    api('GET', `/integrator/services/${enc(file)}`),
  ]);
  const rows = versions.map((v) => h('tr', { 'data-version': v.version },
    h('td', { 'data-label': 'Version' }, v.version, v.active ? h('strong', {}, ' (serving)') : ''),
    h('td', { 'data-label': 'Deployed' }, when(v.deployed_at)),
    h('td', { 'data-label': 'By' }, v.actor),
    h('td', { 'data-label': 'Services' }, v.services.map((s) => s.name).join(', ')),
    h('td', {}, isAdmin() && !v.active ? h('button', { class: 'secondary', onclick: async () => {
      try {
        await api('POST', `/integrator/services/${enc(file)}/rollback`, { version: v.version });
        toast(`${file}: version ${v.version} serves again`); redraw();
      } catch (e) { fail(e); }
    } }, `Roll back to ${v.version}`) : '')));
  return h('div', { class: 'card', id: 'file-card' },
    h('h2', {}, `${file}`),
    table('file-versions', ['Version', 'Deployed', 'By', 'Services', ''], rows),
    h('h3', {}, `Source of version ${src.version}`),
    h('pre', { class: 'log', id: 'file-source' }, src.source),
    isAdmin() ? h('div', { class: 'row' }, h('button', { class: 'danger', id: 'undeploy', onclick: async () => {
      if (!confirm(`Stop serving ${file}? Its versions are kept.`)) return;
      try { await api('DELETE', `/integrator/services/${enc(file)}`); toast(`${file} no longer serves`); location.hash = '#/integrator'; } catch (e) { fail(e); }
    } }, `Undeploy ${file}`)) : '');
}

// Runs a deployed service once with a JSON payload and shows what a
// channel would have answered, and how long it took.
function invokeForm(services) {
  const result = h('div', { id: 'invoke-result', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { id: 'invoke-form' }, h('h2', {}, 'Invoke a service'),
    h('div', { class: 'grid' },
      h('div', {}, h('label', { for: 'invoke-service' }, 'Service'),
        h('select', { id: 'invoke-service' }, ...services.map((s) => h('option', { value: s.name }, s.name)))),
      h('div', {}, h('label', { for: 'invoke-payload' }, 'Payload (JSON)'),
        h('textarea', { id: 'invoke-payload', rows: 4, class: 'mono', spellcheck: 'false', placeholder: '{"user": "ann"}' }))),
    h('div', { class: 'row' }, h('button', {}, 'Invoke')), result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = form.querySelector('#invoke-payload').value.trim();
    let payload = null;
    try { payload = text ? JSON.parse(text) : null; } catch (e) {
      result.replaceChildren(h('p', { class: 'problems', id: 'invoke-error' }, `The payload is not JSON: ${e.message}`));
      return;
    }
    const name = form.querySelector('#invoke-service').value;
    try {
      const out = await api('POST', `/integrator/invoke/${enc(name)}`, payload);
      const body = typeof out.body === 'string' ? out.body : JSON.stringify(out.body, null, 2);
      const logs = out.logs || [];
      result.replaceChildren(
        h('p', { id: 'invoke-status', class: out.status >= 400 ? 'problems' : '' }, `${name}: HTTP ${out.status} in ${out.ms} ms (cid ${out.cid})`),
        h('div', { class: 'grid' },
          h('div', {}, h('h3', {}, 'Response'), h('pre', { class: 'log', id: 'invoke-body' }, body)),
          h('div', {}, h('h3', {}, 'Log lines of this call'), logs.length
            ? h('pre', { class: 'log', id: 'invoke-logs' }, logs.join('\n'))
            : h('p', { class: 'muted', id: 'invoke-logs' }, 'The service logged and printed nothing.'))));
    } catch (e) { result.replaceChildren(h('p', { class: 'problems', id: 'invoke-error' }, e.message)); }
  });
  return form;
}

// A service's latest call times as a small SVG line, with the counts
// and times as its text (and a screen reader's) alternative.
function spark(st) {
  if (!st || !st.calls) return h('span', { class: 'muted' }, 'no calls');
  const v = st.recent_ms || [];
  const max = Math.max(...v, 0.001);
  const W = 90, H = 20;
  const pts = v.map((x, i) => `${v.length > 1 ? (i * W) / (v.length - 1) : W / 2},${(H - 1 - (x / max) * (H - 2)).toFixed(1)}`).join(' ');
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.setAttribute('width', W); svg.setAttribute('height', H);
  svg.setAttribute('aria-hidden', 'true');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts); line.setAttribute('fill', 'none');
  line.setAttribute('stroke', 'currentColor'); line.setAttribute('stroke-width', '1.5');
  svg.append(line);
  const n = (k, one) => `${k} ${one}${k === 1 ? '' : 's'}`;
  const text = `${n(st.calls, 'call')}, ${n(st.errors, 'error')}, mean ${st.mean_ms} ms, p99 ${st.p99_ms} ms`;
  return h('span', { class: 'spark', title: `${text}; the line: the last ${v.length} calls' times (highest ${max} ms)` },
    svg, h('span', { class: 'muted' }, ` ${text}`));
}

const TABS = [['services', 'Services'], ['channels', 'Channels'], ['security', 'Security'], ['outgoing', 'Outgoing'],
  ['jobs', 'Jobs'], ['queues', 'Queues'], ['kv', 'KV'], ['packages', 'Packages']];

export async function integratorView() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const tab = q.get('tab') || 'services';
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, ...TABS.map(([t, label]) => h('button', {
    role: 'tab', 'aria-selected': String(t === tab), onclick: () => { location.hash = `#/integrator?tab=${t}`; } }, label)));
  if (['channels', 'security'].includes(tab)) return page('Integrator', tabs, await configCard(tab));
  if (tab === 'outgoing') {
    return page('Integrator', tabs, ...await Promise.all(['outgoing', 'outgoing_sql', 'outgoing_smtp'].map(configCard)));
  }
  if (tab === 'jobs') return page('Integrator', tabs, await jobsCard(), isAdmin() ? await addCard('jobs') : '');
  if (tab === 'queues') return page('Integrator', tabs, await queuesCard());
  if (tab === 'packages') return page('Integrator', tabs, ...await packagesCard());
  if (tab === 'kv') return page('Integrator', tabs, await kvCard(q.get('ns') || 'default', q.get('prefix') || ''));
  const want = q.get('file');
  const [services, stats] = await Promise.all([api('GET', '/integrator/services'), api('GET', '/integrator/stats').catch(() => [])]);
  const statOf = Object.fromEntries(stats.map((x) => [x.service, x]));
  const rows = services.map((s) => h('tr', { 'data-service': s.name },
    h('td', { 'data-label': 'Service' }, s.name, ' ',
      h('a', { href: `#/logs?service=integrator&filter=${enc(s.name)}`, 'aria-label': `logs of ${s.name}` }, 'logs')),
    h('td', { 'data-label': 'File' }, h('a', { href: `#/integrator?file=${enc(s.file)}` }, s.file)),
    h('td', { 'data-label': 'Version' }, s.version),
    h('td', { 'data-label': 'Description' }, s.doc || ''),
    h('td', { 'data-label': 'Calls' }, spark(statOf[s.name]))));
  page('Integrator', tabs,
    (isAdmin() ? dropZone : (c) => c)(h('div', { class: 'card', id: 'services-card' }, h('h2', {}, 'Deployed services'),
      rows.length ? table('int-services', ['Service', 'File', 'Version', 'Description', 'Calls'], rows)
        : h('p', { class: 'muted' }, 'Nothing deployed yet.'))),
    want ? await fileCard(want).catch((e) => h('div', { class: 'card problems' }, e.message)) : '',
    isAdmin() && services.length ? h('div', { class: 'card' }, invokeForm(services)) : '',
    isAdmin() ? h('div', { class: 'card' }, deployForm()) : '');
}
