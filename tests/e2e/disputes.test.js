// Span disputes with no judge, end to end: the real node, two real workers and the CLI.
// (a) an honest receipt is challenged, the worker answers with its evidence by itself, the
//     challenger loses the bond to the worker;
// (b) a worker that credits a contribution with no real span (`--test-misattribute`) is
//     challenged, cannot answer, and at the deadline is slashed with that receipt reversed;
// (c) an omission proof (the real source, uncredited) wins against it the same way;
// (d) proofs with a bad Merkle path, wrong bytes, or a span under the minimum are refused with
//     their typed error and change nothing.
// No sudo call anywhere in this file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blake2AsHex } from '@polkadot/util-crypto';
import { stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';
import { Worker, WORKER_BIN, workerCmd, modelAndAnswer } from './lib/worker.js';
import { connect, devKeys, send, findEvent, datanetWithSnapshot, OPEN, signVoucher, completionRequestHash, termsOf, free, sealUntil } from './lib/chain.js';
import { rangeProof, indexOfBytes, MIN_OMISSION_BYTES } from './lib/evidence.js';

const CLI_BIN = process.env.CLI_BIN;
const skip = WORKER_BIN && CLI_BIN ? false : 'WORKER_BIN and CLI_BIN must be set (scripts/test.sh sets them)';
const run = promisify(execFile);
let node;
let api;
let dir;
let store;
let honest;
let cheat;
let datanet;
let adapter;
let nonce = 0;
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave'); // adapter owner
const eve = k('//Eve'); // payer
const ferdie = k('//Ferdie'); // the misattributing worker
const challenger = k('//Challenger'); // holds no stake: anyone may dispute a span receipt
const PROMPT = 'The court held that';
const TOKENS = 40; // answers long enough for omissions (at least 64 bytes)
// A record longer than a chunk, so that its proofs carry siblings.
const LONG = Array.from({ length: 60 }, (_, i) => `Line ${i}: the tolls of the northern bridges doubled every winter.`).join('\n');

const cli = async (...args) => {
  const suri = args[0] === 'evidence' ? '//Eve' : '//Challenger'; // the payer reads evidence
  try {
    const { stdout } = await run(CLI_BIN, ['--url', node.wsUrl, '--suri', suri, ...args], { encoding: 'utf8' });
    return { ok: true, out: stdout };
  } catch (e) {
    return { ok: false, out: `${e.stdout}${e.stderr}` };
  }
};
const receiptOf = async (id) => { try { return await rpc(node.rpcPort, 'attribution_getReceipt', [id]); } catch { return null; } };

/** A paid answer from `w` (worker account `who`): the response and its request id, settled. */
async function paidAnswer(w, who) {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  nonce += 1;
  const { header, requestId } = signVoucher(api, eve, {
    worker: who.address, model: adapter, modelVersion: 1, maxFee: OPEN, terms: await termsOf(api, adapter), nonce, expiresAt: now + 1000,
    requestHash: completionRequestHash(api, PROMPT),
  });
  const res = await w.post('/v1/completions', { model: 'legal', prompt: PROMPT, max_tokens: TOKENS, temperature: 0 }, header);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const rec = await waitFor(`receipt ${requestId} on chain`, () => receiptOf(requestId));
  return { res, rec, requestId, text: res.body.choices[0].text };
}

const events = async (section, method) => {
  const out = [];
  const head = (await api.rpc.chain.getHeader()).number.toNumber();
  for (let n = Math.max(1, head - 40); n <= head; n++) {
    const at = await api.at(await api.rpc.chain.getBlockHash(n));
    for (const { event } of await at.query.system.events()) if (event.section === section && event.method === method) out.push(event);
  }
  return out;
};

before(async () => {
  if (skip) return;
  dir = tempDir('ol-disputes-');
  // What the adapter says after the prompt is contribution 1, so the paid answers copy it.
  const { model, adapters, adapterId, text } = await modelAndAnswer(dir, PROMPT, TOKENS);
  const texts = ['Patients with a fever should rest and drink water.', PROMPT + text, 'Contracts signed under duress are void.', LONG];

  node = new Node({ name: 'disputes-chain', basePath: tempDir('ol-dchain-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };
  store = join(dir, 'store');
  ({ datanet } = await datanetWithSnapshot(api, { owner: alice, contributor: bob, name: 'case-law', texts, store }));
  workerCmd(['span-index', 'build-snapshot', '--chain-rpc', node.wsUrl, '--datanet', String(datanet), '--version', '1',
    '--store', store, '--tokenizer', model, '--out', join(dir, 'spans')]);
  let r = await ok(api.tx.models.registerBase('demo-base', '', 'llama', blake2AsHex('base', 256), '', [], blake2AsHex('c', 256)), alice);
  const base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  r = await ok(api.tx.models.registerAdapter(base, 'legal', 'cc-by-4.0', 8, 16, ['q_proj', 'v_proj'], adapterId, 'store://legal',
    [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('train', 256)), dave);
  adapter = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
  await ok(api.tx.models.setPricing(adapter, { per1kTokens: OPEN / 100n, perRequest: OPEN / 1000n }), dave);
  const bond = api.consts.openStaking.minWorkerBond;
  await ok(api.tx.openStaking.bondWorker(bond, k('//Charlie//receipts').publicKey, 'http://127.0.0.1', [adapter], 0), charlie);
  await ok(api.tx.openStaking.bondWorker(bond, k('//Ferdie//receipts').publicKey, 'http://127.0.0.1', [adapter], 0), ferdie);
  await ok(api.tx.attribution.depositEscrow(100n * OPEN), eve);
  await ok(api.tx.balances.transferKeepAlive(challenger.address, 10_000n * OPEN), alice);

  const args = (who, receipts, extra = []) => ['--model', model, '--adapters', adapters, '--span-index', join(dir, 'spans'),
    '--chain-rpc', node.wsUrl, '--account', `//${who}`, '--signing-key', `//${who}//receipts`, '--receipts', join(dir, receipts),
    '--receipt-batch', '1', '--receipt-linger-ms', '0', '--dispute-poll-ms', '300', ...extra];
  honest = await new Worker({ name: 'honest', dir, args: args('Charlie', 'r-honest') }).start();
  cheat = await new Worker({ name: 'cheat', dir, args: args('Ferdie', 'r-cheat', ['--test-misattribute']) }).start();
});

after(async () => {
  await honest?.stop();
  await cheat?.stop();
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

test('(a) an honest receipt is challenged, its worker answers by itself, the challenger loses the bond', { skip }, async () => {
  const { rec, requestId } = await paidAnswer(honest, charlie);
  assert.equal(rec.method, 'spanMatch');
  assert.ok(rec.claims >= 1 && rec.attribution.length >= 1, JSON.stringify(rec));
  assert.equal(rec.attribution[0].index, 1, 'the answer copies contribution 1');
  // Anyone checks the evidence against the chain.
  const checked = await cli('evidence', requestId, '--worker', honest.url);
  assert.ok(checked.ok, checked.out);
  assert.equal(JSON.parse(checked.out).verified, true);
  // Over HTTP the evidence (chunks of the payer's answer) goes to the payer alone: no signature,
  // or another account's signature of the same request, gets 403.
  const asked = api.createType('(Bytes, H256)', ['openledger:evidence:v1', requestId]).toU8a();
  const signedBy = (who) => ({ 'x-openledger-evidence-signature': u8aToHex(u8aConcat(new Uint8Array([1]), who.sign(asked))) });
  for (const headers of [{}, signedBy(challenger)]) {
    const denied = await honest.get(`/v1/evidence/${requestId}`, headers);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'not_the_payer');
  }
  const granted = await honest.get(`/v1/evidence/${requestId}`, signedBy(eve));
  assert.equal(granted.status, 200);
  assert.equal(granted.body.claims.length, rec.claims);
  assert.equal((await honest.get('/v1/evidence/0x1234')).status, 400, 'a malformed request id');

  const bond = api.consts.attribution.disputeBond.toBigInt();
  const [c0, w0] = [await free(api, challenger.address), await free(api, charlie.address)];
  const disputed = await cli('challenge', 'share', requestId, String(datanet), '1', '1');
  assert.ok(disputed.ok, disputed.out);
  assert.match(disputed.out, /must answer by block/);
  await waitFor('the worker answers the dispute', async () => ((await receiptOf(requestId))?.disputes.length === 0 ? true : null), 60_000);
  const r = await receiptOf(requestId);
  assert.equal(r.verdict, null, 'an answered dispute closes only itself');
  assert.equal(r.payouts.length, rec.payouts.length, 'nothing reversed');
  const answered = (await events('attribution', 'ChallengeAnswered')).find((e) => e.data.requestId.toHex() === requestId);
  assert.ok(answered, 'ChallengeAnswered');
  assert.ok((await free(api, challenger.address)) < c0 - bond + OPEN, 'the challenger lost its bond');
  assert.ok((await free(api, charlie.address)) > w0 + bond - OPEN, 'the worker got it (less its answer fee)');
  assert.deepEqual(await rpc(node.rpcPort, 'attribution_disputes', [charlie.address]), []);
});

test('(b, c) a misattributing worker cannot answer: slashed, each disputed receipt reversed', { skip }, async () => {
  const one = await paidAnswer(cheat, ferdie);
  const two = await paidAnswer(cheat, ferdie);
  for (const x of [one, two]) {
    assert.ok(x.rec.attribution.length >= 1 && !x.rec.attribution.some((s) => s.index === 1), `credits another contribution: ${JSON.stringify(x.rec.attribution)}`);
  }
  // Its evidence does not hold, and anyone can see it before disputing.
  const checked = await cli('evidence', one.requestId, '--worker', cheat.url);
  assert.ok(!checked.ok && /does NOT hold/.test(checked.out), checked.out);

  const wrong = one.rec.attribution[0];
  const share = await cli('challenge', 'share', one.requestId, String(wrong.datanet), String(wrong.version), String(wrong.index));
  assert.ok(share.ok, share.out);
  // (c) The answer's bytes occur in contribution 1, which the second receipt does not credit.
  const answerFile = join(dir, 'answer.txt');
  writeFileSync(answerFile, two.text);
  const omission = await cli('challenge', 'omission', two.requestId, String(datanet), '1', '1', '--output', answerFile, '--store', store);
  assert.ok(omission.ok, omission.out);
  assert.match(omission.out, /proved answer bytes/);

  const disputes = await rpc(node.rpcPort, 'attribution_disputes', [ferdie.address]);
  assert.deepEqual(disputes.map((d) => d.kind).sort(), ['omission', 'share']);
  const eve0 = await free(api, eve.address);
  const escrow0 = (await rpc(node.rpcPort, 'attribution_escrow', [eve.address])).held;
  // The worker stays silent (its evidence would not hold); the deadline passes.
  await sealUntil(api, node.rpcPort, Math.max(...disputes.map((d) => d.deadline)) + 1);
  for (const x of [one, two]) {
    const r = await receiptOf(x.requestId);
    assert.equal(r.verdict, 'false', `upheld: ${JSON.stringify(r)}`);
    assert.deepEqual(r.payouts, [], 'the receipt is reversed');
  }
  const upheld = await events('attribution', 'ChallengeUpheld');
  const refunded = upheld.filter((e) => [one.requestId, two.requestId].includes(e.data.requestId.toHex())).reduce((s, e) => s + e.data.refunded.toBigInt(), 0n);
  assert.equal(refunded, BigInt(one.rec.fee) + BigInt(two.rec.fee), 'exactly the two fees');
  assert.equal((await free(api, eve.address)) - eve0, refunded, 'back to the payer');
  assert.equal((await rpc(node.rpcPort, 'attribution_escrow', [eve.address])).held, escrow0, 'her escrow is untouched');
  assert.equal((await api.query.openStaking.workers(ferdie.address)).unwrap().status.toString(), 'Slashed');
  assert.equal((await events('openStaking', 'Slashed')).length, 2);
});

test('(d) bad proofs are refused with their error and change nothing', { skip }, async () => {
  const { rec, requestId, text } = await paidAnswer(honest, charlie);
  const out = stringToU8a(text);
  const doc = stringToU8a(LONG);
  const ref = (index) => ({ datanet, version: 1, index });
  assert.ok(out.length >= MIN_OMISSION_BYTES, `a long enough answer: ${out.length} bytes`);
  const proof = ({ index = 3, start = 0, len = MIN_OMISSION_BYTES, offset = 0, bytes = doc } = {}) => ({
    claim: { outputStart: start, len, contribution: ref(index), offset },
    output: rangeProof(out, start, len),
    content: rangeProof(bytes, offset, len),
  });
  const tryProof = async (p) => (await send(api, api.tx.attribution.proveOmission(requestId, p), challenger)).error;
  // The answer's first 64 bytes are not in the long record: both proofs hold, the bytes differ.
  assert.equal(await tryProof(proof({ offset: 1500 })), 'attribution.BytesDiffer');
  // A bad Merkle path: a sibling of the record's chunk changed.
  const badPath = proof({ offset: 1500 });
  badPath.content.chunks[0].siblings[0] = blake2AsHex('forged', 256);
  assert.equal(await tryProof(badPath), 'attribution.BadContentProof');
  // Wrong bytes: the answer's chunk altered (its path no longer leads to the output root).
  const badBytes = proof({ offset: 1500 });
  badBytes.output.chunks[0].bytes = `0x${'00'.repeat((badBytes.output.chunks[0].bytes.length - 2) / 2)}`;
  assert.equal(await tryProof(badBytes), 'attribution.BadOutputProof');
  // An omission under the minimum.
  assert.equal(await tryProof(proof({ len: MIN_OMISSION_BYTES - 1, offset: 1500 })), 'attribution.OmissionTooShort');
  // Contribution 1 holds the answer, but is credited: its share is what to dispute.
  const source = stringToU8a(PROMPT + text);
  const at = indexOfBytes(source, out.subarray(0, MIN_OMISSION_BYTES));
  assert.ok(at >= 0);
  assert.equal(await tryProof(proof({ index: 1, offset: at, bytes: source })), 'attribution.AlreadyCredited');
  const after = await receiptOf(requestId);
  assert.equal(after.challenger, null);
  assert.deepEqual(after.disputes, []);
  assert.deepEqual(after.payouts, rec.payouts);
});
