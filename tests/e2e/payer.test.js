// Paying for inference with the tools developers already use, against the real node and worker:
// - the unmodified `openai` Python client pointed at `openledger pay-proxy` gets answers (plain
//   and streamed); their receipts settle; the proxy's spend log equals the escrow decrease; the
//   daily cap refuses with a clear error;
// - a voucher signed by the Python helper (sdk/python) and one signed by the TypeScript helper
//   (sdk/typescript) are accepted by the worker and settle;
// - the CLI's money paths: escrow deposit/show, voucher, receipt, earnings, claim (free when it
//   pays: the smallest reward leaves the claimant exactly that much richer), worker show,
//   delegate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { blake2AsHex, cryptoWaitReady } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { Keyring } from '@polkadot/keyring';
import { Node, rpc, tempDir, waitFor, stopProcess } from './lib/node.js';
import { Worker, WORKER_BIN, modelAndAnswer } from './lib/worker.js';
import { connect, devKeys, send, findEvent, datanetWithSnapshot, OPEN, vestSettled } from './lib/chain.js';

const run = promisify(execFile);
const CLI_BIN = process.env.CLI_BIN;
const PYTHON = process.env.OPENLEDGER_VENV ? join(process.env.OPENLEDGER_VENV, 'bin', 'python') : null;
const skip = WORKER_BIN && CLI_BIN && PYTHON ? false : 'WORKER_BIN, CLI_BIN and OPENLEDGER_VENV are set by scripts/test.sh';
const SDK = join(import.meta.dirname, '..', '..', 'sdk');
const PROMPT = 'The court held that';

let node;
let api;
let dir;
let worker;
let adapter;
let proxy;
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave'); // adapter owner
const eve = k('//Eve'); // pays through the proxy
const ferdie = k('//Ferdie'); // pays with the TypeScript helper
const receiptKey = k('//Charlie//receipts');

const cli = async (suri, ...args) => (await run(CLI_BIN, ['--url', node.wsUrl, '--suri', suri, ...args], { encoding: 'utf8' })).stdout;
const escrowOf = async (who) => BigInt((await rpc(node.rpcPort, 'attribution_escrow', [who])).held);
const settled = (id) => waitFor(`receipt ${id} settled`, async () => {
  try {
    return await rpc(node.rpcPort, 'attribution_getReceipt', [id]);
  } catch {
    return false;
  }
}, 90_000);

