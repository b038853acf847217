// The console's Cluster page: the cluster this node is in (JetStream mode
// and meta leader, replicas with the warning while the data has one
// copy), every member with its health, last heartbeat, role, version,
// RSS and load balancer, the singletons and where they run, the links to
// other clusters, and for admins the
// join token on request. A node outside a cluster offers an admin
// `cluster init` and joining another cluster with a pasted join token.

import { h, api, page, toast, fail, isAdmin, redraw, table, td, ago } from './app.js';

const rss = (kib) => (kib >= 1024 ? `${(kib / 1024).toFixed(1)} MiB` : `${kib} KiB`);

// "up", "draining" (leaving: it finishes what it has, takes nothing new),
// "left" (its last heartbeat said it drains) or "down".
const health = (m) => (m.state === 'up' ? (m.draining ? 'draining' : 'up') : m.draining ? 'left' : 'down');
const healthClass = { up: 'state-running', draining: 'state-starting', left: 'muted', down: 'state-failed' };

function tokenCard() {
  const out = h('div', { id: 'cluster-token' });
  return h('div', { class: 'card' }, h('h2', {}, 'Add a node'),
    h('p', {}, 'On the new node, run ', h('span', { class: 'mono' }, 'alpharen ctl cluster join TOKEN'),
      '. The token holds the join secret: treat it as a password.'),
    h('div', { class: 'row' }, h('button', { id: 'cluster-show-token', class: 'secondary', onclick: async () => {
      try {
        const t = await api('POST', '/cluster/token');
        out.replaceChildren(h('p', { class: 'mono break', id: 'cluster-token-text' }, t.token));
      } catch (e) { fail(e); }
    } }, 'Show join token')), out);
}

function initCard() {
  const box = h('div', { role: 'alert' });
  return h('form', { class: 'card', id: 'cluster-init', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { name: f.get('name').trim() };
    if (f.get('advertise').trim()) body.advertise = f.get('advertise').trim();
    try {
      const r = await api('POST', '/cluster/init', body);
      toast(`Cluster ${r.cluster} created`);
      await redraw();
    } catch (e) { box.replaceChildren(h('div', { class: 'problems' }, e.message)); }
  } }, h('h2', {}, 'Make a cluster of this node'),
  h('p', { class: 'muted' }, 'Makes a cluster CA and a join token; other nodes join with the token. To join an existing cluster instead, paste its join token below.'),
  h('div', { class: 'grid' },
    h('div', { class: 'field' }, h('label', { for: 'cluster-name' }, 'Cluster name'),
      h('input', { id: 'cluster-name', name: 'name', required: true, autocomplete: 'off', placeholder: 'lab', pattern: '[A-Za-z0-9_-]+' })),
    h('div', { class: 'field' }, h('label', { for: 'cluster-advertise' }, 'Address other members reach this node at', h('span', { class: 'muted' }, ' (optional; default: its first global address)')),
      h('input', { id: 'cluster-advertise', name: 'advertise', autocomplete: 'off' }))),
  box, h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Make cluster')));
}

function joinCard() {
  const box = h('div', { role: 'alert', id: 'cluster-join-error' });
  return h('form', { class: 'card', id: 'cluster-join', onsubmit: async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { token: f.get('token').trim() };
    if (f.get('advertise').trim()) body.advertise = f.get('advertise').trim();
    try {
      const r = await api('POST', '/cluster/join-with-token', body);
      toast(`Joined cluster ${r.cluster}`);
      await redraw();
    } catch (e) { box.replaceChildren(h('div', { class: 'problems' }, e.message)); }
  } }, h('h2', {}, 'Join a cluster'),
  h('p', { class: 'muted' }, 'Paste the join token a member prints (alpharen ctl cluster token, or its Cluster page). The token holds the join secret.'),
  h('div', { class: 'grid' },
    h('div', { class: 'field' }, h('label', { for: 'cluster-join-token' }, 'Join token'),
      h('input', { id: 'cluster-join-token', name: 'token', required: true, autocomplete: 'off', placeholder: 'arc1.…@host:port' })),
    h('div', { class: 'field' }, h('label', { for: 'cluster-join-advertise' }, 'Address other members reach this node at', h('span', { class: 'muted' }, ' (optional)')),
      h('input', { id: 'cluster-join-advertise', name: 'advertise', autocomplete: 'off' }))),
  box, h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Join')));
}

