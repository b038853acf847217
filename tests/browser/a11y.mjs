// axe-core on every page of the console, at desktop and phone width:
//   node a11y.mjs BASE_URL PASSWORD
// Fails on any violation of WCAG 2.x level A (and lists them); also fails
// when a page is wider than a 375 px phone screen. Screenshots in
// $TEST_OUT.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, password] = process.argv.slice(2);
const out = process.env.TEST_OUT || '.';
const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PAGES = ['#/dashboard', '#/config', '#/config?section=mail', '#/history', '#/vpn', '#/dns', '#/mail',
  '#/integrator', '#/integrator?tab=jobs', '#/integrator?tab=queues', '#/integrator?tab=kv', '#/logs', '#/users'];
const profile = mkdtempSync(join(tmpdir(), 'alpharen-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors'],
  timeout: 30000,
});
const page = browser.pages()[0] || await browser.newPage();
page.setDefaultTimeout(15000);
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));
const problems = [];

try {
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await check('login', 'desktop');
  await page.fill('#password', password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#stat-node');
  for (const [width, size] of [[1280, 'desktop'], [375, 'phone']]) {
    await page.setViewportSize({ width, height: 800 });
    for (const p of PAGES) {
      await page.goto(base + '/' + p);
      await page.waitForFunction(() => !document.querySelector('main').textContent.includes('Loading'));
      await page.waitForSelector('main h1');
      await page.waitForTimeout(300);
      await check(p, size);
    }
  }
  if (errors.length) problems.push('page errors: ' + errors.join('; '));
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`ok: ${PAGES.length + 1} pages, desktop and phone: no WCAG level A violation, nothing wider than the screen`);
} catch (e) {
  console.error('FAIL:', e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function check(name, size) {
  const file = `a11y-${name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '')}-${size}.png`;
  await page.screenshot({ path: join(out, file), fullPage: true });
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axe); // CDP evaluation: the console's CSP stays on
  const res = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag21a'] } }));
  for (const v of res.violations) {
    problems.push(`${name} (${size}): ${v.id}: ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  }
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (wide > 1) problems.push(`${name} (${size}): ${wide} px wider than the window`);
  console.log(`ok: ${name} at ${size} width checked (${res.violations.length} violations)`);
}