before(async () => {
  if (skip) return;
  dir = tempDir('ol-payer-');
  let model, adapters, adapterId, text;
  ({ model, adapters, adapterId, text } = await modelAndAnswer(dir, PROMPT, 12));
  node = new Node({ name: 'payer-chain', basePath: tempDir('ol-paychain-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };
  const store = join(dir, 'store');
  const { datanet } = await datanetWithSnapshot(api, { owner: alice, contributor: bob, name: 'case-law', texts: [PROMPT + text, 'Contracts signed under duress are void.'], store });
  execFileSync(WORKER_BIN, ['span-index', 'build-snapshot', '--chain-rpc', node.wsUrl, '--datanet', String(datanet), '--version', '1',
    '--store', store, '--tokenizer', model, '--out', join(dir, 'spans')]);
  let r = await ok(api.tx.models.registerBase('demo-base', '', 'llama', blake2AsHex('base', 256), '', [], blake2AsHex('c', 256)), alice);
  const base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  r = await ok(api.tx.models.registerAdapter(base, 'legal', 'cc-by-4.0', 8, 16, ['q_proj', 'v_proj'], adapterId, 'store://legal',
    [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('train', 256)), dave);
  adapter = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
  await ok(api.tx.models.setPricing(adapter, { per1kTokens: OPEN / 100n, perRequest: OPEN / 1000n }), dave);
  // The worker bonds with the CLI: its signing key is public (the secret stays on the worker).
  await cli('//Charlie', 'worker', 'bond', '1000', '--signing-key', u8aToHex(receiptKey.publicKey), '--endpoint', 'http://127.0.0.1', '--model', String(adapter), '--commission', '5%');
  worker = new Worker({ name: 'payer-worker', dir, args: [
    '--model', model, '--adapters', adapters, '--span-index', join(dir, 'spans'), '--chain-rpc', node.wsUrl,
    '--account', '//Charlie', '--signing-key', '//Charlie//receipts', '--receipts', join(dir, 'receipts'),
    '--receipt-batch', '1', '--receipt-linger-ms', '200',
  ] });
  await worker.start();
});

after(async () => {
  await proxy?.stop();
  await worker?.stop();
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

test('the CLI bonds workers, shows them and takes delegations; the worker names its on-chain models', { skip }, async () => {
  const w = JSON.parse(await cli('//Charlie', 'worker', 'show'));
  assert.deepEqual([w.signingKey, w.models, w.selfBond, w.commissionPerbill], [u8aToHex(receiptKey.publicKey), [adapter], '1000', 50_000_000]);
  await cli('//Dave', 'delegate', charlie.address, '10.5');
  assert.equal(JSON.parse(await cli('//Dave', 'worker', 'show', charlie.address)).delegated, '10.5');
  await assert.rejects(cli('//Dave', 'delegate', charlie.address, '0.0000000000000000001'), /18 decimals/);
  const card = (await worker.get('/v1/models')).body.data.find((m) => m.id === 'legal');
  const model = await rpc(node.rpcPort, 'models_getModel', [adapter]);
  assert.deepEqual(card.openledger, {
    worker: charlie.address, model: adapter, version: 1, terms: model.terms,
    price_per_request: model.pricePerRequest, price_per_1k_tokens: model.pricePer1kTokens,
  });
});

test('the openai client through pay-proxy: answers, settled receipts, a spend log equal to the escrow decrease, a daily cap', { skip }, async () => {
  await cli('//Eve', 'escrow', 'deposit', '5');
  const held0 = await escrowOf(eve.address);
  assert.equal(held0, 5n * OPEN);
  const log = join(dir, 'spend.jsonl');
  // A cap of three worst-case requests: two fit, the third finds too little left.
  proxy = await startProxy(worker.url, ['--max-fee', '0.01', '--daily-cap', '0.003'], log);
  const url = proxy.url;
  const { stdout } = await run(PYTHON, [join(import.meta.dirname, 'py', 'openai_via_proxy.py'), `${url}/v1`, 'legal', PROMPT], { encoding: 'utf8', timeout: 300_000 });
  const out = JSON.parse(stdout);
  assert.ok(out.completion.text.length > 0 && out.chat.text.length > 0, JSON.stringify(out));
  assert.ok(out.completion.receipt?.signed && out.chat.receipt?.signed, 'the worker\'s signed receipts came through the proxy');
  // The cap refuses with a clear error, before anything is billed.
  assert.equal(out.refused?.status, 402, JSON.stringify(out.refused));
  assert.equal(out.refused.body.code, 'budget_exceeded');
  assert.match(out.refused.body.message, /daily cap/);
  const spent = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(spent.length, 2 + out.refused.after, 'one line per paid request');
  for (const s of spent) assert.equal(s.verified, true, JSON.stringify(s));
  assert.ok(spent.every((s) => BigInt(s.fee) > 0n && BigInt(s.fee) <= BigInt(s.maxFee)));
  assert.equal(spent[0].requestId, out.completion.receipt.id);
  for (const s of spent) {
    const r = await settled(s.requestId);
    assert.equal(r.fee, s.fee, 'the fee the proxy logged is the one settled');
    assert.equal(r.payer, eve.address);
  }
  const total = spent.reduce((a, s) => a + BigInt(s.fee), 0n);
  assert.equal(held0 - await escrowOf(eve.address), total, 'the spend log equals the escrow decrease');
  assert.ok(total <= 3n * OPEN / 1000n, 'never above the daily cap');
  const today = await (await fetch(`${url}/v1/spend`)).json();
  assert.equal(BigInt(today.spentToday), total);
  // The proxy refuses what it cannot pay for on chain, before signing anything.
  const unknown = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nope', prompt: 'x' }) });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, 'model_not_found');
  const two = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'legal', prompt: ['a', 'b'] }) });
  assert.equal(two.status, 400);
  assert.equal(readFileSync(log, 'utf8').trim().split('\n').length, spent.length, 'refused requests are not logged');
});

test('the Python and TypeScript voucher helpers sign vouchers the worker takes and the chain settles', { skip }, async () => {
  // Python: a payer from a 32-byte seed (the CLI takes the same seed as its secret URI).
  await cryptoWaitReady();
  const seed = '0x' + '42'.repeat(32);
  const pyPayer = new Keyring({ type: 'sr25519' }).addFromUri(seed);
  await send(api, api.tx.balances.transferKeepAlive(pyPayer.address, 3n * OPEN), alice);
  await cli(seed, 'escrow', 'deposit', '1');
  const { stdout } = await run(PYTHON, [join(import.meta.dirname, 'py', 'voucher_helper.py'), `http://127.0.0.1:${node.rpcPort}`,
    worker.url, seed, charlie.address, String(adapter), PROMPT], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(SDK, 'python') } });
  const py = JSON.parse(stdout);
  assert.equal(py.payer, pyPayer.address, 'the helper derives the same account from the seed');
  assert.equal(py.answer.receipt.id, py.requestId, 'the helper computes the request id the worker uses');
  // The helper reproduces the README's worked example byte for byte.
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const exampleId = readme.match(/request id = blake2-256\(signed bytes\): `(0x[0-9a-f]{64})`/)[1];
  const example = execFileSync(PYTHON, ['-c', `
import openledger_voucher as ov
v = ov.Voucher(payer=ov.ss58_decode('5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY'),
  worker=ov.ss58_decode('5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y'), model=1, model_version=1,
  max_fee=10**16, terms=bytes([0x11])*32, nonce=7, expires_at=1000, genesis=bytes([0x22])*32,
  request_hash=ov.completion_request_hash('The court held that'))
print(v.request_id())`], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(SDK, 'python') } }).trim();
  assert.equal(example, exampleId);
  const pr = await settled(py.requestId);
  assert.equal(pr.payer, pyPayer.address);
  assert.equal(1n * OPEN - await escrowOf(pyPayer.address), BigInt(pr.fee));

  // TypeScript: compiled (and type-checked, strict) with tsc, then used as a module.
  const build = join(import.meta.dirname, '.sdk-build');
  mkdirSync(build, { recursive: true });
  copyFileSync(join(SDK, 'typescript', 'voucher.ts'), join(build, 'voucher.ts'));
  execFileSync(join(import.meta.dirname, 'node_modules', '.bin', 'tsc'), ['--strict', '--target', 'es2022', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--skipLibCheck', '--outDir', build, join(build, 'voucher.ts')], { encoding: 'utf8' });
  writeFileSync(join(build, 'package.json'), '{"type":"module"}');
  const ts = await import(join(build, 'voucher.js'));
  await send(api, api.tx.attribution.depositEscrow(OPEN), ferdie);
  const q = await ts.quote(`http://127.0.0.1:${node.rpcPort}`, adapter);
  const v = {
    payer: ferdie.publicKey, worker: charlie.publicKey, model: adapter, modelVersion: q.version, maxFee: OPEN / 100n,
    terms: q.terms, nonce: ts.freshNonce(), expiresAt: q.best + 600, genesis: q.genesis, requestHash: ts.completionRequestHash(PROMPT),
  };
  const { header, requestId } = ts.signVoucher(v, (m) => ferdie.sign(m));
  const res = await worker.post('/v1/completions', { model: 'legal', prompt: PROMPT, max_tokens: 5, temperature: 0 }, { 'x-openledger-voucher': header });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.receipt.id, requestId);
  const tr = await settled(requestId);
  assert.equal(tr.payer, ferdie.address);
  // The CLI's voucher for the same fields signs the same bytes (its output names them).
  const c = JSON.parse(await cli('//Ferdie', 'voucher', '--worker', charlie.address, '--model', String(adapter), '--max-fee', '0.01', '--prompt', PROMPT, '--nonce', String(v.nonce)));
  const expected = u8aToHex(ts.signingPayload({ ...v, expiresAt: c.voucher.expiresAt }));
  assert.equal(c.signedBytes, expected);
  assert.equal(c.requestId, blake2AsHex(ts.signingPayload({ ...v, expiresAt: c.voucher.expiresAt }), 256));
});