function linksCard(l) {
  const rows = (l.out || []).map((x) => h('tr', { 'data-link': x.name },
    td('Cluster', h('strong', {}, x.name)), td('Way', 'this node links to it'),
    td('Address', h('span', { class: 'mono' }, x.url)),
    td('State', h('span', { class: x.state === 'connected' ? 'state-running' : 'state-failed' }, x.state))));
  rows.push(...(l.in || []).map((x) => h('tr', {},
    td('Cluster', '—'), td('Way', 'links to this node'),
    td('Address', h('span', { class: 'mono' }, x.from)), td('State', h('span', { class: 'state-running' }, 'connected')))));
  return h('div', { class: 'card' }, h('h2', {}, 'Links to other clusters'),
    table('cluster-links', ['Cluster', 'Way', 'Address', 'State'], rows),
    h('p', { class: 'muted' }, l.leaf_port ? `This node takes links on port ${l.leaf_port}. ` : '',
      'alpharen ctl cluster link-token makes a link token here; alpharen ctl cluster link TOKEN on the other cluster links it.'));
}

// The singletons (pgha's controllers) and the member holding each lease;
// a lease not renewed within its time has no holder until one takes it.
function singletonsCard(sg) {
  const rows = Object.entries(sg || {}).map(([name, l]) => h('tr', { 'data-singleton': name },
    td('Singleton', h('strong', {}, name)),
    td('Runs on', l.holder ? h('span', { class: 'state-running' }, l.holder) : h('span', { class: 'state-failed' }, 'nobody (lease expired)')),
    td('Renewed', `${ago(l.renewed_s_ago)} ago`),
    td('Epoch', String(l.epoch))));
  return h('div', { class: 'card' }, h('h2', {}, 'Singletons'),
    table('cluster-singletons', ['Singleton', 'Runs on', 'Renewed', 'Epoch'], rows),
    h('p', { class: 'muted' }, 'Each runs on one member at a time, on a lease renewed every 2 s; when its member dies, another takes it over within 10–14 s. Scheduled jobs are not listed: each fire time is claimed by one member.'));
}

export async function clusterView() {
  const s = await api('GET', '/cluster');
  if (!s.name) {
    page('Cluster', h('div', { class: 'card' }, h('p', { id: 'cluster-none' }, `${s.node} is not in a cluster.`)),
      isAdmin() ? initCard() : '', isAdmin() ? joinCard() : '');
    return;
  }
  const js = s.jetstream || {};
  const rows = (s.members || []).map((m) => {
    const st = health(m);
    return h('tr', { 'data-member': m.node, 'data-health': st },
      td('Member', h('strong', {}, m.node), m.node === s.node ? ' (this node)' : ''),
      td('Health', h('span', { class: healthClass[st] }, st)),
      td('Last heartbeat', `${ago(m.age_s)} before the newest`),
      td('Role', m.node === js.meta_leader ? 'JetStream meta leader' : 'member'),
      td('Version', m.version),
      td('RSS', rss(m.rss_kib)),
      td('Load balancer', h('span', { class: 'mono' }, m.lb ? m.lb.url : '—')));
  });
  page('Cluster',
    h('div', { class: 'card' },
      h('div', { class: 'grid' },
        h('div', {}, h('div', { class: 'label' }, 'Cluster'), h('div', { class: 'stat', id: 'cluster-name' }, s.name)),
        h('div', {}, h('div', { class: 'label' }, 'This node'), h('div', {}, s.node)),
        h('div', {}, h('div', { class: 'label' }, 'nats-server'), h('div', {}, s.nats)),
        h('div', {}, h('div', { class: 'label' }, 'JetStream'), h('div', {}, js.mode || '—')),
        h('div', {}, h('div', { class: 'label' }, 'Meta leader'), h('div', { id: 'cluster-leader' }, js.meta_leader || 'none'))),
      h('p', { id: 'cluster-replicas', class: s.replicas < 3 ? 'problems' : 'muted' }, s.replicas_note)),
    h('div', { class: 'card' }, h('h2', {}, 'Members'),
      s.members_error ? h('p', { class: 'problems', id: 'cluster-members-error' }, s.members_error) : '',
      table('cluster-members', ['Member', 'Health', 'Last heartbeat', 'Role', 'Version', 'RSS', 'Load balancer'], rows),
      h('p', { class: 'muted' }, 'A member whose last heartbeat is older than 10 s is down. The load balancer on :11223 of every member sends requests to the members that are up and not draining.')),
    singletonsCard(s.singletons),
    linksCard(s.links || {}),
    isAdmin() ? tokenCard() : '');
}
