// The console's Cluster page in headless Chromium, on a member of a
// cluster of three where one member is down:
//   node cluster.mjs BASE_URL PASSWORD TOKEN
// Shows this node and the members' health (a, b up; c down) with a last
// heartbeat, version and RSS each, one of them as the JetStream meta
// leader, and the replica warning (R1 with fewer than three members up);
// pgha's pg_controller in the singletons with the member it runs on;
// "Show join token" shows TOKEN to the admin. Screenshots at desktop and
// phone width in $TEST_OUT.
import { open, login, allLabelled, run, step, show } from './lib.mjs';

const [base, password, token] = process.argv.slice(2);
const t = await open({ prefix: 'cluster' });
const { page, shot } = t;

await run(t, 'cluster console', async () => {
  await login(page, base, password);
  await show(page, base, '#/cluster');
  await page.waitForSelector('#cluster-members');
  await allLabelled(page);
  const health = await page.$$eval('#cluster-members tbody tr', (rows) => rows.map((r) => `${r.dataset.member}:${r.dataset.health}`).join(' '));
  if (health !== 'a:up b:up c:down') throw new Error(`members: ${health}`);
  const cells = await page.$$eval('#cluster-members tbody tr', (rows) => rows.map((r) => ({
    role: r.querySelector('td[data-label="Role"]').textContent,
    beat: r.querySelector('td[data-label="Last heartbeat"]').textContent,
    version: r.querySelector('td[data-label="Version"]').textContent,
    rss: r.querySelector('td[data-label="RSS"]').textContent,
  })));
  const leaders = cells.filter((c) => c.role === 'JetStream meta leader').length;
  if (leaders !== 1) throw new Error(`meta leaders shown: ${leaders} (${JSON.stringify(cells)})`);
  for (const c of cells) {
    if (!/ before the newest$/.test(c.beat) || !/\d/.test(c.version) || !/iB$/.test(c.rss)) throw new Error(`a member lacks heartbeat, version or RSS: ${JSON.stringify(c)}`);
  }
  step(`members a, b up and c down, one meta leader, heartbeat, version and RSS each: ${JSON.stringify(cells[0])}`);
  const singletons = await page.$$eval('#cluster-singletons tbody tr', (rows) => rows.map((r) => `${r.dataset.singleton}:${r.querySelector('td[data-label="Runs on"]').textContent}`));
  const pg = singletons.find((x) => x.startsWith('pg_controller:'));
  if (!pg || !/^pg_controller:([abc]|nobody \(lease expired\))$/.test(pg)) throw new Error(`singletons: ${singletons.join(' ')}`);
  step(`singletons and where they run: ${singletons.join(' ')}`);
  const warning = await page.$eval('#cluster-replicas', (p) => ({ cls: p.className, text: p.textContent }));
  if (warning.cls !== 'problems' || !warning.text.startsWith('R1')) throw new Error(`replica warning: ${JSON.stringify(warning)}`);
  step(`replica warning shown: ${warning.text}`);
  if (await page.$('#cluster-token-text')) throw new Error('the token shows before it is asked for');
  await page.click('#cluster-show-token');
  await page.waitForSelector('#cluster-token-text');
  const shown = await page.textContent('#cluster-token-text');
  if (shown !== token) throw new Error(`token shown: ${shown}`);
  step('Show join token shows the cluster\'s token');
  await shot('desktop');
  await page.setViewportSize({ width: 375, height: 812 });
  await shot('phone');
});
