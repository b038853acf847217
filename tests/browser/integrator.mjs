// The console's Integrator page in headless Chromium:
//   node integrator.mjs BASE_URL PASSWORD LB_URL FILES_DIR
// FILES_DIR holds hello.py (answers {"hi": "one"}), broken.py (a syntax
// error on line 8), needs.py (two imports of packages the node lacks) and
// hello2/hello.py (answers {"hi": "two"}), and two wheels: a pure
// demo-1.0-py3-none-any.whl and a fake-1.0-cp311-cp311-win_amd64.whl.
// Uploads each with the file chooser; a refused file shows its traceback
// or its problems while version 1 keeps answering on LB_URL/hello; the
// file's page shows its source and versions, rolls back and undeploys;
// the Packages tab lists the pure wheel and refuses the Windows one,
// removes it and rolls the package set back to the one that had it.
// Then logs.py (service logs.demo: logs and prints a line) is dropped on
// the services table, broken.py too (its traceback shown); the Invoke
// panel shows the lines logs.demo wrote; a channel made with the Channels
// form (a bad method refused beside its field first) answers on LB_URL;
// a security definition and an outgoing connection (pinged) are added and
// deleted, an SQL connection added; the interval job "tick" is disabled
// and runs no more; a job added with the Jobs form (its bad JSON payload
// refused first) runs. Screenshots in $TEST_OUT.
import { open, login, allLabelled, run, step } from './lib.mjs';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';

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
// Drops a file on the services table as a file manager would (a
// DataTransfer with the file in it, dispatched as dragover then drop).
async function drop(path, name) {
  const b64 = (await readFile(path)).toString('base64');
  const dt = await page.evaluateHandle(([data, file]) => {
    const t = new DataTransfer();
    t.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], file, { type: 'text/x-python' }));
    return t;
  }, [b64, name]);
  await page.dispatchEvent('#services-card', 'dragover', { dataTransfer: dt });
  await page.dispatchEvent('#services-card', 'drop', { dataTransfer: dt });
}
// The row of job `name` in the Jobs tab, read fresh.
async function jobRow(name) {
  await page.click('[role=tab]:has-text("Services")');
  await page.click('[role=tab]:has-text("Jobs")');
  const row = `#int-jobs tr[data-job="${name}"]`;
  await page.waitForSelector(row);
  return {
    runs: Number(await page.textContent(`${row} td[data-label="Runs"]`)),
    enabled: await page.textContent(`${row} td[data-label="Enabled"]`),
  };
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
  await page.click('#int-jobs tr[data-job="nightly"] button:has-text("Run nightly now")');
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

  // Package set rollback: remove demo (set 2, empty), roll back to set 1: demo is back.
  await page.click('#int-packages tr[data-package="demo"] button:has-text("Remove demo")');
  await page.waitForSelector('#int-packages tr[data-package="demo"]', { state: 'detached' });
  await page.waitForSelector('#int-package-sets tr[data-set="2"]:has-text("remove demo")');
  await page.click('#int-package-sets tr[data-set="1"] button:has-text("Roll back to set 1")');
  await page.waitForSelector('#int-packages tr[data-package="demo"]:has-text("1.0")');
  await page.waitForSelector('#int-package-sets tr[data-set="3"]:has-text("rollback to 1"):has-text("(current)")');
  await allLabelled(page);
  await shot('package-rollback');
  step('Packages tab: demo removed (set 2), set 1 rolled back to: demo installed again as set 3');

  // Drag and drop on the services table: a broken file's traceback, then logs.py deployed.
  await page.click('[role=tab]:has-text("Services")');
  await page.waitForSelector('#services-card');
  await drop(join(files, 'broken.py'), 'broken.py');
  await page.waitForSelector('#drop-error:has-text("broken.py, line 8")');
  if (!/SyntaxError/.test(await page.textContent('#drop-traceback'))) throw new Error('no SyntaxError in the dropped file\'s traceback');
  await shot('drop-refused');
  await drop(join(files, 'logs.py'), 'logs.py');
  await page.waitForSelector('#drop-ok:has-text("Deployed logs.py version 1: logs.demo")');
  await page.waitForSelector('#int-services tr[data-service="logs.demo"]');
  step('dropped broken.py: its traceback shown; dropped logs.py: deployed and listed');

  // Invoke shows the lines the service logged and printed in that call.
  await page.selectOption('#invoke-service', 'logs.demo');
  await page.fill('#invoke-payload', '{"order": 7}');
  await page.click('#invoke-form button');
  await page.waitForSelector('#invoke-status:has-text("logs.demo: HTTP 200 in")');
  const logs = await page.textContent('#invoke-logs');
  if (!logs.includes('INFO logs.demo: handling order 7') || !logs.includes('print: printed for order 7')) throw new Error('invoke logs: ' + logs);
  await shot('invoke-logs');
  step('Invoke panel shows "INFO logs.demo: handling order 7" and the printed line beside the response');

  // The service's "logs" link opens the Logs page on the integrator's lines, filtered by its name.
  await page.click('#int-services tr[data-service="logs.demo"] a:has-text("logs")');
  await page.waitForSelector('#log-filter');
  const preset = await page.evaluate(() => [document.getElementById('log-service').value, document.getElementById('log-filter').value]);
  if (preset[0] !== 'integrator' || preset[1] !== 'logs.demo') throw new Error('logs link presets: ' + preset);
  await page.waitForFunction(() => document.getElementById('log').textContent.includes('handling order 7'), null, { timeout: 15000 });
  const shown = (await page.textContent('#log')).split('\n').filter((l) => l);
  if (shown.some((l) => !l.toLowerCase().includes('logs.demo'))) throw new Error('a line without logs.demo shown: ' + shown.join(' | '));
  await shot('service-logs');
  step('the service\'s logs link shows the integrator\'s lines of logs.demo only, "handling order 7" among them');
  await page.evaluate(() => { location.hash = '#/integrator'; });
  await page.waitForSelector('#int-services tr[data-service="logs.demo"]');

  // Channels: a bad method is shown beside its field; then the channel is made and answers.
  await page.click('[role=tab]:has-text("Channels")');
  await page.waitForSelector('#ch-form');
  await allLabelled(page);
  await page.fill('#ch-name', 'logsch');
  await page.fill('#ch-url_path', '/logs-demo');
  await page.fill('#ch-service', 'logs.demo');
  await page.fill('#ch-methods', 'GET, FETCH');
  await page.click('#ch-form button:has-text("Add channel")');
  await page.waitForSelector('#ch-methods-error:has-text("is not one of")');
  const why = await page.textContent('#ch-methods-error');
  if (!why.startsWith('"FETCH" is not one of GET, POST')) throw new Error('methods error: ' + why);
  if (await page.getAttribute('#ch-methods', 'aria-invalid') !== 'true') throw new Error('the methods field is not marked invalid');
  await shot('channel-error');
  await page.fill('#ch-methods', 'GET, POST');
  await page.click('#ch-form button:has-text("Add channel")');
  await page.waitForSelector('#int-channels tr[data-item="logsch"]:has-text("/logs-demo")');
  let got;
  for (let i = 0; i < 50 && got !== true; i++) {
    const r = await fetch(lb + '/logs-demo?order=1');
    got = r.ok && (await r.json()).done;
    if (got !== true) await new Promise((r) => setTimeout(r, 200));
  }
  if (got !== true) throw new Error(`${lb}/logs-demo does not answer {"done": true}`);
  await shot('channels');
  step('Channels tab: "FETCH" refused beside the Methods field; channel logsch added and answering on /logs-demo');

  // The services table's sparkline of logs.demo's channel calls.
  await page.click('[role=tab]:has-text("Services")');
  const calls = '#int-services tr[data-service="logs.demo"] td[data-label="Calls"]';
  await page.waitForSelector(`${calls}:has-text("1 call, 0 errors, mean ")`);
  await page.waitForSelector(`${calls} svg polyline`, { state: 'attached' });
  await shot('sparkline');
  step(`services table: logs.demo's calls with a sparkline ("${(await page.textContent(calls)).trim()}")`);

  // Security and outgoing: add, ping, delete.
  await page.click('[role=tab]:has-text("Security")');
  await page.fill('#sec-name', 'partner-key');
  await page.selectOption('#sec-kind', 'apikey');
  await page.click('#sec-form button');
  await page.waitForSelector('#int-security tr[data-item="partner-key"]:has-text("apikey")');
  await allLabelled(page);
  await shot('security');
  await page.click('[role=tab]:has-text("Outgoing")');
  await page.fill('#out-name', 'self');
  await page.fill('#out-host', 'http://127.0.0.1:1');
  await page.fill('#out-url_path', '/logs-demo');
  await page.click('#out-form button');
  await page.waitForSelector('#int-outgoing tr[data-item="self"]');
  await page.click('#int-outgoing tr[data-item="self"] button:has-text("Edit self")');
  await page.fill('#out-host', lb + '/x');
  await page.click('#out-form button:has-text("Save changes")');
  await page.waitForSelector('#out-host-error:has-text("is not an http://host[:port] address")');
  await page.fill('#out-host', lb);
  await page.click('#out-form button:has-text("Save changes")');
  await page.waitForSelector(`#int-outgoing tr[data-item="self"]:has-text("${lb}")`);
  await page.click('#int-outgoing tr[data-item="self"] button:has-text("Ping self")');
  await page.waitForSelector('#int-outgoing tr[data-item="self"] td[data-label="Ping"]:has-text("HTTP ")');
  await allLabelled(page);
  await shot('outgoing');
  await page.click('#int-outgoing tr[data-item="self"] button:has-text("Delete self")');
  await page.waitForSelector('#int-outgoing tr[data-item="self"]', { state: 'detached' });
  // An SQL connection from its form; the password goes to the secret store (the shell part checks).
  await page.fill('#sql-name', 'crmdb');
  await page.fill('#sql-host', '127.0.0.1');
  await page.fill('#sql-database', 'crm');
  await page.fill('#sql-user', 'crm_app');
  await page.fill('#sql-password', 'sql-secret-from-the-form');
  await page.click('#sql-form button');
  await page.waitForSelector('#int-outgoing_sql tr[data-item="crmdb"]:has-text("crm_app")');
  await allLabelled(page);
  await shot('outgoing-sql');
  await page.click('[role=tab]:has-text("Security")');
  await page.click('#int-security tr[data-item="partner-key"] button:has-text("Delete partner-key")');
  await page.waitForSelector('#int-security tr[data-item="partner-key"]', { state: 'detached' });
  step('Security and Outgoing tabs: added; a host with a path refused beside its field; ping answered over HTTP; both deleted');

  // Jobs: "tick" runs every second until disabled, then no more.
  let tick = await jobRow('tick');
  for (let i = 0; i < 30 && tick.runs < 2; i++) { await page.waitForTimeout(300); tick = await jobRow('tick'); }
  if (tick.runs < 2) throw new Error('tick did not run');
  await page.click('#int-jobs tr[data-job="tick"] button:has-text("Disable tick")');
  await page.waitForSelector('#int-jobs tr[data-job="tick"] td[data-label="Enabled"]:has-text("no")');
  const before = (await jobRow('tick')).runs;
  await page.waitForTimeout(3500);
  tick = await jobRow('tick');
  if (tick.runs !== before) throw new Error(`tick ran ${tick.runs - before} times while disabled`);
  await shot('job-disabled');
  step(`Jobs tab: tick ran ${before} times, then disabled; no run in 3.5 s (3 periods)`);

  // Jobs: a new interval job from the form; payload that is not JSON is refused beside its field.
  await page.fill('#job-name', 'formjob');
  await page.fill('#job-service', 'kv.note');
  await page.selectOption('#job-kind', 'interval');
  await page.fill('#job-seconds', '1');
  await page.fill('#job-payload', '{"key": "made"');
  await page.click('#job-form button');
  await page.waitForSelector('#job-payload-error:has-text("not JSON")');
  await page.fill('#job-payload', '{"key": "made", "value": "by the form\'s job"}');
  await page.click('#job-form button');
  await page.waitForSelector('#int-jobs tr[data-job="formjob"]');
  let made = await jobRow('formjob');
  for (let i = 0; i < 30 && made.runs < 1; i++) { await page.waitForTimeout(300); made = await jobRow('formjob'); }
  if (made.runs < 1) throw new Error('the job made in the form did not run');
  await shot('job-added');
  step(`Jobs tab: "formjob" added with the form (bad JSON refused beside the payload) and ran ${made.runs} times`);

});
