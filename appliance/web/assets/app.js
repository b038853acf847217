// ALPHA-REN admin console: a pure client of /api/v1/. No framework, no
// build step. DOM is built with h() (text is always textContent, never
// HTML), so nothing from the node can inject markup. Pages that would make
// this file too long live in their own modules (integrator.js), which
// import the helpers exported here (integrator.js, dns.js, mail.js, pgha.js,
// net.js, update.js, reaction.js, vpn.js, cluster.js).

import { integratorView } from './integrator.js';
import { dnsView } from './dns.js';
import { mailView } from './mail.js';
import { pghaView } from './pgha.js';
import { reactionView } from './reaction.js';
import { netView } from './net.js';
import { vpnView } from './vpn.js';
import { clusterView } from './cluster.js';
import { rowsOf, rowEditor, markCell, resolve } from './rows.js';
import { updateView } from './update.js';
import { graphsCard } from './graphs.js';

const $main = document.getElementById('main');
let me = null;            // {user, role}
let skew = 0;             // server clock minus ours, seconds
let pendingTimer = null;
let statusTimer = null;
let logSource = null;

export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

// A table whose rows stack into label/value pairs on a phone; `td` gives
// a cell the label it shows there.
export function table(id, heads, rows) {
  return h('div', { class: 'table-wrap' }, h('table', { id, class: 'stack' },
    h('thead', {}, h('tr', {}, ...heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)));
}
export const td = (label, ...kids) => h('td', { 'data-label': label }, ...kids);

export function cookie(name) {
  const m = document.cookie.split('; ').find((c) => c.startsWith(name + '='));
  return m ? m.slice(name.length + 1) : '';
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status; this.code = body.code; this.details = body.details;
  }
}

// Whether a request may go again when its connection failed before an
// answer: what repeating changes nothing (reads, PUT, DELETE), and a
// login (a second session is harmless), as browsers repeat idempotent
// requests on a reset connection.
function retryable(method, path) {
  return ['GET', 'HEAD', 'PUT', 'DELETE'].includes(method) || (method === 'POST' && path === '/session');
}

// fetch, tried once more after 0.5 s when the connection failed (a
// TypeError, no answer) and `again` allows it.
async function fetchOnce(url, opts, again) {
  try { return await fetch(url, opts); } catch (e) {
    if (!again || !(e instanceof TypeError)) throw e;
    await new Promise((ok) => setTimeout(ok, 500));
    return fetch(url, opts);
  }
}

export async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body instanceof Blob) {
    // A file as it is (a service file for the integrator).
    opts.headers['content-type'] = body.type || 'application/octet-stream';
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (!['GET', 'HEAD'].includes(method)) {
    opts.headers['x-csrf-token'] = cookie('alpharen_csrf');
    navsAtChange = navs;
  }
  const r = await fetchOnce('/api/v1' + path, opts, retryable(method, path));
  const date = r.headers.get('date');
  if (date) skew = Math.round((Date.parse(date) - Date.now()) / 1000);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!r.ok) {
    if (r.status === 401 && me && path !== '/session') { me = null; go('#/login'); }
    throw new ApiError(r.status, data || {});
  }
  return data;
}

export function toast(msg, bad = false) {
  const t = document.getElementById('toast');
  t.textContent = msg; t.className = 'toast' + (bad ? ' bad' : ''); t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
}

