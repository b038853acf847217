// The Configuration page's row editor: a list of objects in the config
// (extra services, records, peers, channels…) as a table with a row per
// item and a control per property, driven by the config's JSON Schema;
// add and remove rows, and the same list as JSON one click away.

import { h, fail } from './app.js';

// The schema `s` points at, with `$ref`s followed and `Option`'s null
// branch dropped.
export function resolve(root, s) {
  for (let i = 0; s && i < 10; i++) {
    if (s.$ref) { s = s.$ref.split('/').slice(1).reduce((o, k) => o && o[k], root); continue; }
    const alt = s.anyOf || s.oneOf;
    if (alt) {
      const some = alt.filter((x) => x.type !== 'null');
      if (some.length === 1) { s = some[0]; continue; }
    }
    return s;
  }
  return s || {};
}

const types = (s) => [].concat(s.type || []).filter((t) => t !== 'null');

// How a property is edited: bool, number, enum, text, list (of scalars,
// comma-separated) or json (anything nested).
function kindOf(root, s) {
  const r = resolve(root, s);
  const t = types(r);
  if (t.includes('boolean')) return 'bool';
  if (t.includes('integer') || t.includes('number')) return 'number';
  if (r.enum || (r.oneOf && r.oneOf.every((x) => x.const !== undefined || x.enum))) return 'enum';
  if (t.includes('string')) return 'text';
  if (t.includes('array')) {
    const it = resolve(root, r.items);
    return types(it).some((x) => ['string', 'integer', 'number'].includes(x)) ? 'list' : 'json';
  }
  return 'json';
}

const choices = (root, s) => {
  const r = resolve(root, s);
  return r.enum || r.oneOf.flatMap((x) => (x.const !== undefined ? [x.const] : x.enum));
};

// The item schema when `s` is a list of objects the row editor can show.
export function rowsOf(root, s) {
  const r = resolve(root, s);
  if (!types(r).includes('array') || !r.items) return null;
  const it = resolve(root, r.items);
  return it.properties ? it : null;
}

function control(root, prop, s, value, label) {
  const kind = kindOf(root, s);
  const attrs = { 'data-prop': prop, 'data-kind': kind, 'aria-label': label };
  if (kind === 'bool') return h('input', { ...attrs, type: 'checkbox', checked: !!value });
  if (kind === 'enum') {
    return h('select', attrs, h('option', { value: '' }, '—'),
      ...choices(root, s).map((c) => h('option', { value: c, selected: c === value }, c)));
  }
  if (kind === 'json') {
    return h('textarea', { ...attrs, rows: 2, class: 'mono' }, value === undefined || value === null ? '' : JSON.stringify(value));
  }
  const text = kind === 'list' ? (value || []).join(', ') : value ?? '';
  return h('input', { ...attrs, type: kind === 'number' ? 'number' : 'text', value: text, autocomplete: 'off' });
}

// A control's value; `undefined` leaves the property out (its default).
function valueOf(el, itemSchema, root) {
  const v = el.value.trim();
  switch (el.dataset.kind) {
    case 'bool': return el.checked;
    case 'number': return v === '' ? undefined : Number(v);
    case 'list': {
      const it = resolve(root, resolve(root, itemSchema.properties[el.dataset.prop]).items);
      const parts = v.split(',').map((x) => x.trim()).filter(Boolean);
      return types(it).includes('string') ? parts : parts.map(Number);
    }
    case 'json': return v === '' ? undefined : JSON.parse(v);
    default: return v === '' ? undefined : v;
  }
}

// The editor for `path` (`dpx.records`) holding `items`: a div.field
// whose `read()` gives the list, or throws on JSON that does not parse.
export function rowEditor(root, id, path, itemSchema, items) {
  const need = itemSchema.required || [];
  const props = Object.keys(itemSchema.properties).sort((a, b) => need.includes(b) - need.includes(a));
  const body = h('tbody', {});
  const label = (prop, i) => `${path}[${i}].${prop}`;
  const renumber = () => [...body.children].forEach((tr, i) => {
    tr.dataset.row = i;
    for (const el of tr.querySelectorAll('[data-prop]')) el.setAttribute('aria-label', label(el.dataset.prop, i));
    tr.querySelector('button').textContent = `Remove row ${i + 1}`;
  });
  const addRow = (item) => {
    const tr = h('tr', { 'data-row': body.children.length },
      ...props.map((p) => h('td', { 'data-label': p }, control(root, p, itemSchema.properties[p], item[p], label(p, body.children.length)))),
      h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: () => { tr.remove(); renumber(); } }, '')));
    tr.original = item;
    body.append(tr);
    renumber();
  };
  items.forEach(addRow);
  const grid = h('div', { class: 'table-wrap' }, h('table', { class: 'stack rows', id },
    h('thead', {}, h('tr', {}, ...props.map((p) => h('th', { scope: 'col', title: resolve(root, itemSchema.properties[p]).description || null }, p)), h('th', { scope: 'col' }, ''))),
    body));
  const json = h('textarea', { id: `${id}-json`, class: 'mono', 'aria-label': `${path} as JSON`, hidden: true });
  const read = () => {
    if (!json.hidden) return JSON.parse(json.value);
    return [...body.children].map((tr) => {
      const item = { ...tr.original };
      for (const el of tr.querySelectorAll('[data-prop]')) {
        const v = valueOf(el, itemSchema, root);
        if (v === undefined) delete item[el.dataset.prop]; else item[el.dataset.prop] = v;
      }
      return item;
    });
  };
  const add = h('button', { type: 'button', class: 'secondary', onclick: () => addRow({}) }, 'Add row');
  const toggle = h('button', { type: 'button', class: 'link', 'data-toggle': 'json', onclick: () => {
    try {
      if (json.hidden) {
        json.value = JSON.stringify(read(), null, 2);
        json.rows = Math.min(16, json.value.split('\n').length + 1);
      } else {
        const list = JSON.parse(json.value);
        if (!Array.isArray(list)) throw new Error('a list ([ … ]) is needed');
        body.replaceChildren();
        list.forEach(addRow);
      }
    } catch (e) { fail(new Error(`${path}: ${e.message}`)); return; }
    json.hidden = !json.hidden; grid.hidden = !json.hidden; add.hidden = !json.hidden;
    toggle.textContent = json.hidden ? 'Edit as JSON' : 'Edit as rows';
  } }, 'Edit as JSON');
  const div = h('div', { class: 'field', 'data-path': path, 'data-kind': 'rows' },
    h('div', { class: 'row rows-head' }, h('strong', {}, path), toggle), grid, json, h('div', { class: 'row' }, add));
  div.read = read;
  return div;
}

// Marks the control a problem's path (`dpx.records[1].value`) names;
// false when there is none (the problem then shows under the list).
export function markCell(form, problem) {
  const m = /^(.*)\[(\d+)\]\.([a-z_0-9]+)/.exec(problem.path || '');
  const el = m && form.querySelector(`.field[data-path="${CSS.escape(m[1])}"] tr[data-row="${m[2]}"] [data-prop="${m[3]}"]`);
  if (!el) return false;
  el.setAttribute('aria-invalid', 'true');
  el.closest('td').append(h('div', { class: 'error', role: 'alert' }, problem.message));
  return true;
}
