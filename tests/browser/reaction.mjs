// The console's Reaction page in headless Chromium, as an operator:
//   node reaction.mjs BASE_URL USER PASSWORD MARK FAILED_RUN
// Two incidents of the `gated` rule wait in the approvals inbox; the
// older is approved (after a confirm) and its run is watched until it is
// done with the command's output (holding MARK) shown; the newer is
// denied. The failed task of run FAILED_RUN is skipped (after a confirm)
// and the run finishes. A config write from the operator's session is
// refused with 403. The gated flow set to start in an hour from the form
// is listed under Scheduled starts, and its Cancel (after a confirm)
// removes it: the start is `cancelled`.
// Screenshots at desktop and phone width in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';

const [base, user, password, mark, failed] = process.argv.slice(2);
const t = await open({ prefix: 'reaction' });
const { page, dialogs, shot } = t;
const inboxRows = '#rx-inbox tbody tr';

await run(t, 'reaction console', async () => {
  await login(page, base, password, user);
  await page.click('nav a[href="#/reaction"]');
  await page.waitForSelector('#rx-agents');
  await page.waitForFunction((sel) => document.querySelectorAll(sel).length === 2, inboxRows);
  await allLabelled(page);
  await shot('inbox-desktop');
  const ids = await page.$$eval(inboxRows, (rows) => rows.map((r) => Number(r.dataset.incident)).sort((a, b) => a - b));
  step(`incidents ${ids.join(' and ')} wait in the approvals inbox`);

  await page.click(`${inboxRows}[data-incident="${ids[0]}"] button:text-is("Approve")`);
  if (!dialogs.some((d) => d.startsWith(`Approve incident ${ids[0]}`))) throw new Error('approve did not ask: ' + dialogs.join('; '));
  await page.waitForSelector(`${inboxRows}[data-incident="${ids[0]}"]`, { state: 'detached' });
  // The page re-reads while the run is live: no reload here.
  const done = 'section.run[data-state="done"]';
  await page.waitForSelector(`${done} pre.out:has-text("${mark}")`, { timeout: 30000 });
  const time = await page.textContent(`${done} td[data-label="Time"]`);
  if (!/^\d+(\.\d+)? s$/.test(time)) throw new Error(`the step's time reads ${time}`);
  await shot('run-done-desktop');
  step(`approved from the inbox; the run finished with the command's output shown (took ${time})`);

  await page.click(`${inboxRows}[data-incident="${ids[1]}"] button:text-is("Deny")`);
  if (!dialogs.some((d) => d.startsWith(`Deny incident ${ids[1]}`))) throw new Error('deny did not ask: ' + dialogs.join('; '));
  await page.waitForSelector('#rx-inbox-empty');
  await page.waitForSelector(`#rx-incidents tr:has(td[data-label="#"]:text-is("${ids[1]}")) td[data-label="State"]:text-is("denied")`);
  step(`incident ${ids[1]} denied from the inbox; the inbox is empty`);

  await page.click(`#rx-run-${failed} button:text-is("Skip")`);
  if (!dialogs.some((d) => d.startsWith(`Skip task check of run ${failed}`))) throw new Error('skip did not ask: ' + dialogs.join('; '));
  await page.waitForSelector(`#rx-run-${failed}[data-state="done"] tr[data-state="skipped"]`, { timeout: 30000 });
  step(`the failed task of run ${failed} skipped; the run went on and finished`);

  const status = await page.evaluate(async () => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('alpharen_csrf=')).slice(14);
    const r = await fetch('/api/v1/config/set', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify({ path: 'node.hostname', value: 'taken' }) });
    return r.status;
  });
  if (status !== 403) throw new Error(`the operator's config write answered ${status}`);
  step('a config write from the operator session: 403');

  // A start at a time from the form: listed under Scheduled starts.
  const later = new Date(Date.now() + 3600000);
  const pad = (n) => String(n).padStart(2, '0');
  const local = `${later.getFullYear()}-${pad(later.getMonth() + 1)}-${pad(later.getDate())}T${pad(later.getHours())}:${pad(later.getMinutes())}`;
  await page.selectOption('#rx-flow', 'gated');
  await page.fill('#rx-at', local);
  await page.click('#rx-start-at');
  await page.waitForSelector('#rx-schedules tr[data-start] td[data-label="Flow"]:text-is("gated")');
  step(`the gated flow set to start at ${local} from the form is listed under Scheduled starts`);

  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(300);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (wide > 1) throw new Error(`the page is ${wide} px wider than a phone`);
  await shot('phone');
  step('at 375 px nothing is wider than the screen');

  // Cancel that start (after a confirm): it leaves the list.
  const row = '#rx-schedules tr[data-start]:has(td[data-label="Flow"]:text-is("gated"))';
  const sid = await page.getAttribute(row, 'data-start');
  await page.click(`${row} button:text-is("Cancel")`);
  if (!dialogs.some((d) => d.startsWith('Cancel the start of gated'))) throw new Error('cancel did not ask: ' + dialogs.join('; '));
  await page.waitForSelector(`tr[data-start="${sid}"]`, { state: 'detached' });
  const state = await page.evaluate(async (id) => {
    const r = await fetch('/api/v1/reaction/schedules');
    return (await r.json()).starts.find((s) => s.id === Number(id)).state;
  }, sid);
  if (state !== 'cancelled') throw new Error(`start ${sid} is ${state} after Cancel`);
  step(`start ${sid} cancelled from the Scheduled starts list (after a confirm): gone from the list, state cancelled`);
});