export const fail = (e) => toast(e.message, true);
// Puts each problem the node reports under its field: `fieldOf(path)`
// names the field's id (its message goes in `#ID-error`), the rest go in
// `box` with their paths.
export function showProblems(form, box, e, fieldOf) {
  for (const el of form.querySelectorAll('.error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const rest = [];
  for (const p of (Array.isArray(e.details) ? e.details : [])) {
    const id = fieldOf(p.path || '');
    const input = id && form.querySelector(`#${id}`);
    if (input) {
      form.querySelector(`#${id}-error`).textContent = p.message;
      input.setAttribute('aria-invalid', 'true');
    } else rest.push(`${p.path}: ${p.message}`);
  }
  box.textContent = rest.length ? rest.join('; ') : (Array.isArray(e.details) && e.details.length ? '' : e.message);
}
export const isAdmin = () => me && me.role === 'admin';
// Approve, deny, start, retry and skip on the reaction engine.
export const canOperate = () => me && (me.role === 'admin' || me.role === 'operator');
export const ago = (secs) => {
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
};
export const when = (unix) => new Date(unix * 1000).toLocaleString();
const now = () => Date.now() / 1000 + skew;

function go(hash) { if (location.hash !== hash) location.hash = hash; else route(); }

export function page(title, ...kids) {
  $main.replaceChildren(h('h1', {}, title), ...kids);
  document.title = `${title} · ALPHA-REN`;
  $main.focus();
}

// ------------------------------------------------------------ pending banner

function showPending(p) {
  const el = document.getElementById('pending');
  clearInterval(pendingTimer);
  if (!p || !me) { el.hidden = true; return; }
  const msg = h('span', {});
  const tick = () => {
    const left = Math.max(0, Math.round(p.deadline - now()));
    msg.replaceChildren(h('strong', {}, 'Unconfirmed change: '),
      `revision ${p.revision} reverts to ${p.fallback} in `, h('strong', { id: 'countdown' }, `${left} s`),
      ' unless you confirm it.');
    if (left <= 0) { clearInterval(pendingTimer); setTimeout(refreshStatus, 1500); }
  };
  tick();
  pendingTimer = setInterval(tick, 1000);
  const btn = isAdmin() ? h('button', { id: 'confirm', onclick: async () => {
    try { await api('POST', '/config/confirm', { revision: p.revision }); toast('Change confirmed'); refreshStatus(); } catch (e) { fail(e); }
  } }, 'Confirm') : null;
  el.replaceChildren(msg, btn || '');
  el.hidden = false;
}

// The node's status, shown in the header and the pending banner; throws
// what went wrong.
async function readStatus() {
  const s = await api('GET', '/status');
  document.getElementById('node-name').textContent = s.hostname;
  showPending(s.pending);
  return s;
}

// readStatus for the header's refreshes, which show nothing when it fails.
async function refreshStatus() {
  if (!me) return null;
  try { return await readStatus(); } catch (e) { return null; }
}

// ------------------------------------------------------------ setup & login

async function setupView(s) {
  const err = h('div', { class: 'error', id: 'setup-error' });
  const f = h('form', { class: 'card narrow', id: 'setup-form' },
    h('h2', {}, 'Set up this node'),
    h('p', { class: 'muted', id: 'setup-code-where' }, 'The setup code is shown on the node\'s console and is in ', h('code', {}, s.code_file || 'the setup-code file of the node\'s state directory'), '.'),
    h('label', { for: 'code' }, 'Setup code'), h('input', { id: 'code', name: 'code', required: true, autocomplete: 'off', autofocus: true }),
    h('label', { for: 'hostname' }, 'Node name'), h('input', { id: 'hostname', name: 'hostname', required: true, value: 'node1' }),
    h('label', { for: 'admin_password' }, 'Admin password (at least 8 characters)'),
    h('input', { id: 'admin_password', name: 'admin_password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }),
    h('label', { for: 'password2' }, 'Repeat the password'),
    h('input', { id: 'password2', type: 'password', required: true, autocomplete: 'new-password' }),
    h('label', { for: 'timezone' }, 'Time zone'), h('input', { id: 'timezone', name: 'timezone', value: 'UTC' }),
    h('label', { for: 'ssh_key' }, 'SSH public key for admin (optional)'),
    h('textarea', { id: 'ssh_key', name: 'ssh_key', rows: 3, placeholder: 'ssh-ed25519 AAAA… you@laptop' }),
    err,
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Finish setup')));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (id) => f.querySelector('#' + id).value.trim();
    if (v('admin_password') !== v('password2')) { err.textContent = 'The passwords differ.'; return; }
    const body = { code: v('code'), hostname: v('hostname'), admin_password: f.querySelector('#admin_password').value, timezone: v('timezone') || undefined };
    const keys = v('ssh_key').split('\n').map((s) => s.trim()).filter(Boolean);
    if (keys.length) body.ssh_authorized_keys = keys;
    try {
      await api('POST', '/setup', body);
      toast('Setup complete. Log in as admin.');
      go('#/login');
    } catch (e) {
      err.replaceChildren(e.message, ...(Array.isArray(e.details) ? e.details.map((p) => h('div', {}, `${p.path}: ${p.message}`)) : []));
    }
  });
  page('Welcome', f);
}

function loginView() {
  const err = h('div', { class: 'error', id: 'login-error' });
  const f = h('form', { class: 'card narrow', id: 'login-form' },
    h('h2', {}, 'Log in'),
    h('label', { for: 'username' }, 'User'), h('input', { id: 'username', required: true, value: 'admin', autocomplete: 'username' }),
    h('label', { for: 'password' }, 'Password'), h('input', { id: 'password', type: 'password', required: true, autocomplete: 'current-password', autofocus: true }),
    err, h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Log in')));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      me = await api('POST', '/session', { username: f.querySelector('#username').value, password: f.querySelector('#password').value });
      chrome();
      go('#/dashboard');
    } catch (e) { err.textContent = e.message; }
  });
  page('Log in', f);
  f.querySelector('#password').focus();
}

function chrome() {
  document.getElementById('nav').hidden = !me;
  const who = document.getElementById('who');
  who.replaceChildren();
  if (me) {
    who.append(h('span', {}, `${me.user} (${me.role})`), h('button', { class: 'secondary', id: 'logout', onclick: async () => {
      try { await api('DELETE', '/session'); } catch {}
      me = null; chrome(); showPending(null); go('#/login');
    } }, 'Log out'));
  }
}

// ------------------------------------------------------------ dashboard

async function dashboardView() {
  let s;
  try { s = await readStatus(); } catch (e) {
    // Not a blank page or the one before: say why, and try again while
    // the dashboard is still what is shown.
    page('Dashboard', h('div', { class: 'card problems', id: 'status-error', role: 'alert' },
      `The node's status could not be read: ${e.message}. Trying again in 3 s.`));
    const shown = location.hash;
    setTimeout(() => { if (me && location.hash === shown) route(); }, 3000);
    return;
  }
  const stat = (label, value, id) => h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'stat', id }, value));
  const rows = (s.services || []).map((svc) => h('tr', {},
    td('Service', svc.name), h('td', { class: `state-${svc.state}`, 'data-label': 'State' }, svc.state),
    td('Restarts', String(svc.restarts)), td('Since', `${ago(now() - svc.since)} ago`),
    td('Last exit', svc.last_exit || ''),
    td('', isAdmin() ? h('button', { class: 'secondary', 'aria-label': `Restart ${svc.name}`, onclick: async () => {
      try { await api('POST', `/services/${encodeURIComponent(svc.name)}/restart`); toast(`${svc.name} restarting`); setTimeout(route, 1000); } catch (e) { fail(e); }
    } }, 'Restart') : '')));
  page('Dashboard',
    h('div', { class: 'grid' },
      stat('Node', s.hostname, 'stat-node'), stat('Version', s.version, 'stat-version'),
      stat('Uptime', ago(s.uptime), 'stat-uptime'), stat('Config revision', s.revision ?? '—', 'stat-revision')),
    // On a phone the rows stack, so each Restart button stays in view.
    h('div', { class: 'card' }, h('h2', {}, 'Services'),
      rows.length ? table('services', ['Service', 'State', 'Restarts', 'Since', 'Last exit', ''], rows)
        : h('p', { class: 'muted' }, 'No services are running.')),
    graphsCard());
}

