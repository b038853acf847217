// The console's System update page in headless Chromium:
//   node update.mjs BASE_URL PASSWORD GOOD.aru BAD.aru
// The slots table shows A running; a corrupt bundle is refused with the
// reason under the progress bar; the good one uploads (the bar reaches
// 100), says what it installed and offers "Reboot into the new version",
// which asks first; after a refresh slot B shows the new version on trial.
// Screenshots in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';

const [base, password, good, bad] = process.argv.slice(2);
const t = await open({ prefix: 'update' });
const { page, dialogs, shot } = t;

async function upload(file) {
  await page.setInputFiles('#update-file', file);
  await page.click('#update-send');
  await page.waitForFunction(() => /^(Installed|Not installed)/.test(document.querySelector('#update-status').textContent),
    null, { timeout: 120000 });
  return page.textContent('#update-status');
}

await run(t, 'update console', async () => {
  await login(page, base, password);
  await page.click('nav a[href="#/update"]');
  await page.waitForSelector('#update-slots tr[data-slot="a"] td[data-label="Running"]:text-is("yes (running now)")');
  await allLabelled(page);
  step('the slots table shows slot A running');
  // Slot B holds an install not yet tried: the slots card offers the reboot.
  await page.waitForSelector('#update-reboot-pending');

  const refused = await upload(bad);
  if (!/^Not installed: .*block 3 .* is corrupt/.test(refused)) throw new Error(`corrupt bundle: ${refused}`);
  if (await page.$('#update-reboot')) throw new Error('a reboot button after a refused bundle');
  await shot('refused');
  step(`a corrupt bundle is refused on the page: ${refused}`);

  const done = await upload(good);
  if (!/^Installed version 0\.2\.0 \(build e2e-v2\) into slot B/.test(done)) throw new Error(`good bundle: ${done}`);
  if (await page.getAttribute('#update-progress', 'value') !== '100') throw new Error('the progress bar did not reach 100');
  await shot('installed');
  step(`the bundle uploads with progress: ${done}`);

  await page.click('#update-reboot');
  if (!dialogs.some((d) => d.includes('slot B'))) throw new Error(`reboot did not ask: ${dialogs.join('; ')}`);
  // A development node cannot reboot: the API's answer shows as an error.
  await page.waitForSelector('#toast:not([hidden])');
  step(`"Reboot into the new version" asks, then calls the API: ${await page.textContent('#toast')}`);

  await page.click('text=Refresh');
  await page.waitForSelector('#update-slots tr[data-slot="b"] td[data-label="Version"]:text-is("0.2.0")');
  step('after a refresh slot B shows 0.2.0');
});