test('claiming the smallest reward never lowers the claimant\'s balance; CLI receipts and earnings', { skip }, async () => {
  // Every payee of the receipts above (read with the CLI before they vest and are pruned); once
  // vested, the one with the smallest claimable reward claims it.
  const payees = new Set();
  for (const line of readFileSync(join(dir, 'spend.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(await cli('//Alice', 'receipt', JSON.parse(line).requestId));
    for (const p of r.payouts) payees.add(p.account);
  }
  await vestSettled(api, node.rpcPort);
  let smallest = null;
  for (const [who, suri] of [[alice.address, '//Alice'], [bob.address, '//Bob'], [dave.address, '//Dave']]) {
    const e = await rpc(node.rpcPort, 'attribution_earnings', [who]);
    if (BigInt(e.unclaimed) > 0n && (!smallest || BigInt(e.unclaimed) < smallest.amount)) smallest = { who, suri, amount: BigInt(e.unclaimed) };
  }
  assert.ok(smallest && payees.has(smallest.who), `a payee of those receipts has a reward to claim (payees: ${[...payees]})`);
  const suri = smallest.suri;
  // The CLI prints it in OPEN.
  const [whole, frac = ''] = JSON.parse(await cli(suri, 'earnings')).claimable.split('.');
  assert.equal(BigInt(whole) * OPEN + BigInt(frac.padEnd(18, '0')), smallest.amount);
  const before = (await api.query.system.account(smallest.who)).data.free.toBigInt();
  const out = await cli(suri, 'claim');
  const after = (await api.query.system.account(smallest.who)).data.free.toBigInt();
  assert.equal(after - before, smallest.amount, `a claim that pays is free: ${out}`);
  assert.doesNotMatch(out, /cost the signer/);
  // Nothing left: that claim is refused (and charged, so free claims cannot be spammed).
  await assert.rejects(cli(suri, 'claim'), /NothingToClaim/);
  assert.ok((await api.query.system.account(smallest.who)).data.free.toBigInt() < after, 'a claim that pays nothing is charged');
});

/** Starts a pay-proxy for Eve in front of `workerUrl`; resolves to { url, stop }. */
async function startProxy(workerUrl, extra = [], log = join(dir, `spend-${Date.now()}.jsonl`)) {
  const proc = spawn(CLI_BIN, ['--url', node.wsUrl, '--suri', '//Eve', 'pay-proxy', '--worker', workerUrl, '--listen', '127.0.0.1:0',
    '--spend-log', log, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('listening'));
      if (line) resolve(JSON.parse(line).listening);
    });
    proc.on('exit', () => reject(new Error(`pay-proxy exited: ${stderr}`)));
  });
  return { url, stop: () => stopProcess(proc, exited) };
}

