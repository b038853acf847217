// The dashboard's charts in headless Chromium, run by graphs-console.sh
// once the node has three samples:
//   node graphs.mjs BASE_URL PASSWORD
// Each chart is an SVG with role="img" and an aria-label saying now, min
// and max; DNS answers and web requests have at least two points; the
// charts redraw within 25 s; a "Queue depth" chart says the 3 waiting
// messages; nothing is wider than a 375 px phone;
// leaving the dashboard stops the refresh. Screenshots (the phone's also
// in dark mode) in $TEST_OUT.
import { open, login, run, step } from './lib.mjs';

const [base, password] = process.argv.slice(2);
const t = await open({ prefix: 'graphs' });
const { page, shot } = t;
const points = (key) => page.getAttribute(`#graphs figure[data-key="${key}"] svg`, 'data-points').then(Number);
let fetched = 0;
page.on('request', (r) => { if (r.url().endsWith('/api/v1/metrics/history')) fetched++; });

await run(t, 'dashboard charts', async () => {
  await login(page, base, password);
  await page.waitForSelector('#graphs figure[data-key="dns_answers"] svg[role="img"]');
  // The charts redraw every 10 s; the sampler may need one more sample.
  const keys = ['dns_answers', 'web_requests', 'cpu/web', 'rss/web'];
  await page.waitForFunction((ks) => ks.every((k) => Number(document.querySelector(`#graphs figure[data-key="${k}"] svg`)?.getAttribute('data-points')) >= 2), keys, { timeout: 30000 })
    .catch(async () => { throw new Error(`fewer than two points: ${JSON.stringify(await Promise.all(keys.map(points)))} for ${keys}`); });
  const labels = await page.$$eval('#graphs svg', (els) => els.map((e) => [e.getAttribute('role'), e.getAttribute('aria-label') || '']));
  const bad = labels.filter(([role, l]) => role !== 'img' || !/now .+, min .+, max /.test(l));
  if (bad.length || labels.length < 6) throw new Error(`charts without a text alternative: ${JSON.stringify(bad)} of ${labels.length}`);
  step(`${labels.length} charts, e.g. "${labels.find(([, l]) => l.startsWith('DNS answers'))[1]}"`);
  // The test published three messages no service consumes.
  await page.waitForFunction(() => /^Queue depth over .*now 3 messages/.test(document.querySelector('#graphs figure[data-key="queue_depth"] svg')?.getAttribute('aria-label') || ''), null, { timeout: 30000 })
    .catch(async () => { throw new Error(`no "Queue depth" chart at 3 messages: ${await page.getAttribute('#graphs figure[data-key="queue_depth"] svg', 'aria-label').catch(() => 'none')}`); });
  const qtitle = await page.textContent('#graphs figure[data-key="queue_depth"] .label');
  if (qtitle !== 'Queue depth') throw new Error(`the queue chart is titled ${qtitle}`);
  step(`queue chart: "${await page.getAttribute('#graphs figure[data-key="queue_depth"] svg', 'aria-label')}"`);
  const now = await page.textContent('#graphs figure[data-key="dns_answers"] .now');
  if (!/answers\/s$/.test(now)) throw new Error(`DNS answers' current value has no unit: ${now}`);
  await shot('desktop');

  const before = await points('web_requests');
  await page.waitForFunction((n) => Number(document.querySelector('#graphs figure[data-key="web_requests"] svg').getAttribute('data-points')) > n, before, { timeout: 25000 });
  step(`redrawn: web requests went from ${before} to ${await points('web_requests')} points`);

  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(300);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (wide > 1) throw new Error(`the dashboard is ${wide} px wider than a 375 px phone`);
  await shot('phone');
  step('phone width: no overflow');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('phone-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  await page.evaluate(() => { location.hash = '#/users'; });
  await page.waitForSelector('main h1:has-text("Users & tokens")');
  const then = fetched;
  await page.waitForTimeout(12000);
  if (fetched !== then) throw new Error(`the history was fetched ${fetched - then} times after leaving the dashboard`);
  step('no refresh after leaving the dashboard');
});
