// The console's DNS page in headless Chromium, one phase per run (the
// shell asks the node with dig in between):
//   node dns.mjs BASE_URL PASSWORD add|delete
// add: a bad A value is refused on its field; www2 A 192.0.2.77 is added
//   and listed under "Served now". delete: its Delete, confirmed; gone.
// Screenshots (desktop, and phone with PHONE=1) in $TEST_OUT.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, password, phase] = process.argv.slice(2);
const out = process.env.TEST_OUT || '.';
const phone = process.env.PHONE === '1';
const profile = mkdtempSync(join(tmpdir(), 'alpharen-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  viewport: phone ? { width: 375, height: 812 } : { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors'],
  timeout: 30000,
});
const page = browser.pages()[0] || await browser.newPage();
page.setDefaultTimeout(15000);
const dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
const shot = async (name) => page.screenshot({ path: join(out, `dns-${phase}-${name}${phone ? '-phone' : ''}.png`), fullPage: true });
const step = (s) => console.log(`ok: ${s}`);
const row = '#dns-records tr[data-record="www2 A 192.0.2.77"]';

try {
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await page.fill('#password', password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#stat-node');
  await page.goto(base + '/#/dns');
  await page.waitForSelector('#dns-served');
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('main input, main button, main select')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML));
  if (unnamed.length) throw new Error('controls without a label: ' + unnamed.join(' '));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  if (overflow) throw new Error('the page is wider than the window');

  if (phase === 'add') {
    await shot('before');
    await page.fill('#rec-name', 'www2');
    await page.selectOption('#rec-type', 'A');
    await page.fill('#rec-value', '192.0.2.300');
    await page.click('#add-record button');
    await page.waitForSelector('#rec-value-error:not(:empty)');
    if (await page.getAttribute('#rec-value', 'aria-invalid') !== 'true') throw new Error('value field not marked invalid');
    await shot('invalid');
    step(`a bad A value is refused on its field: ${await page.textContent('#rec-value-error')}`);
    await page.fill('#rec-value', '192.0.2.77');
    await page.fill('#rec-ttl', '120');
    await page.click('#add-record button');
    await page.waitForSelector(row);
    await page.waitForSelector('#dns-served tr:has-text("192.0.2.77")');
    await shot('added');
    step('www2 A 192.0.2.77 added; listed and served');
  } else if (phase === 'delete') {
    await page.click(`${row} button`);
    if (!dialogs.some((d) => d.includes('Delete www2 A 192.0.2.77'))) throw new Error('delete did not ask: ' + dialogs.join('; '));
    await page.waitForSelector(row, { state: 'detached' });
    await page.waitForSelector('#dns-served');
    if (await page.$('#dns-served tr:has-text("192.0.2.77")')) throw new Error('still served after delete');
    await shot('deleted');
    step('www2 deleted after confirmation; no longer served');
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log(`dns console ${phase}: passed`);
} catch (e) {
  await shot('failure').catch(() => {});
  console.error('FAIL:', e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
