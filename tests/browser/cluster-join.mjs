// The console's Cluster page on a node outside a cluster: an admin pastes
// a join token and joins. Damaged, wrong-secret and wrong-fingerprint
// tokens each show their own error and the node stays outside:
//   node cluster-join.mjs BASE_URL PASSWORD DAMAGED WRONG_SECRET WRONG_FP
import { open, login, allLabelled, run, step, show } from './lib.mjs';

const [base, password, damaged, wrongSecret, wrongFp] = process.argv.slice(2);
const t = await open({ prefix: 'cluster-join' });
const { page, shot } = t;

async function tryJoin(token, says) {
  await page.fill('#cluster-join-token', token);
  await page.click('#cluster-join button[type="submit"]');
  await page.waitForFunction((s) => (document.querySelector('#cluster-join-error')?.textContent || '').includes(s), says, { timeout: 30000 });
  const text = await page.textContent('#cluster-join-error');
  if (!(await page.$('#cluster-none'))) throw new Error(`the node left the page "not in a cluster" after: ${text}`);
  step(`${says}: ${text}`);
}

await run(t, 'cluster join console', async () => {
  await login(page, base, password);
  await show(page, base, '#/cluster');
  await page.waitForSelector('#cluster-join');
  await allLabelled(page);
  await tryJoin(damaged, '64 hex digits');
  await tryJoin(wrongSecret, 'join secret');
  await tryJoin(wrongFp, 'fingerprint');
  await shot('desktop');
});
