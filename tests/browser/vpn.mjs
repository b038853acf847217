// The console's VPN page in headless Chromium, one phase per run (the
// shell checks the tunnel in between). Usage:
//   node vpn.mjs BASE_URL PASSWORD PHASE [ARG]
// add SITE_KEY: site form refuses bad input on its fields, takes a good
//   site; "Add device" shows the QR code (saved as vpn-qr.png, the SVG as
//   vpn-qr.svg) and the download (saved as vpn-device.conf); desktop and
//   phone screenshots.
// handshake: the device's row shows a handshake and traffic.
// disable | enable: the device's button; the row says so.
// delete: the device's Delete, confirmed; the row is gone.
// Screenshots and files go to $TEST_OUT.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open, login, allLabelled, run, step, out } from './lib.mjs';

const [base, password, phase, arg] = process.argv.slice(2);
const phone = process.env.PHONE === '1';
const t = await open({ prefix: `vpn-${phase}`, phone, downloads: true });
const { page, dialogs, shot } = t;
const row = (name) => `#vpn-peers tr[data-peer="${name}"]`;

await run(t, `vpn console ${phase}`, async () => {
  await login(page, base, password);
  await page.click('nav a[href="#/vpn"]');
  await page.waitForSelector('#vpn-state');
  // Every control has a name a screen reader can say.
  await allLabelled(page);

  if (phase === 'add') {
    await shot('empty');
    await page.fill('#site-name', 'branch');
    await page.fill('#site-public_key', 'not-a-key');
    await page.fill('#site-endpoint', 'no port here');
    await page.fill('#site-allowed_ips', '192.168.52.0/24, 10.7.0.300/32');
    await page.click('#add-site button[type=submit]');
    await page.waitForSelector('#site-public_key-error:has-text("not a WireGuard key")');
    await page.waitForSelector('#site-endpoint-error:has-text("is not host:port")');
    await page.waitForSelector('#site-allowed_ips-error:has-text("is not a CIDR")');
    if (await page.getAttribute('#site-public_key', 'aria-invalid') !== 'true') throw new Error('public key field not marked invalid');
    await shot('site-invalid');
    step('site form: problems shown on their fields');
    // The vpn service takes the new peer up a moment after the revision is
    // stored: the first status read after the add answers as before it
    // (the peers without the site), and the page must still show the site.
    const before = await page.evaluate(() => fetch('/api/v1/vpn').then((r) => r.text()));
    let added = false; let stale = 0;
    await page.route('**/api/v1/vpn/sites', async (r) => { await r.continue(); added = true; });
    await page.route('**/api/v1/vpn', (r) => (added && r.request().method() === 'GET' && !stale++
      ? r.fulfill({ status: 200, contentType: 'application/json', body: before }) : r.continue()));
    await page.fill('#site-public_key', arg);
    await page.fill('#site-endpoint', '10.97.0.9:51820');
    await page.fill('#site-allowed_ips', '192.168.52.0/24');
    await page.fill('#site-persistent_keepalive', '25');
    await page.click('#add-site button[type=submit]');
    await page.waitForSelector(`${row('branch')}:has-text("192.168.52.0/24")`, { timeout: 10000 });
    await page.unroute('**/api/v1/vpn');
    await page.unroute('**/api/v1/vpn/sites');
    if (!stale) throw new Error('no status read came after the site was added');
    step('site-to-site peer added, shown although the first read after it was from before');

    await page.fill('#dev-name', 'bad name!');
    await page.click('#add-device button[type=submit]');
    await page.waitForSelector('#dev-name-error:has-text("not a valid name")');
    step('device form: bad name shown on the field');
    await page.fill('#dev-name', 'phone');
    await page.click('#add-device button[type=submit]');
    await page.waitForSelector('#device-qr');
    await page.waitForSelector('#device-shown:has-text("the node does not store")');
    await page.waitForSelector(`${row('phone')}:has-text("never")`);
    await page.waitForFunction(() => document.getElementById('device-qr').complete);
    await page.waitForSelector('#toast', { state: 'hidden' }); // "Site added" may cover the code
    await page.locator('#device-qr').screenshot({ path: join(out, 'vpn-qr.png') });
    const src = await page.getAttribute('#device-qr', 'src');
    writeFileSync(join(out, 'vpn-qr.svg'), decodeURIComponent(src.replace(/^data:image\/svg\+xml,/, '')));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#device-download')]);
    await download.saveAs(join(out, 'vpn-device.conf'));
    await shot('device-added');
    step('device added: QR code and download shown once');
    await page.setViewportSize({ width: 375, height: 812 });
    await shot('phone');
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 375) throw new Error(`the VPN page is ${wide} px wide at 375 px`);
    step('phone width: no sideways scrolling');
    await page.reload();
    await page.waitForSelector(row('phone'));
    if (await page.$('#device-qr')) throw new Error('the device config is shown again after a reload');
    step('the config is gone after a reload');
  } else if (phase === 'handshake') {
    await page.waitForSelector(`${row('phone')} td[data-label="Last handshake"]:has-text("ago")`);
    const text = await page.innerText(row('phone'));
    if (!/KiB|MiB|\d+ B/.test(text) || /0 B \/ 0 B/.test(text)) throw new Error(`no traffic in the row: ${text}`);
    await shot('table');
    step(`peer row: ${text.replace(/\s+/g, ' ')}`);
  } else if (phase === 'disable') {
    await page.click(`${row('phone')} button[data-disable]`);
    await page.waitForSelector(`${row('phone')}:has-text("(disabled)") button[data-enable]`);
    await shot('disabled');
    step('device disabled');
  } else if (phase === 'enable') {
    await page.click(`${row('phone')} button[data-enable]`);
    await page.waitForSelector(`${row('phone')} button[data-disable]`);
    step('device enabled');
  } else if (phase === 'delete') {
    await page.click(`${row('phone')} button[data-delete]`);
    await page.waitForSelector(row('phone'), { state: 'detached' });
    if (!dialogs.some((d) => d.includes('Delete VPN peer phone'))) throw new Error(`no confirmation asked: ${dialogs}`);
    await page.waitForSelector(row('branch'));
    await shot('deleted');
    step('device deleted after confirmation');
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
});
