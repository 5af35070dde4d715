// ModelFactory end to end, the whole loop: contributors' texts go into a Datanet snapshot; the
// factory pretrains the seeded base model, fine-tunes a LoRA adapter on the snapshot (every
// contribution checked against the on-chain Merkle root), its held-out loss goes down, it is
// registered on chain with its lineage and added to a running worker's models, which serves it
// without a restart; a paid answer is attributed to the snapshot's contributions, the receipt
// settles, and the contributor claims the OPEN it earned. Then the same through the worker's
// HTTP factory (`POST /v1/factory/jobs`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blake2AsHex } from '@polkadot/util-crypto';
import { u8aConcat, u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';
import { Worker, WORKER_BIN, workerCmd } from './lib/worker.js';
import { connect, devKeys, send, findEvent, datanetWithSnapshot, OPEN, signVoucher, completionRequestHash, vestSettled, termsOf } from './lib/chain.js';
import { RULINGS as TEXTS } from './lib/corpus.js';

const skip = WORKER_BIN ? false : 'WORKER_BIN is not set (scripts/test.sh sets it)';
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave'); // builds the model
const eve = k('//Eve'); // pays for answers
// The worker's admin token (factory endpoints), from a file as an operator keeps it.
const ADMIN_TOKEN = 'factory-admin-token-0123456789';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
const TRAIN = ['--rank', '8', '--alpha', '16', '--dropout', '0', '--target-modules', 'all-linear',
  '--lr', '0.01', '--max-steps', '80', '--batch-size', '4', '--max-seq-len', '48', '--eval-fraction', '0.2', '--seed', '3'];

let node;
let api;
let dir;
let worker;
let datanet;
let base;
let model;
let voucherNonce = 0;
const paths = {};

/** Asserts that a worker command fails with a message (its stderr) matching `re`. */
function failsWith(run, re) {
  assert.throws(run, (e) => { assert.match(String(e.stderr), re); return true; });
}

const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };

async function voucherHeader(forModel, prompt) {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  voucherNonce += 1;
  return signVoucher(api, eve, {
    worker: charlie.address, model: forModel, modelVersion: 1, maxFee: OPEN, terms: await termsOf(api, forModel), nonce: voucherNonce, expiresAt: now + 1000,
    requestHash: completionRequestHash(api, prompt),
  }).header;
}

