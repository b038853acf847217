// What every console test shares: Debian's chromium through Playwright in
// a fresh profile, logging in, the check that every control has a name,
// and the try/report/close frame around a test.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const out = process.env.TEST_OUT || '.';

// Every page of the console, as the accessibility check and the console
// benchmark visit them.
export const PAGES = ['#/dashboard', '#/config', '#/config?section=mail', '#/config?section=dpx', '#/config?section=toml', '#/history', '#/network', '#/vpn', '#/dns', '#/mail', '#/pgha', '#/cluster',
  '#/reaction', '#/integrator', '#/integrator?tab=jobs', '#/integrator?tab=queues', '#/integrator?tab=kv', '#/integrator?tab=packages', '#/integrator?tab=channels', '#/integrator?tab=security', '#/integrator?tab=outgoing', '#/logs', '#/users', '#/update'];

// Waits until the page's view has its data (a heading, no "Loading");
// returns the page's clock then, in ms since the navigation started.
export async function ready(page) {
  const t = await page.waitForFunction(() => {
    const m = document.querySelector('main');
    return m && m.querySelector('h1') && !m.textContent.includes('Loading') && performance.now();
  }, null, { polling: 'raf' });
  return t.jsonValue();
}
export const step = (s) => console.log(`ok: ${s}`);

// A browser with one page. `prefix` names the screenshots (in $TEST_OUT);
// `phone` gives a 375 px wide window. Dialogs are accepted and recorded.
export async function open({ prefix, phone = false, downloads = false }) {
  const profile = mkdtempSync(join(tmpdir(), 'alpharen-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true,
    acceptDownloads: downloads,
    viewport: phone ? { width: 375, height: 812 } : { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors'],
    timeout: 30000,
  });
  const page = browser.pages()[0] || await browser.newPage();
  // 30 s: in a full CI run (QEMU images and databases writing at once) an
  // fsync of the node's stores can take seconds, and an action that
  // writes (a login, a delete) waits for it.
  page.setDefaultTimeout(30000);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const shot = async (name) => page.screenshot({ path: join(out, `${prefix}-${name}.png`), fullPage: true });
  return { browser, page, dialogs, errors, shot };
}

export async function login(page, base, password, user = 'admin') {
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.keyboard.press('Enter');
  // The page's main part says why when the dashboard does not come.
  await page.waitForSelector('#stat-node').catch(async (e) => {
    throw new Error(`${e.message}\nthe page shows: ${await page.textContent('main').catch(() => '?')}`);
  });
}

// Shows `hash` (`#/pgha`) fresh: a goto to the hash the page is on
// changes nothing, so that one is reloaded.
export async function show(page, base, hash) {
  if (page.url().endsWith(hash)) await page.reload();
  else await page.goto(base + '/' + hash);
}

// Fails when a control in the page's main part has no name a screen
// reader can say.
export async function allLabelled(page) {
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('main input, main button, main select, main textarea')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML));
  if (unnamed.length) throw new Error('controls without a label: ' + unnamed.join(' '));
}

// Runs `body`; a failure is printed with a screenshot and sets the exit
// code; page errors fail the test; the browser is always closed.
export async function run(t, name, body) {
  try {
    await body();
    if (t.errors.length) throw new Error('page errors: ' + t.errors.join('; '));
    console.log(`${name}: passed`);
  } catch (e) {
    await t.shot('failure').catch(() => {});
    console.error('FAIL:', e.message);
    // The console's last toast: an API error the page showed.
    const toast = await t.page.textContent('#toast', { timeout: 1000 }).catch(() => '');
    if (toast) console.error('the last toast:', toast);
    // What the page's main part showed then (a view stuck at "Loading…",
    // an error card), and the page's own errors.
    const main = await t.page.textContent('main', { timeout: 1000 }).catch(() => '');
    console.error('the page showed:', (main || '').replace(/\s+/g, ' ').slice(0, 300));
    if (t.errors.length) console.error('page errors:', t.errors.join('; '));
    process.exitCode = 1;
  } finally {
    await t.browser.close();
  }
}
