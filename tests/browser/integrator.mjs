// The console's Integrator page in headless Chromium:
//   node integrator.mjs BASE_URL PASSWORD LB_URL FILES_DIR
// FILES_DIR holds hello.py (answers {"hi": "one"}), broken.py (a syntax
// error on line 8), needs.py (two imports of packages the node lacks) and
// hello2/hello.py (answers {"hi": "two"}), and two wheels: a pure
// demo-1.0-py3-none-any.whl and a fake-1.0-cp311-cp311-win_amd64.whl.
// Uploads each with the file chooser; a refused file shows its traceback
// or its problems while version 1 keeps answering on LB_URL/hello; the
// file's page shows its source and versions, rolls back and undeploys;
// the Packages tab lists the pure wheel and refuses the Windows one.
// Screenshots in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';
import { join } from 'node:path';

const [base, password, lb, files] = process.argv.slice(2);
const t = await open({ prefix: 'integrator' });
const { page, dialogs, shot } = t;

// What the channel answers now: {"hi": ...}, or the HTTP status.
async function hello() {
  const r = await fetch(lb + '/hello');
  return r.ok ? (await r.json()).hi : `HTTP ${r.status}`;
}
// Waits (bounded) until the channel answers `want`.
async function answers(want) {
  let got;
  for (let i = 0; i < 50; i++) {
    got = await hello();
    if (got === want) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${lb}/hello answers ${got}, not ${want}`);
}
async function deploy(path) {
  await page.setInputFiles('#deploy-file', path);
  await page.click('#deploy-form button');
}

await run(t, 'integrator console', async () => {
  await login(page, base, password);
  await page.click('nav a[href="#/integrator"]');
  await page.waitForSelector('#deploy-form');
  await allLabelled(page);
  await shot('empty');

  await deploy(join(files, 'hello.py'));
  await page.waitForSelector('#deploy-ok:has-text("Deployed hello.py version 1: hello.world")');
  await page.waitForSelector('#int-services tr[data-service="hello.world"]:has-text("hello.py")');
  await answers('one');
  await shot('deployed');
  step('file chooser upload deployed hello.py version 1; it is listed and answers');

  await page.selectOption('#invoke-service', 'hello.world');
  await page.fill('#invoke-payload', '{"name": "ann"');
  await page.click('#invoke-form button');
  await page.waitForSelector('#invoke-error:has-text("not JSON")');
  await page.fill('#invoke-payload', '{"name": "ann"}');
  await page.click('#invoke-form button');
  await page.waitForSelector('#invoke-status:has-text("hello.world: HTTP 200 in")');
  const body = JSON.parse(await page.textContent('#invoke-body'));
  if (body.hi !== 'one' || body.to !== 'ann') throw new Error('invoke answered ' + JSON.stringify(body));
  await shot('invoked');
  step('Invoke panel: a bad payload is refused; {"name": "ann"} answers {"hi": "one", "to": "ann"} with the time');

  await deploy(join(files, 'broken.py'));
  await page.waitForSelector('#deploy-error:has-text("broken.py, line 8")');
  const tb = await page.textContent('#deploy-traceback');
  if (!/SyntaxError/.test(tb)) throw new Error('traceback without the SyntaxError: ' + tb);
  await answers('one');
  await shot('refused');
  step('a broken file shows line 8 and its traceback; version 1 still answers');

  await deploy(join(files, 'needs.py'));
  await page.waitForSelector('#deploy-error:has-text("needs.py: 2 problems")');
  const listed = await page.$$eval('#deploy-problems li', (lis) => lis.map((li) => li.textContent));
  if (listed.length !== 2 || !/^line 1: `import redis`/.test(listed[0]) || !/^line 2: `import xmltodict`/.test(listed[1])) {
    throw new Error('problems listed: ' + JSON.stringify(listed));
  }
  await shot('problems');
  step('a file with two problems lists both, each with its line');

  await deploy(join(files, 'hello2', 'hello.py'));
  await page.waitForSelector('#deploy-ok:has-text("Deployed hello.py version 2")');
  await answers('two');
  await page.click('#int-services a:has-text("hello.py")');
  await page.waitForSelector('#file-source:has-text("two")');
  await page.waitForSelector('#file-versions tr[data-version="2"]:has-text("(serving)")');
  await page.waitForSelector('#file-versions tr[data-version="1"]:has-text("admin")');
  await shot('file');
  await page.click('#file-versions tr[data-version="1"] button');
  await page.waitForSelector('#file-versions tr[data-version="1"]:has-text("(serving)")');
  await answers('one');
  step('source and versions (by admin) shown; rollback to 1 serves "one" again');

  await page.click('#undeploy');
  if (!dialogs.some((d) => d.includes('Stop serving hello.py'))) throw new Error('undeploy did not ask: ' + dialogs.join('; '));
  await page.waitForSelector('#int-services tr[data-service="hello.world"]', { state: 'detached' });
  await answers('HTTP 404');
  await shot('undeployed');
  step('undeploy after confirmation; the channel answers 404');

  // Jobs: run the nightly job now; it writes the key "ran".
  await page.click('[role=tab]:has-text("Jobs")');
  await page.waitForSelector('#int-jobs tr[data-job="nightly"]');
  await page.click('#int-jobs tr[data-job="nightly"] button');
  await page.waitForSelector('#int-jobs tr[data-job="nightly"]:has-text("ok")');
  await shot('jobs');
  step('Jobs tab: "Run nightly now" ran it; its last result is ok');

  // KV: the job's key is there; set "fixed" for the subscriber.
  await page.click('[role=tab]:has-text("KV")');
  await page.click('#kv-keys tr[data-key="ran"] button');
  await page.waitForSelector('#kv-shown:has-text("nightly")');
  await page.fill('#kv-key', 'fixed');
  await page.fill('#kv-val', 'true');
  await page.click('#kv-set button');
  await page.waitForSelector('#kv-keys tr[data-key="fixed"]');
  await shot('kv');
  step('KV tab: the key the job wrote reads "nightly"; "fixed" set to true');

  // Queues: the order's dead letter, re-driven, now goes through.
  await page.click('[role=tab]:has-text("Queues")');
  await page.waitForSelector('#int-queues tr[data-queue="orders/kv.note"] td[data-label="Dead"]:has-text("1")');
  await page.click('#int-queues tr[data-queue="orders/kv.note"] button');
  await page.waitForSelector('#dead-letters tr:has-text("not fixed yet")');
  await shot('dead-letters');
  await page.click('#dead-letters tr button');
  await page.waitForSelector('#int-queues tr[data-queue="orders/kv.note"] td[data-label="Dead"]:has-text("0")');
  await page.click('[role=tab]:has-text("KV")');
  await page.click('#kv-keys tr[data-key="o1"] button');
  await page.waitForSelector('#kv-shown:has-text("redriven")');
  step('Queues tab: the dead letter shows its error; re-driven, it was delivered');

  // Packages: a pure wheel installs and is listed; a Windows one is refused by its tag.
  await page.click('[role=tab]:has-text("Packages")');
  await page.setInputFiles('#wheel-files', join(files, 'demo-1.0-py3-none-any.whl'));
  await page.click('#wheel-form button');
  await page.waitForSelector('#int-packages tr[data-package="demo"] td[data-label="Tags"]:has-text("py3-none-any")');
  await page.setInputFiles('#wheel-files', join(files, 'fake-1.0-cp311-cp311-win_amd64.whl'));
  await page.click('#wheel-form button');
  await page.waitForSelector('#wheel-error:has-text("tag cp311-cp311-win_amd64 is not for this node")');
  await allLabelled(page);
  await shot('packages');
  step('Packages tab: a pure wheel installed and listed; a Windows wheel refused naming its tag');

});
