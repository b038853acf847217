// The console's Mail page: the relay's queue (from, to, age, attempts,
// next try, last error) and its dead letters, each with retry and delete,
// "try all now", and a test mail.

import { h, api, page, toast, fail, isAdmin, route, table, td } from './app.js';

const enc = encodeURIComponent;
const when = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : '—');

function messages(id, list, dead) {
  const rows = list.map((m) => h('tr', { 'data-msg': m.id },
    td('From', m.from || '<>'), td('To', m.to.join(', ')), td('Received', when(m.received)), td('Attempts', m.attempts),
    dead ? '' : td('Next try', when(m.next_try)), td('Last error', m.last_error || ''),
    h('td', {}, isAdmin() ? h('div', { class: 'row', style: 'margin:0' },
      h('button', { class: 'secondary', onclick: async () => {
        try { await api('POST', `/mail/queue/${enc(m.id)}/retry`); toast(`Retrying the mail to ${m.to.join(', ')}`); setTimeout(route, 1500); } catch (e) { fail(e); }
      } }, dead ? 'Queue again' : 'Retry now'),
      h('button', { class: 'danger', onclick: async () => {
        if (!confirm(`Delete the mail from ${m.from || '<>'} to ${m.to.join(', ')}? It will not be delivered.`)) return;
        try { await api('DELETE', `/mail/queue/${enc(m.id)}`); toast('Deleted'); route(); } catch (e) { fail(e); }
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
    try { await api('POST', '/mail/test', { to }); toast('Test mail queued'); setTimeout(route, 1000); } catch (e) { fail(e); }
  });
  return form;
}

export async function mailView() {
  const [queue, dead, status] = await Promise.all([
    api('GET', '/mail/queue'), api('GET', '/mail/queue?dead=true'), api('GET', '/services/mail/status'),
  ]);
  page('Mail',
    h('div', { class: 'card' }, h('h2', {}, 'Queue'),
      h('p', { class: 'muted', id: 'mail-relay' }, status.relay
        ? `Relay: ${status.relay.mode} ${status.relay.host}:${status.relay.port} (TLS ${status.relay.tls})${status.relay_usable ? '' : ' — not usable now'}`
        : 'No relay: mail goes straight to each domain\'s mail server.'),
      messages('mail-queue', queue.messages, false),
      isAdmin() && queue.messages.length ? h('div', { class: 'row' }, h('button', { id: 'mail-flush', onclick: async () => {
        try { const o = await api('POST', '/mail/flush'); toast(`Trying ${o.queued} now`); setTimeout(route, 1500); } catch (e) { fail(e); }
      } }, 'Try all now')) : ''),
    h('div', { class: 'card' }, h('h2', {}, 'Dead letters'), h('p', { class: 'muted' }, 'Mail the node gave up on after its last retry.'),
      messages('mail-dead', dead.messages, true)),
    isAdmin() ? h('div', { class: 'card' }, testForm()) : '');
}