// ------------------------------------------------------------ configuration

// A field per setting; a list of objects gets the row editor when the
// schema (`prop`, under the whole schema `root`) describes its items.
function fieldFor(path, value, root, prop) {
  const id = 'f-' + path.replace(/[^a-z0-9]/gi, '-');
  const item = Array.isArray(value) && prop && rowsOf(root, prop);
  if (item) return rowEditor(root, id, path, item, value);
  if (typeof value === 'boolean') {
    return h('div', { class: 'field', 'data-path': path }, h('label', {}, h('input', { type: 'checkbox', id, 'data-kind': 'bool', checked: value }), ' ', path));
  }
  if (value !== null && typeof value === 'object') {
    return h('div', { class: 'field', 'data-path': path }, h('label', { for: id }, path, h('span', { class: 'muted' }, ' (JSON)')),
      h('textarea', { id, 'data-kind': 'json', rows: Math.min(12, JSON.stringify(value, null, 2).split('\n').length + 1) }, JSON.stringify(value, null, 2)));
  }
  const kind = typeof value === 'number' ? 'number' : 'text';
  return h('div', { class: 'field', 'data-path': path }, h('label', { for: id }, path),
    h('input', { id, 'data-kind': value === null ? 'auto' : kind, type: kind === 'number' ? 'number' : 'text', value: value ?? '', placeholder: value === null ? '(not set)' : null }));
}

