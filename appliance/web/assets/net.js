// The console's Network page: every link as the kernel has it (carrier,
// addresses and routes, each with where it came from), VLANs, DHCP
// leases, the resolver and the time servers; and a form per configured
// interface. An edit is a config revision that must be confirmed: the
// banner counts down and the node reverts it unless it is confirmed.

import { h, api, page, toast, fail, isAdmin, redraw, table, td, when, showProblems } from './app.js';

const list = (xs) => (xs && xs.length ? xs.join(', ') : '—');

function links(s) {
  const rows = s.links.map((l) => h('tr', { 'data-link': l.name },
    td('Interface', h('strong', {}, l.name), l.vlan ? ` (VLAN ${l.vlan.id} on ${l.vlan.parent})` : ''),
    td('Link', h('span', { class: l.carrier ? 'state-running' : 'state-failed' }, l.up ? (l.carrier ? 'up' : 'no carrier') : 'down')),
    td('MAC', h('span', { class: 'mono' }, l.mac || '—')), td('MTU', l.mtu),
    td('Addresses', h('div', { class: 'addrs' }, ...l.addresses.map((a) => h('div', { class: 'mono', 'data-origin': a.origin }, a.address, h('span', { class: 'muted' }, ` ${a.origin}`))))),
    td('Managed', l.state)));
  return table('net-links', ['Interface', 'Link', 'MAC', 'MTU', 'Addresses', 'Managed'], rows);
}

function routes(s) {
  const rows = s.links.flatMap((l) => l.routes.map((r) => h('tr', {},
    td('Destination', h('span', { class: 'mono' }, r.dest)), td('Via', r.via || 'on the link'), td('Interface', l.name),
    td('Metric', r.metric ?? '—'), td('From', r.origin))));
  return rows.length ? table('net-routes', ['Destination', 'Via', 'Interface', 'Metric', 'From'], rows) : h('p', { class: 'muted' }, 'No routes.');
}

function leases(s) {
  const rows = s.leases.map((l) => h('tr', {},
    td('Interface', l.interface), td('Address', h('span', { class: 'mono' }, l.address)), td('Server', l.server),
    td('Router', l.router || '—'), td('DNS', list(l.dns)), td('Left', `${l.remaining_secs} s of ${l.lease_secs} s`), td('State', l.state)));
  return rows.length ? table('net-leases', ['Interface', 'Address', 'Server', 'Router', 'DNS', 'Left', 'State'], rows)
    : h('p', { class: 'muted' }, 'No DHCP leases.');
}

function resolverAndTime(s) {
  const t = s.time;
  const item = (label, ...value) => h('div', {}, h('div', { class: 'label' }, label), h('div', {}, ...value));
  return h('div', { class: 'grid' },
    item('DNS servers', h('span', { class: 'mono', id: 'net-dns' }, list(s.dns.servers))),
    item('Search domains', list(s.dns.search)),
    item('Time servers', h('span', { class: 'mono' }, list(t.servers))),
    item('Last time check', t.checked_at ? when(t.checked_at) : 'not yet',
      t.last ? h('div', { class: 'muted' }, `${t.last.server} (stratum ${t.last.stratum}): clock off by ${t.last.offset.toFixed(3)} s`) : '',
      t.error ? h('div', { class: 'error' }, t.error) : ''));
}

// A problem's field: `network.interfaces[N].gateway4` is `#ifN-gateway4`.
const ifaceField = (path) => {
  const m = /^network\.interfaces\[(\d+)\]\.(addresses|dhcp4|gateway4)/.exec(path);
  return m && `if${m[1]}-${m[2]}`;
};

