// The console's Reaction page: the approvals inbox (approve or deny, each
// behind a confirm), flow runs with each task's state, output and timing
// (re-read every 2 s while one is running, for at most 5 minutes), retry
// and skip of a run's current task, a flow started by hand (now or at a
// time), the scheduled starts (a waiting one can be cancelled), agents,
// incidents, statistics, and the rules and flows of [reaction] read-only.
// Acting needs the operator or admin role; the definitions are changed on
// the Configuration page.

import { h, api, page, toast, fail, canOperate, table, td } from './app.js';

const enc = encodeURIComponent;
const at = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const secs = (ms) => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 0)} s`);
const POLL_MS = 2000;
const POLL_MAX = 150;
let timer = null;

function act(method, path, done) {
  return async () => {
    try { await api(method, path); toast(done); await update(); } catch (e) { fail(e); }
  };
}

function inbox(list) {
  if (!list.length) return h('p', { class: 'muted', id: 'rx-inbox-empty' }, 'Nothing waits for approval.');
  return table('rx-inbox', ['#', 'Rule', 'Agent', 'Line', 'Seen', ''], list.map((i) => h('tr', { 'data-incident': i.id },
    td('#', i.id), td('Rule', i.rule), td('Agent', i.agent), td('Line', h('span', { class: 'mono break' }, i.line)), td('Seen', at(i.at_ms)),
    td('', canOperate() ? h('div', { class: 'row', style: 'margin:0' },
      h('button', { 'aria-label': `Approve incident ${i.id}`, onclick: () => confirm(`Approve incident ${i.id} (${i.rule})? Its flow starts now.`) && act('POST', `/reaction/incidents/${i.id}/approve`, `Incident ${i.id} approved`)() }, 'Approve'),
      h('button', { class: 'danger', 'aria-label': `Deny incident ${i.id}`, onclick: () => confirm(`Deny incident ${i.id} (${i.rule})? Its flow will never run.`) && act('POST', `/reaction/incidents/${i.id}/deny`, `Incident ${i.id} denied`)() }, 'Deny'))
      : ''))));
}

// The buttons of a run's current task: retry a failed one, skip a failed
// one or one still waiting for its executor.
function moves(run, s, last) {
  if (!canOperate() || !last) return '';
  const base = `/reaction/runs/${run.id}/tasks/${enc(s.name)}`;
  const failed = s.state === 'failed';
  const waiting = run.state === 'running' && (s.state === 'ready' || s.state === 'leased');
  return h('div', { class: 'row', style: 'margin:0' },
    failed ? h('button', { class: 'secondary', 'aria-label': `Retry task ${s.name} of run ${run.id}`, onclick: act('POST', `${base}/retry`, `Retrying ${s.name}`) }, 'Retry') : '',
    failed || waiting ? h('button', { class: 'secondary', 'aria-label': `Skip task ${s.name} of run ${run.id}`, onclick: () => confirm(`Skip task ${s.name} of run ${run.id} and go on with the next?`) && act('POST', `${base}/skip`, `Skipped ${s.name}`)() }, 'Skip') : '');
}

function runCard(run) {
  const steps = run.steps.map((s, n) => h('tr', { 'data-step': s.seq, 'data-state': s.state },
    td('Task', s.name), td('Kind', s.kind), td('Host', s.host || ''), td('State', h('span', { class: `state-${s.state}` }, s.state)),
    td('Exit', s.exit_code ?? ''), td('Time', s.ended_ms ? secs(s.ended_ms - s.started_ms) : s.state === 'leased' ? 'running' : 'waiting'),
    td('Output', s.output ? h('pre', { class: 'mono out' }, s.output) : ''), td('', moves(run, s, n === run.steps.length - 1))));
  return h('section', { class: 'run', id: `rx-run-${run.id}`, 'data-state': run.state, 'aria-label': `Run ${run.id}` },
    h('h3', {}, `Run ${run.id}: ${run.flow} — `, h('span', { class: `state-${run.state}` }, run.state)),
    h('p', { class: 'muted' }, `Started ${at(run.started_ms)}, ${run.ended_ms ? `took ${secs(run.ended_ms - run.started_ms)}` : 'still running'}`,
      run.incident_id ? `, incident ${run.incident_id}` : ', started by hand or on a schedule', run.error ? ` — ${run.error}` : ''),
    steps.length ? table(`rx-steps-${run.id}`, ['Task', 'Kind', 'Host', 'State', 'Exit', 'Time', 'Output', ''], steps) : '');
}

// Start a flow now, or once at a local date and time (the engine keeps
// the start across restarts).
function startForm(flows) {
  if (!canOperate() || !flows.length) return '';
  const sel = h('select', { id: 'rx-flow' }, flows.map((f) => h('option', { value: f.name }, f.name)));
  const when = h('input', { id: 'rx-at', type: 'datetime-local', step: '1' });
  const later = () => {
    const ms = new Date(when.value).getTime();
    if (!when.value || Number.isNaN(ms)) { fail(new Error('Pick the date and time to start at.')); return; }
    act('POST', `/reaction/flows/${enc(sel.value)}/start?at_ms=${ms}`, `Flow ${sel.value} will start at ${at(ms)}`)();
  };
  return h('div', { class: 'row' }, h('label', { for: 'rx-flow', style: 'margin:0' }, 'Start a flow'), sel,
    h('button', { id: 'rx-start', onclick: () => act('POST', `/reaction/flows/${enc(sel.value)}/start`, `Flow ${sel.value} started`)() }, 'Start now'),
    h('label', { for: 'rx-at', style: 'margin:0' }, 'or at'), when,
    h('button', { class: 'secondary', id: 'rx-start-at', onclick: later }, 'Start at'));
}

// A waiting start (by hand, or a scheduled rule's incident) can be
// cancelled; a flow's own schedule is changed in the configuration.
function cancelButton(s) {
  if (!canOperate()) return '';
  const what = s.incident_id ? `incident ${s.incident_id}'s start of ${s.flow}` : `the start of ${s.flow}`;
  return h('button', { class: 'danger', 'aria-label': `Cancel start ${s.id}`,
    onclick: () => confirm(`Cancel ${what} at ${at(s.at_ms)}? The flow will not start.`) && act('DELETE', `/reaction/starts/${s.id}`, `Start ${s.id} cancelled`)() }, 'Cancel');
}