function readField(div) {
  if (div.dataset.kind === 'rows') return div.read();
  const el = div.querySelector('input, textarea');
  const kind = el.dataset.kind;
  if (kind === 'bool') return el.checked;
  if (kind === 'json') return JSON.parse(el.value);
  if (kind === 'number') return el.value === '' ? null : Number(el.value);
  if (kind === 'auto') {
    const v = el.value.trim();
    if (v === '') return null;
    if (/^-?\d+$/.test(v)) return Number(v);
    return v;
  }
  return el.value;
}

// The config's JSON Schema, fetched once: it does not change while the
// node runs.
let schemaCache = null;
const configSchema = async () => (schemaCache ||= await api('GET', '/config/schema'));

async function configView() {
  const want = new URLSearchParams(location.hash.split('?')[1] || '').get('section') || 'node';
  const [cur, schema] = await Promise.all([api('GET', '/config'), configSchema()]);
  // Every section the node has (the everyday ones first), and the whole
  // document as TOML for experts.
  const props = Object.keys(schema.properties || {});
  const first = ['node', 'network', 'web', 'ssh', 'mail', 'dpx', 'vpn', 'pgha', 'integrator'].filter((s) => props.includes(s));
  const sections = [...first, ...props.filter((s) => !first.includes(s)), 'toml'];
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, ...sections.map((s) => h('button', {
    role: 'tab', 'aria-selected': String(s === want), onclick: () => go(`#/config?section=${s}`) }, s === 'toml' ? 'all as TOML' : s)));
  if (want === 'toml') return tomlView(tabs);
  const secSchema = resolve(schema, (schema.properties || {})[want]);
  const sec = cur.config[want] || {};
  const fields = Object.entries(sec).map(([k, v]) => fieldFor(`${want}.${k}`, v, schema, (secSchema.properties || {})[k]));
  const problems = h('div', { id: 'problems' });
  const comment = h('input', { id: 'comment', placeholder: 'What and why (optional)' });
  const save = h('button', { id: 'save', disabled: !isAdmin() }, 'Apply');
  const form = h('form', { class: 'card', id: 'config-form' },
    h('h2', {}, `[${want}]`, want === 'network' || want === 'web' || want === 'ssh' || want === 'vpn' ? h('span', { class: 'muted' }, ' — changes here must be confirmed') : ''),
    fields.length ? fields : h('p', { class: 'muted' }, 'This section has no settings yet.'),
    h('label', { for: 'comment' }, 'Comment'), comment, problems,
    h('div', { class: 'row' }, save, isAdmin() ? '' : h('span', { class: 'muted' }, `Read-only: your role is ${me.role}.`)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    form.querySelectorAll('.field-error').forEach((d) => d.classList.remove('field-error'));
    form.querySelectorAll('.field .error').forEach((d) => d.remove());
    problems.replaceChildren();
    const doc = structuredClone(cur.config);
    try {
      for (const div of form.querySelectorAll('.field')) doc[want][div.dataset.path.split('.').slice(1).join('.')] = readField(div);
    } catch (e) { problems.replaceChildren(h('div', { class: 'problems' }, `Not valid JSON: ${e.message}`)); return; }
    try {
      const out = await api('PATCH', '/config', { config: { [want]: doc[want] }, comment: comment.value, expect_revision: cur.revision ?? 0 });
      toast(out.revision ? `Saved as revision ${out.revision.id}` + (out.pending ? ' — confirm it before the countdown ends' : '') : 'Nothing changed');
      await refreshStatus();
      redraw();
    } catch (e) {
      const list = Array.isArray(e.details) ? e.details : [];
      const loose = [];
      for (const p of list) {
        if (markCell(form, p)) continue;
        const top = p.path.split('[')[0].split('.').slice(0, 2).join('.');
        const div = form.querySelector(`.field[data-path="${CSS.escape(top)}"]`);
        if (div) { div.classList.add('field-error'); div.append(h('div', { class: 'error', role: 'alert' }, p.path === top ? p.message : `${p.path}: ${p.message}`)); }
        else loose.push(p);
      }
      problems.replaceChildren(h('div', { class: 'problems', role: 'alert' }, list.length ? `${list.length} problem(s); nothing was saved.` : e.message,
        ...loose.map((p) => h('div', {}, `${p.path}: ${p.message}`))));
    }
  });
  page('Configuration', tabs, form,
    h('p', { class: 'muted' }, 'Revision ', String(cur.revision ?? '—'), '. JSON Schema: ', h('a', { href: '/api/v1/config/schema' }, '/api/v1/config/schema'), '.'));
}

