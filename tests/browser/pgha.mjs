// The console's PostgreSQL HA page in headless Chromium:
//   node pgha.mjs BASE_URL PASSWORD [MASTER]
// Without MASTER (pgha-console.sh: servers that answer nothing): group
//   "main" shows both servers down with the reason and the next backup
//   run; "Back up now" asks first, and the failed run then shows as the
//   last; the viewer "watcher" sees the page without buttons.
// With MASTER (pgha.sh, after a failover): the page names MASTER
//   (`host:port`) as the master of group "main", shows it primary, and
//   its promotion as the last failover.
// Screenshots at desktop and phone width in $TEST_OUT.
import { open, login, allLabelled, run, step, show as fresh } from './lib.mjs';

const [base, password, master] = process.argv.slice(2);
const t = await open({ prefix: master ? 'pgha-failover' : 'pgha' });
const { page, dialogs, shot } = t;
const show = async () => {
  await fresh(page, base, '#/pgha');
  await page.waitForSelector('[data-group="main"]');
};

await run(t, `pgha console${master ? ' after failover' : ''}`, async () => {
  await login(page, base, password);
  await show();
  await allLabelled(page);
  if (master) {
    await page.waitForFunction((m) => {
      const row = document.querySelector(`#pgha-main-servers tr[data-server="${m}"]`);
      return document.getElementById('pgha-main-master')?.textContent === m && row?.dataset.role === 'primary';
    }, master, { timeout: 5000 }).catch(async () => {
      throw new Error(`master shown: ${await page.textContent('#pgha-main-master')}, servers: ${await page.textContent('#pgha-main-servers')}`);
    });
    const failover = await page.textContent('#pgha-main-failover');
    if (!failover.includes(`promote ${master.split(':')[0]}`)) throw new Error(`last failover: ${failover}`);
    await shot('desktop');
    await page.setViewportSize({ width: 375, height: 812 });
    await shot('phone');
    step(`the page names ${master} as master, role primary; last failover: ${failover}`);
    return;
  }
  for (const row of await page.$$('#pgha-main-servers tbody tr')) {
    if ((await row.getAttribute('data-role')) !== 'down') throw new Error(`a server is not down: ${await row.textContent()}`);
    if (!(await row.$eval('td[data-label="Problem"]', (td) => td.textContent.trim()))) throw new Error('a down server shows no reason');
  }
  step(`both servers down, with the reason: ${await page.textContent('#pgha-main-servers td[data-label="Problem"]')}`);
  const next = await page.textContent('#pgha-backup-next');
  if (!/\d/.test(next)) throw new Error(`next backup run: ${next}`);
  step(`next backup run shown: ${next}`);
  await shot('desktop');
  await page.setViewportSize({ width: 375, height: 812 });
  await shot('phone');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.click('#pgha-backup-now');
  if (!dialogs.some((d) => d.includes('Back up every instance'))) throw new Error('Back up now did not ask: ' + dialogs.join('; '));
  await page.waitForSelector('#toast:has-text("Backup started")');
  for (let i = 0; i < 30 && !/failed/.test(await page.textContent('#pgha-backup-last')); i++) {
    await page.waitForTimeout(1000);
    await show();
  }
  const last = await page.textContent('#pgha-backup-last');
  if (!/failed/.test(last)) throw new Error(`the backup's result is not shown: ${last}`);
  await shot('backup-failed');
  step(`Back up now ran after a confirm; last run: ${last}`);

  await page.click("#logout");
  await login(page, base, 'watcher password 1', 'watcher');
  await show();
  const buttons = await page.$$eval('main button', (b) => b.map((x) => x.textContent));
  if (buttons.length) throw new Error(`a viewer sees buttons: ${buttons.join(', ')}`);
  step('a viewer sees the group without buttons');
});
