// The console's VPN page: the node's WireGuard interface, its peers with
// their traffic and last handshake, and new devices added with a QR code.

import { h, api, page, toast, fail, isAdmin, redraw, redrawWhen, table, td, ago } from './app.js';

const size = (n) => {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = Number(n) || 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
};

// A form field with its label and a place for the node's message about it.
function vpnField(form, key, label, attrs = {}, hint = '') {
  const id = `${form}-${key}`;
  return h('div', { class: 'field', 'data-field': key },
    h('label', { for: id }, label, hint ? h('span', { class: 'muted' }, ` ${hint}`) : ''),
    h('input', { id, name: key, 'aria-describedby': `${id}-error`, ...attrs }),
    h('div', { class: 'error', id: `${id}-error`, role: 'alert' }));
}

// Shows each problem the node reports ({path, message}; `vpn.peers[N].key`)
// at the field it is about; the rest in the form's problem box.
function fieldErrors(form, box, e) {
  form.querySelectorAll('.field-error').forEach((d) => d.classList.remove('field-error'));
  form.querySelectorAll('.field .error').forEach((d) => d.replaceChildren());
  form.querySelectorAll('[aria-invalid]').forEach((d) => d.removeAttribute('aria-invalid'));
  box.replaceChildren();
  if (!e) return;
  const list = Array.isArray(e.details) ? e.details : [];
  const loose = [];
  for (const p of list) {
    const m = /^vpn\.peers(?:\[\d+\])?(?:\.([a-z_]+))?/.exec(p.path || '');
    const div = m && form.querySelector(`.field[data-field="${m[1] || 'name'}"]`);
    if (div) {
      div.classList.add('field-error');
      div.querySelector('input').setAttribute('aria-invalid', 'true');
      div.querySelector('.error').append(h('div', {}, p.message));
    } else loose.push(p);
  }
  if (!list.length || loose.length) {
    box.replaceChildren(h('div', { class: 'problems', role: 'alert' }, list.length ? `${list.length} problem(s); nothing was saved.` : e.message,
      ...loose.map((p) => h('div', {}, `${p.path}: ${p.message}`))));
  }
}