// The whole configuration as TOML text (`config export`), applied whole as
// one revision with the same checks and messages as the forms. Secrets
// are neither shown nor touched; a `[secrets]` table added here is stored
// in the secret store, not in the revision.
async function tomlView(tabs) {
  const cur = await api('GET', '/config/export');
  const text = h('textarea', { id: 'config-toml', class: 'mono', rows: 24, spellcheck: 'false', 'aria-describedby': 'toml-help' });
  text.value = cur.text;
  const problems = h('div', { id: 'problems' });
  const comment = h('input', { id: 'comment', placeholder: 'What and why (optional)' });
  const form = h('form', { class: 'card', id: 'config-toml-form' }, h('h2', {}, 'The whole configuration'),
    h('p', { class: 'muted', id: 'toml-help' }, 'Applied as a whole: a section left out goes back to its defaults. Secrets are not shown.'),
    h('label', { for: 'config-toml' }, 'TOML'), text,
    h('label', { for: 'comment' }, 'Comment'), comment, problems,
    h('div', { class: 'row' }, h('button', { id: 'save', disabled: !isAdmin() }, 'Apply')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problems.replaceChildren();
    try {
      const out = await api('PUT', '/config', { text: text.value, comment: comment.value, expect_revision: cur.revision ?? 0 });
      toast(out.revision ? `Saved as revision ${out.revision.id}` + (out.pending ? ' — confirm it before the countdown ends' : '') : 'Nothing changed');
      await refreshStatus();
      redraw();
    } catch (e) {
      const list = Array.isArray(e.details) ? e.details : [];
      problems.replaceChildren(h('div', { class: 'problems', role: 'alert' }, list.length ? `${list.length} problem(s); nothing was saved.` : e.message,
        ...list.map((p) => h('div', {}, `${p.path}: ${p.message}`))));
    }
  });
  page('Configuration', tabs, form);
}

// ------------------------------------------------------------ history

