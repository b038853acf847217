// The console's Mail page in headless Chromium, one phase per run (the
// shell starts the smarthost in between):
//   node mail.mjs BASE_URL PASSWORD stuck|retry
// stuck: both queued mails show their last error; the one to
//   drop@example.net is deleted after a confirm. retry: "Retry now" on the
//   one to ops@example.net empties the queue; a test mail to
//   form@example.net is sent from the form. Screenshots in $TEST_OUT.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, password, phase] = process.argv.slice(2);
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
const dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
const shot = async (name) => page.screenshot({ path: join(out, `mail-${phase}-${name}.png`), fullPage: true });
const step = (s) => console.log(`ok: ${s}`);
const row = (to) => `#mail-queue tr:has(td[data-label="To"]:text-is("${to}"))`;

try {
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await page.fill('#password', password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#stat-node');
  await page.click('nav a[href="#/mail"]');
  await page.waitForSelector('#mail-relay');
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('main input, main button')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML));
  if (unnamed.length) throw new Error('controls without a label: ' + unnamed.join(' '));

  if (phase === 'stuck') {
    await page.waitForSelector(`${row('ops@example.net')} td[data-label="Last error"]:not(:empty)`);
    await page.waitForSelector(row('drop@example.net'));
    await shot('queue');
    step(`the stuck mail shows its last error: ${await page.textContent(`${row('ops@example.net')} td[data-label="Last error"]`)}`);
    await page.click(`${row('drop@example.net')} button.danger`);
    if (!dialogs.some((d) => d.includes('drop@example.net'))) throw new Error('delete did not ask: ' + dialogs.join('; '));
    await page.waitForSelector(row('drop@example.net'), { state: 'detached' });
    step('the mail to drop@example.net deleted after a confirm');
  } else if (phase === 'retry') {
    await page.click(`${row('ops@example.net')} button.secondary`);
    await page.waitForSelector('#mail-queue-empty', { timeout: 30000 });
    await shot('delivered');
    step('"Retry now" delivered the stuck mail; the queue is empty');
    await page.fill('#test-to', 'form@example.net');
    await page.click('#mail-test button');
    await page.waitForSelector('#toast:has-text("Test mail queued")');
    step('test mail to form@example.net queued from the form');
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log(`mail console ${phase}: passed`);
} catch (e) {
  await shot('failure').catch(() => {});
  console.error('FAIL:', e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