function schedules(sc) {
  const waiting = sc.starts.filter((s) => s.state === 'waiting');
  if (!sc.flows.length && !waiting.length) return h('p', { class: 'muted' }, 'No flow has a schedule and no start waits for its time.');
  return table('rx-schedules', ['Flow', 'When', 'Next start', ''], [
    ...sc.flows.map((f) => h('tr', {}, td('Flow', f.flow), td('When', f.schedule), td('Next start', at(f.next_ms)), td('', ''))),
    ...waiting.map((s) => h('tr', { 'data-start': s.id }, td('Flow', s.flow), td('When', s.incident_id ? `once, for incident ${s.incident_id}` : 'once'),
      td('Next start', at(s.at_ms)), td('', cancelButton(s)))),
  ]);
}

function stats(s) {
  const pct = (r) => (r === null || r === undefined ? '—' : `${Math.round(r * 100)}%`);
  return [
    s.rules.length ? table('rx-stats-rules', ['Rule', 'Incidents', 'Pending', 'Denied', 'Resolved', 'Mean time to resolve'], s.rules.map((r) => h('tr', {},
      td('Rule', r.rule), td('Incidents', r.incidents), td('Pending', r.pending), td('Denied', r.denied), td('Resolved', r.resolved), td('Mean time to resolve', secs(r.mean_resolve_ms)))))
      : h('p', { class: 'muted' }, 'No incidents yet.'),
    s.flows.length ? table('rx-stats-flows', ['Flow', 'Runs', 'Done', 'Failed', 'Running', 'Success', 'Mean run'], s.flows.map((f) => h('tr', {},
      td('Flow', f.flow), td('Runs', f.runs), td('Done', f.done), td('Failed', f.failed), td('Running', f.running), td('Success', pct(f.success_rate)), td('Mean run', secs(f.mean_run_ms)))))
      : h('p', { class: 'muted' }, 'No runs yet.'),
  ];
}

