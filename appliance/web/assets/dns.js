// The console's DNS page: the zone's static records (add and edit with
// checks on the fields, delete with confirm; each a revision in History), every
// record dpx serves now, dynamic ones included, the dyndns hosts with
// their last update, the proxy routes with their health and the answers
// counted by type and response code.

import { h, api, page, toast, fail, isAdmin, route, redrawWhen, table, td, when, showProblems } from './app.js';

const TYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'NS'];
const HINTS = { A: '192.0.2.10', AAAA: '2001:db8::10', CNAME: 'www (or host.example.org.)', TXT: 'v=spf1 -all',
  MX: '10 mail', SRV: '10 5 443 www', NS: 'ns2.example.org.' };

function field(key, label, control) {
  return h('div', {}, h('label', { for: `rec-${key}` }, label), control,
    h('div', { class: 'error', id: `rec-${key}-error`, role: 'alert' }));
}

// A problem's field: `dpx.records[N].value` is `#rec-value`.
const recordField = (path) => {
  const m = /^dpx\.records\[\d+\]\.(name|type|value|ttl)$/.exec(path);
  return m && `rec-${m[1]}`;
};

const servedSig = (r) => JSON.stringify(r && r.served);

// dpx serves a new revision a moment after it is stored: the page is
// shown again once "Served now" has changed (or after 5 s).
const reshow = (servedBefore) => redrawWhen('/dns/records', (r) => r.served && servedSig(r) !== servedBefore);

// Adds a record, or changes the one `edit(record)` put in the form (in
// its place, one revision).
function recordForm(servedBefore) {
  let editing = null;
  const box = h('div', { class: 'error', id: 'rec-problems', role: 'alert' });
  const type = h('select', { id: 'rec-type' }, ...TYPES.map((t) => h('option', { value: t }, t)));
  const value = h('input', { id: 'rec-value', required: true, autocomplete: 'off', placeholder: HINTS.A, class: 'mono' });
  type.addEventListener('change', () => { value.placeholder = HINTS[type.value]; });
  const title = h('h2', {}, 'Add a record');
  const submit = h('button', {}, 'Add record');
  const cancel = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => route() }, 'Cancel');
  const form = h('form', { id: 'add-record' }, title,
    h('div', { class: 'grid' },
      field('name', 'Name', h('input', { id: 'rec-name', required: true, autocomplete: 'off', placeholder: 'www, or @ for the zone itself' })),
      field('type', 'Type', type),
      field('value', 'Value', value),
      field('ttl', 'TTL (seconds)', h('input', { id: 'rec-ttl', type: 'number', min: 0, inputmode: 'numeric', placeholder: 'the zone\'s default' }))),
    box, h('div', { class: 'row' }, submit, cancel));
  const input = (k) => form.querySelector(`#rec-${k}`);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ttl = input('ttl').value;
    const body = { name: input('name').value.trim(), type: type.value, value: value.value.trim(), ttl: ttl ? Number(ttl) : null };
    try {
      const out = editing
        ? await api('PUT', `/dns/records?${new URLSearchParams(editing)}`, body)
        : await api('POST', '/dns/records', body);
      toast(`${body.name} ${body.type} ${editing ? 'changed' : 'added'} (revision ${out.revision})`); await reshow(servedBefore);
    } catch (e) { showProblems(form, box, e, recordField); }
  });
  form.edit = (x) => {
    editing = { name: x.name, type: x.type, value: x.value };
    title.textContent = `Change ${x.name} ${x.type} ${x.value}`;
    submit.textContent = 'Save changes';
    cancel.hidden = false;
    input('name').value = x.name; type.value = x.type; value.value = x.value; input('ttl').value = x.ttl ?? '';
    value.placeholder = HINTS[x.type] || '';
    input('value').focus();
  };
  return form;
}