async function historyView() {
  const data = await api('GET', '/config/history?limit=50');
  const out = h('div', { id: 'diff' });
  const showDiff = async (a, b) => {
    try {
      const changes = await api('GET', `/config/diff?a=${a}&b=${b}`);
      out.replaceChildren(h('div', { class: 'card' }, h('h2', {}, `Changes from ${a} to ${b}`),
        changes.length ? h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, h('th', {}, 'Key'), h('th', {}, 'Before'), h('th', {}, 'After'))),
          h('tbody', {}, changes.map((c) => h('tr', {}, h('td', { class: 'mono' }, c.path),
            h('td', { class: 'mono diff-old' }, c.old === null || c.old === undefined ? '—' : JSON.stringify(c.old)),
            h('td', { class: 'mono diff-new' }, c.new === null || c.new === undefined ? '—' : JSON.stringify(c.new)))))))
          : h('p', { class: 'muted' }, 'No differences.')));
      out.querySelector('h2').scrollIntoView({ block: 'nearest' });
    } catch (e) { fail(e); }
  };
  const revs = data.revisions || [];
  const rows = revs.map((r, i) => h('tr', {},
    td('#', String(r.id)), td('When', when(r.created_at)), td('Who', r.author), td('Comment', r.comment),
    td('', h('div', { class: 'row', style: 'margin:0' },
      i + 1 < revs.length ? h('button', { class: 'secondary', 'data-diff': r.id, onclick: () => showDiff(revs[i + 1].id, r.id) }, 'Diff') : '',
      isAdmin() && i > 0 ? h('button', { class: 'secondary', 'data-rollback': r.id, onclick: async () => {
        if (!confirm(`Roll back to revision ${r.id}? This makes a new revision with its content.`)) return;
        try { const o = await api('POST', '/config/rollback', { revision: r.id }); toast(`Rolled back: now revision ${o.revision ? o.revision.id : '?'}`); await refreshStatus(); redraw(); } catch (e) { fail(e); }
      } }, 'Roll back to this') : ''))));
  page('History', h('div', { class: 'card' }, table('history', ['#', 'When', 'Who', 'Comment', ''], rows)), out);
}

// ------------------------------------------------------------ logs

async function logsView() {
  const status = await api('GET', '/services');
  const svc = h('select', { id: 'log-service' }, h('option', { value: '' }, 'all'), h('option', { value: 'supervisor' }, 'supervisor'),
    ...status.map((s) => h('option', { value: s.name }, s.name)));
  const filter = h('input', { id: 'log-filter', placeholder: 'Filter text' });
  // #/logs?service=S&filter=T (the Integrator page links a service's lines so).
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  if (q.get('service') && [...svc.options].some((o) => o.value === q.get('service'))) svc.value = q.get('service');
  filter.value = q.get('filter') || '';
  const follow = h('input', { type: 'checkbox', id: 'log-follow' });
  const pre = h('pre', { class: 'log', id: 'log', tabindex: '0', 'aria-label': 'Log lines' });
  let lines = [];
  const render = () => {
    const f = filter.value.toLowerCase();
    pre.textContent = lines.filter((l) => !f || l.toLowerCase().includes(f)).join('\n');
    pre.scrollTop = pre.scrollHeight;
  };
  const fmt = (l) => `${l.at ? new Date(l.at * 1000).toLocaleTimeString() + ' ' : ''}${l.service || ''}: ${l.text ?? JSON.stringify(l)}`;
  const load = async () => {
    if (logSource) { logSource.close(); logSource = null; }
    const q = svc.value ? `&service=${encodeURIComponent(svc.value)}` : '';
    if (follow.checked) {
      lines = [];
      logSource = new EventSource(`/api/v1/logs?follow=true&lines=200${q}`);
      logSource.addEventListener('line', (ev) => { lines.push(fmt(JSON.parse(ev.data))); if (lines.length > 2000) lines.shift(); render(); });
    } else {
      try { lines = (await api('GET', `/logs?lines=500${q}`)).map(fmt); render(); } catch (e) { fail(e); }
    }
  };
  svc.addEventListener('change', load); follow.addEventListener('change', load); filter.addEventListener('input', render);
  page('Logs', h('div', { class: 'card' }, h('div', { class: 'grid' },
    h('div', {}, h('label', { for: 'log-service' }, 'Service'), svc),
    h('div', {}, h('label', { for: 'log-filter' }, 'Filter'), filter),
    h('div', {}, h('label', {}, follow, ' Follow new lines'))), h('div', { class: 'row' }), pre));
  await load();
}

