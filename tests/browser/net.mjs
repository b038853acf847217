// The console's Network page in headless Chromium, run in the node's
// namespace by net-console.sh:
//   node net.mjs BASE_URL PASSWORD
// eth0 shows 10.99.0.2/24 (static); the form moves it to 10.99.0.3/24;
// the commit-confirm banner counts down, the kernel gets the new address,
// and, unconfirmed, the banner goes and the page shows 10.99.0.2/24 again.
// Screenshots at desktop and phone width in $TEST_OUT.
import { open, login, allLabelled, run, step, show } from './lib.mjs';

const [base, password] = process.argv.slice(2);
const t = await open({ prefix: 'net' });
const { page, shot } = t;
const addrs = () => page.textContent('#net-links tr[data-link="eth0"] td[data-label="Addresses"]');
// Reloads the page until eth0's addresses pass `ok` (at most `secs`).
async function until(ok, secs, what) {
  for (let i = 0; i < secs; i++) {
    await show(page, base, '#/network');
    await page.waitForSelector('#net-links');
    if (ok(await addrs())) return;
    await page.waitForTimeout(1000);
  }
  throw new Error(`${what}: eth0 has ${await addrs()}`);
}

await run(t, 'network console', async () => {
  await login(page, base, password);
  await page.click('nav a[href="#/network"]');
  await until((a) => a.includes('10.99.0.2/24 static'), 10, 'eth0 without its static address');
  await allLabelled(page);
  await shot('desktop');
  await page.setViewportSize({ width: 375, height: 812 });
  await shot('phone');
  await page.setViewportSize({ width: 1280, height: 800 });
  step('eth0 shows 10.99.0.2/24 from the config');

  await page.fill('#if0-addresses', '10.99.0.3/24');
  await page.click('#net-apply');
  await page.waitForSelector('#pending:not([hidden]) #countdown');
  step(`banner: ${await page.textContent('#pending')}`);
  await until((a) => a.includes('10.99.0.3/24') && !a.includes('10.99.0.2/24'), 15, 'the new address was not applied');
  await page.waitForSelector('#pending:not([hidden]) #countdown');
  await shot('pending');
  step('eth0 moved to 10.99.0.3/24, the banner counts down');

  await page.waitForSelector('#pending[hidden]', { state: 'attached', timeout: 45000 });
  await until((a) => a.includes('10.99.0.2/24') && !a.includes('10.99.0.3/24'), 20, 'the change was not reverted');
  await shot('reverted');
  step('unconfirmed: the banner went and eth0 is back on 10.99.0.2/24');
});