export async function vpnView() {
  const s = await api('GET', '/vpn');
  const peers = s.peers || [];
  const state = !s.enabled ? 'off' : s.running ? 'up' : 'not running';
  const act = (label, cls, attrs, fn) => h('button', { class: cls, ...attrs, onclick: async () => {
    try { await fn(); } catch (e) { fail(e); }
  } }, label);
  const cell = (label, ...kids) => h('td', { 'data-label': label }, ...kids);
  const rows = peers.map((p) => h('tr', { 'data-peer': p.name, class: p.enabled === false ? 'muted' : null },
    cell('Name', h('strong', {}, p.name), p.enabled === false ? ' (disabled)' : '', p.configured_endpoint ? h('div', { class: 'label' }, 'site to site') : ''),
    cell('Address', h('span', { class: 'mono' }, (p.allowed_ips || []).join(', '))),
    cell('Last handshake', p.latest_handshake_secs_ago === null || p.latest_handshake_secs_ago === undefined ? 'never' : `${ago(p.latest_handshake_secs_ago)} ago`),
    cell('Received / sent', `${size(p.rx_bytes)} / ${size(p.tx_bytes)}`),
    cell('Endpoint', h('span', { class: 'mono' }, p.endpoint || p.configured_endpoint || '—')),
    isAdmin() ? cell('', h('div', { class: 'row', style: 'margin:0' },
      p.enabled === false
        ? act('Enable', 'secondary', { 'data-enable': p.name, 'aria-label': `Enable ${p.name}` }, async () => {
          await api('POST', `/vpn/peers/${encodeURIComponent(p.name)}/enable`); toast(`${p.name} enabled`); redraw();
        })
        : act('Disable', 'secondary', { 'data-disable': p.name, 'aria-label': `Disable ${p.name}` }, async () => {
          await api('POST', `/vpn/peers/${encodeURIComponent(p.name)}/disable`); toast(`${p.name} disabled: it cannot connect`); redraw();
        }),
      act('Delete', 'danger', { 'data-delete': p.name, 'aria-label': `Delete ${p.name}` }, async () => {
        if (!confirm(`Delete VPN peer ${p.name}? Its tunnel stops at once; a device needs a new config to come back.`)) return;
        await api('DELETE', `/vpn/peers/${encodeURIComponent(p.name)}`); toast(`${p.name} deleted`); redraw();
      }))) : ''));

  const devBox = h('div', { id: 'device-problems' });
  const addDevice = h('form', { id: 'add-device' }, h('h2', {}, 'Add a device'),
    h('p', { class: 'muted' }, 'A phone or laptop (road warrior): it gets an address from the pool and fresh keys.'),
    h('div', { class: 'grid' },
      vpnField('dev', 'name', 'Device name', { required: true, autocomplete: 'off', placeholder: 'alice-phone', maxlength: 64 }),
      vpnField('dev', 'allowed_ips', 'Routes through the tunnel', { autocomplete: 'off', placeholder: 'default: the VPN networks' }, '(CIDRs, comma-separated; optional)')),
    devBox, h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add device')));
  addDevice.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (k) => addDevice.querySelector(`[name=${k}]`).value.trim();
    const body = { name: v('name'), allowed_ips: v('allowed_ips').split(',').map((x) => x.trim()).filter(Boolean) };
    try {
      fieldErrors(addDevice, devBox, null);
      const out = await api('POST', '/vpn/peers', body);
      await vpnView();
      showDevice(out);
    } catch (e) {
      // The vpn service names a bad name or route in its message.
      const field = /allowed_ips/.test(e.message) ? 'allowed_ips' : e.code === 'invalid_params' || e.code === 'exists' ? 'name' : null;
      fieldErrors(addDevice, devBox, field ? { details: [{ path: `vpn.peers.${field}`, message: e.message }] } : e);
    }
  });

  const siteBox = h('div', { id: 'site-problems' });
  const addSite = h('form', { id: 'add-site' }, h('h2', {}, 'Add a site-to-site peer'),
    h('p', { class: 'muted' }, 'Another node or WireGuard router; its keys stay there. Give it this node\'s public key: ',
      h('span', { class: 'mono break', id: 'vpn-public-key' }, s.public_key || '—'), '.'),
    h('div', { class: 'grid' },
      vpnField('site', 'name', 'Name', { required: true, autocomplete: 'off', placeholder: 'branch-office', maxlength: 64 }),
      vpnField('site', 'public_key', 'Its public key', { required: true, autocomplete: 'off', placeholder: 'base64, 44 characters', class: 'mono' }),
      vpnField('site', 'endpoint', 'Its endpoint', { autocomplete: 'off', placeholder: 'host:port' }, '(optional)'),
      vpnField('site', 'allowed_ips', 'Networks behind it', { required: true, autocomplete: 'off', placeholder: '10.7.0.2/32, 192.168.52.0/24' }, '(CIDRs, comma-separated)'),
      vpnField('site', 'persistent_keepalive', 'Keepalive (seconds)', { type: 'number', min: 0, max: 65535, inputmode: 'numeric' }, '(optional; 25 behind NAT)')),
    siteBox, h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Add site')));
  addSite.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (k) => addSite.querySelector(`[name=${k}]`).value.trim();
    const body = { name: v('name'), public_key: v('public_key'), endpoint: v('endpoint') || null,
      allowed_ips: v('allowed_ips').split(',').map((x) => x.trim()).filter(Boolean),
      persistent_keepalive: v('persistent_keepalive') === '' ? null : Number(v('persistent_keepalive')) };
    try {
      fieldErrors(addSite, siteBox, null);
      await api('POST', '/vpn/sites', body);
      toast(`Site ${body.name} added`);
      // A site is a new revision of the configuration, which the vpn
      // service takes up a moment after it is stored.
      await redrawWhen('/vpn', (v) => (v.peers || []).some((p) => p.name === body.name));
    } catch (e) { fieldErrors(addSite, siteBox, e); }
  });

  page('VPN',
    h('div', { class: 'card' }, h('h2', {}, 'Tunnel'), h('div', { class: 'grid' },
      h('div', {}, h('div', { class: 'label' }, 'State'), h('div', { class: 'stat', id: 'vpn-state' }, state)),
      h('div', {}, h('div', { class: 'label' }, 'Interface, port'), h('div', {}, `${s.interface} :${s.listen_port}`)),
      h('div', {}, h('div', { class: 'label' }, 'Endpoint for devices'), h('div', { class: 'mono break' }, s.endpoint || 'not set (vpn.endpoint)'))),
      s.error ? h('p', { class: 'problems' }, s.error) : '',
      s.enabled ? '' : h('p', { class: 'muted' }, 'The VPN is off: peers can be added, but connect only once vpn.enabled is on (', h('a', { href: '#/config?section=vpn' }, 'Configuration → vpn'), ').')),
    h('div', { id: 'device-config' }),
    h('div', { class: 'card' }, h('h2', {}, 'Peers'),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'vpn-peers', class: 'stack' },
        h('thead', {}, h('tr', {}, ...['Name', 'Address', 'Last handshake', 'Received / sent', 'Endpoint', ''].slice(0, isAdmin() ? 6 : 5).map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows))) : h('p', { class: 'muted', id: 'vpn-no-peers' }, 'No peers yet.')),
    isAdmin() ? h('div', { class: 'card' }, addDevice) : '',
    isAdmin() ? h('div', { class: 'card' }, addSite) : '');
}

// The new device's config, shown once: QR code and download.
function showDevice(out) {
  const file = `${out.name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 15)}.conf`;
  const url = URL.createObjectURL(new Blob([out.config], { type: 'text/plain' }));
  window.addEventListener('hashchange', () => URL.revokeObjectURL(url), { once: true });
  document.getElementById('device-config').replaceChildren(h('div', { class: 'card', id: 'device-shown' },
    h('h2', {}, `Device ${out.name} added (${out.address})`),
    h('p', {}, h('strong', {}, 'Shown only now: '), 'this config holds the device\'s private key, which the node does not store. ',
      'Scan the QR code with the WireGuard app or download the file; if it is lost, delete the device and add it again.'),
    out.enabled === false ? h('p', { class: 'muted' }, 'The VPN is off: the device connects once vpn.enabled is on.') : '',
    h('img', { id: 'device-qr', class: 'qr', src: 'data:image/svg+xml,' + encodeURIComponent(out.qr_svg), alt: `QR code of the WireGuard config for ${out.name}` }),
    h('div', { class: 'row' }, h('a', { id: 'device-download', href: url, download: file }, `Download ${file}`)),
    h('details', {}, h('summary', {}, 'Show the config as text'), h('pre', { class: 'secret mono', id: 'device-text' }, out.config))));
  document.getElementById('device-shown').scrollIntoView({ block: 'nearest' });
}
