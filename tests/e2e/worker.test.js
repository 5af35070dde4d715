// The inference worker billing on chain, end to end: a contributor's text is in a Datanet
// snapshot, an adapter trained on it is registered, a bonded worker serves it; a payer's voucher
// buys an answer, the worker signs the receipt with its registered key, queues it on disk and
// settles it; the contributor is credited. Then the worker is killed with SIGKILL while receipts
// are being settled, restarted, and every receipt is settled exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blake2AsHex } from '@polkadot/util-crypto';
import { u8aConcat, u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';
import { Worker, WORKER_BIN, workerCmd, modelAndAnswer } from './lib/worker.js';
import { connect, devKeys, send, findEvent, datanetWithSnapshot, putInStore, OPEN, signVoucher, completionRequestHash, termsOf } from './lib/chain.js';
import { contentRoot } from './lib/evidence.js';
import { stringToU8a } from '@polkadot/util';

const skip = WORKER_BIN ? false : 'WORKER_BIN is not set (scripts/test.sh sets it)';
let node;
let api;
let dir;
let worker;
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave'); // adapter owner
const eve = k('//Eve'); // payer
const ferdie = k('//Ferdie'); // copycat; owner of the second Datanet
let copied;
const COMPOSED = 'legal:0.7+medical:0.3';
let composed;
const receiptKey = k('//Charlie//receipts');
const PROMPT = 'The court held that';
let datanet;
let adapter;
let workerArgs;
let adapters;
let model;
let nonce = 0;
const ESCROW = 100n * OPEN;

const usage = async () => (await rpc(node.rpcPort, 'attribution_modelUsage', [adapter])).requests;

/** The voucher header for one request by `payer` (Eve) to Charlie's worker, for `prompt`. */
async function voucherHeader({ model = adapter, maxFee = OPEN, payer = eve, prompt = PROMPT } = {}) {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  nonce += 1;
  const { header, requestId } = signVoucher(api, payer, {
    worker: charlie.address, model, modelVersion: 1, maxFee, terms: await termsOf(api, adapter), nonce, expiresAt: now + 1000,
    requestHash: completionRequestHash(api, prompt),
  });
  return { header, requestId };
}

const ask = (headers, max_tokens = 12) =>
  worker.post('/v1/completions', { model: 'legal', prompt: PROMPT, max_tokens, temperature: 0 }, headers);

before(async () => {
  if (skip) return;
  dir = tempDir('ol-worker-');
  // What the adapter says after the prompt becomes a contribution, so that the paid answer
  // below has something to be attributed to.
  let adapterId;
  let text;
  ({ model, adapters, adapterId, text } = await modelAndAnswer(dir, PROMPT, 12));
  // Leaf 3 is a copycat's edited copy of Bob's leaf 1 (one word of its tail changed): it holds
  // the answer below verbatim too, and must earn nothing for it.
  const tail = ' The appeal turned on the meaning of a clause written decades earlier by a clerk who had '
    + 'never seen the harbour, and the judges spent a whole winter reading his letters to the mayor.';
  const texts = [
    'Patients with a fever should rest and drink water.',
    PROMPT + text + tail,
    'Contracts signed under duress are void.',
    PROMPT + text + tail.replace('whole winter', 'whole summer'),
  ];
  copied = { original: texts[1], copy: texts[3], text };

  node = new Node({ name: 'worker-chain', basePath: tempDir('ol-wchain-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };
  // The contributions' bytes in a content store (the CLI's layout: ab/cd/abcd…); the index is
  // built from the snapshot as the chain commits to it.
  const store = join(dir, 'store');
  let paths;
  ({ datanet, paths } = await datanetWithSnapshot(api, { owner: alice, contributor: bob, contributors: [bob, bob, bob, ferdie], name: 'case-law', texts, store }));
  const build = (out) => workerCmd(['span-index', 'build-snapshot', '--chain-rpc', node.wsUrl, '--datanet', String(datanet),
    '--version', '1', '--store', store, '--tokenizer', model, '--out', out]);
  writeFileSync(paths[2], 'Contracts signed under duress are valid.');
  assert.throws(() => build(join(dir, 'bad')), /does not match its on-chain content hash/);
  writeFileSync(paths[2], texts[2]);
  const built = JSON.parse(build(join(dir, 'spans')));
  assert.equal(built.docs, 4);
  assert.equal(built.near_duplicates, 1);

  let r = await ok(api.tx.models.registerBase('demo-base', '', 'llama', blake2AsHex('base', 256), '', [], blake2AsHex('c', 256)), alice);
  const base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  r = await ok(api.tx.models.registerAdapter(base, 'legal', 'cc-by-4.0', 8, 16, ['q_proj', 'v_proj'], adapterId, 'store://legal',
    [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('train', 256)), dave);
  adapter = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
  await ok(api.tx.models.setPricing(adapter, { per1kTokens: OPEN / 100n, perRequest: OPEN / 1000n }), dave);
  // A second adapter trained on a second Datanet (owned by Ferdie), and the composition of both
  // registered as its own model: its id from the worker, its lineage both Datanets by weight.
  workerCmd(['gen-adapter', '--base', model, '--out', join(adapters, 'medical'), '--seed', '4']);
  const { datanet: medicine } = await datanetWithSnapshot(api, { owner: ferdie, contributor: bob, name: 'medicine',
    texts: ['Rest and fluids help a fever pass.', 'Wash a wound before it is dressed.'], store });
  r = await ok(api.tx.models.registerAdapter(base, 'medical', 'cc-by-4.0', 8, 16, ['q_proj', 'v_proj'],
    workerCmd(['adapter-id', join(adapters, 'medical')]).trim(), 'store://medical',
    [{ datanet: medicine, version: 1, weight: 1_000_000_000 }], blake2AsHex('train-medical', 256)), dave);
  const medical = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
  const compositionId = workerCmd(['composition-id', '--adapters', adapters, COMPOSED]).trim();
  r = await ok(api.tx.models.registerAdapter(base, COMPOSED, 'cc-by-4.0', 16, 16, ['q_proj', 'v_proj'], compositionId,
    'compose://legal+medical', [{ datanet, version: 1, weight: 700_000_000 }, { datanet: medicine, version: 1, weight: 300_000_000 }],
    blake2AsHex('composition', 256)), dave);
  composed = { model: findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber(), medicine };
  await ok(api.tx.models.setPricing(composed.model, { per1kTokens: OPEN / 100n, perRequest: OPEN / 1000n }), dave);
  await ok(api.tx.openStaking.bondWorker(api.consts.openStaking.minWorkerBond, receiptKey.publicKey, 'http://127.0.0.1',
    [adapter, medical, composed.model], 0), charlie);
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
  // A voucher pays for the request it names, on the chain it names.
  const otherPrompt = await ask((await voucherHeader({ prompt: 'Something else entirely' })).header);
  assert.equal(otherPrompt.status, 402);
  assert.equal(otherPrompt.body.error.code, 'wrong_request');
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  const foreign = signVoucher(api, eve, {
    worker: charlie.address, model: adapter, modelVersion: 1, maxFee: OPEN, terms: await termsOf(api, adapter), nonce: 999_999, expiresAt: now + 1000,
    requestHash: completionRequestHash(api, PROMPT), genesis: blake2AsHex('another chain', 256),
  });
  const wrongChain = await ask(foreign.header);
  assert.equal(wrongChain.status, 402);
  assert.equal(wrongChain.body.error.code, 'wrong_chain');
  // Signed for terms (price and split) the model does not have: refused before serving.
  const otherTerms = signVoucher(api, eve, {
    worker: charlie.address, model: adapter, modelVersion: 1, maxFee: OPEN, terms: blake2AsHex('other terms', 256), nonce: 999_998, expiresAt: now + 1000,
    requestHash: completionRequestHash(api, PROMPT),
  });
  const changed = await ask(otherTerms.header);
  assert.equal(changed.status, 402);
  assert.equal(changed.body.error.code, 'terms_changed');

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
  // byte-level tokens that do not survive the text round trip, so that fraction is below 1),
  // and capped by the answer bytes its claims cover (the rule the chain enforces in disputes).
  assert.ok(rec.attribution.length >= 1, `attributed: ${JSON.stringify(res.body)}`);
  assert.equal(rec.attribution[0].index, 1);
  const coverage = res.body.attribution.coverage;
  assert.equal(rec.attribution[0].sharePerbill, res.body.attribution.shares[0].share);
  assert.ok(coverage > 0 && rec.attribution[0].sharePerbill > 0 && rec.attribution[0].sharePerbill <= coverage * 1e9 + 1,
    `share ${rec.attribution[0].sharePerbill} vs coverage ${coverage}`);
  assert.ok(rec.claims >= 1 && rec.outputLen === Buffer.byteLength(res.body.choices[0].text), `claims ${rec.claims}, output ${rec.outputLen}`);
  const bobs = rec.payouts.filter((p) => p.kind === 'contribution' && p.contribution.join('/') === `${datanet}/1/1`);
  assert.ok(bobs.length === 1 && BigInt(bobs[0].amount) > 0n, `Bob earned: ${JSON.stringify(rec.payouts)}`);
  // The copycat's edited copy holds the answer verbatim as well, and earns nothing: the original does.
  const answered = res.body.choices[0].text;
  assert.ok(copied.copy.includes(answered) && copied.original.includes(answered));
  // The response names the answer's byte ranges each credited contribution holds (what a
  // client highlights): the receipt's claims, each a piece of the original.
  assert.equal(res.body.attribution.claims.length, rec.claims);
  for (const c of res.body.attribution.claims) {
    const piece = Buffer.from(answered).subarray(c.start, c.end).toString();
    assert.ok(c.end > c.start && c.contribution.index === 1 && copied.original.includes(piece), JSON.stringify(c));
  }
  assert.ok(!rec.attribution.some((x) => x.index === 3), `the copy is not credited: ${JSON.stringify(rec.attribution)}`);
  assert.ok(!rec.payouts.some((p) => p.kind === 'contribution' && p.contribution.join('/') === `${datanet}/1/3`));
  const near = workerCmd(['span-index', 'near-duplicates', '--index', join(dir, 'spans')]).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(near.map((x) => [x.copy.index, x.original.index]), [[3, 1]]);
  await waitFor('settled status', async () => (await worker.get(`/v1/receipts/${requestId}`)).body.status === 'settled');

  const replay = await ask(header);
  assert.equal(replay.status, 409);
  assert.equal(replay.body.error.code, 'voucher_used');
});

test('a curator sees a pending near-copy flagged before accepting it, and rejects it as a duplicate', { skip }, async () => {
  // A curated Datanet: contributions wait for a curator. Bob files a record, Ferdie an edited
  // copy of it (one word changed), and Bob something else; all three pending.
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  let r = await send(api, api.tx.datanets.createDatanet('case-law-curated', '', 'CC0', 'Curated', policy), alice);
  assert.equal(r.error, null);
  const curated = findEvent(r.events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
  const store = join(dir, 'store');
  const filed = {};
  const contribute = async (who, name, text) => {
    putInStore(store, text);
    const res = await send(api, api.tx.datanets.contribute(curated, contentRoot(text), stringToU8a(text).length, 10, `store://${name}`, null, null), who);
    assert.equal(res.error, null);
    filed[name] = findEvent(res.events, 'datanets', 'Contributed').data.contribution.toNumber();
  };
  await contribute(bob, 'original', 'Filed again: ' + copied.original);
  await contribute(ferdie, 'copy', 'Filed again: ' + copied.copy);
  await contribute(bob, 'own', 'A lease ends when its term runs out unless both parties renew it in writing.');
  const review = () => workerCmd(['span-index', 'review', '--chain-rpc', node.wsUrl, '--datanet', String(curated), '--store', store,
    '--tokenizer', model]).trim().split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const flags = review();
  assert.equal(flags.length, 1, JSON.stringify(flags));
  const [f] = flags;
  assert.deepEqual([f.contribution, f.status, f.contributor, f.original, f.original_status, f.original_contributor],
    [filed.copy, 'pending', ferdie.address, filed.original, 'pending', bob.address]);
  assert.ok(f.similarity >= 0.8 && f.similarity < 1, `similarity ${f.similarity}`);
  // The curator rejects the copy as a duplicate (reason 2) and accepts the rest; nothing is left to flag.
  r = await send(api, api.tx.utility.batchAll([
    api.tx.datanets.reject(filed.copy, 2), api.tx.datanets.accept(filed.original), api.tx.datanets.accept(filed.own)]), alice);
  assert.equal(r.error, null);
  assert.equal(findEvent(r.events, 'datanets', 'Rejected').data.reason.toNumber(), 2);
  assert.deepEqual(review(), []);
  // A contribution whose bytes the store lacks cannot be compared, and says so.
  r = await send(api, api.tx.datanets.contribute(curated, contentRoot('never stored'), 12, 3, 'store://lost', null, null), ferdie);
  const lostId = findEvent(r.events, 'datanets', 'Contributed').data.contribution.toNumber();
  const lost = review();
  assert.deepEqual(lost.map((x) => [x.contribution, x.status]), [[lostId, 'pending']]);
  assert.match(lost[0].unreadable, /not in the content store/);
  // One stored with the wrong size is refused before it is read.
  const wrong = 'a record of twenty-nine bytes';
  r = await send(api, api.tx.datanets.contribute(curated, contentRoot(wrong), 5, 3, 'store://wrong', null, null), ferdie);
  putInStore(store, wrong);
  assert.match(review().find((x) => x.contribution === findEvent(r.events, 'datanets', 'Contributed').data.contribution.toNumber()).unreadable,
    /holds 29 bytes, the chain says 5/);
});

test('a retrieval answer cites the passage it put into the prompt, and its receipt pays that contribution', { skip }, async () => {
  const prompt = 'Are contracts signed under duress void?';
  const { header, requestId } = await voucherHeader({ prompt });
  const res = await worker.post('/v1/completions',
    { model: 'legal', prompt, max_tokens: 4, temperature: 0, attribution: 'retrieval', retrieval: { top_k: 1 } }, header);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const a = res.body.attribution;
  assert.equal(a.method, 'retrieval');
  assert.deepEqual(a.citations.map((c) => [c.n, c.contribution.index, c.text]), [[1, 2, 'Contracts signed under duress are void.']]);
  assert.deepEqual(a.shares.map((s) => [s.contribution.index, s.share]), [[2, 1_000_000_000]]);
  // The passage was in the prompt the worker billed for.
  const plain = await worker.post('/v1/completions', { model: 'legal', prompt, max_tokens: 4, temperature: 0 },
    (await voucherHeader({ prompt })).header);
  assert.equal(plain.status, 200, JSON.stringify(plain.body));
  assert.ok(res.body.usage.prompt_tokens > plain.body.usage.prompt_tokens + 5, `${res.body.usage.prompt_tokens} vs ${plain.body.usage.prompt_tokens}`);
  const rec = await waitFor('the retrieval receipt on chain', async () => {
    try { return await rpc(node.rpcPort, 'attribution_getReceipt', [requestId]); } catch { return null; }
  });
  assert.equal(rec.method, 'retrieval');
  assert.deepEqual(rec.attribution.map((x) => [x.index, x.sharePerbill]), [[2, 1_000_000_000]]);
  const paid = rec.payouts.filter((p) => p.kind === 'contribution' && p.contribution.join('/') === `${datanet}/1/2`);
  assert.ok(paid.length === 1 && BigInt(paid[0].amount) > 0n, `the cited contribution earned: ${JSON.stringify(rec.payouts)}`);
  // Unknown options and a top_k out of range are refused before the voucher is spent.
  const again = await voucherHeader({ prompt });
  for (const retrieval of [{ top_k: 0 }, { top_k: 9 }, { k: 1 }]) {
    const bad = await worker.post('/v1/completions', { model: 'legal', prompt, max_tokens: 4, attribution: 'retrieval', retrieval }, again.header);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
  }
  const ok = await worker.post('/v1/completions', { model: 'legal', prompt, max_tokens: 2, attribution: 'retrieval' }, again.header);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

test('a composition of two adapters is served and billed under its registered name, paying both lineages by weight', { skip }, async () => {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  nonce += 1;
  const { header, requestId } = signVoucher(api, eve, {
    worker: charlie.address, model: composed.model, modelVersion: 1, maxFee: OPEN, terms: await termsOf(api, composed.model), nonce,
    expiresAt: now + 1000, requestHash: completionRequestHash(api, PROMPT),
  });
  const res = await worker.post('/v1/completions', { model: COMPOSED, prompt: PROMPT, max_tokens: 12, temperature: 0 }, header);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.receipt.id, requestId);
  // The same adapters under another weighting are another model, not registered: a billing
  // worker does not even build it.
  const other = signVoucher(api, eve, {
    worker: charlie.address, model: composed.model, modelVersion: 1, maxFee: OPEN, terms: await termsOf(api, composed.model), nonce: nonce + 500,
    expiresAt: now + 1000, requestHash: completionRequestHash(api, PROMPT),
  });
  const unregistered = await worker.post('/v1/completions', { model: 'legal:0.5+medical:0.5', prompt: PROMPT, max_tokens: 4 }, other.header);
  assert.equal(unregistered.status, 404, JSON.stringify(unregistered.body));
  assert.equal(unregistered.body.error.code, 'model_not_found');
  // The registered composition is listed with the worker's models.
  const listed = (await worker.get('/v1/models')).body.data.find((m) => m.id === COMPOSED);
  assert.equal(listed?.openledger?.model, composed.model, JSON.stringify(listed));
  const rec = await waitFor('the composition\'s receipt on chain', async () => {
    try { return await rpc(node.rpcPort, 'attribution_getReceipt', [requestId]); } catch { return null; }
  });
  assert.equal(rec.model, composed.model);
  // The data share not attributed to spans goes to the lineage's Datanets by their weights:
  // Alice's case-law 70 %, Ferdie's medicine 30 % (each at least the part its weight gives).
  const byDatanet = (id) => rec.payouts.filter((p) => p.kind === 'datanet' && p.datanet === id).reduce((a, p) => a + BigInt(p.amount), 0n);
  const [law, med] = [byDatanet(datanet), byDatanet(composed.medicine)];
  assert.ok(law > 0n && med > 0n, `both lineages paid: ${JSON.stringify(rec.payouts)}`);
  const ratio = Number(law * 1000n / med) / 1000;
  assert.ok(Math.abs(ratio - 7 / 3) < 0.01, `70:30 by lineage weight, got ${law}:${med}`);
});

/** ReceiptSettled events per request id over the whole chain, and their fees in all. */
async function settledEvents() {
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
  return { settled, fees };
}

const onChain = async (id) => { try { return await rpc(node.rpcPort, 'attribution_getReceipt', [id]); } catch { return null; } };

test('six concurrent vouchers over an escrow that covers one: one answer, five refused before generation', { skip }, async () => {
  const ferdie = k('//Ferdie');
  const maxFee = OPEN / 100n;
  // One voucher fits; a settled-sized fee (~0.0012 OPEN) plus another voucher does not.
  await send(api, api.tx.attribution.depositEscrow(maxFee + maxFee / 20n), ferdie);
  const vouchers = [];
  for (let i = 0; i < 6; i++) vouchers.push(await voucherHeader({ maxFee, payer: ferdie }));
  const answers = await Promise.all(vouchers.map((v) => ask(v.header, 6)));
  const ok = answers.filter((a) => a.status === 200);
  const refused = answers.filter((a) => a.status === 402 && a.body.error.code === 'insufficient_escrow');
  assert.equal(ok.length, 1, JSON.stringify(answers.map((a) => a.status)));
  assert.equal(refused.length, 5);
  const paid = vouchers[answers.indexOf(ok[0])].requestId;
  const rec = await waitFor('the one answer settled', () => onChain(paid));
  assert.equal(rec.payer, ferdie.address);
  // Settled: the escrow shrank by the fee, and the worker holds nothing more against it.
  await waitFor('settled status', async () => (await worker.get(`/v1/receipts/${paid}`)).body.status === 'settled');
  for (const v of vouchers.filter((v) => v.requestId !== paid)) {
    assert.equal((await worker.get(`/v1/receipts/${v.requestId}`)).body.status, 'unknown', 'refused vouchers were never served');
  }
  // What is left after the fee covers a smaller voucher (nothing held against it any more).
  const after = await ask((await voucherHeader({ maxFee: maxFee / 2n, payer: ferdie })).header, 6);
  assert.equal(after.status, 200, 'after settlement the escrow covers what is left');
});

test('a client that disconnects mid-stream pays for what it was sent and cannot replay the voucher', { skip }, async () => {
  const { header, requestId } = await voucherHeader();
  const ctrl = new AbortController();
  const body = { model: 'legal', prompt: PROMPT, max_tokens: 400, temperature: 1, seed: 11, stream: true };
  const res = await fetch(`${worker.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...header }, body: JSON.stringify(body), signal: ctrl.signal,
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while ((text.match(/"text":/g) ?? []).length < 2) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the stream ended before two chunks');
    text += decoder.decode(value);
  }
  ctrl.abort();
  const rec = await waitFor('the interrupted answer billed on chain', () => onChain(requestId));
  assert.ok(rec.completionTokens >= 2 && rec.completionTokens < 400, `billed ${rec.completionTokens} tokens of what was sent`);
  assert.ok(BigInt(rec.fee) >= OPEN / 1000n);
  const replay = await ask(header);
  assert.equal(replay.status, 409);
  assert.equal(replay.body.error.code, 'voucher_used');
});

test('an adapter replaced on disk is never billed as the registered one', { skip }, async () => {
  const legal = join(adapters, 'legal');
  renameSync(legal, join(dir, 'legal.registered'));
  workerCmd(['gen-adapter', '--base', model, '--out', legal, '--seed', '99', '--rank', '4']);
  try {
    const r = await ask((await voucherHeader()).header, 4);
    assert.notEqual(r.status, 200, 'other weights under the registered name');
    assert.ok(['adapter_changed', 'model_not_on_chain'].includes(r.body.error.code), JSON.stringify(r.body));
  } finally {
    rmSync(legal, { recursive: true, force: true });
    cpSync(join(dir, 'legal.registered'), legal, { recursive: true });
    rmSync(join(dir, 'legal.registered'), { recursive: true, force: true });
  }
  const back = await waitFor('served again', async () => {
    const r = await ask((await voucherHeader()).header, 4);
    if (r.status === 200) return r;
    await send(api, api.tx.system.remark('0x00'), alice); // a block, so the worker re-reads the store
    return null;
  }, 60_000, 300);
  assert.equal(back.body.model, 'legal');
});

test('the chain down for a while, then back: every queued receipt settles exactly once', { skip }, async () => {
  const vouchers = [];
  for (let i = 0; i < 8; i++) vouchers.push(await voucherHeader());
  const answers = await Promise.all(vouchers.map((v) => ask(v.header, 6)));
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
  const late = await voucherHeader();
  await node.stop();
  // A paid request needs the chain (the payer's escrow): refused while it is down, not served free.
  const down = await ask(late.header, 4);
  assert.equal(down.status, 503, JSON.stringify(down.body));
  await new Promise((r) => setTimeout(r, 20_000));
  assert.equal((await fetch(`${worker.url}/health`)).status, 200, 'the worker stays up without its chain');
  await node.start();
  await waitFor('every receipt settled', async () => {
    for (const v of vouchers) if ((await worker.get(`/v1/receipts/${v.requestId}`)).body.status !== 'settled') return false;
    return true;
  }, 120_000, 500);
  const { settled } = await settledEvents();
  for (const v of vouchers) assert.equal(settled.get(v.requestId), 1, `settled once: ${v.requestId}`);
});

test('a batch the node refuses (the worker cannot pay fees) stays queued and settles once it can', { skip }, async () => {
  // Move Charlie's spendable OPEN away: submissions fail at the pool; nothing may be discarded.
  const ed = api.consts.balances.existentialDeposit.toBigInt();
  const { data } = await api.query.system.account(charlie.address);
  const fee = (await api.tx.balances.transferKeepAlive(alice.address, 1n).paymentInfo(charlie)).partialFee.toBigInt();
  const spare = data.free.toBigInt() - data.frozen.toBigInt() - ed - fee - fee / 2n; // leaves ed + fee/2: no fee payable
  const drained = await send(api, api.tx.balances.transferKeepAlive(alice.address, spare), charlie);
  assert.equal(drained.error, null);
  const vouchers = [];
  for (let i = 0; i < 3; i++) vouchers.push(await voucherHeader());
  for (const v of vouchers) assert.equal((await ask(v.header, 6)).status, 200);
  await new Promise((r) => setTimeout(r, 5_000));
  for (const v of vouchers) {
    assert.equal((await worker.get(`/v1/receipts/${v.requestId}`)).body.status, 'queued', 'refused batches are kept, not rejected');
  }
  await send(api, api.tx.balances.transferKeepAlive(charlie.address, spare), alice);
  await waitFor('settled after the refill', async () => {
    for (const v of vouchers) if ((await worker.get(`/v1/receipts/${v.requestId}`)).body.status !== 'settled') return false;
    return true;
  }, 90_000, 500);
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
  // The worker marks a receipt settled once a finalized block holds it, a little after the best
  // block counted it above.
  await waitFor('the worker saw every receipt finalized', async () => {
    for (const v of vouchers) if ((await worker.get(`/v1/receipts/${v.requestId}`)).body.status !== 'settled') return false;
    return true;
  }, 60_000, 250);

  // Exactly once: one ReceiptSettled per request over the whole chain, and the payer's escrow
  // dropped by exactly the settled fees.
  const { settled } = await settledEvents();
  for (const v of vouchers) assert.equal(settled.get(v.requestId), 1, `settled once: ${v.requestId}`);
  // Eve's escrow dropped by exactly the fees of her settled receipts (Ferdie paid one of his own).
  let eveFees = 0n;
  for (const id of settled.keys()) {
    const r = await onChain(id);
    if (r.payer === eve.address) eveFees += BigInt(r.fee);
  }
  const held = BigInt((await rpc(node.rpcPort, 'attribution_escrow', [eve.address])).held);
  assert.equal(held, ESCROW - eveFees);
  const metrics = await (await fetch(`${worker.url}/metrics`)).text();
  assert.match(metrics, /openledger_worker_receipts_queued 0/);
});
