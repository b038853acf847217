// The console's Integrator page (its Services tab here; Jobs, Queues and
// KV in integrator-data.js, Packages in integrator-packages.js): the
// deployed service files, deploying one or a project zip from this
// computer (its bytes go to POST /integrator/services/FILE, as
// curl --data-binary would send them), a refused file's traceback, and each
// file's source and versions with rollback and undeploy.

import { h, api, page, toast, fail, isAdmin, when, route, table } from './app.js';
import { jobsCard, queuesCard, kvCard } from './integrator-data.js';
import { packagesCard } from './integrator-packages.js';

const enc = encodeURIComponent;

// The answer to a refused deploy: the message (each problem on its own
// line when the check found several), and the Python traceback when the
// worker gave one.
function refusal(box, e) {
  const d = e.details || {};
  const problems = d.problems || [];
  const text = problems.length > 1
    ? h('ul', { id: 'deploy-problems' }, problems.map((p) => h('li', {}, `${p.line ? `line ${p.line}: ` : ''}${p.message}`)))
    : '';
  box.replaceChildren(h('div', { class: 'problems', id: 'deploy-error' },
    h('p', {}, problems.length > 1 ? `${d.file}: ${problems.length} problems; nothing was deployed.` : e.message),
    text,
    d.traceback ? h('pre', { class: 'log', id: 'deploy-traceback' }, d.traceback) : ''));
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
    if (!file) return;
    result.replaceChildren(h('p', { class: 'muted' }, `Deploying ${file.name}…`));
    try {
      const out = await api('POST', `/integrator/services/${enc(file.name)}`, file);
      toast(`Deployed ${out.file} version ${out.version}`);
      await integratorView();
      document.getElementById('deploy-result').replaceChildren(h('p', { id: 'deploy-ok' },
        `Deployed ${out.file} version ${out.version}: ${out.services.map((s) => s.name).join(', ')}.`));
    } catch (e) { refusal(result, e); }
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
        toast(`${file}: version ${v.version} serves again`); route();
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
      result.replaceChildren(
        h('p', { id: 'invoke-status', class: out.status >= 400 ? 'problems' : '' }, `${name}: HTTP ${out.status} in ${out.ms} ms (cid ${out.cid})`),
        h('pre', { class: 'log', id: 'invoke-body' }, body));
    } catch (e) { result.replaceChildren(h('p', { class: 'problems', id: 'invoke-error' }, e.message)); }
  });
  return form;
}

const TABS = [['services', 'Services'], ['jobs', 'Jobs'], ['queues', 'Queues'], ['kv', 'KV'], ['packages', 'Packages']];

export async function integratorView() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const tab = q.get('tab') || 'services';
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, ...TABS.map(([t, label]) => h('button', {
    role: 'tab', 'aria-selected': String(t === tab), onclick: () => { location.hash = `#/integrator?tab=${t}`; } }, label)));
  if (tab === 'jobs') return page('Integrator', tabs, await jobsCard());
  if (tab === 'queues') return page('Integrator', tabs, await queuesCard());
  if (tab === 'packages') return page('Integrator', tabs, ...await packagesCard());
  if (tab === 'kv') return page('Integrator', tabs, await kvCard(q.get('ns') || 'default', q.get('prefix') || ''));
  const want = q.get('file');
  const services = await api('GET', '/integrator/services');
  const rows = services.map((s) => h('tr', { 'data-service': s.name },
    h('td', { 'data-label': 'Service' }, s.name),
    h('td', { 'data-label': 'File' }, h('a', { href: `#/integrator?file=${enc(s.file)}` }, s.file)),
    h('td', { 'data-label': 'Version' }, s.version),
    h('td', { 'data-label': 'Description' }, s.doc || '')));
  page('Integrator', tabs,
    h('div', { class: 'card' }, h('h2', {}, 'Deployed services'),
      rows.length ? table('int-services', ['Service', 'File', 'Version', 'Description'], rows)
        : h('p', { class: 'muted' }, 'Nothing deployed yet.')),
    want ? await fileCard(want).catch((e) => h('div', { class: 'card problems' }, e.message)) : '',
    isAdmin() && services.length ? h('div', { class: 'card' }, invokeForm(services)) : '',
    isAdmin() ? h('div', { class: 'card' }, deployForm()) : '');
}
