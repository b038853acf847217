// The console's weight and time to content, page by page, as a user who
// is logged in opens each one with an empty browser cache:
//   node weight.mjs BASE_URL PASSWORD RUNS
// For each page, RUNS cold loads: the requests and bytes (transferred,
// and uncompressed bodies) until the view shows its data, and the time
// from the navigation's start to then. Prints one JSON object per page
// and one for the console's static files. A failed load or a request
// to another origin (a framework from a CDN) is an error.
import { open, login, run, PAGES, ready } from './lib.mjs';

const [base, password, runsArg] = process.argv.slice(2);
const runs = Number(runsArg);
if (!(runs >= 1)) throw new Error(`RUNS must be a positive number, not ${runsArg}`);
const origin = new URL(base).origin;
const t = await open({ prefix: 'weight' });
const { page } = t;

await run(t, 'console weight', async () => {
  await login(page, base, password);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let reqs = new Map();
  const files = new Map();
  const problems = [];
  cdp.on('Network.requestWillBeSent', (e) => {
    if (!e.request.url.startsWith(origin) && !e.request.url.startsWith('data:')) problems.push(`request to another origin: ${e.request.url}`);
    reqs.set(e.requestId, { url: e.request.url, wire: 0, body: 0, done: false });
  });
  cdp.on('Network.dataReceived', (e) => { const r = reqs.get(e.requestId); if (r) r.body += e.dataLength; });
  cdp.on('Network.loadingFinished', (e) => {
    const r = reqs.get(e.requestId);
    if (!r) return;
    r.wire = e.encodedDataLength; r.done = true;
    const path = new URL(r.url).pathname;
    if (path === '/' || path.startsWith('/assets/')) files.set(path, r.body);
  });
  cdp.on('Network.loadingFailed', (e) => {
    const r = reqs.get(e.requestId);
    if (r && !e.canceled) problems.push(`${r.url}: ${e.errorText}`);
  });
  for (const p of PAGES) {
    const samples = [];
    for (let i = 0; i < runs; i++) {
      // Away first, so each load starts from nothing.
      await page.goto('about:blank');
      reqs = new Map();
      await page.goto(base + '/' + p);
      const ms = await ready(page);
      if (problems.length) throw new Error(`${p}: ${problems.join('; ')}`);
      const got = [...reqs.values()].filter((r) => r.done);
      samples.push({ ms, requests: reqs.size, wire: got.reduce((a, r) => a + r.wire, 0), body: got.reduce((a, r) => a + r.body, 0) });
    }
    console.log(JSON.stringify({ page: p, samples }));
  }
  console.log(JSON.stringify({ static_files: Object.fromEntries(files) }));
});
