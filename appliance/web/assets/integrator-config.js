// The Integrator page's Channels, Security and Outgoing tabs: the lists
// under [integrator] (channels, security definitions, outgoing REST, SQL
// and mail connections) as tables with a form to add, change or delete
// one; the Jobs tab's form to add a job. Each
// save is one config revision (PATCH /config with the whole [integrator]
// section and the revision it was read at), so History shows it and can
// roll it back; the node's checks come back beside the field they are
// about. Outgoing connections have a Ping button.

import { h, api, toast, fail, isAdmin, route, redraw, table, td, showProblems } from './app.js';
import { untilJobs } from './integrator-data.js';

const enc = encodeURIComponent;
const FORMATS = ['json', 'form', 'xml', 'raw'];

// Each list: its key under [integrator], the prefix of its field ids,
// its fields (key, label, kind, hint) and its table's columns.
const KINDS = {
  channels: {
    title: 'Channels', one: 'channel', prefix: 'ch',
    fields: [
      ['name', 'Name', 'text', 'orders'],
      ['url_path', 'URL path', 'text', '/api/orders/{id}'],
      ['service', 'Service', 'service', 'orders.get'],
      ['methods', 'Methods (comma-separated; empty for any)', 'list', 'GET, POST'],
      ['data_format', 'Data format', FORMATS],
      ['security', 'Security definition', 'security'],
      ['timeout', 'Timeout (seconds; empty for the integrator\'s)', 'number'],
      ['transport', 'Transport', ['rest', 'websocket']],
      ['max_message_size', 'WebSocket: largest message (bytes; empty for 1 MiB)', 'number'],
      ['ping_interval', 'WebSocket: ping interval (seconds; empty for 30)', 'number'],
      ['idle_timeout', 'WebSocket: idle timeout (seconds; empty for 600)', 'number'],
    ],
    cols: [['Name', 'name'], ['URL path', 'url_path'], ['Transport', 'transport'], ['Service', 'service'], ['Methods', 'methods'], ['Security', 'security']],
  },
  security: {
    title: 'Security definitions', one: 'security definition', prefix: 'sec',
    fields: [
      ['name', 'Name', 'text', 'partner-basic'],
      ['kind', 'Kind', ['basic', 'apikey', 'hmac', 'jwt', 'tls_client_cert']],
      ['username', 'User name (basic only)', 'text'],
      ['password', 'Password, key or secret (empty: keep it; a new one gets a generated one)', 'secret'],
      ['header', 'API key header (apikey only; default X-API-Key)', 'text'],
      ['skew', 'Clock skew (seconds; hmac and jwt)', 'number'],
      ['issuer', 'JWT issuer (jwt only)', 'text'],
      ['audience', 'JWT audience (jwt only)', 'text'],
      ['jwks_file', 'JWKS file on the node (jwt only)', 'text'],
      ['ca', 'CA certificate(s), PEM text (tls_client_cert only)', 'pem', '-----BEGIN CERTIFICATE-----'],
      ['common_names', 'Allowed common names (comma-separated; tls_client_cert)', 'list', 'orders, billing'],
      ['subjects', 'Allowed subjects, one per line (RFC 4514; tls_client_cert)', 'lines', 'CN=orders,O=Acme,C=DE'],
      ['dns_names', 'Allowed SAN DNS names (comma-separated; tls_client_cert)', 'list', 'svc.example.net'],
    ],
    cols: [['Name', 'name'], ['Kind', 'kind'], ['User name', 'username'], ['Header', 'header']],
  },
  outgoing: {
    title: 'Outgoing REST connections', one: 'outgoing connection', an: true, prefix: 'out',
    fields: [
      ['name', 'Name', 'text', 'crm'],
      ['host', 'Host (http://host:port)', 'text', 'http://crm.example.org:8080'],
      ['url_path', 'URL path', 'text', '/'],
      ['data_format', 'Data format', FORMATS],
      ['security', 'Security definition (basic)', 'security'],
      ['timeout', 'Timeout (seconds; empty for the integrator\'s)', 'number'],
    ],
    cols: [['Name', 'name'], ['Host', 'host'], ['URL path', 'url_path'], ['Security', 'security']],
  },
  outgoing_sql: {
    title: 'Outgoing SQL connections (PostgreSQL)', one: 'SQL connection', prefix: 'sql',
    fields: [
      ['name', 'Name', 'text', 'crm-db'],
      ['host', 'Host (empty with a pgha group)', 'text', 'db.example.org'],
      ['pgha_group', 'pgha group whose master to follow (instead of host)', 'text', 'group1'],
      ['port', 'Port (empty for 5432)', 'number'],
      ['database', 'Database', 'text', 'crm'],
      ['user', 'User', 'text', 'crm_app'],
      ['password', 'Password (empty: keep it)', 'secret'],
      ['pool_size', 'Pool size (empty for 10)', 'number'],
      ['tls', 'TLS', ['disable', 'require', 'verify-full']],
      ['ca_file', 'CA file on the node (verify-full)', 'text'],
      ['timeout', 'Statement timeout (seconds; empty for the integrator\'s)', 'number'],
    ],
    cols: [['Name', 'name'], ['Host', 'host'], ['Database', 'database'], ['User', 'user'], ['TLS', 'tls']],
  },
  outgoing_smtp: {
    title: 'Outgoing mail (through the node\'s mail service)', one: 'mail connection', prefix: 'smtp',
    fields: [
      ['name', 'Name', 'text', 'notify'],
      ['from', 'Sender (empty for integrator@ the node\'s host name)', 'text', 'orders@example.org'],
    ],
    cols: [['Name', 'name'], ['Sender', 'from']],
  },
  jobs: {
    title: 'Scheduled jobs', one: 'job', prefix: 'job',
    fields: [
      ['name', 'Name', 'text', 'nightly-report'],
      ['service', 'Service', 'service', 'reports.nightly'],
      ['kind', 'Kind', ['interval', 'cron', 'one_time']],
      ['seconds', 'Every … seconds (interval)', 'number'],
      ['minutes', 'Every … minutes (interval; added up)', 'number'],
      ['hours', 'Every … hours (interval; added up)', 'number'],
      ['cron', 'Cron expression (cron)', 'text', '0 2 * * *'],
      ['at', 'At (one_time: YYYY-MM-DDTHH:MM)', 'text', '2027-01-31T02:00'],
      ['timezone', 'Time zone (empty for UTC)', 'text', 'Europe/Berlin'],
      ['payload', 'Payload (JSON; empty for none)', 'json', '{"report": "daily"}'],
    ],
    cols: [['Name', 'name'], ['Service', 'service'], ['Kind', 'kind']],
  },
};

