// The console's DNS page in headless Chromium, one phase per run (the
// shell asks the node with dig in between):
//   node dns.mjs BASE_URL PASSWORD add|delete
// add: a bad A value is refused on its field; www2 A 192.0.2.77 is added
//   and listed under "Served now". delete: its Delete, confirmed; gone.
// Screenshots (desktop, and phone with PHONE=1) in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';

const [base, password, phase] = process.argv.slice(2);
const phone = process.env.PHONE === '1';
const t = await open({ prefix: `dns-${phase}${phone ? '-phone' : ''}`, phone });
const { page, dialogs, shot } = t;
const row = '#dns-records tr[data-record="www2 A 192.0.2.77"]';

await run(t, `dns console ${phase}`, async () => {
  await login(page, base, password);
  await page.goto(base + '/#/dns');
  await page.waitForSelector('#dns-served');
  await allLabelled(page);
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
});