// ------------------------------------------------------------ users & tokens

async function usersView() {
  const users = await api('GET', '/users');
  const tokens = isAdmin() ? await api('GET', '/tokens') : [];
  const secretBox = h('div', { id: 'token-secret' });
  const userRows = users.map((u) => h('tr', {}, h('td', {}, u.name), h('td', {}, u.role), h('td', {}, when(u.created_at)),
    h('td', {}, h('div', { class: 'row', style: 'margin:0' },
      isAdmin() || u.name === me.user ? h('button', { class: 'secondary', onclick: async () => {
        const pw = prompt(`New password for ${u.name} (at least 8 characters):`);
        if (!pw) return;
        try { await api('PUT', `/users/${encodeURIComponent(u.name)}/password`, { password: pw }); toast('Password changed'); } catch (e) { fail(e); }
      } }, 'Set password') : '',
      isAdmin() && u.name !== me.user ? h('button', { class: 'danger', onclick: async () => {
        if (!confirm(`Delete user ${u.name}?`)) return;
        try { await api('DELETE', `/users/${encodeURIComponent(u.name)}`); redraw(); } catch (e) { fail(e); }
      } }, 'Delete') : ''))));
  const addUser = h('form', { id: 'add-user' }, h('h2', {}, 'Add a user'),
    h('div', { class: 'grid' },
      h('div', {}, h('label', { for: 'nu-name' }, 'Name'), h('input', { id: 'nu-name', required: true, autocomplete: 'off' })),
      h('div', {}, h('label', { for: 'nu-pass' }, 'Password'), h('input', { id: 'nu-pass', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' })),
      h('div', {}, h('label', { for: 'nu-role' }, 'Role'), h('select', { id: 'nu-role' }, h('option', { value: 'viewer' }, 'viewer (read-only)'), h('option', { value: 'operator' }, 'operator (reaction flows)'), h('option', { value: 'admin' }, 'admin')))),
    h('div', { class: 'row' }, h('button', {}, 'Add user')));
  addUser.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/users', { name: addUser.querySelector('#nu-name').value, password: addUser.querySelector('#nu-pass').value, role: addUser.querySelector('#nu-role').value });
      toast('User added'); redraw();
    } catch (e) { fail(e); }
  });
  const tokenRows = tokens.map((t) => h('tr', {}, h('td', {}, t.id), h('td', {}, t.name), h('td', {}, t.username), h('td', {}, t.role),
    h('td', {}, when(t.created_at)), h('td', {}, t.last_used ? when(t.last_used) : 'never'),
    h('td', {}, h('button', { class: 'danger', onclick: async () => {
      if (!confirm(`Revoke token ${t.name}?`)) return;
      try { await api('DELETE', `/tokens/${t.id}`); redraw(); } catch (e) { fail(e); }
    } }, 'Revoke'))));
  const addToken = h('form', { id: 'add-token' }, h('h2', {}, 'New API token'),
    h('div', { class: 'grid' },
      h('div', {}, h('label', { for: 'nt-name' }, 'Name'), h('input', { id: 'nt-name', required: true, placeholder: 'ci-deploy' })),
      h('div', {}, h('label', { for: 'nt-role' }, 'Role'), h('select', { id: 'nt-role' }, h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'operator' }, 'operator'), h('option', { value: 'admin' }, 'admin')))),
    h('div', { class: 'row' }, h('button', {}, 'Create token')), secretBox);
  addToken.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const out = await api('POST', '/tokens', { name: addToken.querySelector('#nt-name').value, role: addToken.querySelector('#nt-role').value });
      await usersView();
      document.getElementById('token-secret').replaceChildren(h('p', {}, 'Copy this token now; it is not shown again. Send it as ', h('code', {}, 'Authorization: Bearer …'), '.'),
        h('div', { class: 'secret mono' }, out.secret));
    } catch (e) { fail(e); }
  });
  const table = (id, heads, rows) => h('div', { class: 'table-wrap' }, h('table', { id },
    h('thead', {}, h('tr', {}, ...heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)));
  page('Users & tokens',
    h('div', { class: 'card' }, h('h2', {}, 'Users'), table('users', ['Name', 'Role', 'Created', ''], userRows), isAdmin() ? addUser : ''),
    isAdmin() ? h('div', { class: 'card' }, h('h2', {}, 'API tokens'),
      tokens.length ? table('tokens', ['#', 'Name', 'User', 'Role', 'Created', 'Last used', ''], tokenRows) : h('p', { class: 'muted' }, 'No tokens yet.'),
      addToken) : '',
    isAdmin() ? h('div', { class: 'card' }, h('h2', {}, 'Backup'), h('p', {}, 'Download the configuration history, users and secrets as one file.'),
      h('a', { href: '/api/v1/backup', download: 'alpharen-backup.json' }, 'Download backup')) : '');
}

