// The console's PostgreSQL HA page: each group the controller runs (the
// master it holds, each server's role, reachability over SQL and SSH,
// replication lag as the master reports it, the last failover and the
// last action, each with why),
// groups left out for bad settings, and the backup controller's last
// result and next run. Actions are the controller's own: run the backup
// now, forget a reinstalled server's SSH host key.

import { h, api, page, toast, fail, isAdmin, redraw, table, td, when } from './app.js';

const bytes = (n) => (n == null ? '—' : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
const secs = (s) => (s == null ? '—' : `${s.toFixed(1)} s`);

// `user@host:port` → `host:port`, the form host keys are pinned under.
const sshHost = (ssh) => ssh.slice(ssh.lastIndexOf('@') + 1);

function unpinButton(s) {
  const host = sshHost(s.ssh);
  return h('button', { class: 'secondary', onclick: async () => {
    if (!confirm(`Forget the pinned SSH host key of ${host}? Do this only after checking that the server was reinstalled: the next login trusts whatever key it shows.`)) return;
    try { await api('POST', '/pgha/unpin', { host }); toast(`Host key of ${host} forgotten; the next login pins the new one`); redraw(); } catch (e) { fail(e); }
  } }, `Forget host key of ${host}`);
}

function group(g) {
  const servers = g.servers.map((s, i) => h('tr', { 'data-server': s.pg, 'data-role': s.role },
    td('Server', h('span', { class: 'mono' }, s.pg), i === g.master ? h('strong', {}, ' (master)') : ''),
    td('Role', h('span', { class: s.role === 'down' ? 'state-failed' : 'state-running' }, s.role)),
    td('SSH', h('span', { class: 'mono' }, s.ssh), ` ${s.ssh_state}`),
    td('Receiving', s.polled && s.polled.receiver ? `${s.polled.receiver.status}${s.polled.receiver.silence_seconds != null ? `, quiet ${secs(s.polled.receiver.silence_seconds)}` : ''}` : '—'),
    td('Problem', s.error ? h('span', { class: 'error' }, s.error) : ''),
    h('td', {}, isAdmin() ? unpinButton(s) : '')));
  const master = g.servers[g.master];
  const replicas = (master && master.polled ? master.polled.replicas : []).map((r) => h('tr', {},
    td('Replica', r.client_addr || r.application_name), td('State', r.state), td('Sync', r.sync_state),
    td('Lag (bytes)', bytes(r.lag_bytes)), td('Lag (time)', secs(r.lag_seconds))));
  const action = (a, id, none) => (a ? h('p', { id }, h('strong', {}, a.action), ` at ${a.at}: ${a.reason} — `, a.result)
    : h('p', { class: 'muted', id }, none));
  return h('div', { class: 'card', 'data-group': g.key },
    h('h2', {}, `Group ${g.key}`),
    h('div', { class: 'grid' },
      h('div', {}, h('div', { class: 'label' }, 'Situation'), h('div', { class: 'stat', id: `pgha-${g.key}-situation` }, g.situation)),
      h('div', {}, h('div', { class: 'label' }, 'Master'), h('div', { class: 'stat mono break', id: `pgha-${g.key}-master` }, master ? master.pg : '—')),
      h('div', {}, h('div', { class: 'label' }, 'Referee'), h('div', {}, g.referee)),
      g.pending ? h('div', {}, h('div', { class: 'label' }, 'Pending'), h('div', { class: 'state-starting' }, `${g.pending.what} in ${Math.ceil(g.pending.in_seconds)} s`)) : ''),
    h('h3', {}, 'Servers'),
    table(`pgha-${g.key}-servers`, ['Server', 'Role', 'SSH', 'Receiving', 'Problem', ''], servers),
    h('h3', {}, 'Replication (as the master reports it)'),
    replicas.length ? table(`pgha-${g.key}-replicas`, ['Replica', 'State', 'Sync', 'Lag (bytes)', 'Lag (time)'], replicas)
      : h('p', { class: 'muted' }, 'No replica is connected to the master.'),
    h('h3', {}, 'Last failover'),
    action(g.last_failover, `pgha-${g.key}-failover`, 'None since the controller started.'),
    h('h3', {}, 'Last action (failover, fence, rebuild)'),
    action(g.last_action, `pgha-${g.key}-last`, 'None since the controller started.'),
    h('p', { class: 'muted' }, 'Log: ', h('span', { class: 'mono break' }, g.log)));
}

function backups(s, configured) {
  return h('div', { class: 'card', id: 'pgha-backup' }, h('h2', {}, 'Backups'),
    configured ? h('div', { class: 'grid' },
      h('div', {}, h('div', { class: 'label' }, 'Last run'), h('div', { id: 'pgha-backup-last' }, s.backup_last || 'none since the controller started')),
      h('div', {}, h('div', { class: 'label' }, 'Next run'), h('div', { id: 'pgha-backup-next' }, s.backup_next ? when(s.backup_next) : 'no window in the next two weeks')))
      : h('p', { class: 'muted' }, 'No backup controller: set pgha.backup_controller under ', h('a', { href: '#/config?section=pgha' }, 'Configuration → pgha'), '.'),
    configured && isAdmin() ? h('div', { class: 'row' }, h('button', { id: 'pgha-backup-now', onclick: async () => {
      if (!confirm('Back up every instance and the sync folder now, outside the window?')) return;
      try { await api('POST', '/pgha/backup'); toast('Backup started; its result shows here when it ends'); } catch (e) { fail(e); }
    } }, 'Back up now')) : '');
}

export async function pghaView() {
  const cfg = (await api('GET', '/config')).config.pgha || {};
  let s;
  try { s = await api('GET', '/services/pgha/status'); } catch (e) {
    return page('PostgreSQL HA', h('div', { class: 'card' }, h('p', { class: 'problems' }, `The pgha service is not answering: ${e.message}`),
      h('p', {}, 'Groups are set under ', h('a', { href: '#/config?section=pgha' }, 'Configuration → pgha'), '.')));
  }
  const excluded = (s.excluded || []).map((x) => h('div', { class: 'card', 'data-excluded': x.group },
    h('h2', {}, `Group ${x.group}: left out`), h('ul', { class: 'problems' }, ...x.problems.map((p) => h('li', {}, p)))));
  page('PostgreSQL HA',
    s.groups.length || excluded.length ? '' : h('div', { class: 'card' }, h('p', {}, 'No groups: add one under ', h('a', { href: '#/config?section=pgha' }, 'Configuration → pgha'), '.')),
    ...s.groups.map(group), ...excluded,
    backups(s, !!cfg.backup_controller),
    h('p', { class: 'muted' }, 'The controller logs in with this SSH key; put it in each server\'s authorized_keys: ',
      h('span', { class: 'mono break', id: 'pgha-client-key' }, s.client_key || '—')));
}