function reference(rx) {
  const rules = rx.rules || []; const flows = rx.flows || [];
  return [
    h('p', {}, 'Rules and flows are part of the configuration: change them under ', h('a', { href: '#/config?section=reaction' }, 'Configuration → reaction'), '.'),
    rules.length ? table('rx-rules', ['Rule', 'Pattern', 'Host', 'Count / window', 'Start', 'Flow'], rules.map((r) => h('tr', {},
      td('Rule', r.name), td('Pattern', r.pattern), td('Host', r.host || 'any'), td('Count / window', `${r.count ?? 1} / ${r.window ?? '—'} s`), td('Start', r.start || 'immediate'), td('Flow', r.flow)))) : '',
    flows.length ? table('rx-flows', ['Flow', 'Tasks'], flows.map((f) => h('tr', {},
      td('Flow', f.name), td('Tasks', (f.tasks || []).map((t) => `${t.name} (${t.kind}${t.host ? ` on ${t.host}` : ''})`).join(' → '))))) : '',
  ];
}

// Cards filled by refresh(), so a re-read keeps the page, focus and scroll.
const cards = {};
function card(key, title, ...intro) {
  cards[key] = h('div', { id: `rx-${key}-body` });
  return h('div', { class: 'card', id: `rx-${key}` }, h('h2', {}, title), ...intro, cards[key]);
}

async function refresh() {
  const [status, pending, incidents, runs, st, sc] = await Promise.all([api('GET', '/reaction/status'), api('GET', '/reaction/incidents?pending=true'),
    api('GET', '/reaction/incidents?limit=20'), api('GET', '/reaction/runs?limit=10'), api('GET', '/reaction/stats'), api('GET', '/reaction/schedules')]);
  cards.schedules.replaceChildren(schedules(sc));
  cards.approvals.replaceChildren(inbox(pending));
  cards.runs.replaceChildren(...(runs.length ? runs.map(runCard) : [h('p', { class: 'muted' }, 'No runs yet.')]));
  cards.agents.replaceChildren(status.agents.length ? table('rx-agents', ['Agent', 'Online', 'Secret set', 'Last seen', 'Version'], status.agents.map((a) => h('tr', { 'data-agent': a.name },
    td('Agent', a.name), td('Online', h('span', { class: a.online ? 'state-running' : 'state-failed' }, a.online ? 'online' : 'offline')),
    td('Secret set', a.has_secret ? 'yes' : 'no'), td('Last seen', at(a.last_seen_ms)), td('Version', a.version || '—')))) : h('p', { class: 'muted' }, 'No agents are configured.'));
  cards.incidents.replaceChildren(incidents.length ? table('rx-incidents', ['#', 'Rule', 'Agent', 'Line', 'Seen', 'State', 'Run'], incidents.map((i) => h('tr', {},
    td('#', i.id), td('Rule', i.rule), td('Agent', i.agent), td('Line', h('span', { class: 'mono break' }, i.line)), td('Seen', at(i.at_ms)), td('State', i.state), td('Run', i.run_id ?? '—'))))
    : h('p', { class: 'muted' }, 'No incidents yet.'));
  cards.stats.replaceChildren(...stats(st));
  return runs.some((r) => r.state === 'running');
}

// Re-reads while a run is live and the page is shown, POLL_MAX times at most.
function poll(n) {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.getElementById('rx-runs')) return;
    try { if (await refresh() && n < POLL_MAX) poll(n + 1); } catch (e) { fail(e); }
  }, POLL_MS);
}

async function update() { if (await refresh()) poll(0); }

export async function reactionView() {
  const cfg = await api('GET', '/config?section=reaction');
  const rx = cfg.config || {};
  page('Reaction',
    card('approvals', 'Approvals', h('p', { class: 'muted' }, 'Incidents whose rule starts its flow only once an operator approves it.')),
    card('runs', 'Flow runs', startForm(rx.flows || [])),
    card('schedules', 'Scheduled starts'),
    card('agents', 'Agents'), card('incidents', 'Incidents'), card('stats', 'Statistics'),
    h('div', { class: 'card', id: 'rx-reference' }, h('h2', {}, 'Rules and flows'), reference(rx)));
  await update();
}