// ------------------------------------------------------------ router

const views = { '#/dashboard': dashboardView, '#/config': configView, '#/history': historyView, '#/logs': logsView, '#/users': usersView, '#/vpn': vpnView, '#/integrator': integratorView, '#/dns': dnsView, '#/mail': mailView, '#/pgha': pghaView, '#/cluster': clusterView, '#/reaction': reactionView, '#/network': netView, '#/update': updateView };

// After a change made on the page shown: the page drawn again with what
// the node has now, unless the user went to another page while the
// change was on its way (that page is drawn, not this one again over it).
let navs = 0;            // hash changes so far
let navsAtChange = 0;    // `navs` when the last change was sent
export function redraw() {
  return navs === navsAtChange ? route() : routing;
}

// After a change a service takes up a moment after it is stored: reads
// `path` until `taken(answer)` says the service has it (at most 5 s),
// then draws the page again.
export async function redrawWhen(path, taken) {
  for (let i = 0; i < 20; i++) {
    const r = await api('GET', path).catch(() => null);
    if (r && taken(r)) break;
    await new Promise((ok) => setTimeout(ok, 250));
  }
  return redraw();
}

// Routes never overlap: one asked for while another runs (a click while a
// save's route still waits for the node) runs once after it, so a slower,
// older view can never replace the newer one the user went to.
let routing = null;
let routeAgain = false;
export function route() {
  if (routing) { routeAgain = true; return routing; }
  routing = (async () => {
    try {
      do { routeAgain = false; await routeOnce(); } while (routeAgain);
    } finally { routing = null; }
  })();
  return routing;
}

async function routeOnce() {
  if (logSource) { logSource.close(); logSource = null; }
  const hash = (location.hash || '#/dashboard').split('?')[0];
  try {
    const setup = await api('GET', '/setup');
    if (setup.required) { me = null; chrome(); return setupView(setup); }
    if (!me) {
      try { me = await api('GET', '/session'); } catch { me = null; }
    }
    chrome();
    if (!me) return loginView();
    for (const a of document.querySelectorAll('nav a')) a.setAttribute('aria-current', a.getAttribute('href') === hash ? 'page' : 'false');
    if (hash === '#/login' || hash === '#/setup') return go('#/dashboard');
    await (views[hash] || dashboardView)();
    refreshStatus();
  } catch (e) {
    page('Error', h('div', { class: 'card problems' }, e.message));
  }
}

window.addEventListener('hashchange', () => { navs++; route(); });
clearInterval(statusTimer);
statusTimer = setInterval(() => { if (me && document.visibilityState === 'visible') refreshStatus(); }, 10000);
route();