// A node problem's field id: `integrator.channels[2].url_path` is
// `#ch-url_path` when the form holds item 2.
function fieldOf(kind, index) {
  const k = KINDS[kind];
  const re = new RegExp(`^integrator\\.${kind}\\[(\\d+)\\]\\.(\\w+)`);
  return (path) => {
    const m = re.exec(path);
    if (!m || Number(m[1]) !== index) return null;
    return k.fields.some(([f]) => f === m[2]) ? `${k.prefix}-${m[2]}` : null;
  };
}

function control(k, [key, , type, hint], item, ctx) {
  const id = `${k.prefix}-${key}`;
  const v = item[key];
  if (Array.isArray(type)) {
    return h('select', { id }, ...type.map((c) => h('option', { value: c, selected: (v || type[0]) === c }, c)));
  }
  if (type === 'security') {
    return h('select', { id }, h('option', { value: '' }, 'none'),
      ...ctx.security.map((s) => h('option', { value: s.name, selected: v === s.name }, s.name)));
  }
  if (type === 'number') return h('input', { id, type: 'number', min: 0, inputmode: 'numeric', value: v ?? '' });
  if (type === 'secret') return h('input', { id, type: 'password', autocomplete: 'new-password', value: '' });
  if (type === 'pem' || type === 'lines') {
    const text = type === 'lines' ? (v || []).join('\n') : (v ?? '');
    return h('textarea', { id, class: 'mono', rows: type === 'pem' ? 6 : 3, spellcheck: 'false', placeholder: hint || '' }, text);
  }
  const shown = type === 'list' ? (v || []).join(', ') : type === 'json' ? (v == null ? '' : JSON.stringify(v)) : (v ?? '');
  const attrs = { id, autocomplete: 'off', placeholder: hint || '', value: shown };
  if (type === 'service') attrs.list = 'int-service-names';
  return h('input', attrs);
}

// The item the form describes: the fields it has over the item as it was
// (so a kept password stays the stored secret's reference). An empty
// optional field is left out, so the node's default applies; JSON that
// does not parse is thrown as a problem of its field.
function read(k, form, old, path) {
  const out = { ...old };
  for (const [key, , type] of k.fields) {
    const raw = form.querySelector(`#${k.prefix}-${key}`).value.trim();
    if (type === 'secret') { if (raw) out[key] = raw; continue; }
    if (type === 'list') out[key] = raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : [];
    else if (type === 'lines') out[key] = raw.split('\n').map((s) => s.trim()).filter(Boolean);
    else if (type === 'pem' && raw) out[key] = `${raw}\n`;
    else if (raw === '' && key !== 'name' && type !== 'service') delete out[key];
    else if (type === 'number') out[key] = Number(raw);
    else if (type === 'json') {
      try { out[key] = JSON.parse(raw); } catch (e) {
        throw { message: 'The form has a problem.', details: [{ path: `${path}.${key}`, message: `not JSON: ${e.message}` }] };
      }
    } else out[key] = raw;
  }
  return out;
}

// Stores the [integrator] section with `change` made to its `kind` list.
async function save(ctx, kind, change, comment) {
  const sec = structuredClone(ctx.section);
  sec[kind] = change(sec[kind] || []);
  return api('PATCH', '/config', { config: { integrator: sec }, comment, expect_revision: ctx.revision ?? 0 });
}

