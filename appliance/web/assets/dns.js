// The console's DNS page: the zone's static records (add with checks on
// the fields, delete with confirm; each a revision in History) and every
// record dpx serves now, dynamic ones included.

import { h, api, page, toast, fail, isAdmin, route, table, td } from './app.js';

const TYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'NS'];
const HINTS = { A: '192.0.2.10', AAAA: '2001:db8::10', CNAME: 'www (or host.example.org.)', TXT: 'v=spf1 -all',
  MX: '10 mail', SRV: '10 5 443 www', NS: 'ns2.example.org.' };

function field(key, label, control) {
  return h('div', {}, h('label', { for: `rec-${key}` }, label), control,
    h('div', { class: 'error', id: `rec-${key}-error`, role: 'alert' }));
}

// Puts each problem the node reports (`dpx.records[N].value`, ...) under
// its field; the rest above the form.
function showProblems(form, box, e) {
  for (const el of form.querySelectorAll('.error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const rest = [];
  for (const p of (Array.isArray(e.details) ? e.details : [])) {
    const m = /^dpx\.records\[\d+\]\.(name|type|value|ttl)$/.exec(p.path || '');
    const input = m && form.querySelector(`#rec-${m[1]}`);
    if (input) {
      form.querySelector(`#rec-${m[1]}-error`).textContent = p.message;
      input.setAttribute('aria-invalid', 'true');
    } else rest.push(p.message);
  }
  box.textContent = rest.length ? rest.join('; ') : (Array.isArray(e.details) && e.details.length ? '' : e.message);
}

function addForm() {
  const box = h('div', { class: 'error', id: 'rec-problems', role: 'alert' });
  const type = h('select', { id: 'rec-type' }, ...TYPES.map((t) => h('option', { value: t }, t)));
  const value = h('input', { id: 'rec-value', required: true, autocomplete: 'off', placeholder: HINTS.A, class: 'mono' });
  type.addEventListener('change', () => { value.placeholder = HINTS[type.value]; });
  const form = h('form', { id: 'add-record' }, h('h2', {}, 'Add a record'),
    h('div', { class: 'grid' },
      field('name', 'Name', h('input', { id: 'rec-name', required: true, autocomplete: 'off', placeholder: 'www, or @ for the zone itself' })),
      field('type', 'Type', type),
      field('value', 'Value', value),
      field('ttl', 'TTL (seconds)', h('input', { id: 'rec-ttl', type: 'number', min: 0, inputmode: 'numeric', placeholder: 'the zone\'s default' }))),
    box, h('div', { class: 'row' }, h('button', {}, 'Add record')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ttl = form.querySelector('#rec-ttl').value;
    const body = { name: form.querySelector('#rec-name').value.trim(), type: type.value, value: value.value.trim(), ttl: ttl ? Number(ttl) : null };
    try {
      const out = await api('POST', '/dns/records', body);
      toast(`${body.name} ${body.type} added (revision ${out.revision})`); route();
    } catch (e) { showProblems(form, box, e); }
  });
  return form;
}

export async function dnsView() {
  const r = await api('GET', '/dns/records');
  if (!r.zone) {
    return page('DNS', h('div', { class: 'card' }, h('p', {}, 'No zone: set dpx.zone under ', h('a', { href: '#/config?section=dpx' }, 'Configuration → dpx'), ' to serve one.')));
  }
  const configured = (r.configured || []).map((x) => h('tr', { 'data-record': `${x.name} ${x.type} ${x.value}` },
    td('Name', x.name), td('Type', x.type), td('Value', h('code', {}, x.value)), td('TTL', x.ttl ?? 'default'),
    h('td', {}, isAdmin() ? h('button', { class: 'danger', onclick: async () => {
      if (!confirm(`Delete ${x.name} ${x.type} ${x.value}?`)) return;
      const q = new URLSearchParams({ name: x.name, type: x.type, value: x.value });
      try { await api('DELETE', `/dns/records?${q}`); toast(`${x.name} ${x.type} deleted`); route(); } catch (e) { fail(e); }
    } }, `Delete ${x.name} ${x.type}`) : '')));
  const served = (r.served || []).map((x) => h('tr', {},
    td('Name', x.name), td('Type', x.type), td('TTL', x.ttl), td('Data', h('code', {}, x.data)), td('From', x.source)));
  page('DNS',
    h('div', { class: 'card' }, h('h2', {}, `Records of ${r.zone}`),
      configured.length ? table('dns-records', ['Name', 'Type', 'Value', 'TTL', ''], configured) : h('p', { class: 'muted' }, 'No static records.'),
      isAdmin() ? addForm() : ''),
    h('div', { class: 'card' }, h('h2', {}, 'Served now'),
      r.served ? table('dns-served', ['Name', 'Type', 'TTL', 'Data', 'From'], served)
        : h('p', { class: 'problems' }, `dpx is not answering: ${r.served_error || 'unknown'}`)));
}
