// axe-core on every page of the console, at desktop and phone width:
//   node a11y.mjs BASE_URL PASSWORD
// Fails on any violation of WCAG 2.x level A (and lists them); also fails
// when a page is wider than a 375 px phone screen, or puts a button past
// the screen's right edge (inside a table that scrolls). Screenshots in
// $TEST_OUT.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { open, login, run, PAGES, ready } from './lib.mjs';

const [base, password] = process.argv.slice(2);
const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const t = await open({ prefix: 'a11y' });
const { page } = t;
const problems = [];

await run(t, 'accessibility', async () => {
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await check('login', 'desktop');
  await login(page, base, password);
  for (const [width, size] of [[1280, 'desktop'], [375, 'phone']]) {
    await page.setViewportSize({ width, height: 800 });
    for (const p of PAGES) {
      await page.goto(base + '/' + p);
      await ready(page);
      await page.waitForTimeout(300);
      await check(p, size);
    }
  }
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`ok: ${PAGES.length + 1} pages, desktop and phone: no WCAG level A violation, nothing wider than the screen, no button past its edge`);
});

async function check(name, size) {
  await t.shot(`${name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '')}-${size}`);
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axe); // CDP evaluation: the console's CSP stays on
  const res = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag21a'] } }));
  for (const v of res.violations) {
    problems.push(`${name} (${size}): ${v.id}: ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  }
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (wide > 1) problems.push(`${name} (${size}): ${wide} px wider than the window`);
  const cut = await page.evaluate(() => [...document.querySelectorAll('main button')]
    .filter((b) => { const r = b.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 1; })
    .map((b) => b.getAttribute('aria-label') || b.textContent.trim()));
  if (cut.length) problems.push(`${name} (${size}): buttons past the screen's right edge: ${cut.slice(0, 5).join(', ')}`);
  console.log(`ok: ${name} at ${size} width checked (${res.violations.length} violations)`);
}