// The web service's side of dpx: dyndns hosts and proxy routes.
function webParts(w) {
  if (!w) return [];
  const hosts = (w.dyndns || []).map((d) => h('tr', { 'data-host': d.host },
    td('Host', h('span', { class: 'mono' }, d.host)), td('User', d.user),
    td('Last update', d.last ? when(d.last.at) : 'none since the web service started'),
    td('Address', d.last ? h('span', { class: 'mono' }, d.last.ip) : '—'),
    td('Result', d.last ? h('span', { class: d.last.result === 'failed' ? 'state-failed' : '' }, d.last.result) : '—')));
  const routes = (w.routes || []).map((x) => h('tr', { 'data-route': x.host },
    td('Host', h('span', { class: 'mono' }, x.host), x.path_prefix ? h('span', { class: 'mono' }, x.path_prefix) : ''),
    td('Backend', h('span', { class: 'mono break' }, x.backend)), td('VPN only', x.vpn_only ? 'yes' : 'no'),
    td('Health', h('span', { class: { up: 'state-running', down: 'state-failed', unusable: 'state-failed' }[x.state] || '' }, x.state)),
    td('Why', x.reason || '')));
  return [
    hosts.length ? h('div', { class: 'card' }, h('h2', {}, 'Dynamic DNS hosts'), table('dns-dyndns', ['Host', 'User', 'Last update', 'Address', 'Result'], hosts)) : '',
    routes.length ? h('div', { class: 'card' }, h('h2', {}, 'Proxy routes'),
      h('p', { class: 'muted' }, 'Health is checked only for routes with a health block; "unchecked" ones are always used.'),
      table('dns-routes', ['Host', 'Backend', 'VPN only', 'Health', 'Why'], routes)) : '',
  ];
}

export async function dnsView() {
  const [r, w, d] = await Promise.all([api('GET', '/dns/records'), api('GET', '/services/web/status').catch(() => null),
    api('GET', '/services/dpx/status').catch(() => null)]);
  if (!r.zone) {
    return page('DNS', h('div', { class: 'card' }, h('p', {}, 'No zone: set dpx.zone under ', h('a', { href: '#/config?section=dpx' }, 'Configuration → dpx'), ' to serve one.')), ...webParts(w));
  }
  const servedBefore = servedSig(r);
  const form = isAdmin() ? recordForm(servedBefore) : '';
  const configured = (r.configured || []).map((x) => h('tr', { 'data-record': `${x.name} ${x.type} ${x.value}` },
    td('Name', x.name), td('Type', x.type), td('Value', h('code', {}, x.value)), td('TTL', x.ttl ?? 'default'),
    h('td', {}, isAdmin() ? h('div', { class: 'row', style: 'margin:0' },
      h('button', { class: 'secondary', onclick: () => form.edit(x) }, `Edit ${x.name} ${x.type}`),
      h('button', { class: 'danger', onclick: async () => {
        if (!confirm(`Delete ${x.name} ${x.type} ${x.value}?`)) return;
        const q = new URLSearchParams({ name: x.name, type: x.type, value: x.value });
        try { await api('DELETE', `/dns/records?${q}`); toast(`${x.name} ${x.type} deleted`); await reshow(servedBefore); } catch (e) { fail(e); }
      } }, `Delete ${x.name} ${x.type}`)) : '')));
  const served = (r.served || []).map((x) => h('tr', {},
    td('Name', x.name), td('Type', x.type), td('TTL', x.ttl), td('Data', h('code', {}, x.data)), td('From', x.source)));
  page('DNS',
    h('div', { class: 'card' }, h('h2', {}, `Records of ${r.zone}`),
      configured.length ? table('dns-records', ['Name', 'Type', 'Value', 'TTL', ''], configured) : h('p', { class: 'muted' }, 'No static records.'),
      form),
    h('div', { class: 'card' }, h('h2', {}, 'Served now'),
      r.served ? table('dns-served', ['Name', 'Type', 'TTL', 'Data', 'From'], served)
        : h('p', { class: 'problems' }, `dpx is not answering: ${r.served_error || 'unknown'}`)),
    answers(d && d.queries),
    ...webParts(w));
}

// Answers since dpx started, by the question's type and by response code.
function answers(q) {
  if (!q) return '';
  const rows = (counts, key) => Object.entries(counts || {}).sort((a, b) => b[1] - a[1])
    .map(([k, n]) => h('tr', {}, td(key, k), td('Answers', String(n))));
  return h('div', { class: 'card' }, h('h2', {}, 'Answers since dpx started'),
    h('p', {}, `${q.total} answers over UDP and TCP.`),
    q.total ? h('div', { class: 'split' },
      table('dns-by-type', ['Type', 'Answers'], rows(q.by_type, 'Type')),
      table('dns-by-rcode', ['Code', 'Answers'], rows(q.by_rcode, 'Code'))) : '');
}