function editForm(cfg, revision) {
  const box = h('div', { class: 'error', role: 'alert', id: 'net-problems' });
  const ifaces = cfg.interfaces || [];
  const field = (i, key, label, control, hint) => h('div', {}, h('label', { for: `if${i}-${key}` }, label, hint ? h('span', { class: 'muted' }, ` ${hint}`) : ''),
    control, h('div', { class: 'error', id: `if${i}-${key}-error`, role: 'alert' }));
  const blocks = ifaces.map((x, i) => h('fieldset', { class: 'iface', 'data-iface': x.name || x.mac },
    h('legend', {}, x.name || x.mac),
    h('div', { class: 'grid' },
      field(i, 'addresses', 'Static addresses', h('input', { id: `if${i}-addresses`, class: 'mono', autocomplete: 'off', value: (x.addresses || []).join(', '), placeholder: '192.0.2.5/24' }), '(CIDR, comma-separated)'),
      field(i, 'gateway4', 'IPv4 gateway', h('input', { id: `if${i}-gateway4`, class: 'mono', autocomplete: 'off', value: x.gateway4 || '', placeholder: 'none' })),
      h('div', {}, h('label', {}, h('input', { type: 'checkbox', id: `if${i}-dhcp4`, checked: !!x.dhcp4 }), ' DHCPv4'),
        h('div', { class: 'error', id: `if${i}-dhcp4-error`, role: 'alert' })))));
  const form = h('form', { id: 'net-edit' }, h('h2', {}, 'Configured interfaces'),
    h('p', { class: 'muted' }, 'A change here must be confirmed in the banner above before its countdown ends; otherwise the node puts the previous settings back, so a mistake cannot lock you out. Routes, VLANs and DNS are under ',
      h('a', { href: '#/config?section=network' }, 'Configuration → network'), '.'),
    ...blocks, box, h('div', { class: 'row' }, h('button', { id: 'net-apply' }, 'Apply')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const next = structuredClone(cfg);
    next.interfaces = ifaces.map((x, i) => {
      const gw = form.querySelector(`#if${i}-gateway4`).value.trim();
      return { ...x, addresses: form.querySelector(`#if${i}-addresses`).value.split(',').map((a) => a.trim()).filter(Boolean),
        gateway4: gw || null, dhcp4: form.querySelector(`#if${i}-dhcp4`).checked };
    });
    try {
      const out = await api('PATCH', '/config', { config: { network: next }, comment: 'network page', expect_revision: revision ?? 0 });
      toast(out.revision ? `Saved as revision ${out.revision.id}${out.pending ? ' — confirm it before the countdown ends' : ''}` : 'Nothing changed');
      redraw();
    } catch (e) { showProblems(form, box, e, ifaceField); }
  });
  return form;
}

export async function netView() {
  const [s, cur] = await Promise.all([api('GET', '/services/net/status'), api('GET', '/config')]);
  const cfg = cur.config.network || {};
  const vlans = (cfg.vlans || []).map((v) => h('tr', {}, td('ID', v.id), td('On', v.link), td('Name', v.name || `${v.link}.${v.id}`)));
  page('Network',
    s.managed ? '' : h('p', { class: 'card muted', id: 'net-unmanaged' }, 'The node does not configure its links (network.manage is off): what is shown is as the system set it.'),
    s.last_error ? h('p', { class: 'problems' }, s.last_error) : '',
    s.missing.length ? h('p', { class: 'problems' }, `Configured but not present: ${s.missing.join(', ')}`) : '',
    h('div', { class: 'card' }, h('h2', {}, 'Interfaces'), links(s)),
    h('div', { class: 'card' }, h('h2', {}, 'Routes'), routes(s)),
    h('div', { class: 'card' }, h('h2', {}, 'VLANs'), vlans.length ? table('net-vlans', ['ID', 'On', 'Name'], vlans) : h('p', { class: 'muted' }, 'No VLANs configured.')),
    h('div', { class: 'card' }, h('h2', {}, 'DHCP leases'), leases(s)),
    h('div', { class: 'card' }, h('h2', {}, 'Resolver and time'), resolverAndTime(s)),
    isAdmin() && (cfg.interfaces || []).length ? h('div', { class: 'card' }, editForm(cfg, cur.revision)) : '');
}