before(async () => {
  if (skip) return;
  dir = tempDir('ol-factory-');
  paths.base = join(dir, 'base');
  paths.adapters = join(dir, 'adapters');
  paths.store = join(dir, 'store');
  mkdirSync(paths.adapters, { recursive: true });
  workerCmd(['gen-model', '--out', paths.base, '--seed', '7']);
  // The demo's base model learns the bundled corpus first (a few steps keep CI fast).
  const pre = JSON.parse(workerCmd(['factory', 'pretrain', '--model', paths.base, '--max-steps', '30', '--lr', '0.003']));
  assert.ok(pre.run.eval_after.loss < pre.run.eval_before.loss, `pretraining: ${JSON.stringify(pre.run.eval_before)} → ${JSON.stringify(pre.run.eval_after)}`);

  node = new Node({ name: 'factory-chain', basePath: tempDir('ol-fchain-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  ({ datanet } = await datanetWithSnapshot(api, { owner: alice, contributor: bob, name: 'case-law', texts: TEXTS, store: paths.store }));
  workerCmd(['span-index', 'build-snapshot', '--chain-rpc', node.wsUrl, '--datanet', String(datanet), '--version', '1',
    '--store', paths.store, '--tokenizer', paths.base, '--out', join(dir, 'spans')]);

  const weights = workerCmd(['model-hash', paths.base]).trim();
  const r = await ok(api.tx.models.registerBase('demo-base', 'apache-2.0', 'llama', weights, 'store://base', [], blake2AsHex('pretrain', 256)), alice);
  base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  await ok(api.tx.openStaking.bondWorker(api.consts.openStaking.minWorkerBond, charlie.publicKey, 'http://127.0.0.1', [base], 0), charlie);
  await ok(api.tx.attribution.depositEscrow(100n * OPEN), eve);

  const tokenFile = join(dir, 'admin-token');
  writeFileSync(tokenFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  worker = new Worker({
    name: 'factory-worker', dir, args: [
      '--model', paths.base, '--adapters', paths.adapters, '--span-index', join(dir, 'spans'),
      '--chain-rpc', node.wsUrl, '--account', '//Charlie', '--base-model-id', String(base),
      '--receipts', join(dir, 'receipts'), '--receipt-linger-ms', '100',
      '--content-store', paths.store, '--factory-jobs', join(dir, 'jobs'), '--influence',
      '--signing-key', '//Charlie', '--admin-token-file', tokenFile,
    ],
  });
  await worker.start();
});

after(async () => {
  await worker?.stop();
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

test('factory CLI: snapshot → adapter → registered → served → attributed → contributor paid', { skip }, async (t) => {
  const finetune = (extra) => workerCmd(['factory', 'finetune', '--chain-rpc', node.wsUrl, '--snapshot', `${datanet}:1`,
    '--store', paths.store, '--base-dir', paths.base, '--base-model', String(base), '--adapters', paths.adapters, ...TRAIN, ...extra]);

  // A registered base whose weights are not these is refused before any training.
  failsWith(() => workerCmd(['factory', 'finetune', '--chain-rpc', node.wsUrl, '--snapshot', `${datanet}:1`, '--store', paths.store,
    '--base-dir', paths.base, '--base-model', '999', '--adapters', paths.adapters, '--name', 'x']), /base model 999/);
  const otherBase = `${paths.base}-other`;
  workerCmd(['gen-model', '--out', otherBase, '--seed', '8']);
  failsWith(() => workerCmd(['factory', 'finetune', '--chain-rpc', node.wsUrl, '--snapshot', `${datanet}:1`, '--store', paths.store,
    '--base-dir', otherBase, '--base-model', String(base), '--adapters', paths.adapters, '--name', 'x']), /is registered with weights 0x[0-9a-f]+, but/);
  failsWith(() => workerCmd(['factory', 'finetune', '--chain-rpc', node.wsUrl, '--snapshot', `${datanet}:1`, '--store', paths.store,
    '--base-dir', paths.base, '--base-model', String(base), '--adapters', paths.adapters, '--name', 'x', '--rank', '0']), /--rank must be in 1..=256/);

  const report = JSON.parse(finetune(['--name', 'case-law', '--owner', '//Dave', '--serve-with', '//Charlie']));
  model = report.model;
  t.diagnostic(`build: Dave fine-tuned adapter ${report.adapter_id.slice(0, 18)}… on snapshot ${datanet}:1 (${report.train_documents} texts, ${report.run.steps} steps); held-out loss ${report.run.eval_before.loss.toFixed(3)} → ${report.run.eval_after.loss.toFixed(3)}, perplexity ${report.run.eval_before.perplexity.toFixed(1)} → ${report.run.eval_after.perplexity.toFixed(1)}`);
  t.diagnostic(`deploy: registered as model ${model} on base ${base}, lineage ${datanet}:1, added to Charlie's worker`);
  assert.ok(Number.isInteger(model));
  assert.ok(report.run.eval_after.loss < report.run.eval_before.loss, `held-out loss ${report.run.eval_before.loss} → ${report.run.eval_after.loss}`);
  assert.equal(report.eval_documents.length, 2); // 20 % of 8, rounded up
  const onDisk = JSON.parse(readFileSync(join(paths.adapters, 'case-law', 'training_report.json'), 'utf8'));
  assert.equal(onDisk.adapter_id, report.adapter_id);
  assert.equal(workerCmd(['adapter-id', join(paths.adapters, 'case-law')]).trim(), report.adapter_id);

  // On chain: owner, base, lineage, weights and training-config hashes.
  const m = await rpc(node.rpcPort, 'models_getModel', [model]);
  assert.equal(m.owner, dave.address);
  assert.equal(m.base, base);
  assert.equal(m.versions[0].weightsHash, report.adapter_id);
  assert.equal(m.versions[0].trainingConfigHash, report.training_config_hash);
  assert.deepEqual(m.versions[0].lineage.map((l) => [l.datanet, l.version]), [[datanet, 1]]);

  // A rerun (say after a failed registration) reuses the trained adapter and the registration;
  // the same name with other settings is refused.
  const again = JSON.parse(finetune(['--name', 'case-law', '--owner', '//Dave']));
  assert.equal(again.adapter_id, report.adapter_id);
  assert.equal(again.model, model);
  failsWith(() => finetune(['--name', 'case-law', '--owner', '//Dave', '--weight-decay', '0.1']), /another configuration/);

  // Dave prices his model (registered models start free).
  await ok(api.tx.models.setPricing(model, { per1kTokens: OPEN / 100n, perRequest: OPEN / 1000n }), dave);

  // The running worker serves it from the next finalized block (no restart); the answer to the
  // start of a training text continues that text and is attributed to its contribution.
  const trained = TEXTS.findIndex((_, i) => !report.eval_documents.some(([, leaf]) => leaf === i));
  const words = TEXTS[trained].split(' ');
  const prompt = words.slice(0, 4).join(' ');
  const res = await waitFor('the worker serving the new model', async () => {
    const a = await worker.post('/v1/completions', { model: 'case-law', prompt, max_tokens: 16, temperature: 0, attribution: 'span' }, await voucherHeader(model, prompt));
    return a.status === 200 ? a : null;
  }, 60_000, 250);
  assert.ok(TEXTS[trained].startsWith(prompt + res.body.choices[0].text.split('</s>')[0].slice(0, 10)), `answer: ${JSON.stringify(res.body.choices[0].text)}`);
  const top = res.body.attribution.shares[0];
  t.diagnostic(`use: Eve paid for "${prompt}" → "${res.body.choices[0].text}"; attributed to contribution ${JSON.stringify(top.contribution)} (${top.share / 1e7} %)`);
  assert.deepEqual(top.contribution, { datanet, version: 1, index: trained }, JSON.stringify(res.body.attribution));

  const id = res.body.receipt.id;
  const rec = await waitFor('the receipt on chain', async () => {
    try { return await rpc(node.rpcPort, 'attribution_getReceipt', [id]); } catch { return null; }
  });
  assert.equal(rec.model, model);
  // What the contribution earned: a pending payout of the receipt until its challenge window ends.
  const payout = rec.payouts.find((p) => p.kind === 'contribution' && p.contribution.join('/') === `${datanet}/1/${trained}`);
  const earned = BigInt(payout?.amount ?? 0);
  assert.ok(earned > 0n, `the contribution earned OPEN: ${JSON.stringify(rec.payouts)}`);

  // The same question attributed by influence (DataInf over the training gradients the factory
  // cached): the receipt says so, and credits contributions of the training snapshot.
  const inf = await worker.post('/v1/completions', { model: 'case-law', prompt, max_tokens: 16, temperature: 0, attribution: 'influence' }, await voucherHeader(model, prompt));
  assert.equal(inf.status, 200, JSON.stringify(inf.body));
  assert.equal(inf.body.attribution.method, 'influence');
  assert.equal(inf.body.attribution.training_examples, TEXTS.length - 2);
  assert.ok(inf.body.attribution.shares.length > 0);
  for (const s of inf.body.attribution.shares) {
    assert.equal(s.contribution.datanet, datanet);
    assert.ok(!report.eval_documents.some(([, leaf]) => leaf === s.contribution.index), 'only trained-on texts have influence');
  }
  const infRec = await waitFor('the influence receipt', async () => {
    try { return await rpc(node.rpcPort, 'attribution_getReceipt', [inf.body.receipt.id]); } catch { return null; }
  });
  assert.equal(infRec.method, 'influence');
  assert.equal(infRec.attribution.length, inf.body.attribution.shares.length);
  const badMode = await worker.post('/v1/completions', { model: 'case-law', prompt, max_tokens: 4, attribution: 'vibes' });
  assert.equal(badMode.status, 400);

  // Bob, the contributor, claims what the inference earned him once it has vested (after the
  // receipts' challenge window).
  await vestSettled(api, node.rpcPort);
  assert.ok(BigInt(await rpc(node.rpcPort, 'attribution_contributionEarnings', [datanet, 1, trained])) >= earned);
  const free = async () => (await api.query.system.account(bob.address)).data.free.toBigInt();
  const before = await free();
  const r = await ok(api.tx.attribution.claimRewards(bob.address), alice);
  const claimed = findEvent(r.events, 'attribution', 'RewardsClaimed').data.amount.toBigInt();
  assert.ok(claimed >= earned, `claimed ${claimed} ≥ earned ${earned}`);
  assert.equal(await free(), before + claimed);
  t.diagnostic(`earn: Bob's contribution earned ${earned} and Bob claimed ${claimed} (planck; 1 OPEN = ${OPEN})`);
});

test('factory over HTTP: a job trains, registers and serves an adapter of the worker', { skip }, async () => {
  // Admin endpoints: nothing without the bearer token, not even the list.
  const anon = await worker.post('/v1/factory/jobs', { name: 'x', snapshots: [{ datanet, version: 1, weight: 1 }] });
  assert.equal(anon.status, 401);
  assert.equal((await worker.get('/v1/factory/jobs')).status, 401);
  assert.equal((await worker.get('/v1/factory/jobs', { authorization: 'Bearer wrong-token-of-some-length' })).status, 401);
  const bad = await worker.post('/v1/factory/jobs', { name: 'x', snapshots: [] }, ADMIN);
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /snapshots/);
  const badLora = await worker.post('/v1/factory/jobs', { name: 'x', snapshots: [{ datanet, version: 1, weight: 1 }], lora: { rank: 0 } }, ADMIN);
  assert.equal(badLora.status, 400);
  const huge = await worker.post('/v1/factory/jobs', { name: 'x', snapshots: [{ datanet, version: 1, weight: 1 }], optim: { max_steps: 100000000000000000 } }, ADMIN);
  assert.equal(huge.status, 400);
  assert.match(huge.body.error.message, /max-steps/);
  const taken = await worker.post('/v1/factory/jobs', { name: 'case-law', snapshots: [{ datanet, version: 1, weight: 1 }] }, ADMIN);
  assert.equal(taken.status, 400);

  const sub = await worker.post('/v1/factory/jobs', {
    name: 'case-law-2', snapshots: [{ datanet, version: 1, weight: 1 }],
    lora: { rank: 4, alpha: 8, dropout: 0, target_modules: ['q_proj', 'v_proj'] },
    optim: { max_steps: 20, lr: 0.01, batch_size: 4, max_seq_len: 48, seed: 5 },
  }, ADMIN);
  assert.equal(sub.status, 202, JSON.stringify(sub.body));
  const job = await waitFor('the job done', async () => {
    const j = (await worker.get(`/v1/factory/jobs/${sub.body.id}`, ADMIN)).body;
    assert.notEqual(j.state, 'failed', j.error);
    return j.state === 'done' ? j : null;
  }, 120_000, 250);
  assert.equal(job.step, 20);
  assert.ok(job.report.run.eval_after.loss < job.report.run.eval_before.loss);
  const m = await rpc(node.rpcPort, 'models_getModel', [job.model]);
  assert.equal(m.owner, charlie.address);
  assert.equal(m.versions[0].weightsHash, job.report.adapter_id);
  const rec = await api.query.openStaking.workers(charlie.address);
  assert.ok(rec.unwrap().models.map((x) => x.toNumber()).includes(job.model));
  const res = await waitFor('served', async () => {
    const a = await worker.post('/v1/completions', { model: 'case-law-2', prompt: 'The court', max_tokens: 4, temperature: 0 }, await voucherHeader(job.model, 'The court'));
    return a.status === 200 ? a : null;
  }, 60_000, 250);
  assert.equal(res.body.model, 'case-law-2');
});
