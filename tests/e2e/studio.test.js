// OpenLedger Studio in a real browser (Debian's chromium, headless, driven by puppeteer-core;
// nothing downloads a browser): the page served by `openledger studio` against a dev node.
// Alice creates a curated Datanet, Bob uploads two files (content store + contribute in one
// batch), Alice accepts one and rejects the other as a duplicate, takes a snapshot whose root
// the page shows as the chain has it, and verifies a leaf's proof in the page; a refused
// contribution is explained in words. Every control is labelled and focusable, the page fits
// a 390 px viewport, and screenshots of each page at both widths go to the output folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { tempDir } from './lib/node.js';
import { devChain, devKeys, send } from './lib/chain.js';
import { OUT, WEB, openStudio } from './lib/browser.js';

const ctx = devChain('studio');
const { alice, bob } = devKeys();
let s;
let page;
let url;

before(async () => {
  assert.ok(existsSync(join(WEB, 'index.html')), 'web/dist is built (scripts/build.sh)');
  const dir = tempDir('ol-studio-');
  // The dev chain's own `before` may still be starting the node.
  for (let i = 0; i < 600 && !ctx.api; i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(ctx.api, 'the dev chain started');
  s = await openStudio({ rpc: ctx.node.wsUrl, store: join(dir, 'store'), logDir: dir });
  ({ page, url } = s);
});

after(async () => {
  await s?.stop();
});

const statusText = () => s.statusText();
const waitStatus = (re) => s.waitStatus(re);
const redrawn = (act) => s.redrawn(act);
const as = (who) => s.as(who);
const shoot = (name) => s.shoot(name);
const assertAccessible = (name) => s.assertAccessible(name);

test('the Studio loads, lists Datanets and offers the dev accounts', async () => {
  const options = await page.$$eval('#account option', (os) => os.map((o) => o.textContent));
  assert.deepEqual(options, ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie']);
  assert.match(await page.$eval('#balance', (e) => e.textContent), /free/);
  await assertAccessible('the Datanets page');
  await shoot('datanets-empty');
});

let datanet;
test('Alice creates a curated Datanet from the form', async () => {
  await as(alice);
  await page.type('#dn-name', 'studio-medical-qa');
  await redrawn(() => page.click('form button[type=submit]'));
  await page.waitForFunction(() => /^#\/datanet\/\d+$/.test(location.hash), { timeout: 60_000 });
  datanet = Number(await page.evaluate(() => location.hash.split('/')[2]));
  await page.waitForFunction(() => document.querySelector('main h2')?.textContent === 'studio-medical-qa');
  const d = (await ctx.api.query.datanets.datanets(datanet)).unwrap();
  assert.equal(d.owner.toString(), alice.address);
  assert.equal(d.curation.toString(), 'Curated');
});

test('Bob uploads two files: stored, then contributed in one batch, both pending', async () => {
  await as(bob);
  const dir = tempDir('ol-studio-files-');
  const files = ['Aspirin thins the blood and eases pain.', 'Ibuprofen reduces fever and inflammation.'].map((t, i) => {
    const f = join(dir, `record-${i}.txt`);
    writeFileSync(f, t);
    return f;
  });
  const input = await page.$('#files');
  await redrawn(() => input.uploadFile(...files));
  await waitStatus(/Contributing 2 file\(s\): done/);
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label=Contributions] tbody tr').length === 2, { timeout: 30_000 });
  const statuses = await page.$$eval('table[aria-label=Contributions] tbody tr td:nth-child(3)', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(statuses, ['pending', 'pending']);
  const onChain = await ctx.api.query.datanets.datanets(datanet);
  assert.equal(onChain.unwrap().pendingCount.toNumber(), 2);
  // Bob is no curator: no curation buttons for him.
  assert.equal((await page.$$('button[aria-label^="Accept contribution"]')).length, 0);
  // The same file again is refused by the chain, and the page says why in words.
  await (await page.$('#files')).uploadFile(files[0]);
  const msg = await waitStatus(/failed/);
  assert.match(msg, /DuplicateContent/);
  assert.match(msg, /failed: [A-Z][a-z]+ [a-z]+/, `a sentence, not only a code: ${msg}`);
  await shoot('datanet-pending');
});

test('Alice accepts one, rejects the other as a duplicate, snapshots, and verifies the proof', async () => {
  await as(alice);
  await page.waitForSelector('button[aria-label^="Accept contribution"]');
  const ids = await page.$$eval('table[aria-label=Contributions] tbody tr td:first-child', (tds) => tds.map((t) => Number(t.textContent)));
  await redrawn(() => page.click(`button[aria-label="Accept contribution ${ids[0]}"]`));
  assert.match(await statusText(), new RegExp(`Accepting ${ids[0]}: done`));
  await page.select(`select[aria-label="Reason for rejecting contribution ${ids[1]}"]`, '2');
  await redrawn(() => page.click(`button[aria-label="Reject contribution ${ids[1]}"]`));
  assert.match(await statusText(), new RegExp(`Rejecting ${ids[1]}: done`));
  assert.equal((await page.$$('table[aria-label=Contributions] tbody tr')).length, 1);
  assert.match(await page.$eval('table[aria-label=Contributions] tbody tr td:nth-child(3)', (t) => t.textContent), /^accepted \(leaf 0\)$/);
  await redrawn(() => page.click('#snapshot'));
  assert.match(await statusText(), /Taking a snapshot: done/);
  const root = await page.$eval('table[aria-label=Snapshots] tbody tr td:nth-child(2)', (t) => t.textContent);
  const snap = (await ctx.api.query.datanets.snapshots(datanet, 1)).unwrap();
  assert.equal(root, snap.root.toHex(), 'the page shows the root the chain holds');
  await page.click('table[aria-label=Snapshots] tbody tr button');
  await page.waitForFunction(() => /✓|✗/.test(document.querySelector('table[aria-label=Snapshots] tbody tr [role=status]').textContent), { timeout: 30_000 });
  assert.match(await page.$eval('table[aria-label=Snapshots] tbody tr [role=status]', (e) => e.textContent), new RegExp(`✓ contribution ${ids[0]} is leaf 0`));
  await assertAccessible('the Datanet page');
  await shoot('datanet-snapshot');
  await redrawn(() => page.evaluate(() => { location.hash = '#/datanets'; }));
  await page.type('#search', 'medical');
  const names = await page.$$eval('table[aria-label=Datanets] tbody tr td:nth-child(2)', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(names, ['studio-medical-qa']);
  await shoot('datanets');
  console.log(`screenshots in ${OUT}`);
});

/** A raw HTTP request to the Studio with the headers a hostile page or a rebound name would send. */
function raw(method, path, headers, body = '') {
  return new Promise((resolveReq, reject) => {
    const u = new URL(url);
    const r = request({ host: '127.0.0.1', port: u.port, method, path, headers }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolveReq({ status: res.statusCode, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

test('other sites can neither write through the Studio nor reach it by another name', async () => {
  const host = new URL(url).host;
  const own = { host, origin: `http://${host}`, 'content-type': 'application/octet-stream' };
  // Another site's page (its Origin), a cross-site form (no JSON/octet type), a rebound name.
  assert.equal((await raw('POST', '/api/store', { ...own, origin: 'http://evil.example' }, 'x')).status, 403);
  assert.equal((await raw('POST', '/api/store', { host, 'content-type': 'application/octet-stream' }, 'x')).status, 403, 'no Origin');
  assert.equal((await raw('POST', '/api/store', { ...own, 'content-type': 'text/plain' }, 'x')).status, 415);
  assert.equal((await raw('GET', '/api/config', { host: 'evil.example' })).status, 403);
  assert.equal((await raw('POST', '/api/worker/v1/completions', { ...own, host: `attacker.example:${new URL(url).port}` }, '{}')).status, 403);
  const ok = await raw('POST', '/api/store', own, 'a record');
  assert.equal(ok.status, 200, ok.body);
  assert.equal(JSON.parse(ok.body).tokens, 2);
  // The page itself: not framable, not sniffed, a content security policy.
  const pageResp = await raw('GET', '/', { host });
  assert.equal(pageResp.headers['x-frame-options'], 'DENY');
  assert.equal(pageResp.headers['x-content-type-options'], 'nosniff');
  assert.match(pageResp.headers['content-security-policy'], /frame-ancestors 'none'/);
});

test('a Datanet whose name is not UTF-8 is shown in hex and breaks no page', async () => {
  const policy = { base: ctx.api.consts.datanets.minContributionDepositBase, perByte: ctx.api.consts.datanets.minContributionDepositPerByte };
  const r = await send(ctx.api, ctx.api.tx.datanets.createDatanet('0xff00fe', '', 'CC0', 'Open', policy), bob);
  assert.equal(r.error, null);
  await redrawn(() => page.evaluate(() => { location.hash = '#/'; }));
  const names = await page.$$eval('table[aria-label=Datanets] tbody tr td:nth-child(2)', (tds) => tds.map((t) => t.textContent));
  assert.ok(names.includes('0xff00fe'), JSON.stringify(names));
});
