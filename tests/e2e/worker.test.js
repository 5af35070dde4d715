// The inference worker billing on chain, end to end: a contributor's text is in a Datanet
// snapshot, an adapter trained on it is registered, a bonded worker serves it; a payer's voucher
// buys an answer, the worker signs the receipt with its registered key, queues it on disk and
// settles it; the contributor is credited. Then the worker is killed with SIGKILL while receipts
// are being settled, restarted, and every receipt is settled exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blake2AsHex } from '@polkadot/util-crypto';
import { u8aConcat, u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';
import { Worker, WORKER_BIN, workerCmd } from './lib/worker.js';
import { connect, devKeys, send, findEvent, datanetWithSnapshot, OPEN } from './lib/chain.js';

const skip = WORKER_BIN ? false : 'WORKER_BIN is not set (scripts/test.sh sets it)';
let node;
let api;
let dir;
let worker;
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave'); // adapter owner
const eve = k('//Eve'); // payer
const receiptKey = k('//Charlie//receipts');
const PROMPT = 'The court held that';
let datanet;
let adapter;
let workerArgs;
let nonce = 0;
const ESCROW = 100n * OPEN;

const usage = async () => (await rpc(node.rpcPort, 'attribution_modelUsage', [adapter])).requests;

/** The voucher header for one request by Eve to Charlie's worker. */
async function voucherHeader({ model = adapter, maxFee = OPEN } = {}) {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  nonce += 1;
  const voucher = api.createType('OpenledgerPrimitivesReceiptVoucher', {
    payer: eve.address, worker: charlie.address, model, modelVersion: 1, maxFee, nonce, expiresAt: now + 1000,
  });
  const payload = u8aConcat(api.createType('Bytes', 'openledger:voucher:v1').toU8a(), voucher.toU8a());
  const signature = api.createType('MultiSignature', { Sr25519: eve.sign(payload) });
  return {
    header: { 'x-openledger-voucher': u8aToHex(u8aConcat(voucher.toU8a(), signature.toU8a())) },
    requestId: blake2AsHex(payload, 256),
  };
}

const ask = (headers, max_tokens = 12) =>
  worker.post('/v1/completions', { model: 'legal', prompt: PROMPT, max_tokens, temperature: 0 }, headers);

before(async () => {
  if (skip) return;
  dir = tempDir('ol-worker-');
  const model = join(dir, 'base');
  const adapters = join(dir, 'adapters');
  workerCmd(['gen-model', '--out', model, '--seed', '7']);
  workerCmd(['gen-adapter', '--base', model, '--out', join(adapters, 'legal'), '--seed', '3']);
  const adapterId = workerCmd(['adapter-id', join(adapters, 'legal')]).trim();

  // What the adapter says after the prompt becomes a contribution, so that the paid answer
  // below has something to be attributed to.
  const free = new Worker({ name: 'worker-free', dir, args: ['--model', model, '--adapters', adapters] });
  await free.start();
  const first = await free.post('/v1/completions', { model: 'legal', prompt: PROMPT, max_tokens: 12, temperature: 0 });
  await free.stop();
  assert.equal(first.status, 200);
  const texts = [
    'Patients with a fever should rest and drink water.',
    PROMPT + first.body.choices[0].text,
    'Contracts signed under duress are void.',
  ];

  node = new Node({ name: 'worker-chain', basePath: tempDir('ol-wchain-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };
  // The contributions' bytes in a content store (the CLI's layout: ab/cd/abcd…); the index is
  // built from the snapshot as the chain commits to it.
  const store = join(dir, 'store');
  let paths;
  ({ datanet, paths } = await datanetWithSnapshot(api, { owner: alice, contributor: bob, name: 'case-law', texts, store }));
  const build = (out) => workerCmd(['span-index', 'build-snapshot', '--chain-rpc', node.wsUrl, '--datanet', String(datanet),
    '--version', '1', '--store', store, '--tokenizer', model, '--out', out]);
  writeFileSync(paths[2], 'Contracts signed under duress are valid.');
  assert.throws(() => build(join(dir, 'bad')), /does not match its on-chain content hash/);
  writeFileSync(paths[2], texts[2]);
  const built = JSON.parse(build(join(dir, 'spans')));
  assert.equal(built.docs, 3);

  let r = await ok(api.tx.models.registerBase('demo-base', '', 'llama', blake2AsHex('base', 256), '', [], blake2AsHex('c', 256)), alice);
  const base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  r = await ok(api.tx.models.registerAdapter(base, 'legal', 'cc-by-4.0', 8, 16, ['q_proj', 'v_proj'], adapterId, 'store://legal',
    [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('train', 256)), dave);
  adapter = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
  await ok(api.tx.models.setPricing(adapter, { per1kTokens: OPEN / 100n, perRequest: OPEN / 1000n }), dave);
  await ok(api.tx.openStaking.bondWorker(api.consts.openStaking.minWorkerBond, receiptKey.publicKey, 'http://127.0.0.1', [adapter], 0), charlie);
  await ok(api.tx.attribution.depositEscrow(ESCROW), eve);

  workerArgs = [
    '--model', model, '--adapters', adapters, '--span-index', join(dir, 'spans'),
    '--chain-rpc', node.wsUrl, '--account', '//Charlie', '--signing-key', '//Charlie//receipts',
    '--receipts', join(dir, 'receipts'), '--receipt-batch', '4', '--receipt-linger-ms', '400',
  ];
  worker = new Worker({ name: 'worker', dir, args: workerArgs });
  await worker.start();
});

after(async () => {
  await worker?.stop();
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

test('a paid answer is receipted, settled on chain and credits the contribution it repeats', { skip }, async () => {
  const noVoucher = await ask({});
  assert.equal(noVoucher.status, 402);
  assert.equal(noVoucher.body.error.code, 'voucher_required');
  const wrongModel = await ask((await voucherHeader({ model: adapter + 100 })).header);
  assert.equal(wrongModel.status, 402);
  assert.equal(wrongModel.body.error.code, 'wrong_model');
  const tooCheap = await ask((await voucherHeader({ maxFee: 1n })).header);
  assert.equal(tooCheap.body.error.code, 'fee_above_voucher');

  const { header, requestId } = await voucherHeader();
  const res = await ask(header);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.receipt.id, requestId);
  assert.equal(res.body.receipt.status, 'queued');
  assert.equal(res.body.attribution.receipt_id, requestId);
  const { prompt_tokens: p, completion_tokens: c } = res.body.usage;
  const fee = OPEN / 1000n + (OPEN / 100n) * BigInt(p + c) / 1000n;
  assert.equal(res.body.receipt.fee, fee.toString());

  const rec = await waitFor('the receipt on chain', async () => {
    try { return await rpc(node.rpcPort, 'attribution_getReceipt', [requestId]); } catch { return null; }
  });
  assert.equal(rec.worker, charlie.address);
  assert.equal(rec.fee, fee.toString());
  // The answer repeats contribution 1 (prompt + the adapter's own continuation); the share is
  // scaled by the fraction of answer tokens found in the corpus (a seeded random model emits
  // byte-level tokens that do not survive the text round trip, so that fraction is below 1).
  assert.ok(rec.attribution.length >= 1, `attributed: ${JSON.stringify(res.body)}`);
  assert.equal(rec.attribution[0].index, 1);
  const coverage = res.body.attribution.coverage;
  assert.equal(rec.attribution[0].sharePerbill, res.body.attribution.shares[0].share);
  assert.ok(coverage > 0 && Math.abs(rec.attribution[0].sharePerbill - coverage * 1e9) <= 1, `share ${rec.attribution[0].sharePerbill} vs coverage ${coverage}`);
  assert.ok(BigInt(await rpc(node.rpcPort, 'attribution_contributionEarnings', [datanet, 1, 1])) > 0n, 'Bob earned');
  await waitFor('settled status', async () => (await worker.get(`/v1/receipts/${requestId}`)).body.status === 'settled');

  const replay = await ask(header);
  assert.equal(replay.status, 409);
  assert.equal(replay.body.error.code, 'voucher_used');
});

test('SIGKILL while receipts are settling: after a restart every receipt settles exactly once', { skip }, async () => {
  const before = await usage();
  const vouchers = [];
  for (let i = 0; i < 24; i++) vouchers.push(await voucherHeader());
  const answers = await Promise.all(vouchers.map((v) => ask(v.header, 6)));
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
  // Every answer left with its receipt on disk; kill as soon as the first batch has landed.
  await waitFor('a first batch', async () => (await usage()) > before, 60_000, 50);
  await worker.stop('SIGKILL');
  const atKill = (await usage()) - before;
  assert.ok(atKill < 24, `killed mid-settlement (${atKill} of 24 settled)`);

  await worker.start();
  await waitFor('all receipts settled', async () => (await usage()) - before === 24, 120_000);
  for (const v of vouchers) {
    assert.equal((await worker.get(`/v1/receipts/${v.requestId}`)).body.status, 'settled');
  }

  // Exactly once: one ReceiptSettled per request over the whole chain, and the payer's escrow
  // dropped by exactly the settled fees.
  const head = (await api.rpc.chain.getHeader()).number.toNumber();
  const settled = new Map();
  let fees = 0n;
  for (let n = 1; n <= head; n++) {
    const at = await api.at(await api.rpc.chain.getBlockHash(n));
    for (const { event } of await at.query.system.events()) {
      if (event.section === 'attribution' && event.method === 'ReceiptSettled') {
        const id = event.data.requestId.toHex();
        settled.set(id, (settled.get(id) ?? 0) + 1);
        fees += event.data.fee.toBigInt();
      }
    }
  }
  for (const v of vouchers) assert.equal(settled.get(v.requestId), 1, `settled once: ${v.requestId}`);
  assert.equal(settled.size, 25);
  const held = BigInt((await rpc(node.rpcPort, 'attribution_escrow', [eve.address])).held);
  assert.equal(held, ESCROW - fees);
  const metrics = await (await fetch(`${worker.url}/metrics`)).text();
  assert.match(metrics, /openledger_worker_receipts_queued 0/);
});
