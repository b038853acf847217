// The console's System update page: the A/B slots (state, version,
// build), a bundle upload with a progress bar (XHR, because fetch reports
// no upload progress) and "Reboot into the new version".

import { h, api, page, toast, fail, isAdmin, route, table, td, when, cookie } from './app.js';

const STATES = { good: 'good', trial: 'on trial', failed: 'failed', invalid: 'invalid (nothing boots it)' };

function slotRows(slots) {
  return slots.map((s) => h('tr', { 'data-slot': s.slot },
    td('Slot', s.slot.toUpperCase()), td('Running', s.booted ? 'yes (running now)' : 'no'),
    td('State', STATES[s.state] || s.state, s.tries_left !== undefined ? ` (${s.tries_left} tries left)` : ''),
    td('Version', s.version || '—'), td('Build', s.build_id || '—'),
    td('Installed', s.installed_at ? when(s.installed_at) : '—')));
}

// POSTs the file as the request body; `progress(sent, total)` as it goes.
function upload(file, progress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/api/v1/system/update');
    x.setRequestHeader('content-type', 'application/octet-stream');
    x.setRequestHeader('x-csrf-token', cookie('alpharen_csrf'));
    x.upload.onprogress = (e) => progress(e.loaded, e.total);
    x.onload = () => {
      let d;
      try { d = JSON.parse(x.responseText); } catch { d = { message: x.responseText }; }
      if (x.status >= 200 && x.status < 300) resolve(d); else reject(new Error(d.message || `HTTP ${x.status}`));
    };
    x.onerror = () => reject(new Error('the upload broke off before the node answered (network error)'));
    x.send(file);
  });
}

function rebootButton(slot, id) {
  return h('button', { id, type: 'button', class: 'danger', onclick: async () => {
    if (!confirm(`Reboot now into slot ${slot.toUpperCase()}? The node is unreachable for a minute or two; if the new version does not come up healthy, the current one boots again.`)) return;
    try { await api('POST', '/system/reboot'); toast('Rebooting into the new version'); } catch (e) { fail(e); }
  } }, 'Reboot into the new version');
}

function uploadForm() {
  const bar = h('progress', { id: 'update-progress', max: 100, value: 0, 'aria-label': 'Upload progress', hidden: true });
  const status = h('p', { id: 'update-status', class: 'muted', role: 'status', 'aria-live': 'polite' }, '');
  const after = h('div', { class: 'row', id: 'update-after' });
  const form = h('form', { id: 'update-form' }, h('h2', {}, 'Install an update'),
    h('p', { class: 'muted' }, 'A signed bundle (.aru) is checked and written into the slot that is not running; the running system is not touched. Reboot afterwards to try it.'),
    h('div', { class: 'grid' }, h('div', {}, h('label', { for: 'update-file' }, 'Bundle file'),
      h('input', { id: 'update-file', type: 'file', accept: '.aru', required: true }))),
    h('div', { class: 'row' }, h('button', { id: 'update-send' }, 'Upload and install')), bar, status, after);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = form.querySelector('#update-file').files[0];
    if (!file) return;
    const send = form.querySelector('#update-send');
    send.disabled = true; after.replaceChildren(); bar.value = 0; bar.hidden = false;
    status.textContent = `Uploading ${file.name}…`;
    try {
      const done = await upload(file, (sent, total) => {
        bar.value = total ? Math.floor((sent * 100) / total) : 0;
        status.textContent = sent < total ? `Uploaded ${(sent / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MiB` : 'Uploaded; the node is finishing the install…';
      });
      bar.value = 100;
      status.textContent = `Installed version ${done.version} (build ${done.build_id}) into slot ${done.slot.toUpperCase()}: ${done.bytes} bytes verified and written.`;
      after.append(rebootButton(done.slot, 'update-reboot'));
      toast(`Version ${done.version} installed into slot ${done.slot.toUpperCase()}`);
    } catch (e) {
      status.textContent = `Not installed: ${e.message}`;
      fail(e);
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

export async function updateView() {
  let slots = null; let problem = null;
  try { slots = await api('GET', '/system/slots'); } catch (e) { problem = e.message; }
  const pending = slots && slots.find((s) => !s.booted && s.state === 'trial' && s.installed_at);
  page('System update',
    h('div', { class: 'card' }, h('h2', {}, 'Slots'),
      slots ? table('update-slots', ['Slot', 'Running', 'State', 'Version', 'Build', 'Installed'], slotRows(slots))
        : h('p', { class: 'muted', id: 'update-slots-none' }, problem),
      pending && isAdmin() ? h('div', { class: 'row' }, rebootButton(pending.slot, 'update-reboot-pending')) : '',
      h('div', { class: 'row' }, h('button', { class: 'secondary', onclick: route }, 'Refresh'))),
    isAdmin() ? h('div', { class: 'card' }, uploadForm()) : '');
}