test('a hostile worker gets no unchecked receipt past the proxy, and web pages cannot spend through it', { skip }, async () => {
  const { createServer } = await import('node:http');
  // A worker that shows the real worker's on-chain card but answers as it likes.
  const card = (await worker.get('/v1/models')).body;
  let answer = () => [200, { choices: [{ text: ' forged' }], receipt: { signed: '0x00', fee: '0' } }];
  const fake = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const [status, json] = req.url === '/v1/models' ? [200, card] : answer(req, body);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise((resolve) => fake.listen(0, '127.0.0.1', resolve));
  const p = await startProxy(`http://127.0.0.1:${fake.address().port}`, ['--max-fee', '0.01']);
  const post = (headers, body = JSON.stringify({ model: 'legal', prompt: PROMPT, max_tokens: 4 })) =>
    fetch(`${p.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const inFlight = async () => BigInt((await (await fetch(`${p.url}/v1/spend`)).json()).inFlight);
  try {
    // A receipt that does not decode: refused, no retry, and the voucher's maximum stays
    // reserved (the worker could still settle it) instead of counting as free.
    let r = await post({});
    assert.equal(r.status, 502);
    assert.equal(r.headers.get('x-should-retry'), 'false');
    assert.equal((await r.json()).error.code, 'receipt_invalid');
    assert.equal(await inFlight(), OPEN / 100n);
    // A 500 (perhaps after serving): held too. A 4xx refusal before serving: released.
    answer = () => [500, { error: { message: 'boom' } }];
    r = await post({});
    assert.equal(r.status, 500);
    assert.equal(r.headers.get('x-should-retry'), 'false');
    assert.equal(await inFlight(), 2n * OPEN / 100n);
    answer = () => [402, { error: { message: 'no', code: 'insufficient_escrow' } }];
    assert.equal((await post({})).status, 402);
    assert.equal(await inFlight(), 2n * OPEN / 100n);
    // A 2xx that is not an answer is no refusal either: held.
    answer = () => [202, {}];
    assert.equal((await post({})).status, 202);
    assert.equal(await inFlight(), 3n * OPEN / 100n);
    // Browsers and rebinding: an Origin header, a foreign Host name, a text/plain body.
    assert.equal((await post({ origin: 'https://evil.example' })).status, 403);
    // (fetch sets Host itself: a raw request names another, as a rebound DNS name would.)
    const { request } = await import('node:http');
    const rebound = await new Promise((resolve, reject) => {
      const u = new URL(`${p.url}/v1/completions`);
      const q = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
        headers: { host: `evil.example:${u.port}`, 'content-type': 'application/json' } }, (res) => { res.resume(); resolve(res.statusCode); });
      q.on('error', reject);
      q.end(JSON.stringify({ model: 'legal', prompt: PROMPT }));
    });
    assert.equal(rebound, 403);
    const form = await fetch(`${p.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ model: 'legal', prompt: PROMPT }) });
    assert.equal(form.status, 415);
    assert.equal((await post({}, JSON.stringify({ model: 'legal', prompt: PROMPT, n: 2 }))).status, 400);
  } finally {
    await p.stop();
    fake.close();
  }
});
