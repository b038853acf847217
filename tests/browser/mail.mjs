// The console's Mail page in headless Chromium, one phase per run (the
// shell starts the smarthost in between):
//   node mail.mjs BASE_URL PASSWORD stuck|retry
// stuck: both queued mails show their last error; the one to
//   drop@example.net is deleted after a confirm. retry: "Retry now" on the
//   one to ops@example.net empties the queue; a test mail to
//   form@example.net is sent from the form. Screenshots in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';

const [base, password, phase] = process.argv.slice(2);
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
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
});