function itemForm(kind, ctx, index) {
  const k = KINDS[kind];
  const list = ctx.section[kind] || [];
  const old = index === null ? {} : list[index];
  const at = index === null ? list.length : index;
  const box = h('div', { class: 'error', id: `${k.prefix}-problems`, role: 'alert' });
  const form = h('form', { id: `${k.prefix}-form` },
    h('h2', {}, index === null ? `Add ${k.an ? 'an' : 'a'} ${k.one}` : `Change ${old.name}`),
    h('div', { class: 'grid' }, ...k.fields.map((f) => h('div', {},
      h('label', { for: `${k.prefix}-${f[0]}` }, f[1]), control(k, f, old, ctx),
      h('div', { class: 'error', id: `${k.prefix}-${f[0]}-error`, role: 'alert' })))),
    box,
    h('div', { class: 'row' }, h('button', {}, index === null ? `Add ${k.one}` : 'Save changes'),
      index === null ? '' : h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const item = read(k, form, old, `integrator.${kind}[${at}]`);
      const out = await save(ctx, kind, (l) => (index === null ? [...l, item] : l.map((x, i) => (i === index ? item : x))),
        `${k.one} ${item.name} ${index === null ? 'added' : 'changed'}`);
      toast(out.revision ? `${item.name} saved as revision ${out.revision.id}` : 'Nothing changed');
      if (kind === 'jobs') await untilJobs((now) => now.some((x) => x.name === item.name));
      redraw();
    } catch (e) { showProblems(form, box, e, fieldOf(kind, at)); }
  });
  return form;
}

// Tries an outgoing connection from the node and says what it answered.
async function ping(name, cell) {
  cell.textContent = 'pinging…';
  try {
    const r = await api('POST', `/integrator/outgoing/${enc(name)}/ping`);
    cell.textContent = r.ok ? `HTTP ${r.status} in ${Math.round(r.ms)} ms` : `failed: ${r.error || `HTTP ${r.status}`}`;
    cell.className = r.ok ? 'state-running' : 'state-failed';
  } catch (e) { cell.textContent = e.message; cell.className = 'state-failed'; }
}

// The [integrator] section as read (with its revision) and the deployed
// services' names for the forms' service fields.
async function context() {
  const [cur, services] = await Promise.all([
    api('GET', '/config?section=integrator'),
    api('GET', '/integrator/services').catch(() => []),
  ]);
  const section = cur.config || {};
  return { section, revision: cur.revision, security: section.security || [], services };
}

// The deployed services as the choices of a kind's service field (none
// for a kind without one: the id must stay unique on a page of several).
function serviceNames(k, ctx) {
  return k.fields.some((f) => f[2] === 'service')
    ? h('datalist', { id: 'int-service-names' }, ...ctx.services.map((s) => h('option', { value: s.name }))) : '';
}

// A card with only the form to add one item (the Jobs tab lists jobs
// with their runs itself).
export async function addCard(kind) {
  const ctx = await context();
  return h('div', { class: 'card' }, serviceNames(KINDS[kind], ctx), itemForm(kind, ctx, null));
}

export async function configCard(kind) {
  const k = KINDS[kind];
  const ctx = await context();
  const list = ctx.section[kind] || [];
  const holder = h('div', { id: `${k.prefix}-editor` });
  const show = (index) => { holder.replaceChildren(itemForm(kind, ctx, index)); holder.querySelector('input, select').focus(); };
  const rows = list.map((x, i) => {
    const status = h('span', { role: 'status', 'aria-live': 'polite' });
    return h('tr', { 'data-item': x.name },
      ...k.cols.map(([label, key]) => td(label, Array.isArray(x[key]) ? x[key].join(', ') || 'any' : (x[key] ?? ''))),
      kind === 'outgoing' ? td('Ping', status) : '',
      h('td', {}, isAdmin() ? h('div', { class: 'row' },
        kind === 'outgoing' ? h('button', { type: 'button', class: 'secondary', onclick: () => ping(x.name, status) }, `Ping ${x.name}`) : '',
        h('button', { type: 'button', class: 'secondary', onclick: () => show(i) }, `Edit ${x.name}`),
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!confirm(`Delete the ${k.one} ${x.name}?`)) return;
          try {
            const out = await save(ctx, kind, (l) => l.filter((_, j) => j !== i), `${k.one} ${x.name} deleted`);
            toast(`${x.name} deleted (revision ${out.revision ? out.revision.id : '?'})`); redraw();
          } catch (e) { fail(e); }
        } }, `Delete ${x.name}`)) : ''));
  });
  const heads = [...k.cols.map(([label]) => label), ...(kind === 'outgoing' ? ['Ping'] : []), ''];
  if (isAdmin()) holder.replaceChildren(itemForm(kind, ctx, null));
  return h('div', { class: 'card' }, h('h2', {}, k.title),
    serviceNames(k, ctx),
    rows.length ? table(`int-${kind}`, heads, rows) : h('p', { class: 'muted' }, `No ${k.title.toLowerCase()} yet.`),
    holder);
}
