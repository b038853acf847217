// The Integrator page's Packages tab: the Python packages (wheels) the
// workers import, uploading wheels from this computer (each goes to POST
// /integrator/packages/FILE as its bytes), and removing one. A refused
// wheel shows why (a tag not for this node, an unsafe entry). The set's
// versions are listed, and any of them whose wheels are kept can be made
// the set again.

import { h, api, toast, fail, isAdmin, when, redraw, table, td } from './app.js';

const enc = encodeURIComponent;

function uploadForm() {
  const result = h('div', { id: 'wheel-result', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { id: 'wheel-form' }, h('h2', {}, 'Upload wheels'),
    h('p', { class: 'muted' }, 'Pure-Python wheels (py3-none-any) or wheels built for this node\'s Python and architecture. Upload the dependencies too; the workers restart on the new set without dropping a request.'),
    h('div', { class: 'grid' },
      h('div', {}, h('label', { for: 'wheel-files' }, 'Wheels (.whl)'),
        h('input', { id: 'wheel-files', type: 'file', accept: '.whl', multiple: true, required: true }))),
    h('div', { class: 'row' }, h('button', {}, 'Upload')), result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const done = [];
    for (const file of form.querySelector('#wheel-files').files) {
      try {
        const out = await api('POST', `/integrator/packages/${enc(file.name)}`, file);
        done.push(`${out.name} ${out.version}`);
      } catch (e) {
        result.replaceChildren(h('p', { class: 'problems', id: 'wheel-error' }, e.message));
        if (done.length) toast(`Installed ${done.join(', ')}`);
        return;
      }
    }
    toast(`Installed ${done.join(', ')}`);
    redraw();
  });
  return form;
}

// The set's versions, newest first, each with a rollback button.
function setsCard(sets) {
  const rows = sets.sets.map((s) => h('tr', { 'data-set': s.version },
    td('Version', s.version, s.current ? h('strong', {}, ' (current)') : ''), td('Change', s.change),
    td('Packages', s.packages.join(', ') || 'none'), td('When', when(s.changed_at)), td('By', s.actor),
    h('td', {}, isAdmin() && !s.current ? (s.restorable ? h('button', { class: 'secondary', onclick: async () => {
      if (!confirm(`Make package set ${s.version} the set again? The workers restart on it.`)) return;
      try {
        const out = await api('POST', `/integrator/package-sets/${s.version}/rollback`);
        toast(`Package set ${s.version} is the set again (version ${out.set_version})`); redraw();
      } catch (e) { fail(e); }
    } }, `Roll back to set ${s.version}`) : h('span', { class: 'muted' }, `not kept: ${s.missing.join(', ')}`)) : '')));
  return h('div', { class: 'card' }, h('h2', {}, 'Package set versions'),
    rows.length ? table('int-package-sets', ['Version', 'Change', 'Packages', 'When', 'By', ''], rows)
      : h('p', { class: 'muted' }, 'No changes yet.'));
}

export async function packagesCard() {
  const [set, sets] = await Promise.all([api('GET', '/integrator/packages'), api('GET', '/integrator/package-sets')]);
  const rows = set.packages.map((p) => h('tr', { 'data-package': p.name },
    td('Package', p.name), td('Version', p.version), td('Tags', (p.tags || []).join(', ')),
    td('Size', `${Math.ceil(p.size / 1024)} KiB`), td('Added', when(p.added_at)), td('By', p.added_by),
    h('td', {}, isAdmin() ? h('button', { class: 'secondary', onclick: async () => {
      if (!confirm(`Remove ${p.name}? Services that import it will fail.`)) return;
      try { await api('DELETE', `/integrator/packages/${enc(p.name)}`); toast(`${p.name} removed`); redraw(); } catch (e) { fail(e); }
    } }, `Remove ${p.name}`) : '')));
  return [
    h('div', { class: 'card' }, h('h2', {}, `Python packages (set version ${set.set_version})`),
      rows.length ? table('int-packages', ['Package', 'Version', 'Tags', 'Size', 'Added', 'By', ''], rows)
        : h('p', { class: 'muted' }, 'No packages: services have the standard library, bunch and zato.common.')),
    isAdmin() ? h('div', { class: 'card' }, uploadForm()) : '',
    setsCard(sets),
  ];
}
