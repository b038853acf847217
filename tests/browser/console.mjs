// Console walk-through in headless Chromium: setup → login → change a
// config value → history → diff → rollback → risky change banner → confirm.
// Screenshots go to $TEST_OUT. Usage:
//   node console.mjs BASE_URL SETUP_CODE CODE_FILE
// (CODE_FILE: where the node keeps the code, which the setup page names).
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, setupCode, codeFile] = process.argv.slice(2);
const out = process.env.TEST_OUT || '.';
const profile = mkdtempSync(join(tmpdir(), 'alpharen-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors'],
  timeout: 30000,
});
const page = browser.pages()[0] || await browser.newPage();
page.setDefaultTimeout(15000);
page.on('dialog', (d) => d.accept());
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
let n = 0;
const shot = async (name) => page.screenshot({ path: join(out, `console-${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
const step = (s) => console.log(`ok: ${s}`);

try {
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
  await page.fill('#password', 'correct horse');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#stat-node:has-text("node1")');
  await shot('dashboard');
  step('login (keyboard) and dashboard');

  await page.click('nav a[href="#/config"]');
  await page.waitForSelector('#config-form');
  await page.fill('#f-node-confirm-timeout', '0');
  await page.click('#save');
  await page.waitForSelector('.field-error .error:has-text("between 1 and 3600")');
  await shot('config-invalid');
  step('inline validation error');
  await page.fill('#f-node-confirm-timeout', '300');
  await page.fill('#comment', 'longer confirm window');
  await page.click('#save');
  await page.waitForSelector('#toast:has-text("Saved as revision")');
  step('config value changed');

  await page.click('nav a[href="#/history"]');
  await page.waitForSelector('#history td:has-text("longer confirm window")');
  await page.click('#history tbody tr:first-child button[data-diff]');
  await page.waitForSelector('#diff td:has-text("node.confirm_timeout")');
  await shot('history-diff');
  step('history and diff');
  await page.click('#history tbody tr:nth-child(2) button[data-rollback]');
  await page.waitForSelector('#toast:has-text("Rolled back")');
  await page.click('nav a[href="#/config"]');
  await page.waitForSelector('#config-form');
  const v = await page.inputValue('#f-node-confirm-timeout');
  if (v !== '120') throw new Error(`rollback did not restore confirm_timeout: ${v}`);
  step('rollback');

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

  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('nav a[href="#/dashboard"]');
  await page.waitForSelector('#stat-node');
  await shot('phone-dashboard');
  step('phone-sized layout');
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log('console browser test: all passed');
} catch (e) {
  await shot('failure').catch(() => {});
  console.error('FAIL:', e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
