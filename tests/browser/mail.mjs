// The console's Mail page in headless Chromium, one phase per run (the
// shell starts the smarthost in between):
//   node mail.mjs BASE_URL PASSWORD stuck|retry
// stuck: both queued mails show their last error; the one to
//   drop@example.net is deleted after a confirm. retry: "Retry now" on the
//   one to ops@example.net empties the queue; a test mail to
//   form@example.net is sent from the form. relay PORT: the relay form
//   refuses a smarthost without a host on its field; "Test connection"
//   to 127.0.0.1:PORT fails with a wrong password and passes with the
//   right one; saved. Screenshots in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';

const [base, password, phase, relayPort] = process.argv.slice(2);
const t = await open({ prefix: `mail-${phase}` });
const { page, dialogs, shot } = t;
const row = (to) => `#mail-queue tr:has(td[data-label="To"]:text-is("${to}"))`;

await run(t, `mail console ${phase}`, async () => {
  await login(page, base, password);
  await page.click('nav a[href="#/mail"]');
  await page.waitForSelector('#mail-relay');
  await allLabelled(page);

  if (phase === 'stuck') {
    await page.waitForSelector(`${row('ops@example.net')} td[data-label="Last error"]:not(:empty)`);
    await page.waitForSelector(row('drop@example.net'));
    await shot('queue');
    step(`the stuck mail shows its last error: ${await page.textContent(`${row('ops@example.net')} td[data-label="Last error"]`)}`);
    await page.click(`${row('drop@example.net')} button.danger`);
    if (!dialogs.some((d) => d.includes('drop@example.net'))) throw new Error('delete did not ask: ' + dialogs.join('; '));
    await page.waitForSelector(row('drop@example.net'), { state: 'detached' });
    step('the mail to drop@example.net deleted after a confirm');
  } else if (phase === 'retry') {
    await page.click(`${row('ops@example.net')} button.secondary`);
    await page.waitForSelector('#mail-queue-empty', { timeout: 30000 });
    await shot('delivered');
    step('"Retry now" delivered the stuck mail; the queue is empty');
    await page.fill('#test-to', 'form@example.net');
    await page.click('#mail-test button');
    await page.waitForSelector('#toast:has-text("Test mail queued")');
    step('test mail to form@example.net queued from the form');
  } else if (phase === 'relay') {
    await page.fill('#relay-host', '');
    await page.click('#relay-save');
    await page.waitForSelector('#relay-host-error:not(:empty)');
    if (await page.getAttribute('#relay-host', 'aria-invalid') !== 'true') throw new Error('host field not marked invalid');
    step(`a smarthost without a host is refused on its field: ${await page.textContent('#relay-host-error')}`);
    await page.fill('#relay-host', '127.0.0.1');
    await page.fill('#relay-port', relayPort);
    await page.selectOption('#relay-tls', 'none');
    await page.fill('#relay-username', 'relayuser');
    await page.fill('#relay-password', 'wrong-password');
    await page.click('#relay-test');
    await page.waitForSelector('#relay-result.problems', { timeout: 30000 });
    step(`Test connection with a wrong password: ${await page.textContent('#relay-result')}`);
    await page.fill('#relay-password', 's3cret-relay');
    await page.click('#relay-test');
    await page.waitForSelector('#relay-result.ok', { timeout: 30000 });
    const ok = await page.textContent('#relay-result');
    if (!ok.includes('logged in')) throw new Error(`test result: ${ok}`);
    await shot('relay-tested');
    step(`Test connection with the right password: ${ok}`);
    await page.click('#relay-save');
    await page.waitForSelector('#toast:has-text("Saved as revision")');
    await page.waitForSelector(`#mail-relay:has-text("127.0.0.1:${relayPort}")`);
    step('relay saved; the page shows it');
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
});
