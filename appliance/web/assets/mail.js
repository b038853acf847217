// The console's Mail page: the relay's queue (from, to, age, attempts,
// next try, last error) and its dead letters, each with retry and delete,
// "try all now", a test mail, and the relay's settings with "Test
// connection" (of the form as filled in, before it is saved).

import { h, api, page, toast, fail, isAdmin, redraw, table, td, showProblems } from './app.js';

const enc = encodeURIComponent;
const when = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : '—');

function messages(id, list, dead) {
  const rows = list.map((m) => h('tr', { 'data-msg': m.id },
    td('From', m.from || '<>'), td('To', m.to.join(', ')), td('Received', when(m.received)), td('Attempts', m.attempts),
    dead ? '' : td('Next try', when(m.next_try)), td('Last error', m.last_error || ''),
    h('td', {}, isAdmin() ? h('div', { class: 'row', style: 'margin:0' },
      h('button', { class: 'secondary', onclick: async () => {
        try { await api('POST', `/mail/queue/${enc(m.id)}/retry`); toast(`Retrying the mail to ${m.to.join(', ')}`); setTimeout(redraw, 1500); } catch (e) { fail(e); }
      } }, dead ? 'Queue again' : 'Retry now'),
      h('button', { class: 'danger', onclick: async () => {
        if (!confirm(`Delete the mail from ${m.from || '<>'} to ${m.to.join(', ')}? It will not be delivered.`)) return;
        try { await api('DELETE', `/mail/queue/${enc(m.id)}`); toast('Deleted'); redraw(); } catch (e) { fail(e); }
      } }, 'Delete')) : '')));
  const heads = ['From', 'To', 'Received', 'Attempts', ...(dead ? [] : ['Next try']), 'Last error', ''];
  return rows.length ? table(id, heads, rows)
    : h('p', { class: 'muted', id: `${id}-empty` }, dead ? 'No dead letters.' : 'The queue is empty.');
}

function testForm() {
  const form = h('form', { id: 'mail-test' }, h('h2', {}, 'Send a test mail'),
    h('div', { class: 'grid' }, h('div', {}, h('label', { for: 'test-to' }, 'To'),
      h('input', { id: 'test-to', type: 'email', multiple: true, autocomplete: 'off', placeholder: 'default: mail.admin_recipients' }))),
    h('div', { class: 'row' }, h('button', {}, 'Send test mail')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const to = form.querySelector('#test-to').value.split(',').map((s) => s.trim()).filter(Boolean);
    try { await api('POST', '/mail/test', { to }); toast('Test mail queued'); setTimeout(redraw, 1000); } catch (e) { fail(e); }
  });
  return form;
}

function relayText(r, usable) {
  if (!r) return 'No relay: mail is accepted and stays queued until one is set.';
  const where = r.mode === 'direct' ? 'direct to each domain\'s mail servers' : `smarthost ${r.host}:${r.port} (TLS ${r.tls})`;
  return `Relay: ${where}${usable ? '' : ' — not usable now'}`;
}

const relayField = (path) => {
  const m = /^mail\.relay\.(mode|host|port|tls|username|ca_file)$/.exec(path);
  return m && `relay-${m[1]}`;
};

