// Console walk-through in headless Chromium: setup → login → change a
// config value → history → diff → rollback → risky change banner → confirm
// → the whole configuration as TOML.
// Screenshots go to $TEST_OUT. Usage:
//   node console.mjs BASE_URL SETUP_CODE CODE_FILE
// (CODE_FILE: where the node keeps the code, which the setup page names).
import { open, run, step } from './lib.mjs';

const [base, setupCode, codeFile] = process.argv.slice(2);
const t = await open({ prefix: 'console' });
const { page } = t;
let n = 0;
const shot = async (name) => t.shot(`${String(++n).padStart(2, '0')}-${name}`);

await run(t, 'console browser test', async () => {
  await page.goto(base + '/');
  await page.waitForSelector('#setup-form');
  await page.waitForSelector(`#setup-code-where code:text-is("${codeFile}")`);
  step(`setup page names the code's file ${codeFile}`);
  await shot('setup');
  await page.fill('#code', 'WRONG-CODE-0000');
  await page.fill('#hostname', 'node1');
  await page.fill('#admin_password', 'correct horse');
  await page.fill('#password2', 'correct horse');
  await page.click('#setup-form button[type=submit]');
  await page.waitForSelector('#setup-error:has-text("setup code is wrong")');
  step('wrong setup code shown');
  await page.fill('#code', setupCode);
  await page.click('#setup-form button[type=submit]');
  await page.waitForSelector('#login-form');
  step('setup wizard completed');

  await page.fill('#password', 'wrong horse');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#login-error:has-text("wrong user name or password")');
  // The login's first connection is reset before any answer: the page
  // sends it once more.
  let resets = 0;
  await page.route('**/api/v1/session', (r) => (r.request().method() === 'POST' && !resets++ ? r.abort('connectionreset') : r.continue()));
  await page.fill('#password', 'correct horse');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#stat-node:has-text("node1")');
  await page.unroute('**/api/v1/session');
  if (resets < 2) throw new Error(`the login was sent ${resets} time(s), not again after the reset`);
  await shot('dashboard');
  step('login (keyboard) and dashboard, sent again after a connection reset');

  // The node's status answers 503 once: the dashboard says why, then
  // shows the status when it answers again.
  let refused = 0;
  await page.route('**/api/v1/status', (r) => (refused++ ? r.continue() : r.fulfill({
    status: 503, contentType: 'application/json', body: JSON.stringify({ code: 'unavailable', message: 'the supervisor is busy' }),
  })));
  await page.reload();
  await page.waitForSelector('#status-error:has-text("the supervisor is busy")');
  await page.waitForSelector('#stat-node:has-text("node1")');
  await page.unroute('**/api/v1/status');
  step('a status that cannot be read is shown with the reason, then read again');

  await page.click('nav a[href="#/config"]');
  await page.waitForSelector('#config-form');
  await page.fill('#f-node-confirm-timeout', '0');
  await page.click('#save');
  await page.waitForSelector('.field-error .error:has-text("between 1 and 3600")');
  await shot('config-invalid');
  step('inline validation error');
  // The save's status read answers after 2 s, and History is opened
  // meanwhile: the saved page is not drawn again over History's diff.
  await page.route('**/api/v1/status', async (r) => { await new Promise((ok) => setTimeout(ok, 2000)); await r.continue(); });
  await page.fill('#f-node-confirm-timeout', '300');
  await page.fill('#comment', 'longer confirm window');
  await page.click('#save');
  await page.waitForSelector('#toast:has-text("Saved as revision")');
  step('config value changed');

  await page.click('nav a[href="#/history"]');
  await page.waitForSelector('#history td:has-text("longer confirm window")');
  await page.click('#history tbody tr:first-child button[data-diff]');
  await page.waitForSelector('#diff td:has-text("node.confirm_timeout")');
  await page.waitForTimeout(2500);
  await page.unroute('**/api/v1/status');
  await page.waitForSelector('#diff td:has-text("node.confirm_timeout")', { timeout: 1000 });
  await shot('history-diff');
  step('history and diff, kept while the save before them still finished');
  await page.click('#history tbody tr:nth-child(2) button[data-rollback]');
  await page.waitForSelector('#toast:has-text("Rolled back")');
  await page.click('nav a[href="#/config"]');
  await page.waitForSelector('#config-form');
  const v = await page.inputValue('#f-node-confirm-timeout');
  if (v !== '120') throw new Error(`rollback did not restore confirm_timeout: ${v}`);
  step('rollback');

  // node.extra_services in the row editor: a bad name is marked on its
  // cell; fixed, it saves; the JSON view holds the same list.
  const cell = (prop) => `#f-node-extra-services tr[data-row="0"] [data-prop="${prop}"]`;
  await page.click('.field[data-path="node.extra_services"] button:has-text("Add row")');
  await page.fill(cell('name'), 'bad name!');
  await page.fill(cell('command'), '/bin/sleep');
  await page.fill(cell('args'), '600');
  await page.selectOption(cell('restart'), 'never');
  await page.click('#save');
  await page.waitForSelector(`${cell('name')}[aria-invalid="true"] + .error`);
  await shot('rows-invalid');
  step(`row editor: the bad name marked on its cell: ${await page.textContent(`${cell('name')} + .error`)}`);
  await page.fill(cell('name'), 'sleeper');
  await page.click('.field[data-path="node.extra_services"] button[data-toggle="json"]');
  const text = JSON.parse(await page.inputValue('#f-node-extra-services-json'));
  if (text[0].command !== '/bin/sleep' || text[0].args[0] !== '600' || text[0].restart !== 'never') throw new Error(`JSON view: ${JSON.stringify(text)}`);
  await page.click('.field[data-path="node.extra_services"] button[data-toggle="json"]');
  await page.click('#save');
  await page.waitForSelector('#toast:has-text("Saved as revision")');
  await page.waitForSelector(`${cell('name')}`);
  if (await page.inputValue(cell('name')) !== 'sleeper') throw new Error('the saved row is not shown');
  await shot('rows-saved');
  step('row editor: the fixed row saved; the JSON view held the same list');

  await page.click('.tabs button:has-text("web")');
  await page.waitForSelector('#f-web-session-idle-minutes');
  await page.fill('#f-web-session-idle-minutes', '90');
  await page.click('#save');
  await page.waitForSelector('#pending:not([hidden]) #countdown');
  await shot('pending-banner');
  step('risky change shows the banner with countdown');
  await page.click('#confirm');
  await page.waitForSelector('#pending', { state: 'hidden' });
  step('confirmed');

  await page.click('nav a[href="#/logs"]');
  await page.waitForSelector('#log');
  await page.check('#log-follow');
  await page.waitForFunction(() => document.getElementById('log').textContent.length > 0);
  await shot('logs');
  step('logs follow');

  await page.click('nav a[href="#/users"]');
  await page.fill('#nt-name', 'ci');
  await page.click('#add-token button');
  await page.waitForSelector('#token-secret .secret');
  await shot('users-tokens');
  step('API token created');

  // The whole configuration as TOML: a bad value refused with its path,
  // a good one applied and shown by the section's form.
  await page.click('nav a[href="#/config"]');
  await page.click('.tabs button:has-text("all as TOML")');
  await page.waitForSelector('#config-toml');
  const toml = await page.inputValue('#config-toml');
  if (!toml.includes('[node]') || !toml.includes('confirm_timeout = 120')) throw new Error(`TOML view: ${toml.slice(0, 300)}`);
  await page.fill('#config-toml', toml.replace('confirm_timeout = 120', 'confirm_timeout = 0'));
  await page.click('#save');
  await page.waitForSelector('#problems:has-text("node.confirm_timeout")');
  await shot('config-toml-invalid');
  step(`TOML view: a bad value refused with its path: ${await page.textContent('#problems')}`);
  // The save's own redraw of the TOML view is slow (its export answers
  // after 2 s) and the node tab is clicked while it waits: the node form,
  // asked for last, is what stays.
  await page.route('**/api/v1/config/export', async (r) => { await new Promise((ok) => setTimeout(ok, 2000)); await r.continue(); });
  const redraw = page.waitForRequest('**/api/v1/config/export');
  await page.fill('#config-toml', toml.replace('confirm_timeout = 120', 'confirm_timeout = 240'));
  await page.click('#save');
  await page.waitForSelector('#toast:has-text("Saved as revision")');
  await redraw;
  await page.click('.tabs button:has-text("node")');
  await page.waitForSelector('#f-node-confirm-timeout');
  await page.waitForTimeout(2500);
  await page.unroute('**/api/v1/config/export');
  if (await page.inputValue('#f-node-confirm-timeout', { timeout: 1000 }) !== '240') throw new Error('the TOML change is not in the form');
  step('TOML view: the change applied and shown by the node form, not replaced by the slower redraw before it');

  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('nav a[href="#/dashboard"]');
  await page.waitForSelector('#stat-node');
  await shot('phone-dashboard');
  step('phone-sized layout');
});
