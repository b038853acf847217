// The console's DNS page in headless Chromium, one phase per run (the
// shell asks the node with dig in between):
//   node dns.mjs BASE_URL PASSWORD add|edit|delete
// add: the dyndns host home.ui.test shows its update to 192.0.2.50 and
//   the route app.ui.test is down with the reason; the MX and NXDOMAIN
//   answers the shell asked for are counted; a bad A value is
//   refused on its field; www2 A 192.0.2.77 is added and listed under
//   "Served now". edit: its Edit, the value changed to 192.0.2.78 and
//   saved; served. delete: its Delete, confirmed; gone.
// Screenshots (desktop, and phone with PHONE=1) in $TEST_OUT.
import { open, login, allLabelled, run, step, show } from './lib.mjs';

const [base, password, phase] = process.argv.slice(2);
const phone = process.env.PHONE === '1';
const t = await open({ prefix: `dns-${phase}${phone ? '-phone' : ''}`, phone });
const { page, dialogs, shot } = t;
const row = '#dns-records tr[data-record="www2 A 192.0.2.77"]';
const edited = '#dns-records tr[data-record="www2 A 192.0.2.78"]';

await run(t, `dns console ${phase}`, async () => {
  await login(page, base, password);
  await page.goto(base + '/#/dns');
  await page.waitForSelector('#dns-served');
  await allLabelled(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  if (overflow) throw new Error('the page is wider than the window');

  if (phase === 'add') {
    const dyn = await page.textContent('#dns-dyndns tr[data-host="home.ui.test"]');
    if (!dyn.includes('192.0.2.50') || !dyn.includes('good')) throw new Error(`dyndns host: ${dyn}`);
    step(`dyndns host with its last update: ${dyn}`);
    const health = '#dns-routes tr[data-route="app.ui.test"] td[data-label="Health"]';
    for (let i = 0; i < 15 && (await page.textContent(health)) !== 'down'; i++) {
      await page.waitForTimeout(1000);
      await show(page, base, '#/dns');
      await page.waitForSelector('#dns-served');
    }
    const route = await page.textContent('#dns-routes tr[data-route="app.ui.test"]');
    if ((await page.textContent(health)) !== 'down' || !(await page.textContent('#dns-routes tr[data-route="app.ui.test"] td[data-label="Why"]')).trim()) {
      throw new Error(`proxy route: ${route}`);
    }
    step(`proxy route down with the reason: ${route}`);
    const mx = await page.textContent('#dns-by-type tr:has-text("MX") td[data-label="Answers"]');
    const nx = await page.textContent('#dns-by-rcode tr:has-text("NXDOMAIN") td[data-label="Answers"]');
    if (!(Number(mx) >= 5 && Number(nx) >= 5)) throw new Error(`answer counts: MX ${mx}, NXDOMAIN ${nx}`);
    step(`answers by type and code: MX ${mx}, NXDOMAIN ${nx}`);
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
  } else if (phase === 'edit') {
    await page.click(`${row} button.secondary`);
    if (await page.inputValue('#rec-value') !== '192.0.2.77' || await page.inputValue('#rec-ttl') !== '120') throw new Error('Edit did not fill the form');
    await page.fill('#rec-value', '192.0.2.78');
    await page.click('#add-record button:has-text("Save changes")');
    await page.waitForSelector(edited);
    await page.waitForSelector('#dns-served tr:has-text("192.0.2.78")');
    if (await page.$(row)) throw new Error('the old record is still listed');
    await shot('edited');
    step('www2 A changed to 192.0.2.78 in its row; served');
  } else if (phase === 'delete') {
    await page.click(`${edited} button.danger`);
    if (!dialogs.some((d) => d.includes('Delete www2 A 192.0.2.78'))) throw new Error('delete did not ask: ' + dialogs.join('; '));
    await page.waitForSelector(edited, { state: 'detached' });
    await page.waitForSelector('#dns-served');
    if (await page.$('#dns-served tr:has-text("192.0.2.78")')) throw new Error('still served after delete');
    await shot('deleted');
    step('www2 deleted after confirmation; no longer served');
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
});