// `[mail.relay]` as a form; the password goes to the secret store, never
// into the revision, and an empty password field keeps the stored one.
function relayForm(mail, revision) {
  const r = mail.relay || { mode: 'smarthost', port: 587, tls: 'starttls' };
  const box = h('div', { class: 'error', role: 'alert', id: 'relay-problems' });
  const result = h('p', { id: 'relay-result', role: 'status' });
  const field = (key, label, control) => h('div', {}, h('label', { for: `relay-${key}` }, label), control,
    h('div', { class: 'error', id: `relay-${key}-error`, role: 'alert' }));
  const select = (key, options, value) => h('select', { id: `relay-${key}` },
    ...options.map((o) => h('option', { value: o, ...(o === value ? { selected: true } : {}) }, o)));
  const input = (key, value, attrs = {}) => h('input', { id: `relay-${key}`, autocomplete: 'off', value: value ?? '', ...attrs });
  const form = h('form', { id: 'relay-form' }, h('h2', {}, 'Relay settings'),
    h('div', { class: 'grid' },
      field('mode', 'Mode', select('mode', ['smarthost', 'direct'], r.mode)),
      field('host', 'Smarthost', input('host', r.host, { class: 'mono', placeholder: 'smtp.example.org' })),
      field('port', 'Port', input('port', r.port, { type: 'number', min: 1, max: 65535 })),
      field('tls', 'TLS', select('tls', ['starttls', 'tls', 'none'], r.tls || 'starttls')),
      field('username', 'User name', input('username', r.username, { placeholder: 'none: no AUTH' })),
      field('password', 'Password', input('password', '', { type: 'password', autocomplete: 'new-password', placeholder: 'empty: keep the stored one' })),
      field('ca_file', 'CA file on the node', input('ca_file', r.ca_file, { class: 'mono', placeholder: 'optional, e.g. /data/tls/relay-ca.pem' }))),
    box, result,
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'secondary', id: 'relay-test' }, 'Test connection'), h('button', { id: 'relay-save' }, 'Save relay')));
  form.addEventListener('input', (ev) => {
    const err = form.querySelector(`#${ev.target.id}-error`);
    if (err) err.textContent = '';
    ev.target.removeAttribute('aria-invalid');
  });
  const value = (key) => form.querySelector(`#relay-${key}`).value.trim();
  const relay = () => {
    const out = { mode: value('mode'), port: Number(value('port')) || 587, tls: value('tls') };
    for (const k of ['host', 'username', 'ca_file']) if (value(k)) out[k] = value(k);
    return out;
  };
  form.querySelector('#relay-test').addEventListener('click', async () => {
    result.textContent = 'Connecting…';
    try {
      const o = await api('POST', '/mail/relay/test', { relay: relay(), password: value('password') });
      result.textContent = o.ok ? `Connected to ${o.host}:${o.port} (TLS ${o.tls}${o.auth ? ', logged in' : ''}) in ${o.millis} ms.`
        : `Could not use ${o.host}:${o.port}: ${o.error}`;
      result.className = o.ok ? 'ok' : 'problems';
    } catch (e) { result.textContent = e.message; result.className = 'problems'; }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const config = { mail: { ...mail, relay: relay() } };
    if (value('password')) config.secrets = { 'mail.relay.password': value('password') };
    try {
      const out = await api('PATCH', '/config', { config, comment: 'mail relay', expect_revision: revision ?? 0 });
      toast(out.revision ? `Saved as revision ${out.revision.id}` : 'Nothing changed');
      redraw();
    } catch (e) { showProblems(form, box, e, relayField); }
  });
  return form;
}

export async function mailView() {
  const [queue, dead, status, cur] = await Promise.all([
    api('GET', '/mail/queue'), api('GET', '/mail/queue?dead=true'), api('GET', '/services/mail/status'),
    isAdmin() ? api('GET', '/config?section=mail') : null,
  ]);
  page('Mail',
    h('div', { class: 'card' }, h('h2', {}, 'Queue'),
      h('p', { class: 'muted', id: 'mail-relay' }, relayText(status.relay, status.relay_usable)),
      messages('mail-queue', queue.messages, false),
      isAdmin() && queue.messages.length ? h('div', { class: 'row' }, h('button', { id: 'mail-flush', onclick: async () => {
        try { const o = await api('POST', '/mail/flush'); toast(`Trying ${o.queued} now`); setTimeout(redraw, 1500); } catch (e) { fail(e); }
      } }, 'Try all now')) : ''),
    h('div', { class: 'card' }, h('h2', {}, 'Dead letters'), h('p', { class: 'muted' }, 'Mail the node gave up on after its last retry.'),
      messages('mail-dead', dead.messages, true)),
    isAdmin() ? h('div', { class: 'card' }, testForm()) : '',
    cur ? h('div', { class: 'card' }, relayForm(cur.config || {}, cur.revision)) : '');
}
