// The Integrator page's Jobs, Queues and KV tabs: the scheduler (run a job
// now), the pub/sub queues with their dead letters (browse, re-drive one
// or all, purge), and the key-value store (browse by prefix, set, delete).

import { h, api, toast, fail, isAdmin, redraw, table, td } from './app.js';

const enc = encodeURIComponent;

// Job changes are config revisions (History can roll them back); the
// integrator takes a new revision a moment after it is stored, so the
// jobs are read again until `done(jobs)` holds (at most 5 s).
export async function untilJobs(done) {
  for (let i = 0; i < 20; i++) {
    if (done(await api('GET', '/integrator/jobs').catch(() => []))) return;
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

export async function jobsCard() {
  const jobs = await api('GET', '/integrator/jobs');
  const toggle = (j) => async () => {
    const what = j.enabled === false ? 'enable' : 'disable';
    try {
      const out = await api('POST', `/integrator/jobs/${enc(j.name)}/${what}`);
      toast(out.revision ? `${j.name} ${what}d (revision ${out.revision.id})` : `${j.name} was already ${what}d`);
      await untilJobs((now) => now.some((x) => x.name === j.name && x.enabled === (what === 'enable')));
      redraw();
    } catch (e) { fail(e); }
  };
  const rows = jobs.map((j) => h('tr', { 'data-job': j.name },
    td('Job', j.name), td('Service', j.service || ''), td('Kind', j.kind || ''),
    td('Enabled', j.enabled === false ? 'no' : 'yes'),
    td('Next run', j.enabled === false ? 'disabled' : (j.next_run || '—')),
    td('Last run', j.last_run ? `${j.last_run}${j.last_trigger ? ` (${j.last_trigger})` : ''}` : 'never'),
    td('Result', j.last_result ? `${j.last_result}${j.last_ms != null ? ` in ${Math.round(j.last_ms)} ms` : ''}` : ''),
    td('Runs', j.runs),
    h('td', {}, isAdmin() ? h('div', { class: 'row' }, h('button', { class: 'secondary', onclick: async () => {
      try { await api('POST', `/integrator/jobs/${enc(j.name)}/run`); toast(`${j.name} started`); setTimeout(redraw, 1000); } catch (e) { fail(e); }
    } }, `Run ${j.name} now`),
    h('button', { class: 'secondary', 'data-toggle': j.name, onclick: toggle(j) }, `${j.enabled === false ? 'Enable' : 'Disable'} ${j.name}`)) : '')));
  return h('div', { class: 'card' }, h('h2', {}, 'Scheduled jobs'),
    rows.length ? table('int-jobs', ['Job', 'Service', 'Kind', 'Enabled', 'Next run', 'Last run', 'Result', 'Runs', ''], rows)
      : h('p', { class: 'muted' }, 'No jobs yet.'));
}

// One queue's dead letters, each with its error and a re-drive button.
async function deadLetters(box, q) {
  const msgs = await api('GET', `/integrator/topics/${enc(q.topic)}/messages?subscriber=${enc(q.subscriber)}&dlq=true`);
  const redrive = (body, what) => async () => {
    try {
      const out = await api('POST', `/integrator/topics/${enc(q.topic)}/redrive`, body);
      toast(`${out.redriven} ${what} back on the queue`); redraw();
    } catch (e) { fail(e); }
  };
  const rows = msgs.map((m) => h('tr', { 'data-msg': m.id },
    td('Message', m.msg_id), td('Attempts', m.attempts), td('Error', m.last_error || ''),
    td('Data', h('code', {}, JSON.stringify(m.data))),
    h('td', {}, isAdmin() ? h('button', { class: 'secondary', onclick: redrive({ id: m.id }, 'message') }, 'Re-drive') : '')));
  box.replaceChildren(h('h3', {}, `Dead letters of ${q.topic} → ${q.subscriber}`),
    rows.length ? table('dead-letters', ['Message', 'Attempts', 'Error', 'Data', ''], rows) : h('p', { class: 'muted' }, 'None.'),
    isAdmin() && rows.length ? h('div', { class: 'row' },
      h('button', { id: 'redrive-all', onclick: redrive({ subscriber: q.subscriber }, 'dead letters') }, 'Re-drive all'),
      h('button', { class: 'danger', onclick: async () => {
        if (!confirm(`Drop the ${rows.length} dead letters of ${q.topic} → ${q.subscriber}?`)) return;
        try { await api('POST', `/integrator/topics/${enc(q.topic)}/purge`, { subscriber: q.subscriber, dlq: true }); redraw(); } catch (e) { fail(e); }
      } }, 'Drop them')) : '');
}

export async function queuesCard() {
  const queues = await api('GET', '/integrator/topics');
  const box = h('div', { id: 'dlq-box' });
  const rows = queues.map((q) => h('tr', { 'data-queue': `${q.topic}/${q.subscriber}` },
    td('Topic', q.topic), td('Subscriber', q.subscriber), td('Ready', q.ready), td('In flight', q.in_flight),
    td('Dead', q.dead), td('Depth limit', q.max_depth ?? '—'),
    h('td', {}, q.dead ? h('button', { class: 'secondary', onclick: () => deadLetters(box, q).catch(fail) },
      `Dead letters of ${q.subscriber}`) : '')));
  return h('div', { class: 'card' }, h('h2', {}, 'Topics and queues'),
    rows.length ? table('int-queues', ['Topic', 'Subscriber', 'Ready', 'In flight', 'Dead', 'Depth limit', ''], rows)
      : h('p', { class: 'muted' }, 'No topics: add them under [[integrator.topics]] in the configuration.'),
    box);
}

export async function kvCard(ns, prefix) {
  const out = await api('GET', `/integrator/kv/${enc(ns)}?prefix=${enc(prefix)}`);
  const valueBox = h('div', { id: 'kv-value' });
  const show = async (key) => {
    try {
      const v = await api('GET', `/integrator/kv/${enc(ns)}/${enc(key)}`);
      valueBox.replaceChildren(h('h3', {}, key), h('pre', { class: 'log', id: 'kv-shown' }, JSON.stringify(v.value, null, 2)),
        isAdmin() ? h('button', { class: 'danger', onclick: async () => {
          if (!confirm(`Delete ${key}?`)) return;
          try { await api('DELETE', `/integrator/kv/${enc(ns)}/${enc(key)}`); toast(`${key} deleted`); redraw(); } catch (e) { fail(e); }
        } }, `Delete ${key}`) : '');
    } catch (e) { fail(e); }
  };
  const filter = h('form', { id: 'kv-filter', class: 'grid' },
    h('div', {}, h('label', { for: 'kv-ns' }, 'Namespace'), h('select', { id: 'kv-ns' },
      ...[...new Set([ns, ...out.namespaces.map((n) => n.ns)])].map((n) => h('option', { value: n, selected: n === ns }, n)))),
    h('div', {}, h('label', { for: 'kv-prefix' }, 'Keys starting with'), h('input', { id: 'kv-prefix', value: prefix, autocomplete: 'off' })),
    h('div', { class: 'row' }, h('button', { class: 'secondary' }, 'Show')));
  filter.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/integrator?tab=kv&ns=${enc(filter.querySelector('#kv-ns').value)}&prefix=${enc(filter.querySelector('#kv-prefix').value)}`;
  });
  const rows = out.keys.map((k) => h('tr', { 'data-key': k }, td('Key', h('button', { class: 'link', onclick: () => show(k) }, k))));
  const setForm = h('form', { id: 'kv-set' }, h('h3', {}, 'Set a key'),
    h('div', { class: 'grid' },
      h('div', {}, h('label', { for: 'kv-key' }, 'Key'), h('input', { id: 'kv-key', required: true, autocomplete: 'off' })),
      h('div', {}, h('label', { for: 'kv-val' }, 'Value (JSON)'), h('textarea', { id: 'kv-val', rows: 3, class: 'mono', required: true })),
      h('div', {}, h('label', { for: 'kv-ttl' }, 'Expires after (seconds)'), h('input', { id: 'kv-ttl', type: 'number', min: 1, inputmode: 'numeric' }))),
    h('div', { class: 'row' }, h('button', {}, 'Set')));
  setForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let value;
    try { value = JSON.parse(setForm.querySelector('#kv-val').value); } catch (e) { toast(`The value is not JSON: ${e.message}`, true); return; }
    const ttl = setForm.querySelector('#kv-ttl').value;
    const key = setForm.querySelector('#kv-key').value;
    try { await api('PUT', `/integrator/kv/${enc(ns)}/${enc(key)}`, { value, ttl: ttl ? Number(ttl) : null }); toast(`${key} set`); redraw(); } catch (e) { fail(e); }
  });
  return h('div', { class: 'card' }, h('h2', {}, 'Key-value store'), filter,
    rows.length ? table('kv-keys', ['Key'], rows) : h('p', { class: 'muted' }, 'No keys.'),
    valueBox, isAdmin() ? setForm : '');
}
